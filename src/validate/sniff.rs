//! First-bytes classification: decides which parser (XML, JSON) gets the file, and recognises
//! the text formats we reject without parsing (Nmap -oN/-oG, GVM CSV, Markdown, HTML, PDF).
//! Sniffing never looks at the file name: GSA download names are user patterns, and a
//! Markdown report saved as `.json` is a real sample.

/// What the prefix looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// Nothing but whitespace (or nothing at all).
    Empty,
    /// A UTF-16/UTF-32 byte-order mark.
    WideEncoding,
    Xml,
    Json(JsonStart),
    NmapText,
    GvmCsv,
    /// GVM "CSV Hosts": one summary line per host, no results.
    GvmCsvHosts,
    Other(Looks),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonStart {
    Object,
    Array,
    String,
    /// A number, `true`, `false` or `null` — or text that merely starts like one.
    Scalar,
}

/// What an unrecognised file seems to be, for the rejection reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Looks {
    Html,
    Markdown,
    Pdf,
    Binary,
    Text,
}

impl Looks {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Looks::Html => "an HTML page (a ZAP HTML report? HostedScan needs the traditional XML or JSON report)",
            Looks::Markdown => "Markdown text (a ZAP Markdown report? HostedScan needs the traditional XML or JSON report)",
            Looks::Pdf => "a PDF document (a GVM PDF export? export with the XML report format instead)",
            Looks::Binary => "binary data",
            Looks::Text => "plain text, neither XML nor JSON",
        }
    }
}

const GVM_CSV_HEADER: &[u8] = b"IP,Hostname,Port,Port Protocol,CVSS,Severity,";
/// The header `CSV_Hosts.xsl` writes (gvmd report format 9087b18c-626c-11e3-8892-406186ea4fc5).
const GVM_CSV_HOSTS_HEADER: &[u8] = b"IP,Hostname,OS,Scan Start,Scan End,CVSS,Severity,";

/// `raw` is the prefix with the UTF-8 BOM already removed.
pub(crate) fn sniff(raw: &[u8]) -> Sniffed {
    if raw.starts_with(b"\xFF\xFE")
        || raw.starts_with(b"\xFE\xFF")
        || raw.starts_with(b"\0\0\xFE\xFF")
    {
        return Sniffed::WideEncoding;
    }
    let start = raw
        .iter()
        .position(|b| !super::input::is_ws(*b))
        .unwrap_or(raw.len());
    let s = &raw[start..];
    let Some(first) = s.first() else {
        return Sniffed::Empty;
    };
    match first {
        b'<' => {
            if starts_with_ci(s, b"<!doctype html") || starts_with_ci(s, b"<html") {
                Sniffed::Other(Looks::Html)
            } else {
                Sniffed::Xml
            }
        }
        b'{' => Sniffed::Json(JsonStart::Object),
        b'[' => Sniffed::Json(JsonStart::Array),
        b'"' => Sniffed::Json(JsonStart::String),
        b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => Sniffed::Json(JsonStart::Scalar),
        _ if s.starts_with(b"# Nmap ") || s.starts_with(b"Starting Nmap") => Sniffed::NmapText,
        _ if s.starts_with(GVM_CSV_HEADER) => Sniffed::GvmCsv,
        _ if s.starts_with(GVM_CSV_HOSTS_HEADER) => Sniffed::GvmCsvHosts,
        _ if s.starts_with(b"%PDF") => Sniffed::Other(Looks::Pdf),
        b'#' => Sniffed::Other(Looks::Markdown),
        _ if s
            .iter()
            .take(64)
            .any(|b| *b == 0 || (*b < 0x20 && !b"\t\r\n".contains(b))) =>
        {
            Sniffed::Other(Looks::Binary)
        }
        _ => Sniffed::Other(Looks::Text),
    }
}

fn starts_with_ci(s: &[u8], pat: &[u8]) -> bool {
    s.len() >= pat.len() && s[..pat.len()].eq_ignore_ascii_case(pat)
}

/// The first bytes after leading whitespace, escaped so a reason stays one printable line.
pub(crate) fn show_start(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| !super::input::is_ws(*b))
        .unwrap_or(raw.len());
    let s = &raw[start..];
    let cut = &s[..s.len().min(40)];
    let mut out = String::with_capacity(cut.len() + 8);
    for b in cut {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(*b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if s.len() > cut.len() {
        out.push_str("...");
    }
    format!("\"{out}\"")
}

/// A JSON string whose content is itself a JSON object or array (a report encoded twice).
pub(crate) fn looks_double_encoded(raw: &[u8]) -> bool {
    let s = &raw[raw
        .iter()
        .position(|b| !super::input::is_ws(*b))
        .unwrap_or(raw.len())..];
    let Some(inner) = s.strip_prefix(b"\"") else {
        return false;
    };
    let mut rest = inner;
    // Skip whitespace, raw or escaped (\n, \t, \r), inside the string.
    loop {
        match rest {
            [b, tail @ ..] if super::input::is_ws(*b) => rest = tail,
            [b'\\', b'n' | b't' | b'r', tail @ ..] => rest = tail,
            _ => break,
        }
    }
    matches!(rest.first(), Some(b'{') | Some(b'['))
}
