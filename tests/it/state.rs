//! The state directory across restarts and damage: whatever an interrupted run or a careless
//! hand left there is repaired or set aside, and the agent starts.

use std::time::Duration;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_crash_are_cleaned_and_damaged_entries_set_aside() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    // A first run creates the layout.
    let (out, home) = tokio::task::spawn_blocking(move || (home.cli(&["--once"]), home))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    let q = home.state.join("queue");
    // An admission cut before its commit point: metadata without data.
    std::fs::write(q.join("orphan.xml.meta.json"), b"{}").unwrap();
    // A half-written copy.
    std::fs::write(home.state.join("tmp/.tmp-0123456789abcdef"), b"<nmaprun").unwrap();
    // A file someone copied into queue/ by hand, and one whose metadata is garbage.
    std::fs::write(
        q.join("by-hand.xml"),
        fixture_bytes("nmap-tcp-localhost.xml"),
    )
    .unwrap();
    std::fs::write(
        q.join("garbled.xml"),
        fixture_bytes("nmap-udp-localhost.xml"),
    )
    .unwrap();
    std::fs::write(q.join("garbled.xml.meta.json"), b"{\"name\": tru").unwrap();
    // A source.json cut in half.
    std::fs::write(home.state.join("source.json"), b"{\"id\": \"abc").unwrap();
    // A ledger whose last line was cut by the crash.
    let mut ledger = std::fs::read(home.state.join("ledger.jsonl")).unwrap_or_default();
    ledger.extend_from_slice(b"{\"sha256\":\"00");
    std::fs::write(home.state.join("ledger.jsonl"), ledger).unwrap();

    home.drop_file("new.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    let (out, home) = tokio::task::spawn_blocking(move || (home.cli(&["--once"]), home))
        .await
        .unwrap();
    assert_eq!(
        out.code, 65,
        "set-aside entries are reported as rejected: {out:?}"
    );
    assert!(
        out.stdout.contains("queue entry set aside"),
        "{}",
        out.stdout
    );
    assert_eq!(api.uploads().len(), 1);
    assert!(
        home.names_in("queue").is_empty(),
        "{:?}",
        home.names_in("queue")
    );
    assert!(home.names_in("tmp").is_empty());
    let rejected = home.names_in("rejected");
    for n in [
        "by-hand.xml",
        "by-hand.xml.reason.json",
        "garbled.xml",
        "garbled.xml.reason.json",
    ] {
        assert!(
            rejected.contains(&n.to_string()),
            "{n} not set aside: {rejected:?}"
        );
    }
    let aside = std::fs::read_dir(&home.state).unwrap().flatten().any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with("source.json.corrupt-")
    });
    assert!(aside, "the broken source.json is kept aside");
    let ledger = std::fs::read_to_string(home.state.join("ledger.jsonl")).unwrap();
    assert!(
        ledger.lines().last().unwrap().contains("new.xml"),
        "{ledger}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_never_share_a_state_directory() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    eventually("the daemon holds the lock", WAIT, || {
        home.state.join("lock").exists()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (out, home) = tokio::task::spawn_blocking(move || (home.cli(&["--once"]), home))
        .await
        .unwrap();
    assert_eq!(out.code, 75, "{out:?}");
    assert!(
        out.stderr.contains("in use by another hostedscan-agent"),
        "{}",
        out.stderr
    );
    let status = home.cli(&["status", "--format", "json"]);
    let s: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(s["daemon_running"], true);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_watches_see_subdirectories_and_others_do_not() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "recursive = true");
    std::fs::create_dir_all(home.inbox.join("site-a/2026")).unwrap();
    std::fs::create_dir_all(home.inbox.join(".hidden")).unwrap();
    let deep = home.inbox.join("site-a/2026/deep.xml");
    std::fs::write(&deep, fixture_bytes("nmap-tcp-localhost.xml")).unwrap();
    age(&deep, 60);
    std::fs::write(
        home.inbox.join(".hidden/no.xml"),
        fixture_bytes("nmap-udp-localhost.xml"),
    )
    .unwrap();
    let d = Daemon::start(home.load());
    let ups = api.wait_for_uploads(1, WAIT).await;
    assert_eq!(ups[0].file_name.as_deref(), Some("deep.xml"));
    // A subdirectory made while running is watched too.
    std::fs::create_dir_all(home.inbox.join("site-b")).unwrap();
    std::fs::write(
        home.inbox.join("site-b/later.xml"),
        fixture_bytes("zap-intranet.xml"),
    )
    .unwrap();
    api.wait_for_uploads(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    d.stop().await;
    assert_eq!(api.uploads().len(), 2, "dot-directories are skipped");

    let flat = Home::new(&api.url(), "", "");
    std::fs::create_dir_all(flat.inbox.join("sub")).unwrap();
    std::fs::write(
        flat.inbox.join("sub/x.xml"),
        fixture_bytes("nmap-tcp-localhost.xml"),
    )
    .unwrap();
    let (out, _flat) = tokio::task::spawn_blocking(move || (flat.cli(&["--once"]), flat))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("uploaded 0,"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_proxy_carries_the_uploads() {
    let api = StandIn::start().await;
    // Nothing listens on port 9: the uploads can only arrive through the proxy.
    let home = Home::new("http://127.0.0.1:9/v1", "", "");
    let proxy = api.url().trim_end_matches("/v1").to_string();
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("[api]\n", &format!("[api]\nproxy = \"{proxy}\"\n"));
    std::fs::write(&home.config, cfg).unwrap();
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    let (out, _home) = tokio::task::spawn_blocking(move || (home.cli(&["--once"]), home))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(api.uploads().len(), 1);
}

/// A small tmpfs mounted for one test (root only; skipped elsewhere), unmounted on drop.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(at: &std::path::Path, size: &str) -> Option<SmallFs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallFs(at.to_path_buf()))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_directory_pauses_admission_and_keeps_the_original() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let Some(_fs) = SmallFs::mount(&home.state, "1m") else {
        eprintln!("skipping: cannot mount a tmpfs here (needs root)");
        return;
    };
    std::fs::create_dir_all(home.state.join("tmp")).unwrap();
    let filler = home.state.join("filler");
    std::fs::write(&filler, vec![b'x'; 900 * 1024]).unwrap();
    let mut report = fixture_bytes("nmap-tcp-localhost.xml");
    report.extend(std::iter::repeat_n(b'\n', 300 * 1024));
    let d = Daemon::start(home.load());
    home.drop_file("big.xml", &report);
    let status_path = home.state.join("status.json");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        home.inbox_names(),
        vec!["big.xml".to_string()],
        "the original stays while the state directory is full"
    );
    assert!(api.uploads().is_empty());
    assert!(
        home.names_in("rejected").is_empty(),
        "a full disk is not the file's fault"
    );
    let status = std::fs::read_to_string(&status_path).unwrap();
    assert!(
        status.contains("state directory cannot take it"),
        "status must say why: {status}"
    );
    std::fs::remove_file(&filler).unwrap();
    let ups = api.wait_for_uploads(1, WAIT).await;
    assert_eq!(ups[0].bytes, report);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_uploading_loses_nothing() {
    let api = StandIn::start().await;
    api.set_default_fault(Endpoint::Results, Some(Fault::Hang));
    let home = Home::new(&api.url(), "", "");
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"10m\"");
    std::fs::write(&home.config, cfg).unwrap();
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    home.drop_file("b.xml", &fixture_bytes("nmap-udp-localhost.xml"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
        .arg("-c")
        .arg(&home.config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("uploads in flight", WAIT, || {
        api.requests()
            .iter()
            .filter(|r| r.path.ends_with("/results"))
            .count()
            >= 2
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(home.inbox_names().is_empty());
    assert_eq!(
        home.names_in("queue").len(),
        4,
        "both files are in the queue with their metadata"
    );
    api.set_default_fault(Endpoint::Results, None);
    let (out, home) = tokio::task::spawn_blocking(move || (home.cli(&["--once"]), home))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    let mut names: Vec<_> = api
        .uploads()
        .iter()
        .filter_map(|u| u.file_name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["a.xml", "b.xml"]);
    assert!(home.names_in("queue").is_empty());
}

/// The daemon's resident memory (KiB) just after it started with `home`'s state directory.
fn rss_after_start(home: &Home) -> i64 {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
        .arg("-c")
        .arg(&home.config)
        .env_remove("HOSTEDSCAN_API_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        if line.unwrap().contains("hostedscan-agent started") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_of_100_000_uploads_costs_the_daemon_a_few_mib_not_twenty() {
    let api = StandIn::start().await;
    let empty = Home::new(&api.url(), "", "");
    let full = Home::new(&api.url(), "", "");
    std::fs::create_dir_all(&full.state).unwrap();
    let mut ledger = String::new();
    for i in 0..100_000u32 {
        ledger.push_str(&format!(
            "{{\"sha256\":\"{i:08x}{}\",\"source_id\":\"665399ae750da1a1e61e8a59b6\",\"at\":\"2026-11-27T07:16:29Z\",\"file\":\"soak-{i}.xml\",\"scan_type\":\"NMAP\",\"size\":1428,\"result_id\":\"f89fdec925ff2368b5f7154600\"}}\n",
            "ab".repeat(28)
        ));
    }
    std::fs::write(full.state.join("ledger.jsonl"), ledger).unwrap();
    let (empty_kib, full_kib) =
        tokio::task::spawn_blocking(move || (rss_after_start(&empty), rss_after_start(&full)))
            .await
            .unwrap();
    eprintln!(
        "RSS after start: {empty_kib} KiB with an empty ledger, {full_kib} KiB with 100 000 lines"
    );
    // A (source id, hex digest) pair of Strings per line took about 19 MiB here.
    assert!(
        full_kib - empty_kib < 10 << 10,
        "the ledger's 100 000 lines cost {} KiB of memory",
        full_kib - empty_kib
    );
}
