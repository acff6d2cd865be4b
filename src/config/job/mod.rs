//! The validated form of a `[[job]]`: when it runs and for how long (the fields every job has),
//! and in [`ScannerJob`] one variant per scanner carrying exactly what that scanner needs, so
//! that a combination the config refuses (an openvas job without GMP settings, a command job
//! without a program, an nmap job without targets) cannot be built. What each scanner accepts
//! (its keys, scan types, target syntax, defaults, install hint) is checked in its own file
//! here; what a run executes is `crate::scanners`' business.

mod command;
mod nmap;
mod openvas;
pub mod program;
mod sslyze;
pub mod target;
mod zap;

use std::time::Duration;

use super::raw::RawJob;
use super::schedule::Schedule;
use super::Checker;
use crate::validate::{Hints, ScanType};

pub use openvas::{
    Endpoint, OpenvasSettings, Polling, DEFAULT_GMP_PORT, DEFAULT_GMP_SOCKET, DEFAULT_MIN_QOD,
    DEFAULT_PORT_LIST, DEFAULT_REPLY_TIMEOUT, DEFAULT_SCANNER, DEFAULT_SCAN_CONFIG,
};
pub use target::TargetKind;
pub use zap::DEFAULT_ZAP_PATH;

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

/// `scanner = "zap"`: one URL scanned by ZAP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZapJob {
    /// `zap_path` ([`DEFAULT_ZAP_PATH`] by default), absolute when given as a path.
    pub program: String,
    pub args: Vec<String>,
    /// The URL; it passed [`target::check_target`] as a URL.
    pub target: String,
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
#[derive(Debug, Clone)]
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
}

impl JobSpec {
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

/// `Hints` (of `validate`) has no `PartialEq`: compared field by field.
pub(crate) fn same_hints(a: &Hints, b: &Hints) -> bool {
    a.scan_type == b.scan_type && a.target == b.target && a.accept_partial == b.accept_partial
}

impl PartialEq for JobSpec {
    fn eq(&self, other: &JobSpec) -> bool {
        self.name == other.name
            && self.schedule == other.schedule
            && self.timeout == other.timeout
            && self.jitter == other.jitter
            && self.catch_up == other.catch_up
            && same_hints(&self.hints, &other.hints)
            && self.kind == other.kind
    }
}

impl Eq for JobSpec {}

/// The keys that only some scanners take, in the order their problems are reported.
const SCANNER_KEYS: [&str; 17] = [
    "targets",
    "target",
    "args",
    "command",
    "privileged",
    "zap_path",
    "gmp_socket",
    "gmp_host",
    "gmp_port",
    "gmp_username",
    "gmp_password_file",
    "port_list_id",
    "scan_config_id",
    "scanner_id",
    "gmp_ca_file",
    "min_qod",
    "cleanup",
];

/// Whether `j` gives scanner-specific key `k`.
fn given(j: &RawJob, k: &str) -> bool {
    match k {
        "targets" => j.targets.is_some(),
        "target" => j.target.is_some(),
        "args" => j.args.is_some(),
        "command" => j.command.is_some(),
        "privileged" => j.privileged.is_some(),
        "zap_path" => j.zap_path.is_some(),
        "gmp_socket" => j.gmp_socket.is_some(),
        "gmp_host" => j.gmp_host.is_some(),
        "gmp_port" => j.gmp_port.is_some(),
        "gmp_username" => j.gmp_username.is_some(),
        "gmp_password_file" => j.gmp_password_file.is_some(),
        "port_list_id" => j.port_list_id.is_some(),
        "scan_config_id" => j.scan_config_id.is_some(),
        "scanner_id" => j.scanner_id.is_some(),
        "gmp_ca_file" => j.gmp_ca_file.is_some(),
        "min_qod" => j.min_qod.is_some(),
        "cleanup" => j.cleanup.is_some(),
        _ => unreachable!("not a scanner key: {k}"),
    }
}

/// What a scanner's own check works with: the raw entry, how its keys are named, where
/// problems and warnings go, and whether `targets`/`target` may be used (given keys that
/// belong to another scanner are already reported).
pub(super) struct JobCheck<'a> {
    pub c: &'a mut Checker,
    pub warnings: &'a mut Vec<String>,
    pub i: usize,
    pub j: &'a RawJob,
    pub path_var: Option<&'a str>,
    pub scanner: Scanner,
    pub targets_ok: bool,
    pub target_ok: bool,
}

impl JobCheck<'_> {
    pub fn key(&self, k: &str) -> String {
        format!("job[{}].{k}", self.i)
    }

    /// The `targets`, each checked by `check`; with `required`, at least one.
    pub fn targets(
        &mut self,
        required: bool,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Vec<String> {
        let targets = if self.targets_ok {
            self.j.targets.clone().unwrap_or_default()
        } else {
            Vec::new()
        };
        if required && targets.is_empty() {
            self.c.push(
                self.key("targets"),
                format!(
                    "is required for scanner = \"{}\": list what to scan, e.g. targets = [\"10.0.0.0/24\"]",
                    self.scanner
                ),
            );
        }
        for t in &targets {
            if let Err(e) = check(t) {
                self.c.push(self.key("targets"), e);
            }
        }
        targets
    }

    /// The `target`, checked against this scanner's kind of target.
    pub fn target(&mut self) -> Option<String> {
        let target = if self.target_ok {
            self.j.target.clone()
        } else {
            None
        };
        if let Some(t) = &target {
            if let Err(e) = target::check_target(t, self.scanner.target_kind()) {
                self.c.push(self.key("target"), e);
            }
        }
        target
    }

    /// A preset's program looked up (`program_key` names the key to fix when it is missing).
    /// A path is made absolute: runs do not start in the agent's directory.
    pub fn program(&mut self, program: &str, program_key: &str) -> String {
        match program::find_program(program, self.path_var) {
            Ok(found) if program.contains('/') => found.to_string_lossy().into_owned(),
            Ok(_) => program.to_string(),
            Err(e) => {
                self.c.push(
                    self.key(program_key),
                    format!("{e}: {}", self.scanner.install_hint()),
                );
                program.to_string()
            }
        }
    }

    /// A preset's `args`, with its program checked for NUL characters too, and a warning for
    /// each placeholder written inside other text.
    pub fn preset_args(&mut self, program: &str) -> Vec<String> {
        let args = self.j.args.clone().unwrap_or_default();
        if let Some(i) = args.iter().position(|a| a.contains('\0')) {
            self.c.push(
                format!("{}[{i}]", self.key("args")),
                "contains a NUL character",
            );
        } else if program.contains('\0') {
            self.c
                .push(self.key("args"), "the program contains a NUL character");
        } else {
            self.placeholder_warnings("args", &args);
        }
        args
    }

    /// An argument is named by its place in the list the operator wrote (`command`, or a
    /// preset's `args`), never by its text: it may hold a credential, and these messages reach
    /// check-config's output and the log.
    pub fn placeholder_warnings(&mut self, list_key: &str, written: &[String]) {
        for (i, a) in written.iter().enumerate() {
            if let Some(p) = [OUTPUT, TARGET, TARGETS]
                .iter()
                .find(|p| a.contains(**p) && a != **p)
            {
                self.warnings.push(format!(
                    "{}[{i}]: contains {p} inside other text; placeholders replace whole arguments \
                     only, so it is passed as written: make {p} an argument of its own",
                    self.key(list_key)
                ));
            }
        }
    }
}

/// One `[[job]]` checked and turned into its spec; `None` when it cannot be (the problems are
/// in `c`). Keys that belong to another scanner are problems, like unknown keys: a `zap_path`
/// on an nmap job is a misunderstanding the operator should hear about, not a silent no-op.
pub(super) fn check(
    c: &mut Checker,
    warnings: &mut Vec<String>,
    i: usize,
    j: RawJob,
    path_var: Option<&str>,
) -> Option<JobSpec> {
    let key = |k: &str| format!("job[{i}].{k}");
    let scanner = Scanner::parse(&j.scanner);
    if scanner.is_none() {
        c.push(
            key("scanner"),
            format!(
                "{:?} is not one of nmap, zap, openvas, sslyze, command",
                j.scanner
            ),
        );
    }
    let timezone = j.timezone.as_deref().unwrap_or("local");
    let schedule = match Schedule::parse(&j.schedule, timezone) {
        Ok(s) => Some(s),
        Err(e) if e.is_timezone() => {
            c.push(key("timezone"), e.to_string());
            // The expression may be wrong too: report both at once.
            if let Err(e) = Schedule::parse(&j.schedule, "UTC") {
                c.push(key("schedule"), e.to_string());
            }
            None
        }
        Err(e) => {
            c.push(key("schedule"), e.to_string());
            None
        }
    };
    let timeout = match &j.timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => {
            let before = c.problems.len();
            let d = c.duration(&key("timeout"), t);
            if d.is_zero() && c.problems.len() == before {
                c.push(
                    key("timeout"),
                    "must be more than 0s (the default is \"4h\")",
                );
            }
            d
        }
    };
    let jitter = j
        .jitter
        .as_deref()
        .map_or(Duration::ZERO, |t| c.duration(&key("jitter"), t));
    if let Some(s) = &schedule {
        schedule_warnings(warnings, &j.name, s, jitter);
    }
    let scan_type = c.scan_type(&key("scan_type"), j.scan_type.as_deref().unwrap_or("auto"));
    let scanner = scanner?;
    if let Some(t) = scan_type {
        if !scanner.scan_types().contains(&t) {
            let fits: Vec<&str> = scanner.scan_types().iter().map(|t| t.as_str()).collect();
            c.push(
                key("scan_type"),
                format!(
                    "{t} does not fit scanner = \"{scanner}\": use \"auto\" or {}",
                    fits.join(" or ")
                ),
            );
        }
    }

    // Keys for other scanners.
    let mut applies = |k: &str| {
        if !given(&j, k) || scanner.keys().contains(&k) {
            return true;
        }
        let hint = match (k, scanner) {
            ("command", _) => format!(
                "the {scanner} preset builds its own command line: put extra scanner arguments in args, or use scanner = \"command\""
            ),
            ("targets", Scanner::Zap) => {
                "a zap job scans one URL: use target = \"https://...\"".into()
            }
            ("target", _) => "use targets = [...] (a list)".into(),
            ("args", Scanner::Command) => "put every argument in command".into(),
            _ => {
                let names: Vec<String> = Scanner::ALL
                    .iter()
                    .filter(|s| s.keys().contains(&k))
                    .map(|s| format!("\"{s}\""))
                    .collect();
                format!("it is for scanner = {} only", names.join(" or "))
            }
        };
        c.push(
            key(k),
            format!("does not apply to scanner = \"{scanner}\": {hint}"),
        );
        false
    };
    let mut targets_ok = true;
    let mut target_ok = true;
    for k in SCANNER_KEYS {
        let ok = applies(k);
        match k {
            "targets" => targets_ok = ok,
            "target" => target_ok = ok,
            _ => {}
        }
    }

    let mut check = JobCheck {
        c,
        warnings,
        i,
        j: &j,
        path_var,
        scanner,
        targets_ok,
        target_ok,
    };
    let before = check.c.problems.len();
    let kind = match scanner {
        Scanner::Nmap => nmap::check(&mut check),
        Scanner::Zap => zap::check(&mut check),
        Scanner::Sslyze => sslyze::check(&mut check),
        Scanner::Openvas => openvas::check(&mut check),
        Scanner::Command => command::check(&mut check),
    };
    // A job with a problem is not built: the whole config is refused anyway.
    let kind = kind.filter(|_| check.c.problems.len() == before)?;
    Some(JobSpec {
        schedule: schedule?,
        timeout,
        jitter,
        catch_up: j.catch_up.unwrap_or(false),
        hints: Hints {
            scan_type: scan_type.or(scanner.default_scan_type()),
            target: kind.target().map(str::to_string),
            accept_partial: j.accept_partial.unwrap_or(false),
        },
        name: j.name,
        kind,
    })
}

/// A schedule with no future time, or a jitter as long as the time between runs, is allowed
/// but surprising: said as a warning.
fn schedule_warnings(warnings: &mut Vec<String>, name: &str, s: &Schedule, jitter: Duration) {
    let now = chrono::Utc::now();
    match s.next_after(now) {
        None => warnings.push(format!(
            "job {name:?}: schedule {:?} has no future time (its years have passed); it will not run",
            s.expr()
        )),
        Some(first) => {
            let gap = s.next_after(first).map(|second| second - first);
            if let Some(gap) = gap.and_then(|g| g.to_std().ok()) {
                if !jitter.is_zero() && jitter >= gap {
                    warnings.push(format!(
                        "job {name:?}: jitter ({}) is as long as the time between runs ({}): \
                         runs will be merged or skipped; use a shorter jitter",
                        humantime::format_duration(jitter),
                        humantime::format_duration(gap)
                    ));
                }
            }
        }
    }
}
