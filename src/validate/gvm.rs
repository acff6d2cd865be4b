//! GVM/OpenVAS XML report rules. Accepts the export/GSA shape (outer `report` wrapping the
//! inner `report`), the same wrapped in a raw `get_reports_response`, and the legacy bare inner
//! report (with a warning). Rejects error responses, base64 payloads (non-XML formats fetched
//! over GMP), reports without `results`, and — as partial — unfinished scans and result pages
//! that may have been cut by pagination.

use super::checker::{Found, XmlChecker};
use super::input::is_ws;
use super::types::{reject, Format, RejectKind, Rejection, ScanType};
use super::xml::Tag;

const XML_FORMAT: &str = "a994b278-1f62-11e1-96ac-406186ea4fc5";
/// Captured element text is only ever a status word or a number.
const MAX_CAPTURE: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Capture {
    None,
    Status,
    ErrorCount,
    ScanEnd,
}

/// What the rules need from a GVM report document, gathered as it streams by.
pub(crate) struct Scan {
    /// The root is `get_reports_response` (the raw GMP answer) rather than the export's `report`.
    wrapped: bool,
    /// Depth of the outer `report` (1, or 2 inside `get_reports_response`), once seen.
    outer: Option<usize>,
    outer_format_id: Option<String>,
    /// Depth of the innermost open GVM report element whose children we read.
    ctx: Option<usize>,
    nested: bool,
    /// Depth of the open `results` element.
    results_depth: Option<usize>,
    results_seen: bool,
    results_max: Option<String>,
    results_start: Option<String>,
    results_in_outer: bool,
    result_count: u64,
    in_errors: Option<usize>,
    capture: Capture,
    capture_depth: usize,
    text: String,
    status: Option<String>,
    error_count: Option<String>,
    scan_end: Option<String>,
}

impl Scan {
    /// Checks the root element: a `get_reports_response` must be a success.
    pub(crate) fn new(root: &Tag<'_>) -> Result<Scan, Rejection> {
        let wrapped = root.name() == "get_reports_response";
        if wrapped {
            let status = root.attr("status").unwrap_or_default();
            if !status.starts_with('2') {
                let text = root.attr("status_text").unwrap_or_default();
                return Err(reject(
                    Format::GvmXml,
                    RejectKind::ScanFailed,
                    format!(
                        "gvmd answered get_reports with status=\"{status}\" (\"{text}\"), not a \
                     report: check the report id, format id and permissions, then fetch it again"
                    ),
                ));
            }
        }
        let mut s = Scan {
            wrapped,
            outer: None,
            outer_format_id: None,
            ctx: None,
            nested: false,
            results_depth: None,
            results_seen: false,
            results_max: None,
            results_start: None,
            results_in_outer: false,
            result_count: 0,
            in_errors: None,
            capture: Capture::None,
            capture_depth: 0,
            text: String::new(),
            status: None,
            error_count: None,
            scan_end: None,
        };
        if !wrapped {
            s.outer = Some(1);
            s.ctx = Some(1);
            s.outer_format_id = root.attr("format_id");
        }
        Ok(s)
    }

    fn begin(&mut self, what: Capture, depth: usize) {
        self.capture = what;
        self.capture_depth = depth;
        self.text.clear();
    }
}

fn base64(format_id: Option<&str>) -> Rejection {
    let fmt = format_id
        .map(|f| format!(" (format_id {f})"))
        .unwrap_or_default();
    reject(
        Format::GvmXml,
        RejectKind::Unsupported,
        format!(
            "the GVM report holds base64 text instead of XML: a non-XML report format{fmt} was \
             fetched over GMP; export with the XML report format ({XML_FORMAT})"
        ),
    )
}

impl XmlChecker for Scan {
    fn start(&mut self, tag: &Tag<'_>, depth: usize) {
        let name = tag.name();
        if self.wrapped && depth == 2 && name == "report" && self.outer.is_none() {
            self.outer = Some(2);
            self.ctx = Some(2);
            self.outer_format_id = tag.attr("format_id");
            return;
        }
        let Some(ctx) = self.ctx else { return };
        if depth != ctx + 1 {
            if let (Some(rd), "result") = (self.results_depth, name) {
                if depth == rd + 1 {
                    self.result_count += 1;
                }
            }
            if let (Some(ed), "count") = (self.in_errors, name) {
                if depth == ed + 1 {
                    self.begin(Capture::ErrorCount, depth);
                }
            }
            return;
        }
        match name {
            "report" if !self.nested && Some(ctx) == self.outer => {
                self.nested = true;
                self.ctx = Some(depth);
            }
            "results" if !self.results_seen => {
                self.results_depth = Some(depth);
                self.results_seen = true;
                self.results_max = tag.attr("max");
                self.results_start = tag.attr("start");
                self.results_in_outer = !self.nested;
            }
            "scan_run_status" => self.begin(Capture::Status, depth),
            "scan_end" => self.begin(Capture::ScanEnd, depth),
            "errors" => self.in_errors = Some(depth),
            _ => {}
        }
    }

    const READS_TEXT: bool = true;

    fn text(&mut self, text: &str, depth: usize) -> Result<(), Rejection> {
        if self.outer == Some(depth) && !self.nested && text.bytes().any(|b| !is_ws(b)) {
            return Err(base64(self.outer_format_id.as_deref()));
        }
        if self.capture != Capture::None && depth == self.capture_depth {
            let room = MAX_CAPTURE.saturating_sub(self.text.len());
            self.text.extend(text.chars().take(room));
        }
        Ok(())
    }

    fn end(&mut self, depth: usize) {
        if self.capture != Capture::None && depth == self.capture_depth {
            let text = self.text.trim().to_string();
            match self.capture {
                Capture::Status => self.status = Some(text),
                Capture::ErrorCount => self.error_count = Some(text),
                Capture::ScanEnd => self.scan_end = Some(text),
                Capture::None => {}
            }
            self.capture = Capture::None;
        }
        if self.results_depth == Some(depth) {
            self.results_depth = None;
        }
        if self.in_errors == Some(depth) {
            self.in_errors = None;
        }
        if self.nested && self.ctx == Some(depth) {
            self.ctx = self.outer;
        }
    }

    fn verdict(self) -> Result<Found, Rejection> {
        let wrapped = self.wrapped;
        if self.outer.is_none() {
            return Err(reject(
                Format::GvmXml,
                RejectKind::NotAReport,
                "the get_reports_response holds no <report>",
            ));
        }
        if !self.results_seen {
            return Err(reject(
                Format::GvmXml,
                RejectKind::NotAReport,
                "the GVM <report> has no <results> element, so it is not a scan report (an asset \
                 or summary export?); export the scan's report with the XML report format \
                 (a994b278-1f62-11e1-96ac-406186ea4fc5)",
            ));
        }
        let mut found = Found {
            format: Some(Format::GvmXml),
            scan_type: Some(ScanType::Openvas),
            ..Found::default()
        };
        let mut partial = Vec::new();
        match self.status.as_deref() {
            None => found.warnings.push(
                "the report has no scan_run_status (an old export), so it cannot show that the \
                 scan finished"
                    .to_string(),
            ),
            Some("Done") => {
                if self.scan_end.as_deref() == Some("") {
                    found
                        .warnings
                        .push("scan_run_status is Done but scan_end is empty".to_string());
                }
            }
            Some(other) => partial.push(format!(
                "scan_run_status is \"{other}\", not Done: the scan did not finish; re-run it (or \
                 wait for it) and export again"
            )),
        }
        if let Some(max) = self.results_max.as_deref().map(str::trim) {
            if let Ok(max) = max.parse::<i64>() {
                if max >= 0 && self.result_count == max as u64 {
                    partial.push(format!(
                        "the export holds exactly results max=\"{max}\" results, so it is one page \
                         and may be cut by pagination: export with rows=-1 / ignore_pagination=1 \
                         (python-gvm: get_report(..., ignore_pagination=True))"
                    ));
                }
            }
        }
        if let Some(start) = self.results_start.as_deref().map(str::trim) {
            if start.parse::<u64>().is_ok_and(|n| n > 1) {
                partial.push(format!(
                    "the export starts at result {start} (results start=\"{start}\"), so it is a \
                     later page and earlier results are missing: export with first=1 and rows=-1 \
                     / ignore_pagination=1"
                ));
            }
        }
        if !partial.is_empty() {
            found.partial = Some(partial.join("; "));
        }
        if let Some(n) = self.error_count.as_deref() {
            if let Ok(n) = n.parse::<u64>() {
                if n > 0 {
                    found.warnings.push(format!(
                        "GVM recorded {n} scan error(s) (errors/count); some hosts or tests may be \
                         missing"
                    ));
                }
            }
        }
        let legacy = self.results_in_outer || (!wrapped && self.outer_format_id.is_none());
        if legacy {
            found.warnings.push(
                "legacy GVM report shape (a bare inner report without the export attributes); \
                 accepted"
                    .to_string(),
            );
        }
        Ok(found)
    }
}
