//! `scanner = "zap"`: what a ZAP job may say (one URL as `target`, `mode`, `ajax_spider`, an
//! optional `plan` of the operator's, `zap_path`, args) and how it is checked: the mode decides
//! the scan type (a `scan_type` that disagrees is refused), and a user plan is read and checked
//! against the target and the mode at load (see [`super::zap_plan`]). The program (`zap_path`,
//! default `zap.sh`) is looked up at load.

use super::super::absolute;
use super::zap_plan::{self, Durations, ZapMode};
use super::{JobCheck, ScannerJob, TargetKind, ZapJob, ZapPlan};
use crate::validate::ScanType;

/// ZAP command-line options a zap job's `args` may not hold (see `check`).
const FOREIGN_OPTIONS: &[&str] = &[
    "-cmd",
    "-autorun",
    "-autogenmin",
    "-autogenmax",
    "-autogenconf",
    "-quickurl",
    "-quickout",
    "-quickprogress",
    "-script",
    "-autocheck",
    "-zapit",
    "-session",
];

/// The program the `zap` preset runs when `zap_path` is not set.
pub const DEFAULT_ZAP_PATH: &str = "zap.sh";

/// The scanner-specific keys a zap job takes.
pub const KEYS: &[&str] = &["target", "args", "zap_path", "mode", "ajax_spider", "plan"];
/// The mode decides (OWASP_ZAP when passive, OWASP_ZAP_ACTIVE when active): see
/// `ScannerJob::scan_type`.
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
    let mode = match c.j.mode.as_deref() {
        None => Some(ZapMode::Passive),
        Some(m) => {
            let mode = ZapMode::parse(m);
            if mode.is_none() {
                c.c.push(
                    c.key("mode"),
                    format!(
                        "{m:?} is not one of \"passive\" (spider and passive scan, uploaded as \
                         OWASP_ZAP) or \"active\" (adds an active scan, which attacks the target; \
                         uploaded as OWASP_ZAP_ACTIVE)"
                    ),
                );
            }
            mode
        }
    };
    if let (Some(mode), Some(t)) = (mode, c.scan_type) {
        if t != mode.scan_type() && SCAN_TYPES.contains(&t) {
            c.c.push(
                c.key("scan_type"),
                format!(
                    "{t} disagrees with mode = \"{}\", whose reports are uploaded as {}: remove \
                     scan_type (the mode decides) or set mode = \"{}\"",
                    mode.as_str(),
                    mode.scan_type(),
                    match mode {
                        ZapMode::Passive => "active",
                        ZapMode::Active => "passive",
                    }
                ),
            );
        }
    }
    let plan = match (&c.j.plan, c.j.ajax_spider) {
        (Some(_), Some(true)) => {
            c.c.push(
                c.key("ajax_spider"),
                "applies to the plan the agent writes, not to plan = \"...\": add a spiderAjax \
                 job to that plan instead",
            );
            None
        }
        (Some(p), _) => {
            let path = absolute(p);
            let checked = zap_plan::read_user_plan(&path).and_then(|text| match (&target, mode) {
                (Some(t), Some(m)) => zap_plan::check_user_plan(&text, t, m),
                // Checked once the target and mode are right.
                _ => Ok(()),
            });
            match checked {
                Ok(()) => Some(ZapPlan::User(path)),
                Err(e) => {
                    c.c.push(c.key("plan"), format!("{}: {e}", path.display()));
                    None
                }
            }
        }
        (None, ajax_spider) => {
            let ajax_spider = ajax_spider.unwrap_or(false);
            let durations = Durations::from_timeout(c.timeout);
            if let Some(m) = mode {
                let minutes = durations.total(ajax_spider, m);
                if minutes.saturating_mul(60) >= c.timeout.as_secs() {
                    c.warnings.push(format!(
                        "job {:?}: timeout {} leaves ZAP no time to write its report after its \
                         scans (at least {minutes} minutes together): runs will be stopped \
                         without one; give the job a timeout of at least 10m",
                        c.j.name,
                        humantime::format_duration(c.timeout)
                    ));
                }
            }
            Some(ZapPlan::Generated {
                ajax_spider,
                durations,
            })
        }
    };
    let program = match &c.j.zap_path {
        Some(p) => c.program(p, "zap_path"),
        None => c.program(DEFAULT_ZAP_PATH, "scanner"),
    };
    let args = c.preset_args(&program);
    // ZAP options that would run another scan in the same session (its findings in the plan's
    // report, under this job's mode) or another plan: the plan is the agent's to give.
    for (i, a) in args.iter().enumerate() {
        if let Some(opt) = FOREIGN_OPTIONS.iter().find(|o| a.eq_ignore_ascii_case(o)) {
            c.c.push(
                format!("{}[{i}]", c.key("args")),
                format!(
                    "is {opt}, which would run another scan or plan in ZAP's session: the job \
                     runs its plan (mode, ajax_spider, plan); remove it"
                ),
            );
        }
    }
    Some(ScannerJob::Zap(ZapJob {
        program,
        args,
        target: target?,
        mode: mode?,
        plan: plan?,
    }))
}
