//! `scanner = "sslyze"`: what an sslyze job may say (targets as host or host:port, args) and
//! how it is checked. sslyze is looked up in PATH at load.

use super::{JobCheck, ScannerJob, SslyzeJob, TargetKind, Targets};
use crate::validate::ScanType;

/// The scanner-specific keys an sslyze job takes.
pub const KEYS: &[&str] = &["targets", "args"];
pub const DEFAULT_SCAN_TYPE: Option<ScanType> = Some(ScanType::Sslyze);
pub const SCAN_TYPES: &[ScanType] = &[ScanType::Sslyze];
pub const TARGET_KIND: TargetKind = TargetKind::Server;
pub const INSTALL_HINT: &str =
    "install SSLyze (e.g. `pipx install sslyze`) where the agent's PATH finds it";

pub(super) fn check(c: &mut JobCheck<'_>) -> Option<ScannerJob> {
    let targets = c.targets(true, |t| super::target::check_target(t, TARGET_KIND));
    let program = c.program("sslyze", "scanner");
    let args = c.preset_args(&program);
    Some(ScannerJob::Sslyze(SslyzeJob {
        program,
        args,
        targets: Targets::new(targets)?,
    }))
}
