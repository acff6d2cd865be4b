//! What a format checker gives back, and the shape of an XML one. The dispatcher (above)
//! picks a checker from the root element or the top-level keys; the checker applies its
//! format's rules and returns a `Found` (or a `Rejection`); `validate` then applies the
//! configured hints. This file sits below the checkers and the dispatcher so both can name it
//! without either importing the other's internals.

use super::types::{Format, Rejection, ScanType};
use super::xml::Tag;

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

/// The rules of one XML format, fed the events after the root element (which the checker saw
/// when it was made) by the dispatcher, which also owns the parser and words its errors. Only
/// text can end the reading early: that is where a checker meets a payload it refuses.
pub(crate) trait XmlChecker {
    fn start(&mut self, tag: &Tag<'_>, depth: usize);

    fn end(&mut self, depth: usize);

    /// Whether `text` is ever called: text that no rule reads is not even made a string.
    const READS_TEXT: bool = false;

    fn text(&mut self, _text: &str, _depth: usize) -> Result<(), Rejection> {
        Ok(())
    }

    /// The verdict once the document ended well-formed.
    fn verdict(self) -> Result<Found, Rejection>;
}
