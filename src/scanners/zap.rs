//! ZAP: a quick scan of the job's URL (`zap.sh -cmd <args> -quickurl {target} -quickout
//! {output} -quickprogress`) to a JSON report, and what ZAP's exit codes mean.

use super::ExitMeaning;
use crate::config::job::{OUTPUT, TARGET};
use crate::config::ZapJob;

/// The output file's name inside the run's private directory. ZAP picks the report format
/// from the extension, so it must end in `.json`.
pub const OUTPUT_FILE: &str = "zap.json";

/// The argv template. ZAP's Quick Start add-on: -cmd runs inline and exits when done;
/// -quickout picks the report format from the file's extension (.json here).
pub fn argv(j: &ZapJob) -> Vec<String> {
    let mut v = vec![j.program.clone(), "-cmd".into()];
    v.extend(j.args.iter().cloned());
    v.extend([
        "-quickurl".into(),
        TARGET.into(),
        "-quickout".into(),
        OUTPUT.into(),
        "-quickprogress".into(),
    ]);
    v
}

/// What an exit status means: 1 (warnings) and 2 (failures found) report findings, as ZAP's
/// packaged scans do; 3 and anything else is an error.
pub fn exit_meaning(code: i32) -> ExitMeaning {
    match code {
        0 => ExitMeaning::Success,
        1 | 2 => ExitMeaning::Findings,
        _ => ExitMeaning::Failure,
    }
}

/// Why the report of a failed ZAP run is not uploaded: ZAP's own failure code (or a kill)
/// may leave an empty report because the scan never reached the target, and uploading it
/// would show a clean result.
pub const FAILED_RUN: &str = "ZAP reports a failed scan; its report is not uploaded";
