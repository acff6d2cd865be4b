//! The JSON side: streams the document through serde_json with visitors that keep only the
//! handful of keys the ZAP and SSLyze rules need and skip everything else with `IgnoredAny`
//! (which serde_json skips without buffering, strings included), then routes the top-level
//! object to the right checker. Also maps serde_json's errors onto verdicts: EOF means
//! truncated (`Incomplete`), syntax means `Malformed`, I/O is left for `validate` to surface.

use std::fmt;
use std::io::{BufRead, BufReader};

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::error::Category;

use super::input::Checked;
use super::sniff::JsonStart;
use super::sslyze::{self, ServersSeed, Sslyze};
use super::zap::{self, SiteSeed, Sites, ZapJson};
use super::{reject, Format, Found, RejectKind, Rejection};

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
        if self.ssl.servers.is_some() {
            Format::SslyzeJson
        } else if self.zap.site.is_some() || self.zap.version || self.zap.program_name {
            Format::ZapJson
        } else {
            Format::Json
        }
    }
}

pub(crate) fn check<B: BufRead>(
    input: &mut Checked<B>,
    start: JsonStart,
    head: &str,
    double_encoded: bool,
) -> Result<Found, Rejection> {
    // serde_json reads one byte at a time: serve those from a buffer, not through the checks
    // of `Checked` (which then sees the input in large reads, ahead of the parser).
    let mut de =
        serde_json::Deserializer::from_reader(BufReader::with_capacity(64 * 1024, &mut *input));
    match start {
        JsonStart::Object => {
            let mut top = Top::default();
            let parsed = TopSeed(&mut top)
                .deserialize(&mut de)
                .and_then(|()| de.end());
            if let Err(e) = parsed {
                return Err(json_error(e, top.format()));
            }
            classify(top)
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
                Err(e) => Err(json_error(e, Format::Json)),
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
    if top.ssl.servers.is_some() {
        return sslyze::verdict(top.ssl);
    }
    if top.zap.site.is_some() && (top.zap.version || top.zap.program_name) {
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

fn json_error(e: serde_json::Error, format: Format) -> Rejection {
    let at = format!("line {}, column {}", e.line(), e.column());
    match e.classify() {
        // `validate` replaces this with the reader's error or the UTF-8 finding.
        Category::Io => reject(format, RejectKind::Malformed, format!("read failed: {e}")),
        Category::Eof => reject(
            format,
            RejectKind::Incomplete,
            format!("the JSON ends early at {at}: the file is truncated (or still being written)"),
        ),
        Category::Syntax if e.to_string().contains("recursion limit") => reject(
            format,
            RejectKind::Limit,
            format!("the JSON nests too deeply at {at}"),
        ),
        Category::Syntax => reject(
            format,
            RejectKind::Malformed,
            format!("not valid JSON: {e}"),
        ),
        Category::Data => reject(
            format,
            RejectKind::NotAReport,
            format!(
                "not a {} report: {e}",
                match format {
                    Format::SslyzeJson => "valid SSLyze",
                    Format::ZapJson => "valid ZAP",
                    _ => "recognised scanner",
                }
            ),
        ),
    }
}

struct TopSeed<'a>(&'a mut Top);

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
            match key.as_str() {
                "@version" => top.zap.version = present(&mut map)?,
                "@programName" => top.zap.program_name = present(&mut map)?,
                "site" => {
                    let sites = top.zap.site.get_or_insert_with(Sites::default);
                    map.next_value_seed(SiteSeed(sites))?;
                }
                "stoppingInsight" => {
                    let buf = top.zap.insight.get_or_insert_with(String::new);
                    map.next_value_seed(zap::insight_seed(buf))?;
                }
                "server_scan_results" => {
                    let servers = top.ssl.servers.get_or_insert_with(Default::default);
                    map.next_value_seed(ServersSeed(servers))?;
                }
                "sslyze_version" => top.ssl.version = present(&mut map)?,
                "date_scans_started" => top.ssl.started = present(&mut map)?,
                "date_scans_completed" => top.ssl.completed = present(&mut map)?,
                "total_scan_time" => {
                    map.next_value::<IgnoredAny>()?;
                    top.ssl.legacy_keys = true;
                }
                "invalid_server_strings" => {
                    top.ssl.invalid_server_strings = map.next_value_seed(CountSeed)?;
                }
                "server_connectivity_errors" => {
                    top.ssl.legacy_keys = true;
                    top.ssl.connectivity_errors = map.next_value_seed(CountSeed)?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Whether a key's value is there and not null.
fn present<'de, A: MapAccess<'de>>(map: &mut A) -> Result<bool, A::Error> {
    Ok(map.next_value::<Option<IgnoredAny>>()?.is_some())
}

/// The number of elements of an array (0 for null or any non-array).
pub(crate) struct CountSeed;

impl<'de> DeserializeSeed<'de> for CountSeed {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CountSeed {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_str<E>(self, _: &str) -> Result<usize, E> {
        Ok(0)
    }
}

/// A scalar as text (strings as they are, numbers and booleans printed, null as `None`);
/// anything else is skipped. ZAP writes ports as strings, SSLyze as numbers.
pub(crate) struct Scalar(pub Option<String>);

/// Longest scalar we keep; names and statuses are short, the rest is never needed whole.
const MAX_SCALAR: usize = 2048;

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or number")
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.chars().take(MAX_SCALAR).collect())))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
    fn visit_none<E>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar(None))
    }
}

/// Appends the string scalars found anywhere in a value to `buf`, up to `max` bytes; used to
/// quote free-form explanations (ZAP's stoppingInsight) in a warning.
pub(crate) struct Strings<'a> {
    buf: &'a mut String,
    max: usize,
}

impl<'a> Strings<'a> {
    pub(crate) fn new(buf: &'a mut String, max: usize) -> Self {
        Strings { buf, max }
    }

    fn push(&mut self, s: &str) {
        let room = self.max.saturating_sub(self.buf.len());
        let s = s.trim();
        if room == 0 || s.is_empty() {
            return;
        }
        if !self.buf.is_empty() {
            self.buf.push_str("; ");
        }
        let mut cut = room.min(s.len());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.buf.push_str(&s[..cut]);
    }
}

impl<'de> DeserializeSeed<'de> for Strings<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strings<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(mut self, v: &str) -> Result<(), E> {
        self.push(v);
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Strings::new(&mut *self.buf, self.max))?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Strings::new(&mut *self.buf, self.max))?;
        }
        Ok(())
    }
}
