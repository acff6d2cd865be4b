//! A misbehaving API: every file still ends uploaded exactly once (or in failed/ for a permanent
//! refusal), and the shared outage state keeps an outage from multiplying requests (more on
//! blips and outages in `outage.rs`).

use std::time::{Duration, Instant};

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);

fn results_requests(api: &StandIn) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.path.ends_with("/results"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_timeouts_resets_and_html_are_retried_until_accepted() {
    let api = StandIn::start().await;
    for f in [
        Fault::Status(500),
        Fault::Status(502),
        Fault::StatusWithBody(
            503,
            "text/html".into(),
            "<html><body>maintenance</body></html>".into(),
        ),
        Fault::DropConnection,
        Fault::Hang,
        Fault::Status(408),
    ] {
        api.push_fault(Endpoint::Results, f);
    }
    // timeout 1s so the hang costs little.
    let home = Home::new(&api.url(), "upload_concurrency = 1", "");
    let cfg_text = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"1s\"");
    std::fs::write(&home.config, cfg_text).unwrap();
    let d = Daemon::start(home.load());
    let report = fixture_bytes("nmap-tcp-localhost.xml");
    home.drop_file("a.xml", &report);
    let ups = api.wait_for_uploads(1, WAIT).await;
    assert_eq!(ups[0].bytes, report);
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.stop().await;
    assert_eq!(api.uploads().len(), 1);
    assert_eq!(results_requests(&api), 7, "six faults, then the success");
    assert!(home.names_in("failed").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let api = StandIn::start().await;
    api.push_fault(Endpoint::Results, Fault::RetryAfter(429, "2".into()));
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    api.wait_for_uploads(1, WAIT).await;
    d.stop().await;
    let times: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/results"))
        .map(|r| r.at)
        .collect();
    assert_eq!(times.len(), 2);
    let gap = times[1].duration_since(times[0]);
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, before Retry-After: 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_as_an_http_date_is_honoured_and_the_file_goes_once() {
    let api = StandIn::start().await;
    let at = std::time::SystemTime::now() + Duration::from_secs(3);
    api.push_fault(Endpoint::Results, Fault::retry_after_date(429, at));
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    let report = fixture_bytes("nmap-tcp-localhost.xml");
    home.drop_file("a.xml", &report);
    api.wait_for_uploads(1, WAIT).await;
    // Time for a wrong second attempt to show, then count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.stop().await;
    let ups = api.uploads();
    assert_eq!(ups.len(), 1, "uploaded exactly once");
    assert_eq!(ups[0].bytes, report);
    let tries: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/results"))
        .collect();
    assert_eq!(tries.len(), 2, "one refusal, one upload");
    // An HTTP date has whole seconds: the retry comes no earlier than the second it names.
    let named = std::time::UNIX_EPOCH
        + Duration::from_secs(at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    assert!(
        tries[1].wall >= named,
        "retried at {:?}, before the date in Retry-After ({named:?})",
        tries[1].wall
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_pauses_the_queue_instead_of_multiplying_requests() {
    let api = StandIn::start().await;
    api.set_default_fault(Endpoint::Results, Some(Fault::Status(503)));
    // Backoff from 50ms capped at 400ms, 2 uploads at once, 20 files, the API failing from the
    // start.
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    for i in 0..20 {
        home.drop_file(
            &format!("s{i:02}.xml"),
            format!(
                "{}<!-- {i} -->\n",
                String::from_utf8(fixture_bytes("nmap-tcp-localhost.xml")).unwrap()
            )
            .as_bytes(),
        );
    }
    eventually("all 20 queued", WAIT, || home.queued().len() == 20).await;
    let start = Instant::now();
    let before = results_requests(&api);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = results_requests(&api) - before;
    // One shared outage state: the API is down after three failures, then one probe per pause,
    // and pauses are at least a tenth of the 400ms cap once grown, so a few dozen requests at
    // most, not 20 files' worth each; and never two at once.
    let secs = start.elapsed().as_secs_f64();
    assert!(
        during <= 60,
        "{during} requests in {secs:.1}s during the outage"
    );
    assert_eq!(
        api.max_in_flight(Endpoint::Results),
        1,
        "{}",
        api.describe()
    );
    api.set_default_fault(Endpoint::Results, None);
    let ups = api.wait_for_uploads(20, WAIT).await;
    d.stop().await;
    assert_eq!(ups.len(), 20);
    let mut names: Vec<_> = ups.iter().map(|u| u.file_name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 20, "each file exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_pauses_uploads_and_nothing_is_lost_when_it_is_fixed() {
    let api = StandIn::start_with_key("the-new-key").await;
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    eventually(
        "the key is refused at least twice (the agent keeps checking)",
        WAIT,
        || api.requests().iter().filter(|r| r.status == 401).count() >= 2,
    )
    .await;
    assert!(api.uploads().is_empty());
    assert!(
        home.names_in("queue").contains(&"a.xml".to_string()),
        "the file stays queued"
    );
    assert!(home.names_in("failed").is_empty());
    let status = std::fs::read_to_string(home.state.join("status.json")).unwrap();
    assert!(
        status.contains("refused the API key") && !status.contains(KEY),
        "{status}"
    );
    api.set_key(KEY);
    api.wait_for_uploads(1, WAIT).await;
    // Time for a wrong second upload to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.stop().await;
    assert_eq!(api.uploads().len(), 1, "uploaded exactly once");
    assert!(home.names_in("queue").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_start_and_back_later_gets_everything() {
    let api = StandIn::start().await;
    api.go_down().await;
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    home.drop_file("b.xml", &fixture_bytes("nmap-udp-localhost.xml"));
    eventually("both queued while the API is down", WAIT, || {
        home.queued().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.come_back().await;
    api.wait_for_uploads(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.stop().await;
    assert_eq!(api.sources().len(), 1);
    let mut names: Vec<_> = api.uploads().iter().map(|u| u.file_name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        [Some("a.xml".to_string()), Some("b.xml".to_string())],
        "each exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_hung_upload_is_bounded_and_keeps_the_file() {
    let api = StandIn::start().await;
    api.set_default_fault(Endpoint::Results, Some(Fault::Hang));
    let home = Home::new(&api.url(), "", "");
    let cfg_text = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"10m\"");
    std::fs::write(&home.config, cfg_text).unwrap();
    let d = Daemon::start(home.load());
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    eventually("the upload is in flight", WAIT, || {
        results_requests(&api) >= 1
    })
    .await;
    let start = Instant::now();
    d.stop().await;
    assert!(start.elapsed() < hostedscan_agent::app::SHUTDOWN_GRACE + Duration::from_secs(3));
    assert!(home.names_in("queue").contains(&"a.xml".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixing_the_key_file_resumes_uploads_without_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let api = StandIn::start_with_key("rotated-key").await;
    let home = Home::new(&api.url(), "", "");
    let key_file = home.dir.path().join("api-key");
    std::fs::write(&key_file, "revoked-key\n").unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = std::fs::read_to_string(&home.config).unwrap().replace(
        &format!("key = \"{KEY}\""),
        &format!("key_file = \"{}\"", key_file.display()),
    );
    std::fs::write(&home.config, cfg).unwrap();
    let d = Daemon::start(home.load());
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    eventually("the revoked key is refused", WAIT, || {
        api.requests().iter().any(|r| r.status == 401)
    })
    .await;
    std::fs::write(&key_file, "rotated-key\n").unwrap();
    api.wait_for_uploads(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.stop().await;
    assert!(home.names_in("failed").is_empty());
    assert_eq!(api.uploads().len(), 1, "uploaded exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_the_same_name_refused_together_are_both_kept() {
    let api = StandIn::start().await;
    // Two watch directories, both with a "scan.xml", refused at the same moment.
    let home = Home::new(&api.url(), "upload_concurrency = 4", "");
    let second = home.dir.path().join("inbox2");
    std::fs::create_dir_all(&second).unwrap();
    let cfg = std::fs::read_to_string(&home.config).unwrap();
    std::fs::write(
        &home.config,
        format!("{cfg}\n[[watch]]\npath = \"{}\"\n", second.display()),
    )
    .unwrap();
    api.set_default_fault(Endpoint::Results, Some(Fault::Status(422)));
    home.drop_file("scan.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    let other = second.join("scan.xml");
    std::fs::write(&other, fixture_bytes("nmap-udp-localhost.xml")).unwrap();
    age(&other, 60);
    let d = Daemon::start(home.load());
    eventually("both in failed/", WAIT, || {
        home.names_in("failed").len() == 4
    })
    .await;
    d.stop().await;
    let failed = home.names_in("failed");
    assert_eq!(
        failed,
        [
            "scan-1.xml",
            "scan-1.xml.error.json",
            "scan.xml",
            "scan.xml.error.json"
        ]
    );
    let mut contents = vec![
        std::fs::read(home.state.join("failed/scan.xml")).unwrap(),
        std::fs::read(home.state.join("failed/scan-1.xml")).unwrap(),
    ];
    contents.sort();
    let mut expected = vec![
        fixture_bytes("nmap-tcp-localhost.xml"),
        fixture_bytes("nmap-udp-localhost.xml"),
    ];
    expected.sort();
    assert_eq!(contents, expected, "neither file overwrote the other");
}

/// A daemon with `timeout = "1s"` for the API, and its home.
fn short_timeout_home(api: &StandIn) -> Home {
    let home = Home::new(&api.url(), "", "");
    let cfg_text = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"1s\"");
    std::fs::write(&home.config, cfg_text).unwrap();
    home
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_slower_than_the_timeout_is_retried_and_the_file_goes_once() {
    let api = StandIn::start().await;
    // Slower than the 1 s timeout before the server does anything with it.
    api.push_fault(Endpoint::Results, Fault::Delay(Duration::from_millis(2500)));
    let home = short_timeout_home(&api);
    let d = Daemon::start(home.load());
    let report = fixture_bytes("nmap-tcp-localhost.xml");
    home.drop_file("a.xml", &report);
    api.wait_for_uploads(1, WAIT).await;
    // Past the moment the slow one would have finished, had it been kept.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    d.stop().await;
    assert_eq!(api.uploads().len(), 1, "uploaded exactly once");
    assert_eq!(api.uploads()[0].bytes, report);
    assert_eq!(results_requests(&api), 2, "the slow one, then the retry");
    assert!(home.names_in("queue").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_upload_answered_after_the_timeout_is_sent_again_the_documented_limit() {
    // The API has no idempotency key and no way to ask "did you get this?": a 2xx that arrives
    // after `timeout` is a failure to the agent, so a server that did store the file gets it
    // twice. This pins that limit (README, "Delivery"): one repeat, then recorded and done.
    let api = StandIn::start().await;
    api.push_fault(
        Endpoint::Results,
        Fault::AnswerLate(Duration::from_millis(2500)),
    );
    let home = short_timeout_home(&api);
    let d = Daemon::start(home.load());
    home.drop_file("a.xml", &fixture_bytes("nmap-tcp-localhost.xml"));
    api.wait_for_uploads(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    d.stop().await;
    assert_eq!(api.uploads().len(), 2);
    assert_eq!(results_requests(&api), 2);
    let ledger = std::fs::read_to_string(home.state.join("ledger.jsonl")).unwrap();
    assert_eq!(ledger.lines().count(), 1, "{ledger}");
    assert!(home.names_in("queue").is_empty());
}

/// An HTTP server on 127.0.0.1 that answers every request `201` with a result id as soon as it
/// has the headers, without reading the body (as a proxy or a careless server might).
async fn answers_before_the_body() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"data": {"id": "early-1"}}"#;
                let resp = format!(
                    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = sock.write_all(resp.as_bytes()).await;
                // Keep the socket open a moment without reading, then drop it.
                tokio::time::sleep(Duration::from_millis(300)).await;
            });
        }
    });
    (url, answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_before_the_whole_file_was_sent_is_not_an_acceptance() {
    let (url, answered) = answers_before_the_body().await;
    let home = Home::new(&url, "", "");
    let cfg = std::fs::read_to_string(&home.config).unwrap().replace(
        "name = \"Agent tests\"",
        "name = \"Agent tests\"\nid = \"src-fixed\"",
    );
    std::fs::write(&home.config, cfg).unwrap();
    // 24 MiB: far more than the sockets can hold before the early answer comes back.
    let mut big = fixture_bytes("nmap-tcp-localhost.xml");
    big.extend_from_slice(b"<!-- ");
    big.resize(24 << 20, b'x');
    big.extend_from_slice(b" -->\n");
    home.drop_file("big.xml", &big);
    let (out, home) = home.once_async().await;
    assert!(answered.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(out.code, 75, "not uploaded, still to do: {out:?}");
    assert!(
        out.stderr.contains("came before the whole file was sent"),
        "{}",
        out.stderr
    );
    let ledger = std::fs::read_to_string(home.state.join("ledger.jsonl")).unwrap_or_default();
    assert!(ledger.is_empty(), "not recorded as uploaded: {ledger}");
    assert_eq!(home.queued(), ["big.xml"]);
    assert!(home.archived().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_and_outages_still_upload_every_file_exactly_once() {
    let api = StandIn::start().await;
    let mut faults = RandomFaults::intermittent(0.3, 7);
    faults.outage = Some(Outage {
        every: Duration::from_millis(1500),
        lasting: Duration::from_millis(500),
        fault: Fault::Status(503),
    });
    api.set_random_faults(Endpoint::Results, Some(faults));
    let home = Home::new(&api.url(), "", "");
    let d = Daemon::start(home.load());
    let base = String::from_utf8(fixture_bytes("nmap-tcp-localhost.xml")).unwrap();
    for i in 0..30 {
        home.drop_file(
            &format!("r{i:02}.xml"),
            format!("{base}<!-- {i} -->\n").as_bytes(),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ups = api.wait_for_uploads(30, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.stop().await;
    let mut shas: Vec<_> = api.uploads().iter().map(|u| u.sha256.clone()).collect();
    shas.sort();
    shas.dedup();
    assert_eq!((ups.len(), shas.len()), (30, 30), "each file exactly once");
    let refused = api
        .requests_to(Endpoint::Results)
        .iter()
        .filter(|r| r.fault.is_some())
        .count();
    assert!(refused > 0, "the random faults refused nothing");
    assert!(home.names_in("queue").is_empty() && home.names_in("failed").is_empty());
}
