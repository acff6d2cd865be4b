//! The ledger: which content was accepted by which source, so the same bytes are never uploaded
//! twice, and the totals `status` shows. One JSON line per accepted upload is appended to
//! `ledger.jsonl`, the lines of the uploads that finished together in one write and one fsync
//! (group commit); every [`COMPACT_AT`] lines a compaction retires
//! that file to `ledger-history/` (`files.rs`) and merges its digests into `ledger.index`, a
//! sorted binary index on disk (`index.rs`). Memory holds only the lines since the last
//! compaction, a Bloom filter and a sparse fence of the index: it stays flat however many
//! uploads the agent makes, and lookups stay exact (a filter hit is confirmed on disk).
//!
//! Crash safety: every line is at all times in the index or in a line file the index says it
//! does not hold (its header names the last retired generation it holds, and how many bytes of
//! the next). A compaction (1) retires `ledger.jsonl` by rename (the index still says it does
//! not hold that generation: it is read at open), (2) writes the new index under a temporary
//! name and syncs it, (3) renames it into place and syncs the directory: from then it holds the
//! retired generation. A crash between any two steps loses nothing and counts nothing twice.
//! A damaged index is set aside and rebuilt from the line files, which are never deleted.

mod compact;
mod files;
mod index;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::fsutil;
use super::Sha256;
use crate::validate::ScanType;
use compact::{compact_into, Batch};
use files::{Lines, JSONL};
use index::{Header, Index};

/// Lines kept in memory before a compaction (about 60 bytes each with the table's slack: ~1.2
/// MiB); a compaction rewrites the index, so fewer would mean more writing.
pub const COMPACT_AT: u64 = 20_000;
/// At open, lines not in the index (after an upgrade from a ledger without one, or to rebuild a
/// damaged index) are merged in pieces of this many, so memory stays bounded (36 bytes a line).
const OPEN_CHUNK: u64 = 262_144;
/// A testing knob (debug and `failpoints` builds only; not a setting): compact after this many
/// lines instead of [`COMPACT_AT`], so tests see compactions with a few uploads.
pub const COMPACT_AT_VAR: &str = "HOSTEDSCAN_AGENT_LEDGER_COMPACT_AT";

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

/// Uploads counted (lines, including a content uploaded twice) and the time of the last.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub total: u64,
    pub last_at: Option<String>,
}

impl Summary {
    fn add(&mut self, lines: u64, at: Option<&String>) {
        self.total += lines;
        if let Some(at) = at {
            self.last_at = Some(at.clone());
        }
    }
}

/// How often compactions run (tests make them frequent).
#[derive(Debug, Clone, Copy)]
struct Tuning {
    compact_at: u64,
    open_chunk: u64,
}

impl Tuning {
    fn from_env() -> Tuning {
        let mut t = Tuning {
            compact_at: COMPACT_AT,
            open_chunk: OPEN_CHUNK,
        };
        if cfg!(any(debug_assertions, feature = "failpoints")) {
            if let Some(n) = std::env::var(COMPACT_AT_VAR)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|n| *n > 0)
            {
                t.compact_at = n;
            }
        }
        t
    }
}

/// The lines since the last compaction, in memory for lookups.
#[derive(Default)]
struct Recent {
    by_source: HashMap<String, (HashSet<Sha256>, Summary)>,
    lines: u64,
}

impl Recent {
    fn add(&mut self, source_id: &str, sha256: Option<Sha256>, at: Option<&String>) {
        if !self.by_source.contains_key(source_id) {
            self.by_source
                .insert(source_id.to_string(), Default::default());
        }
        if let Some((digests, s)) = self.by_source.get_mut(source_id) {
            digests.extend(sha256);
            s.add(1, at);
        }
        self.lines += 1;
    }

    fn from_batch(b: Batch) -> Recent {
        Recent {
            lines: b.lines,
            by_source: b
                .by_source
                .into_iter()
                .map(|(id, (d, s))| (id, (d.into_iter().collect(), s)))
                .collect(),
        }
    }

    fn to_batch(&self) -> Batch {
        Batch {
            lines: self.lines,
            by_source: self
                .by_source
                .iter()
                .map(|(id, (d, s))| (id.clone(), (d.iter().copied().collect(), s.clone())))
                .collect(),
        }
    }
}

pub struct Ledger {
    dir: PathBuf,
    /// `ledger.jsonl`, appended; `None` after a compaction retired it and a new one could not
    /// be created yet (the next append tries again).
    file: Option<File>,
    index: Option<Index>,
    recent: Recent,
    /// The generation `ledger.jsonl` gets when it is retired.
    jsonl_generation: u64,
    tuning: Tuning,
    /// Recent lines at which the next compaction is tried (later after one failed).
    compact_when: u64,
}

fn open_jsonl(dir: &Path) -> io::Result<File> {
    let path = dir.join(JSONL);
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)?;
    if !existed {
        fsutil::sync_dir(dir)?;
    }
    // Make sure a line cut by a crash does not glue itself to the next one.
    let len = file.metadata()?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&File::open(&path)?, &mut last, len - 1)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok(file)
}

/// Lines written to the ledger and not yet synced: [`Unsynced::sync`] makes them durable (the
/// file itself, even if a compaction has retired it meanwhile).
pub struct Unsynced(File);

impl Unsynced {
    pub fn sync(self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Ledger {
    /// Open the ledger of `state_dir` (the caller holds the state directory's lock).
    pub fn open(state_dir: &Path) -> io::Result<Ledger> {
        Ledger::open_tuned(state_dir, Tuning::from_env())
    }

    /// For other modules' tests: a ledger that compacts after every `n` lines.
    #[cfg(test)]
    pub(crate) fn open_compacting_every(dir: &Path, n: u64) -> io::Result<Ledger> {
        Ledger::open_tuned(
            dir,
            Tuning {
                compact_at: n,
                ..Tuning::from_env()
            },
        )
    }

    fn open_tuned(dir: &Path, tuning: Tuning) -> io::Result<Ledger> {
        match std::fs::remove_file(dir.join(index::TMP_NAME)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let index_path = dir.join(index::NAME);
        let mut index = match Index::open(&index_path) {
            Ok(i) => i,
            Err(e) if index::is_corrupt(&e) => {
                let aside = fsutil::set_aside_corrupt(&index_path)?;
                tracing::warn!(file = %index_path.display(), moved_to = %aside.display(), error = %e, "the ledger's index is unreadable; set it aside, rebuilding it from ledger-history/ and ledger.jsonl");
                None
            }
            Err(e) => return Err(e),
        };
        // The tail first: every offset read below is then at the end of a line.
        let file = open_jsonl(dir)?;
        let (g, b) = index
            .as_ref()
            .map_or((0, 0), |i| (i.header.generation, i.header.included_bytes));
        let pending = files::pending(dir, g, b)?;
        let jsonl_generation = pending.last().map_or(g + 1, |p| p.generation);
        let (mut batch, mut bad, mut last, mut can_compact) = (Batch::default(), 0, None, true);
        for p in &pending {
            let Some(mut lines) = Lines::open(&p.path, p.skip)? else {
                continue;
            };
            while let Some((l, end)) = lines.next_line()? {
                batch.add(l);
                last = Some((p.generation, end));
                // A large backlog (an upgrade, a rebuild) goes into the index piece by piece.
                if can_compact && batch.lines >= tuning.open_chunk {
                    match compact_into(dir, index.as_ref(), &batch, p.generation - 1, end) {
                        Ok(i) => {
                            index = Some(i);
                            batch = Batch::default();
                        }
                        Err(e) => {
                            can_compact = false;
                            tracing::warn!(error = %e, "cannot compact the ledger; its lines stay in memory");
                        }
                    }
                }
            }
            bad += lines.bad;
        }
        if bad > 0 {
            tracing::warn!(ledger = %dir.join(JSONL).display(), lines = bad, "ignored unreadable ledger lines (an interrupted write)");
        }
        if let Some((generation, end)) =
            last.filter(|_| can_compact && batch.lines >= tuning.compact_at)
        {
            match compact_into(dir, index.as_ref(), &batch, generation - 1, end) {
                Ok(i) => {
                    index = Some(i);
                    batch = Batch::default();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot compact the ledger; its lines stay in memory")
                }
            }
        }
        Ok(Ledger {
            dir: dir.to_path_buf(),
            file: Some(file),
            index,
            recent: Recent::from_batch(batch),
            jsonl_generation,
            tuning,
            compact_when: tuning.compact_at,
        })
    }

    /// Exact: whether a line of `source_id` with this digest was recorded. A failed read of the
    /// index (EIO) answers no, with a warning: an upload repeated rather than one never made.
    pub fn contains(&self, source_id: &str, sha256: &Sha256) -> bool {
        if self
            .recent
            .by_source
            .get(source_id)
            .is_some_and(|(set, _)| set.contains(sha256))
        {
            return true;
        }
        self.index.as_ref().is_some_and(|i| {
            i.contains(source_id, sha256).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the ledger's index; taking the content as not uploaded");
                false
            })
        })
    }

    /// Record an accepted upload: [`Ledger::record_all`] of one line.
    pub fn record(&mut self, line: LedgerLine) -> io::Result<()> {
        self.record_all(vec![line])
    }

    /// Record a batch of accepted uploads with one write and one fsync: [`Ledger::write_lines`],
    /// [`Unsynced::sync`], [`Ledger::compact_if_due`].
    pub fn record_all(&mut self, lines: Vec<LedgerLine>) -> io::Result<()> {
        let synced = self.write_lines(&lines).and_then(Unsynced::sync);
        self.compact_if_due();
        synced
    }

    /// The first step of recording a batch of accepted uploads (group commit: the uploads that
    /// finished while the last batch was being synced): the lines written in one write, not yet
    /// synced. The fsync ([`Unsynced::sync`]) needs no `&mut self`, so a caller sharing the
    /// ledger behind a lock syncs without holding it: lookups and the next batch's write go on
    /// meanwhile. The content counts as uploaded for this process at once, even when the lines
    /// cannot be written (a full or failing disk): only a restart forgets it then.
    pub fn write_lines(&mut self, lines: &[LedgerLine]) -> io::Result<Unsynced> {
        for line in lines {
            self.recent
                .add(&line.source_id, Some(line.sha256), Some(&line.at));
        }
        self.append(lines)
    }

    /// Every [`COMPACT_AT`] lines, compact the ledger (see the module's comment), which blocks
    /// the caller while the index is rewritten: call it after the lines just written are
    /// synced, so that the uploads just accepted are on disk before anything else is done.
    pub fn compact_if_due(&mut self) {
        if self.recent.lines >= self.compact_when {
            let started = Instant::now();
            match self.compact() {
                Ok(()) => {
                    self.compact_when = self.tuning.compact_at;
                    tracing::info!(
                        records = self.index.as_ref().map_or(0, |i| i.header.records),
                        ms = started.elapsed().as_millis() as u64,
                        "compacted the ledger"
                    );
                }
                Err(e) => {
                    // Tried again after as many more lines: a failing disk is not hammered.
                    self.compact_when = self.recent.lines + self.tuning.compact_at;
                    tracing::warn!(error = %e, "cannot compact the ledger; its lines stay in memory");
                }
            }
        }
    }

    fn compact(&mut self) -> io::Result<()> {
        crate::failpoint::failpoint!("ledger-compact-start");
        let generation = self.jsonl_generation;
        if let Err(e) = files::retire(&self.dir, generation) {
            if self.dir.join(files::JSONL).exists() {
                return Err(e);
            }
            // Renamed, but a directory could not be synced: the file this ledger appends to is
            // history now. Lines go to a new ledger.jsonl (the next generation), and this
            // compaction stops before an index says anything about the retired one.
            self.jsonl_generation = generation + 1;
            self.file = None;
            self.file = Some(open_jsonl(&self.dir)?);
            return Err(e);
        }
        self.jsonl_generation = generation + 1;
        self.file = None;
        self.file = Some(open_jsonl(&self.dir)?);
        crate::failpoint::failpoint!("ledger-compact-retired");
        let batch = self.recent.to_batch();
        self.index = Some(compact_into(
            &self.dir,
            self.index.as_ref(),
            &batch,
            generation,
            0,
        )?);
        self.recent = Recent::default();
        Ok(())
    }

    /// The lines in one write; the handle to sync them with.
    fn append(&mut self, lines: &[LedgerLine]) -> io::Result<Unsynced> {
        crate::failpoint::failpoint!("ledger-record");
        let mut bytes = Vec::with_capacity(lines.len() * 256);
        for line in lines {
            serde_json::to_writer(&mut bytes, line).map_err(io::Error::other)?;
            bytes.push(b'\n');
        }
        if self.file.is_none() {
            self.file = Some(open_jsonl(&self.dir)?);
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("no ledger file"))?;
        file.write_all(&bytes)?;
        Ok(Unsynced(file.try_clone()?))
    }
}

/// Per source id: uploads and the last one's time, compacted history included. Cheap after
/// any number of uploads: the index's header holds its totals; only the lines since the last
/// compaction are read. Works without the lock, while the daemon runs.
pub fn summaries(state_dir: &Path) -> io::Result<BTreeMap<String, Summary>> {
    let index_path = state_dir.join(index::NAME);
    let header = || match Header::load(&index_path) {
        Ok(h) => Ok(h),
        // Damaged: its lines are all in the line files, which are read instead.
        Err(e) if index::is_corrupt(&e) => Ok(None),
        Err(e) => Err(e),
    };
    let mut before = header()?;
    for _attempt in 0..3 {
        let (g, b) = before
            .as_ref()
            .map_or((0, 0), |h| (h.generation, h.included_bytes));
        let mut by: BTreeMap<String, Summary> = before
            .take()
            .map(|h| h.sources.into_iter().collect())
            .unwrap_or_default();
        for p in files::pending(state_dir, g, b)? {
            let Some(mut lines) = Lines::open(&p.path, p.skip)? else {
                continue;
            };
            while let Some((l, _)) = lines.next_line()? {
                by.entry(l.source_id).or_default().add(1, l.at.as_ref());
            }
        }
        // A compaction that ran meanwhile moved lines from file to index: read again.
        let after = header()?;
        let same = after.as_ref().map(|h| (h.generation, h.included_bytes));
        if same == Some((g, b)) || (after.is_none() && g == 0) {
            return Ok(by);
        }
        before = after;
    }
    Err(io::Error::other(
        "the ledger kept changing while it was read",
    ))
}

/// All sources together: total uploads and the latest time.
pub fn summary(state_dir: &Path) -> io::Result<Summary> {
    let mut all = Summary::default();
    for s in summaries(state_dir)?.into_values() {
        all.total += s.total;
        // RFC 3339 in UTC, all written alike: the greatest is the latest.
        if s.last_at > all.last_at {
            all.last_at = s.last_at;
        }
    }
    Ok(all)
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

    fn at(n: u32) -> String {
        format!("2026-11-27T00:{:02}:{:02}Z", n / 60 % 60, n % 60)
    }

    fn d(n: u32) -> Sha256 {
        Sha256::of(&n.to_le_bytes())
    }

    const SOURCES: [&str; 3] = ["src-a", "src-b", "src-c"];

    fn tuned(dir: &Path, compact_at: u64, open_chunk: u64) -> Ledger {
        Ledger::open_tuned(
            dir,
            Tuning {
                compact_at,
                open_chunk,
            },
        )
        .unwrap()
    }

    /// Upload `n` goes to source `n % 3`.
    fn record_range(l: &mut Ledger, range: std::ops::Range<u32>) {
        for n in range {
            let mut li = line(SOURCES[n as usize % 3], d(n));
            li.at = at(n);
            l.record(li).unwrap();
        }
    }

    fn assert_knows_exactly(l: &Ledger, upto: u32) {
        for n in 0..upto + 50 {
            let mine = SOURCES[n as usize % 3];
            let other = SOURCES[(n as usize + 1) % 3];
            assert_eq!(l.contains(mine, &d(n)), n < upto, "upload {n}");
            assert!(!l.contains(other, &d(n)), "upload {n} in another source");
            assert!(!l.contains("src-unknown", &d(n)));
        }
    }

    fn assert_totals(dir: &Path, upto: u32) {
        let per = summaries(dir).unwrap();
        for (i, id) in SOURCES.iter().enumerate() {
            let expected = (0..upto).filter(|n| *n as usize % 3 == i).count() as u64;
            assert_eq!(per.get(*id).map_or(0, |s| s.total), expected, "{id}");
        }
        let all = summary(dir).unwrap();
        assert_eq!(all.total, u64::from(upto));
        assert_eq!(all.last_at, upto.checked_sub(1).map(at));
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
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
        assert_eq!(
            summary(dir.path()).unwrap().total,
            3,
            "every upload is counted"
        );
        drop(ledger);
        // The same once compacted.
        let ledger = tuned(dir.path(), 2, 100);
        assert!(ledger.contains("src1", &a));
        assert!(dir.path().join(index::NAME).exists());
        assert_eq!(summary(dir.path()).unwrap().total, 3);
    }

    #[test]
    fn lookups_stay_exact_across_compactions_sources_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = tuned(dir.path(), 50, 1000);
        record_range(&mut l, 0..1000);
        assert!(l.recent.lines <= 50, "memory holds the recent lines only");
        assert_knows_exactly(&l, 1000);
        assert_totals(dir.path(), 1000);
        drop(l);
        let mut l = tuned(dir.path(), 50, 1000);
        assert_knows_exactly(&l, 1000);
        record_range(&mut l, 1000..1100);
        assert_knows_exactly(&l, 1100);
        assert_totals(dir.path(), 1100);
        let history = files::history(dir.path()).unwrap();
        // A compaction after every 50th line is written: 20 while recording 0..1000 (the last
        // after line 1000, so nothing waits at the reopen), 2 while recording 1000..1100.
        assert_eq!(
            history.len(),
            22,
            "each compaction at record time retired one file"
        );
        let kept: usize = history
            .iter()
            .map(|(_, p)| std::fs::read_to_string(p).unwrap().lines().count())
            .sum();
        let jsonl = std::fs::read_to_string(dir.path().join(JSONL)).unwrap();
        assert_eq!(
            kept + jsonl.lines().count(),
            1100,
            "every line is kept on disk"
        );
        // Line 1100 made the last compaction: it is the newest history file's last line.
        let (_, newest) = history.last().unwrap();
        let newest = std::fs::read_to_string(newest).unwrap();
        assert!(newest
            .lines()
            .last()
            .unwrap()
            .contains(&d(1099).to_string()));
    }

    #[test]
    fn the_same_content_uploaded_twice_counts_twice_and_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = tuned(dir.path(), 3, 1000);
        for _ in 0..2 {
            l.record(line("s", d(1))).unwrap();
        }
        l.record(line("s", d(2))).unwrap(); // written, then the three compacted
        l.record(line("s", d(1))).unwrap();
        l.record(line("s", d(3))).unwrap();
        assert_eq!(l.index.as_ref().unwrap().header.records, 2);
        assert_eq!(summary(dir.path()).unwrap().total, 5);
        drop(l);
        let l = tuned(dir.path(), 3, 1000);
        assert!([1, 2, 3].iter().all(|n| l.contains("s", &d(*n))));
        assert_eq!(summary(dir.path()).unwrap().total, 5);
    }

    /// Each state a crash can leave during a compaction, made by hand: the next open knows
    /// every upload, counts each once, and goes on compacting.
    #[test]
    fn a_crash_between_the_steps_of_a_compaction_loses_and_double_counts_nothing() {
        for step in ["retired", "index written, not renamed", "index renamed"] {
            let dir = tempfile::tempdir().unwrap();
            let mut l = tuned(dir.path(), 10, 1000);
            record_range(&mut l, 0..25); // compactions at 10 and 20
            assert_eq!(l.index.as_ref().unwrap().header.generation, 2);
            let recent = l.recent.to_batch();
            let generation = l.jsonl_generation;
            drop(l);
            // Step 1: ledger.jsonl retired; no new one yet.
            files::retire(dir.path(), generation).unwrap();
            match step {
                "retired" => {}
                "index written, not renamed" => {
                    let path = dir.path().join(index::NAME);
                    let before = std::fs::read(&path).unwrap();
                    let old = Index::open(&path).unwrap();
                    compact_into(dir.path(), old.as_ref(), &recent, generation, 0).unwrap();
                    // As if the rename had not happened: the new index under its temp name.
                    std::fs::rename(&path, dir.path().join(index::TMP_NAME)).unwrap();
                    std::fs::write(&path, before).unwrap();
                }
                _ => {
                    let old = Index::open(&dir.path().join(index::NAME)).unwrap();
                    compact_into(dir.path(), old.as_ref(), &recent, generation, 0).unwrap();
                }
            }
            let mut l = tuned(dir.path(), 10, 1000);
            assert_knows_exactly(&l, 25);
            assert_totals(dir.path(), 25);
            assert!(!dir.path().join(index::TMP_NAME).exists(), "{step}");
            record_range(&mut l, 25..40);
            assert_knows_exactly(&l, 40);
            assert_totals(dir.path(), 40);
            drop(l);
            let l = tuned(dir.path(), 10, 1000);
            assert_knows_exactly(&l, 40);
            assert_totals(dir.path(), 40);
        }
    }

    #[test]
    fn a_damaged_index_is_set_aside_and_rebuilt_from_the_line_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = tuned(dir.path(), 20, 1000);
        record_range(&mut l, 0..100);
        drop(l);
        let path = dir.path().join(index::NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_totals(dir.path(), 100);
        let l = tuned(dir.path(), 20, 1000);
        assert_knows_exactly(&l, 100);
        assert!(names(dir.path())
            .iter()
            .any(|n| n.starts_with("ledger.index.corrupt-")));
        assert!(path.exists(), "rebuilt");
        assert_totals(dir.path(), 100);
    }

    #[test]
    fn a_ledger_without_an_index_is_compacted_at_open_in_pieces() {
        // As left by an agent before compaction existed: one long ledger.jsonl, a cut last line.
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for n in 0..1000u32 {
            let mut li = line(SOURCES[n as usize % 3], d(n));
            li.at = at(n);
            text.push_str(&serde_json::to_string(&li).unwrap());
            text.push('\n');
        }
        text.push_str("{\"sha256\":\"00");
        std::fs::write(dir.path().join(JSONL), &text).unwrap();
        let mut l = tuned(dir.path(), 100, 300);
        assert_eq!(l.recent.lines, 0, "all in the index");
        assert_knows_exactly(&l, 1000);
        assert_totals(dir.path(), 1000);
        assert!(
            files::history(dir.path()).unwrap().is_empty(),
            "ledger.jsonl stays in place until a compaction at record time"
        );
        record_range(&mut l, 1000..1150);
        assert_knows_exactly(&l, 1150);
        assert_totals(dir.path(), 1150);
        drop(l);
        let l = tuned(dir.path(), 100, 300);
        assert_knows_exactly(&l, 1150);
    }
}
