//! The moments a `kill -9` from outside cannot hit reliably, and a state directory that fails
//! (ENOSPC, EIO), forced with failpoints (`--features failpoints`, see src/failpoint.rs) in the
//! real binary: after each, the next run finds every file, uploads it, and repeats at most the
//! one upload whose 2xx the ledger never saw.

use std::time::Duration;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);
const SIGKILL: i32 = 9;

/// A distinct valid report.
fn report(n: usize) -> Vec<u8> {
    distinct_report(n, 0)
}

/// `--once` with these failpoints armed, off the async runtime.
async fn once_with(home: Home, failpoints: &str) -> (Output, Home) {
    let fp = failpoints.to_string();
    tokio::task::spawn_blocking(move || {
        let out = home.cli_env(&["--once"], &[("FAILPOINTS", &fp)]);
        (out, home)
    })
    .await
    .unwrap()
}

fn ledger_lines(home: &Home) -> usize {
    std::fs::read_to_string(home.state.join("ledger.jsonl"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_2xx_and_the_ledger_repeats_that_one_upload_only() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "upload_concurrency = 1", "");
    let (a, b) = (report(1), report(2));
    home.drop_file("a.xml", &a);
    home.drop_file("b.xml", &b);
    let (out, home) = once_with(home, "ledger-record=return(kill)").await;
    assert_eq!(out.signal, Some(SIGKILL), "{out:?}");
    // It died as the first 2xx's ledger line was written (the first upload is alone: the API
    // is not proven up yet). The next upload may have gone out meanwhile (its 2xx would have
    // been the next batch's): that one is repeated too.
    let before: Vec<String> = api.uploads().into_iter().map(|u| u.sha256).collect();
    assert!(!before.is_empty() && before.len() <= 2, "{before:?}");
    assert_eq!(ledger_lines(&home), 0, "the ledger never saw it");

    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    let counts = upload_counts(&api);
    assert!(counts.contains_key(&sha256_hex(&a)) && counts.contains_key(&sha256_hex(&b)));
    for d in &before {
        assert_eq!(counts[d], 2, "an unrecorded upload is repeated once");
    }
    assert_eq!(
        counts.values().sum::<usize>(),
        2 + before.len(),
        "and nothing else: {counts:?}"
    );
    assert_eq!(ledger_lines(&home), 2);
    assert!(
        home.names_in("queue").is_empty(),
        "{:?}",
        home.names_in("queue")
    );
    assert!(home.inbox_names().is_empty());
}

/// The contents the ledger holds (`ledger.jsonl`), as hex SHA-256.
fn ledger_digests(home: &Home) -> std::collections::HashSet<String> {
    std::fs::read_to_string(home.state.join("ledger.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["sha256"].as_str().map(String::from))
        .collect()
}

/// Hex SHA-256 of the queued copies in `queue/` (not their metadata), and the names of the
/// metadata files whose copy is not there. Every copy has its record (on it or beside it).
fn queue_contents(home: &Home) -> (Vec<String>, Vec<String>) {
    let names = home.names_in("queue");
    let data: Vec<String> = home
        .queued()
        .iter()
        .map(|n| sha256_hex(&std::fs::read(home.state.join("queue").join(n)).unwrap()))
        .collect();
    let orphans = names
        .iter()
        .filter_map(|n| n.strip_suffix(".meta.json"))
        .filter(|d| !names.iter().any(|n| n == d))
        .map(String::from)
        .collect();
    for n in home.queued() {
        assert!(
            home.queued_record(&n)["sha256"].is_string(),
            "{n} in queue/ without its record: {names:?}"
        );
    }
    (data, orphans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_inside_a_batch_of_uploads_repeats_only_the_uploads_of_that_batch() {
    // The first upload is a batch alone (the API is not proven up yet: one request at a time);
    // the agent dies as the second batch's ledger lines are written.
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "upload_concurrency = 4", "");
    const N: usize = 40;
    let reports: Vec<Vec<u8>> = (0..N).map(|n| report(100 + n)).collect();
    for (n, r) in reports.iter().enumerate() {
        home.drop_file(&format!("r{n}.xml"), r);
    }
    let (out, home) = once_with(home, "ledger-record=1*off->return(kill)").await;
    assert_eq!(out.signal, Some(SIGKILL), "{out:?}");
    let sent_before: std::collections::HashSet<String> =
        api.uploads().into_iter().map(|u| u.sha256).collect();
    let recorded = ledger_digests(&home);
    assert_eq!(recorded.len(), 1, "the first batch was recorded");
    assert!(sent_before.is_superset(&recorded));
    let unrecorded: std::collections::HashSet<String> =
        sent_before.difference(&recorded).cloned().collect();
    assert!(!unrecorded.is_empty(), "the second batch was uploaded");

    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    let counts = upload_counts(&api);
    for r in &reports {
        let c = counts.get(&sha256_hex(r)).copied().unwrap_or(0);
        assert!(c >= 1, "every file is uploaded: {counts:?}");
    }
    let twice: std::collections::HashSet<String> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(d, _)| d.clone())
        .collect();
    assert!(counts.values().all(|c| *c <= 2), "{counts:?}");
    assert_eq!(
        twice, unrecorded,
        "repeated: exactly the uploads whose batch the ledger never saw"
    );
    assert_eq!(ledger_digests(&home).len(), N);
    assert!(
        home.names_in("queue").is_empty(),
        "{:?}",
        home.names_in("queue")
    );
    assert!(home.inbox_names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_inside_a_batch_of_admissions_loses_nothing_and_each_file_goes_once() {
    // The agent dies in the second admission batch's commit: its metadata is durable, no copy
    // of it is in queue/ yet.
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    const N: usize = 40;
    let reports: Vec<Vec<u8>> = (0..N).map(|n| report(200 + n)).collect();
    for (n, r) in reports.iter().enumerate() {
        home.drop_file(&format!("r{n}.xml"), r);
    }
    let (out, home) = once_with(home, "queue-commit=1*off->return(kill)").await;
    assert_eq!(out.signal, Some(SIGKILL), "{out:?}");
    // Nothing lost: each file is still in the watch directory, in queue/ whole, or uploaded
    // and recorded.
    let inbox: std::collections::HashSet<String> = home
        .inbox_names()
        .iter()
        .map(|n| sha256_hex(&std::fs::read(home.inbox.join(n)).unwrap()))
        .collect();
    let (queued, orphans) = queue_contents(&home);
    let recorded = ledger_digests(&home);
    for r in &reports {
        let d = sha256_hex(r);
        assert!(
            inbox.contains(&d) || queued.contains(&d) || recorded.contains(&d),
            "a file is nowhere after the crash"
        );
    }
    // The second batch: its copies, records on them, are still in tmp/ (which the next start
    // clears); nothing of it reached queue/.
    assert!(orphans.is_empty(), "{orphans:?}");
    assert!(!home.tmp_files().is_empty(), "the second batch's copies");
    let sent_before: std::collections::HashSet<String> =
        api.uploads().into_iter().map(|u| u.sha256).collect();

    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    let counts = upload_counts(&api);
    for r in &reports {
        let d = sha256_hex(r);
        let c = counts.get(&d).copied().unwrap_or(0);
        assert!(c >= 1, "every file is uploaded: {counts:?}");
        assert!(
            c == 1 || (c == 2 && sent_before.contains(&d) && !recorded.contains(&d)),
            "only an upload the ledger never saw is repeated: {counts:?}"
        );
    }
    assert!(
        home.names_in("queue").is_empty(),
        "{:?}",
        home.names_in("queue")
    );
    assert!(home.tmp_files().is_empty(), "{:?}", home.tmp_files());
    assert!(
        home.names_in("rejected").is_empty(),
        "{:?}",
        home.names_in("rejected")
    );
    assert!(home.inbox_names().is_empty(), "{:?}", home.inbox_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_ledger_write_is_reported_and_the_upload_still_settles() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    home.drop_file("a.xml", &report(1));
    let (out, home) = once_with(home, "ledger-record=return(eio)").await;
    assert_eq!(out.code, 0, "the upload was accepted: {out:?}");
    assert!(
        out.stderr.contains("uploaded, but cannot write the ledger")
            && out.stderr.contains("Input/output error"),
        "{}",
        out.stderr
    );
    assert_eq!(api.uploads().len(), 1);
    // Not left queued to be sent again: archived as after any upload.
    assert!(
        home.names_in("queue").is_empty(),
        "{:?}",
        home.names_in("queue")
    );
    assert_eq!(home.archived(), ["a.xml"]);
    assert!(home.inbox_names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_original_is_not_sent_again_when_the_ledger_could_not_be_written() {
    // after_upload = "keep": the original stays in the watch directory. The ledger write fails
    // once; the daemon still knows the content went, so a new look at the file sends nothing.
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "after_upload = \"keep\"", "");
    let agent = Agent::start(&home, &[("FAILPOINTS", "ledger-record=1*return(eio)")]);
    let a = report(1);
    let path = home.drop_file("a.xml", &a);
    api.wait_for_uploads(1, WAIT).await;
    // The file is touched: the watcher reads it again.
    age(&path, 30);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = agent.stop().await;
    let log = &out.log;
    assert!(
        log.contains("uploaded, but cannot write the ledger"),
        "{log}"
    );
    assert_eq!(api.uploads().len(), 1, "sent once: {log}");
    assert_eq!(home.inbox_names(), ["a.xml"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_the_commit_point_keeps_the_original_and_it_goes_once() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let a = report(1);
    home.drop_file("a.xml", &a);
    // Dies after the copy and its record are durable, before the copy's rename into queue/.
    let (out, home) = once_with(home, "queue-commit=return(kill)").await;
    assert_eq!(out.signal, Some(SIGKILL), "{out:?}");
    assert_eq!(home.inbox_names(), ["a.xml"], "the original is still there");
    assert!(
        home.names_in("queue").is_empty(),
        "{:?}",
        home.names_in("queue")
    );
    assert_eq!(home.tmp_files().len(), 1, "the copy, not committed");
    assert!(api.uploads().is_empty());

    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(upload_counts(&api)[&sha256_hex(&a)], 1);
    assert_eq!(api.uploads().len(), 1);
    assert!(
        home.names_in("queue").is_empty(),
        "{:?}",
        home.names_in("queue")
    );
    assert!(home.tmp_files().is_empty(), "{:?}", home.tmp_files());
    assert!(home.inbox_names().is_empty());
}

/// Where the file system keeps no attribute for a copy's record (or not one that large), the
/// record is a file of its own beside the copy: made durable before the copy is renamed in, so
/// a crash at the commit point leaves only it (removed at the next start); the entry it makes
/// is read like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_cannot_carry_its_record_gets_a_record_file_and_loses_nothing() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let a = report(1);
    home.drop_file("a.xml", &a);
    let no_attribute = "queue-record-attach=return(enotsup)";
    let (out, home) = once_with(home, &format!("{no_attribute};queue-commit=return(kill)")).await;
    assert_eq!(out.signal, Some(SIGKILL), "{out:?}");
    assert_eq!(home.inbox_names(), ["a.xml"], "the original is still there");
    assert_eq!(home.names_in("queue"), ["a.xml.meta.json"], "metadata only");

    api.go_down().await;
    let (out, home) = once_with(home, no_attribute).await;
    assert_eq!(out.code, 75, "queued, the API down: {out:?}");
    assert_eq!(home.names_in("queue"), ["a.xml", "a.xml.meta.json"]);
    assert!(queued_attribute(&home.state.join("queue/a.xml")).is_none());
    assert_eq!(home.queued_record("a.xml")["sha256"], sha256_hex(&a));
    assert!(home.inbox_names().is_empty());

    api.come_back().await;
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(api.uploads().len(), 1);
    assert_eq!(api.uploads()[0].bytes, a);
    assert!(
        home.names_in("queue").is_empty(),
        "{:?}",
        home.names_in("queue")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_commit_before_the_original_goes_uploads_once() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let a = report(1);
    home.drop_file("a.xml", &a);
    let (out, home) = once_with(home, "admit-after-commit=return(kill)").await;
    assert_eq!(out.signal, Some(SIGKILL), "{out:?}");
    assert_eq!(home.inbox_names(), ["a.xml"], "not removed yet");
    assert_eq!(
        home.names_in("queue"),
        ["a.xml"],
        "one file: the copy with its record"
    );
    assert_eq!(home.queued_record("a.xml")["sha256"], sha256_hex(&a));

    // The same content twice in the agent's hands: queued, and still in the watch directory.
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(api.uploads().len(), 1, "uploaded exactly once");
    assert_eq!(api.uploads()[0].bytes, a);
    assert!(home.names_in("queue").is_empty());
    assert!(home.inbox_names().is_empty(), "{:?}", home.inbox_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_failing_state_directory_keeps_the_original_until_it_recovers() {
    for (failpoint, error) in [
        ("queue-commit=return(enospc)", "No space left on device"),
        ("admit-sync=return(eio)", "Input/output error"),
    ] {
        let api = StandIn::start().await;
        let home = Home::new(&api.url(), "", "");
        let a = report(1);
        home.drop_file("a.xml", &a);
        let (out, home) = once_with(home, failpoint).await;
        assert_eq!(
            out.code, 75,
            "{failpoint}: nothing uploaded, retry later: {out:?}"
        );
        assert!(
            out.stdout.contains(error) && out.stdout.contains("the original stays"),
            "{failpoint}: {}",
            out.stdout
        );
        assert_eq!(home.inbox_names(), ["a.xml"], "{failpoint}");
        assert!(
            home.names_in("queue").is_empty(),
            "{failpoint}: no half entry"
        );
        assert!(home.tmp_files().is_empty(), "{failpoint}: no copy left");
        assert!(
            home.names_in("rejected").is_empty(),
            "{failpoint}: not the file's fault"
        );
        assert!(api.uploads().is_empty());

        let (out, home) = home.once_async().await;
        assert_eq!(out.code, 0, "{failpoint}: {out:?}");
        assert_eq!(api.uploads().len(), 1, "{failpoint}");
        assert_eq!(api.uploads()[0].bytes, a);
        assert!(home.inbox_names().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_rides_out_a_state_directory_that_fails_for_a_while() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let agent = Agent::start(&home, &[("FAILPOINTS", "queue-commit=3*return(enospc)")]);
    let a = report(1);
    home.drop_file("a.xml", &a);
    let ups = api.wait_for_uploads(1, WAIT).await;
    assert_eq!(ups[0].bytes, a);
    let out = agent.stop().await;
    assert_eq!(out.code, Some(0));
    let log = &out.log;
    // Three failed attempts, one line: the same trouble with the same file is said once while
    // it lasts, not at every attempt.
    assert_eq!(
        log.matches("No space left on device").count(),
        1,
        "said once: {log}"
    );
    assert_eq!(api.uploads().len(), 1);
    assert!(home.names_in("queue").is_empty());
    assert!(home.inbox_names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_copy_that_cannot_be_cleared_is_never_sent_twice() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    home.drop_file("a.xml", &report(1));
    let (out, home) = once_with(home, "spool-finish=return(eio)").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("cannot clear the queued copy"),
        "{}",
        out.stderr
    );
    assert_eq!(home.queued(), ["a.xml"]);
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(api.uploads().len(), 1, "the ledger knows it was uploaded");
    assert!(
        home.names_in("queue").is_empty(),
        "cleared on the next pass"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_file_notifications_are_made_up_by_the_rescan_they_trigger() {
    // Every notification lost as in an inotify overflow, and the periodic scan an hour away:
    // only the rescan an overflow asks for can find these files.
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("rescan_interval = \"1s\"", "rescan_interval = \"1h\"");
    std::fs::write(&home.config, cfg).unwrap();
    let agent = Agent::start(&home, &[("FAILPOINTS", "watch-overflow=return")]);
    eventually("the daemon is up", WAIT, || {
        home.state.join("lock").exists()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    const N: usize = 200;
    for n in 0..N {
        home.drop_file(&format!("burst-{n}.xml"), &report(n));
    }
    let ups = api.wait_for_uploads(N, WAIT).await;
    let out = agent.stop().await;
    assert_eq!(out.code, Some(0));
    let distinct: std::collections::HashSet<_> = ups.iter().map(|u| u.sha256.clone()).collect();
    assert_eq!(distinct.len(), N, "each file once");
    assert_eq!(api.uploads().len(), N);
    assert!(home.inbox_names().is_empty());
}

/// `--once` with the ledger compacting every 3 lines (the testing knob) and these failpoints.
async fn once_compacting(home: Home, failpoints: &str) -> (Output, Home) {
    let fp = failpoints.to_string();
    tokio::task::spawn_blocking(move || {
        let out = home.cli_env(
            &["--once"],
            &[
                ("HOSTEDSCAN_AGENT_LEDGER_COMPACT_AT", "3"),
                ("FAILPOINTS", &fp),
            ],
        );
        (out, home)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_each_step_of_a_ledger_compaction_forgets_no_upload_and_counts_each_once() {
    for point in [
        "ledger-compact-start",
        "ledger-compact-retired",
        "ledger-compact-index",
    ] {
        let api = StandIn::start().await;
        let home = Home::new(&api.url(), "upload_concurrency = 1", "");
        let reports: Vec<Vec<u8>> = (1..=4).map(report).collect();
        for (i, r) in reports[..2].iter().enumerate() {
            home.drop_file(&format!("r{i}.xml"), r);
        }
        let (out, home) = once_compacting(home, "").await;
        assert_eq!(out.code, 0, "{point}: {out:?}");
        // Two more: the first one's line is the third, written and then compacted, and the
        // agent is killed in the middle of that compaction, before the fourth is sent.
        home.drop_file("r2.xml", &reports[2]);
        home.drop_file("r3.xml", &reports[3]);
        let (out, home) = once_compacting(home, &format!("{point}=return(kill)")).await;
        assert_eq!(out.signal, Some(SIGKILL), "{point}: {out:?}");
        // The other new file may have gone out while the first one's batch was recorded: its
        // line never was, so it is the one upload the next run repeats. (The stand-in may
        // still be taking in that upload's body when the kill is seen here, so its count is
        // settled only after the next run.)
        assert!(
            api.uploads().len() <= 4,
            "{point}: {} uploads",
            api.uploads().len()
        );

        // The next run sends the fourth (again, if it went out before the kill), and nothing
        // else it sent before: the third's line was written before the compaction started.
        let (out, home) = once_compacting(home, "").await;
        assert_eq!(out.code, 0, "{point}: {out:?}");
        let total = api.uploads().len();
        assert!(total == 4 || total == 5, "{point}: {total} uploads");
        // Every content dropped again under a new name: all known, none sent.
        for (i, r) in reports.iter().enumerate() {
            home.drop_file(&format!("again-{i}.xml"), r);
        }
        let (out, home) = once_compacting(home, "").await;
        assert_eq!(out.code, 0, "{point}: {out:?}");
        let counts = upload_counts(&api);
        for (i, r) in reports.iter().enumerate() {
            let n = counts[&sha256_hex(r)];
            assert!(
                n == 1 || (i >= 2 && n == 2),
                "{point}: report {i}: {counts:?}"
            );
        }
        assert_eq!(api.uploads().len(), total, "{point}");
        assert!(home.inbox_names().is_empty(), "{point}");
        assert!(
            home.state.join("ledger.index").exists(),
            "{point}: compacted"
        );
        let status = home.cli(&["status", "--format", "json"]);
        let s: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        assert_eq!(
            s["uploaded_total"], 4,
            "{point}: one line per recorded upload"
        );
    }
}
