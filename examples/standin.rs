//! A HostedScan stand-in on 127.0.0.1 to try the agent against by hand, offline:
//!
//!     cargo run --example standin -- [PORT] [KEY] [STATUS...]
//!
//! PORT defaults to 8080 and KEY to "test-key". Each STATUS (e.g. 503 422) is answered to one
//! upload, in order, before uploads are accepted. Every request (once answered, with its status
//! and the injected fault if any) and every upload is printed.
//! STANDIN_KEEP_BYTES=0 keeps only each upload's size and SHA-256 (for benchmarks).
//! STANDIN_SAVE_DIR=DIR writes each upload's bytes to DIR/<n>-<file name> (n counts from 1), for
//! a test that reads what HostedScan received (tests/system/).
//! Point the agent at it with `[api] url = "http://127.0.0.1:PORT/v1"` and `key = "KEY"`.
//!
//! Intermittent failures of `/v1/results` for the whole run (soak tests), after the STATUS list:
//!
//! - `STANDIN_FAIL_RATE=0.2`: that share of requests fails, drawn evenly from 503, 500, 429 with
//!   `Retry-After: 1`, and a dropped connection (reset after reading part of the body, no answer).
//! - `STANDIN_FAIL_STATUS=503`: the failures are all that status, without `Retry-After`, instead
//!   of the mix above (`STANDIN_FAIL_RATE=1 STANDIN_FAIL_STATUS=503`: a total outage).
//! - `STANDIN_OUTAGE=90/15`: every 90 s, the last 15 s answer 503 to every request (the first
//!   outage starts 75 s after the start).
//! - `STANDIN_SEED=1`: seed of the draws (the default is 1).
//! - `kill -USR1 <pid>` stops them (to let a client drain its queue against a healthy API).
//!
//! `STANDIN_LATENCY_MS=20` adds that latency to every `/v1/results` request (faults included).
//!
//! A request line reads `POST /v1/results -> 503 (injected Status(503))`, `-> no answer (injected
//! DropConnection)`, or `-> 503 (outage)`. `max in flight /v1/results: N` is printed each time
//! the most `/v1/results` requests handled at once grows; on SIGUSR1, `random faults stopped
//! (SIGUSR1); max in flight until then: N` is printed and the count starts afresh.

use std::time::Duration;

use hostedscan_standins::api::{Endpoint, Fault, Outage, RandomFaults, RequestRecord, StandIn};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `STANDIN_FAIL_RATE`, `STANDIN_FAIL_STATUS`, `STANDIN_OUTAGE`, `STANDIN_SEED`; `None` when
/// neither `STANDIN_FAIL_RATE` nor `STANDIN_OUTAGE` is set. Exits with a message on a malformed
/// value.
fn random_faults() -> Option<RandomFaults> {
    let bad = |name: &str, v: &str| -> ! {
        eprintln!("standin: cannot parse {name}={v:?}");
        std::process::exit(64)
    };
    let rate = env("STANDIN_FAIL_RATE").map(|v| match v.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => r,
        _ => bad("STANDIN_FAIL_RATE", &v),
    });
    let outage = env("STANDIN_OUTAGE").map(|v| {
        let secs = |s: &str| s.trim().parse::<u64>().ok().map(Duration::from_secs);
        match v.split_once('/').map(|(e, l)| (secs(e), secs(l))) {
            Some((Some(every), Some(lasting))) if lasting <= every && !every.is_zero() => Outage {
                every,
                lasting,
                fault: Fault::StatusWithBody(
                    503,
                    "application/json".into(),
                    r#"{"error":"Service Unavailable (outage)"}"#.into(),
                ),
            },
            _ => bad("STANDIN_OUTAGE", &v),
        }
    });
    let seed = env("STANDIN_SEED").map_or(1, |v| {
        v.trim()
            .parse::<u64>()
            .unwrap_or_else(|_| bad("STANDIN_SEED", &v))
    });
    if rate.is_none() && outage.is_none() {
        return None;
    }
    let status = env("STANDIN_FAIL_STATUS").map(|v| match v.trim().parse::<u16>() {
        Ok(s) if (100..=599).contains(&s) => s,
        _ => bad("STANDIN_FAIL_STATUS", &v),
    });
    let mut faults = match status {
        Some(s) => RandomFaults::status(rate.unwrap_or(0.0), s, seed),
        None => RandomFaults::intermittent(rate.unwrap_or(0.0), seed),
    };
    faults.outage = outage;
    Some(faults)
}

fn describe(r: &RequestRecord, outage: Option<&Outage>) -> String {
    let answer = match r.status {
        0 => "no answer".to_string(),
        s => s.to_string(),
    };
    let fault = match &r.fault {
        None => String::new(),
        Some(f) if outage.is_some_and(|o| &o.fault == f) => " (outage)".to_string(),
        Some(f) => format!(" (injected {f:?})"),
    };
    format!("{} {} -> {answer}{fault}", r.method, r.path)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args.first().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let key = args.get(1).cloned().unwrap_or_else(|| "test-key".into());
    let random = random_faults();
    let api = StandIn::start_on(port, &key).await;
    // Benchmarks send gigabytes: keep only sizes and hashes then.
    if std::env::var("STANDIN_KEEP_BYTES").as_deref() == Ok("0") {
        api.set_keep_bytes(false);
    }
    if let Some(v) = env("STANDIN_LATENCY_MS") {
        match v.trim().parse::<u64>() {
            Ok(ms) => api.set_latency(Endpoint::Results, Some(Duration::from_millis(ms))),
            Err(_) => {
                eprintln!("standin: cannot parse STANDIN_LATENCY_MS={v:?}");
                std::process::exit(64)
            }
        }
    }
    for s in args.iter().skip(2).filter_map(|s| s.parse::<u16>().ok()) {
        api.push_fault(Endpoint::Results, Fault::Status(s));
    }
    let outage = random.as_ref().and_then(|r| r.outage.clone());
    if let Some(r) = &random {
        println!(
            "random faults on /v1/results: rate {} of {:?}, outage {:?}, seed {}",
            r.rate, r.mix, r.outage, r.seed
        );
    }
    api.set_random_faults(Endpoint::Results, random);
    println!(
        "HostedScan stand-in at {} (key {key:?}); Ctrl-C stops it",
        api.url()
    );
    // A request is printed once answered (or once it is known never to be). Requests before
    // `first_open` are all printed; `printed` covers those from `first_open` on.
    let save_dir = env("STANDIN_SAVE_DIR").map(std::path::PathBuf::from);
    let (mut first_open, mut printed, mut seen_up) = (0, Vec::<bool>::new(), 0);
    let mut max_seen = 0;
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .expect("stand-in: cannot handle SIGUSR1");
    loop {
        let stop = tokio::select! {
            _ = tokio::signal::ctrl_c() => true,
            _ = usr1.recv() => {
                api.set_random_faults(Endpoint::Results, None);
                println!(
                    "random faults stopped (SIGUSR1); max in flight until then: {}",
                    api.max_in_flight(Endpoint::Results)
                );
                api.reset_max_in_flight();
                max_seen = 0;
                false
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => false,
        };
        let reqs = api.requests_from(first_open);
        printed.resize(reqs.len(), false);
        for (r, done) in reqs.iter().zip(printed.iter_mut()) {
            let settled = r.status != 0
                || matches!(r.fault, Some(Fault::DropConnection | Fault::Hang))
                || stop;
            if !*done && settled {
                println!("{}", describe(r, outage.as_ref()));
                *done = true;
            }
        }
        let max = api.max_in_flight(Endpoint::Results);
        if max > max_seen {
            println!("max in flight /v1/results: {max}");
            max_seen = max;
        }
        let n = printed.iter().take_while(|d| **d).count();
        printed.drain(..n);
        first_open += n;
        for u in api.uploads_from(seen_up) {
            println!(
                "  upload {} {} {} bytes sha256 {}{}",
                u.file_name.as_deref().unwrap_or("-"),
                u.scan_type,
                u.size,
                u.sha256,
                u.target
                    .as_ref()
                    .map(|t| format!(" target {t}"))
                    .unwrap_or_default()
            );
            seen_up += 1;
            if let Some(dir) = &save_dir {
                // Only the last component of the client's file name, and no dot file.
                let name = u.file_name.as_deref().unwrap_or("file");
                let name = name
                    .rsplit('/')
                    .next()
                    .unwrap_or("file")
                    .trim_start_matches('.');
                let path = dir.join(format!("{seen_up}-{name}"));
                if let Err(e) = std::fs::write(&path, &u.bytes) {
                    eprintln!("standin: cannot write {}: {e}", path.display());
                }
            }
        }
        if stop {
            break;
        }
    }
    api.shutdown().await;
}
