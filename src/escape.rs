//! Names and text that come from outside (file names in a watch directory, a report's own words,
//! an API's error message) shown to people or stored in the agent's records, made safe: control
//! characters, bytes that are not UTF-8, the backslash itself and the Unicode controls that
//! reorder a terminal line are written as escapes, so a file named `x.xml\nERROR forged` can
//! neither start a log line of its own nor move the cursor. The escaping of a path can be undone
//! (`unescape`), which lets records keep a non-UTF-8 name exactly in JSON.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Whether `c` must not reach a terminal or a log as it is: C0 and C1 controls, DEL, and the
/// bidirectional overrides and isolates (which make text display in another order).
pub fn is_hostile(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped_char(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 && is_hostile(c) => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if is_hostile(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `bytes` with every control character, invalid UTF-8 byte (`\xff`) and backslash escaped.
pub fn bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A path as people should see it (and as records store it): see [`bytes()`].
pub fn path(p: &Path) -> String {
    bytes(p.as_os_str().as_bytes())
}

/// Text for a log line or a terminal: control characters escaped (a backslash stays as it is,
/// since nothing needs to read it back). Borrowed when there is nothing to change.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push('\\');
        } else {
            push_escaped_char(&mut out, c);
        }
    }
    Cow::Owned(out)
}

/// A path for a log field: `tracing::info!(file = %escape::Shown(&path), ...)`.
pub struct Shown<'a>(pub &'a Path);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&path(self.0))
    }
}

/// The bytes an escaped string stands for (the inverse of [`bytes()`]). An escape that is not
/// one `bytes` writes is kept literally, so a record written before paths were escaped reads
/// back as it was unless it happens to hold such a sequence.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let rest = &s[i + 1..];
        let (decoded, used): (Option<Vec<u8>>, usize) = match b[i + 1] {
            b'\\' => (Some(vec![b'\\']), 1),
            b'n' => (Some(vec![b'\n']), 1),
            b'r' => (Some(vec![b'\r']), 1),
            b't' => (Some(vec![b'\t']), 1),
            b'x' => match rest.get(1..3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => (Some(vec![v]), 3),
                None => (None, 0),
            },
            b'u' => {
                let close = rest.find('}');
                match close.filter(|_| rest.starts_with("u{")) {
                    Some(end) => match u32::from_str_radix(&rest[2..end], 16)
                        .ok()
                        .and_then(char::from_u32)
                    {
                        Some(c) => {
                            let mut buf = [0u8; 4];
                            (Some(c.encode_utf8(&mut buf).as_bytes().to_vec()), end + 1)
                        }
                        None => (None, 0),
                    },
                    None => (None, 0),
                }
            }
            _ => (None, 0),
        };
        match decoded {
            Some(v) => {
                out.extend_from_slice(&v);
                i += 1 + used;
            }
            None => {
                out.push(b'\\');
                i += 1;
            }
        }
    }
    out
}

/// The path an escaped string stands for.
pub fn unescape_path(s: &str) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&unescape(s)))
}

/// serde for a `PathBuf` field of a record: stored escaped (JSON strings are Unicode, and a
/// file name need not be), read back exactly: `#[serde(with = "crate::escape::serde_path")]`.
pub mod serde_path {
    use std::path::{Path, PathBuf};

    pub fn serialize<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::path(p))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        Ok(super::unescape_path(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_in_a_name_cannot_start_a_line() {
        let shown = path(Path::new("/in/x.xml\nERROR forged: key=abc"));
        assert_eq!(shown, "/in/x.xml\\nERROR forged: key=abc");
        assert!(!shown.contains('\n'));
    }

    #[test]
    fn terminal_controls_and_reordering_are_escaped() {
        assert_eq!(bytes(b"a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(bytes("r\u{202e}lmx.exe".as_bytes()), "r\\u{202e}lmx.exe");
        assert_eq!(bytes("caf\u{e9}.xml".as_bytes()), "caf\u{e9}.xml");
        assert_eq!(text("one\ntwo \\ three"), "one\\ntwo \\ three");
        assert!(matches!(text("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_name_survives_a_round_trip() {
        let names: [&[u8]; 6] = [
            b"plain.xml",
            b"back\\slash\\n.xml",
            b"\xff\xfe.xml",
            b"new\nline\r\t.xml",
            "bidi\u{202e}.xml".as_bytes(),
            b"\\x41 literal",
        ];
        for n in names {
            assert_eq!(unescape(&bytes(n)), n, "{:?}", bytes(n));
        }
    }

    #[test]
    fn an_old_record_without_escapes_reads_back_as_written() {
        assert_eq!(unescape("/srv/in/scan.xml"), b"/srv/in/scan.xml");
        assert_eq!(unescape("odd\\qpath"), b"odd\\qpath");
        assert_eq!(unescape("trailing\\"), b"trailing\\");
    }
}
