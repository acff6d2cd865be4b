//! A blip is not an outage (contract, "API usage"): one failure among successes retries that
//! file alone after its own delay while the rest go on at full `upload_concurrency`; after 3
//! failed attempts in a row (or at once on 429, `Retry-After` or a connect error) the API counts
//! as down and one request at a time probes it, spaced by the backoff, until a success brings
//! back full concurrency. Asserted on what the stand-in saw (requests in flight when each
//! arrived, in order), never on how fast the machine is.

use std::time::Duration;

use hostedscan_standins::api::RequestRecord;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);

/// A home with `upload_concurrency = 4`, `[retry]` from `initial` to `max`, and `files`
/// distinct reports already in its inbox (settled).
fn home(api: &StandIn, files: usize, initial: &str, max: &str) -> Home {
    let home = Home::new(&api.url(), "upload_concurrency = 4", "");
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace(
            "initial_backoff = \"50ms\"",
            &format!("initial_backoff = \"{initial}\""),
        )
        .replace(
            "max_backoff = \"400ms\"",
            &format!("max_backoff = \"{max}\""),
        );
    std::fs::write(&home.config, cfg).unwrap();
    for i in 0..files {
        home.drop_file(&format!("r{i:02}.xml"), &distinct_report(i, 0));
    }
    home
}

fn results(api: &StandIn) -> Vec<RequestRecord> {
    api.requests_to(Endpoint::Results)
}

/// Each request to `/v1/results`: when it arrived and was answered (ms from the first), its
/// status and how many were in flight as it arrived. For assertion messages.
fn timeline(reqs: &[RequestRecord]) -> String {
    let Some(t0) = reqs.first().map(|r| r.at) else {
        return "no requests".into();
    };
    let ms = |t: std::time::Instant| t.saturating_duration_since(t0).as_millis();
    reqs.iter()
        .map(|r| {
            format!(
                "  #{} at {} ms, answered {}, {} in flight on arrival\n",
                r.seq,
                ms(r.at),
                r.answered
                    .map_or("never".into(), |a| format!("{} ms: {}", ms(a), r.status)),
                r.in_flight
            )
        })
        .collect()
}

/// Every file uploaded exactly once.
fn each_once(api: &StandIn, files: usize) {
    let counts = upload_counts(api);
    assert_eq!(counts.len(), files, "{}", api.describe());
    assert!(counts.values().all(|n| *n == 1), "{}", api.describe());
}

/// The requests that arrived from `margin` after `after` was answered, up to and including the
/// first success among them: while the API is down, each must have been alone (`in_flight` 1).
/// The margin (no more than the pause's shortest length) leaves out a request the agent started
/// in the moment between the stand-in's answer and the agent reading it.
fn down_window<'a>(
    reqs: &'a [RequestRecord],
    after: &RequestRecord,
    margin: Duration,
) -> &'a [RequestRecord] {
    let from = after.answered.expect("answered") + margin;
    let start = reqs.iter().position(|r| r.at >= from).unwrap_or(reqs.len());
    let end = reqs[start..]
        .iter()
        .position(|r| r.status / 100 == 2)
        .map_or(reqs.len(), |i| start + i + 1);
    &reqs[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failure_among_successes_retries_that_file_alone_and_the_rest_go_on() {
    let api = StandIn::start().await;
    api.set_latency(Endpoint::Results, Some(Duration::from_millis(50)));
    // Its own delay is at least a tenth of 8 s: far longer than the rest of the queue takes.
    let home = home(&api, 12, "8s", "8s");
    let d = Daemon::start(home.load());
    api.wait_for_uploads(1, WAIT).await;
    api.push_fault(Endpoint::Results, Fault::Status(503));
    api.reset_max_in_flight();
    // The 503'd file waits; the ten others after it go without waiting for it.
    api.wait_for_uploads(11, WAIT).await;
    eventually("the eleven are settled", WAIT, || home.queued().len() == 1).await;
    let waiting = home.queued();
    assert_eq!(
        results(&api).len(),
        12,
        "the failed file is not retried before its own delay\n{}",
        timeline(&results(&api))
    );
    assert!(
        api.max_in_flight(Endpoint::Results) > 1,
        "the others went on at full concurrency, not one probe at a time\n{}",
        timeline(&results(&api))
    );
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.state.join("status.json")).unwrap()).unwrap();
    assert!(
        status["paused"].is_null(),
        "one failure pauses nothing: {status}"
    );
    // Then it is tried again, alone, and goes once.
    let ups = api.wait_for_uploads(12, WAIT).await;
    d.stop().await;
    let last = ups.last().unwrap().file_name.clone().unwrap();
    assert!(waiting.contains(&last), "{last} is not {waiting:?}");
    assert_eq!(results(&api).len(), 13, "{}", timeline(&results(&api)));
    each_once(&api, 12);
    assert!(home.names_in("queue").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failures_in_a_row_make_the_api_down_one_probe_at_a_time_until_a_success() {
    let api = StandIn::start().await;
    api.set_latency(Endpoint::Results, Some(Duration::from_millis(50)));
    // Pauses of 100 ms to 1 s.
    let home = home(&api, 16, "1s", "1s");
    let d = Daemon::start(home.load());
    api.wait_for_uploads(2, WAIT).await;
    // The API starts failing everything for a while, then recovers.
    api.set_default_fault(Endpoint::Results, Some(Fault::Status(503)));
    // Up to six fail before the first probe: four in flight, and two started after the first
    // and the second failure (a failure or two among successes pauses nothing). Then the
    // first probe, at once (three in a row may be chance), and two more after their pauses
    // fail.
    eventually("the API is probed a few times", WAIT, || {
        results(&api).iter().filter(|r| r.status == 503).count() >= 9
    })
    .await;
    api.set_default_fault(Endpoint::Results, None);
    api.wait_for_uploads(16, WAIT).await;
    d.stop().await;
    each_once(&api, 16);
    let reqs = results(&api);
    // Every request that arrived after the first 503 arrived failed; the successes that arrived
    // before it were all answered by `clean`. The third failure answered after that is the third
    // in a row the agent saw: the API is down from then on (at the latest), and from a tenth of
    // the pause after it (when what the agent started before it read that failure has arrived)
    // one request at a time.
    let first_fail = reqs.iter().find(|r| r.status == 503).unwrap().at;
    let clean = reqs
        .iter()
        .filter(|r| r.at < first_fail)
        .filter_map(|r| r.answered)
        .max()
        .unwrap();
    let mut failed: Vec<_> = reqs
        .iter()
        .filter(|r| r.status == 503 && r.answered > Some(clean))
        .collect();
    failed.sort_by_key(|r| r.answered);
    let window = down_window(&reqs, failed[2], Duration::from_millis(100));
    assert!(
        window.len() >= 3,
        "two failed probes and a success: {}",
        timeline(&reqs)
    );
    for r in window {
        assert_eq!(
            r.in_flight,
            1,
            "request {} was not alone while the API was down\n{}",
            r.seq,
            timeline(&results(&api))
        );
    }
    // After the probe's success, full concurrency again.
    let after = &reqs[reqs
        .iter()
        .position(|r| r.seq == window.last().unwrap().seq)
        .unwrap()
        + 1..];
    assert!(
        after.iter().any(|r| r.in_flight > 1),
        "concurrency did not resume after the success\n{}",
        timeline(&results(&api))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_makes_the_api_down_at_once() {
    let api = StandIn::start().await;
    api.set_latency(Endpoint::Results, Some(Duration::from_millis(50)));
    // A pause of 1-2 s after the 429 (no Retry-After): long enough to see that nothing but one
    // probe goes in it.
    let home = home(&api, 16, "2s", "2s");
    let d = Daemon::start(home.load());
    api.wait_for_uploads(2, WAIT).await;
    api.push_fault(Endpoint::Results, Fault::Status(429));
    api.wait_for_uploads(16, WAIT).await;
    d.stop().await;
    each_once(&api, 16);
    let reqs = results(&api);
    let refused = reqs.iter().find(|r| r.status == 429).unwrap();
    let answered = refused.answered.unwrap();
    // In the pause (at least a tenth of 2 s) nothing new starts, but for what the agent may
    // have started before it read the 429; then one probe, alone, and its success.
    let in_pause = reqs
        .iter()
        .filter(|r| r.at > answered && r.at < answered + Duration::from_millis(200))
        .count();
    assert!(
        in_pause < 4,
        "{in_pause} requests started in the pause\n{}",
        timeline(&results(&api))
    );
    let window = down_window(&reqs, refused, Duration::from_millis(200));
    assert_eq!(
        window.len(),
        1,
        "one probe, then success\n{}",
        timeline(&results(&api))
    );
    assert_eq!(window[0].in_flight, 1, "{}", timeline(&results(&api)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_total_outage_one_request_at_a_time_probes_spaced_by_the_backoff() {
    let api = StandIn::start().await;
    api.set_default_fault(Endpoint::Results, Some(Fault::Status(503)));
    // From a cold start: not heard from yet, the agent sends one request at a time.
    let home = home(&api, 20, "200ms", "800ms");
    let d = Daemon::start(home.load());
    eventually("all 20 queued", WAIT, || home.queued().len() == 20).await;
    eventually("the API is probed a few times", WAIT, || {
        results(&api).iter().filter(|r| r.status == 503).count() >= 8
    })
    .await;
    assert_eq!(
        api.max_in_flight(Endpoint::Results),
        1,
        "never more than one request in flight during the outage\n{}",
        timeline(&results(&api))
    );
    let reqs: Vec<_> = results(&api)
        .into_iter()
        .filter(|r| r.answered.is_some())
        .collect();
    // Each request starts after the one before was answered; the fourth (the first probe, the
    // API down after three) at once, and from the fifth on after a pause of at least a tenth of
    // the backoff's step: 20, 40, 80 ms...
    for (i, pair) in reqs.windows(2).enumerate() {
        let gap = pair[1]
            .at
            .saturating_duration_since(pair[0].answered.unwrap());
        assert!(
            pair[1].at >= pair[0].answered.unwrap(),
            "{}",
            timeline(&results(&api))
        );
        if i >= 3 {
            let step = (i - 2).min(3) as u32;
            let floor = Duration::from_millis(20) * (1 << (step - 1));
            assert!(
                gap >= floor,
                "probe {} came {gap:?} after the last failure, less than {floor:?}\n{}",
                i + 1,
                timeline(&results(&api))
            );
        }
    }
    api.set_default_fault(Endpoint::Results, None);
    api.reset_max_in_flight();
    api.wait_for_uploads(20, WAIT).await;
    d.stop().await;
    each_once(&api, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_connections_were_refused_the_first_request_goes_alone() {
    let api = StandIn::start().await;
    api.go_down().await;
    let home = home(&api, 12, "100ms", "400ms");
    let d = Daemon::start(home.load());
    eventually("all 12 queued", WAIT, || home.queued().len() == 12).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Answers slow enough that uploads at full concurrency overlap (fast ones may not).
    api.set_latency(Endpoint::Results, Some(Duration::from_millis(50)));
    api.come_back().await;
    api.wait_for_uploads(12, WAIT).await;
    d.stop().await;
    each_once(&api, 12);
    let reqs = results(&api);
    assert_eq!(
        reqs[0].in_flight,
        1,
        "the first upload after the refusals was a probe\n{}",
        timeline(&results(&api))
    );
    assert!(
        reqs.iter().any(|r| r.in_flight > 1),
        "then full concurrency\n{}",
        timeline(&results(&api))
    );
}
