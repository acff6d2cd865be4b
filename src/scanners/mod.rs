//! What to run for each scanner, one file each: the argv of a run (the preset's command line,
//! or a command job's as written, with `{output}`, `{target}` and `{targets}` substituted as
//! whole arguments), the files a run needs first (ZAP's plan), the output file's name, what an
//! exit status means, and a summary of the command line for `check-config`. `openvas` starts no process: it drives gvmd
//! over GMP ([`openvas`]). The runner (`crate::jobs::runner`) asks here and nowhere else.
//!
//! One enum dispatch over the config's [`ScannerJob`] (one variant per scanner) rather than a
//! trait: the set of scanners is closed, and each variant already carries exactly its settings.

pub mod command;
pub mod nmap;
pub mod openvas;
pub mod sslyze;
pub mod zap;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::job::{OUTPUT, TARGET, TARGETS};
use crate::config::{OpenvasJob, ScannerJob, ZapPlan};

/// What a scanner's exit status says about the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitMeaning {
    /// The scan ran and found nothing to complain about (or the scanner does not say).
    Success,
    /// The scan ran to its end, but the scanner reported warnings (ZAP: 2); its report is
    /// uploaded.
    Warnings,
    /// The scan did not work.
    Failure,
}

/// How a run of a job is carried out.
pub enum Launch<'a> {
    /// A process, with the argv of this run (placeholders substituted), and the files the
    /// runner writes into the run's private directory before starting it (ZAP's plan).
    Process {
        argv: Vec<OsString>,
        inputs: Vec<RunInput>,
    },
    /// A scan in gvmd over GMP ([`openvas::run`]).
    Gmp(&'a OpenvasJob),
}

/// A file a run needs before its process starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInput {
    pub path: PathBuf,
    pub contents: String,
}

/// The name of the output file inside a run's private directory.
pub fn output_file(job: &ScannerJob) -> &'static str {
    match job {
        ScannerJob::Nmap(_) => nmap::OUTPUT_FILE,
        ScannerJob::Zap(_) => zap::OUTPUT_FILE,
        ScannerJob::Sslyze(_) => sslyze::OUTPUT_FILE,
        ScannerJob::Openvas(_) => openvas::OUTPUT_FILE,
        ScannerJob::Command(_) => command::OUTPUT_FILE,
    }
}

/// The argv template with the placeholders still in, e.g.
/// `["nmap", "-sV", "-oX", "{output}", "{targets}"]`. Empty for openvas (GMP, no process).
pub fn argv_template(job: &ScannerJob) -> Vec<String> {
    match job {
        ScannerJob::Nmap(j) => nmap::argv(j),
        ScannerJob::Zap(j) => zap::argv(j),
        ScannerJob::Sslyze(j) => sslyze::argv(j),
        ScannerJob::Command(j) => command::argv(j),
        ScannerJob::Openvas(_) => Vec::new(),
    }
}

/// How to run `job` once, its output going to `output` (in the run's private directory); an
/// error says why the run cannot start (a ZAP plan of the operator's that no longer checks).
pub fn launch<'a>(job: &'a ScannerJob, output: &Path) -> Result<Launch<'a>, String> {
    match job {
        ScannerJob::Openvas(o) => Ok(Launch::Gmp(o)),
        ScannerJob::Zap(z) => {
            // `<zap_path> -cmd -autorun <plan>` as they are, then the args with their
            // placeholders substituted.
            let plan = zap::plan_path(output);
            let mut argv: Vec<OsString> = vec![
                z.program.clone().into(),
                "-cmd".into(),
                "-autorun".into(),
                plan.clone().into_os_string(),
            ];
            argv.extend(expand(&z.args, output, job.target(), job.targets()));
            Ok(Launch::Process {
                argv,
                inputs: vec![RunInput {
                    path: plan,
                    contents: zap::plan(z, output)?,
                }],
            })
        }
        _ => Ok(Launch::Process {
            argv: expand(&argv_template(job), output, job.target(), job.targets()),
            inputs: Vec::new(),
        }),
    }
}

/// The argv of one run: `{output}` becomes `output`, `{target}` the target, and `{targets}`
/// one argument per target, expanded in place (none when there are no targets).
///
/// Placeholders replace WHOLE arguments only: `--out={output}` or `x{target}` is passed
/// as it is written, never spliced; write the placeholder as an argument of its own. A
/// `{target}` in a job without a target is left as it is (the config refuses that job).
pub fn expand(
    template: &[String],
    output: &Path,
    target: Option<&str>,
    targets: &[String],
) -> Vec<OsString> {
    let mut out = Vec::with_capacity(template.len() + targets.len());
    for a in template {
        match (a.as_str(), target) {
            (OUTPUT, _) => out.push(output.as_os_str().to_owned()),
            (TARGETS, _) => out.extend(targets.iter().map(OsString::from)),
            (TARGET, Some(t)) => out.push(OsString::from(t)),
            _ => out.push(OsString::from(a)),
        }
    }
    out
}

/// What exit status `code` means for this job's scanner. Only ZAP gives its codes a meaning
/// of their own; for every other scanner non-zero is a failure.
pub fn exit_meaning(job: &ScannerJob, code: i32) -> ExitMeaning {
    match (job, code) {
        (_, 0) => ExitMeaning::Success,
        (ScannerJob::Zap(_), code) => zap::exit_meaning(code),
        _ => ExitMeaning::Failure,
    }
}

/// What a scanner means by a failure exit status, when it says (ZAP's 1: its plan reported
/// errors).
pub fn exit_detail(job: &ScannerJob, code: i32) -> Option<&'static str> {
    match job {
        ScannerJob::Zap(_) => zap::exit_detail(code),
        _ => None,
    }
}

/// Whether the report of a run that failed (a failure exit status, a signal) is set aside
/// rather than uploaded, and why: `None` for most scanners (a valid report is uploaded, with
/// a warning); ZAP's may be empty because the scan never reached the target, and uploading it
/// would show a clean result.
pub fn failed_run_report_kept_back(job: &ScannerJob) -> Option<&'static str> {
    match job {
        ScannerJob::Zap(_) => Some(zap::FAILED_RUN),
        _ => None,
    }
}

/// The program and the number of arguments of its template (a placeholder counts as one),
/// e.g. `nmap with 6 arguments`: all that `check-config` and the logs above debug show of
/// a command line, whose arguments may hold credentials. For openvas, where the GMP
/// conversation goes and what it scans.
pub fn summary(job: &ScannerJob) -> String {
    if let ScannerJob::Openvas(o) = job {
        return openvas::summary(o);
    }
    let argv = argv_template(job);
    let Some((program, args)) = argv.split_first() else {
        return "no command".into();
    };
    let command = match args.len() {
        0 => format!("{program} with no arguments"),
        1 => format!("{program} with 1 argument"),
        n => format!("{program} with {n} arguments"),
    };
    match job {
        ScannerJob::Zap(z) => {
            let plan = match &z.plan {
                ZapPlan::Generated {
                    ajax_spider: true, ..
                } => "generated plan with the AJAX spider".to_string(),
                ZapPlan::Generated { .. } => "generated plan".to_string(),
                ZapPlan::User(p) => format!("user plan {}", crate::escape::path(p)),
            };
            format!(
                "{command}; mode {} ({}), {plan}",
                z.mode.as_str(),
                z.mode.scan_type()
            )
        }
        _ => command,
    }
}

#[cfg(test)]
mod tests;
