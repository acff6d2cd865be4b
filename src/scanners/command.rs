//! `command`: the program and arguments as the job writes them (no shell), with the
//! placeholders substituted at each run.

use crate::config::CommandJob;

/// The output file's name inside the run's private directory.
pub const OUTPUT_FILE: &str = "output";

/// The argv template: the command as written (its program made absolute at load).
pub fn argv(j: &CommandJob) -> Vec<String> {
    j.argv.to_vec()
}
