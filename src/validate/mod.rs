//! Report validation. `validate` reads a scanner output file once, as a stream, and decides
//! whether it is a complete, well-formed report of a kind HostedScan imports (Nmap XML,
//! GVM/OpenVAS XML, OWASP ZAP traditional XML/JSON, SSLyze JSON) and under which scan type —
//! or why not, in words an operator can act on. Uploading a partial scan would make HostedScan
//! close findings the scan never re-checked, so anything doubtful is rejected (see
//! `shared/docs/formats.md`, Part 1, for the policy this implements). It imports nothing else
//! of the crate.
//!
//! The structure, top to bottom (each part imports only from parts below it):
//!
//! ```text
//! mod.rs        validate(): dispatch, then apply the configured Hints (finish)
//! dispatch/     sniff the first bytes; XML by root element, JSON by top-level keys, text
//!               formats refused from the prefix; parser errors worded as Rejections here;
//!               lane.rs: the reader under serde_json, which hands long lists' elements to
//!               the checkers from memory
//! nmap gvm zap sslyze text
//!               the format checkers: one format's rules each -> checker::Found
//! checker.rs    Found and the XmlChecker trait the dispatcher drives
//! xml/          the standalone streaming XML pull parser (imports nothing of the crate)
//! json.rs       serde visitors the JSON checkers share (CountSeed, Scalar, Strings)
//! input.rs sniff.rs   the reader plumbing (UTF-8 and XML character checks, line:column)
//!               and the first-bytes classification
//! types.rs      the public vocabulary: Format, ScanType, RejectKind, Rejection, Report, Hints
//! ```

mod ahead;
mod checker;
mod dispatch;
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

use std::io::{self, BufRead};

use checker::Found;
use types::reject;
pub use types::{
    Format, Hints, RejectKind, Rejection, Report, ScanType, UnknownFormat, UnknownRejectKind,
    UnknownScanType, Verdict,
};

/// Validate a report read from `reader` in ONE streaming pass. Returns Err(io::Error) only for
/// read errors of the underlying reader (so the caller can retry the file later), never for bad
/// content.
pub fn validate<R: BufRead + Send>(reader: R, hints: &Hints) -> io::Result<Verdict> {
    validate_limited(reader, hints, xml::MAX_MARKUP)
}

/// `validate` with the XML tag size cap as a parameter, so tests can reach it cheaply.
fn validate_limited<R: BufRead + Send>(
    reader: R,
    hints: &Hints,
    max_markup: usize,
) -> io::Result<Verdict> {
    validate_tuned(reader, hints, max_markup, ahead::INLINE_LIMIT)
}

/// `validate_limited` that reads ahead on a second thread after `ahead_after` bytes (tests
/// compare the verdicts with and without the thread).
fn validate_tuned<R: BufRead + Send>(
    reader: R,
    hints: &Hints,
    max_markup: usize,
    ahead_after: u64,
) -> io::Result<Verdict> {
    Ok(dispatch::check(reader, max_markup, ahead_after)?.and_then(|found| finish(found, hints)))
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
