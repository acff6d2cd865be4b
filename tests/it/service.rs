//! The daemon under systemd, as the unit runs it (`Type=notify`, `WatchdogSec=`): the real
//! binary with a test `NOTIFY_SOCKET` and `WATCHDOG_USEC`, and what it tells systemd from start
//! to stop. And what the unit files in `systemd/` grant, read as systemd merges them.

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Every message received within `wait`, or until `until` holds for one.
fn receive(sock: &UnixDatagram, wait: Duration, until: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let end = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = until(&m);
            out.push(m);
            if done {
                break;
            }
        }
    }
    out
}

/// The real binary with `home`'s config and `args`, as systemd would start it: with a
/// notify socket and a watchdog of `watchdog_usec`, when given, and no secrets from the
/// test's own environment.
fn agent(home: &Home, args: &[&str], notify: Option<(&std::path::Path, &str)>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"));
    cmd.arg("-c")
        .arg(&home.config)
        .args(args)
        .env_remove("WATCHDOG_PID")
        .env_remove("HOSTEDSCAN_API_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((sock, watchdog_usec)) = notify {
        cmd.env("NOTIFY_SOCKET", sock)
            .env("WATCHDOG_USEC", watchdog_usec);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_tells_systemd_it_is_ready_healthy_and_stopping() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let sock_path = home.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let mut child = agent(&home, &[], Some((&sock_path, "300000")))
        .spawn()
        .unwrap();

    let sock = tokio::task::spawn_blocking(move || {
        // Ready once started, with a status line for `systemctl status`.
        let first = receive(&sock, Duration::from_secs(20), |m| m.contains("READY=1"));
        let ready = first.last().cloned().unwrap_or_default();
        assert!(ready.contains("READY=1"), "{first:?}");
        assert!(ready.contains("STATUS=queued 0, failed 0"), "{ready}");
        assert!(ready.contains("last upload none yet"), "{ready}");
        // Then a watchdog ping every 150 ms (half of WATCHDOG_USEC) while healthy.
        let t = Instant::now();
        let pings = receive(&sock, Duration::from_millis(1200), |_| false);
        let n = pings.iter().filter(|m| m.contains("WATCHDOG=1")).count();
        assert!(n >= 4, "{n} pings in {:?}: {pings:?}", t.elapsed());
        sock
    })
    .await
    .unwrap();

    // A report arrives and is uploaded: the status line says so.
    home.drop_file("scan.xml", &nmap_report());
    api.wait_for_uploads(1, Duration::from_secs(20)).await;
    let sock = tokio::task::spawn_blocking(move || {
        let msgs = receive(&sock, Duration::from_secs(10), |m| {
            m.contains("WATCHDOG=1") && !m.contains("last upload none yet")
        });
        let last = msgs.last().cloned().unwrap_or_default();
        assert!(
            last.contains("queued 0") && !last.contains("none yet"),
            "{msgs:?}"
        );
        sock
    })
    .await
    .unwrap();

    // SIGTERM: STOPPING=1, then a clean exit.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let msgs = tokio::task::spawn_blocking(move || {
        receive(&sock, Duration::from_secs(20), |m| m.contains("STOPPING=1"))
    })
    .await
    .unwrap();
    assert!(msgs.iter().any(|m| m.contains("STOPPING=1")), "{msgs:?}");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanners_do_not_get_systemds_notify_socket() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let out = home.dir.path().join("env.txt");
    let script = home.dir.path().join("scan.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > {}\ncp {} \"$1\"\n",
            out.display(),
            fixture("nmap-tcp-localhost.xml").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &script,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let cfg = format!(
        "{}\n[[job]]\nname = \"envcheck\"\nscanner = \"command\"\nschedule = \"@daily\"\ncommand = [\"{}\", \"{{output}}\"]\n",
        std::fs::read_to_string(&home.config).unwrap(),
        script.display()
    );
    std::fs::write(&home.config, cfg).unwrap();
    let sock_path = home.dir.path().join("notify.sock");
    let _sock = UnixDatagram::bind(&sock_path).unwrap();
    let code = tokio::task::block_in_place(|| {
        agent(
            &home,
            &["--once", "--job", "envcheck"],
            Some((&sock_path, "300000")),
        )
        .status()
        .unwrap()
        .code()
    });
    assert_eq!(code, Some(0));
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(
        !env.contains("NOTIFY_SOCKET") && !env.contains("WATCHDOG_"),
        "{env}"
    );
}

/// Runs `--once` with stderr going to a file, `JOURNAL_STREAM` set as given (or to that
/// file's own device:inode when `None`), and returns what it logged.
fn log_of_a_pass(home: &Home, journal_stream: Option<&str>) -> String {
    use std::os::unix::fs::MetadataExt;
    let log = home.dir.path().join("stderr.log");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let stream = journal_stream
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}:{}", meta.dev(), meta.ino()));
    agent(home, &["--once"], None)
        .env("JOURNAL_STREAM", stream)
        .stderr(file)
        .status()
        .unwrap();
    std::fs::read_to_string(&log).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_the_journal_carry_no_timestamps_or_colours_of_their_own() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    home.drop_file("scan.xml", &nmap_report());
    let journal = {
        let home = &home;
        tokio::task::block_in_place(|| log_of_a_pass(home, None))
    };
    let lines: Vec<&str> = journal.lines().collect();
    assert!(lines.iter().any(|l| l.contains("uploaded")), "{journal}");
    for l in &lines {
        assert!(!l.contains('\u{1b}'), "colour in {l:?}");
        assert!(
            !l.starts_with("20"),
            "a timestamp of our own (the journal adds one): {l:?}"
        );
    }
    // Redirected elsewhere, the inherited variable no longer matches: timestamps again.
    let other = tokio::task::block_in_place(|| log_of_a_pass(&home, Some("1:1")));
    assert!(other.lines().all(|l| l.starts_with("20")), "{other}");
}

async fn scrape(port: u16) -> String {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    r.text().await.unwrap()
}

/// The value of the metric line starting with `name` (labels included), if there is one.
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_daemon_did() {
    let api = StandIn::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = Home::new(
        &api.url(),
        "",
        &format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let daemon = Daemon::start(home.load());
    let report = nmap_report();
    home.drop_file("scan.xml", &report);
    home.drop_file("notes.json", br#"{"not": "a scanner report"}"#);
    api.wait_for_uploads(1, Duration::from_secs(20)).await;
    eventually(
        "the broken file is rejected",
        Duration::from_secs(20),
        || !home.names_in("rejected").is_empty(),
    )
    .await;
    // The stand-in has the file before the agent has read its answer and counted it, and the
    // rejected file is in `rejected/` before its outcome is counted: wait for both counts (the
    // upload's bytes are a second counter, added just after its count).
    let mut text = scrape(port).await;
    for _ in 0..100 {
        if value(&text, "hostedscan_agent_uploads_total{result=\"uploaded\"}").is_some()
            && value(&text, "hostedscan_agent_uploaded_bytes_total") == Some(report.len() as f64)
            && value(
                &text,
                "hostedscan_agent_files_rejected_total{kind=\"not_a_report\"}",
            ) == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = scrape(port).await;
    }
    let get = |n: &str| value(&text, n).unwrap_or_else(|| panic!("{n} missing from\n{text}"));
    assert_eq!(
        get("hostedscan_agent_files_admitted_total{scan_type=\"NMAP\"}"),
        1.0
    );
    assert_eq!(
        get("hostedscan_agent_files_rejected_total{kind=\"not_a_report\"}"),
        1.0
    );
    assert_eq!(
        get("hostedscan_agent_uploads_total{result=\"uploaded\"}"),
        1.0
    );
    assert_eq!(
        get("hostedscan_agent_uploaded_bytes_total"),
        report.len() as f64
    );
    assert_eq!(get("hostedscan_agent_queue_depth"), 0.0);
    assert_eq!(get("hostedscan_agent_failed_files"), 0.0);
    assert_eq!(get("hostedscan_agent_uploads_paused"), 0.0);
    assert_eq!(
        get("hostedscan_agent_source_uploads_total{source=\"Agent tests\"}"),
        1.0,
        "uploads per source, by its name"
    );
    assert_eq!(get("hostedscan_agent_sources_unusable"), 0.0);
    let last = get("hostedscan_agent_last_upload_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 120.0, "last upload {last}, now {now}");

    // An outage asking for 30 s of patience: the upload is retried and the backoff shows.
    api.set_default_fault(Endpoint::Results, Some(Fault::RetryAfter(503, "30".into())));
    let mut other = nmap_report();
    other.extend_from_slice(b"\n");
    home.drop_file("second.xml", &other);
    eventually(
        "the upload is refused once",
        Duration::from_secs(20),
        || api.requests_to(Endpoint::Results).len() >= 2,
    )
    .await;
    // The refusal is counted and the pause shown a moment after the stand-in answered.
    let mut text = scrape(port).await;
    for _ in 0..100 {
        if value(&text, "hostedscan_agent_uploads_paused") == Some(1.0)
            && value(&text, "hostedscan_agent_uploads_total{result=\"retried\"}")
                .is_some_and(|n| n >= 1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = scrape(port).await;
    }
    let get = |n: &str| value(&text, n).unwrap_or_else(|| panic!("{n} missing from\n{text}"));
    assert!(get("hostedscan_agent_uploads_total{result=\"retried\"}") >= 1.0);
    assert_eq!(get("hostedscan_agent_queue_depth"), 1.0);
    assert_eq!(get("hostedscan_agent_uploads_paused"), 1.0, "{text}");
    assert!(
        get("hostedscan_agent_uploads_resume_in_seconds") > 1.0,
        "{text}"
    );
    // Anything but GET /metrics is refused, not served.
    let r = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    daemon.stop().await;
}

/// Rewrites `home`'s config as `good` with its inbox replaced by `dir` (below the home), which
/// it returns.
fn move_inbox(home: &Home, good: &str, dir: &str) -> std::path::PathBuf {
    let other = home.dir.path().join(dir);
    std::fs::write(
        &home.config,
        good.replace(
            &home.inbox.display().to_string(),
            &other.display().to_string(),
        ),
    )
    .unwrap();
    other
}

/// `systemctl reload`: SIGHUP to the real daemon. A broken file is refused and the daemon goes
/// on as it was; a good one moves the watch to a new directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_configuration_and_keeps_the_old_one_otherwise() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let good = std::fs::read_to_string(&home.config).unwrap();
    let log = home.dir.path().join("agent.log");
    let mut child = agent(&home, &[], None)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let hup = || rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let report = nmap_report();
    home.drop_file("first.xml", &report);
    api.wait_for_uploads(1, Duration::from_secs(20)).await;

    // A mistake in the file: the reload is refused, the daemon keeps watching the inbox.
    std::fs::write(
        &home.config,
        format!("{good}\n[agent]\nsettle = \"soon\"\n"),
    )
    .unwrap();
    hup();
    eventually("the refusal is logged", Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("the new configuration is not used")
    })
    .await;
    // Another API: refused too (the source belongs to the API it was found on: a restart).
    std::fs::write(
        &home.config,
        good.replace(&api.url(), "http://127.0.0.1:9/v1"),
    )
    .unwrap();
    hup();
    eventually("the URL change is refused", Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("api.url changed")
    })
    .await;
    let mut second = report.clone();
    second.extend_from_slice(b"\n");
    home.drop_file("second.xml", &second);
    api.wait_for_uploads(2, Duration::from_secs(20)).await;

    // A good file with another watch directory: it is watched from now on, the old one not.
    let other = move_inbox(&home, &good, "other-inbox");
    hup();
    eventually("the reload is logged", Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("configuration reloaded")
    })
    .await;
    let mut third = report.clone();
    third.extend_from_slice(b"\n\n");
    let tmp = other.join(".third.xml.part");
    std::fs::write(&tmp, &third).unwrap();
    age(&tmp, 60);
    std::fs::rename(&tmp, other.join("third.xml")).unwrap();
    let ups = api.wait_for_uploads(3, Duration::from_secs(20)).await;
    assert_eq!(ups[2].bytes, third);
    let mut fourth = report.clone();
    fourth.extend_from_slice(b"\n\n\n");
    home.drop_file("fourth.xml", &fourth);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.uploads().len(), 3, "the old inbox is no longer watched");
    assert_eq!(home.inbox_names(), ["fourth.xml"]);

    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// `hostedscan-agent reload` (the unit's `ExecReload=`): the daemon's own verdict, as the exit
/// code of `systemctl reload`. The daemon holds its key as a systemd credential that the
/// reloading process cannot see, and `api.key_file` names a file it cannot read either (the
/// issue's broken reload); an invalid file is refused without a signal, a change the daemon
/// cannot take while running is refused by the daemon, a good one is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_answers_with_the_daemons_verdict_and_never_needs_the_key() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let creds = home.dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("api-key"), format!("{KEY}\n")).unwrap();
    let unreadable = home.dir.path().join("root-only").join("api-key");
    let good = std::fs::read_to_string(&home.config).unwrap().replace(
        &format!("key = \"{KEY}\""),
        &format!("key_file = \"{}\"", unreadable.display()),
    );
    std::fs::write(&home.config, &good).unwrap();
    let log = home.dir.path().join("agent.log");
    let mut child = agent(&home, &[], None)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let report = nmap_report();
    home.drop_file("first.xml", &report);
    api.wait_for_uploads(1, Duration::from_secs(20)).await;
    let reload = |with_pid: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"));
        cmd.arg("reload")
            .arg("-c")
            .arg(&home.config)
            .args(["--timeout", "20s"])
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("HOSTEDSCAN_API_KEY");
        if with_pid {
            cmd.args(["--pid", &pid]);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let sighups = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("SIGHUP received")
            .count()
    };

    // A mistake in the file: refused before the daemon is disturbed.
    std::fs::write(
        &home.config,
        good.replace("timeout = \"5s\"", "timeout = \"soon\""),
    )
    .unwrap();
    let (code, text) = reload(true);
    assert_eq!(code, Some(78), "{text}");
    assert!(
        text.contains("api.timeout") && text.contains("not reloaded"),
        "{text}"
    );
    assert_eq!(sighups(), 0, "an invalid file is not sent to the daemon");

    // Another API: valid as a file, but the daemon cannot take it while running.
    std::fs::write(
        &home.config,
        good.replace(&api.url(), "http://127.0.0.1:9/v1"),
    )
    .unwrap();
    let (code, text) = reload(true);
    assert_eq!(code, Some(78), "{text}");
    assert!(
        text.contains("did not take the new configuration") && text.contains("api.url changed"),
        "{text}"
    );

    // Another state directory: the daemon's answers are in its own, so this is found here.
    std::fs::write(
        &home.config,
        good.replace(
            &home.state.display().to_string(),
            &home.dir.path().join("state2").display().to_string(),
        ),
    )
    .unwrap();
    let (code, text) = reload(true);
    assert_eq!(code, Some(78), "{text}");
    assert!(
        text.contains("agent.state_dir changed?") && text.contains("restart"),
        "{text}"
    );

    // Another watch directory: taken (the pid found in status.json this time), and watched.
    let other = move_inbox(&home, &good, "other-inbox");
    let (code, text) = reload(false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("took the new configuration"), "{text}");
    assert_eq!(sighups(), 2);
    let mut second = report.clone();
    second.extend_from_slice(b"\n");
    let tmp = other.join(".second.xml.part");
    std::fs::write(&tmp, &second).unwrap();
    age(&tmp, 60);
    std::fs::rename(&tmp, other.join("second.xml")).unwrap();
    let ups = api.wait_for_uploads(2, Duration::from_secs(20)).await;
    assert_eq!(ups[1].bytes, second);

    // A process that is not the agent is never signalled.
    let (code, text) = {
        let out = Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
            .args(["reload", "--pid", "1", "-c"])
            .arg(&home.config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(75), "{text}");
    assert!(text.contains("not a running hostedscan-agent"), "{text}");

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// A reload while a scan runs and an upload is in flight: the scan goes on and its report is
/// uploaded once, the upload finishes once, and the new job is scheduled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_cuts_no_scan_short_and_repeats_no_upload() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let scan = home.dir.path().join("slow-scan.sh");
    std::fs::write(
        &scan,
        format!(
            "#!/bin/sh\nsleep 2\ncp {} \"$1\"\n",
            fixture("nmap-tcp-localhost.xml").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &scan,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    // A slow scan every second; max_concurrent_jobs (1) keeps it to one run at a time.
    let cfg = format!(
        "{}\n[[job]]\nname = \"slow\"\nscanner = \"command\"\nschedule = \"* * * * * *\"\ncommand = [\"{}\", \"{{output}}\"]\n",
        std::fs::read_to_string(&home.config).unwrap(),
        scan.display()
    );
    std::fs::write(&home.config, cfg).unwrap();
    let daemon = Daemon::start_reloading(home.load());
    // Wait until the scan runs, then slow the API down and drop a file, so that an upload
    // is in flight too.
    eventually("the scan starts", Duration::from_secs(10), || {
        std::fs::read_to_string(home.state.join("jobs.json"))
            .is_ok_and(|j| j.contains("last_started"))
    })
    .await;
    api.push_fault(Endpoint::Results, Fault::Delay(Duration::from_millis(1500)));
    let mut dropped = nmap_report();
    dropped.extend_from_slice(b"<!-- dropped -->\n");
    home.drop_file("dropped.xml", &dropped);
    eventually("the upload is in flight", Duration::from_secs(10), || {
        !api.requests_to(Endpoint::Results).is_empty()
    })
    .await;

    // Reload: the slow job is gone from the new configuration, another one comes.
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("name = \"slow\"", "name = \"newer\"")
        .replace("* * * * * *", "@yearly");
    std::fs::write(&home.config, cfg).unwrap();
    daemon.reload(home.load()).await;

    // The scan in progress finishes and is uploaded; the upload in flight lands once.
    let ups = api.wait_for_uploads(2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ups_now = api.uploads();
    let dropped_count = ups_now.iter().filter(|u| u.bytes == dropped).count();
    assert_eq!(dropped_count, 1, "{} uploads", ups_now.len());
    assert!(ups
        .iter()
        .any(|u| u.bytes == fixture_bytes("nmap-tcp-localhost.xml")));
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.state.join("jobs.json")).unwrap()).unwrap();
    assert_eq!(
        j["slow"]["last_outcome"], "ok",
        "the scan was not cut short: {j}"
    );
    daemon.stop().await;
}

/// A job whose schedule has no future time (a one-off in a past year) is a warning, not a
/// broken daemon: the watchdog pings go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_nothing_left_to_run_does_not_stop_the_watchdog() {
    let api = StandIn::start().await;
    let home = Home::new(
        &api.url(),
        "",
        "\n[[job]]\nname = \"once-upon\"\nscanner = \"command\"\nschedule = \"0 0 3 1 1 * 2020\"\ncommand = [\"/bin/true\", \"{output}\"]\n",
    );
    let sock_path = home.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let mut child = agent(&home, &[], Some((&sock_path, "200000")))
        .spawn()
        .unwrap();
    let msgs = tokio::task::spawn_blocking(move || {
        let _ = receive(&sock, Duration::from_secs(20), |m| m.contains("READY=1"));
        receive(&sock, Duration::from_millis(1500), |_| false)
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        msgs.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 4,
        "{msgs:?}"
    );
    assert!(!msgs.iter().any(|m| m.contains("unhealthy")), "{msgs:?}");
}

// --- The unit files ------------------------------------------------------------------------

const SERVICES: [&str; 2] = ["hostedscan-agent.service", "hostedscan-agent-once.service"];

/// A file of the repository's `systemd/` directory.
fn systemd_file(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The `(key, value)` assignments of a unit file's `[Service]` section, in order.
fn service_settings(text: &str) -> Vec<(&str, &str)> {
    let mut section = "";
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "continued lines are not read here: {line}"
        );
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not a setting: {line}"));
            out.push((k.trim(), v.trim()));
        }
    }
    out
}

/// What systemd makes of a list setting (`CapabilityBoundingSet=`, `AmbientCapabilities=`,
/// `RestrictAddressFamilies=`) assigned in a unit and then its drop-ins, `files` in that order:
/// `None` if never assigned, else the allow-list. Each assignment adds to the list; an empty one
/// resets it to nothing (`systemd.exec(5)`); for `RestrictAddressFamilies=` an empty one lifts
/// the restriction, i.e. `None`.
fn merged(files: &[&str], key: &str) -> Option<BTreeSet<String>> {
    let mut list: Option<BTreeSet<String>> = None;
    for (k, v) in files.iter().flat_map(|f| service_settings(f)) {
        if k != key {
            continue;
        }
        assert!(
            !v.starts_with('~'),
            "deny-lists are not modelled here: {k}={v}"
        );
        if v.is_empty() {
            list = (key != "RestrictAddressFamilies").then(BTreeSet::new);
        } else {
            list.get_or_insert_with(BTreeSet::new)
                .extend(v.split_whitespace().map(String::from));
        }
    }
    list
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.into_iter().map(String::from).collect()
}

/// As shipped, neither the agent nor any scanner it starts (a `command` job, ZAP's JVM) gets a
/// capability: an empty bounding set (no `CapabilityBoundingSet=` at all would leave every
/// capability in it) and no ambient one. No AF_PACKET either: without CAP_NET_RAW it is useless.
#[test]
fn the_units_grant_no_capability() {
    for unit in SERVICES {
        let text = systemd_file(unit);
        let files = [text.as_str()];
        assert_eq!(
            merged(&files, "CapabilityBoundingSet"),
            Some(BTreeSet::new()),
            "{unit}: CapabilityBoundingSet= must be present and empty"
        );
        assert_eq!(
            merged(&files, "AmbientCapabilities").unwrap_or_default(),
            BTreeSet::new(),
            "{unit}: AmbientCapabilities="
        );
        let families = merged(&files, "RestrictAddressFamilies")
            .unwrap_or_else(|| panic!("{unit}: no RestrictAddressFamilies= allow-list"));
        assert!(!families.contains("AF_PACKET"), "{unit}: {families:?}");
        assert!(
            set(["AF_UNIX", "AF_INET", "AF_INET6"]).is_subset(&families),
            "{unit}: the agent needs these to reach the API: {families:?}"
        );
        assert!(
            service_settings(&text).contains(&("NoNewPrivileges", "yes")),
            "{unit}"
        );
    }
}

/// The opt-in drop-in for nmap SYN scans, on either unit: CAP_NET_RAW, ambient (so that nmap
/// inherits it) and in the bounding set, plus AF_PACKET for libpcap, and nothing else; the
/// unit's other address families stay (a drop-in's `RestrictAddressFamilies=` adds to them).
/// Its comment says where the packages put it and what the nmap job needs.
#[test]
fn the_raw_sockets_drop_in_grants_cap_net_raw_and_nothing_else() {
    let dropin = systemd_file("raw-sockets.conf");
    let keys: BTreeSet<&str> = service_settings(&dropin).iter().map(|&(k, _)| k).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "AmbientCapabilities",
            "CapabilityBoundingSet",
            "RestrictAddressFamilies"
        ]),
        "the drop-in changes nothing but these"
    );
    for unit in SERVICES {
        let text = systemd_file(unit);
        let files = [text.as_str(), dropin.as_str()];
        assert_eq!(
            merged(&files, "CapabilityBoundingSet"),
            Some(set(["CAP_NET_RAW"])),
            "{unit} with the drop-in: bounding set"
        );
        assert_eq!(
            merged(&files, "AmbientCapabilities"),
            Some(set(["CAP_NET_RAW"])),
            "{unit} with the drop-in: ambient capabilities"
        );
        let mut expected = merged(&[text.as_str()], "RestrictAddressFamilies").unwrap();
        expected.insert("AF_PACKET".into());
        assert_eq!(
            merged(&files, "RestrictAddressFamilies"),
            Some(expected),
            "{unit} with the drop-in: address families"
        );
    }
    let shipped = "/usr/share/hostedscan-agent/raw-sockets.conf";
    for needed in [
        shipped,
        "/etc/systemd/system/hostedscan-agent.service.d/raw-sockets.conf",
        "/etc/systemd/system/hostedscan-agent-once.service.d/raw-sockets.conf",
        "privileged = true",
    ] {
        assert!(
            dropin.contains(needed),
            "its comment should mention {needed}"
        );
    }
    let cargo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(
        cargo.contains(
            r#"["systemd/raw-sockets.conf", "usr/share/hostedscan-agent/raw-sockets.conf", "644"]"#
        ),
        "the deb does not ship it at {shipped}"
    );
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/rpm/hostedscan-agent.spec"
    ))
    .unwrap();
    assert!(
        spec.contains(r#"install -D -m 0644 "%{_repo}/systemd/raw-sockets.conf" %{buildroot}/usr/share/hostedscan-agent/raw-sockets.conf"#)
            && spec.lines().any(|l| l.trim_end().ends_with(shipped)),
        "the rpm does not ship it at {shipped}"
    );
}
