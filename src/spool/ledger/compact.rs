//! A compaction's merge: the lines not yet in the index (a [`Batch`]) and the old index's
//! records become a new index, written under a temporary name, synced, and renamed into place.
//! When a compaction runs and which line file it retires is the ledger's (`mod.rs`).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::files::ReadLine;
use super::index::{self, Header, Index};
use super::Summary;
use crate::spool::{fsutil, Sha256};

/// Lines not in the index, gathered to be merged into it: per source, digests and totals.
#[derive(Default)]
pub struct Batch {
    pub by_source: BTreeMap<String, (Vec<Sha256>, Summary)>,
    pub lines: u64,
}

impl Batch {
    pub fn add(&mut self, l: ReadLine) {
        let (digests, s) = self.by_source.entry(l.source_id).or_default();
        digests.extend(l.sha256);
        s.add(1, l.at.as_ref());
        self.lines += 1;
    }
}

/// Merge `batch` into a new index that holds everything up to (`generation`, `included` bytes
/// of the next), write it under a temporary name, sync it, and rename it into place.
pub fn compact_into(
    dir: &Path,
    old: Option<&Index>,
    batch: &Batch,
    generation: u64,
    included: u64,
) -> io::Result<Index> {
    let mut sources: BTreeMap<String, Summary> = old
        .map(|i| i.header.sources.iter().cloned().collect())
        .unwrap_or_default();
    for (id, (_, s)) in &batch.by_source {
        let t = sources.entry(id.clone()).or_default();
        t.add(s.total, s.last_at.as_ref());
    }
    let ids: Vec<&String> = sources.keys().collect();
    let no = |id: &str| ids.binary_search_by(|i| i.as_str().cmp(id)).unwrap_or(0) as u32;
    // The source tables are sorted and the new one holds the old: renumbering keeps the order.
    let renumber: Vec<u32> = old.map_or(Vec::new(), |i| {
        i.header.sources.iter().map(|(id, _)| no(id)).collect()
    });
    let mut fresh: Vec<index::Key> = Vec::with_capacity(
        batch
            .by_source
            .values()
            .map(|(d, _)| d.len())
            .sum::<usize>(),
    );
    for (id, (digests, _)) in &batch.by_source {
        let n = no(id);
        fresh.extend(digests.iter().map(|d| index::key(n, d)));
    }
    fresh.sort_unstable();
    fresh.dedup();
    let header = Header {
        generation,
        included_bytes: included,
        records: 0,
        sources: sources.into_iter().collect(),
    };
    let capacity = old.map_or(0, |i| i.header.records) + fresh.len() as u64;
    let mut olds = old.map(|i| i.records());
    let mut a = match olds.as_mut() {
        Some(r) => r.next_key()?,
        None => None,
    };
    let mut b = fresh.into_iter().peekable();
    let renumbered = |k: index::Key| {
        let mut k = k;
        let n = renumber
            .get(index::source_of(&k) as usize)
            .copied()
            .unwrap_or(0);
        k[..4].copy_from_slice(&n.to_be_bytes());
        k
    };
    // Both sides ascending: a merge, a key in both (uploaded again after a crash) kept once.
    let merged = || -> io::Result<Option<index::Key>> {
        let next_old = |olds: &mut Option<index::Records<'_>>| match olds.as_mut() {
            Some(r) => r.next_key(),
            None => Ok(None),
        };
        let ka = a.map(renumbered);
        Ok(match (ka, b.peek().copied()) {
            (None, None) => None,
            (Some(x), None) => {
                a = next_old(&mut olds)?;
                Some(x)
            }
            (None, Some(_)) => b.next(),
            (Some(x), Some(y)) => {
                if x <= y {
                    a = next_old(&mut olds)?;
                    if x == y {
                        b.next();
                    }
                    Some(x)
                } else {
                    b.next();
                    Some(y)
                }
            }
        })
    };
    let tmp = dir.join(index::TMP_NAME);
    let written = index::write(&tmp, header, capacity, merged).and_then(|idx| {
        crate::failpoint::failpoint!("ledger-compact-index");
        std::fs::rename(&tmp, dir.join(index::NAME))?;
        fsutil::sync_dir(dir)?;
        Ok(idx)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
