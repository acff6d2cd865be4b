//! The watch directory as hostile ground (contract, "Security"): each test is one attack by a
//! local user who can write a watch directory, run against the real binary, and asserts what a
//! user would notice: every valid report uploaded exactly once, nothing written outside the
//! agent's directories, admission never stuck, disk use bounded, no forged log line. Tests that
//! need another file system (a tmpfs) or another user run as root (CI does) and skip with a
//! message otherwise.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::*;

/// A junk file that is no report, of `size` bytes, distinct for each `n`.
fn junk(n: usize, size: usize) -> Vec<u8> {
    let mut b = format!("not a report {n}\n").into_bytes();
    b.resize(size.max(b.len()), b'j');
    b
}

/// Bytes allocated on disk under `dir` (what `du` counts), following nothing.
fn allocated(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// Every file below `dir`, as paths relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

/// The agent's inotify watches (lines `inotify wd:` in /proc/PID/fdinfo).
fn inotify_watches(pid: u32) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(e.path()) {
            n += s.lines().filter(|l| l.starts_with("inotify wd:")).count();
        }
    }
    n
}

/// Waits for the agent to open `name` in the watched directory (seen through inotify).
struct Opens {
    _watcher: notify::RecommendedWatcher,
    rx: std::sync::mpsc::Receiver<PathBuf>,
}

impl Opens {
    fn watch(dir: &Path) -> Opens {
        use notify::Watcher;
        let (tx, rx) = std::sync::mpsc::channel();
        let mut w = notify::recommended_watcher(move |r: notify::Result<notify::Event>| {
            if let Ok(ev) = r {
                if matches!(
                    ev.kind,
                    notify::EventKind::Access(notify::event::AccessKind::Open(_))
                ) {
                    for p in ev.paths {
                        let _ = tx.send(p);
                    }
                }
            }
        })
        .unwrap();
        w.watch(dir, notify::RecursiveMode::NonRecursive).unwrap();
        Opens { _watcher: w, rx }
    }

    fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    fn wait_for(&self, path: &Path, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(p) if p == path => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }
}

/// Waits for `n` uploads, failing at once if the state directory grows past `limit` bytes.
async fn uploads_within_disk(api: &StandIn, n: usize, state: &Path, limit: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let used = allocated(state);
        assert!(
            used < limit,
            "{what}: the state directory grew to {used} bytes (limit {limit})"
        );
        if api.uploads().len() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: expected {n} uploads within 20 s, got {}: admission is stuck",
            api.uploads().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The usual split, watch directory and state directory on different file systems: a file too
/// large to read is swapped for a FIFO, or for a link to /dev/zero, the moment the agent opens
/// it. Reading the swapped-in name would hang an admission thread for ever (a FIFO) or write
/// without end into the state file system (/dev/zero).
async fn swap_after_open(kind: &str, rounds: usize) {
    let Some(watch_fs) = Tmpfs::mount("64m", "the cross-filesystem swap test") else {
        return;
    };
    let api = StandIn::start().await;
    let mut home = Home::new(&api.url(), "max_file_size = \"64KiB\"", "");
    home.set_inbox(&watch_fs.path().join("inbox"));
    let opens = Opens::watch(&home.inbox);
    let mut agent = Agent::start(&home, &[]);
    let big = home.inbox.join("big.xml");
    for round in 0..rounds {
        opens.drain();
        home.drop_file("big.xml", &distinct_report(100 + round, 128 * 1024));
        assert!(
            opens.wait_for(&big, Duration::from_secs(10)),
            "round {round}: the agent never opened big.xml"
        );
        let swap = home.inbox.join(".swap");
        if kind == "fifo" {
            rustix::fs::mkfifoat(rustix::fs::CWD, &swap, rustix::fs::Mode::from(0o600)).unwrap();
        } else {
            symlink("/dev/zero", &swap).unwrap();
        }
        std::fs::rename(&swap, &big).unwrap();
        // A valid report after it must still go through, and the state directory stay small.
        home.drop_file(&format!("after-{round}.xml"), &distinct_report(round, 500));
        uploads_within_disk(
            &api,
            round + 1,
            &home.state,
            16 << 20,
            &format!("{kind} round {round}"),
        )
        .await;
        std::fs::remove_file(&big).unwrap();
    }
    assert!(agent.running(), "the agent died:\n{}", agent.log());
    let end = agent.stop().await;
    assert_eq!(end.code, Some(0), "{}", end.log);
    assert_eq!(upload_counts(&api).len(), rounds);
    assert!(upload_counts(&api).values().all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_swapped_in_after_the_check_never_hangs_admission() {
    // Five rounds: more than the admissions that run at once, so hung reads would stop them all.
    swap_after_open("fifo", 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_dev_zero_swapped_in_after_the_check_never_fills_the_state_disk() {
    swap_after_open("zero", 2).await;
}

/// Too large for `max_file_size`, on another file system than the state directory: it cannot be
/// moved by rename, so it is left where it is with one warning, and `status` lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_too_large_on_another_file_system_is_parked_not_copied() {
    let Some(watch_fs) = Tmpfs::mount("64m", "the parked-file test") else {
        return;
    };
    let api = StandIn::start().await;
    let mut home = Home::new(&api.url(), "max_file_size = \"64KiB\"", "");
    home.set_inbox(&watch_fs.path().join("inbox"));
    home.drop_file("big.xml", &distinct_report(1, 200 * 1024));
    home.drop_file("ok.xml", &distinct_report(2, 500));
    let agent = Agent::start(&home, &[]);
    api.wait_for_uploads(1, Duration::from_secs(15)).await;
    // Several rescans (rescan_interval is 1 s): still one warning.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let status = home.cli(&["status"]);
    let end = agent.stop().await;
    assert!(home.inbox.join("big.xml").exists(), "left in place");
    assert!(home.names_in("rejected").is_empty(), "not copied");
    let warns = end
        .log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("big.xml"))
        .count();
    assert_eq!(warns, 1, "one warning for the parked file:\n{}", end.log);
    assert!(
        status.stdout.contains("big.xml") && status.stdout.contains("max_file_size"),
        "status lists the parked file and why:\n{}",
        status.stdout
    );
}

/// `requeue --rejected` puts a file back in the watch directory it came from, resolved from the
/// watch root without following links: a directory swapped for a link since the rejection (here
/// to a stand-in for /etc/cron.d) does not take root's write elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_never_writes_through_a_link_swapped_in_for_a_directory() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "recursive = true");
    std::fs::create_dir(home.inbox.join("sub")).unwrap();
    std::fs::write(home.inbox.join("sub/bad.xml"), junk(1, 100)).unwrap();
    age(&home.inbox.join("sub/bad.xml"), 60);
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert_eq!(home.names_in("rejected").len(), 2, "bad.xml and its reason");

    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::remove_dir(home.inbox.join("sub")).unwrap();
    symlink(elsewhere.path(), home.inbox.join("sub")).unwrap();
    let out = home.cli(&["requeue", "--rejected"]);
    assert!(
        tree(elsewhere.path()).is_empty(),
        "requeue wrote through the link: {:?}\n{out:?}",
        tree(elsewhere.path())
    );
    // Not lost: back in the watch directory itself, or still in rejected/ with a reason.
    let back = home.inbox.join("bad.xml").exists();
    let kept = home.names_in("rejected").contains(&"bad.xml".to_string());
    assert!(back || kept, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_refuses_names_that_leave_its_directories() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    home.drop_file("bad.xml", &junk(1, 100));
    assert_eq!(home.cli(&["--once"]).code, 65);
    // A file outside, with a reason file beside it naming the watch directory as its origin:
    // `requeue --rejected ../../victim.xml` must not take it there.
    std::fs::write(home.dir.path().join("victim.xml"), b"keep me").unwrap();
    let reason = std::fs::read_to_string(home.state.join("rejected/bad.xml.reason.json"))
        .unwrap()
        .replace("bad.xml", "victim.xml");
    std::fs::write(home.dir.path().join("victim.xml.reason.json"), reason).unwrap();
    for name in ["../../victim.xml", "../queue", "/etc/passwd", ".."] {
        let out = home.cli(&["requeue", "--rejected", name]);
        assert_ne!(out.code, 0, "{name}: {out:?}");
        assert!(out.stderr.contains(name), "{name}: says which: {out:?}");
    }
    assert_eq!(
        std::fs::read(home.dir.path().join("victim.xml")).unwrap(),
        b"keep me"
    );
    assert!(!home.inbox.join("victim.xml").exists());
    assert!(home.names_in("rejected").contains(&"bad.xml".to_string()));
}

/// `requeue` run by another user than the state directory's owner (root, typically) would leave
/// files the daemon cannot read: it refuses, and says as whom to run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_refuses_a_caller_who_does_not_own_the_state_directory() {
    if !is_root() {
        eprintln!("skipping: needs root to give the state directory to another user");
        return;
    }
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    home.drop_file("bad.xml", &junk(1, 100));
    assert_eq!(home.cli(&["--once"]).code, 65);
    let ok = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&home.state)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = home.cli(&["requeue", "--rejected"]);
    assert_eq!(out.code, 64, "a usage error: {out:?}");
    assert!(
        out.stderr.contains("nobody") || out.stderr.contains("65534"),
        "says which user to run it as: {out:?}"
    );
    assert!(home.names_in("rejected").contains(&"bad.xml".to_string()));
    assert!(!home.inbox.join("bad.xml").exists());
}

/// A recursive watch holding links to the agent's own queue/ and state directory, to `/`, a
/// loop, and a link to a report outside: none is followed, by notifications or by scans. The
/// agent does not read its own custody back (queued entries stay and are uploaded once each),
/// and its inotify watches stay few.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_in_a_recursive_watch_are_never_followed() {
    let api = StandIn::start().await;
    api.go_down().await;
    let home = Home::new(&api.url(), "", "recursive = true");
    std::fs::create_dir_all(home.inbox.join("a/b")).unwrap();
    std::fs::create_dir_all(home.state.join("queue")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let outside_report = outside.path().join("report.xml");
    std::fs::write(&outside_report, distinct_report(99, 500)).unwrap();
    symlink(home.state.join("queue"), home.inbox.join("q")).unwrap();
    symlink(&home.state, home.inbox.join("a/state")).unwrap();
    symlink("/", home.inbox.join("a/root")).unwrap();
    symlink("../..", home.inbox.join("a/b/loop")).unwrap();
    symlink(&outside_report, home.inbox.join("a/b/link.xml")).unwrap();
    let mut agent = Agent::start(&home, &[]);
    let reports: Vec<Vec<u8>> = (0..5).map(|i| distinct_report(i, 500)).collect();
    for (i, r) in reports.iter().enumerate() {
        let tmp = home.inbox.join(format!("a/b/.r{i}.part"));
        std::fs::write(&tmp, r).unwrap();
        age(&tmp, 60);
        std::fs::rename(&tmp, home.inbox.join(format!("a/b/r{i}.xml"))).unwrap();
    }
    eventually("five reports queued", Duration::from_secs(15), || {
        home.queued().len() == 5
    })
    .await;
    // Queue files change while the agent watches (their uploads are retried): a link into
    // queue/ that were followed would make it read them back now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let watches = inotify_watches(agent.pid());
    assert!(
        watches <= 8,
        "{watches} inotify watches: a link was followed"
    );
    assert_eq!(home.queued().len(), 5, "custody intact");
    assert!(
        home.archived().is_empty(),
        "nothing archived as a duplicate"
    );
    api.come_back().await;
    api.wait_for_uploads(5, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(agent.running());
    let end = agent.stop().await;
    let counts = upload_counts(&api);
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert!(!counts.contains_key(&sha256_hex(&distinct_report(99, 500))));
    assert_eq!(
        std::fs::read(&outside_report).unwrap(),
        distinct_report(99, 500)
    );
    assert!(home.inbox.join("a/b/link.xml").symlink_metadata().is_ok());
    assert!(home.names_in("rejected").is_empty(), "{}", end.log);
}

/// `truncate -s 512M x.xml` costs its writer nothing; in rejected/ it must cost no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_giant_stays_sparse_in_rejected() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let giant = home.inbox.join("giant.xml");
    std::fs::File::create(&giant)
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    age(&giant, 60);
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 65, "{out:?}");
    let kept = home.state.join("rejected/giant.xml");
    let m = std::fs::metadata(&kept).unwrap();
    assert_eq!(m.len(), 512 << 20, "kept whole");
    assert!(
        m.blocks() * 512 <= 1 << 20,
        "{} bytes allocated in rejected/",
        m.blocks() * 512
    );
    assert!(!giant.exists());
}

/// rejected/ is held under `rejected_max_size` (allocated bytes), oldest entries dropped first,
/// each drop a warning; entries older than `rejected_retention` go (failed/ too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_is_held_under_its_size_and_retention() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "rejected_max_size = \"1MiB\"", "");
    for i in 0..6 {
        home.drop_file(&format!("junk-{i}.xml"), &junk(i, 300 * 1024));
        let out = home.cli(&["--once"]);
        assert_eq!(out.code, 65, "{out:?}");
    }
    let kept = home.names_in("rejected");
    let used = allocated(&home.state.join("rejected"));
    assert!(used <= 1 << 20, "{used} bytes in rejected/: {kept:?}");
    assert!(
        kept.contains(&"junk-5.xml".to_string()),
        "the newest stays: {kept:?}"
    );
    assert!(
        !kept.contains(&"junk-0.xml".to_string()),
        "the oldest goes: {kept:?}"
    );
    // One larger than the whole limit would push out everything, itself included: it stays
    // where it is, and what rejected/ holds is left alone.
    home.drop_file("huge.xml", &junk(9, 2 << 20));
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(out.stdout.contains("rejected_max_size"), "{}", out.stdout);
    assert!(home.inbox.join("huge.xml").exists());
    assert_eq!(home.names_in("rejected"), kept);
    std::fs::remove_file(home.inbox.join("huge.xml")).unwrap();

    let cfg = std::fs::read_to_string(&home.config).unwrap().replace(
        "rejected_max_size = \"1MiB\"",
        "rejected_retention = \"1s\"",
    );
    std::fs::write(&home.config, cfg).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        home.names_in("rejected").is_empty(),
        "past rejected_retention: {:?}",
        home.names_in("rejected")
    );
}

/// A name as long as the file system allows leaves no room for the agent's suffixes
/// (`.meta.json`, `.reason.json`): it is shortened in the state directory, and the report is
/// uploaded under its own name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_with_the_longest_names_are_uploaded_and_rejected_normally() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let good = format!("{}.xml", "g".repeat(246));
    let bad = format!("{}.xml", "b".repeat(247));
    assert_eq!(good.len(), 250);
    home.drop_file(&good, &distinct_report(1, 500));
    home.drop_file(&bad, &junk(1, 100));
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 65, "{out:?}");
    let ups = api.uploads();
    assert_eq!(ups.len(), 1, "{out:?}");
    assert_eq!(ups[0].file_name.as_deref(), Some(good.as_str()));
    assert!(home.inbox_names().is_empty(), "{:?}", home.inbox_names());
    let rejected = home.names_in("rejected");
    assert_eq!(rejected.len(), 2, "the file and its reason: {rejected:?}");
    assert!(rejected
        .iter()
        .all(|n| n.len() <= 255 && n.starts_with("bbbb")));
}

/// A file named `x.xml\nERROR forged: ...` cannot write a line of its own into the log or
/// `status`; a name that is not UTF-8 is uploaded like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_newlines_or_invalid_utf8_cannot_forge_lines_or_get_lost() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let forged = "x.xml\nERROR forged: the API key is abc";
    home.drop_file(forged, &distinct_report(1, 500));
    let odd = std::ffi::OsStr::from_bytes(b"r\xff\xfe.xml");
    let p = home.inbox.join(odd);
    std::fs::write(&p, distinct_report(2, 500)).unwrap();
    age(&p, 60);
    home.drop_file("bad\n.xml\nERROR forged too", &junk(1, 100));
    let shown = home.inbox.join(forged);
    let v = home.cli(&["validate", shown.to_str().unwrap()]);
    assert_eq!(
        v.stdout.lines().count(),
        1,
        "validate: one line per file: {v:?}"
    );
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert_eq!(upload_counts(&api).len(), 2, "{out:?}");
    for text in [&out.stderr, &out.stdout] {
        assert!(
            !text.lines().any(|l| l.starts_with("ERROR forged")),
            "a forged line:\n{text}"
        );
    }
    let status = home.cli(&["status"]);
    assert!(
        !status.stdout.lines().any(|l| l.starts_with(".xml")),
        "{}",
        status.stdout
    );
    let json = home.cli(&["status", "--format", "json"]);
    assert!(serde_json::from_str::<serde_json::Value>(&json.stdout).is_ok());
    assert!(home.inbox_names().is_empty(), "{:?}", home.inbox_names());
}

/// Files the agent's user cannot read (the packaged service is not root): parked with one
/// warning each until they change, not warned about at every rescan, and `status.json` is not
/// rewritten for them again and again. A file made readable is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_files_get_one_warning_each_until_they_change() {
    if !is_root() {
        eprintln!("skipping: needs root to run the agent as another user");
        return;
    }
    const N: usize = 300;
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let chown = |p: &Path| {
        assert!(std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(p)
            .status()
            .unwrap()
            .success())
    };
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&home.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::create_dir_all(&home.state).unwrap();
    chown(&home.state);
    chown(&home.inbox);
    for i in 0..N {
        let p = home.inbox.join(format!("u-{i}.xml"));
        std::fs::write(&p, distinct_report(i, 300)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
        age(&p, 60);
    }
    home.drop_file("readable.xml", &distinct_report(N + 1, 300));
    std::fs::set_permissions(
        home.inbox.join("readable.xml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let agent = Agent::start_as(65534, &home, &[]);
    api.wait_for_uploads(1, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status_file = home.state.join("status.json");
    let before = std::fs::metadata(&status_file).unwrap().ino();
    // Three more rescans (rescan_interval is 1 s).
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let after = std::fs::metadata(&status_file).unwrap().ino();
    let status = home.cli(&["status", "--format", "json"]);
    // Made readable: it changes (its ctime), and goes in.
    std::fs::set_permissions(
        home.inbox.join("u-7.xml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    api.wait_for_uploads(2, Duration::from_secs(10)).await;
    let end = agent.stop().await;
    for i in [0, 7, N - 1] {
        let name = format!("u-{i}.xml");
        let n = end
            .log
            .lines()
            .filter(|l| l.contains(" WARN ") && l.contains(&format!("/{name}")))
            .count();
        assert_eq!(
            n,
            1,
            "{name}: {n} warnings\n{}",
            &end.log[..end.log.len().min(4000)]
        );
    }
    let warns = end.log.lines().filter(|l| l.contains(" WARN ")).count();
    assert!(warns <= N + 2, "{warns} warnings for {N} unreadable files");
    assert_eq!(
        before, after,
        "status.json was rewritten while nothing changed"
    );
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["parked"].as_u64(), Some(N as u64), "{}", status.stdout);
}

/// The state directory on a small file system that fills up while the API is down: once space
/// and the API come back, every report is delivered exactly once, and none was lost meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_disk_delays_reports_but_loses_none() {
    let Some(state_fs) = Tmpfs::mount("6m", "the disk-full test") else {
        return;
    };
    const N: usize = 20;
    let api = StandIn::start().await;
    api.go_down().await;
    let mut home = Home::new(&api.url(), "after_upload = \"delete\"", "");
    home.set_state(&state_fs.path().join("state"));
    let agent = Agent::start(&home, &[]);
    let reports: Vec<Vec<u8>> = (0..N).map(|i| distinct_report(i, 400 * 1024)).collect();
    for (i, r) in reports.iter().enumerate() {
        home.drop_file(&format!("r{i}.xml"), r);
    }
    // What fits is queued; the rest waits in the watch directory.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!home.inbox_names().is_empty(), "the disk was meant to fill");
    state_fs.resize("64m");
    api.come_back().await;
    api.wait_for_uploads(N, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = agent.stop().await;
    let counts = upload_counts(&api);
    for r in &reports {
        assert_eq!(counts.get(&sha256_hex(r)), Some(&1), "{}", end.log);
    }
    assert!(home.inbox_names().is_empty(), "{:?}", home.inbox_names());
    assert!(
        home.names_in("rejected").is_empty(),
        "{:?}",
        home.names_in("rejected")
    );
    // Said once while it lasted, not once per file that had to wait.
    assert!(
        end.log.matches("admission paused").count() <= 1,
        "{}",
        end.log
    );
    let waits = end.log.matches("it waits for room").count();
    assert!(waits <= N, "at most once per file: {waits}\n{}", end.log);
    // The floor holds with many admissions at once: each copy counts those still being made,
    // so none runs the disk out of space (which the ledger and status.json need too).
    assert!(
        !end.log.contains("No space left on device"),
        "copies made at once ran the disk full:\n{}",
        end.log
    );
}

/// A reload while admission waits for room: the new admission takes the pause over and ends it
/// when room comes back (else `status` and the `admission_paused` metric, which an alert
/// watches, would say paused until the next restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_while_admission_waits_for_room_still_ends_the_pause() {
    let Some(state_fs) = Tmpfs::mount("4m", "the reload-while-full test") else {
        return;
    };
    let api = StandIn::start().await;
    let mut home = Home::new(&api.url(), "min_free_space = \"1MiB\"", "");
    home.set_state(&state_fs.path().join("state"));
    std::fs::create_dir_all(&home.state).unwrap();
    // Below the floor: admission pauses (not one file waiting for its own room).
    let filler = state_fs.path().join("filler");
    std::fs::write(&filler, vec![b'x'; 3 * 1024 * 1024 + 512 * 1024]).unwrap();
    let agent = Agent::start(&home, &[]);
    const N: usize = 3;
    for i in 0..N {
        home.drop_file(&format!("r{i}.xml"), &distinct_report(i, 1024));
    }
    let paused = |home: &Home| {
        let out = home.cli(&["status", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        v["admission_paused"].is_string()
    };
    eventually("admission pauses for room", Duration::from_secs(20), || {
        paused(&home)
    })
    .await;
    // Room comes back just as the daemon reloads: the new admission never sees the disk full,
    // only the files going in again.
    std::fs::remove_file(&filler).unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(agent.pid() as i32).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    eventually("the reload is taken", Duration::from_secs(20), || {
        std::fs::read_to_string(home.state.join("reload.json")).is_ok_and(|r| r.contains("true"))
    })
    .await;
    api.wait_for_uploads(N, Duration::from_secs(30)).await;
    eventually(
        "status no longer says admission is paused",
        Duration::from_secs(20),
        || !paused(&home),
    )
    .await;
    let end = agent.stop().await;
    assert!(
        end.log.contains("admission resumed"),
        "{}",
        &end.log[end.log.len().saturating_sub(4000)..]
    );
}

/// FIFOs, sockets and device nodes in a watch directory are skipped without being opened; the
/// report beside them goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifos_sockets_and_devices_are_skipped_without_a_hang() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        home.inbox.join("fifo.xml"),
        rustix::fs::Mode::from(0o644),
    )
    .unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(home.inbox.join("sock.xml")).unwrap();
    if is_root() {
        // The same device as /dev/zero: reading it would never end.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            home.inbox.join("zero.xml"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from(0o644),
            rustix::fs::makedev(1, 5),
        )
        .unwrap();
    }
    home.drop_file("ok.xml", &distinct_report(1, 500));
    let out = tokio::task::spawn_blocking({
        let config = home.config.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
                .arg("-c")
                .arg(config)
                .arg("--once")
                .env_remove("HOSTEDSCAN_API_KEY")
                .output()
                .unwrap()
        }
    });
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("--once hung on a special file")
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(api.uploads().len(), 1);
    assert!(home.names_in("rejected").is_empty());
}

/// A hard link in the watch directory to a report elsewhere: the report is uploaded, the link
/// removed, and the file it shares with is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_link_is_taken_without_touching_the_file_it_shares() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let elsewhere = home.dir.path().join("elsewhere.xml");
    std::fs::write(&elsewhere, distinct_report(1, 500)).unwrap();
    age(&elsewhere, 60);
    std::fs::hard_link(&elsewhere, home.inbox.join("linked.xml")).unwrap();
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(api.uploads().len(), 1);
    assert!(!home.inbox.join("linked.xml").exists());
    assert_eq!(std::fs::read(&elsewhere).unwrap(), distinct_report(1, 500));
    assert_eq!(std::fs::metadata(&elsewhere).unwrap().nlink(), 1);
}

/// The moments between the watcher's look at a settled file and admission's open, widened with
/// the `admit-open` failpoint: a report replaced by its writer in that window, or a directory
/// put in its place, is never read as what was looked at. The new report goes up, alone; a
/// directory is passed over; the agent goes on.
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_between_the_look_and_the_read_is_taken_as_it_is_now() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let agent = Agent::start(&home, &[("FAILPOINTS", "admit-open=sleep(1500)")]);
    let old = distinct_report(1, 500);
    let new = distinct_report(2, 500);
    home.drop_file("a.xml", &old);
    home.drop_file("b.xml", &distinct_report(3, 500));
    // Settled after 200 ms, then admission waits 1.5 s before it opens them.
    tokio::time::sleep(Duration::from_millis(800)).await;
    home.drop_file("a.xml", &new);
    std::fs::remove_file(home.inbox.join("b.xml")).unwrap();
    std::fs::create_dir(home.inbox.join("b.xml")).unwrap();
    home.drop_file("c.xml", &distinct_report(4, 500));
    api.wait_for_uploads(2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = agent.stop().await;
    let counts = upload_counts(&api);
    assert_eq!(counts.get(&sha256_hex(&new)), Some(&1), "{}", end.log);
    assert!(
        !counts.contains_key(&sha256_hex(&old)),
        "the replaced report was read: {}",
        end.log
    );
    assert!(counts.contains_key(&sha256_hex(&distinct_report(4, 500))));
    assert_eq!(counts.len(), 2, "{}", end.log);
    assert!(
        home.inbox.join("b.xml").is_dir(),
        "the directory is left alone"
    );
    assert!(home.names_in("rejected").is_empty(), "{}", end.log);
}

/// A file too large for `max_file_size` on the state file system goes to rejected/ by rename,
/// unless it alone takes more than `rejected_max_size`: then it stays where it is, and what
/// rejected/ held is not pushed out by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_too_large_even_for_rejected_stays_where_it_is() {
    let api = StandIn::start().await;
    let home = Home::new(
        &api.url(),
        "max_file_size = \"64KiB\"\nrejected_max_size = \"1MiB\"",
        "",
    );
    home.drop_file("junk.xml", &junk(1, 1000));
    home.drop_file("big.xml", &distinct_report(1, 100 * 1024));
    assert_eq!(home.cli(&["--once"]).code, 65);
    assert_eq!(
        home.names_in("rejected").len(),
        4,
        "junk and big, each with its reason"
    );
    home.drop_file("huge.xml", &distinct_report(2, 2 << 20));
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(home.inbox.join("huge.xml").exists(), "{out:?}");
    assert_eq!(
        home.names_in("rejected"),
        [
            "big.xml",
            "big.xml.reason.json",
            "junk.xml",
            "junk.xml.reason.json"
        ]
    );
}

/// The same report dropped again and again costs the agent nothing: each copy is removed, no
/// second copy is archived (archive/ would otherwise fill at no cost to the dropper).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_removed_without_a_copy_in_archive() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let r = distinct_report(1, 50 * 1024);
    for i in 0..5 {
        home.drop_file("again.xml", &r);
        let out = home.cli(&["--once"]);
        assert_eq!(out.code, 0, "round {i}: {out:?}");
    }
    assert_eq!(api.uploads().len(), 1);
    assert!(home.inbox_names().is_empty());
    assert_eq!(home.archived().len(), 1, "{:?}", home.archived());
}

/// A recursive watch with a directory of a hundred thousand dotfiles whose attributes its owner
/// changes without pause: no event on it makes the agent list it again, so a report dropped
/// beside it goes up at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touching_a_large_directory_without_pause_does_not_starve_admission() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "recursive = true");
    no_periodic_scan(&home);
    let big = home.inbox.join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..20_000 {
        std::fs::File::create(big.join(format!(".dot-{i}"))).unwrap();
    }
    let agent = Agent::start(&home, &[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let toucher = std::thread::spawn({
        let (stop, big) = (stop.clone(), big.clone());
        move || {
            let mut mode = 0o755;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                mode ^= 0o020;
                let _ = std::fs::set_permissions(&big, std::fs::Permissions::from_mode(mode));
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    home.drop_file("ok.xml", &distinct_report(1, 500));
    let got = tokio::time::timeout(Duration::from_secs(10), api.wait_for_uploads(1, WAIT_LONG))
        .await
        .is_ok();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    toucher.join().unwrap();
    let end = agent.stop().await;
    assert!(
        got,
        "no upload while the directory was being touched:\n{}",
        end.log
    );
}

const WAIT_LONG: Duration = Duration::from_secs(30);

/// The periodic scan an hour away: what happens in the test is the notifications' doing.
fn no_periodic_scan(home: &Home) {
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("rescan_interval = \"1s\"", "rescan_interval = \"1h\"");
    std::fs::write(&home.config, cfg).unwrap();
}

/// A writer that rewrites a report in place (same inode) after the agent committed its first
/// content: the file is not removed, and its new content goes up too.
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_rewritten_in_place_after_its_commit_is_not_removed() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let agent = Agent::start(&home, &[("FAILPOINTS", "admit-after-commit=sleep(1500)")]);
    let first = distinct_report(1, 500);
    let second = distinct_report(2, 500);
    let p = home.drop_file("a.xml", &first);
    // Committed after the 200 ms settle; the removal waits 1.5 s: rewrite it in between.
    tokio::time::sleep(Duration::from_millis(900)).await;
    std::fs::write(&p, &second).unwrap();
    api.wait_for_uploads(2, Duration::from_secs(20)).await;
    let end = agent.stop().await;
    let counts = upload_counts(&api);
    assert_eq!(counts.get(&sha256_hex(&first)), Some(&1), "{}", end.log);
    assert_eq!(counts.get(&sha256_hex(&second)), Some(&1), "{}", end.log);
}

/// Watches inside watches: a file belongs to the most specific one, whose settings apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_watch_applies_its_own_settings() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "recursive = true\nscan_type = \"NMAP\"");
    let inner = home.inbox.join("udp");
    std::fs::create_dir(&inner).unwrap();
    let cfg = std::fs::read_to_string(&home.config).unwrap()
        + &format!("\n[[watch]]\npath = \"{}\"\n", inner.display());
    std::fs::write(&home.config, cfg).unwrap();
    let bytes = fixture_bytes("nmap-udp-localhost.xml");
    std::fs::write(inner.join("u.xml"), &bytes).unwrap();
    age(&inner.join("u.xml"), 60);
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 0, "{out:?}");
    let ups = api.uploads();
    assert_eq!(ups.len(), 1, "{out:?}");
    assert_eq!(
        ups[0].scan_type, "NMAP_UDP",
        "the inner watch's auto detection"
    );
}

/// A subdirectory of a recursive watch removed and made again is watched again at once (not
/// only by the periodic scan).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subdirectory_made_again_is_watched_again() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "recursive = true");
    no_periodic_scan(&home);
    let sub = home.inbox.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let agent = Agent::start(&home, &[]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    std::fs::write(sub.join("a.xml"), distinct_report(1, 500)).unwrap();
    api.wait_for_uploads(1, Duration::from_secs(10)).await;
    std::fs::remove_dir_all(&sub).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::create_dir(&sub).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(sub.join("b.xml"), distinct_report(2, 500)).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), api.wait_for_uploads(2, WAIT_LONG))
        .await
        .is_ok();
    let end = agent.stop().await;
    assert!(got, "the new sub/ was not watched:\n{}", end.log);
}

/// A file the agent was removing when it died (renamed to its hidden name for a moment) is
/// given back a visible name at the next start, and admitted like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_left_hidden_by_a_crash_mid_removal_comes_back() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let r = distinct_report(1, 500);
    let hidden = home.inbox.join(".hostedscan-agent-rm-00112233aabbccdd.tmp");
    std::fs::write(&hidden, &r).unwrap();
    age(&hidden, 60);
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        upload_counts(&api).get(&sha256_hex(&r)),
        Some(&1),
        "{out:?}"
    );
    assert!(!hidden.exists());
}
