//! The dispatcher: reads the first bytes, sniffs what the file is, and hands it to the parser
//! and checker that fit: XML (`xml.rs`: by root element to Nmap, ZAP or GVM), JSON (`json.rs`:
//! by top-level keys to ZAP or SSLyze), or the text formats refused from the prefix alone
//! (`text.rs` below). It also sets up the checking reader under every parser and turns what
//! that reader refused (bad UTF-8, a control character, an oversized JSON string) into the
//! verdict, since such a byte explains whatever the parser said after it. For XML, a reader
//! that reads ahead also scans start tags ahead for the parser.

mod json;
mod lane;
mod xml;

use std::io::{self, BufRead, Read};

use super::ahead::{Ahead, Finished};
use super::checker::Found;
use super::input;
use super::sniff;
use super::text;
use super::types::{reject, Format, RejectKind, Rejection};

/// The longest JSON string accepted: serde_json holds each string a visitor reads whole (and
/// the visitor may copy it once more), so this bounds memory like the XML tag size cap does.
const MAX_JSON_STRING: u64 = 8 * 1024 * 1024;

/// Reads `reader` once and returns what the checker found, or why the file is refused; after
/// `ahead_after` bytes, reading and checking go on on a second thread.
/// `Err(io::Error)` only for read errors of `reader` itself (handed back untouched).
pub(crate) fn check<R: BufRead + Send>(
    reader: R,
    max_markup: usize,
    ahead_after: u64,
) -> io::Result<Result<Found, Rejection>> {
    let mut trap = input::Trap::new(reader);
    let prefix = match input::read_prefix(&mut trap) {
        Ok(p) => p,
        Err(e) => return Err(trap.take_error().unwrap_or(e)),
    };
    let sniffed = sniff::sniff(&prefix.bytes);
    let parsed = match sniffed {
        sniff::Sniffed::Empty => Err(reject(
            Format::Unknown,
            RejectKind::Incomplete,
            if prefix.base == 0 && prefix.bytes.is_empty() {
                "the file is empty (still being written, or the scanner wrote nothing)".to_string()
            } else {
                "the file holds only whitespace (still being written, or the scanner wrote nothing)"
                    .to_string()
            },
        )),
        sniff::Sniffed::WideEncoding => Err(reject(
            Format::Unknown,
            RejectKind::Malformed,
            "the file is UTF-16/UTF-32 encoded (byte-order mark at byte 0); only UTF-8 is supported: \
             convert it (e.g. iconv -f UTF-16 -t UTF-8)",
        )),
        sniff::Sniffed::NmapText
        | sniff::Sniffed::GvmCsv
        | sniff::Sniffed::GvmCsvHosts
        | sniff::Sniffed::Other(_) => Err(text::reject_text(sniffed, &prefix.bytes)),
        sniff::Sniffed::Xml | sniff::Sniffed::Json(_) => {
            let head = sniff::show_start(&prefix.bytes);
            let double_encoded = sniff::looks_double_encoded(&prefix.bytes);
            let base = prefix.base;
            let base_newlines = prefix.base_newlines;
            let doc_start = prefix.doc_start;
            let chained = io::Cursor::new(prefix.bytes).chain(&mut trap);
            let checked = input::Checked::new(chained, base, base_newlines);
            let (verdict, finished) = std::thread::scope(|scope| match sniffed {
                sniff::Sniffed::Json(start) => {
                    let checked = checked.with_json_string_cap(MAX_JSON_STRING);
                    let mut input = Ahead::new(scope, checked, base, ahead_after);
                    let verdict = json::check(&mut input, start, &head, double_encoded);
                    (verdict, input.finish())
                }
                _ => {
                    let mut input =
                        Ahead::new(scope, checked.xml_chars(), base, ahead_after).scan_tags();
                    let verdict = xml::check(&mut input, base, doc_start, max_markup);
                    (verdict, input.finish())
                }
            });
            // A read error the parser never got to (something read ahead of it) comes after the
            // problem the parser stopped at: that problem is the verdict.
            if !finished.reached_end {
                trap.take_error();
            }
            input_problems(verdict, &finished)
        }
    };
    if let Some(e) = trap.take_error() {
        return Err(e);
    }
    Ok(parsed)
}

/// A byte-level problem seen by `Checked` (bad UTF-8, oversized token) explains whatever the
/// parser reported after it, so it replaces that verdict.
fn input_problems(
    verdict: Result<Found, Rejection>,
    checked: &Finished,
) -> Result<Found, Rejection> {
    let format = match &verdict {
        Ok(f) => f.format.unwrap_or(Format::Unknown),
        Err(r) => r.format,
    };
    match checked.stop() {
        Some(input::Stop::BadUtf8(off)) => {
            return Err(reject(
                format,
                RejectKind::Malformed,
                format!(
                    "invalid UTF-8 at {}: the file is not valid UTF-8 (a very old Nmap, or another \
                     encoding); re-run the scan or convert the file to UTF-8",
                    checked.locate(off)
                ),
            ))
        }
        Some(input::Stop::BadChar(off, byte)) => {
            return Err(reject(
                format,
                RejectKind::Malformed,
                format!(
                    "a control character (U+{byte:04X}) at {}: XML does not allow it, even \
                     escaped; the file is damaged or was not written as XML text",
                    checked.locate(off)
                ),
            ))
        }
        Some(input::Stop::NonCharacter(off)) => {
            return Err(reject(
                format,
                RejectKind::Malformed,
                format!(
                    "the noncharacter U+FFFE or U+FFFF at {}: XML does not allow it; the file \
                     is damaged or was not written as XML text",
                    checked.locate(off)
                ),
            ))
        }
        Some(input::Stop::StringTooLarge(off)) => {
            return Err(reject(
                format,
                RejectKind::Limit,
                format!(
                    "a single JSON string starting at {} is longer than {} bytes; refusing to \
                     buffer it",
                    checked.locate(off),
                    MAX_JSON_STRING
                ),
            ))
        }
        None => {}
    }
    match (verdict, checked.truncated_utf8()) {
        (Ok(_), Some(off)) => Err(reject(
            format,
            RejectKind::Malformed,
            format!(
                "invalid UTF-8 at {}: the file ends in the middle of a character",
                checked.locate(off)
            ),
        )),
        (v, _) => v,
    }
}
