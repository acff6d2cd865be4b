//! Fault injection for the crash and disk-fault tests: named points on the state directory's
//! commit path where a test (through the `FAILPOINTS` variable, `--features failpoints` builds
//! only) makes the agent die as by `kill -9` or an operation fail with ENOSPC or EIO: the moments
//! a signal from outside cannot hit reliably. Without the feature every point compiles to nothing.
//!
//! `FAILPOINTS="ledger-record=1*return(kill)"` kills the agent the first time an accepted upload
//! is about to be written to the ledger; `return(enospc)` / `return(eio)` make that operation fail
//! instead (see the fail crate for counts and sequences). The points:
//!
//! | point | where |
//! |---|---|
//! | `admit-sync` | fsync of an admitted file's copy in `tmp/` (with its record, for a valid one) |
//! | `queue-record-attach` | an admitted file's record is put on its copy (an error: the file system keeps no such attribute, so the record gets a file of its own) |
//! | `queue-commit` | between the durable copy and record and the copy's rename into `queue/` (the commit point) |
//! | `admit-after-commit` | a file is committed to `queue/`, its original not yet removed |
//! | `ledger-record` | a 2xx has arrived, the ledger line is not yet written |
//! | `spool-finish` | uploaded and in the ledger, the queued copy not yet cleared |
//! | `ledger-compact-start` | a compaction of the ledger (before a record) is about to retire `ledger.jsonl` |
//! | `ledger-compact-retired` | `ledger.jsonl` is retired to `ledger-history/`, the new index not yet written |
//! | `ledger-compact-index` | the new `ledger.index` is written and synced under its temporary name, not yet renamed |
//! | `watch-overflow` | each file notification, lost as when the kernel's queue overflows (`return`) |
//! | `admit-open` | admission is about to open a settled file (`sleep(ms)`: a window for a test to swap it) |

use std::io;

/// A point in a function returning `io::Result`: `return(kill)` kills the process there,
/// `return(enospc)` / `return(eio)` (or any other text) make the function fail with that error.
#[cfg(feature = "failpoints")]
macro_rules! failpoint {
    ($name:literal) => {
        fail::fail_point!($name, |arg: Option<String>| Err($crate::failpoint::fire(
            $name, arg
        )))
    };
}

#[cfg(not(feature = "failpoints"))]
macro_rules! failpoint {
    ($name:literal) => {};
}

pub(crate) use failpoint;

/// A point that can only delay (`sleep(ms)`, `pause`): for tests that act in the window.
#[cfg(feature = "failpoints")]
pub fn pause(name: &str) {
    fail::fail_point!(name);
}

#[cfg(not(feature = "failpoints"))]
pub fn pause(_name: &str) {}

/// What a configured point does: never returns for `kill`, else the error to fail with.
pub fn fire(name: &str, arg: Option<String>) -> io::Error {
    match arg.as_deref() {
        Some("kill") => {
            // SIGKILL to ourselves: no destructor, flush or atexit runs, exactly as `kill -9`.
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            loop {
                std::thread::park();
            }
        }
        Some("enospc") => io::Error::from_raw_os_error(28),
        Some("eio") => io::Error::from_raw_os_error(5),
        other => io::Error::other(format!(
            "failpoint {name}: {}",
            other.unwrap_or("injected failure")
        )),
    }
}

/// Arms the points named in `FAILPOINTS` for the life of the process (the binary's `main`).
#[cfg(feature = "failpoints")]
pub fn setup() -> impl Drop {
    fail::FailScenario::setup()
}
