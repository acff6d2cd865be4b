//! Report validation. `validate` reads a scanner output file once, as a stream, and decides
//! whether it is a complete, well-formed report of a kind HostedScan imports (Nmap XML,
//! GVM/OpenVAS XML, OWASP ZAP traditional XML/JSON, SSLyze JSON) and under which scan type —
//! or why not, in words an operator can act on. Uploading a partial scan would make HostedScan
//! close findings the scan never re-checked, so anything doubtful is rejected (see
//! `shared/docs/formats.md`, Part 1, for the policy this implements).
//!
//! This file holds the public types, the top-level flow (sniff, parse, apply the configured
//! hints) and the tests against the shared samples; each format's rules live in its own file.

mod gvm;
mod input;
mod json;
mod nmap;
mod sniff;
mod sslyze;
mod text;
mod types;
mod xml;
mod zap;

pub(crate) use types::reject;
pub use types::{
    Format, Hints, RejectKind, Rejection, Report, ScanType, UnknownFormat, UnknownRejectKind,
    UnknownScanType, Verdict,
};

use std::io::{self, BufRead, Read};

/// What a format checker found in a complete, well-formed document, before the configured
/// hints are applied.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub format: Option<Format>,
    pub scan_type: Option<ScanType>,
    pub warnings: Vec<String>,
    /// Why the scan is partial (rejected unless `accept_partial`).
    pub partial: Option<String>,
    /// ZAP site names, in document order (bounded), and how many there were.
    pub sites: Vec<String>,
    pub site_count: usize,
}

/// The longest JSON string accepted: serde_json holds each string a visitor reads whole (and
/// the visitor may copy it once more), so this bounds memory like `xml::MAX_MARKUP` does.
const MAX_JSON_STRING: u64 = 8 * 1024 * 1024;

/// Validate a report read from `reader` in ONE streaming pass. Returns Err(io::Error) only for
/// read errors of the underlying reader (so the caller can retry the file later), never for bad
/// content.
pub fn validate<R: BufRead>(reader: R, hints: &Hints) -> io::Result<Verdict> {
    validate_limited(reader, hints, xml::MAX_MARKUP)
}

/// `validate` with the XML tag size cap as a parameter, so tests can reach it cheaply.
fn validate_limited<R: BufRead>(
    reader: R,
    hints: &Hints,
    max_markup: usize,
) -> io::Result<Verdict> {
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
        | sniff::Sniffed::Other(_) => {
            Err(text::reject_text(sniffed, &prefix.bytes))
        }
        sniff::Sniffed::Xml | sniff::Sniffed::Json(_) => {
            let head = sniff::show_start(&prefix.bytes);
            let double_encoded = sniff::looks_double_encoded(&prefix.bytes);
            let base = prefix.base;
            let base_newlines = prefix.base_newlines;
            let chained = io::Cursor::new(prefix.bytes).chain(&mut trap);
            let doc_start = prefix.doc_start;
            let mut checked =
                input::Checked::new(chained, base, base_newlines).with_doc_start(doc_start);
            if sniffed == sniff::Sniffed::Xml {
                checked = checked.xml_chars();
            }
            if matches!(sniffed, sniff::Sniffed::Json(_)) {
                checked = checked.with_json_string_cap(MAX_JSON_STRING);
            }
            let verdict = match sniffed {
                sniff::Sniffed::Json(start) => json::check(&mut checked, start, &head, double_encoded),
                _ => xml::check(&mut checked, max_markup),
            };
            input_problems(verdict, &checked)
        }
    };
    if let Some(e) = trap.take_error() {
        return Err(e);
    }
    Ok(match parsed {
        Ok(found) => finish(found, hints),
        Err(r) => Err(r),
    })
}

/// A byte-level problem seen by `Checked` (bad UTF-8, oversized token) explains whatever the
/// parser reported after it, so it replaces that verdict.
fn input_problems<B: BufRead>(
    verdict: Result<Found, Rejection>,
    checked: &input::Checked<B>,
) -> Result<Found, Rejection> {
    let format = match &verdict {
        Ok(f) => f.format.unwrap_or(Format::Unknown),
        Err(r) => r.format,
    };
    match checked.stop {
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
    match (verdict, checked.truncated_utf8) {
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

/// Applies the configured hints to what the checker found.
fn finish(found: Found, hints: &Hints) -> Verdict {
    let Found {
        format,
        scan_type,
        mut warnings,
        partial,
        sites,
        site_count,
    } = found;
    let format = format.unwrap_or(Format::Unknown);
    let Some(auto) = scan_type else {
        return Err(reject(
            format,
            RejectKind::NotAReport,
            "not a recognised scanner report",
        ));
    };
    if let Some(cfg) = hints.scan_type {
        if cfg.family() != auto.family() {
            let fits: Vec<&str> = ScanType::ALL
                .iter()
                .filter(|t| t.family() == auto.family())
                .map(|t| t.as_str())
                .collect();
            return Err(Rejection {
                format,
                kind: RejectKind::Mismatch,
                reason: format!(
                    "scan_type {cfg} is configured for this source, but the file is {} ({auto}); \
                     set scan_type to {} (or auto) or put the file where it belongs",
                    format.describe(),
                    fits.join(" or ")
                ),
                warnings,
            });
        }
        if cfg == ScanType::NmapUdp && auto == ScanType::Nmap {
            warnings.push(
                "scan_type NMAP_UDP is configured but the scan is not UDP-only; uploading as NMAP_UDP \
                 as configured"
                    .to_string(),
            );
        }
    }
    if let Some(why) = partial {
        if hints.accept_partial {
            warnings.push(format!(
                "partial scan uploaded because accept_partial is set: {why}"
            ));
        } else {
            return Err(Rejection {
                format,
                kind: RejectKind::Partial,
                reason: format!("{why} (set accept_partial = true to upload partial scans anyway)"),
                warnings,
            });
        }
    }
    let scan_type = hints.scan_type.unwrap_or(auto);
    let configured = hints.target.clone().filter(|t| !t.trim().is_empty());
    let target = if scan_type.needs_target() {
        match configured.or_else(|| sites.first().cloned()) {
            Some(t) => Some(t),
            None => {
                return Err(Rejection {
                    format,
                    kind: RejectKind::NoTarget,
                    reason: "the ZAP report names no site, so it cannot tell the target: set \
                             target for this watch directory or job"
                        .to_string(),
                    warnings,
                })
            }
        }
    } else {
        configured
    };
    if site_count > 1 {
        let mut names = sites.join(", ");
        if site_count > sites.len() {
            names.push_str(&format!(" and {} more", site_count - sites.len()));
        }
        warnings.push(format!(
            "the report covers {site_count} sites ({names}); it is uploaded once, with target {}",
            target.as_deref().unwrap_or("-")
        ));
    }
    Ok(Report {
        format,
        scan_type,
        target,
        warnings,
    })
}

#[cfg(test)]
mod tests;
