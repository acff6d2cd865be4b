//! SSLyze: `sslyze <args> --json_out {output} <targets>`, a JSON report.

use crate::config::job::{OUTPUT, TARGETS};
use crate::config::SslyzeJob;

/// The output file's name inside the run's private directory.
pub const OUTPUT_FILE: &str = "sslyze.json";

/// The argv template.
pub fn argv(j: &SslyzeJob) -> Vec<String> {
    let mut v = vec![j.program.clone()];
    v.extend(j.args.iter().cloned());
    v.extend(["--json_out".into(), OUTPUT.into(), TARGETS.into()]);
    v
}
