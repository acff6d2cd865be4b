//! The ledger after a million uploads (issue 16): `record DIR N` records N uploads across three
//! sources through `Ledger::record` (each appended and fsynced, compactions as they come) and
//! prints how long the compactions blocked it; `measure DIR` times `Ledger::open`, lookups
//! that hit and miss (averaged over many, page cache warm), and one compaction of the whole
//! index on DIR's file system. `benches/ledger.sh` runs both and the daemon's RSS. Prints
//! figures, asserts nothing: this machine is shared and noisy.

use std::path::Path;
use std::time::{Duration, Instant};

use hostedscan_agent::spool::ledger::{self, Ledger, LedgerLine, COMPACT_AT};
use hostedscan_agent::spool::Sha256;
use hostedscan_agent::validate::ScanType;

const SOURCES: [&str; 3] = [
    "665399ae750da1a1e61e8a59b6",
    "7a1f00c2d9e84b36a0c4e1f2aa",
    "8c2e11d3eaf95c47b1d5f203bb",
];

fn digest(n: u64) -> Sha256 {
    Sha256::of(&n.to_le_bytes())
}

fn line(n: u64) -> LedgerLine {
    LedgerLine {
        sha256: digest(n),
        source_id: SOURCES[(n % 3) as usize].into(),
        at: "2026-11-27T07:16:29Z".into(),
        file: format!("soak-{n}.xml"),
        scan_type: ScanType::Nmap,
        size: 1428,
        result_id: Some("f89fdec925ff2368b5f7154600".into()),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Record uploads `from..to`; returns the durations of the records that compacted (those far
/// slower than an append).
fn record(dir: &Path, from: u64, to: u64) -> (Duration, Vec<Duration>) {
    let mut l = Ledger::open(dir).expect("open");
    let (started, mut slow) = (Instant::now(), Vec::new());
    for n in from..to {
        let t = Instant::now();
        l.record(line(n)).expect("record");
        let took = t.elapsed();
        if took > Duration::from_millis(5) {
            slow.push(took);
        }
    }
    (started.elapsed(), slow)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let dir = Path::new(args.get(1).map(String::as_str).unwrap_or("ledger-bench"));
    std::fs::create_dir_all(dir).expect("state dir");
    match args.first().map(String::as_str) {
        Some("record") => {
            let n: u64 = args
                .get(2)
                .and_then(|a| a.parse().ok())
                .unwrap_or(1_000_000);
            let (total, slow) = record(dir, 0, n);
            let max = slow.iter().max().copied().unwrap_or_default();
            println!(
                "recorded {n} uploads across 3 sources in {:.1} s ({:.1} µs each, fsync included), {} compactions (every {COMPACT_AT} lines)",
                total.as_secs_f64(),
                total.as_secs_f64() * 1e6 / n as f64,
                slow.len()
            );
            println!(
                "  compactions blocked record() for {:.0} ms at most, {:.0} ms the last one",
                ms(max),
                slow.last().map_or(0.0, |d| ms(*d))
            );
        }
        Some("measure") => {
            let s = ledger::summary(dir).expect("summary");
            let t = Instant::now();
            let s2 = ledger::summary(dir).expect("summary");
            let summary_time = t.elapsed();
            assert_eq!(s.total, s2.total);
            let t = Instant::now();
            let l = Ledger::open(dir).expect("open");
            let open = t.elapsed();
            let n = s.total;
            println!("ledger of {n} uploads");
            println!("  Ledger::open      : {:.0} ms", ms(open));
            println!("  ledger::summary   : {:.1} ms (status)", ms(summary_time));
            const LOOKUPS: u64 = 200_000;
            let step = (n / LOOKUPS).max(1);
            let t = Instant::now();
            let mut found = 0u64;
            for i in 0..LOOKUPS {
                let k = (i * step + i % step) % n;
                found += u64::from(l.contains(SOURCES[(k % 3) as usize], &digest(k)));
            }
            let hit = t.elapsed();
            assert_eq!(found, LOOKUPS, "every recorded upload is found");
            let t = Instant::now();
            for i in 0..LOOKUPS {
                let k = n + 1 + i;
                found -= u64::from(l.contains(SOURCES[(k % 3) as usize], &digest(k)));
            }
            let miss = t.elapsed();
            assert_eq!(found, LOOKUPS, "no upload never recorded is found");
            // The digest's own cost, to be subtracted by the reader.
            let t = Instant::now();
            let mut x = 0u8;
            for i in 0..LOOKUPS {
                x ^= digest(i).to_bytes()[0];
            }
            let hashing = t.elapsed();
            println!(
                "  lookup, hit       : {:.2} µs (mean of {LOOKUPS}; minus {:.2} µs to make each test digest)",
                hit.as_secs_f64() * 1e6 / LOOKUPS as f64,
                hashing.as_secs_f64() * 1e6 / LOOKUPS as f64
            );
            std::hint::black_box(x);
            println!(
                "  lookup, miss      : {:.2} µs (mean of {LOOKUPS}, same)",
                miss.as_secs_f64() * 1e6 / LOOKUPS as f64
            );
            drop(l);
            // One more compaction, of the whole index, on this file system.
            let (_, slow) = record(dir, n, n + COMPACT_AT + 1);
            println!(
                "  compaction of {n} + {COMPACT_AT}: record() blocked {:.0} ms",
                slow.iter().max().map_or(0.0, |d| ms(*d))
            );
        }
        _ => eprintln!("usage: cargo bench --bench ledger -- record|measure DIR [N]"),
    }
}
