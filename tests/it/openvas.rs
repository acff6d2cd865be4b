//! `openvas` jobs against a GMP stand-in (gvmd cannot be installed here) on a Unix socket:
//! what a Greenbone admin sees in gvmd after runs (one target, one task, reused; a new target
//! when the hosts change), what reaches HostedScan (one OPENVAS report that the agent's own
//! `validate` accepts), and every way a run fails (login, each command's GMP error, dropped
//! connections, stopped and interrupted tasks, a hung task past the timeout), with a report
//! too large to hold in memory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hostedscan_agent::config::Polling;
use hostedscan_agent::report::Outcome;
use tokio_util::sync::CancellationToken;

use hostedscan_standins::gmp::{End, GmpStandIn};

use crate::harness::*;

const PASSWORD: &str = "secret";

/// An openvas job section talking to `gvmd`, with its password file written in `dir`.
fn openvas_job(dir: &Path, gvmd: &GmpStandIn, targets: &str, extra: &str) -> String {
    let pw = password_file(dir, PASSWORD);
    format!(
        r#"
[[job]]
name = "vulns"
scanner = "openvas"
schedule = "@weekly"
targets = {targets}
gmp_socket = "{socket}"
gmp_username = "admin"
gmp_password_file = "{pw}"
timeout = "1m"
{extra}
"#,
        socket = gvmd.socket().display(),
        pw = pw.display()
    )
}

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let p = dir.join("gmp-password");
    std::fs::write(&p, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A home for the agent with an openvas job, and gvmd's stand-in in its directory.
async fn setup(targets: &str, extra: &str) -> (StandIn, GmpStandIn, Home) {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let gvmd_dir = home.dir.path().join("gvmd");
    std::fs::create_dir_all(&gvmd_dir).unwrap();
    let gvmd = GmpStandIn::start(&gvmd_dir).await;
    let job = openvas_job(home.dir.path(), &gvmd, targets, extra);
    let mut cfg = std::fs::read_to_string(&home.config).unwrap();
    cfg.push_str(&job);
    std::fs::write(&home.config, cfg).unwrap();
    (api, gvmd, home)
}

/// `--once --job vulns`, in-process, polling gvmd every few milliseconds.
async fn once(home: &Home) -> hostedscan_agent::report::RunReport {
    let mut cfg = home.load();
    for j in &mut cfg.jobs {
        if let Some(o) = j.openvas_mut() {
            o.polling = Polling {
                first: Duration::from_millis(10),
                max: Duration::from_millis(40),
            };
            o.reply_timeout = Duration::from_millis(1500);
        }
    }
    hostedscan_agent::app::run_once(cfg, &["vulns".to_string()], CancellationToken::new())
        .await
        .unwrap()
}

fn job_failure(report: &hostedscan_agent::report::RunReport) -> Option<String> {
    report.outcomes().into_iter().find_map(|o| match o {
        Outcome::JobFailed { reason, .. } => Some(reason),
        _ => None,
    })
}

fn count(commands: &[String], name: &str) -> usize {
    commands.iter().filter(|c| *c == name).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_job_runs_the_scan_in_gvmd_and_uploads_its_report() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1", "10.0.0.0/30"]"#, "").await;
    gvmd.set_run(0, End::Done);
    let home2 = home.dir.path().to_path_buf();
    // The real binary, as an operator would run it (-v: the password must not show even then).
    let out = tokio::task::spawn_blocking(move || {
        let out = home.cli(&["--once", "--job", "vulns", "-v"]);
        (out, home)
    })
    .await
    .unwrap();
    let (out, home) = out;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains(PASSWORD) && !out.stdout.contains(PASSWORD));
    let ups = api.uploads();
    assert_eq!(ups.len(), 1, "{out:?}");
    assert_eq!(ups[0].scan_type, "OPENVAS");
    let name = ups[0].file_name.clone().unwrap_or_default();
    assert!(
        name.starts_with("vulns-") && name.ends_with("openvas.xml"),
        "{name}"
    );

    // What was uploaded is the unwrapped report, and the agent's own validator accepts it.
    let body = String::from_utf8(ups[0].bytes.clone()).unwrap();
    assert!(
        body.starts_with("<report "),
        "{}",
        &body[..body.len().min(200)]
    );
    assert!(!body.contains("get_reports_response"));
    let file = home2.join("uploaded.xml");
    std::fs::write(&file, &ups[0].bytes).unwrap();
    let v = home.cli(&["validate", "--format", "json", file.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains(r#""scan_type":"OPENVAS""#), "{v:?}");

    // In gvmd: one target with the job's hosts, one alterable task using it, started once.
    let targets = gvmd.targets();
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert!(
        targets[0].name.starts_with("hostedscan-agent_vulns_"),
        "{targets:?}"
    );
    assert_eq!(targets[0].hosts, "127.0.0.1, 10.0.0.0/30");
    assert_eq!(
        targets[0].port_list_id,
        "33d0cd82-57c6-11e1-8ed1-406186ea4fc5"
    );
    let tasks = gvmd.tasks();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].name, "hostedscan-agent_vulns");
    assert_eq!(tasks[0].target_id, targets[0].id);
    assert_eq!(tasks[0].config_id, "daba56c8-73ec-11df-a475-002264764cea");
    assert_eq!(tasks[0].scanner_id, "08b69003-5fc2-4037-a479-93b440211c73");
    assert!(tasks[0].alterable);
    assert_eq!(tasks[0].status, "Done");

    // The report was asked for whole: XML format, every result on one page, all details.
    let get = gvmd
        .raw_commands()
        .into_iter()
        .find(|c| c.starts_with("<get_reports"))
        .unwrap();
    for want in [
        r#"format_id="a994b278-1f62-11e1-96ac-406186ea4fc5""#,
        r#"ignore_pagination="1""#,
        r#"details="1""#,
        "rows=-1",
        &format!(r#"report_id="{}""#, tasks[0].report_ids[0]),
    ] {
        assert!(get.contains(want), "{want} missing from {get}");
    }
    let cmds = gvmd.commands();
    assert_eq!(cmds[0], "authenticate", "{cmds:?}");
    assert_eq!(count(&cmds, "start_task"), 1, "{cmds:?}");

    // status shows the job's run.
    let st = home.cli(&["status", "--format", "json"]);
    let st: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(st["jobs"][0]["name"], "vulns");
    assert_eq!(st["jobs"][0]["outcome"], "ok", "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_reuses_the_target_and_task() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    gvmd.set_run(2, End::Done);
    for run in 1..=2 {
        let r = once(&home).await;
        assert_eq!(r.exit_code(), 0, "run {run}: {:?}", r.outcomes());
    }
    assert_eq!(api.uploads().len(), 2, "two scans, two reports");
    let cmds = gvmd.commands();
    assert_eq!(count(&cmds, "create_target"), 1, "{cmds:?}");
    assert_eq!(count(&cmds, "create_task"), 1, "{cmds:?}");
    assert_eq!(count(&cmds, "modify_task"), 0, "{cmds:?}");
    assert_eq!(count(&cmds, "start_task"), 2, "{cmds:?}");
    assert_eq!(gvmd.targets().len(), 1);
    let tasks = gvmd.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0].report_ids.len(),
        2,
        "both runs' reports stay with the task"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_hosts_get_a_new_target_and_the_old_one_goes() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    gvmd.set_run(0, End::Done);
    assert_eq!(once(&home).await.exit_code(), 0);
    let old = gvmd.targets()[0].clone();
    // The operator changes the job's targets.
    let cfg = std::fs::read_to_string(&home.config).unwrap().replace(
        r#"targets = ["127.0.0.1"]"#,
        r#"targets = ["127.0.0.1", "127.0.0.2"]"#,
    );
    std::fs::write(&home.config, cfg).unwrap();
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 0, "{:?}", r.outcomes());
    assert_eq!(api.uploads().len(), 2);

    let live: Vec<_> = gvmd.targets().into_iter().filter(|t| !t.in_trash).collect();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_ne!(
        live[0].id, old.id,
        "a target in use is not modified: a new one is made"
    );
    assert_eq!(live[0].hosts, "127.0.0.1, 127.0.0.2");
    assert!(
        gvmd.deleted().contains(&old.id),
        "the old target is deleted"
    );
    let tasks = gvmd.tasks();
    assert_eq!(tasks.len(), 1, "the same task, pointed at the new target");
    assert_eq!(tasks[0].target_id, live[0].id);
    assert_eq!(tasks[0].report_ids.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_or_interrupted_task_is_a_failed_run_unless_partial_scans_are_accepted() {
    for end in [End::Stopped, End::Interrupted] {
        let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
        gvmd.set_run(1, end);
        let r = once(&home).await;
        assert_eq!(r.exit_code(), 65, "{end:?}: {:?}", r.outcomes());
        let why = job_failure(&r).unwrap();
        assert!(
            why.contains(&format!("ended {end:?}")) && why.contains("accept_partial"),
            "{why}"
        );
        assert!(api.uploads().is_empty(), "{end:?}: nothing uploaded");
        assert_eq!(count(&gvmd.commands(), "get_reports"), 0);

        // With accept_partial the partial report is uploaded (and passes validation as such).
        let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "accept_partial = true").await;
        gvmd.set_run(1, end);
        let r = once(&home).await;
        assert_eq!(r.exit_code(), 0, "{end:?}: {:?}", r.outcomes());
        let ups = api.uploads();
        assert_eq!(ups.len(), 1);
        assert!(String::from_utf8_lossy(&ups[0].bytes)
            .contains(&format!("<scan_run_status>{end:?}</scan_run_status>")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_names_the_user_and_the_password_file_and_goes_no_further() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    gvmd.set_password("another");
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 65);
    let why = job_failure(&r).unwrap();
    assert!(
        why.contains("\"admin\"")
            && why.contains("Authentication failed")
            && why.contains("gmp_password_file"),
        "{why}"
    );
    assert!(!why.contains(PASSWORD), "{why}");
    assert_eq!(gvmd.commands(), ["authenticate"]);
    assert!(api.uploads().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gmp_error_fails_the_run_with_its_command_status_and_text() {
    let steps = [
        ("get_targets", 400, "Bogus filter"),
        (
            "create_target",
            404,
            "Failed to find port_list '33d0cd82-57c6-11e1-8ed1-406186ea4fc5'",
        ),
        ("get_tasks", 503, "Service temporarily down"),
        (
            "create_task",
            404,
            "Failed to find config 'daba56c8-73ec-11df-a475-002264764cea'",
        ),
        ("start_task", 503, "Service temporarily down"),
        ("get_reports", 404, "Failed to find report"),
    ];
    for (command, status, text) in steps {
        let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
        gvmd.set_run(0, End::Done);
        gvmd.fail_next(command, status, text);
        let r = once(&home).await;
        assert_eq!(r.exit_code(), 65, "{command}: {:?}", r.outcomes());
        let why = job_failure(&r).unwrap();
        assert!(
            why.contains(command) && why.contains(&status.to_string()) && why.contains(text),
            "{command}: {why}"
        );
        assert!(api.uploads().is_empty(), "{command}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_retried_once_then_fails() {
    // Dropped once while the report streams: a new connection, and the run succeeds.
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    gvmd.set_run(0, End::Done);
    gvmd.drop_next("get_reports");
    gvmd.drop_next("create_task");
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 0, "{:?}", r.outcomes());
    assert_eq!(api.uploads().len(), 1);
    assert_eq!(
        gvmd.connections(),
        3,
        "one connection, then one more per drop"
    );
    assert_eq!(
        gvmd.tasks().len(),
        1,
        "the retried step does not make a second task"
    );

    // Dropped twice in the same step: the run fails and says where.
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    gvmd.set_run(0, End::Done);
    gvmd.drop_next("start_task");
    gvmd.drop_next("start_task");
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 65);
    let why = job_failure(&r).unwrap();
    assert!(
        why.contains("connection to gvmd was lost during start_task"),
        "{why}"
    );
    assert!(api.uploads().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_in_the_middle_is_a_dropped_connection() {
    // Cut inside the report (in a tag or a text) and inside a small answer: each retried once.
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    gvmd.set_run(0, End::Done);
    gvmd.set_results(200);
    gvmd.cut_next("get_reports", 20_000);
    gvmd.cut_next("get_tasks", 40);
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 0, "{:?}", r.outcomes());
    let ups = api.uploads();
    assert_eq!(ups.len(), 1);
    let body = String::from_utf8_lossy(&ups[0].bytes);
    assert_eq!(
        body.matches("<result id=").count(),
        200,
        "the whole report, once"
    );
    assert_eq!(gvmd.connections(), 3);

    // Cut twice in the same step: the run fails, and no partial report goes anywhere.
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    gvmd.set_run(0, End::Done);
    gvmd.set_results(200);
    gvmd.cut_next("get_reports", 20_000);
    gvmd.cut_next("get_reports", 30_000);
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 65);
    let why = job_failure(&r).unwrap();
    assert!(why.contains("lost during get_reports"), "{why}");
    assert!(api.uploads().is_empty());
    assert!(home.names_in("rejected").is_empty() && home.names_in("queue").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gvmd_that_stops_answering_is_a_dropped_connection() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    gvmd.set_run(1, End::Done);
    gvmd.hang_next("get_tasks");
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 0, "{:?}", r.outcomes());
    assert_eq!(api.uploads().len(), 1);

    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    gvmd.set_run(0, End::Done);
    gvmd.hang_next("create_target");
    gvmd.hang_next("create_target");
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 65);
    let why = job_failure(&r).unwrap();
    assert!(
        why.contains("create_target") && why.contains("gvmd sent nothing"),
        "{why}"
    );
    assert!(api.uploads().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_task_is_stopped_at_the_jobs_timeout() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace(r#"timeout = "1m""#, r#"timeout = "1s""#);
    std::fs::write(&home.config, cfg).unwrap();
    gvmd.set_run(0, End::Never);
    let started = std::time::Instant::now();
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 65);
    let why = job_failure(&r).unwrap();
    assert!(why.contains("timeout") && why.contains("stopped"), "{why}");
    assert_eq!(gvmd.stops(), 1, "stop_task was sent");
    let status = gvmd.tasks()[0].status.clone();
    assert!(
        status == "Stop Requested" || status == "Stopped",
        "{status}"
    );
    assert!(api.uploads().is_empty());
    assert!(started.elapsed() < Duration::from_secs(30));
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.state.join("jobs.json")).unwrap()).unwrap();
    assert_eq!(j["vulns"]["last_outcome"], "timeout", "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_already_running_is_waited_for_not_started_again() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    gvmd.set_run(2, End::Done);
    // Left running by an agent that was killed, or started by hand in GSA.
    gvmd.preset_task("hostedscan-agent_vulns", "127.0.0.1", "Running");
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 0, "{:?}", r.outcomes());
    assert_eq!(count(&gvmd.commands(), "start_task"), 0);
    assert_eq!(api.uploads().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_the_task_and_target_after_the_report_is_queued() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "cleanup = true").await;
    gvmd.set_run(0, End::Done);
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 0, "{:?}", r.outcomes());
    assert_eq!(api.uploads().len(), 1);
    assert!(gvmd.tasks().iter().all(|t| t.in_trash) || gvmd.tasks().is_empty());
    let deleted = gvmd.deleted();
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    let cmds = gvmd.commands();
    assert!(
        cmds.iter().position(|c| c == "delete_task") > cmds.iter().position(|c| c == "get_reports"),
        "{cmds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_socket_says_what_to_do() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    let socket = gvmd.socket();
    drop(gvmd);
    let _ = std::fs::remove_file(&socket);
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 65);
    let why = job_failure(&r).unwrap();
    assert!(
        why.contains("does not exist") && why.contains("gmp_socket"),
        "{why}"
    );
    assert!(api.uploads().is_empty());
}

/// A report of 68 MiB (results of about 2 KB) streams through the real binary without the
/// agent's memory growing with it (its peak RSS stays far below the report's size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_report_streams_to_disk_without_growing_memory() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    api.set_keep_bytes(false);
    gvmd.set_run(0, End::Done);
    gvmd.set_results(36_000);
    gvmd.set_result_padding(900);
    let config = home.config.clone();
    let (code, max_rss_kib) = tokio::task::spawn_blocking(move || run_measured(&config))
        .await
        .unwrap();
    assert_eq!(code, 0);
    let ups = api.uploads();
    assert_eq!(ups.len(), 1);
    let size = ups[0].size;
    assert!(size > 64 << 20, "the report is {size} bytes");
    let rss = max_rss_kib * 1024;
    assert!(
        rss < 48 << 20,
        "peak RSS {} MiB for a {} MiB report: the report is held in memory",
        rss >> 20,
        size >> 20
    );
    eprintln!(
        "{} MiB report: agent peak RSS {} MiB",
        size >> 20,
        rss >> 20
    );
}

/// Runs `--once --job vulns` and returns its exit code and peak RSS (KiB): the largest
/// `VmHWM` seen in /proc while it runs. (Not wait4's ru_maxrss, which also counts the test
/// process's memory that the child shared between fork and exec.)
fn run_measured(config: &Path) -> (i32, i64) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
        .arg("-c")
        .arg(config)
        .args(["--once", "--job", "vulns", "-q"])
        .env_remove("HOSTEDSCAN_API_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0i64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_file) {
            let hwm = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code().unwrap_or(-1), peak);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// gvmd over TLS: a rustls server on 127.0.0.1 with a certificate for `localhost` from a CA
/// made for the test, passing the bytes to the stand-in's socket.
async fn tls_front(dir: &Path, socket: PathBuf) -> u16 {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("leaf.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, socket) = (acceptor.clone(), socket.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut gvmd) = tokio::net::UnixStream::connect(&socket).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut gvmd).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gvmd_over_tls_is_verified_against_gmp_ca_file() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    let pki = home.dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    if crate::tls::make_pki(&pki).is_none() {
        eprintln!("skipping: openssl is not installed (apt-get install -y openssl; .ci/run does)");
        return;
    }
    gvmd.set_run(0, End::Done);
    let port = tls_front(&pki, gvmd.socket()).await;
    let socket_line = format!("gmp_socket = \"{}\"", gvmd.socket().display());
    let base = std::fs::read_to_string(&home.config).unwrap();

    // Without gmp_ca_file, the test CA is not trusted: the run fails and says what to set.
    std::fs::write(
        &home.config,
        base.replace(
            &socket_line,
            &format!("gmp_host = \"localhost\"\ngmp_port = {port}"),
        ),
    )
    .unwrap();
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 65);
    let why = job_failure(&r).unwrap();
    assert!(why.contains("TLS") && why.contains("gmp_ca_file"), "{why}");
    assert!(api.uploads().is_empty());

    // With it, the scan runs over TLS.
    std::fs::write(
        &home.config,
        base.replace(
            &socket_line,
            &format!(
                "gmp_host = \"localhost\"\ngmp_port = {port}\ngmp_ca_file = \"{}\"",
                pki.join("ca.pem").display()
            ),
        ),
    )
    .unwrap();
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 0, "{:?}", r.outcomes());
    assert_eq!(api.uploads().len(), 1);
    assert_eq!(api.uploads()[0].scan_type, "OPENVAS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_daemon_stops_the_task_it_started() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace(r#"schedule = "@weekly""#, r#"schedule = "* * * * * *""#);
    std::fs::write(&home.config, cfg).unwrap();
    gvmd.set_run(0, End::Never);
    let mut cfg = home.load();
    cfg.jobs[0].openvas_mut().unwrap().polling = Polling {
        first: Duration::from_millis(10),
        max: Duration::from_millis(40),
    };
    let daemon = Daemon::start(cfg);
    eventually(
        "the scheduled run starts the task",
        Duration::from_secs(10),
        || gvmd.commands().iter().any(|c| c == "start_task"),
    )
    .await;
    daemon.stop().await;
    assert_eq!(gvmd.stops(), 1, "{:?}", gvmd.commands());
    assert!(api.uploads().is_empty());
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.state.join("jobs.json")).unwrap()).unwrap();
    let reason = j["vulns"]["last_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("agent stopped") && reason.contains("task was stopped"),
        "{j}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_gvmd_will_not_repoint_is_explained() {
    let (api, gvmd, home) = setup(r#"["127.0.0.1"]"#, "").await;
    gvmd.set_run(0, End::Done);
    // A task of that name made by hand (not alterable, with a report, on another target).
    gvmd.preset_task("hostedscan-agent_vulns", "10.9.9.9", "Done");
    let r = once(&home).await;
    assert_eq!(r.exit_code(), 65);
    let why = job_failure(&r).unwrap();
    assert!(
        why.contains("Status must be New to edit")
            && why.contains("delete the task in gvmd (or make it alterable)"),
        "{why}"
    );
    assert!(api.uploads().is_empty());
    assert_eq!(count(&gvmd.commands(), "start_task"), 0);
}
