//! Scheduled scans: the `[[job]]` entries of the config (`crate::config::JobSpec`), run on
//! their schedule, with what happened to each remembered in the state directory. What each
//! scanner runs is `crate::scanners`; here is only running: one run end to end (`runner`),
//! the schedule loop (`scheduler`), the scanner's process group (`supervise`) and
//! `jobs.json` (`history`).

pub mod history;
pub mod runner;
pub mod scheduler;
pub mod supervise;
