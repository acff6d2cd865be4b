//! The daemon, in-process: files dropped into a watch directory end up uploaded exactly once,
//! or kept with a reason.

use std::time::Duration;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_nmap_report_is_uploaded_once_and_archived() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let report = nmap_report();
    let d = Daemon::start(home.load());
    home.drop_file("scan.xml", &report);

    let ups = api.wait_for_uploads(1, WAIT).await;
    assert_eq!(ups[0].scan_type, "NMAP");
    assert_eq!(ups[0].file_name.as_deref(), Some("scan.xml"));
    assert_eq!(
        ups[0].bytes, report,
        "the uploaded bytes are the file's bytes"
    );
    assert_eq!(
        ups[0].target, None,
        "no target is sent for Nmap unless configured"
    );
    let sources = api.sources();
    assert_eq!(sources.len(), 1);
    assert_eq!(ups[0].source_id, sources[0].id);

    eventually(
        "the original leaves the inbox, is archived and leaves the queue",
        WAIT,
        // The archived copy arrives a moment before the queue entry's metadata goes.
        || {
            home.inbox_names().is_empty()
                && home.archived() == vec!["scan.xml".to_string()]
                && home.names_in("queue").is_empty()
        },
    )
    .await;
    let ledger = std::fs::read_to_string(home.state.join("ledger.jsonl")).unwrap();
    assert_eq!(ledger.lines().count(), 1);
    let ua = api
        .requests()
        .iter()
        .map(|r| r.user_agent.clone())
        .collect::<Vec<_>>();
    assert!(
        ua.iter().all(|u| u
            .as_deref()
            .is_some_and(|u| u.starts_with("hostedscan-agent/"))),
        "{ua:?}"
    );
    d.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.uploads().len(), 1, "nothing is uploaded twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_remembered_source() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    api.wait_for_uploads(1, WAIT).await;
    d.stop().await;
    let remembered = std::fs::read_to_string(home.state.join("source.json")).unwrap();
    assert!(remembered.contains(&api.sources()[0].id));

    let d = Daemon::start(home.load());
    home.drop_file("b.xml", &fixture_bytes("nmap-udp-localhost.xml"));
    let ups = api.wait_for_uploads(2, WAIT).await;
    d.stop().await;
    assert_eq!(
        api.sources().len(),
        1,
        "a restart must never create a second source"
    );
    assert_eq!(ups[1].scan_type, "NMAP_UDP");
    assert_eq!(ups[0].source_id, ups[1].source_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_source_of_that_name_is_found_not_duplicated() {
    let api = StandIn::start().await;
    let id = api.add_source("Agent tests");
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    let ups = api.wait_for_uploads(1, WAIT).await;
    d.stop().await;
    assert_eq!(ups[0].source_id, id);
    assert_eq!(api.sources().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_sources_cannot_be_listed_one_is_created() {
    let api = StandIn::start().await;
    api.set_list_sources_404(true);
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    let ups = api.wait_for_uploads(1, WAIT).await;
    d.stop().await;
    assert_eq!(api.sources().len(), 1);
    assert_eq!(ups[0].source_id, api.sources()[0].id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_goes_up_with_its_scan_type_and_zap_with_its_target() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    for f in [
        "zap-intranet.json",
        "zap-intranet.xml",
        "sslyze-localhost.json",
        "openvas-localhost.xml",
        "nmap-udp-localhost.xml",
    ] {
        home.drop_file(f, &fixture_bytes(f));
    }
    let ups = api.wait_for_uploads(5, WAIT).await;
    d.stop().await;
    let get = |n: &str| {
        ups.iter()
            .find(|u| u.file_name.as_deref() == Some(n))
            .unwrap_or_else(|| panic!("{n} not uploaded"))
    };
    assert_eq!(get("zap-intranet.json").scan_type, "OWASP_ZAP");
    assert_eq!(
        get("zap-intranet.json").target.as_deref(),
        Some("http://127.0.0.1:8080")
    );
    assert_eq!(
        get("zap-intranet.json").content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(
        get("zap-intranet.xml").target.as_deref(),
        Some("http://127.0.0.1:8080")
    );
    assert_eq!(get("sslyze-localhost.json").scan_type, "SSLYZE");
    assert_eq!(get("openvas-localhost.xml").scan_type, "OPENVAS");
    assert_eq!(
        get("openvas-localhost.xml").content_type.as_deref(),
        Some("application/xml")
    );
    assert_eq!(get("nmap-udp-localhost.xml").scan_type, "NMAP_UDP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_files_are_rejected_with_a_reason_and_never_uploaded() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    home.drop_file("error.xml", &fixture_bytes("nmap-error-localhost.xml"));
    home.drop_file("notes.json", b"[]");
    home.drop_file("binary.xml", &[0u8, 159, 146, 150, 255, 0, 1, 2]);
    eventually("three files in rejected/ with their reasons", WAIT, || {
        home.names_in("rejected").len() == 6
    })
    .await;
    d.stop().await;
    assert!(api.uploads().is_empty());
    assert!(
        home.inbox_names().is_empty(),
        "rejected files leave the watch directory"
    );
    let reason: serde_json::Value = serde_json::from_slice(
        &std::fs::read(home.state.join("rejected/error.xml.reason.json")).unwrap(),
    )
    .unwrap();
    assert!(
        reason["reason"]
            .as_str()
            .unwrap()
            .contains("exit=\"error\""),
        "{reason}"
    );
    assert_eq!(
        reason["file"].as_str().unwrap(),
        home.inbox.join("error.xml").to_str().unwrap()
    );
    assert!(reason["at"].is_string());
    assert_eq!(
        std::fs::read(home.state.join("rejected/error.xml")).unwrap(),
        fixture_bytes("nmap-error-localhost.xml"),
        "the rejected file is kept byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_young_file_waits_and_goes_up_once_complete() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let report = nmap_report();
    let path = home.inbox.join("slow.xml");
    let cut = report.len() / 2;
    append(&path, &report[..cut]);
    let d = Daemon::start(home.load());
    // Well past settle: the half file has been looked at and left alone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        home.inbox_names(),
        vec!["slow.xml".to_string()],
        "a file still being written stays where it is"
    );
    assert!(home.names_in("rejected").is_empty());
    assert!(api.uploads().is_empty());
    append(&path, &report[cut..]);
    let ups = api.wait_for_uploads(1, WAIT).await;
    assert_eq!(
        ups[0].bytes, report,
        "the complete file, not the half, is uploaded"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_slowly_is_uploaded_once_and_complete() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let report = nmap_report();
    let d = Daemon::start(home.load());
    let path = home.inbox.join("trickle.xml");
    // Pauses shorter than settle (200ms) between chunks of a report that is only complete at the end.
    for chunk in report.chunks(report.len() / 8 + 1) {
        append(&path, chunk);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ups = api.wait_for_uploads(1, WAIT).await;
    assert_eq!(ups[0].bytes, report);
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.stop().await;
    assert_eq!(api.uploads().len(), 1);
    assert!(home.names_in("rejected").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_file_older_than_the_grace_is_rejected() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "incomplete_grace = \"30s\"", "");
    let report = fixture_bytes("nmap-tcp-localhost.xml");
    let path = home.inbox.join("cut.xml");
    std::fs::write(&path, &report[..report.len() - 40]).unwrap();
    age(&path, 120);
    let d = Daemon::start(home.load());
    eventually("the stale truncated file is rejected", WAIT, || {
        home.names_in("rejected").contains(&"cut.xml".to_string())
    })
    .await;
    d.stop().await;
    let reason = std::fs::read_to_string(home.state.join("rejected/cut.xml.reason.json")).unwrap();
    assert!(reason.contains("truncated"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_content_is_uploaded_only_once() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let report = fixture_bytes("nmap-tcp-localhost.xml");
    let d = Daemon::start(home.load());
    home.drop_file("first.xml", &report);
    api.wait_for_uploads(1, WAIT).await;
    home.drop_file("again.xml", &report);
    eventually("the copy leaves the inbox", WAIT, || {
        home.inbox_names().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.stop().await;
    assert_eq!(api.uploads().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keep_the_original_stays_and_is_not_uploaded_again() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "after_upload = \"keep\"", "");
    let d = Daemon::start(home.load());
    home.drop_file("kept.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    api.wait_for_uploads(1, WAIT).await;
    // Several rescans (rescan_interval is 1s) and a restart.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    d.stop().await;
    let d = Daemon::start(home.load());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.stop().await;
    assert_eq!(home.inbox_names(), vec!["kept.xml".to_string()]);
    assert_eq!(api.uploads().len(), 1);
    assert!(home.archived().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_partial_symlinked_and_oversized_files_are_not_uploaded() {
    let api = StandIn::start().await;
    let home = Home::new(
        &api.url(),
        "max_file_size = \"2KiB\"",
        "exclude = [\"*.skip\"]",
    );
    let report = fixture_bytes("nmap-tcp-localhost.xml");
    let outside = home.dir.path().join("outside.xml");
    std::fs::write(&outside, &report).unwrap();
    std::os::unix::fs::symlink(&outside, home.inbox.join("link.xml")).unwrap();
    for n in [
        ".hidden.xml",
        "x.xml.tmp",
        "x.xml.part",
        "x.xml.swp",
        "x.xml~",
        "y.skip",
    ] {
        home.drop_file(n, &report);
    }
    let mut big = report.clone();
    big.resize(4096, b' ');
    home.drop_file("big.xml", &big);
    let d = Daemon::start(home.load());
    eventually("the oversized file is rejected", WAIT, || {
        home.names_in("rejected").contains(&"big.xml".to_string())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.stop().await;
    assert!(
        api.uploads().is_empty(),
        "{:?}",
        api.uploads()
            .iter()
            .map(|u| &u.file_name)
            .collect::<Vec<_>>()
    );
    let reason = std::fs::read_to_string(home.state.join("rejected/big.xml.reason.json")).unwrap();
    assert!(reason.contains("max_file_size"), "{reason}");
    assert!(outside.exists(), "the symlink's target is never touched");
    assert_eq!(
        home.inbox_names().len(),
        7,
        "the skipped files stay: {:?}",
        home.inbox_names()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_left_in_the_queue_by_a_stop_go_out_after_a_restart() {
    let api = StandIn::start().await;
    api.set_default_fault(Endpoint::Results, Some(Fault::Status(503)));
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    eventually("it is queued", WAIT, || {
        home.names_in("queue").contains(&"a.xml".to_string())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.stop().await;
    assert!(
        home.names_in("queue").contains(&"a.xml".to_string()),
        "a stop leaves the file queued"
    );
    api.set_default_fault(Endpoint::Results, None);
    let d = Daemon::start(home.load());
    let ups = api.wait_for_uploads(1, WAIT).await;
    d.stop().await;
    assert_eq!(ups[0].file_name.as_deref(), Some("a.xml"));
    assert!(home.names_in("queue").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_goes_to_failed_with_the_servers_message_and_requeue_sends_it_again() {
    let api = StandIn::start().await;
    api.push_fault(
        Endpoint::Results,
        Fault::StatusWithBody(
            422,
            "application/json".into(),
            r#"{"error":"file could not be parsed"}"#.into(),
        ),
    );
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    home.drop_file("refused.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    home.drop_file("fine.xml", &fixture_bytes("nmap-udp-localhost.xml"));
    eventually("one file in failed/ and one uploaded", WAIT, || {
        home.names_in("failed").len() == 2 && api.uploads().len() == 1
    })
    .await;
    let err: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            home.state
                .join(format!("failed/{}.error.json", home.names_in("failed")[0])),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(err["status"], 422);
    assert_eq!(err["message"], "file could not be parsed");
    let out = home.cli(&["requeue"]);
    assert_eq!(out.code, 0, "{out:?}");
    api.wait_for_uploads(2, WAIT).await;
    d.stop().await;
    assert!(home.names_in("failed").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_refused_once_is_admitted_again_when_dropped_again() {
    let api = StandIn::start().await;
    api.push_fault(Endpoint::Results, Fault::Status(422));
    let home = Home::new(&api.url(), "", "");
    let report = fixture_bytes("nmap-tcp-localhost.xml");
    let d = Daemon::start(home.load());
    home.drop_file("scan.xml", &report);
    eventually("refused into failed/", WAIT, || {
        home.names_in("failed").len() == 2
    })
    .await;
    // The operator fixed whatever it was and drops the same bytes again.
    home.drop_file("scan.xml", &report);
    let ups = api.wait_for_uploads(1, WAIT).await;
    d.stop().await;
    assert_eq!(ups[0].bytes, report);
    assert!(home.inbox_names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_edited_in_failed_is_validated_again_when_requeued() {
    let api = StandIn::start().await;
    api.push_fault(Endpoint::Results, Fault::Status(422));
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    home.drop_file("scan.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    eventually("refused into failed/", WAIT, || {
        home.names_in("failed").len() == 2
    })
    .await;
    // The operator "fixes" it in place and breaks it: the end is cut off.
    let f = home.state.join("failed/scan.xml");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 40]).unwrap();
    // Written long enough ago that, cut short, it counts as abandoned rather than in progress.
    age(&f, 3600);
    let out = home.cli(&["requeue", "scan.xml"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&home.inbox.display().to_string()),
        "back to its watch directory, not into the queue: {}",
        out.stdout
    );
    eventually("validated again and rejected", WAIT, || {
        home.names_in("rejected").contains(&"scan.xml".to_string())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    d.stop().await;
    assert!(
        api.uploads().is_empty(),
        "the broken edit is never uploaded"
    );
    assert!(home.names_in("failed").is_empty());
}
