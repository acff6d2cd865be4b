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
    let (out, home) = home.once_async().await;
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
    // A source.json cut in half, and a job history of garbage.
    std::fs::write(home.state.join("source.json"), b"{\"id\": \"abc").unwrap();
    std::fs::write(home.state.join("jobs.json"), b"\x00\x17garbage").unwrap();
    // A ledger whose last line was cut by the crash.
    let mut ledger = std::fs::read(home.state.join("ledger.jsonl")).unwrap_or_default();
    ledger.extend_from_slice(b"{\"sha256\":\"00");
    std::fs::write(home.state.join("ledger.jsonl"), ledger).unwrap();

    home.drop_file("new.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    let (out, home) = home.once_async().await;
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
    assert!(home.tmp_files().is_empty());
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
    for (file, bytes) in [
        ("source.json", &b"{\"id\": \"abc"[..]),
        ("jobs.json", &b"\x00\x17garbage"[..]),
    ] {
        let aside = std::fs::read_dir(&home.state).unwrap().flatten().find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{file}.corrupt-"))
        });
        let aside = aside.unwrap_or_else(|| panic!("the broken {file} is not kept aside"));
        assert_eq!(
            std::fs::read(aside.path()).unwrap(),
            bytes,
            "{file} kept as found"
        );
    }
    assert!(
        !home.state.join("jobs.json").exists()
            || std::fs::read_to_string(home.state.join("jobs.json"))
                .is_ok_and(|s| s.starts_with('{')),
        "a fresh history, if any"
    );
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
    let (out, home) = home.once_async().await;
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
    let (out, _home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(api.uploads().len(), 1);
}

/// A small tmpfs mounted for one test (root only; skipped elsewhere), unmounted on drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_directory_pauses_admission_and_keeps_the_original() {
    let api = StandIn::start().await;
    let mut home = Home::new(&api.url(), "", "");
    let Some(fs) = Tmpfs::mount("1m", "the full state directory test") else {
        return;
    };
    home.set_state(fs.path());
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
        status.contains("it waits for room") && status.contains("min_free_space"),
        "status must say why: {status}"
    );
    std::fs::remove_file(&filler).unwrap();
    let ups = api.wait_for_uploads(1, WAIT).await;
    assert_eq!(ups[0].bytes, report);
    d.stop().await;
}

/// Below `min_free_space`, archive folders (their files were uploaded already) go before
/// admission waits: the oldest first, only as many as the floor needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_floor_the_oldest_archive_folders_go_before_admission_waits() {
    let api = StandIn::start().await;
    let mut home = Home::new(
        &api.url(),
        "min_free_space = \"1MiB\"\narchive_retention = \"3650d\"",
        "",
    );
    let Some(fs) = Tmpfs::mount("6m", "the archive-before-waiting test") else {
        return;
    };
    home.set_state(fs.path());
    let archive = home.state.join("archive");
    for day in ["2026-01-01", "2026-01-02"] {
        std::fs::create_dir_all(archive.join(day)).unwrap();
        std::fs::write(archive.join(day).join("old.xml"), vec![b'x'; 2700 * 1024]).unwrap();
    }
    let free = rustix::fs::statvfs(fs.path()).unwrap();
    assert!(
        free.f_bavail * free.f_frsize < 1024 * 1024,
        "the archive was meant to take the disk below the floor"
    );
    let agent = Agent::start(&home, &[]);
    let report = fixture_bytes("nmap-tcp-localhost.xml");
    home.drop_file("new.xml", &report);
    let ups = api.wait_for_uploads(1, WAIT).await;
    assert_eq!(ups[0].bytes, report);
    let log = agent.stop().await.log;
    assert!(
        !archive.join("2026-01-01").exists(),
        "the oldest archive folder is deleted"
    );
    assert!(
        archive.join("2026-01-02").join("old.xml").exists(),
        "only as many folders go as the floor needs"
    );
    assert_eq!(
        log.matches("deleted an archive folder").count(),
        1,
        "each folder deleted is a warning\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_uploading_loses_nothing() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"10m\"");
    std::fs::write(&home.config, cfg).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
        .arg("-c")
        .arg(&home.config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // One upload first: until the API has answered once, the agent sends one request at a
    // time, and two are to be in flight when it is killed.
    home.drop_file("first.xml", &distinct_report(1, 0));
    api.wait_for_uploads(1, WAIT).await;
    api.set_default_fault(Endpoint::Results, Some(Fault::Hang));
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    home.drop_file("b.xml", &fixture_bytes("nmap-udp-localhost.xml"));
    eventually("uploads in flight", WAIT, || {
        api.requests()
            .iter()
            .filter(|r| r.path.ends_with("/results"))
            .count()
            >= 3
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(home.inbox_names().is_empty());
    assert_eq!(
        home.queued(),
        ["a.xml", "b.xml"],
        "both files are in the queue"
    );
    for n in ["a.xml", "b.xml"] {
        assert_eq!(home.queued_record(n)["file_name"], n, "with its record");
    }
    api.set_default_fault(Endpoint::Results, None);
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    let mut names: Vec<_> = api
        .uploads()
        .iter()
        .filter_map(|u| u.file_name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["a.xml", "b.xml", "first.xml"]);
    assert!(home.names_in("queue").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_copy_damaged_on_disk_is_set_aside_and_never_uploaded() {
    let api = StandIn::start().await;
    api.go_down().await;
    let home = Home::new(&api.url(), "", "");
    let (cut, flipped, fine) = (
        fixture_bytes("nmap-tcp-localhost.xml"),
        fixture_bytes("nmap-udp-localhost.xml"),
        fixture_bytes("zap-intranet.xml"),
    );
    home.drop_file("cut.xml", &cut);
    home.drop_file("flipped.xml", &flipped);
    home.drop_file("fine.xml", &fine);
    // The API is down: all three wait in queue/.
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 75, "{out:?}");
    assert_eq!(home.queued().len(), 3);
    // Damage two of them behind the agent's back: one cut short (a half-written file), one
    // with a byte changed (same size: only its content says so).
    let q = home.state.join("queue");
    std::fs::write(q.join("cut.xml"), &cut[..cut.len() / 2]).unwrap();
    let mut b = flipped.clone();
    let at = b.len() - 20;
    b[at] ^= 0x20;
    std::fs::write(q.join("flipped.xml"), &b).unwrap();

    api.come_back().await;
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 65, "set-aside entries count as rejected: {out:?}");
    let ups = api.uploads();
    assert_eq!(ups.len(), 1, "only the intact file goes");
    assert_eq!(ups[0].bytes, fine);
    assert!(
        home.names_in("queue").is_empty(),
        "{:?}",
        home.names_in("queue")
    );
    let r = home.rejected_reason("cut.xml");
    assert!(
        r.contains("damaged or changed in queue/") && r.contains("bytes but"),
        "{r}"
    );
    let r = home.rejected_reason("flipped.xml");
    assert!(
        r.contains("damaged or changed in queue/") && r.contains("xxh3 is"),
        "{r}"
    );
    assert_eq!(
        std::fs::read(home.state.join("rejected/flipped.xml")).unwrap(),
        b,
        "kept as found"
    );
    // The set-aside copy remembers where it came from and what was validated, so it can be
    // sent back through validation.
    let rec: serde_json::Value =
        serde_json::from_str(&home.rejected_reason("flipped.xml")).unwrap();
    assert_eq!(
        rec["file"],
        home.inbox.join("flipped.xml").display().to_string()
    );
    assert_eq!(rec["format"], "nmap-xml");
    assert_eq!(rec["sha256"].as_str().map(str::len), Some(64));
    let out = home.cli(&["requeue", "--rejected", "flipped.xml"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(home.inbox_names().contains(&"flipped.xml".to_string()));
}

/// A valid Nmap report of `len` bytes: a fixture padded with a comment of `x`.
fn padded_report(len: usize) -> Vec<u8> {
    let mut b = fixture_bytes("nmap-tcp-localhost.xml");
    b.extend_from_slice(b"<!-- ");
    b.resize(len - 5, b'x');
    b.extend_from_slice(b" -->\n");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_an_older_version_queued_is_still_checked_against_its_sha256() {
    // Entries queued since the copy's check became XXH3 record it beside the SHA-256; entries
    // queued before (their metadata has no `xxh3`) are checked against the SHA-256, as then.
    let api = StandIn::start().await;
    api.go_down().await;
    let home = Home::new(&api.url(), "", "");
    let small = fixture_bytes("nmap-tcp-localhost.xml");
    let large = padded_report(600 << 10);
    home.drop_file("small.xml", &small);
    home.drop_file("large.xml", &large);
    home.drop_file("intact.xml", &padded_report(700 << 10));
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 75, "{out:?}");
    let q = home.state.join("queue");
    for n in ["small.xml", "large.xml", "intact.xml"] {
        let mut meta = home.queued_record(n);
        let x = meta["xxh3"].as_str().unwrap_or_default().to_string();
        assert!(
            x.len() == 32 && x.bytes().all(|b| b.is_ascii_hexdigit()),
            "{n}: {meta}"
        );
        if n == "intact.xml" {
            // Not an XXH3 (damaged, or written by something else): read as none, not as a
            // reason to set the entry aside.
            meta["xxh3"] = serde_json::json!("not a checksum");
        } else {
            meta.as_object_mut().unwrap().remove("xxh3");
        }
        // As an older version kept it: in a file beside the copy.
        home.record_to_file(n, &meta);
    }
    for (n, content) in [("small.xml", &small), ("large.xml", &large)] {
        let mut b = content.clone();
        let at = b.len() - 30;
        b[at] ^= 0x20;
        std::fs::write(q.join(n), &b).unwrap();
    }
    api.come_back().await;
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 65, "set-aside entries count as rejected: {out:?}");
    let ups = api.uploads();
    assert_eq!(ups.len(), 1, "only the intact old entry goes: {out:?}");
    assert!(ups[0].bytes == padded_report(700 << 10));
    for n in ["small.xml", "large.xml"] {
        let r = home.rejected_reason(n);
        assert!(
            r.contains("damaged or changed in queue/") && r.contains("sha256 is"),
            "{n}: {r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_queued_copy_damaged_in_the_middle_or_at_its_end_never_reaches_the_api_whole() {
    // Large copies are streamed, read and hashed ahead of the socket: the check still decides
    // before their last chunk goes. The damage keeps them valid XML (an `x` of the comment made
    // `X`): only the hash can tell.
    let api = StandIn::start().await;
    api.go_down().await;
    let home = Home::new(&api.url(), "", "");
    let len = 3 << 20;
    let (middle, end, fine) = (
        padded_report(len),
        padded_report(len + 1),
        padded_report(len + 2),
    );
    home.drop_file("middle.xml", &middle);
    home.drop_file("end.xml", &end);
    home.drop_file("fine.xml", &fine);
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 75, "{out:?}");
    let q = home.state.join("queue");
    let mut b = middle.clone();
    b[len / 2] = b'X';
    std::fs::write(q.join("middle.xml"), &b).unwrap();
    let mut b = end.clone();
    let at = end.len() - 6;
    assert_eq!(b[at], b'x');
    b[at] = b'X';
    std::fs::write(q.join("end.xml"), &b).unwrap();

    api.come_back().await;
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 65, "set-aside entries count as rejected: {out:?}");
    let ups = api.uploads();
    assert_eq!(ups.len(), 1, "only the intact file goes");
    assert!(ups[0].bytes == fine, "the intact file went whole");
    for n in ["middle.xml", "end.xml"] {
        let r = home.rejected_reason(n);
        assert!(
            r.contains("damaged or changed in queue/") && r.contains("xxh3 is"),
            "{n}: {r}"
        );
    }
    assert!(home.names_in("queue").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_put_into_queue_by_hand_while_running_is_set_aside_not_ignored() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    eventually("the daemon holds the lock", WAIT, || {
        home.state.join("lock").exists()
    })
    .await;
    std::fs::write(
        home.state.join("queue/by-hand.xml"),
        fixture_bytes("nmap-tcp-localhost.xml"),
    )
    .unwrap();
    eventually("set aside by the queue rescan", WAIT, || {
        home.names_in("rejected")
            .contains(&"by-hand.xml.reason.json".to_string())
    })
    .await;
    d.stop().await;
    let reason =
        std::fs::read_to_string(home.state.join("rejected/by-hand.xml.reason.json")).unwrap();
    assert!(reason.contains("without its metadata"), "{reason}");
    assert!(home.names_in("queue").is_empty());
    assert!(api.uploads().is_empty());
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
