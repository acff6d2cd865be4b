//! The validated form of a `[[job]]`: which scanner, when, for how long, against what, and the
//! argv template a run executes. `config` builds these (and reports what is wrong with the raw
//! entries); the runner only substitutes the per-run output path with [`JobSpec::argv_for`].
//!
//! Also here: what a target may look like ([`check_target`]) and a small `which`
//! ([`find_program`]), both used by the config checks.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::schedule::Schedule;
use crate::validate::{Hints, ScanType};

/// The placeholder for the run's output file (a path inside the run's private directory).
pub const OUTPUT: &str = "{output}";
/// The placeholder for the job's `target`.
pub const TARGET: &str = "{target}";
/// The placeholder for the job's `targets`: one argument per target.
pub const TARGETS: &str = "{targets}";

/// A job's timeout when the config gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4 * 3600);
/// The program the `zap` preset runs when `zap_path` is not set.
pub const DEFAULT_ZAP_PATH: &str = "zap.sh";
/// gvmd's socket when `gmp_socket` is not set.
pub const DEFAULT_GMP_SOCKET: &str = "/run/gvmd/gvmd.sock";
/// The search path used when the environment has no `PATH` (systemd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `scanner` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scanner {
    Nmap,
    Zap,
    Openvas,
    Sslyze,
    Command,
}

impl Scanner {
    pub const ALL: [Scanner; 5] = [
        Scanner::Nmap,
        Scanner::Zap,
        Scanner::Openvas,
        Scanner::Sslyze,
        Scanner::Command,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Scanner::Nmap => "nmap",
            Scanner::Zap => "zap",
            Scanner::Openvas => "openvas",
            Scanner::Sslyze => "sslyze",
            Scanner::Command => "command",
        }
    }

    /// The config spelling (exact, lower case); `None` for anything else.
    pub fn parse(s: &str) -> Option<Scanner> {
        Scanner::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The name of the output file inside a run's private directory. ZAP picks the report
    /// format from the extension, so its name must end in `.json`.
    pub fn output_file(&self) -> &'static str {
        match self {
            Scanner::Nmap => "nmap.xml",
            Scanner::Zap => "zap.json",
            Scanner::Openvas => "openvas.xml",
            Scanner::Sslyze => "sslyze.json",
            Scanner::Command => "output",
        }
    }

    /// The scan type when the job says `auto` (or nothing): `None` lets validation decide
    /// (NMAP or NMAP_UDP from the scaninfo; OWASP_ZAP for a ZAP report).
    pub fn default_scan_type(&self) -> Option<ScanType> {
        match self {
            Scanner::Nmap | Scanner::Zap | Scanner::Command => None,
            Scanner::Openvas => Some(ScanType::Openvas),
            Scanner::Sslyze => Some(ScanType::Sslyze),
        }
    }

    /// The scan types this scanner's reports can be uploaded as.
    pub fn scan_types(&self) -> &'static [ScanType] {
        match self {
            Scanner::Nmap => &[ScanType::Nmap, ScanType::NmapUdp],
            Scanner::Zap => &[ScanType::OwaspZap, ScanType::OwaspZapActive],
            Scanner::Openvas => &[ScanType::Openvas],
            Scanner::Sslyze => &[ScanType::Sslyze],
            Scanner::Command => &ScanType::ALL,
        }
    }

    /// What its targets may look like.
    pub fn target_kind(&self) -> TargetKind {
        match self {
            Scanner::Nmap | Scanner::Openvas => TargetKind::Network,
            Scanner::Sslyze => TargetKind::Server,
            Scanner::Zap => TargetKind::Url,
            Scanner::Command => TargetKind::Any,
        }
    }

    /// What to tell an operator whose machine lacks the scanner.
    pub fn install_hint(&self) -> &'static str {
        match self {
            Scanner::Nmap => "install nmap (e.g. `apt install nmap` or `dnf install nmap`)",
            Scanner::Zap => {
                "install ZAP (https://www.zaproxy.org/download/) and set zap_path to its zap.sh, \
                 e.g. \"/opt/zaproxy/zap.sh\""
            }
            Scanner::Sslyze => {
                "install SSLyze (e.g. `pipx install sslyze`) where the agent's PATH finds it"
            }
            Scanner::Openvas => "install Greenbone/gvmd",
            Scanner::Command => "install it, or give its full path",
        }
    }
}

impl std::fmt::Display for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use super::gmp::OpenvasSettings;

/// What a scanner's exit status says about the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitMeaning {
    /// The scan ran and found nothing to complain about (or the scanner does not say).
    Success,
    /// The scan ran and reports findings through its exit status (ZAP: 1 and 2).
    Findings,
    /// The scan did not work.
    Failure,
}

/// One `[[job]]`, checked.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub name: String,
    pub scanner: Scanner,
    pub schedule: Schedule,
    /// Default [`DEFAULT_TIMEOUT`] (4h).
    pub timeout: Duration,
    /// Default 0.
    pub jitter: Duration,
    /// Default false.
    pub catch_up: bool,
    /// What admission is told about the output: the job's scan_type (or the scanner's
    /// default), the zap/command `target`, and `accept_partial`.
    pub hints: Hints,
    /// nmap, openvas, sslyze (and command, when given). Each one passed [`check_target`].
    pub targets: Vec<String>,
    /// zap (and command, when given).
    pub target: Option<String>,
    /// The argv template with the placeholders still in, e.g.
    /// `["nmap", "-sV", "-oX", "{output}", "{targets}"]`. Empty for openvas (GMP, no process).
    /// A program given as a path is made absolute (runs do not start in the config's directory).
    pub argv: Vec<String>,
    /// The output file's name inside the run's private directory (see [`Scanner::output_file`]).
    pub output_file: String,
    /// `Some` for openvas only.
    pub openvas: Option<OpenvasSettings>,
}

impl JobSpec {
    /// The argv of one run: `{output}` becomes `output`, `{target}` the target, and `{targets}`
    /// one argument per target, expanded in place (none when there are no targets).
    ///
    /// Placeholders replace WHOLE arguments only: `--out={output}` or `x{target}` is passed
    /// as it is written, never spliced; write the placeholder as an argument of its own. A
    /// `{target}` in a job without a target is left as it is (the config refuses that job).
    pub fn argv_for(&self, output: &Path) -> Vec<OsString> {
        let mut out = Vec::with_capacity(self.argv.len() + self.targets.len());
        for a in &self.argv {
            match a.as_str() {
                OUTPUT => out.push(output.as_os_str().to_owned()),
                TARGETS => out.extend(self.targets.iter().map(OsString::from)),
                TARGET if self.target.is_some() => {
                    out.push(OsString::from(self.target.as_deref().unwrap_or_default()))
                }
                _ => out.push(OsString::from(a)),
            }
        }
        out
    }

    /// The program and the number of arguments of its template (a placeholder counts as one),
    /// e.g. `nmap with 6 arguments`: all that `check-config` and the logs above debug show of
    /// a command line, whose arguments may hold credentials.
    pub fn command_summary(&self) -> String {
        let Some((program, args)) = self.argv.split_first() else {
            return "no command".into();
        };
        match args.len() {
            0 => format!("{program} with no arguments"),
            1 => format!("{program} with 1 argument"),
            n => format!("{program} with {n} arguments"),
        }
    }

    /// What exit status `code` means for this job's scanner. Only ZAP reports findings
    /// through its exit status (1: warnings, 2: failures found, as its packaged scans do;
    /// 3 and anything else is an error); for every other scanner non-zero is a failure.
    pub fn exit_meaning(&self, code: i32) -> ExitMeaning {
        match (self.scanner, code) {
            (_, 0) => ExitMeaning::Success,
            (Scanner::Zap, 1 | 2) => ExitMeaning::Findings,
            _ => ExitMeaning::Failure,
        }
    }
}

/// The argv template of a preset (not `command`, which is taken as written; not `openvas`,
/// which runs no process). `program` is `nmap`, `sslyze` or the `zap_path`.
pub fn preset_argv(
    scanner: Scanner,
    program: &str,
    args: &[String],
    privileged: bool,
) -> Vec<String> {
    let mut v = vec![program.to_string()];
    match scanner {
        Scanner::Nmap => {
            if privileged {
                v.push("--privileged".into());
            }
            v.extend(args.iter().cloned());
            v.extend(["-oX".into(), OUTPUT.into(), TARGETS.into()]);
        }
        // ZAP's Quick Start add-on: -cmd runs inline and exits when done; -quickout picks the
        // report format from the file's extension (.json here).
        Scanner::Zap => {
            v.push("-cmd".into());
            v.extend(args.iter().cloned());
            v.extend([
                "-quickurl".into(),
                TARGET.into(),
                "-quickout".into(),
                OUTPUT.into(),
                "-quickprogress".into(),
            ]);
        }
        Scanner::Sslyze => {
            v.extend(args.iter().cloned());
            v.extend(["--json_out".into(), OUTPUT.into(), TARGETS.into()]);
        }
        Scanner::Openvas | Scanner::Command => return Vec::new(),
    }
    v
}

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

/// A small `which`: `program` itself when it holds a '/' (made absolute against the current
/// directory), else the first executable file named `program` in `path` (a `PATH` value;
/// [`DEFAULT_PATH`] when `None`; empty entries are skipped rather than meaning ".").
pub fn find_program(program: &str, path: Option<&str>) -> Result<PathBuf, String> {
    if program.is_empty() {
        return Err("the program name is empty".into());
    }
    if program.contains('/') {
        let p = Path::new(program);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        };
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(p),
            Ok(m) if m.is_file() => Err(format!(
                "{} is not executable: run `chmod +x {}`",
                p.display(),
                p.display()
            )),
            Ok(_) => Err(format!("{} is not a file", p.display())),
            Err(_) => Err(format!("{} does not exist", p.display())),
        };
    }
    let path = path.unwrap_or(DEFAULT_PATH);
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| is_executable(p))
        .ok_or_else(|| format!("{program:?} is not in PATH ({path})"))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(scanner: Scanner, argv: &[&str], targets: &[&str], target: Option<&str>) -> JobSpec {
        JobSpec {
            name: "j".into(),
            scanner,
            schedule: Schedule::parse("@daily", "UTC").unwrap(),
            timeout: DEFAULT_TIMEOUT,
            jitter: Duration::ZERO,
            catch_up: false,
            hints: Hints::default(),
            targets: targets.iter().map(|s| s.to_string()).collect(),
            target: target.map(str::to_string),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            output_file: scanner.output_file().into(),
            openvas: None,
        }
    }

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_command_summary_names_the_program_and_counts_its_arguments_only() {
        let s = spec(
            Scanner::Command,
            &["/opt/scan", "--token=SECRET123", "{output}"],
            &[],
            None,
        );
        assert_eq!(s.command_summary(), "/opt/scan with 2 arguments");
        assert_eq!(
            spec(Scanner::Command, &["x", "{output}"], &[], None).command_summary(),
            "x with 1 argument"
        );
        assert_eq!(
            spec(Scanner::Command, &["x"], &[], None).command_summary(),
            "x with no arguments"
        );
    }

    #[test]
    fn the_nmap_preset_writes_xml_and_expands_every_target() {
        let argv = preset_argv(Scanner::Nmap, "nmap", &args(&["-sV", "-T4"]), false);
        assert_eq!(argv, ["nmap", "-sV", "-T4", "-oX", "{output}", "{targets}"]);
        let s = spec(
            Scanner::Nmap,
            &argv.iter().map(String::as_str).collect::<Vec<_>>(),
            &["10.0.0.0/24", "host.example"],
            None,
        );
        assert_eq!(
            strings(s.argv_for(Path::new("/run/x/nmap.xml"))),
            [
                "nmap",
                "-sV",
                "-T4",
                "-oX",
                "/run/x/nmap.xml",
                "10.0.0.0/24",
                "host.example"
            ]
        );
        assert_eq!(
            preset_argv(Scanner::Nmap, "nmap", &args(&["-sS"]), true),
            [
                "nmap",
                "--privileged",
                "-sS",
                "-oX",
                "{output}",
                "{targets}"
            ]
        );
    }

    #[test]
    fn the_zap_preset_runs_a_quick_scan_to_a_json_report() {
        let argv = preset_argv(
            Scanner::Zap,
            "/opt/zap/zap.sh",
            &args(&["-config", "a=b"]),
            false,
        );
        assert_eq!(
            argv,
            [
                "/opt/zap/zap.sh",
                "-cmd",
                "-config",
                "a=b",
                "-quickurl",
                "{target}",
                "-quickout",
                "{output}",
                "-quickprogress"
            ]
        );
        assert_eq!(Scanner::Zap.output_file(), "zap.json");
        let s = spec(
            Scanner::Zap,
            &argv.iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
            Some("https://app.example"),
        );
        assert_eq!(
            strings(s.argv_for(Path::new("/run/x/zap.json"))),
            [
                "/opt/zap/zap.sh",
                "-cmd",
                "-config",
                "a=b",
                "-quickurl",
                "https://app.example",
                "-quickout",
                "/run/x/zap.json",
                "-quickprogress"
            ]
        );
    }

    #[test]
    fn the_sslyze_preset_writes_json() {
        let argv = preset_argv(
            Scanner::Sslyze,
            "sslyze",
            &args(&["--mozilla_config=modern"]),
            false,
        );
        assert_eq!(
            argv,
            [
                "sslyze",
                "--mozilla_config=modern",
                "--json_out",
                "{output}",
                "{targets}"
            ]
        );
        let s = spec(
            Scanner::Sslyze,
            &argv.iter().map(String::as_str).collect::<Vec<_>>(),
            &["a.example:443", "b.example"],
            None,
        );
        assert_eq!(
            strings(s.argv_for(Path::new("/o/sslyze.json"))),
            [
                "sslyze",
                "--mozilla_config=modern",
                "--json_out",
                "/o/sslyze.json",
                "a.example:443",
                "b.example"
            ]
        );
        assert!(preset_argv(Scanner::Command, "x", &[], false).is_empty());
        assert!(preset_argv(Scanner::Openvas, "x", &[], false).is_empty());
    }

    #[test]
    fn placeholders_replace_whole_arguments_only() {
        let s = spec(
            Scanner::Command,
            &[
                "/bin/scan",
                "--out={output}",
                "{output}",
                "x{target}",
                "{target}",
                "{targets}",
                "{targets}x",
                "{output}",
            ],
            &["a", "b"],
            Some("https://t.example"),
        );
        assert_eq!(
            strings(s.argv_for(Path::new("/o/output"))),
            [
                "/bin/scan",
                "--out={output}",
                "/o/output",
                "x{target}",
                "https://t.example",
                "a",
                "b",
                "{targets}x",
                "/o/output"
            ]
        );
        let none = spec(
            Scanner::Command,
            &["/bin/scan", "{targets}", "{target}"],
            &[],
            None,
        );
        assert_eq!(
            strings(none.argv_for(Path::new("/o"))),
            ["/bin/scan", "{target}"]
        );
    }

    #[test]
    fn exit_statuses_mean_what_each_scanner_says() {
        use ExitMeaning::*;
        for (scanner, code, meaning) in [
            (Scanner::Nmap, 0, Success),
            (Scanner::Nmap, 1, Failure),
            (Scanner::Nmap, 2, Failure),
            (Scanner::Zap, 0, Success),
            (Scanner::Zap, 1, Findings),
            (Scanner::Zap, 2, Findings),
            (Scanner::Zap, 3, Failure),
            (Scanner::Zap, 137, Failure),
            (Scanner::Zap, -1, Failure),
            (Scanner::Sslyze, 0, Success),
            (Scanner::Sslyze, 1, Failure),
            (Scanner::Command, 0, Success),
            (Scanner::Command, 2, Failure),
            (Scanner::Openvas, 1, Failure),
        ] {
            assert_eq!(
                spec(scanner, &[], &[], None).exit_meaning(code),
                meaning,
                "{scanner} {code}"
            );
        }
    }

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

    #[test]
    fn programs_are_found_by_path_or_in_path() {
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("scanner");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = d.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let dir = d.path().display().to_string();

        assert_eq!(
            find_program("scanner", Some(&format!("::/nonexistent:{dir}"))),
            Ok(exe.clone())
        );
        assert!(find_program("scanner", Some("/nonexistent"))
            .unwrap_err()
            .contains("not in PATH"));
        assert!(find_program("plain", Some(&dir)).is_err(), "not executable");
        assert_eq!(find_program(exe.to_str().unwrap(), None), Ok(exe.clone()));
        assert!(find_program(plain.to_str().unwrap(), None)
            .unwrap_err()
            .contains("chmod +x"));
        assert!(find_program(&format!("{dir}/nope"), None)
            .unwrap_err()
            .contains("does not exist"));
        assert!(find_program(&dir, None).unwrap_err().contains("not a file"));
        assert!(
            find_program("sh", None).is_ok(),
            "the default PATH when the environment has none"
        );
    }
}
