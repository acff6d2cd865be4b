//! The ledger: one JSON line per accepted upload (`ledger.jsonl`), appended and fsynced after
//! each 2xx. It answers "was this content already uploaded to this source?" so the same bytes
//! are never uploaded twice, and it is where `status` finds the totals.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Sha256;
use crate::validate::ScanType;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerLine {
    pub sha256: Sha256,
    pub source_id: String,
    pub at: String,
    pub file: String,
    pub scan_type: ScanType,
    pub size: u64,
    #[serde(default)]
    pub result_id: Option<String>,
}

pub struct Ledger {
    file: File,
    /// Per source id, the SHA-256 of every upload as its 32 bytes: about 40-75 bytes an upload
    /// with the table's slack, where a pair of `String`s (source id, hex digest) took about 190.
    /// It still grows with every upload ever made, like the file.
    seen: HashMap<String, HashSet<Sha256>>,
}

/// Totals read without opening the ledger for writing.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub total: u64,
    pub last_at: Option<String>,
}

/// A line as it is read back: only what the ledger uses. A line that is a JSON object counts as
/// an upload (in the totals) whatever its other fields say; its digest is remembered only when
/// it is one (a line whose digest is not one can never match a file's: the agent computes them).
#[derive(Deserialize)]
struct ReadLine {
    #[serde(default, deserialize_with = "digest_or_none")]
    sha256: Option<Sha256>,
    #[serde(default)]
    source_id: String,
    #[serde(default)]
    at: Option<String>,
}

fn digest_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Sha256>, D::Error> {
    let v = <Option<std::borrow::Cow<'de, str>> as Deserialize>::deserialize(d)?;
    Ok(v.and_then(|s| s.parse().ok()))
}

fn read_lines(path: &Path, mut each: impl FnMut(ReadLine)) -> io::Result<usize> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut bad = 0;
    for line in BufReader::new(f).split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<ReadLine>(&line) {
            Ok(l) => each(l),
            // A line cut by a crash mid-append: that upload may be repeated, nothing else.
            Err(_) => bad += 1,
        }
    }
    Ok(bad)
}

/// Totals per source id.
pub fn summaries(state_dir: &Path) -> io::Result<std::collections::BTreeMap<String, Summary>> {
    let mut by: std::collections::BTreeMap<String, Summary> = Default::default();
    read_lines(&state_dir.join("ledger.jsonl"), |l| {
        let s = by.entry(l.source_id).or_default();
        s.total += 1;
        if l.at.is_some() {
            s.last_at = l.at;
        }
    })?;
    Ok(by)
}

pub fn summary(path: &Path) -> io::Result<Summary> {
    let mut s = Summary::default();
    read_lines(path, |l| {
        s.total += 1;
        if l.at.is_some() {
            s.last_at = l.at;
        }
    })?;
    Ok(s)
}

impl Ledger {
    pub fn open(state_dir: &Path) -> io::Result<Ledger> {
        let path = state_dir.join("ledger.jsonl");
        let mut seen = HashMap::new();
        let bad = read_lines(&path, |l| {
            if let Some(d) = l.sha256 {
                insert(&mut seen, l.source_id, &d);
            }
        })?;
        if bad > 0 {
            tracing::warn!(ledger = %path.display(), lines = bad, "ignored unreadable ledger lines (an interrupted write)");
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        // Make sure a line cut by a crash does not glue itself to the next one.
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            std::os::unix::fs::FileExt::read_exact_at(&File::open(&path)?, &mut last, len - 1)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Ledger { file, seen })
    }

    pub fn contains(&self, source_id: &str, sha256: &Sha256) -> bool {
        self.seen
            .get(source_id)
            .is_some_and(|set| set.contains(sha256))
    }

    /// Record an accepted upload. The content counts as uploaded for this process even when
    /// the line cannot be written (a full or failing disk): only a restart forgets it then.
    pub fn record(&mut self, line: LedgerLine) -> io::Result<()> {
        insert(&mut self.seen, line.source_id.clone(), &line.sha256);
        self.append(&line)
    }

    fn append(&mut self, line: &LedgerLine) -> io::Result<()> {
        crate::failpoint::failpoint!("ledger-record");
        let mut bytes = serde_json::to_vec(line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        self.file.write_all(&bytes)?;
        self.file.sync_data()
    }
}

fn insert(seen: &mut HashMap<String, HashSet<Sha256>>, source_id: String, sha256: &Sha256) {
    seen.entry(source_id).or_default().insert(*sha256);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(source_id: &str, sha256: Sha256) -> LedgerLine {
        LedgerLine {
            sha256,
            source_id: source_id.into(),
            at: "2026-11-27T00:00:00Z".into(),
            file: "a.xml".into(),
            scan_type: ScanType::Nmap,
            size: 1,
            result_id: None,
        }
    }

    #[test]
    fn remembers_each_digest_per_source_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = Sha256::of(b"a");
        let b = Sha256::of(b"b");
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger.record(line("src1", a)).unwrap();
        assert!(ledger.contains("src1", &a));
        assert!(!ledger.contains("src2", &a), "another source");
        assert!(!ledger.contains("src1", &b));
        drop(ledger);
        let mut ledger = Ledger::open(dir.path()).unwrap();
        assert!(ledger.contains("src1", &a));
        ledger.record(line("src2", b)).unwrap();
        assert!(ledger.contains("src2", &b) && !ledger.contains("src1", &b));
    }

    #[test]
    fn a_line_whose_digest_is_not_one_still_counts_and_the_rest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Sha256::of(b"a");
        let good = serde_json::to_string(&line("src1", a)).unwrap();
        let bad = good
            .replace(&a.to_string(), "not a digest")
            .replace("NMAP", "SOME_FUTURE_TYPE");
        let upper = good.replace(&a.to_string(), &a.to_string().to_uppercase());
        let path = dir.path().join("ledger.jsonl");
        std::fs::write(&path, format!("{bad}\n{good}\n{upper}\n")).unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        assert!(ledger.contains("src1", &a));
        assert_eq!(summary(&path).unwrap().total, 3, "every upload is counted");
    }
}
