//! What a job's target may look like: [`check_target`] for each scanner's kind of target (host,
//! address, range, URL, host:port) and [`check_gvmd_host`] for gvmd's own host syntax. No shell
//! is involved in a run, but a target that starts with '-' or holds a shell metacharacter is a
//! mistake or an attack, so the config refuses it before any scanner sees it.

/// What a scanner's targets may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// nmap, openvas: a host name, IPv4/IPv6 address, CIDR block, or nmap-style IPv4 range.
    Network,
    /// sslyze: a host name or address, optionally with `:port` (`[v6]:port` for IPv6).
    Server,
    /// zap: an http(s) URL.
    Url,
    /// command: any of the above.
    Any,
}

/// Characters no host, address, range or URL needs, and which would mean something to a
/// shell. No shell is involved, but a target holding one is a mistake or an attack.
const SHELL_CHARS: &[char] = &[
    ';', '|', '&', '$', '`', '<', '>', '(', ')', '{', '}', '!', '*', '?', '\'', '"', '\\', '~', '^',
];
/// Of those, what a URL may not hold (`&`, `(`, `)`, `!`, `*`, `?`, `~` are ordinary in URLs).
const URL_SHELL_CHARS: &[char] = &[';', '|', '$', '`', '<', '>', '{', '}', '\'', '"', '\\', '^'];

/// Whether `t` may be passed to the scanner as a target; `Err` says why not, in words for
/// the operator. Refused whatever the scanner: empty, a leading `-` (it would be read as an
/// option), whitespace or control characters, shell metacharacters.
pub fn check_target(t: &str, kind: TargetKind) -> Result<(), String> {
    if t.is_empty() {
        return Err("is empty".into());
    }
    if t.starts_with('-') {
        return Err(format!(
            "{t:?} starts with '-': the scanner would read it as an option, not a target"
        ));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{t:?} contains whitespace or a control character: give one target per list entry"
        ));
    }
    let forbidden = if kind == TargetKind::Url || looks_like_url(t) {
        URL_SHELL_CHARS
    } else {
        SHELL_CHARS
    };
    if let Some(c) = t.chars().find(|c| forbidden.contains(c)) {
        return Err(format!(
            "{t:?} contains {c:?}, a shell metacharacter that no host, address, range or URL needs"
        ));
    }
    let ok = match kind {
        TargetKind::Url => {
            return is_http_url(t).then_some(()).ok_or_else(|| {
                format!(
                    "{t:?} is not an http(s) URL with a host, such as \"https://app.example.com\""
                )
            })
        }
        TargetKind::Network | TargetKind::Server if looks_like_url(t) => {
            return Err(format!(
                "{t:?} is a URL, but this scanner takes host names and addresses: write the host \
                 name alone"
            ))
        }
        TargetKind::Network => is_network(t),
        TargetKind::Server => is_server(t),
        TargetKind::Any => is_network(t) || is_server(t) || is_http_url(t),
    };
    if ok {
        return Ok(());
    }
    let what = match kind {
        TargetKind::Network => {
            "a host name, IP address, CIDR block (10.0.0.0/24) or range (10.0.0.1-20)"
        }
        TargetKind::Server => {
            "a host name or IP address, optionally with a port (host.example:443, [::1]:443)"
        }
        TargetKind::Any => "a host name, IP address, CIDR block, range, host:port or http(s) URL",
        TargetKind::Url => unreachable!("returned above"),
    };
    if kind == TargetKind::Server && (is_cidr(t) || is_ipv4_range(t)) {
        return Err(format!(
            "{t:?} is a CIDR block or range, but this scanner connects to servers one by one: list \
             their addresses or host names"
        ));
    }
    if t.chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | ','))
    {
        return Err(format!(
            "{t:?} is not a valid IPv4 address or range (octets are 0-255, ranges low-high): expected {what}"
        ));
    }
    Err(format!("{t:?} is not {what}"))
}

/// Whether gvmd takes `t` as one entry of a target's hosts (the openvas preset's
/// [`check_target`]): an address (IPv6 without a zone), CIDR block, host name, or an IPv4
/// range `a.b.c.d-e` or `a.b.c.d-a.b.c.e`. nmap's octet ranges and comma lists are not gvmd's
/// syntax (and a comma would split the entry in two).
pub fn check_gvmd_host(t: &str) -> Result<(), String> {
    let v4 = |s: &str| s.parse::<std::net::Ipv4Addr>().ok();
    let refused = || {
        format!(
            "{t:?} is not a host gvmd understands: use an address, a CIDR block, a host name, \
             or a range such as 10.0.0.1-20 or 10.0.0.1-10.0.0.20 (one per list entry)"
        )
    };
    let split = t.split_once('-');
    if let Some((Some(a), Some(b))) = split.map(|(a, b)| (v4(a), v4(b))) {
        return (a <= b).then_some(()).ok_or_else(refused);
    }
    check_target(t, TargetKind::Network)?;
    let ok = match split.filter(|_| is_ipv4_range(t)) {
        Some((a, b)) => match (v4(a), b.parse::<u8>()) {
            (Some(a), Ok(last)) => a.octets()[3] <= last,
            _ => false,
        },
        None => !t.contains([',', '%']),
    };
    ok.then_some(()).ok_or_else(refused)
}

fn looks_like_url(t: &str) -> bool {
    t.contains("://")
}

fn is_http_url(t: &str) -> bool {
    url::Url::parse(t).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    })
}

fn is_network(t: &str) -> bool {
    is_ip(t) || is_cidr(t) || is_ipv4_range(t) || is_hostname(t)
}

/// `host`, `address`, `host:port`, `v4:port`, `[v6]` or `[v6]:port`.
fn is_server(t: &str) -> bool {
    if let Some(rest) = t.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        return addr.parse::<std::net::Ipv6Addr>().is_ok()
            && (after.is_empty() || after.strip_prefix(':').is_some_and(is_port));
    }
    if is_ip(t) {
        return true;
    }
    let (host, port) = match t.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (t, None),
    };
    (host.parse::<std::net::Ipv4Addr>().is_ok() || is_hostname(host)) && port.is_none_or(is_port)
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0)
}

/// An IPv4 or IPv6 address; IPv6 may carry a zone (`fe80::1%eth0`).
fn is_ip(t: &str) -> bool {
    if t.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let (addr, zone) = match t.split_once('%') {
        Some((a, z)) => (a, Some(z)),
        None => (t, None),
    };
    addr.parse::<std::net::Ipv6Addr>().is_ok()
        && zone.is_none_or(|z| {
            !z.is_empty()
                && z.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

fn is_cidr(t: &str) -> bool {
    let Some((addr, bits)) = t.split_once('/') else {
        return false;
    };
    if bits.is_empty() || !bits.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if addr.parse::<std::net::Ipv4Addr>().is_ok() {
        bits <= 32
    } else {
        addr.parse::<std::net::Ipv6Addr>().is_ok() && bits <= 128
    }
}

/// nmap's octet ranges: four parts, each a comma list of `n`, `n-m`, `n-` or `-m` (0-255).
fn is_ipv4_range(t: &str) -> bool {
    let parts: Vec<&str> = t.split('.').collect();
    if parts.len() != 4 || !t.contains(['-', ',']) {
        return false;
    }
    let octet =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && s.parse::<u8>().is_ok();
    parts.iter().all(|p| {
        p.split(',').all(|item| match item.split_once('-') {
            None => octet(item),
            Some((a, b)) => {
                (a.is_empty() || octet(a))
                    && (b.is_empty() || octet(b))
                    && !(a.is_empty() && b.is_empty())
                    && (a.is_empty()
                        || b.is_empty()
                        || a.parse::<u8>().ok() <= b.parse::<u8>().ok())
            }
        })
    })
}

/// A DNS name: labels of letters, digits, '-' and '_' (not at a label's ends for '-'), at most
/// 63 bytes each and 253 in all, an optional final dot, and a last label with a letter in it
/// (top-level domains have one; without it, it is a mistyped IPv4 address or range).
fn is_hostname(t: &str) -> bool {
    let t = t.strip_suffix('.').unwrap_or(t);
    if t.is_empty() || t.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = t.split('.').collect();
    labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }) && labels
        .last()
        .is_some_and(|l| l.chars().any(|c| c.is_ascii_alphabetic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gvmd_hosts() {
        for t in [
            "10.0.0.1",
            "10.0.0.0/24",
            "fe80::1",
            "10.0.0.1-20",
            "10.0.0.1-10.0.0.20",
            "db.internal",
        ] {
            assert!(check_gvmd_host(t).is_ok(), "{t}");
        }
        for t in [
            "10.0.0.1,5",
            "192.168.0-1.1-254",
            "10.0.0.20-1",
            "fe80::1%eth0",
            "10.0.0.-20",
            "10.0.0.5-10.0.0.1",
            "-x",
        ] {
            assert!(check_gvmd_host(t).is_err(), "{t}");
        }
    }

    #[test]
    fn targets_are_hosts_addresses_blocks_ranges_or_urls() {
        use TargetKind::*;
        for (t, kind) in [
            ("127.0.0.1", Network),
            ("10.0.0.0/24", Network),
            ("::1", Network),
            ("fe80::/64", Network),
            ("fe80::1%eth0", Network),
            ("host.example", Network),
            ("host.example.", Network),
            ("localhost", Network),
            ("10.0.0.1-20", Network),
            ("192.168.0-1.1-254", Network),
            ("10.0.0,2.1", Network),
            ("https://intranet.example:8443/app", Url),
            ("http://10.0.0.5/?a=1&b=(2)", Url),
            ("host.example:443", Server),
            ("10.0.0.1:8443", Server),
            ("[::1]:443", Server),
            ("::1", Server),
            ("https://intranet.example", Any),
            ("10.0.0.0/8", Any),
            ("host.example:443", Any),
        ] {
            assert_eq!(check_target(t, kind), Ok(()), "{t} as {kind:?}");
        }
        for (t, kind, why) in [
            ("-oN/tmp/x", Network, "starts with '-'"),
            ("--script=x", Network, "starts with '-'"),
            ("-x", Url, "starts with '-'"),
            ("a b", Network, "whitespace"),
            ("a\tb", Url, "whitespace"),
            ("a\u{7}", Network, "control"),
            ("$(id)", Network, "'$'"),
            (";rm", Network, "';'"),
            ("a|b", Server, "'|'"),
            ("`id`", Any, "'`'"),
            ("https://x.example/$(id)", Url, "'$'"),
            ("", Network, "is empty"),
            ("", Url, "is empty"),
            ("http://", Network, "is a URL"),
            ("https://intranet.example", Network, "is a URL"),
            ("https://intranet.example", Server, "is a URL"),
            ("http://", Url, "not an http(s) URL"),
            ("ftp://files.example", Url, "not an http(s) URL"),
            ("intranet.example", Url, "not an http(s) URL"),
            ("10.0.0.256", Network, "not a valid IPv4"),
            ("10.0.0.0/33", Network, "is not a host name"),
            ("::1/129", Network, "is not a host name"),
            ("10.0.0.20-1", Network, "not a valid IPv4 address or range"),
            ("10.0.0.1-300", Network, "not a valid IPv4 address or range"),
            ("host_.-bad", Network, "is not a host name"),
            ("host.example:0", Server, "is not a host name"),
            ("host.example:443", Network, "is not a host name"),
            ("10.0.0.1-20", Server, "one by one"),
            ("10.0.0.0/24", Server, "one by one"),
        ] {
            let e = check_target(t, kind).expect_err(t);
            assert!(e.contains(why), "{t:?} as {kind:?}: {e}");
        }
    }
}
