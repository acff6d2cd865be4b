//! Admission throughput (issue 3 item 4): how fast one report goes from a watched directory
//! into the queue (validate + SHA-256 + durable copy, in one read), next to what each part
//! costs alone on the same file in the same run: validation, SHA-256 (ring, which uses the
//! CPU's SHA extensions) and a durable copy. Admission hashes and copies on a second thread
//! while it validates, so it should take about the longest of its parts, not their sum. Run with `cargo bench --bench admission [-- MIB]`
//! (default 1024; the report is written by benches/gen_nmap.py). Prints figures, asserts
//! nothing: this machine is shared and noisy.

use std::fs;
use std::io::{BufReader, Read};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hostedscan_agent::admit::{Admitted, Admitter, Fingerprint, Settled};
use hostedscan_agent::config::AfterUpload;
use hostedscan_agent::spool::ledger::Ledger;
use hostedscan_agent::spool::Spool;
use hostedscan_agent::untrusted::{RelPath, Root};
use hostedscan_agent::validate::{validate, Hints};

fn main() {
    let mib: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    let work = tempfile::tempdir().expect("temp dir");
    let watched = work.path().join("in");
    fs::create_dir(&watched).expect("watch dir");
    let report = watched.join("big.xml");
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/gen_nmap.py");
    let status = Command::new("python3")
        .arg(&generator)
        .arg(mib.to_string())
        .arg(&report)
        .status()
        .expect("python3 runs benches/gen_nmap.py");
    assert!(status.success(), "gen_nmap.py failed");
    let bytes = fs::metadata(&report).expect("report").len();
    // Warm the page cache so no part pays for the first read from disk.
    let _ = fs::read(&report).map(drop);
    println!("file: {mib} MiB ({bytes} bytes) written by benches/gen_nmap.py");

    let rate = |name: &str, t: Duration| {
        let s = t.as_secs_f64();
        println!("{name:<38} {s:7.2} s {:8.0} MB/s", bytes as f64 / 1e6 / s);
        s
    };

    let t = Instant::now();
    let verdict = validate(
        BufReader::with_capacity(256 * 1024, fs::File::open(&report).expect("open")),
        &Hints::default(),
    )
    .expect("read");
    assert!(
        verdict.is_ok(),
        "the generated report is valid: {verdict:?}"
    );
    let v = rate("validate", t.elapsed());

    let t = Instant::now();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut f = fs::File::open(&report).expect("open");
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let _ = ctx.finish();
    let h = rate("sha-256 (ring)", t.elapsed());

    let t = Instant::now();
    fs::copy(&report, work.path().join("copy.xml")).expect("copy");
    fs::File::open(work.path().join("copy.xml"))
        .and_then(|f| f.sync_all())
        .expect("fsync");
    let c = rate("copy + fsync (durable, as the queue)", t.elapsed());
    fs::remove_file(work.path().join("copy.xml")).expect("rm copy");

    let state = work.path().join("state");
    let spool = Arc::new(Spool::open(&state).expect("state dir"));
    let ledger = Arc::new(Mutex::new(Ledger::open(&state).expect("ledger")));
    let book = hostedscan_agent::config::Book {
        state_dir: state.clone(),
        api_url: "http://127.0.0.1:9/v1".into(),
        default: hostedscan_agent::config::SourceSpec {
            name: "bench".into(),
            id: None,
        },
        pins: Default::default(),
        routes: Default::default(),
    };
    let admitter = Admitter::new(
        spool,
        ledger,
        Arc::new(std::sync::RwLock::new(Arc::new(book))),
        u64::MAX,
        Duration::from_secs(600),
        AfterUpload::Archive,
        Some(0),
    )
    .expect("admitter");
    let seen = Fingerprint::of(&fs::metadata(&report).expect("stat"));
    let root = Arc::new(Root::open(report.parent().expect("dir")).expect("root"));
    let rel = RelPath::new(report.file_name().expect("name")).expect("rel");
    let settled = Settled::new(root, rel, Arc::new(Hints::default()), Arc::default(), seen);
    let t = Instant::now();
    let admitted = admitter.admit(&settled);
    let a = rate("admission (validate+hash+copy)", t.elapsed());
    assert!(
        matches!(admitted, Admitted::Queued(_)),
        "the report was queued: {admitted:?}"
    );
    println!(
        "admission takes {:.2}x the time of validation alone; the sum of the parts is {:.2} s, \
         the longest part {:.2} s",
        a / v,
        v + h + c,
        v.max(h + c)
    );
}
