//! The ledger: one JSON line per accepted upload (`ledger.jsonl`), appended and fsynced after
//! each 2xx. It answers "was this content already uploaded to this source?" so the same bytes
//! are never uploaded twice, and it is where `status` finds the totals.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerLine {
    pub sha256: String,
    pub source_id: String,
    pub at: String,
    pub file: String,
    pub scan_type: String,
    pub size: u64,
    #[serde(default)]
    pub result_id: Option<String>,
}

pub struct Ledger {
    file: File,
    /// Per source id, the SHA-256 of every upload as its 32 bytes: about 40-75 bytes an upload
    /// with the table's slack, where a pair of `String`s (source id, hex digest) took about 190.
    /// It still grows with every upload ever made, like the file.
    seen: HashMap<String, HashSet<[u8; 32]>>,
}

/// The 32 bytes of a hex SHA-256 (either case); `None` when it is not one. A line whose digest
/// is not one can never match a file's (the agent computes them), so it is not kept.
fn digest(sha256: &str) -> Option<[u8; 32]> {
    let hex = sha256.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// Totals read without opening the ledger for writing.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub total: u64,
    pub last_at: Option<String>,
}

fn read_lines(path: &Path, mut each: impl FnMut(LedgerLine)) -> io::Result<usize> {
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
        match serde_json::from_slice::<LedgerLine>(&line) {
            Ok(l) => each(l),
            // A line cut by a crash mid-append: that upload may be repeated, nothing else.
            Err(_) => bad += 1,
        }
    }
    Ok(bad)
}

pub fn summary(path: &Path) -> io::Result<Summary> {
    let mut s = Summary::default();
    read_lines(path, |l| {
        s.total += 1;
        s.last_at = Some(l.at);
    })?;
    Ok(s)
}

impl Ledger {
    pub fn open(state_dir: &Path) -> io::Result<Ledger> {
        let path = state_dir.join("ledger.jsonl");
        let mut seen = HashMap::new();
        let bad = read_lines(&path, |l| insert(&mut seen, l.source_id, &l.sha256))?;
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

    pub fn contains(&self, source_id: &str, sha256: &str) -> bool {
        match (self.seen.get(source_id), digest(sha256)) {
            (Some(set), Some(d)) => set.contains(&d),
            _ => false,
        }
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

fn insert(seen: &mut HashMap<String, HashSet<[u8; 32]>>, source_id: String, sha256: &str) {
    if let Some(d) = digest(sha256) {
        seen.entry(source_id).or_default().insert(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(source_id: &str, sha256: &str) -> LedgerLine {
        LedgerLine {
            sha256: sha256.into(),
            source_id: source_id.into(),
            at: "2026-11-27T00:00:00Z".into(),
            file: "a.xml".into(),
            scan_type: "NMAP".into(),
            size: 1,
            result_id: None,
        }
    }

    #[test]
    fn remembers_each_digest_per_source_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = "ab".repeat(32);
        let b = "0f".repeat(32);
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger.record(line("src1", &a)).unwrap();
        assert!(ledger.contains("src1", &a));
        assert!(ledger.contains("src1", &a.to_uppercase()));
        assert!(!ledger.contains("src2", &a), "another source");
        assert!(!ledger.contains("src1", &b));
        assert!(!ledger.contains("src1", "not a digest"));
        drop(ledger);
        let mut ledger = Ledger::open(dir.path()).unwrap();
        assert!(ledger.contains("src1", &a));
        ledger.record(line("src2", &b)).unwrap();
        assert!(ledger.contains("src2", &b) && !ledger.contains("src1", &b));
    }

    #[test]
    fn digest_reads_hex_of_either_case_and_nothing_else() {
        let mut want = [0u8; 32];
        want[0] = 0xab;
        want[31] = 0x01;
        let hex = format!("ab{}01", "00".repeat(30));
        assert_eq!(digest(&hex), Some(want));
        assert_eq!(digest(&hex.to_uppercase()), Some(want));
        assert_eq!(digest(&hex[1..]), None);
        assert_eq!(digest(&format!("{}zz", &hex[..62])), None);
        assert_eq!(digest(&format!("+b{}", &hex[2..])), None);
    }
}
