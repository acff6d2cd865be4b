//! A GMP (Greenbone Management Protocol) client: a session with gvmd over its Unix socket or
//! TLS, the login, one command at a time with its status checked, and a report streamed into
//! a file. What an `openvas` job does with it (target, task, start, poll, fetch) is
//! `crate::scanners::openvas`; where gvmd is and who logs in are the config's [`Endpoint`]
//! and `OpenvasSettings`.
//!
//! It reads XML with quick-xml, beside the crate's own pull parser in `validate`: that one is a
//! strict validating reader of untrusted files on disk, while GMP needs a small
//! request/response reader with async framing over a socket (a response ends when its root
//! element closes) and a streaming copy of one child element.

mod conn;
mod xml;

pub use crate::config::Endpoint;
pub use conn::{GmpError, Session};
pub use xml::{escape, Element};
