//! hostedscan-agent: watches directories for scanner reports, validates them, keeps a durable
//! copy, and uploads each to HostedScan until it is accepted.
//!
//! ```text
//!  notify events ─┐
//!  startup scan ──┼─► watch ──Settled──► admit ──QueuedEntry──► upload ──► archive/ (or deleted)
//!  periodic scan ─┘                  ▲     │ validate + Sha256 + durable copy       └─► failed/ (4xx)
//!  scheduled job ─► scanners ──Settled─┘     └─► rejected/ (RejectedFor + reason)
//! ```
//!
//! The modules are layered, each using only the layers below it (checked by
//! `tests/it/layers.rs`, drawn in README.md): base (`escape`, `exit`, `failpoint`, `shutdown`,
//! `untrusted`) → `validate` → `spool` → `config` → `report` (+ `metrics`, `notify`, `progress`) → `admit`
//! → the stages (`watch`, `jobs` → `scanners` → `gmp`, `upload`) → `app` → `commands` (with
//! `cli`, `status`, `logging`).
//!
//! Invariants:
//! 1. A file is in one place at a time (watch dir → queue → archive, or rejected/failed), and
//!    every move is a rename after an fsync. A crash anywhere is recovered by the start-up scan.
//! 2. Events are hints; the periodic scan is the guarantee. Both take the same code path.
//! 3. Channels are bounded; nothing is dropped without a safety net that picks it up again.
//! 4. Shutdown ([`shutdown::Shutdown`]): sources stop, each stage finishes or abandons the item
//!    in hand (an abandoned upload stays queued), then a bounded grace.
//! 5. The API is one shared resource: one shared outage state for it (down: one probe at a
//!    time), not one per file; a file's own retry delay lets a single failed file wait while
//!    the rest go on.
//! 6. A file keeps the IMPORTED source its watch or job named when it was admitted (in its queue
//!    record); "already uploaded" is per source, and a source HostedScan no longer knows holds
//!    its own files in `queue/`, never the others'. Files for `[source]` (a watch or job that
//!    names `[source]`'s own name counts as using it) follow `[source]` when a reload changes it.

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
pub mod progress;
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
