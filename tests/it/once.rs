//! `--once` and `--dry-run` as the built binary: the summary and exactly the contract's exit
//! codes (78, 77, 75, 65 in that order of precedence, else 0).

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_uploads_everything_and_exits_0() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    home.drop_file("scan.xml", &nmap_report());
    home.drop_file("zap.json", &fixture_bytes("zap-intranet.json"));
    let h = tokio::task::spawn_blocking(move || (home.cli(&["--once"]), home));
    let (out, home) = h.await.unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("uploaded      scan.xml  NMAP"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("uploaded 2, rejected 0, failed 0, pending 0"),
        "{}",
        out.stdout
    );
    assert_eq!(api.uploads().len(), 2);
    assert!(home.inbox_names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_with_nothing_to_do_exits_0() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let out = tokio::task::spawn_blocking(move || home.cli(&["--once"]))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_file_makes_once_exit_65() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    home.drop_file("good.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    home.drop_file("bad.xml", &fixture_bytes("nmap-error-localhost.xml"));
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 65, "{out:?}");
    assert!(
        out.stdout
            .contains("rejected      bad.xml  nmap finished with exit=\"error\""),
        "{}",
        out.stdout
    );
    assert_eq!(api.uploads().len(), 1);
    assert!(home.names_in("rejected").contains(&"bad.xml".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_makes_once_exit_65() {
    let api = StandIn::start().await;
    api.push_fault(Endpoint::Results, Fault::Status(413));
    let home = Home::new(&api.url(), "", "");
    home.drop_file("big.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 65, "{out:?}");
    assert!(out.stdout.contains("HTTP 413"), "{}", out.stdout);
    assert!(home.names_in("failed").contains(&"big.xml".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_makes_once_exit_75_and_keeps_the_file_queued() {
    let api = StandIn::start().await;
    api.set_default_fault(Endpoint::Any, Some(Fault::Status(503)));
    let home = Home::new(&api.url(), "", "");
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    home.drop_file("bad.xml", &fixture_bytes("nmap-error-localhost.xml"));
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("once_deadline = \"5s\"", "once_deadline = \"2s\"");
    std::fs::write(&home.config, cfg).unwrap();
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 75, "75 wins over 65: {out:?}");
    assert!(home.names_in("queue").contains(&"a.xml".to_string()));
    // The next run, with the API back, finishes the job.
    api.set_default_fault(Endpoint::Any, None);
    let (out, _home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(api.uploads().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_makes_once_exit_77_and_drops_nothing() {
    let api = StandIn::start_with_key("another-key").await;
    let home = Home::new(&api.url(), "", "");
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    let (out, home) = tokio::task::spawn_blocking(move || (home.cli(&["--once", "-vv"]), home))
        .await
        .unwrap();
    assert_eq!(out.code, 77, "{out:?}");
    assert!(home.names_in("queue").contains(&"a.xml".to_string()));
    assert!(
        !out.stdout.contains(KEY) && !out.stderr.contains(KEY),
        "the key leaked into the output"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_being_written_makes_once_exit_75() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let report = fixture_bytes("nmap-tcp-localhost.xml");
    std::fs::write(home.inbox.join("growing.xml"), &report[..report.len() / 2]).unwrap();
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 75, "{out:?}");
    assert_eq!(home.inbox_names(), vec!["growing.xml".to_string()]);
    assert!(api.uploads().is_empty());
}

#[test]
fn an_invalid_config_exits_78_and_names_the_key() {
    let home = Home::new("http://127.0.0.1:9/v1", "upload_concurrency = 0", "");
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        out.stderr.contains("agent.upload_concurrency"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_usage_error_exits_64() {
    let home = Home::new("http://127.0.0.1:9/v1", "", "");
    assert_eq!(home.cli(&["--dry-run"]).code, 64, "--dry-run needs --once");
    assert_eq!(home.cli(&["--no-such-flag"]).code, 64);
}

#[test]
fn dry_run_prints_verdicts_and_touches_nothing() {
    // Port 9 on loopback: nothing listens, and a dry run must not try.
    let home = Home::new("http://127.0.0.1:9/v1", "", "");
    home.drop_file("scan.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    home.drop_file("zap.json", &fixture_bytes("zap-intranet.json"));
    home.drop_file("bad.xml", &fixture_bytes("nmap-error-localhost.xml"));
    let out = home.cli(&["--once", "--dry-run"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(
        out.stdout.contains("would upload  ") && out.stdout.contains("NMAP"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("target http://127.0.0.1:8080"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("sha256 "), "{}", out.stdout);
    assert!(
        out.stdout.contains("would reject") && out.stdout.contains("exit=\"error\""),
        "{}",
        out.stdout
    );
    assert_eq!(home.inbox_names().len(), 3, "nothing moved");
    assert!(!home.state.exists(), "nothing written: {:?}", home.state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_stopped_by_sigterm_exits_75_and_keeps_the_file_queued() {
    let api = StandIn::start().await;
    api.set_default_fault(Endpoint::Results, Some(Fault::Hang));
    let home = Home::new(&api.url(), "", "");
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
        .arg("-c")
        .arg(&home.config)
        .arg("--once")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    eventually(
        "the upload is in flight",
        std::time::Duration::from_secs(20),
        || api.requests().iter().any(|r| r.path.ends_with("/results")),
    )
    .await;
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pending"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(home.names_in("queue").contains(&"a.xml".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_content_under_many_names_at_once_is_uploaded_once() {
    // Several admissions run at once: identical files read side by side must still make one
    // upload, whatever order they are committed in.
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "upload_concurrency = 4", "");
    let report = fixture_bytes("nmap-tcp-localhost.xml");
    for i in 0..12 {
        home.drop_file(&format!("copy-{i:02}.xml"), &report);
    }
    home.drop_file("other.xml", &fixture_bytes("nmap-udp-localhost.xml"));
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    let ups = api.uploads();
    assert_eq!(
        ups.len(),
        2,
        "one per distinct content: {:?}",
        ups.iter().map(|u| u.file_name.clone()).collect::<Vec<_>>()
    );
    assert!(out.stdout.contains("duplicates 11"), "{}", out.stdout);
    assert!(home.inbox_names().is_empty());
    assert!(home.names_in("queue").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_ends_when_its_work_is_done_not_at_the_deadline() {
    // A pass must end as soon as everything is uploaded: the uploader sees the end of the work
    // when the sweep's admission and the jobs have let go of the uploads. (A sender left alive
    // made every pass wait out retry.once_deadline.)
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let text = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("once_deadline = \"5s\"", "once_deadline = \"1h\"");
    std::fs::write(&home.config, text).unwrap();
    home.drop_file("scan.xml", &nmap_report());
    let config = home.config.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
            .arg("-c")
            .arg(&config)
            .arg("--once")
            .env_remove("HOSTEDSCAN_API_KEY")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    let status = out.expect("the pass was still running two minutes after it started (waiting for retry.once_deadline?)");
    assert_eq!(status.code(), Some(0));
    assert_eq!(api.uploads().len(), 1);
}
