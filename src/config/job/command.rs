//! `scanner = "command"`: any program, run as written in `command` (no shell), with the
//! placeholders `{output}`, `{target}` and `{targets}`; checked here so that a command that
//! uses `{target}` has one, and one that writes no `{output}` is warned about.

use super::{Argv, CommandJob, JobCheck, ScannerJob, TargetKind, OUTPUT, TARGET, TARGETS};
use crate::validate::ScanType;

/// The scanner-specific keys a command job takes.
pub const KEYS: &[&str] = &["targets", "target", "command"];
/// Validation decides from the output.
pub const DEFAULT_SCAN_TYPE: Option<ScanType> = None;
pub const SCAN_TYPES: &[ScanType] = &ScanType::ALL;
pub const TARGET_KIND: TargetKind = TargetKind::Any;
pub const INSTALL_HINT: &str = "install it, or give its full path";

pub(super) fn check(c: &mut JobCheck<'_>) -> Option<ScannerJob> {
    let targets = c.targets(false, |t| super::target::check_target(t, TARGET_KIND));
    let target = c.target();
    let argv = match c.j.command.clone().filter(|v| !v.is_empty()) {
        None => {
            c.c.push(
                c.key("command"),
                "is required for scanner = \"command\": the program and its arguments, e.g. \
                 [\"/usr/local/bin/scan\", \"--out\", \"{output}\", \"{targets}\"]",
            );
            return None;
        }
        Some(mut v) => {
            match super::program::find_program(&v[0], c.path_var) {
                // A path is made absolute: runs do not start in the agent's directory.
                Ok(found) if v[0].contains('/') => {
                    v[0] = found.to_string_lossy().into_owned();
                }
                Ok(_) => {}
                Err(e) => c.c.push(c.key("command"), format!("{e}: {INSTALL_HINT}")),
            }
            v
        }
    };
    if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
        c.c.push(
            format!("{}[{i}]", c.key("command")),
            "contains a NUL character",
        );
        return None;
    }
    c.placeholder_warnings("command", &argv);
    if !argv.iter().any(|a| a == OUTPUT) {
        c.warnings.push(format!(
            "{}: has no \"{OUTPUT}\" argument: the run's output file is where the command must write its report",
            c.key("command")
        ));
    }
    if argv.iter().any(|a| a == TARGET) && target.is_none() && c.target_ok {
        c.c.push(c.key("target"), "command uses {target}: set target");
    }
    if argv.iter().any(|a| a == TARGETS) && targets.is_empty() && c.targets_ok {
        c.c.push(c.key("targets"), "command uses {targets}: set targets");
    }
    Some(ScannerJob::Command(CommandJob {
        argv: Argv::new(argv)?,
        target,
        targets,
    }))
}
