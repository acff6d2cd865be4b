//! nmap: `nmap [--privileged] <args> -oX {output} <targets>`, an XML report.

use crate::config::job::{OUTPUT, TARGETS};
use crate::config::NmapJob;

/// The output file's name inside the run's private directory.
pub const OUTPUT_FILE: &str = "nmap.xml";

/// The argv template.
pub fn argv(j: &NmapJob) -> Vec<String> {
    let mut v = vec![j.program.clone()];
    if j.privileged {
        v.push("--privileged".into());
    }
    v.extend(j.args.iter().cloned());
    v.extend(["-oX".into(), OUTPUT.into(), TARGETS.into()]);
    v
}
