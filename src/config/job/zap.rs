//! `scanner = "zap"`: what a ZAP job may say (one URL as `target`, `zap_path`, args) and how
//! it is checked. The program (`zap_path`, default `zap.sh`) is looked up at load.

use super::{JobCheck, ScannerJob, TargetKind, ZapJob};
use crate::validate::ScanType;

/// The program the `zap` preset runs when `zap_path` is not set.
pub const DEFAULT_ZAP_PATH: &str = "zap.sh";

/// The scanner-specific keys a zap job takes.
pub const KEYS: &[&str] = &["target", "args", "zap_path"];
/// OWASP_ZAP for a ZAP report (validation decides).
pub const DEFAULT_SCAN_TYPE: Option<ScanType> = None;
pub const SCAN_TYPES: &[ScanType] = &[ScanType::OwaspZap, ScanType::OwaspZapActive];
pub const TARGET_KIND: TargetKind = TargetKind::Url;
pub const INSTALL_HINT: &str =
    "install ZAP (https://www.zaproxy.org/download/) and set zap_path to its zap.sh, \
     e.g. \"/opt/zaproxy/zap.sh\"";

pub(super) fn check(c: &mut JobCheck<'_>) -> Option<ScannerJob> {
    let target = c.target();
    if target.is_none() {
        c.c.push(
            c.key("target"),
            "is required for scanner = \"zap\": the URL to scan, e.g. target = \"https://intranet.example\"",
        );
    }
    let program = match &c.j.zap_path {
        Some(p) => c.program(p, "zap_path"),
        None => c.program(DEFAULT_ZAP_PATH, "scanner"),
    };
    let args = c.preset_args(&program);
    Some(ScannerJob::Zap(ZapJob {
        program,
        args,
        target: target?,
    }))
}
