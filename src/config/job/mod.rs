//! The validated form of a `[[job]]`: when it runs and for how long (the fields every job has),
//! and in [`ScannerJob`] one variant per scanner carrying exactly what that scanner needs, so
//! that a combination the config refuses (an openvas job without GMP settings, a command job
//! without a program, an nmap job without targets) cannot be built. What each scanner accepts
//! (its keys, scan types, target syntax, defaults, install hint) is checked in its own file
//! here; what a run executes is `crate::scanners`' business.

mod check;
mod command;
mod nmap;
mod openvas;
pub mod program;
mod sslyze;
pub mod target;
mod zap;
pub mod zap_plan;

use std::time::Duration;

use super::schedule::Schedule;
use crate::validate::{Hints, ScanType};

pub(super) use check::check_job;
use check::JobCheck;

pub use openvas::{
    Endpoint, OpenvasSettings, Polling, DEFAULT_GMP_PORT, DEFAULT_GMP_SOCKET, DEFAULT_MIN_QOD,
    DEFAULT_PORT_LIST, DEFAULT_REPLY_TIMEOUT, DEFAULT_SCANNER, DEFAULT_SCAN_CONFIG,
};
pub use target::TargetKind;
pub use zap::DEFAULT_ZAP_PATH;
pub use zap_plan::{Durations, ZapMode};

/// The placeholder for the run's output file (a path inside the run's private directory).
pub const OUTPUT: &str = "{output}";
/// The placeholder for the job's `target`.
pub const TARGET: &str = "{target}";
/// The placeholder for the job's `targets`: one argument per target.
pub const TARGETS: &str = "{targets}";

/// A job's timeout when the config gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// The `scanner` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scanner {
    Nmap,
    Zap,
    Openvas,
    Sslyze,
    Command,
}

impl Scanner {
    pub const ALL: [Scanner; 5] = [
        Scanner::Nmap,
        Scanner::Zap,
        Scanner::Openvas,
        Scanner::Sslyze,
        Scanner::Command,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Scanner::Nmap => "nmap",
            Scanner::Zap => "zap",
            Scanner::Openvas => "openvas",
            Scanner::Sslyze => "sslyze",
            Scanner::Command => "command",
        }
    }

    /// The config spelling (exact, lower case); `None` for anything else.
    pub fn parse(s: &str) -> Option<Scanner> {
        Scanner::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The scan type when the job says `auto` (or nothing): `None` lets validation decide
    /// (NMAP or NMAP_UDP from the scaninfo; OWASP_ZAP for a ZAP report).
    pub fn default_scan_type(&self) -> Option<ScanType> {
        match self {
            Scanner::Nmap => nmap::DEFAULT_SCAN_TYPE,
            Scanner::Zap => zap::DEFAULT_SCAN_TYPE,
            Scanner::Openvas => openvas::DEFAULT_SCAN_TYPE,
            Scanner::Sslyze => sslyze::DEFAULT_SCAN_TYPE,
            Scanner::Command => command::DEFAULT_SCAN_TYPE,
        }
    }

    /// The scan types this scanner's reports can be uploaded as.
    pub fn scan_types(&self) -> &'static [ScanType] {
        match self {
            Scanner::Nmap => nmap::SCAN_TYPES,
            Scanner::Zap => zap::SCAN_TYPES,
            Scanner::Openvas => openvas::SCAN_TYPES,
            Scanner::Sslyze => sslyze::SCAN_TYPES,
            Scanner::Command => command::SCAN_TYPES,
        }
    }

    /// What its targets may look like.
    pub fn target_kind(&self) -> TargetKind {
        match self {
            Scanner::Nmap => nmap::TARGET_KIND,
            Scanner::Zap => zap::TARGET_KIND,
            Scanner::Openvas => openvas::TARGET_KIND,
            Scanner::Sslyze => sslyze::TARGET_KIND,
            Scanner::Command => command::TARGET_KIND,
        }
    }

    /// What to tell an operator whose machine lacks the scanner.
    pub fn install_hint(&self) -> &'static str {
        match self {
            Scanner::Nmap => nmap::INSTALL_HINT,
            Scanner::Zap => zap::INSTALL_HINT,
            Scanner::Openvas => openvas::INSTALL_HINT,
            Scanner::Sslyze => sslyze::INSTALL_HINT,
            Scanner::Command => command::INSTALL_HINT,
        }
    }

    /// The scanner-specific keys (of [`SCANNER_KEYS`]) this scanner takes.
    fn keys(&self) -> &'static [&'static str] {
        match self {
            Scanner::Nmap => nmap::KEYS,
            Scanner::Zap => zap::KEYS,
            Scanner::Openvas => openvas::KEYS,
            Scanner::Sslyze => sslyze::KEYS,
            Scanner::Command => command::KEYS,
        }
    }
}

impl std::fmt::Display for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A list of targets that is not empty (nmap, sslyze and openvas need one to scan anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets(Vec<String>);

impl Targets {
    /// `None` for an empty list.
    pub fn new(targets: Vec<String>) -> Option<Targets> {
        (!targets.is_empty()).then_some(Targets(targets))
    }
}

impl std::ops::Deref for Targets {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.0
    }
}

/// A `command` job's argv as written: a program and its arguments, never empty. The
/// placeholders are still in; a program given as a path is absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv(Vec<String>);

impl Argv {
    /// `None` for an empty list.
    pub fn new(argv: Vec<String>) -> Option<Argv> {
        (!argv.is_empty()).then_some(Argv(argv))
    }

    pub fn program(&self) -> &str {
        &self.0[0]
    }

    /// The arguments after the program.
    pub fn args(&self) -> &[String] {
        &self.0[1..]
    }
}

impl std::ops::Deref for Argv {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.0
    }
}

/// `scanner = "nmap"`: `nmap <args> -oX {output} <targets>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmapJob {
    /// `nmap` (found in PATH at load).
    pub program: String,
    pub args: Vec<String>,
    /// `privileged = true`: nmap is told it has raw-socket rights (given by capabilities).
    pub privileged: bool,
    pub targets: Targets,
}

/// `scanner = "zap"`: one URL scanned by ZAP's Automation Framework.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZapJob {
    /// `zap_path` ([`DEFAULT_ZAP_PATH`] by default), absolute when given as a path.
    pub program: String,
    pub args: Vec<String>,
    /// The URL; it passed [`target::check_target`] as a URL.
    pub target: String,
    /// `mode`: passive (default) or active; it decides the scan type.
    pub mode: ZapMode,
    /// The plan ZAP runs.
    pub plan: ZapPlan,
}

/// Which Automation Framework plan a zap job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZapPlan {
    /// Written by the agent at each run ([`zap_plan::generated_plan`]).
    Generated {
        /// `ajax_spider = true`: a `spiderAjax` job after the spider.
        ajax_spider: bool,
        /// From the job's timeout.
        durations: Durations,
    },
    /// `plan = "..."`: the operator's file (absolute), read and adjusted at each run
    /// ([`zap_plan::adjust_user_plan`]); checked at load.
    User(std::path::PathBuf),
}

/// `scanner = "sslyze"`: `sslyze <args> --json_out {output} <targets>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslyzeJob {
    /// `sslyze` (found in PATH at load).
    pub program: String,
    pub args: Vec<String>,
    pub targets: Targets,
}

/// `scanner = "openvas"`: a scan run by gvmd over GMP; no process is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenvasJob {
    /// Each one a host gvmd understands ([`target::check_gvmd_host`]).
    pub targets: Targets,
    pub settings: OpenvasSettings,
}

/// `scanner = "command"`: `command` run as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandJob {
    pub argv: Argv,
    /// Set whenever the command uses `{target}`.
    pub target: Option<String>,
    /// Not empty whenever the command uses `{targets}`.
    pub targets: Vec<String>,
}

/// What a job scans with: one variant per scanner, each with exactly its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerJob {
    Nmap(NmapJob),
    Zap(ZapJob),
    Sslyze(SslyzeJob),
    Openvas(OpenvasJob),
    Command(CommandJob),
}

impl ScannerJob {
    pub fn scanner(&self) -> Scanner {
        match self {
            ScannerJob::Nmap(_) => Scanner::Nmap,
            ScannerJob::Zap(_) => Scanner::Zap,
            ScannerJob::Sslyze(_) => Scanner::Sslyze,
            ScannerJob::Openvas(_) => Scanner::Openvas,
            ScannerJob::Command(_) => Scanner::Command,
        }
    }

    /// The `targets` (empty for zap, and for a command job without them).
    pub fn targets(&self) -> &[String] {
        match self {
            ScannerJob::Nmap(j) => &j.targets,
            ScannerJob::Sslyze(j) => &j.targets,
            ScannerJob::Openvas(j) => &j.targets,
            ScannerJob::Command(j) => &j.targets,
            ScannerJob::Zap(_) => &[],
        }
    }

    /// The scan type the job's settings decide (a zap job's mode), if any.
    pub fn scan_type(&self) -> Option<ScanType> {
        match self {
            ScannerJob::Zap(j) => Some(j.mode.scan_type()),
            _ => None,
        }
    }

    /// The `target` (zap's URL, or a command job's).
    pub fn target(&self) -> Option<&str> {
        match self {
            ScannerJob::Zap(j) => Some(&j.target),
            ScannerJob::Command(j) => j.target.as_deref(),
            _ => None,
        }
    }
}

/// One `[[job]]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub name: String,
    pub schedule: Schedule,
    /// Default [`DEFAULT_TIMEOUT`] (4h).
    pub timeout: Duration,
    /// Default 0.
    pub jitter: Duration,
    /// Default false.
    pub catch_up: bool,
    /// What admission is told about the output: the job's scan_type (or the scanner's
    /// default), the zap/command `target`, and `accept_partial`.
    pub hints: Hints,
    /// The scanner and its settings.
    pub kind: ScannerJob,
    /// Where its reports go (`source` / `source_id`; `[source]` by default).
    pub source: super::source::SourceChoice,
}

impl JobSpec {
    /// Where its reports go: its source, and itself as their origin.
    pub fn destination(&self) -> crate::spool::source::Destination {
        crate::spool::source::Destination {
            source: self.source.source.clone(),
            origin: Some(crate::spool::source::Origin::Job(self.name.clone())),
        }
    }

    pub fn scanner(&self) -> Scanner {
        self.kind.scanner()
    }

    /// The GMP settings of an openvas job.
    pub fn openvas(&self) -> Option<&OpenvasSettings> {
        match &self.kind {
            ScannerJob::Openvas(o) => Some(&o.settings),
            _ => None,
        }
    }

    /// As [`JobSpec::openvas`], to change (tests speed up the polling).
    pub fn openvas_mut(&mut self) -> Option<&mut OpenvasSettings> {
        match &mut self.kind {
            ScannerJob::Openvas(o) => Some(&mut o.settings),
            _ => None,
        }
    }
}
