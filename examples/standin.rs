//! A HostedScan stand-in on 127.0.0.1 to try the agent against by hand, offline:
//!
//!     cargo run --example standin -- [PORT] [KEY] [STATUS...]
//!
//! PORT defaults to 8080 and KEY to "test-key". Each STATUS (e.g. 503 422) is answered to one
//! upload, in order, before uploads are accepted. Every request and upload is printed.
//! STANDIN_KEEP_BYTES=0 keeps only each upload's size and SHA-256 (for benchmarks).
//! Point the agent at it with `[api] url = "http://127.0.0.1:PORT/v1"` and `key = "KEY"`.

#[path = "../tests/support/standin.rs"]
mod standin;

use std::time::Duration;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args.first().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let key = args.get(1).cloned().unwrap_or_else(|| "test-key".into());
    let api = standin::StandIn::start_on(port, &key).await;
    // Benchmarks send gigabytes: keep only sizes and hashes then.
    if std::env::var("STANDIN_KEEP_BYTES").as_deref() == Ok("0") {
        api.set_keep_bytes(false);
    }
    for s in args.iter().skip(2).filter_map(|s| s.parse::<u16>().ok()) {
        api.push_fault(standin::Endpoint::Results, standin::Fault::Status(s));
    }
    println!(
        "HostedScan stand-in at {} (key {key:?}); Ctrl-C stops it",
        api.url()
    );
    let (mut seen_req, mut seen_up) = (0, 0);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let reqs = api.requests();
        for r in reqs.iter().skip(seen_req) {
            println!("{} {} -> {}", r.method, r.path, r.status);
        }
        seen_req = reqs.len();
        let ups = api.uploads();
        for u in ups.iter().skip(seen_up) {
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
        }
        seen_up = ups.len();
    }
    api.shutdown().await;
}
