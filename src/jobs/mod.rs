//! Scheduled scans: the `[[job]]` entries of the config, run on their schedule, with what
//! happened to each remembered in the state directory.

mod crontab;
pub mod gmp;
pub mod history;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod spec;
pub mod supervise;
