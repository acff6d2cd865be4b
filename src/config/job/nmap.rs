//! `scanner = "nmap"`: what an nmap job may say (targets, args, privileged) and how it is
//! checked. nmap is looked up in PATH at load, so a missing nmap is a config problem.

use super::{JobCheck, NmapJob, ScannerJob, TargetKind, Targets};
use crate::validate::ScanType;

/// The scanner-specific keys an nmap job takes.
pub const KEYS: &[&str] = &["targets", "args", "privileged"];
/// NMAP or NMAP_UDP: validation decides from the report's scaninfo.
pub const DEFAULT_SCAN_TYPE: Option<ScanType> = None;
pub const SCAN_TYPES: &[ScanType] = &[ScanType::Nmap, ScanType::NmapUdp];
pub const TARGET_KIND: TargetKind = TargetKind::Network;
pub const INSTALL_HINT: &str = "install nmap (e.g. `apt install nmap` or `dnf install nmap`)";

pub(super) fn check(c: &mut JobCheck<'_>) -> Option<ScannerJob> {
    let targets = c.targets(true, |t| super::target::check_target(t, TARGET_KIND));
    let program = c.program("nmap", "scanner");
    let args = c.preset_args(&program);
    Some(ScannerJob::Nmap(NmapJob {
        program,
        args,
        privileged: c.j.privileged.unwrap_or(false),
        targets: Targets::new(targets)?,
    }))
}
