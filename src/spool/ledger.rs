//! The ledger: one JSON line per accepted upload (`ledger.jsonl`), appended and fsynced after
//! each 2xx. It answers "was this content already uploaded to this source?" so the same bytes
//! are never uploaded twice, and it is where `status` finds the totals.

use std::collections::HashSet;
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
    seen: HashSet<(String, String)>,
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
        let mut seen = HashSet::new();
        let bad = read_lines(&path, |l| {
            seen.insert((l.source_id, l.sha256));
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

    pub fn contains(&self, source_id: &str, sha256: &str) -> bool {
        self.seen
            .contains(&(source_id.to_string(), sha256.to_string()))
    }

    /// Record an accepted upload. The content counts as uploaded for this process even when
    /// the line cannot be written (a full or failing disk): only a restart forgets it then.
    pub fn record(&mut self, line: LedgerLine) -> io::Result<()> {
        self.seen
            .insert((line.source_id.clone(), line.sha256.clone()));
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
