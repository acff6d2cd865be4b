//! One `[[job]]` checked: the keys every job has (name aside: see `config`), the keys that
//! belong to another scanner refused with a hint, then the scanner's own checks (in its file
//! beside this one) through [`JobCheck`], which every scanner shares for targets, programs
//! and argument lists.

use std::time::Duration;

use super::super::raw::RawJob;
use super::super::schedule::Schedule;
use super::super::Checker;
use super::{command, nmap, openvas, sslyze, zap};
use super::{program, target, JobSpec, Scanner, DEFAULT_TIMEOUT, OUTPUT, TARGET, TARGETS};
use crate::validate::{Hints, ScanType};

/// The keys that only some scanners take, in the order their problems are reported.
const SCANNER_KEYS: [&str; 20] = [
    "targets",
    "target",
    "args",
    "command",
    "privileged",
    "zap_path",
    "mode",
    "ajax_spider",
    "plan",
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
        "mode" => j.mode.is_some(),
        "ajax_spider" => j.ajax_spider.is_some(),
        "plan" => j.plan.is_some(),
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
pub(in crate::config) struct JobCheck<'a> {
    pub c: &'a mut Checker,
    pub warnings: &'a mut Vec<String>,
    pub i: usize,
    pub j: &'a RawJob,
    pub path_var: Option<&'a str>,
    pub scanner: Scanner,
    pub targets_ok: bool,
    pub target_ok: bool,
    /// The job's `scan_type` (`None` for auto), already checked against the scanner.
    pub scan_type: Option<ScanType>,
    /// The job's `timeout` (or the default).
    pub timeout: Duration,
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
pub(in crate::config) fn check_job(
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

    let source = crate::config::source::choice(
        j.source.clone(),
        j.source_id.clone(),
        &format!("job[{i}]"),
        c,
    );
    let mut check = JobCheck {
        c,
        warnings,
        i,
        j: &j,
        path_var,
        scanner,
        targets_ok,
        target_ok,
        scan_type,
        timeout,
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
        source,
        schedule: schedule?,
        timeout,
        jitter,
        catch_up: j.catch_up.unwrap_or(false),
        hints: Hints {
            // A zap job's mode decides (a scan_type that disagrees is refused above).
            scan_type: kind
                .scan_type()
                .or(scan_type)
                .or(scanner.default_scan_type()),
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
