//! The ledger's line files: `ledger.jsonl`, appended at each upload, and what it becomes when a
//! compaction retires it, `ledger-history/<generation>-<time>.jsonl`. Retired files are kept:
//! operators grep them (file names, result ids), and they are what a damaged index is rebuilt
//! from. Here: their names and generations, which of them an index does not hold yet, retiring,
//! and reading lines leniently.
//!
//! Generations: the retired files are numbered 1, 2, 3...; `ledger.jsonl` is the generation
//! after the newest retired one (or after the index's, when there is none newer).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spool::fsutil;
use crate::spool::Sha256;

pub const JSONL: &str = "ledger.jsonl";
pub const HISTORY: &str = "ledger-history";

/// A line file with lines the index does not hold: from byte `skip` on.
#[derive(Debug)]
pub struct Pending {
    pub generation: u64,
    pub path: PathBuf,
    pub skip: u64,
}

/// The retired files, oldest first. A name that is not `<digits>-...jsonl` is not the agent's.
pub fn history(state_dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let dir = state_dir.join(HISTORY);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".jsonl") else {
            continue;
        };
        let digits = stem.split('-').next().unwrap_or("");
        if let Ok(n) = digits.parse::<u64>() {
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && n > 0 {
                out.push((n, e.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The files holding lines that an index of (`generation`, `included` bytes of the next
/// generation) does not, oldest first; `ledger.jsonl` last.
pub fn pending(state_dir: &Path, generation: u64, included: u64) -> io::Result<Vec<Pending>> {
    let skip = |n: u64| if n == generation + 1 { included } else { 0 };
    let mut out: Vec<Pending> = history(state_dir)?
        .into_iter()
        .filter(|(n, _)| *n > generation)
        .map(|(n, path)| Pending {
            generation: n,
            path,
            skip: skip(n),
        })
        .collect();
    let jsonl = out.last().map_or(generation, |p| p.generation) + 1;
    out.push(Pending {
        generation: jsonl,
        path: state_dir.join(JSONL),
        skip: skip(jsonl),
    });
    Ok(out)
}

/// Rename `ledger.jsonl` to `ledger-history/<generation>-<time>.jsonl`, durably (both
/// directories synced before it returns).
pub fn retire(state_dir: &Path, generation: u64) -> io::Result<PathBuf> {
    let dir = state_dir.join(HISTORY);
    fsutil::ensure_dir(&dir)?;
    let stamp: String = fsutil::now_rfc3339()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let to = dir.join(format!("{generation:06}-{stamp}.jsonl"));
    fsutil::place(&state_dir.join(JSONL), &to)?;
    // `place` only warns when a sync fails; here the index will soon say the file is retired.
    fsutil::sync_dir(&dir)?;
    fsutil::sync_dir(state_dir)?;
    Ok(to)
}

/// A line as it is read back: only what the ledger uses. A line that is a JSON object counts as
/// an upload (in the totals) whatever its other fields say; its digest is remembered only when
/// it is one (a line whose digest is not one can never match a file's: the agent computes them).
#[derive(Deserialize)]
pub struct ReadLine {
    #[serde(default, deserialize_with = "digest_or_none")]
    pub sha256: Option<Sha256>,
    #[serde(default)]
    pub source_id: String,
    #[serde(default)]
    pub at: Option<String>,
}

fn digest_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Sha256>, D::Error> {
    let v = <Option<std::borrow::Cow<'de, str>> as Deserialize>::deserialize(d)?;
    Ok(v.and_then(|s| s.parse().ok()))
}

/// The lines of one file from a byte offset, with the offset after each.
pub struct Lines {
    reader: BufReader<File>,
    offset: u64,
    buf: Vec<u8>,
    /// Lines that are not JSON objects (cut by a crash mid-append): skipped.
    pub bad: usize,
}

impl Lines {
    /// `None` when the file does not exist. A file shorter than `skip` (cut by hand: the index
    /// cannot hold what it says) is read whole.
    pub fn open(path: &Path, skip: u64) -> io::Result<Option<Lines>> {
        let mut f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut skip = skip;
        if f.metadata()?.len() < skip {
            tracing::warn!(file = %path.display(), "ledger file shorter than the index says it was; read whole");
            skip = 0;
        }
        f.seek(io::SeekFrom::Start(skip))?;
        Ok(Some(Lines {
            reader: BufReader::with_capacity(256 * 1024, f),
            offset: skip,
            buf: Vec::new(),
            bad: 0,
        }))
    }

    /// The next readable line and the offset just after it.
    pub fn next_line(&mut self) -> io::Result<Option<(ReadLine, u64)>> {
        loop {
            self.buf.clear();
            let n = self.reader.read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.offset += n as u64;
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<ReadLine>(&self.buf) {
                Ok(l) => return Ok(Some((l, self.offset))),
                // A line cut by a crash mid-append: that upload may be repeated, nothing else.
                Err(_) => self.bad += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_files_follow_the_generations_after_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path().join(HISTORY);
        std::fs::create_dir(&h).unwrap();
        for n in [
            "000001-x.jsonl",
            "000002-x.jsonl",
            "000003-x.jsonl",
            "notes.txt",
            "x.jsonl",
        ] {
            std::fs::write(h.join(n), b"").unwrap();
        }
        let p = pending(dir.path(), 1, 10).unwrap();
        let got: Vec<(u64, u64)> = p.iter().map(|p| (p.generation, p.skip)).collect();
        assert_eq!(got, [(2, 10), (3, 0), (4, 0)]);
        assert!(p[2].path.ends_with(JSONL));
        let p = pending(dir.path(), 3, 10).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].generation, p[0].skip),
            (4, 10),
            "ledger.jsonl is next"
        );
    }

    #[test]
    fn lines_report_their_end_offsets_and_skip_what_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JSONL);
        let a = format!(
            "{{\"sha256\":\"{}\",\"source_id\":\"s\"}}\n",
            Sha256::of(b"a")
        );
        std::fs::write(&path, format!("{a}{{\"sha256\":\"00\n\n{a}")).unwrap();
        let mut lines = Lines::open(&path, 0).unwrap().unwrap();
        let (l, end) = lines.next_line().unwrap().unwrap();
        assert_eq!((l.sha256, end), (Some(Sha256::of(b"a")), a.len() as u64));
        let (_, end) = lines.next_line().unwrap().unwrap();
        assert_eq!(end, std::fs::metadata(&path).unwrap().len());
        assert!(lines.next_line().unwrap().is_none());
        assert_eq!(lines.bad, 1);
        let mut from = Lines::open(&path, end - a.len() as u64).unwrap().unwrap();
        assert!(from.next_line().unwrap().is_some() && from.next_line().unwrap().is_none());
    }
}
