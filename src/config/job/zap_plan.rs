//! The ZAP Automation Framework plan of a `zap` job (what `zap.sh -cmd -autorun <plan>` runs):
//! either generated from the job's settings (one context whose URL is the target, `spider`,
//! `spiderAjax` on request, `passiveScan-wait`, `activeScan` in active mode, and a
//! `traditional-json` report into the run directory, with durations taken from the job's
//! timeout), or the operator's own plan, checked (its context URLs are the target; job types
//! the agent knows, attacking ones only in active mode, an enabled `activeScan` in active mode;
//! nothing that takes the run's outcome from the agent; no string that ZAP's YAML 1.1 reader
//! would read as something else) and given the agent's own report job, last. Building is pure: text and settings in, YAML text out (serialized by
//! serde, never pieced together). Reading the operator's file is [`read_user_plan`], bounded.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_norway::{Mapping, Value};

use crate::validate::ScanType;

/// The largest user plan the agent reads: plans are a few kilobytes.
pub const MAX_PLAN_BYTES: u64 = 1024 * 1024;
/// The name of the generated plan's one context.
pub const CONTEXT_NAME: &str = "hostedscan-agent";
/// The report template the agent uploads: ZAP's traditional JSON report.
pub const REPORT_TEMPLATE: &str = "traditional-json";
/// The Automation Framework's job types the agent names.
pub const SPIDER: &str = "spider";
pub const SPIDER_AJAX: &str = "spiderAjax";
pub const PASSIVE_WAIT: &str = "passiveScan-wait";
pub const ACTIVE_SCAN: &str = "activeScan";
pub const REPORT: &str = "report";

/// Job types of a user plan that do not attack the target: allowed in either mode (they crawl,
/// import definitions, send the requests written in the plan, wait, filter, configure, report).
const LOOKING: &[&str] = &[
    SPIDER,
    SPIDER_AJAX,
    "spiderClient",
    "passiveScan-config",
    PASSIVE_WAIT,
    "activeScan-config",
    "activeScan-policy",
    "requestor",
    "import",
    "openapi",
    "graphql",
    "soap",
    "postman",
    "alertFilter",
    "replacer",
    "delay",
    "outputSummary",
    REPORT,
];
/// Job types that attack the target (or may: a script can do anything): only with
/// `mode = "active"`.
const ATTACKING: &[&str] = &[ACTIVE_SCAN, "sequence-activeScan", "retest", "script"];

/// `mode`: what the scan does to the target, and so what HostedScan files it as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZapMode {
    /// Spider and passive scan only (`OWASP_ZAP`): requests a crawler would make.
    Passive,
    /// Spider, passive scan and an active scan (`OWASP_ZAP_ACTIVE`): sends attacks.
    Active,
}

impl ZapMode {
    /// The config spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<ZapMode> {
        match s {
            "passive" => Some(ZapMode::Passive),
            "active" => Some(ZapMode::Active),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ZapMode::Passive => "passive",
            ZapMode::Active => "active",
        }
    }

    /// What the reports of this mode are uploaded as.
    pub fn scan_type(&self) -> ScanType {
        match self {
            ZapMode::Passive => ScanType::OwaspZap,
            ZapMode::Active => ScanType::OwaspZapActive,
        }
    }
}

/// The limits (whole minutes, at least 1) the generated plan gives ZAP's jobs, so that ZAP ends
/// them itself and writes its report before the job's timeout has the agent kill it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durations {
    /// `spider`'s `maxDuration`: 20% of the timeout.
    pub spider: u64,
    /// `spiderAjax`'s `maxDuration`: 10%.
    pub spider_ajax: u64,
    /// `passiveScan-wait`'s `maxDuration`: 10%.
    pub passive_wait: u64,
    /// `activeScan`'s `maxScanDurationInMins`: 50%.
    pub active: u64,
}

impl Durations {
    /// Shares of `timeout`, rounded down to whole minutes, at least 1 each. What is left (at
    /// least 10%) is for ZAP's start, its report and its exit.
    pub fn from_timeout(timeout: Duration) -> Durations {
        // Saturating: a timeout of a hundred billion years must not overflow.
        // At most i32::MAX: ZAP keeps these minutes in a Java int.
        let share = |percent: u64| {
            ((timeout.as_secs() / 60).saturating_mul(percent) / 100).clamp(1, i32::MAX as u64)
        };
        Durations {
            spider: share(20),
            spider_ajax: share(10),
            passive_wait: share(10),
            active: share(50),
        }
    }

    /// The minutes the plan's jobs may take together.
    pub fn total(&self, ajax_spider: bool, mode: ZapMode) -> u64 {
        self.spider
            + self.passive_wait
            + if ajax_spider { self.spider_ajax } else { 0 }
            + if mode == ZapMode::Active {
                self.active
            } else {
                0
            }
    }
}

/// Where ZAP is to write the report: the run's private directory and the output's file name
/// (ending in `.json`, so ZAP adds no extension of its own).
#[derive(Debug, Clone, Copy)]
pub struct ReportTo<'a> {
    pub dir: &'a str,
    pub file: &'a str,
}

/// Why a plan cannot be used. The messages complete a sentence that names the plan or its key.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("is larger than {MAX_PLAN_BYTES} bytes: not a ZAP plan")]
    TooLarge,
    #[error("is not valid YAML: {0}")]
    Yaml(String),
    #[error("{0}")]
    Shape(String),
    #[error("cannot be written as YAML: {0}")]
    Serialize(String),
}

fn shape(msg: impl Into<String>) -> PlanError {
    PlanError::Shape(msg.into())
}

/// The operator's plan file as text: at most [`MAX_PLAN_BYTES`], UTF-8.
pub fn read_user_plan(path: &Path) -> Result<String, PlanError> {
    let read = |source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_PLAN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        return Err(PlanError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| PlanError::Yaml("it is not UTF-8 text".into()))
}

#[derive(Serialize)]
struct Plan<'a> {
    env: Env<'a>,
    jobs: Vec<Job<'a>>,
}

#[derive(Serialize)]
struct Env<'a> {
    contexts: [Context<'a>; 1],
    parameters: EnvParameters,
}

#[derive(Serialize)]
struct Context<'a> {
    name: &'a str,
    urls: [&'a str; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvParameters {
    fail_on_error: bool,
    fail_on_warning: bool,
    progress_to_stdout: bool,
}

#[derive(Serialize)]
struct Job<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    parameters: Parameters<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Parameters<'a> {
    Spider {
        context: &'a str,
        #[serde(rename = "maxDuration")]
        max_duration: u64,
    },
    Wait {
        #[serde(rename = "maxDuration")]
        max_duration: u64,
    },
    Active {
        context: &'a str,
        #[serde(rename = "maxScanDurationInMins")]
        max_scan_duration_in_mins: u64,
    },
    Report {
        template: &'static str,
        #[serde(rename = "reportDir")]
        report_dir: &'a str,
        #[serde(rename = "reportFile")]
        report_file: &'a str,
    },
}

fn report_job(to: ReportTo<'_>) -> Job<'_> {
    Job {
        kind: REPORT,
        parameters: Parameters::Report {
            template: REPORT_TEMPLATE,
            report_dir: to.dir,
            report_file: to.file,
        },
    }
}

/// The plan the agent writes for a job without a plan of its own.
pub fn generated_plan(
    target: &str,
    mode: ZapMode,
    ajax_spider: bool,
    d: Durations,
    to: ReportTo<'_>,
) -> Result<String, PlanError> {
    let mut jobs = vec![Job {
        kind: SPIDER,
        parameters: Parameters::Spider {
            context: CONTEXT_NAME,
            max_duration: d.spider,
        },
    }];
    if ajax_spider {
        jobs.push(Job {
            kind: SPIDER_AJAX,
            parameters: Parameters::Spider {
                context: CONTEXT_NAME,
                max_duration: d.spider_ajax,
            },
        });
    }
    jobs.push(Job {
        kind: PASSIVE_WAIT,
        parameters: Parameters::Wait {
            max_duration: d.passive_wait,
        },
    });
    if mode == ZapMode::Active {
        jobs.push(Job {
            kind: ACTIVE_SCAN,
            parameters: Parameters::Active {
                context: CONTEXT_NAME,
                max_scan_duration_in_mins: d.active,
            },
        });
    }
    jobs.push(report_job(to));
    let plan = Plan {
        env: Env {
            contexts: [Context {
                name: CONTEXT_NAME,
                urls: [target],
            }],
            parameters: EnvParameters {
                fail_on_error: true,
                fail_on_warning: false,
                progress_to_stdout: true,
            },
        },
        jobs,
    };
    serde_norway::to_string(&plan).map_err(|e| PlanError::Serialize(e.to_string()))
}

/// Checks the operator's plan for this job (see [`adjust_user_plan`]) without adjusting it.
pub fn check_user_plan(text: &str, target: &str, mode: ZapMode) -> Result<(), PlanError> {
    checked(text, target, mode).map(|_| ())
}

/// The operator's plan as the agent runs it: checked (a mapping with `env.contexts` and
/// `jobs`; every context URL is the job's target; jobs of known types only, attacking ones only
/// in active mode, an enabled `activeScan` in active mode; no `exitStatus` job, `alwaysRun` or
/// `tests`), then with the agent's own `traditional-json` report job into `to` appended last,
/// `env.parameters.failOnError: true` (an error fails the run anyway) and `failOnWarning:
/// false`. Everything else is kept as written.
pub fn adjust_user_plan(
    text: &str,
    target: &str,
    mode: ZapMode,
    to: ReportTo<'_>,
) -> Result<String, PlanError> {
    let mut plan = checked(text, target, mode)?;
    // The agent's own report job, last: after every scan job, with no filters (risks, sites,
    // sections) that would leave alerts out and so have HostedScan close them. The plan's own
    // report jobs are left as they are.
    plan.get_mut("jobs")
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| shape("has no jobs list"))?
        .push(
            serde_norway::to_value(report_job(to))
                .map_err(|e| PlanError::Serialize(e.to_string()))?,
        );
    // Errors fail the run whatever the plan says (ZAP exits 1): ZAP may as well stop at the
    // first one rather than scan on to a report that is set aside.
    let env = plan
        .get_mut("env")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| shape("has no env mapping"))?;
    if env.get("parameters").is_none_or(Value::is_null) {
        env.insert("parameters".into(), Value::Mapping(Mapping::new()));
    }
    let params = env
        .get_mut("parameters")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| shape("env.parameters is not a mapping"))?;
    params.insert("failOnError".into(), true.into());
    // A warning must not stop the plan before its scans and the agent's report.
    params.insert("failOnWarning".into(), false.into());
    serde_norway::to_string(&plan).map_err(|e| PlanError::Serialize(e.to_string()))
}

/// A plain string, or `None` (a number, a tagged value, a list...).
fn text(v: &Value) -> Option<&str> {
    v.as_str()
}

/// Whether ZAP's YAML 1.1 reader (SnakeYAML) would read the string `s` as something else (a
/// boolean such as `no` or `on`, a number such as `1:30` or `1_000`, a date) once the agent has
/// written its copy of the plan: a YAML 1.2 writer leaves such strings unquoted.
fn yaml11_reads_otherwise(s: &str) -> bool {
    const BOOLS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    if BOOLS.contains(&s) {
        return true;
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    let numeric = unsigned.starts_with(|c: char| c.is_ascii_digit())
        && unsigned
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, '_' | ':' | '.' | 'x' | 'o' | 'b'));
    let date =
        s.len() >= 8 && s.as_bytes()[..4].iter().all(u8::is_ascii_digit) && s.as_bytes()[4] == b'-';
    (numeric && (unsigned.contains('_') || unsigned.contains(':') || unsigned.starts_with("0b")))
        || date
}

/// The first string in `v` (keys included) that [`yaml11_reads_otherwise`].
fn ambiguous_string(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) if yaml11_reads_otherwise(s) => Some(s),
        Value::Sequence(items) => items.iter().find_map(ambiguous_string),
        Value::Mapping(m) => m
            .iter()
            .find_map(|(k, v)| ambiguous_string(k).or_else(|| ambiguous_string(v))),
        Value::Tagged(t) => ambiguous_string(&t.value),
        _ => None,
    }
}

/// URLs are compared without a trailing slash: ZAP treats `https://x` and `https://x/` alike.
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The plan parsed and checked: every job of a known type, none that attacks in passive mode, an
/// enabled `activeScan` in active mode, nothing that takes the run's outcome from the agent.
fn checked(text_in: &str, target: &str, mode: ZapMode) -> Result<Value, PlanError> {
    if text_in.len() as u64 > MAX_PLAN_BYTES {
        return Err(PlanError::TooLarge);
    }
    let mut plan: Value =
        serde_norway::from_str(text_in).map_err(|e| PlanError::Yaml(e.to_string()))?;
    // ZAP's YAML reader applies merge keys (`<<: *anchor`): so does the check.
    plan.apply_merge()
        .map_err(|e| PlanError::Yaml(e.to_string()))?;
    if let Some(s) = ambiguous_string(&plan) {
        return Err(shape(format!(
            "holds the string {s:?}, which ZAP's YAML reader (YAML 1.1) would take for a \
             boolean, a number or a date in the copy the agent runs: write it so that it cannot \
             be (true or false for a boolean, a plain number for a number)"
        )));
    }
    let root = plan.as_mapping().ok_or_else(|| {
        shape("is not a ZAP Automation Framework plan (a mapping with env and jobs)")
    })?;
    let env = root
        .get("env")
        .and_then(Value::as_mapping)
        .ok_or_else(|| shape("has no env mapping: a ZAP plan needs env.contexts"))?;
    if env
        .get("parameters")
        .is_some_and(|p| !p.is_null() && !p.is_mapping())
    {
        return Err(shape("env.parameters is not a mapping"));
    }
    let contexts = env
        .get("contexts")
        .and_then(Value::as_sequence)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| shape("has no env.contexts: add one whose urls is [the job's target]"))?;
    for (n, ctx) in contexts.iter().enumerate() {
        let ctx: &Mapping = ctx
            .as_mapping()
            .ok_or_else(|| shape(format!("env.contexts[{n}] is not a mapping")))?;
        let mut urls = Vec::new();
        if let Some(list) = ctx.get("urls") {
            let list = list
                .as_sequence()
                .ok_or_else(|| shape(format!("env.contexts[{n}].urls is not a list")))?;
            for u in list {
                urls.push(
                    text(u).ok_or_else(|| {
                        shape(format!("env.contexts[{n}].urls holds a non-string"))
                    })?,
                );
            }
        }
        if let Some(u) = ctx.get("url") {
            urls.push(
                text(u).ok_or_else(|| shape(format!("env.contexts[{n}].url is not a string")))?,
            );
        }
        if urls.is_empty() {
            return Err(shape(format!(
                "env.contexts[{n}] has no urls: set urls: [{target}] (the job's target)"
            )));
        }
        if let Some(other) = urls.iter().find(|u| !same_url(u, target)) {
            return Err(shape(format!(
                "env.contexts[{n}] scans {other:?}, not the job's target {target:?}: its report \
                 would be uploaded as the target's; make the context's urls [{target}] or the \
                 job's target {other:?}"
            )));
        }
    }
    let jobs = root
        .get("jobs")
        .and_then(Value::as_sequence)
        .ok_or_else(|| shape("has no jobs list"))?;
    let mut attacks = None;
    let mut active_scans = 0;
    for (n, job) in jobs.iter().enumerate() {
        let job = job
            .as_mapping()
            .ok_or_else(|| shape(format!("jobs[{n}] is not a mapping")))?;
        let kind = job
            .get("type")
            .and_then(text)
            .ok_or_else(|| shape(format!("jobs[{n}] has no type")))?;
        // What would let the plan decide the run's outcome instead of the agent: an exit
        // status of its own, tests that fail the plan, a job run after an error.
        if kind == "exitStatus" {
            return Err(shape(format!(
                "jobs[{n}] is an exitStatus job, which changes ZAP's exit code: the agent reads \
                 it (0 and 2 upload the report, 1 sets it aside); remove the job"
            )));
        }
        for key in ["alwaysRun", "tests"] {
            if job.get(key).is_some() {
                return Err(shape(format!(
                    "jobs[{n}] ({kind}) has {key}, which changes whether a failed scan's report \
                     is written or the plan fails: remove it"
                )));
            }
        }
        if job
            .get("parameters")
            .is_some_and(|p| !p.is_null() && !p.is_mapping())
        {
            return Err(shape(format!("jobs[{n}].parameters is not a mapping")));
        }
        // A YAML 1.1 reader (ZAP's) takes `no`, `off` and the like for false: only a real
        // boolean says whether the job runs.
        let enabled = match job.get("enabled") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(shape(format!("jobs[{n}].enabled is not true or false"))),
        };
        if ATTACKING.contains(&kind) {
            attacks.get_or_insert((n, kind));
            if kind == ACTIVE_SCAN && enabled {
                active_scans += 1;
            }
        } else if !LOOKING.contains(&kind) {
            return Err(shape(format!(
                "jobs[{n}] has the type {kind:?}, which the agent does not know: it cannot \
                 tell whether it attacks the target (and so whether the report is OWASP_ZAP or \
                 OWASP_ZAP_ACTIVE). Known: {} and, with mode = \"active\", {}",
                LOOKING.join(", "),
                ATTACKING.join(", ")
            )));
        }
    }
    match (mode, attacks) {
        (ZapMode::Passive, Some((n, kind))) => {
            return Err(shape(format!(
                "has a {kind} job (jobs[{n}]), which attacks the target (or may), but the job's \
                 mode is \"passive\" (uploaded as OWASP_ZAP): set mode = \"active\" \
                 (uploaded as OWASP_ZAP_ACTIVE) or remove the {kind} job"
            )))
        }
        (ZapMode::Active, _) if active_scans == 0 => {
            return Err(shape(
                "has no activeScan job (that is not disabled), but the job's mode is \"active\" \
                 (uploaded as OWASP_ZAP_ACTIVE): add an activeScan job or set mode = \"passive\"",
            ))
        }
        _ => {}
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TO: ReportTo<'static> = ReportTo {
        dir: "/var/lib/hostedscan-agent/tmp/job-web-x1",
        file: "web-20261206T000000Z-zap.json",
    };

    fn parse(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    fn types(plan: &Value) -> Vec<&str> {
        plan["jobs"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|j| j["type"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn durations_of_a_huge_timeout_do_not_overflow() {
        let d = Durations::from_timeout(Duration::from_secs(u64::MAX));
        assert_eq!(d.active, i32::MAX as u64, "ZAP keeps minutes in a Java int");
        let d = Durations::from_timeout(Duration::from_secs(3600 * 24 * 365 * 1000));
        assert!(d.active > d.spider && d.spider > d.passive_wait);
        assert!(d.total(true, ZapMode::Active) > 0);
    }

    #[test]
    fn durations_are_shares_of_the_timeout_in_whole_minutes_at_least_one() {
        let d = Durations::from_timeout(Duration::from_secs(4 * 3600));
        assert_eq!(
            d,
            Durations {
                spider: 48,
                spider_ajax: 24,
                passive_wait: 24,
                active: 120
            }
        );
        assert!(d.total(true, ZapMode::Active) * 60 < 4 * 3600);
        let d = Durations::from_timeout(Duration::from_secs(10 * 60));
        assert_eq!(
            (d.spider, d.spider_ajax, d.passive_wait, d.active),
            (2, 1, 1, 5)
        );
        // Rounded down, never 0.
        let d = Durations::from_timeout(Duration::from_secs(30));
        assert_eq!(
            (d.spider, d.spider_ajax, d.passive_wait, d.active),
            (1, 1, 1, 1)
        );
        assert_eq!(d.total(false, ZapMode::Passive), 2);
        assert_eq!(d.total(true, ZapMode::Active), 4);
    }

    #[test]
    fn the_passive_plan_spiders_waits_for_the_passive_scan_and_reports() {
        let d = Durations::from_timeout(Duration::from_secs(3600));
        let text = generated_plan("https://app.example", ZapMode::Passive, false, d, TO).unwrap();
        let plan = parse(&text);
        assert_eq!(plan["env"]["contexts"][0]["name"], CONTEXT_NAME);
        assert_eq!(
            plan["env"]["contexts"][0]["urls"],
            parse("[https://app.example]")
        );
        assert_eq!(plan["env"]["parameters"]["failOnError"], Value::Bool(true));
        assert_eq!(
            plan["env"]["parameters"]["failOnWarning"],
            Value::Bool(false)
        );
        assert_eq!(
            plan["env"]["parameters"]["progressToStdout"],
            Value::Bool(true)
        );
        assert_eq!(types(&plan), ["spider", "passiveScan-wait", "report"]);
        assert_eq!(plan["jobs"][0]["parameters"]["maxDuration"], 12);
        assert_eq!(plan["jobs"][1]["parameters"]["maxDuration"], 6);
        let report = &plan["jobs"][2]["parameters"];
        assert_eq!(report["template"], "traditional-json");
        assert_eq!(report["reportDir"], TO.dir);
        assert_eq!(report["reportFile"], TO.file);
    }

    #[test]
    fn the_active_plan_adds_the_active_scan_and_the_ajax_spider_on_request() {
        let d = Durations::from_timeout(Duration::from_secs(3600));
        let text = generated_plan("https://app.example", ZapMode::Active, true, d, TO).unwrap();
        let plan = parse(&text);
        assert_eq!(
            types(&plan),
            [
                "spider",
                "spiderAjax",
                "passiveScan-wait",
                "activeScan",
                "report"
            ]
        );
        assert_eq!(plan["jobs"][1]["parameters"]["maxDuration"], 6);
        assert_eq!(plan["jobs"][3]["parameters"]["maxScanDurationInMins"], 30);
        assert_eq!(plan["jobs"][3]["parameters"]["context"], CONTEXT_NAME);
    }

    #[test]
    fn odd_text_in_the_target_or_paths_stays_data() {
        let to = ReportTo {
            dir: "/tmp/a: b\n- type: activeScan",
            file: "x #y.json",
        };
        let d = Durations::from_timeout(Duration::from_secs(600));
        let text = generated_plan(
            "https://a.example/?q='x'&y=\"z\"",
            ZapMode::Passive,
            false,
            d,
            to,
        )
        .unwrap();
        let plan = parse(&text);
        assert_eq!(types(&plan), ["spider", "passiveScan-wait", "report"]);
        assert_eq!(plan["jobs"][2]["parameters"]["reportDir"], to.dir);
        assert_eq!(
            plan["env"]["contexts"][0]["urls"][0],
            "https://a.example/?q='x'&y=\"z\""
        );
    }

    const USER: &str = r#"
env:
  contexts:
    - name: mine
      urls: ["https://app.example/"]
      includePaths: ["https://app.example/.*"]
  parameters:
    failOnError: true
jobs:
  - type: spider
    parameters: {maxDuration: 5}
  - type: requestor
    requests: [{url: "https://app.example/health"}]
  - type: passiveScan-wait
  - type: report
    parameters:
      template: traditional-html
      reportDir: /srv/reports
  - type: report
    parameters:
      template: traditional-json
      reportDir: /srv/reports
      reportFile: mine.json
      reportTitle: Mine
"#;

    #[test]
    fn a_user_plan_keeps_its_jobs_and_gets_the_agents_report_job_last() {
        let text = adjust_user_plan(USER, "https://app.example", ZapMode::Passive, TO).unwrap();
        let plan = parse(&text);
        assert_eq!(
            types(&plan),
            [
                "spider",
                "requestor",
                "passiveScan-wait",
                "report",
                "report",
                "report"
            ]
        );
        assert_eq!(
            plan["env"]["contexts"][0]["includePaths"][0],
            "https://app.example/.*"
        );
        for n in [3, 4] {
            assert_eq!(
                plan["jobs"][n]["parameters"]["reportDir"], "/srv/reports",
                "the plan's own reports are left alone"
            );
        }
        // The agent's: after every scan, into the run directory, with nothing filtered out.
        let ours = plan["jobs"][5]["parameters"].as_mapping().unwrap();
        assert_eq!(ours["template"], "traditional-json");
        assert_eq!(ours["reportDir"], TO.dir);
        assert_eq!(ours["reportFile"], TO.file);
        for filter in ["risks", "confidences", "sites", "sections"] {
            assert!(ours.get(filter).is_none(), "{filter}");
        }
        assert_eq!(plan["env"]["parameters"]["failOnError"], Value::Bool(true));
        assert_eq!(
            plan["env"]["parameters"]["failOnWarning"],
            Value::Bool(false)
        );
        let lax = USER.replace(
            "failOnError: true",
            "failOnError: false\n    failOnWarning: true",
        );
        let plan =
            parse(&adjust_user_plan(&lax, "https://app.example", ZapMode::Passive, TO).unwrap());
        assert_eq!(plan["env"]["parameters"]["failOnError"], Value::Bool(true));
        assert_eq!(
            plan["env"]["parameters"]["failOnWarning"],
            Value::Bool(false)
        );
    }

    #[test]
    fn the_agents_report_comes_after_a_report_the_plan_puts_first() {
        let user = "env: {contexts: [{urls: ['https://app.example']}]}\njobs:\n  - type: report\n    parameters: {template: traditional-json, risks: [high]}\n  - type: spider\n";
        let plan =
            parse(&adjust_user_plan(user, "https://app.example", ZapMode::Passive, TO).unwrap());
        assert_eq!(types(&plan), ["report", "spider", "report"]);
        assert_eq!(plan["jobs"][2]["parameters"]["reportDir"], TO.dir);
        assert!(plan["jobs"][2]["parameters"].get("risks").is_none());
        let user =
            "env: {contexts: [{name: c, url: 'https://app.example'}]}\njobs:\n  - type: spider\n";
        let plan =
            parse(&adjust_user_plan(user, "https://app.example", ZapMode::Passive, TO).unwrap());
        assert_eq!(types(&plan), ["spider", "report"]);
        assert_eq!(plan["env"]["parameters"]["failOnError"], Value::Bool(true));
    }

    #[test]
    fn a_user_plan_cannot_attack_under_passive_nor_take_the_outcome_from_the_agent() {
        let target = "https://app.example";
        let err = |text: &str, mode| check_user_plan(text, target, mode).unwrap_err().to_string();
        for attacking in ["sequence-activeScan", "retest", "script"] {
            let plan = USER.replace("type: requestor", &format!("type: {attacking}"));
            let e = err(&plan, ZapMode::Passive);
            assert!(
                e.contains(attacking) && e.contains("mode = \"active\""),
                "{e}"
            );
        }
        let unknown = USER.replace("type: requestor", "type: fuzz");
        assert!(err(&unknown, ZapMode::Passive).contains("does not know"));
        assert!(err(&unknown, ZapMode::Active).contains("does not know"));
        // An active label needs an active scan that runs.
        let disabled = USER.replace("type: requestor", "type: activeScan\n    enabled: false");
        assert!(err(&disabled, ZapMode::Active).contains("no activeScan"));
        let enabled = USER.replace("type: requestor", "type: activeScan\n    enabled: true");
        assert!(check_user_plan(&enabled, target, ZapMode::Active).is_ok());
        // ZAP's exit code and a failed scan's report are the agent's to judge.
        // ZAP reads YAML 1.1: `no` is false there, and a quoted "no" is written back unquoted.
        for enabled in ["no", "\"no\"", "off", "0"] {
            let plan = USER.replace(
                "type: requestor",
                &format!("type: activeScan\n    enabled: {enabled}"),
            );
            let e = err(&plan, ZapMode::Active);
            assert!(
                e.contains("enabled") || e.contains("YAML 1.1"),
                "enabled: {enabled}: {e}"
            );
        }
        for value in ["\"on\"", "\"1:30\"", "\"1_000\"", "\"2026-12-06\""] {
            let plan = USER.replace("maxDuration: 5", &format!("maxDuration: {value}"));
            let e = err(&plan, ZapMode::Passive);
            assert!(e.contains("YAML 1.1"), "{value}: {e}");
        }
        let exit = USER.replace("type: requestor", "type: exitStatus");
        assert!(err(&exit, ZapMode::Passive).contains("exitStatus"));
        for key in ["alwaysRun: true", "tests: []"] {
            let plan = USER.replace(
                "type: passiveScan-wait",
                &format!("type: passiveScan-wait\n    {key}"),
            );
            let e = err(&plan, ZapMode::Passive);
            assert!(e.contains(key.split(':').next().unwrap()), "{e}");
        }
    }

    #[test]
    fn a_user_plan_must_scan_the_target_and_agree_with_the_mode() {
        let target = "https://app.example";
        let err = |text: &str, mode| check_user_plan(text, target, mode).unwrap_err().to_string();
        let other = USER.replace("https://app.example/\"", "https://other.example\"");
        assert!(err(&other, ZapMode::Passive).contains("\"https://other.example\""));
        let active = USER.replace("type: requestor", "type: activeScan");
        let e = err(&active, ZapMode::Passive);
        assert!(
            e.contains("activeScan") && e.contains("mode = \"active\""),
            "{e}"
        );
        assert!(check_user_plan(&active, target, ZapMode::Active).is_ok());
        let e = err(USER, ZapMode::Active);
        assert!(e.contains("no activeScan"), "{e}");
        // Merge keys are applied before the check, as ZAP's reader does.
        let hidden = "x: &a {type: activeScan}\nenv: {contexts: [{urls: ['https://app.example']}]}\njobs:\n  - <<: *a\n";
        assert!(err(hidden, ZapMode::Passive).contains("activeScan"));
    }

    #[test]
    fn odd_yaml_is_refused_without_panicking() {
        let target = "https://app.example";
        for bad in [
            "",
            "[]",
            "- a\n- b",
            "env: 3\njobs: []",
            "env: {contexts: []}\njobs: []",
            "env: {parameters: 3, contexts: [{urls: ['https://app.example']}]}\njobs: []",
            "env: {contexts: [3]}\njobs: []",
            "env: {contexts: [{urls: 3}]}\njobs: []",
            "env: {contexts: [{urls: [[1]]}]}\njobs: []",
            "env: {contexts: [{name: x}]}\njobs: []",
            "env: {contexts: [{urls: ['https://app.example']}]}\njobs: 4",
            "env: {contexts: [{urls: ['https://app.example']}]}\njobs: [3]",
            "env: {contexts: [{urls: ['https://app.example']}]}\njobs: [{type: [1]}]",
            "env: {contexts: [{urls: ['https://app.example']}]}\njobs: [{type: report, parameters: 3}]",
            "{{{{",
            "a: !!binary aGVsbG8=\n",
            "a: b\na: c\n",
        ] {
            assert!(check_user_plan(bad, target, ZapMode::Passive).is_err(), "{bad:?}");
        }
        // A billion laughs ends in an error, not in a hang or an exhausted memory.
        let mut laughs = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..12 {
            let p = i - 1;
            laughs.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(check_user_plan(&laughs, target, ZapMode::Passive).is_err());
        // Deep nesting too.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(check_user_plan(&deep, target, ZapMode::Passive).is_err());
        let big = "#".repeat(MAX_PLAN_BYTES as usize + 1);
        assert!(matches!(
            check_user_plan(&big, target, ZapMode::Passive),
            Err(PlanError::TooLarge)
        ));
    }

    #[test]
    fn reading_a_user_plan_is_bounded() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("plan.yaml");
        std::fs::write(&p, USER).unwrap();
        assert_eq!(read_user_plan(&p).unwrap(), USER);
        std::fs::write(&p, vec![b'#'; MAX_PLAN_BYTES as usize + 1]).unwrap();
        assert!(matches!(read_user_plan(&p), Err(PlanError::TooLarge)));
        assert!(matches!(
            read_user_plan(&d.path().join("none")),
            Err(PlanError::Read { .. })
        ));
    }
}
