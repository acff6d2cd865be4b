//! Scan jobs as an operator meets them: real nmap scanning a port this test opens on
//! 127.0.0.1, with `--once --job` and on a schedule in the daemon; failures, timeouts and what
//! they leave behind (nothing running, the reason recorded). ZAP jobs are in `zap.rs`.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;

fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// A job section for Home's config.
fn nmap_job(name: &str, schedule: &str, port: u16) -> String {
    format!(
        r#"
[[job]]
name = "{name}"
scanner = "nmap"
schedule = "{schedule}"
targets = ["127.0.0.1"]
args = ["-sT", "-Pn", "-n", "-p", "{port}"]
timeout = "2m"
"#
    )
}

/// A `command` job section running `program` with `{output}` as its argument.
fn command_job(name: &str, schedule: &str, program: &str, extra: &str) -> String {
    format!(
        r#"
[[job]]
name = "{name}"
scanner = "command"
schedule = "{schedule}"
command = ["{program}", "{{output}}"]
{extra}
"#
    )
}

/// `hostedscan-agent ARGS` for `home`, off the async runtime.
async fn cli(home: Home, args: &'static [&'static str]) -> (Output, Home) {
    tokio::task::spawn_blocking(move || (home.cli(args), home))
        .await
        .unwrap()
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn jobs_json(home: &Home) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(home.state.join("jobs.json")).unwrap()).unwrap()
}

/// Whether any process still has `marker` in its command line.
fn running(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| {
                let line = String::from_utf8_lossy(&c).replace('\0', " ");
                line.contains(marker) && !line.contains("hostedscan-agent")
            })
            .unwrap_or(false)
            && std::fs::read_to_string(e.path().join("stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_job_scans_localhost_with_real_nmap_and_uploads_the_report() {
    if !have("nmap") {
        eprintln!("skipping: nmap is not installed (apt-get install -y nmap; .ci/run does)");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", &nmap_job("local-tcp", "@daily", port));
    let (out, home) = cli(home, &["--once", "--job", "local-tcp"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let ups = api.uploads();
    assert_eq!(ups.len(), 1, "{out:?}");
    assert_eq!(ups[0].scan_type, "NMAP");
    let name = ups[0].file_name.clone().unwrap_or_default();
    assert!(
        name.starts_with("local-tcp-") && name.ends_with("nmap.xml"),
        "{name}"
    );
    let body = String::from_utf8_lossy(&ups[0].bytes);
    assert!(
        body.contains(&format!(r#"portid="{port}"><state state="open""#)),
        "the report should show port {port} open: {body}"
    );
    let j = jobs_json(&home);
    assert_eq!(j["local-tcp"]["last_outcome"], "ok", "{j}");
    // status shows the job: last run, outcome, next run.
    let st = home.cli(&["status", "--format", "json"]);
    let st: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    let job = &st["jobs"][0];
    assert_eq!(job["name"], "local-tcp");
    assert_eq!(job["outcome"], "ok");
    assert!(
        job["last_run"].is_string() && job["next_run"].is_string(),
        "{st}"
    );
    // Nothing left in the run directories.
    assert!(std::fs::read_dir(home.state.join("tmp"))
        .unwrap()
        .next()
        .is_none());
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_runs_a_job_on_its_schedule_and_each_report_arrives_in_order() {
    if !have("nmap") {
        eprintln!("skipping: nmap is not installed (apt-get install -y nmap; .ci/run does)");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let api = StandIn::start().await;
    // Every 3 seconds (6 fields: with seconds).
    let home = Home::new(&api.url(), "", &nmap_job("every-3s", "*/3 * * * * *", port));
    let daemon = Daemon::start(home.load());
    api.wait_for_uploads(3, Duration::from_secs(40)).await;
    daemon.stop().await;
    let ups = api.uploads();
    let names: Vec<String> = ups
        .iter()
        .map(|u| u.file_name.clone().unwrap_or_default())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "reports arrive in the order of their runs");
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "one report per run: {names:?}");
    for u in &ups {
        assert!(String::from_utf8_lossy(&u.bytes)
            .contains(&format!(r#"portid="{port}"><state state="open""#)));
    }
    // No run overlapped another: each started after the previous report was written.
    let starts: Vec<i64> = ups
        .iter()
        .map(|u| {
            let b = String::from_utf8_lossy(&u.bytes);
            let s = b
                .split("start=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_string();
            s.parse().unwrap()
        })
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_recorded_with_stderr_and_makes_once_exit_65() {
    let api = StandIn::start().await;
    let tools = tempfile::tempdir().unwrap();
    let scan = script(
        tools.path(),
        "scan",
        "#!/bin/sh\necho 'starting' >&2\necho 'cannot resolve the target' >&2\nexit 3\n",
    );
    let home = Home::new(&api.url(), "", &command_job("broken", "@daily", &scan, ""));
    let (out, home) = cli(home, &["--once", "--job", "broken"]).await;
    assert_eq!(out.code, 65, "{out:?}");
    assert!(
        out.stdout.contains("job failed    broken"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("exited with status 3"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("jobs failed 1"), "{}", out.stdout);
    assert!(api.uploads().is_empty());
    let j = jobs_json(&home);
    assert_eq!(j["broken"]["last_outcome"], "failed", "{j}");
    assert_eq!(
        j["broken"]["last_stderr"][1], "cannot resolve the target",
        "{j}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_output_goes_to_rejected_and_the_run_fails() {
    let api = StandIn::start().await;
    let tools = tempfile::tempdir().unwrap();
    // An Nmap report cut in the middle, and a zero exit: validation decides.
    let scan = script(
        tools.path(),
        "scan",
        "#!/bin/sh\nprintf '<?xml version=\"1.0\"?><nmaprun scanner=\"nmap\" args=\"x\"><host>' > \"$1\"\n",
    );
    let home = Home::new(&api.url(), "", &command_job("cut", "@daily", &scan, ""));
    let (out, home) = cli(home, &["--once", "--job", "cut"]).await;
    assert_eq!(out.code, 65, "{out:?}");
    assert!(out.stdout.contains("truncated"), "{}", out.stdout);
    let kept = home.names_in("rejected");
    assert!(
        kept.iter().any(|n| n.starts_with("cut-")),
        "the output is kept in rejected/: {kept:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_timeout_is_stopped_with_every_process_it_started() {
    let api = StandIn::start().await;
    let marker = format!("sleep 9{}", std::process::id() % 1000 + 1000);
    let home = Home::new(
        &api.url(),
        "",
        &format!(
            r#"
[[job]]
name = "hangs"
scanner = "command"
schedule = "@daily"
timeout = "1s"
command = ["sh", "-c", "{marker} & {marker} & echo partial > \"$0\"; wait", "{{output}}"]
"#
        ),
    );
    let started = std::time::Instant::now();
    let (out, home) = cli(home, &["--once", "--job", "hangs"]).await;
    assert_eq!(out.code, 65, "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped promptly: {:?}",
        started.elapsed()
    );
    assert!(out.stdout.contains("timeout"), "{}", out.stdout);
    assert!(
        !running(&marker),
        "a child of the timed-out run is still running"
    );
    assert_eq!(jobs_json(&home)["hangs"]["last_outcome"], "timeout");
    // What it wrote before it was stopped is kept, with the reason.
    assert!(home
        .names_in("rejected")
        .iter()
        .any(|n| n.starts_with("hangs-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_job_targets_and_unknown_job_names_are_refused() {
    let api = StandIn::start().await;
    let home = Home::new(
        &api.url(),
        "",
        r#"
[[job]]
name = "evil"
scanner = "nmap"
schedule = "@daily"
targets = ["-oN/tmp/owned"]
"#,
    );
    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(out.stderr.contains("job[0].targets"), "{}", out.stderr);
    let home = Home::new(&api.url(), "", "");
    let out = home.cli(&["--once", "--job", "nope"]);
    assert_eq!(out.code, 64, "{out:?}");
    assert!(out.stderr.contains("no job named"), "{}", out.stderr);
}

/// A scanner that takes longer than the schedule's period: the next run is skipped rather than
/// started beside it. The script records an overlap if it ever finds its own lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_never_run_twice_at_once_and_max_concurrent_jobs_holds() {
    let api = StandIn::start().await;
    let tools = tempfile::tempdir().unwrap();
    let t = tools.path().display().to_string();
    let report = fixture("nmap-tcp-localhost.xml").display().to_string();
    // $1 = output, $2 = a name for the lock. Any two runs at once (of one job, or of both
    // jobs, since max_concurrent_jobs = 1) leave a line in overlaps.
    let slow = script(
        tools.path(),
        "slow",
        &format!(
            "#!/bin/sh\nfor l in {t}/lock-*; do [ -e \"$l\" ] && echo \"$2 while $l\" >> {t}/overlaps; done\ntouch {t}/lock-$2\nsleep 2\nrm -f {t}/lock-$2\necho \"$2\" >> {t}/runs\ncp {report} \"$1\"\n"
        ),
    );
    let job = |name: &str| {
        format!(
            r#"
[[job]]
name = "{name}"
scanner = "command"
schedule = "* * * * * *"
command = ["{slow}", "{{output}}", "{name}"]
"#
        )
    };
    let home = Home::new(
        &api.url(),
        "max_concurrent_jobs = 1",
        &format!("{}{}", job("a"), job("b")),
    );
    let daemon = Daemon::start(home.load());
    let runs = tools.path().join("runs");
    eventually("four runs", Duration::from_secs(30), || {
        std::fs::read_to_string(&runs).is_ok_and(|r| r.lines().count() >= 4)
    })
    .await;
    daemon.stop().await;
    let overlaps = std::fs::read_to_string(tools.path().join("overlaps")).unwrap_or_default();
    assert!(overlaps.is_empty(), "runs overlapped:\n{overlaps}");
    let runs = std::fs::read_to_string(&runs).unwrap();
    assert!(
        runs.contains('a') && runs.contains('b'),
        "both jobs ran: {runs}"
    );
}

/// SSLyze is real where it installs (`pip install sslyze`; .ci/run tries): it scans an
/// `openssl s_server` on 127.0.0.1 and its JSON report is uploaded as SSLYZE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslyze_job_scans_a_local_tls_server() {
    if !have("sslyze") {
        eprintln!("skipping: sslyze is not installed (pip install sslyze)");
        return;
    }
    let pki = tempfile::tempdir().unwrap();
    if crate::tls::make_pki(pki.path()).is_none() {
        eprintln!("skipping: openssl is not installed");
        return;
    }
    let (_server, port) = crate::tls::start_server(pki.path());
    let api = StandIn::start().await;
    let home = Home::new(
        &api.url(),
        "",
        &format!(
            r#"
[[job]]
name = "tls-local"
scanner = "sslyze"
schedule = "@daily"
targets = ["127.0.0.1:{port}"]
args = ["--certinfo", "--tlsv1_2", "--tlsv1_3"]
timeout = "3m"
"#
        ),
    );
    let (out, home) = cli(home, &["--once", "--job", "tls-local"]).await;
    assert_eq!(
        out.code,
        0,
        "{out:?}\n{}",
        std::fs::read_to_string(home.state.join("jobs.json")).unwrap_or_default()
    );
    let ups = api.uploads();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].scan_type, "SSLYZE");
    assert!(
        String::from_utf8_lossy(&ups[0].bytes).contains(&format!("\"port\": {port}"))
            || String::from_utf8_lossy(&ups[0].bytes).contains(&format!("\"port\":{port}"))
    );
}

/// `catch_up = true`: a run missed while the agent was down (the last run, in jobs.json, is
/// older than the last scheduled time) happens once at start; without it, the job waits for
/// its next time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_run_is_caught_up_at_start_only_when_asked() {
    let api = StandIn::start().await;
    let tools = tempfile::tempdir().unwrap();
    let report = fixture("nmap-tcp-localhost.xml").display().to_string();
    let copy = script(
        tools.path(),
        "copy",
        &format!("#!/bin/sh\ncp {report} \"$1\"\n"),
    );
    let job = |name: &str, catch_up: bool| {
        command_job(name, "@daily", &copy, &format!("catch_up = {catch_up}"))
    };
    let home = Home::new(
        &api.url(),
        "",
        &format!("{}{}", job("eager", true), job("patient", false)),
    );
    std::fs::create_dir_all(&home.state).unwrap();
    let two_days_ago = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
    std::fs::write(
        home.state.join("jobs.json"),
        format!(
            r#"{{"eager": {{"last_started": "{two_days_ago}", "last_outcome": "ok"}},
                "patient": {{"last_started": "{two_days_ago}", "last_outcome": "ok"}}}}"#
        ),
    )
    .unwrap();
    let daemon = Daemon::start(home.load());
    let ups = api.wait_for_uploads(1, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    daemon.stop().await;
    assert_eq!(api.uploads().len(), 1, "only the catch_up job ran");
    assert!(ups[0]
        .file_name
        .as_deref()
        .unwrap_or_default()
        .starts_with("eager-"));
}

/// Stopping the daemon stops the scanners it is running: nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_daemon_stops_a_running_scan() {
    let api = StandIn::start().await;
    let marker = format!("sleep 8{}", std::process::id() % 1000 + 1000);
    let home = Home::new(
        &api.url(),
        "",
        &format!(
            r#"
[[job]]
name = "long"
scanner = "command"
schedule = "* * * * * *"
command = ["sh", "-c", "{marker} & {marker}; wait", "{{output}}"]
"#
        ),
    );
    let daemon = Daemon::start(home.load());
    eventually("the scan is running", Duration::from_secs(10), || {
        running(&marker)
    })
    .await;
    daemon.stop().await;
    assert!(
        !running(&marker),
        "the daemon stopped but its scan is still running"
    );
}

/// A scanner does not inherit the agent's secrets: not the API key from the environment, nor
/// any HOSTEDSCAN_AGENT__ override, nor systemd's credentials directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanners_do_not_see_the_agents_secrets() {
    let api = StandIn::start().await;
    let tools = tempfile::tempdir().unwrap();
    let seen = tools.path().join("env.txt");
    let report = fixture("nmap-tcp-localhost.xml").display().to_string();
    let dump = script(
        tools.path(),
        "dump",
        &format!("#!/bin/sh\nenv > {}\ncp {report} \"$1\"\n", seen.display()),
    );
    let home = Home::new(
        &api.url(),
        "",
        &command_job("envcheck", "@daily", &dump, ""),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
        .args([
            "-c",
            &home.config.display().to_string(),
            "--once",
            "--job",
            "envcheck",
        ])
        .env("HOSTEDSCAN_API_KEY", KEY)
        .env("HOSTEDSCAN_AGENT__API__TIMEOUT", "5s")
        .env("CREDENTIALS_DIRECTORY", tools.path())
        .env("SOME_OTHER_VAR", "kept")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(env.contains("SOME_OTHER_VAR=kept"), "{env}");
    assert!(!env.contains("HOSTEDSCAN") && !env.contains(KEY), "{env}");
    assert!(!env.contains("CREDENTIALS_DIRECTORY"), "{env}");
    assert!(env.contains("TMPDIR="), "{env}");
}

/// Even when the agent is killed outright (kill -9, the OOM killer) and cannot stop it, the
/// scanner does not run on: the kernel kills it with its parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanner_dies_with_a_killed_agent() {
    let api = StandIn::start().await;
    let secs = format!("7{}", std::process::id() % 1000 + 1000);
    let marker = format!("sleep {secs}");
    let home = Home::new(
        &api.url(),
        "",
        &format!(
            r#"
[[job]]
name = "orphan"
scanner = "command"
schedule = "@daily"
command = ["sleep", "{secs}"]
"#
        ),
    );
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
        .args([
            "-c",
            &home.config.display().to_string(),
            "--once",
            "--job",
            "orphan",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("the scan is running", Duration::from_secs(10), || {
        running(&marker)
    })
    .await;
    agent.kill().unwrap();
    agent.wait().unwrap();
    eventually("the scan is gone", Duration::from_secs(5), || {
        !running(&marker)
    })
    .await;
}
