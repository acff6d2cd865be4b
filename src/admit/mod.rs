//! Admission: the one read of a settled file, and what becomes of it. The file is opened once,
//! through the handle of its watch root (no link followed, never a FIFO or device: see
//! `crate::untrusted`); its bytes flow once through the validator, SHA-256 and a private copy
//! in the state directory (or, without a second write: a reflink clone, validated and hashed
//! itself, or a job's own output moved in); a valid copy is committed to `queue/` before the
//! original leaves.
//!
//! - [`settled`]: what admission is handed (a [`Settled`] file and its [`Fingerprint`]).
//! - [`read`]: the single read (tee to validator, hasher and writer of the copy).
//! - [`admitter`]: the decision for one file and its effects on the spool (or none: dry run).
//! - [`room`](mod@room): room in the state file system for the copies, reserved by those being made.
//! - [`stage`]: the admission stage the watch directories, job runs and `--dry-run` go
//!   through: a few files at a time, each outcome logged, recorded and handed on.

pub mod admitter;
pub mod read;
pub mod room;
pub mod settled;
pub mod stage;

pub use admitter::{Admitted, Admitter, Custody};
pub use read::check;
pub use settled::{Fingerprint, Settled};
pub use stage::{Admission, Feedback};
