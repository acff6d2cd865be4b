//! What ships for monitoring the agent: the Prometheus alerting rules
//! (`packaging/prometheus/alerts.yml`) pass `promtool check rules` and their unit tests
//! (`promtool test rules`); the Grafana dashboard (`packaging/grafana/hostedscan-agent.json`) is
//! importable JSON whose every panel has a data source and queries; every metric name either
//! uses is served by a live daemon's `/metrics` once it has uploaded, rejected a file and run
//! jobs; and the job metrics the alerts watch follow the runs and survive a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn packaging(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(rel)
}

const RULES: &str = "prometheus/alerts.yml";
const RULE_TESTS: &str = "prometheus/alerts.test.yml";
const DASHBOARD: &str = "grafana/hostedscan-agent.json";

/// Every `hostedscan_agent_*` identifier in `text`, wherever it is (expressions, and the
/// annotations that name a metric): crude, and so it misses none.
fn names_used(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "hostedscan_agent_";
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(PREFIX) {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + PREFIX.len()..];
        let tail: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        out.insert(format!("{PREFIX}{tail}"));
    }
    out
}

/// The samples of a scrape: `name{labels}` (as written) -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The series names of a scrape, as Prometheus stores them: counters with `_total`,
/// histograms as `_bucket`, `_sum` and `_count`. A rule or panel must use one of these (the
/// bare name of a counter or a histogram is not a series), so names are compared as they are.
fn series_names(text: &str) -> BTreeSet<String> {
    samples(text)
        .keys()
        .map(|k| k.split('{').next().unwrap_or(k).to_string())
        .collect()
}

/// `/metrics`, or None while the daemon is not listening yet.
async fn scrape(port: u16) -> Option<String> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?;
    assert_eq!(r.status(), 200);
    r.text().await.ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn job(name: &str, schedule: &str, program: &str) -> String {
    format!(
        "\n[[job]]\nname = \"{name}\"\nscanner = \"command\"\nschedule = \"{schedule}\"\ncommand = [\"{program}\", \"{{output}}\"]\n"
    )
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Scrapes until `ready` holds for the samples (the agent counts an outcome a moment after
/// the stand-in or the file system shows it).
async fn scrape_until(
    port: u16,
    what: &str,
    ready: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> String {
    let start = std::time::Instant::now();
    loop {
        let text = scrape(port).await.unwrap_or_default();
        if ready(&samples(&text)) {
            return text;
        }
        if start.elapsed() > Duration::from_secs(40) {
            panic!("timed out waiting for {what}; the last scrape:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_alerts_and_the_dashboard_is_served_and_job_metrics_follow_runs() {
    let api = StandIn::start().await;
    let port = free_port();
    let tools = tempfile::tempdir().unwrap();
    let report = tools.path().join("report.xml");
    std::fs::write(&report, nmap_report()).unwrap();
    // Every 2 s: "good" writes a valid report (uploaded once, then a duplicate each time: still
    // a success); "bad" fails every time.
    let good = script(
        tools.path(),
        "good",
        &format!("#!/bin/sh\ncp '{}' \"$1\"\n", report.display()),
    );
    let bad = script(
        tools.path(),
        "bad",
        "#!/bin/sh\necho 'cannot resolve the target' >&2\nexit 3\n",
    );
    let metrics = format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let home = Home::new(
        &api.url(),
        "",
        &format!(
            "{metrics}{}{}",
            job("good", "*/2 * * * * *", &good),
            job("bad", "*/2 * * * * *", &bad)
        ),
    );
    let daemon = Daemon::start(home.load());
    home.drop_file("notes.json", br#"{"not": "a scanner report"}"#);
    api.wait_for_uploads(1, Duration::from_secs(30)).await;
    let key = |name: &str, labels: &str| format!("hostedscan_agent_{name}{{{labels}}}");
    let text = scrape_until(port, "two failed runs, a success and a rejection", |s| {
        s.get(&key("job_consecutive_failures", "scan_job=\"bad\""))
            .is_some_and(|v| *v >= 2.0)
            && s.get(&key(
                "job_last_success_timestamp_seconds",
                "scan_job=\"good\"",
            ))
            .is_some_and(|v| *v > 0.0)
            && s.get(&key("files_rejected_total", "kind=\"not_a_report\""))
                .is_some_and(|v| *v >= 1.0)
            && s.get(&key("uploads_total", "result=\"uploaded\"")) == Some(&1.0)
    })
    .await;
    let s = samples(&text);
    let get = |k: &str| {
        *s.get(k)
            .unwrap_or_else(|| panic!("{k} missing from\n{text}"))
    };
    assert_eq!(
        get(&key(
            "build_info",
            &format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))
        )),
        1.0
    );
    let success = get(&key(
        "job_last_success_timestamp_seconds",
        "scan_job=\"good\"",
    ));
    assert!((now() - success).abs() < 60.0, "{success}");
    assert_eq!(
        get(&key(
            "job_last_success_timestamp_seconds",
            "scan_job=\"bad\""
        )),
        0.0,
        "never succeeded"
    );
    assert_eq!(
        get(&key("job_consecutive_failures", "scan_job=\"good\"")),
        0.0
    );
    assert!(
        get(&key(
            "job_runs_total",
            "scan_job=\"bad\",outcome=\"failed\""
        )) >= 2.0
    );
    assert!(get(&key("job_duration_seconds_count", "scan_job=\"good\"")) >= 1.0);
    assert!(
        get(&key(
            "job_duration_seconds_bucket",
            "le=\"+Inf\",scan_job=\"good\""
        )) >= 1.0
    );
    assert_eq!(get(&key("files_rejected_total", "kind=\"malformed\"")), 0.0);
    assert_eq!(get(&key("uploads_total", "result=\"failed\"")), 0.0);
    assert_eq!(get("hostedscan_agent_api_key_refused"), 0.0);
    assert_eq!(get("hostedscan_agent_admission_paused"), 0.0);
    assert!(get("hostedscan_agent_last_upload_timestamp_seconds") > 0.0);

    // Every name the rules and the dashboard use is a series this agent serves.
    let served = series_names(&text);
    for file in [RULES, DASHBOARD] {
        let used = names_used(&std::fs::read_to_string(packaging(file)).unwrap());
        assert!(used.len() >= 8, "{file} uses only {used:?}");
        let unknown: Vec<_> = used.difference(&served).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics /metrics does not serve: {unknown:?}\nserved: {served:?}"
        );
    }
    daemon.stop().await;

    // Restarted without "good": the job metrics start from jobs.json, for the jobs configured.
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.state.join("jobs.json")).unwrap()).unwrap();
    let failures = history["bad"]["failures_in_a_row"].as_f64().unwrap();
    assert!(failures >= 2.0, "{history}");
    let config = std::fs::read_to_string(&home.config).unwrap();
    let config = config
        .replace(&job("good", "*/2 * * * * *", &good), "")
        .replace("*/2 * * * * *", "0 0 12 1 1 * 2099");
    std::fs::write(&home.config, config).unwrap();
    let daemon = Daemon::start(home.load());
    // The job runner fills the job gauges as it starts, beside the metrics server.
    let text = scrape_until(port, "the restarted daemon's job metrics", |s| {
        s.contains_key(&key("job_consecutive_failures", "scan_job=\"bad\""))
    })
    .await;
    let s = samples(&text);
    assert_eq!(
        s.get(&key("job_consecutive_failures", "scan_job=\"bad\"")),
        Some(&failures),
        "{text}"
    );
    assert!(
        !text.contains("scan_job=\"good\"}"),
        "a job no longer configured is not shown: {text}"
    );
    daemon.stop().await;
}

/// Whether CI is running us: a missing tool fails the test there instead of skipping it.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Whether promtool is here; without it, a skip with a message, or a failure under CI.
fn promtool_here() -> bool {
    if have("promtool") {
        return true;
    }
    assert!(
        !in_ci(),
        "promtool is missing: .ci/run installs it (apt-get install -y prometheus)"
    );
    eprintln!("skipping: promtool is not installed (apt-get install -y prometheus; .ci/run does)");
    false
}

#[test]
fn promtool_checks_the_alerting_rules_and_their_unit_tests_pass() {
    if !promtool_here() {
        return;
    }
    let run = |args: &[&str]| {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(packaging("prometheus"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        text
    };
    let rules = packaging(RULES).display().to_string();
    let checked = run(&["check", "rules", &rules]);
    let alerts = std::fs::read_to_string(&rules)
        .unwrap()
        .matches("- alert: ")
        .count();
    assert!(
        checked.contains(&format!("SUCCESS: {alerts} rules found")),
        "{checked}"
    );
    // Each alert fires in one case and stays quiet in another.
    let tests = std::fs::read_to_string(packaging(RULE_TESTS)).unwrap();
    for alert in std::fs::read_to_string(&rules)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        let evals = format!("alertname: {alert}\n");
        let cases: Vec<&str> = tests
            .split("- eval_time:")
            .filter(|c| c.contains(&evals))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_labels"))
                && cases.iter().any(|c| c.contains("exp_alerts: []")),
            "{alert}: alerts.test.yml needs a firing and a quiet case"
        );
    }
    let tested = run(&["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn the_dashboard_is_importable_json_with_a_data_source_and_queries_in_every_panel() {
    let d: serde_json::Value =
        serde_json::from_slice(&std::fs::read(packaging(DASHBOARD)).unwrap()).unwrap();
    assert_eq!(d["uid"], "hostedscan-agent");
    assert!(
        d["schemaVersion"].as_u64().unwrap() >= 36,
        "a current schema"
    );
    assert!(d["id"].is_null(), "no id: Grafana gives one on import");
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus data source chosen at import: {vars:?}"
    );
    let panels = d["panels"].as_array().unwrap();
    let mut queries = 0;
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap_or_default();
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let grid = &p["gridPos"];
        assert!(
            ["x", "y", "w", "h"].iter().all(|k| grid[k].is_u64()),
            "{title}: gridPos {grid}"
        );
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert!(
                t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("hostedscan_agent_")),
                "{title}: {t}"
            );
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries} queries");
    let exprs: String = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    // What the dashboard is for: each of these has a panel.
    for name in [
        "hostedscan_agent_queue_depth",
        "hostedscan_agent_uploads_total",
        "hostedscan_agent_uploaded_bytes_total",
        "hostedscan_agent_files_rejected_total",
        "hostedscan_agent_job_runs_total",
        "hostedscan_agent_job_duration_seconds_bucket",
        "hostedscan_agent_uploads_paused",
        "hostedscan_agent_source_uploads_total",
    ] {
        assert!(names_used(&exprs).contains(name), "no panel shows {name}");
    }
}

/// Each query of the dashboard is valid PromQL: `promtool check rules` parses them as recording
/// rules, with Grafana's variables given values.
#[test]
fn promtool_parses_every_query_of_the_dashboard() {
    if !promtool_here() {
        return;
    }
    let d: serde_json::Value =
        serde_json::from_slice(&std::fs::read(packaging(DASHBOARD)).unwrap()).unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for t in d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
    {
        let expr = t["expr"]
            .as_str()
            .unwrap()
            .replace("$instance", ".*")
            .replace("$__rate_interval", "5m");
        n += 1;
        // A JSON string is a YAML double-quoted scalar.
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: {}\n",
            serde_json::Value::String(expr)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("SUCCESS: {n} rules found")),
        "{text}"
    );
}
