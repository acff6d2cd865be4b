//! A standalone, streaming XML pull parser: `XmlPull` turns a `BufRead` (a `Source`, which
//! may hand its blocks over whole instead of having them copied) into `Node` events
//! (start tag, end, text, end of document) and stops at the first well-formedness problem or
//! hardening refusal with an `XmlError` (a byte offset and a typed `ErrorKind`). It imports
//! nothing of the crate, not even the validator above it, which reads the events and words
//! the errors for users.
//!
//! Inside: `pull` (the parser and its buffering; `pull/prolog.rs` for what precedes the root),
//! `markup` (byte-level syntax of tags, DOCTYPE and declaration), `index` (start tags scanned
//! ahead on another thread, looked up by the parser), `chars` (character classes and
//! references), `tag` (a start tag's name and attributes, read on demand) and `error`.

mod chars;
mod error;
mod index;
mod markup;
mod pull;
mod tag;
#[cfg(test)]
mod tests;

pub(crate) use error::{AttrProblem, ErrorKind, XmlError};
pub(crate) use index::{Mark, Prescan, Scanned, TagIndex};
pub(crate) use pull::{Node, Source, XmlPull, MAX_MARKUP};
pub(crate) use tag::Tag;
