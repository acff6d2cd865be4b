//! hostedscan-agent: watches directories for scanner reports, validates them, keeps a durable
//! copy, and uploads each to HostedScan until it is accepted.
//!
//! ```text
//!  notify events ─┐
//!  startup scan ──┼─► Candidate ─► settle ─► admit (validate + sha256 + durable copy) ─► queue/ ─► upload ─► archive/
//!  periodic scan ─┘                            └─► rejected/ (with reason)                           └─► failed/ (4xx)
//! ```
//!
//! Invariants:
//! 1. A file is in one place at a time (watch dir → queue → archive, or rejected/failed), and
//!    every move is a rename after an fsync. A crash anywhere is recovered by the start-up scan.
//! 2. Events are hints; the periodic scan is the guarantee. Both take the same code path.
//! 3. Channels are bounded; nothing is dropped without a safety net that picks it up again.
//! 4. Shutdown: sources stop, each stage finishes or abandons the item in hand (an abandoned
//!    upload stays queued), then a bounded grace.
//! 5. The API is one shared resource: one backoff for it, not one per file.

pub mod admit;
pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod escape;
pub mod exit;
pub mod failpoint;
pub mod gmp;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod report;
pub mod scanners;
pub mod shutdown;
pub mod spool;
pub mod status;
pub mod untrusted;
pub mod upload;
pub mod validate;
pub mod watch;

pub use app::{run, run_once};
