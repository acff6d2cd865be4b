//! ZAP jobs as an operator meets them, with a stand-in for `zap.sh` (ZAP cannot be installed
//! here: tests/fixtures/zap-standin.py) that reads the Automation Framework plan as ZAP does
//! (YAML), checks its shape and writes a real traditional-json report where the plan's report
//! job says: the passive and active modes uploaded as OWASP_ZAP and OWASP_ZAP_ACTIVE with the
//! job's target, ZAP's exit codes (2 uploaded, 1 set aside), and a plan of the operator's.

use std::path::Path;

use crate::harness::*;

/// Whether python3 with PyYAML is here (.ci/run installs python3-yaml); under CI it must be.
fn have_python_yaml() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false"),
            "python3 with PyYAML is required under CI (.ci/run installs python3-yaml)"
        );
        eprintln!("skipping: python3 with PyYAML is not installed (apt-get install python3-yaml)");
    }
    ok
}

fn standin() -> String {
    fixture("zap-standin.py").display().to_string()
}

/// A zap job for the stand-in; `args` are TOML strings, `extra` more keys.
fn zap_job(name: &str, args: &[String], extra: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        r#"
[[job]]
name = "{name}"
scanner = "zap"
schedule = "@weekly"
target = "https://intranet.example"
zap_path = "{}"
timeout = "10m"
args = [{}]
{extra}
"#,
        standin(),
        args.join(", ")
    )
}

/// The stand-in's `-config` arguments: what it expects and how it exits.
fn expect(jobs: &str, exit: u8, keep: &Path) -> Vec<String> {
    [
        "standin.expect.target=https://intranet.example".to_string(),
        format!("standin.expect.jobs={jobs}"),
        format!("standin.exit={exit}"),
        format!("standin.keep={}", keep.display()),
    ]
    .into_iter()
    .flat_map(|c| ["-config".to_string(), c])
    .collect()
}

async fn once(home: Home, job: &'static str) -> (Output, Home) {
    tokio::task::spawn_blocking(move || (home.cli(&["--once", "--job", job]), home))
        .await
        .unwrap()
}

fn yaml(path: &Path) -> serde_norway::Value {
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn jobs_json(home: &Home) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(home.state.join("jobs.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passive_job_runs_the_plan_it_writes_and_uploads_as_owasp_zap_with_its_target() {
    if !have_python_yaml() {
        return;
    }
    let api = StandIn::start().await;
    let tools = tempfile::tempdir().unwrap();
    let kept = tools.path().join("plan.yaml");
    let home = Home::new(
        &api.url(),
        "",
        &zap_job(
            "intranet",
            &expect("spider,passiveScan-wait,report", 0, &kept),
            "",
        ),
    );
    let check = home.cli(&["check-config"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check
            .stdout
            .contains("mode passive (OWASP_ZAP), generated plan"),
        "{}",
        check.stdout
    );
    let (out, home) = once(home, "intranet").await;
    assert_eq!(
        out.code,
        0,
        "{out:?}\n{}",
        std::fs::read_to_string(home.state.join("jobs.json")).unwrap_or_default()
    );
    let ups = api.uploads();
    assert_eq!(ups.len(), 1, "{out:?}");
    assert_eq!(ups[0].scan_type, "OWASP_ZAP");
    assert_eq!(ups[0].target.as_deref(), Some("https://intranet.example"));
    let body = String::from_utf8_lossy(&ups[0].bytes);
    assert!(
        body.contains("\"@name\": \"https://intranet.example\"")
            && body.contains("Content Security Policy"),
        "{body}"
    );
    // The plan ZAP was given: durations from the 10m timeout, the report into the run's
    // directory (gone now, with the plan).
    let plan = yaml(&kept);
    assert_eq!(plan["jobs"][0]["parameters"]["maxDuration"], 2);
    assert_eq!(plan["jobs"][1]["parameters"]["maxDuration"], 1);
    let dir = plan["jobs"][2]["parameters"]["reportDir"].as_str().unwrap();
    assert!(
        dir.starts_with(&home.state.join("tmp").display().to_string()),
        "{dir}"
    );
    assert!(std::fs::read_dir(home.state.join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_job_attacks_with_an_active_scan_and_uploads_as_owasp_zap_active_even_with_warnings(
) {
    if !have_python_yaml() {
        return;
    }
    let api = StandIn::start().await;
    let tools = tempfile::tempdir().unwrap();
    let kept = tools.path().join("plan.yaml");
    let home = Home::new(
        &api.url(),
        "",
        &zap_job(
            "attack",
            &expect(
                "spider,spiderAjax,passiveScan-wait,activeScan,report",
                2,
                &kept,
            ),
            "mode = \"active\"\najax_spider = true",
        ),
    );
    let (out, home) = once(home, "attack").await;
    assert_eq!(
        out.code,
        0,
        "exit 2 (warnings) is uploaded: {out:?}\n{}",
        std::fs::read_to_string(home.state.join("jobs.json")).unwrap_or_default()
    );
    let ups = api.uploads();
    assert_eq!(ups.len(), 1, "{out:?}");
    assert_eq!(ups[0].scan_type, "OWASP_ZAP_ACTIVE");
    assert_eq!(ups[0].target.as_deref(), Some("https://intranet.example"));
    let plan = yaml(&kept);
    assert_eq!(plan["jobs"][3]["parameters"]["maxScanDurationInMins"], 5);
    assert_eq!(jobs_json(&home)["attack"]["last_outcome"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_1_is_a_failed_run_whose_report_is_set_aside_and_never_uploaded() {
    if !have_python_yaml() {
        return;
    }
    let api = StandIn::start().await;
    let tools = tempfile::tempdir().unwrap();
    let kept = tools.path().join("plan.yaml");
    let home = Home::new(
        &api.url(),
        "",
        &zap_job(
            "down",
            &expect("spider,passiveScan-wait,report", 1, &kept),
            "",
        ),
    );
    let (out, home) = once(home, "down").await;
    assert_eq!(out.code, 65, "{out:?}");
    assert!(out.stdout.contains("job failed    down"), "{}", out.stdout);
    assert!(
        out.stdout.contains("exited with status 1"),
        "{}",
        out.stdout
    );
    assert!(
        api.uploads().is_empty(),
        "an empty scan must not be uploaded"
    );
    let j = jobs_json(&home);
    assert_eq!(j["down"]["last_outcome"], "failed", "{j}");
    let detail = j["down"]["last_reason"].to_string();
    assert!(
        detail.contains("status 1") && detail.contains("set aside"),
        "{j}"
    );
    assert!(
        j["down"]["last_stderr"]
            .to_string()
            .contains("error accessing URL"),
        "{j}"
    );
    let rejected = home.names_in("rejected");
    assert!(
        rejected
            .iter()
            .any(|n| n.starts_with("down-") && n.ends_with("zap.json")),
        "the report is kept in rejected/: {rejected:?}"
    );
}

const USER_PLAN: &str = r#"# The operator's own plan: a request of its own before the passive scan.
env:
  contexts:
    - name: intranet
      urls:
        - https://intranet.example/
  parameters:
    progressToStdout: false
jobs:
  - type: spider
    parameters:
      maxDuration: 3
  - type: requestor
    requests:
      - url: https://intranet.example/health
  - type: passiveScan-wait
  - type: report
    parameters:
      template: traditional-json
      reportDir: /srv/zap-reports
      reportFile: intranet.json
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_plan_is_run_as_written_with_the_agents_report_job_last() {
    if !have_python_yaml() {
        return;
    }
    let api = StandIn::start().await;
    let tools = tempfile::tempdir().unwrap();
    let kept = tools.path().join("plan.yaml");
    let user = tools.path().join("zap-plan.yaml");
    std::fs::write(&user, USER_PLAN).unwrap();
    let home = Home::new(
        &api.url(),
        "",
        &zap_job(
            "own-plan",
            &expect("spider,requestor,passiveScan-wait,report,report", 0, &kept),
            &format!("plan = \"{}\"", user.display()),
        ),
    );
    let check = home.cli(&["check-config"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check.stdout.contains(&format!(
            "mode passive (OWASP_ZAP), user plan {}",
            user.display()
        )),
        "{}",
        check.stdout
    );
    let (out, home) = once(home, "own-plan").await;
    assert_eq!(
        out.code,
        0,
        "{out:?}\n{}",
        std::fs::read_to_string(home.state.join("jobs.json")).unwrap_or_default()
    );
    let ups = api.uploads();
    assert_eq!(ups.len(), 1, "{out:?}");
    assert_eq!(ups[0].scan_type, "OWASP_ZAP");
    assert_eq!(ups[0].target.as_deref(), Some("https://intranet.example"));
    // Its own jobs and settings kept (its report job too), the agent's report job appended
    // last, and the file itself untouched.
    let plan = yaml(&kept);
    assert_eq!(
        plan["jobs"][1]["requests"][0]["url"],
        "https://intranet.example/health"
    );
    assert_eq!(plan["env"]["parameters"]["progressToStdout"], false);
    assert_eq!(plan["env"]["parameters"]["failOnError"], true);
    assert_eq!(
        plan["jobs"][3]["parameters"]["reportDir"],
        "/srv/zap-reports"
    );
    let report = &plan["jobs"][4]["parameters"];
    assert_ne!(report["reportDir"], "/srv/zap-reports");
    assert!(report["reportFile"].as_str().unwrap().ends_with("zap.json"));
    assert_eq!(std::fs::read_to_string(&user).unwrap(), USER_PLAN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_or_scan_type_that_would_mislabel_the_scan_is_refused_at_load() {
    let api = StandIn::start().await;
    let tools = tempfile::tempdir().unwrap();
    let user = tools.path().join("zap-plan.yaml");
    std::fs::write(
        &user,
        USER_PLAN.replace("type: requestor", "type: activeScan"),
    )
    .unwrap();
    let home = Home::new(
        &api.url(),
        "",
        &zap_job("sneaky", &[], &format!("plan = \"{}\"", user.display())),
    );
    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        out.stderr.contains("job[0].plan") && out.stderr.contains("mode = \"active\""),
        "{}",
        out.stderr
    );
    let out = home.cli(&["--once", "--job", "sneaky"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(api.uploads().is_empty());

    let home = Home::new(
        &api.url(),
        "",
        &zap_job("mislabelled", &[], "scan_type = \"OWASP_ZAP_ACTIVE\""),
    );
    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        out.stderr.contains("job[0].scan_type") && out.stderr.contains("mode = \"passive\""),
        "{}",
        out.stderr
    );

    // ZAP's quick attack passed through args would land in a passive job's report.
    let home = Home::new(
        &api.url(),
        "",
        &zap_job(
            "quick",
            &["-config".into(), "x=y".into(), "-quickurl".into()],
            "",
        ),
    );
    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        out.stderr.contains("job[0].args[2]") && out.stderr.contains("-quickurl"),
        "{}",
        out.stderr
    );
}
