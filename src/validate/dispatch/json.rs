//! JSON dispatch: streams the document through serde_json once, offering each top-level key
//! to the ZAP and SSLyze checkers (which read the values they need with their own visitors)
//! and skipping the rest with `IgnoredAny` (which serde_json skips without buffering, strings
//! included); then the checker whose keys are there decides. Also the one place serde_json's
//! errors become verdicts: EOF means truncated (`Incomplete`), syntax means `Malformed`, I/O
//! is left for `validate` to surface. A document that is not an object is refused here. The
//! parser reads through `lane.rs`, which lets the long lists be read from memory.

use std::cell::RefCell;
use std::fmt;
use std::io::BufRead;
use std::rc::Rc;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::error::Category;

use crate::validate::ahead::Ahead;
use crate::validate::checker::Found;
use crate::validate::json::Elements;
use crate::validate::sniff::JsonStart;
use crate::validate::sslyze::{self, Sslyze};
use crate::validate::types::{reject, Format, RejectKind, Rejection};
use crate::validate::zap::{self, ZapJson};

use super::lane::{place, Jump, Lane, Shared};

/// Top-level keys named when an unknown object is rejected.
const NAMED_KEYS: usize = 8;

#[derive(Default)]
struct Top {
    zap: ZapJson,
    ssl: Sslyze,
    keys: Vec<String>,
    key_count: usize,
}

impl Top {
    /// The best guess so far, so a broken file is still reported under its format.
    fn format(&self) -> Format {
        if self.ssl.claimed() {
            Format::SslyzeJson
        } else if self.zap.claimed() {
            Format::ZapJson
        } else {
            Format::Json
        }
    }
}

pub(crate) fn check<B: BufRead + Send>(
    input: &mut Ahead<'_, '_, B>,
    start: JsonStart,
    head: &str,
    double_encoded: bool,
) -> Result<Found, Rejection> {
    // serde_json reads one byte at a time: it gets them from the lane's window, not through
    // the checks of `Checked` (which sees the input in large reads, ahead of the parser).
    let lane = Rc::new(RefCell::new(Lane::new(input)));
    let fast = Shared(Rc::clone(&lane));
    let mut de = serde_json::Deserializer::from_reader(Shared(Rc::clone(&lane)));
    match start {
        JsonStart::Object => {
            let mut top = Top::default();
            let parsed = TopSeed(&mut top, &fast)
                .deserialize(&mut de)
                .and_then(|()| de.end());
            match parsed {
                Err(e) => Err(json_error(e, top.format(), lane.borrow().jump())),
                Ok(()) => classify(top),
            }
        }
        JsonStart::Array | JsonStart::String | JsonStart::Scalar => {
            let parsed = IgnoredAny::deserialize(&mut de).and_then(|_| de.end());
            match parsed {
                Err(e) if start == JsonStart::Scalar && e.classify() == Category::Syntax => {
                    Err(reject(
                        Format::Unknown,
                        RejectKind::NotAReport,
                        format!(
                            "not a recognised scanner report: it looks like plain text, neither \
                             XML nor JSON; it starts with {head}"
                        ),
                    ))
                }
                Err(e) => Err(json_error(e, Format::Json, None)),
                Ok(_) => Err(reject(
                    Format::Json,
                    RejectKind::NotAReport,
                    not_object(start, head, double_encoded),
                )),
            }
        }
    }
}

fn not_object(start: JsonStart, head: &str, double_encoded: bool) -> String {
    match start {
        JsonStart::Array => format!(
            "not a recognised scanner report: the file is a JSON array ({head}), not an object; \
             SSLyze and ZAP reports are JSON objects (an empty [] is what an SSLyze run that \
             scanned nothing can leave)"
        ),
        JsonStart::String if double_encoded => format!(
            "not a recognised scanner report: the file is one JSON string that holds JSON ({head}): \
             the report was JSON-encoded twice (double-encoded); decode it once (e.g. jq -r . \
             file) and submit the result"
        ),
        JsonStart::String => format!(
            "not a recognised scanner report: the file is a single JSON string ({head})"
        ),
        _ => format!(
            "not a recognised scanner report: the file is a bare JSON value ({head}), not an object"
        ),
    }
}

fn classify(top: Top) -> Result<Found, Rejection> {
    if top.ssl.claimed() {
        return sslyze::verdict(top.ssl);
    }
    if top.zap.is_report() {
        return zap::json_verdict(top.zap);
    }
    let mut keys = top
        .keys
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    if top.key_count > top.keys.len() {
        keys.push_str(", ...");
    }
    if keys.is_empty() {
        keys = "none".to_string();
    }
    Err(reject(
        Format::Json,
        RejectKind::NotAReport,
        format!(
            "not a recognised scanner report: a JSON object with keys {keys}; expected a ZAP report \
             (\"@version\" and \"site\") or an SSLyze report (\"server_scan_results\")"
        ),
    ))
}

fn json_error(e: serde_json::Error, format: Format, jump: Option<Jump>) -> Rejection {
    let (line, column) = place(jump, e.line(), e.column());
    let at = format!("line {line}, column {column}");
    // serde_json's words with the place in the file (it counts only the bytes it read itself).
    let text = e.to_string();
    let own = format!(" at line {} column {}", e.line(), e.column());
    let said = match text.strip_suffix(&own) {
        Some(what) if e.line() != 0 => format!("{what} at line {line} column {column}"),
        _ => text,
    };
    match e.classify() {
        // `validate` replaces this with the reader's error or the UTF-8 finding.
        Category::Io => reject(
            format,
            RejectKind::Malformed,
            format!("read failed: {said}"),
        ),
        Category::Eof => reject(
            format,
            RejectKind::Incomplete,
            format!("the JSON ends early at {at}: the file is truncated (or still being written)"),
        ),
        Category::Syntax if said.contains("recursion limit") => reject(
            format,
            RejectKind::Limit,
            format!("the JSON nests too deeply at {at}"),
        ),
        Category::Syntax => reject(
            format,
            RejectKind::Malformed,
            format!("not valid JSON: {said}"),
        ),
        Category::Data => reject(
            format,
            RejectKind::NotAReport,
            format!(
                "not a {} report: {said}",
                match format {
                    Format::SslyzeJson => "valid SSLyze",
                    Format::ZapJson => "valid ZAP",
                    _ => "recognised scanner",
                }
            ),
        ),
    }
}

struct TopSeed<'a>(&'a mut Top, &'a dyn Elements);

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let top = self.0;
        while let Some(key) = map.next_key::<String>()? {
            top.key_count += 1;
            if top.keys.len() < NAMED_KEYS {
                top.keys.push(key.chars().take(64).collect());
            }
            // The two checkers' keys are disjoint: at most one takes a key.
            if !top.zap.take(&key, &mut map, self.1)? && !top.ssl.take(&key, &mut map, self.1)? {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}
