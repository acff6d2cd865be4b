//! ZAP: the Automation Framework run of a job (`<zap_path> -cmd -autorun <plan> <args>`), the
//! plan it runs (generated, or the operator's adjusted copy, both written by the runner into
//! the run's private directory, beside the report), and what ZAP's exit codes mean.

use std::path::{Path, PathBuf};

use super::ExitMeaning;
use crate::config::job::zap_plan::{self, ReportTo};
use crate::config::{ZapJob, ZapPlan};

/// The output file's name inside the run's private directory. ZAP's report job adds the
/// template's extension when the name lacks it: it ends in `.json`, so the file is where the
/// agent looks.
pub const OUTPUT_FILE: &str = "zap.json";
/// The plan's file name inside the run's private directory.
pub const PLAN_FILE: &str = "zap-plan.yaml";
/// Stands for the plan's path in [`argv`] (the summary shows it; a run puts the path there).
pub const PLAN: &str = "{plan}";

/// The argv template: the plan's path is [`PLAN`], the `args` follow it.
pub fn argv(j: &ZapJob) -> Vec<String> {
    let mut v = vec![
        j.program.clone(),
        "-cmd".into(),
        "-autorun".into(),
        PLAN.into(),
    ];
    v.extend(j.args.iter().cloned());
    v
}

/// Where a run's plan goes: beside its output.
pub fn plan_path(output: &Path) -> PathBuf {
    output.with_file_name(PLAN_FILE)
}

/// The plan of one run whose report is to be `output`: generated, or the operator's file read
/// now (it may have changed since the configuration was loaded) and adjusted. A plan that cannot
/// be used is a failed run, with the reason.
pub fn plan(j: &ZapJob, output: &Path) -> Result<String, String> {
    let dir = output.parent().and_then(Path::to_str);
    let file = output.file_name().and_then(|f| f.to_str());
    let (Some(dir), Some(file)) = (dir, file) else {
        return Err(format!(
            "the report path {} is not UTF-8 text: ZAP's plan cannot name it",
            crate::escape::path(output)
        ));
    };
    let to = ReportTo { dir, file };
    match &j.plan {
        ZapPlan::Generated {
            ajax_spider,
            durations,
        } => zap_plan::generated_plan(&j.target, j.mode, *ajax_spider, *durations, to)
            .map_err(|e| format!("ZAP's plan {e}")),
        ZapPlan::User(path) => zap_plan::read_user_plan(path)
            .and_then(|text| zap_plan::adjust_user_plan(&text, &j.target, j.mode, to))
            .map_err(|e| format!("the ZAP plan {} {e}", crate::escape::path(path))),
    }
}

/// What an exit status means under `-autorun`: 0 the plan ran cleanly; 2 it ran to its end
/// with warnings (the report is uploaded); 1 it reported errors (for example the target could
/// not be reached: the report, if any, is set aside); anything else is a failure.
pub fn exit_meaning(code: i32) -> ExitMeaning {
    match code {
        0 => ExitMeaning::Success,
        2 => ExitMeaning::Warnings,
        _ => ExitMeaning::Failure,
    }
}

/// What ZAP means by a failure exit status, when it says.
pub fn exit_detail(code: i32) -> Option<&'static str> {
    (code == 1).then_some("its plan reported errors, e.g. the target could not be reached")
}

/// Why the report of a failed ZAP run is not uploaded.
pub const FAILED_RUN: &str = "its report is set aside, not uploaded: a scan that did not \
                              reach the target would close real risks in HostedScan";
