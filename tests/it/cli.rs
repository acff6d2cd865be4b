//! The other verbs as the built binary: validate, status, test-connection, check-config,
//! requeue --rejected, and the key never showing in any output.

use crate::harness::*;

#[test]
fn validate_json_prints_the_contracts_fields_and_exits_65_on_any_invalid() {
    let home = Home::new("http://127.0.0.1:9/v1", "", "");
    let good = fixture("zap-intranet.json");
    let bad = fixture("nmap-error-localhost.xml");
    let out = home.cli(&[
        "validate",
        "--format",
        "json",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 65, "{out:?}");
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        for k in [
            "path",
            "valid",
            "format",
            "scan_type",
            "target",
            "reason",
            "warnings",
        ] {
            assert!(l.get(k).is_some(), "{k} missing in {l}");
        }
    }
    assert_eq!(lines[0]["valid"], true);
    assert_eq!(lines[0]["format"], "zap-json");
    assert_eq!(lines[0]["scan_type"], "OWASP_ZAP");
    assert_eq!(lines[0]["target"], "http://127.0.0.1:8080");
    assert!(lines[0]["reason"].is_null());
    assert_eq!(lines[1]["valid"], false);
    assert!(lines[1]["scan_type"].is_null());
    assert!(lines[1]["reason"]
        .as_str()
        .unwrap()
        .contains("exit=\"error\""));

    let out = home.cli(&["validate", good.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = home.cli(&["validate", "--scan-type", "SSLYZE", good.to_str().unwrap()]);
    assert_eq!(
        out.code, 65,
        "a configured type that does not fit is a rejection: {out:?}"
    );
    let out = home.cli(&["validate", "/no/such/file.xml"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(out.stdout.contains("cannot read"), "{}", out.stdout);
}

#[test]
fn validate_text_is_one_line_per_file() {
    let home = Home::new("http://127.0.0.1:9/v1", "", "");
    let bad = fixture("nmap-error-localhost.xml");
    let out = home.cli(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_reports_the_state_directory() {
    let api = StandIn::start().await;
    api.push_fault(Endpoint::Results, Fault::Status(400));
    let home = Home::new(&api.url(), "upload_concurrency = 1", "");
    home.drop_file("refused.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    home.drop_file("bad.json", b"[]");
    home.drop_file("ok.xml", &fixture_bytes("nmap-udp-localhost.xml"));
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 65, "{out:?}");
    let out = home.cli(&["status", "--format", "json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let s: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for k in [
        "queued",
        "failed",
        "rejected",
        "uploaded_total",
        "last_upload_at",
        "last_error",
        "source_id",
        "jobs",
    ] {
        assert!(s.get(k).is_some(), "{k} missing in {s}");
    }
    assert_eq!(s["queued"], 0);
    assert_eq!(s["failed"], 1);
    assert_eq!(s["rejected"], 1);
    assert_eq!(s["uploaded_total"], 1);
    assert!(s["last_upload_at"].is_string());
    assert_eq!(s["source_id"], api.sources()[0].id.as_str());
    assert!(s["jobs"].is_array());
    let text = home.cli(&["status"]);
    assert!(
        text.stdout.contains("failed           1: ")
            && text.stdout.contains("rejected         1: bad.json"),
        "{}",
        text.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_says_whether_the_key_works() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let (out, home) = tokio::task::spawn_blocking(move || (home.cli(&["test-connection"]), home))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("key accepted"), "{}", out.stdout);
    api.set_key("rotated");
    let (out, home) = tokio::task::spawn_blocking(move || (home.cli(&["test-connection"]), home))
        .await
        .unwrap();
    assert_eq!(out.code, 77, "{out:?}");
    assert!(!out.stderr.contains(KEY));
    api.go_down().await;
    let out = tokio::task::spawn_blocking(move || home.cli(&["test-connection"]))
        .await
        .unwrap();
    assert_eq!(out.code, 75, "{out:?}");
    assert!(api.sources().is_empty(), "test-connection creates nothing");
}

#[test]
fn check_config_accepts_a_good_file_and_explains_a_bad_one() {
    let home = Home::new("http://127.0.0.1:9/v1", "", "");
    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("OK"));
    assert!(
        !out.stdout.contains(KEY),
        "check-config must not print the key"
    );
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("[source]", "[source]\nnmae = \"x\"");
    std::fs::write(&home.config, cfg).unwrap();
    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(out.stderr.contains("nmae"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_appears_in_trace_logs_or_json_logs() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    let (out, home) = tokio::task::spawn_blocking(move || {
        let mut o = home.cli(&["--once", "-vv"]);
        let j = home.cli(&["--once", "--log-format", "json", "-vv"]);
        o.stderr.push_str(&j.stderr);
        (o, home)
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("uploaded"),
        "trace output expected: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(KEY) && !out.stdout.contains(KEY),
        "the key leaked:\n{}",
        out.stderr
    );
    let status = home.cli(&["status", "--format", "json"]);
    assert!(!status.stdout.contains(KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_rejected_sends_a_file_back_through_validation() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    // A ZAP report saved under scan_type SSLYZE is rejected; the operator fixes the config.
    let cfg = std::fs::read_to_string(&home.config).unwrap();
    std::fs::write(&home.config, format!("{cfg}scan_type = \"SSLYZE\"\n")).unwrap();
    home.drop_file("zap.json", &fixture_bytes("zap-intranet.json"));
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 65, "{out:?}");
    std::fs::write(&home.config, &cfg).unwrap();
    let out = home.cli(&["requeue", "--rejected", "zap.json"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(home.inbox_names(), vec!["zap.json".to_string()]);
    let (out, _home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(api.uploads()[0].scan_type, "OWASP_ZAP");
}

#[test]
fn the_daemon_binary_stops_cleanly_on_sigterm() {
    use std::io::BufRead;
    let home = Home::new("http://127.0.0.1:9/v1", "", "");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
        .arg("-c")
        .arg(&home.config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the start-up line (signal handlers are in place by then), however slow the machine.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the daemon never said it started");
        if line.contains("hostedscan-agent started") {
            break;
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the daemon did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let rest: Vec<String> = rx.iter().collect(); // until stderr closes
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

fn chmod(p: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Gives `p` to uid 65534 (nobody); false (the test then skips that part) where that needs a
/// root the tests do not have. CI runs them as root.
fn give_away(p: &std::path::Path) -> bool {
    match rustix::fs::chown(p, Some(rustix::fs::Uid::from_raw(65534)), None) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("skipping: cannot chown {} to uid 65534: {e}", p.display());
            false
        }
    }
}

/// A config that someone other than root or the agent's user could change is refused (exit
/// 78) with the command that fixes it, as ssh does: a config that others can write could
/// redirect uploads, or run a `command` job as the agent.
#[test]
fn check_config_refuses_a_config_file_others_could_change() {
    let home = Home::new("http://127.0.0.1:9/v1", "", "");
    let real = std::fs::canonicalize(&home.config).unwrap();
    chmod(&home.config, 0o620);
    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 78, "group-writable: {out:?}");
    assert!(
        out.stderr.contains(&format!(
            "is writable by group: run `chmod go-w {}`",
            real.display()
        )),
        "{}",
        out.stderr
    );
    chmod(&home.config, 0o600);
    assert_eq!(home.cli(&["check-config"]).code, 0);
    if give_away(&home.config) {
        let out = home.cli(&["check-config"]);
        assert_eq!(out.code, 78, "another user's: {out:?}");
        assert!(
            out.stderr.contains("is owned by uid 65534")
                && out
                    .stderr
                    .contains(&format!("run `chown root {}`", real.display())),
            "{}",
            out.stderr
        );
        // The daemon refuses it too, before doing anything.
        let out = home.cli(&["--once"]);
        assert_eq!(out.code, 78, "{out:?}");
    }
}

/// The directories above the config count: whoever can write one can replace the file, unless
/// the directory is sticky (as /tmp is).
#[test]
fn check_config_refuses_a_config_in_a_directory_others_can_write_unless_sticky() {
    let mut home = Home::new("http://127.0.0.1:9/v1", "", "");
    let conf = home.dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    let moved = conf.join("agent.toml");
    std::fs::rename(&home.config, &moved).unwrap();
    home.config = moved;
    chmod(&conf, 0o775);
    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 78, "{out:?}");
    let real = std::fs::canonicalize(&conf).unwrap();
    assert!(
        out.stderr.contains(&format!(
            "directory {} is writable by group (and not sticky): run `chmod go-w {}`",
            real.display(),
            real.display()
        )),
        "{}",
        out.stderr
    );
    chmod(&conf, 0o1777);
    let out = home.cli(&["check-config"]);
    assert_eq!(
        out.code, 0,
        "a sticky directory (like /tmp) is fine: {out:?}"
    );
}

/// `api.key_file`: refused (78) when another user owns it or could write it, not only when
/// others can read it.
#[test]
fn check_config_refuses_a_key_file_others_could_change() {
    let home = Home::new("http://127.0.0.1:9/v1", "", "");
    let kf = home.dir.path().join("api-key");
    std::fs::write(&kf, format!("{KEY}\n")).unwrap();
    let cfg = std::fs::read_to_string(&home.config).unwrap().replace(
        "[api]\n",
        &format!("[api]\nkey_file = \"{}\"\n", kf.display()),
    );
    std::fs::write(&home.config, cfg).unwrap();
    chmod(&kf, 0o600);
    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("from api.key_file"), "{}", out.stdout);

    chmod(&kf, 0o620);
    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 78, "group-writable: {out:?}");
    assert!(
        out.stderr.contains("api.key_file") && out.stderr.contains("run `chmod go-w "),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(KEY));

    chmod(&kf, 0o600);
    if give_away(&kf) {
        let out = home.cli(&["check-config"]);
        assert_eq!(out.code, 78, "another user's: {out:?}");
        assert!(
            out.stderr.contains("api.key_file")
                && out.stderr.contains("is owned by uid 65534")
                && out.stderr.contains("run `chown "),
            "{}",
            out.stderr
        );
    }
}

/// A `command` job whose arguments carry a token, and a stand-in scanner that copies a report
/// to its last argument (the run's output file).
fn job_with_a_token(home: &Home) -> String {
    let script = home.dir.path().join("scan-with-token");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a; do out=$a; done\ncp {} \"$out\"\n",
            fixture("nmap-tcp-localhost.xml").display()
        ),
    )
    .unwrap();
    chmod(&script, 0o755);
    format!(
        r#"
[[job]]
name = "tokened"
scanner = "command"
schedule = "@daily"
command = ["{}", "--token=SECRET123", "--hook=https://hooks.example/?token=SECRET123&f={{output}}", "{{output}}"]
"#,
        script.display()
    )
}

/// Job arguments may hold credentials: check-config (run by ExecStartPre and ExecReload, so
/// into the journal at every start) shows the program and how many arguments it has, never
/// the arguments.
#[test]
fn check_config_shows_a_jobs_program_and_argument_count_never_its_arguments() {
    let home = Home::new("http://127.0.0.1:9/v1", "", "");
    let job = job_with_a_token(&home);
    let cfg = std::fs::read_to_string(&home.config).unwrap();
    std::fs::write(&home.config, format!("{cfg}{job}")).unwrap();
    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 0, "{out:?}");
    let script = home.dir.path().join("scan-with-token");
    assert!(
        out.stdout
            .contains(&format!("{} with 3 arguments", script.display())),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("SECRET123") && !out.stderr.contains("SECRET123"),
        "{out:?}"
    );
}

/// The log of a job run below debug names the program and counts its arguments; the command
/// line itself is for -v only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_log_never_shows_its_arguments_below_debug() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let job = job_with_a_token(&home);
    let cfg = std::fs::read_to_string(&home.config).unwrap();
    std::fs::write(&home.config, format!("{cfg}{job}")).unwrap();
    let (out, home) =
        tokio::task::spawn_blocking(move || (home.cli(&["--once", "--job", "tokened"]), home))
            .await
            .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(api.uploads().len(), 1, "{out:?}");
    assert!(
        out.stderr.contains("job run starting") && out.stderr.contains("args=3"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("SECRET123") && !out.stdout.contains("SECRET123"),
        "{out:?}"
    );
    // At debug, the command line is there for whoever asked for it.
    let out = tokio::task::spawn_blocking(move || home.cli(&["--once", "--job", "tokened", "-v"]))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("SECRET123"), "{}", out.stderr);
}

/// `status` is what a person runs when something is wrong, the configuration included: with an
/// invalid file it still reports the state directory the file names (uploads, sources, jobs'
/// last runs), says why the configuration cannot be used instead of the next runs, and exits
/// 78; with a file that is not even TOML, `--state-dir` says where to look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_state_directory_with_a_broken_configuration() {
    let api = StandIn::start().await;
    let job = format!(
        "\n[[job]]\nname = \"nightly\"\nscanner = \"command\"\nschedule = \"@daily\"\ncommand = [\"/bin/cp\", \"{}\", \"{{output}}\"]\n",
        fixture("nmap-tcp-localhost.xml").display()
    );
    let home = Home::new(&api.url(), "", &job);
    home.drop_file("ok.xml", &fixture_bytes("nmap-udp-localhost.xml"));
    let (out, home) =
        tokio::task::spawn_blocking(move || (home.cli(&["--once", "--job", "all"]), home))
            .await
            .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    let good = home.cli(&["status", "--format", "json"]);
    assert_eq!(good.code, 0, "{good:?}");
    let good: serde_json::Value = serde_json::from_str(&good.stdout).unwrap();
    assert!(good["config_error"].is_null());
    assert!(good["jobs"][0]["next_run"].is_string());

    // An unknown key: the file parses, the configuration is refused.
    let cfg = std::fs::read_to_string(&home.config).unwrap();
    std::fs::write(
        &home.config,
        cfg.replace("settle = \"200ms\"", "settle = \"200ms\"\nsetle = \"1s\""),
    )
    .unwrap();
    let out = home.cli(&["status", "--format", "json"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        out.stderr.contains("setle"),
        "the error is said: {}",
        out.stderr
    );
    let s: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(s["state_dir"], home.state.display().to_string().as_str());
    assert!(s["config_error"].as_str().unwrap().contains("setle"), "{s}");
    assert_eq!(s["uploaded_total"], 2);
    assert_eq!(s["jobs"][0]["name"], "nightly");
    assert_eq!(s["jobs"][0]["outcome"], good["jobs"][0]["outcome"]);
    assert!(s["jobs"][0]["next_run"].is_null());
    assert_eq!(s["sources"][0]["id"], api.sources()[0].id.as_str());
    assert_eq!(s["sources"][0]["uploaded_total"], 2);
    let text = home.cli(&["status"]);
    assert_eq!(text.code, 78);
    assert!(
        text.stdout.contains("configuration    INVALID: ")
            && text.stdout.contains("uploaded         2 ")
            && text
                .stdout
                .contains("next unknown (the configuration is invalid)"),
        "{}",
        text.stdout
    );

    // Not TOML at all: no state directory can be read from it.
    std::fs::write(&home.config, "[agent\n").unwrap();
    let state = home.state.display().to_string();
    let out = home.cli(&["status", "--state-dir", &state, "--format", "json"]);
    assert_eq!(out.code, 78, "{out:?}");
    let s: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(s["uploaded_total"], 2);
    let nowhere = home.dir.path().join("nowhere").display().to_string();
    let out = home.cli(&["status", "--state-dir", &nowhere]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("--state-dir"), "{}", out.stderr);
}

/// `validate -` judges a report piped in, as it would the file.
#[test]
fn validate_reads_a_report_from_standard_input() {
    use std::io::Write;
    let run = |input: &[u8], args: &[&str]| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&fixture_bytes("nmap-tcp-localhost.xml"), &["validate", "-"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.trim_end(), "ok       -  nmap-xml NMAP");
    let (code, out) = run(b"<nmaprun><host>", &["validate", "--format", "json", "-"]);
    assert_eq!(code, Some(65), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["path"], "-");
    assert_eq!(v["valid"], false);
    assert!(v["reason"].is_string());
}
