//! Start tags scanned ahead of the parser, on another thread: an index of where each tag in a
//! block of input ends (`prescan` builds it from the block alone), and its look-up by the
//! parser (`TagIndex::take`), which then skips its own scan of a tag found there.
//!
//! This is sound because a start tag that `scan_start_tag` finds whole (`Scan::Done`) is
//! decided by its bytes from `<` to `>` alone: whatever follows, and wherever the buffer
//! starts, a scan of the same bytes finds the same `>`, name and `/>`. So an entry is the
//! parser's own result for a tag it holds whole at that offset. Anything else (a tag cut by
//! the block's end, a bad one) is not indexed, and the parser scans it as always: every error
//! is its own. Candidates inside comments, CDATA or PIs are indexed too but never looked up:
//! the parser asks only where it stands at a start tag.

use super::chars::is_name_start;
use super::markup::{scan_start_tag, Keys, Scan};

/// Blocks larger than this are not indexed (offsets are kept in 32 bits).
const MAX_BLOCK: usize = 1 << 31;
/// At most one mark per this many bytes of a block: an index takes at most 3/8 of its block's
/// size (12 bytes a mark) whatever the input, where a block of `<a/><a/>...` would otherwise
/// take three times its size. Real reports have far fewer tags (a generated Nmap report, one
/// per 50-odd bytes); past the cap, the parser scans the rest of the block's tags itself.
pub(super) const BYTES_PER_MARK: usize = 32;
/// Set in `Mark::name` for `/>`.
const EMPTY: u32 = 1 << 31;

/// One start tag of a block: its `<` at `at` (from the block's first byte), its `>` `len`
/// bytes after it, the length of its name, and whether it ends with `/>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    at: u32,
    len: u32,
    name: u32,
}

/// What the index says of the start tag at an offset: the `>` stands `len` bytes after its
/// `<`, its name has `name` bytes, and `empty` is for `/>` (as `Scan::Done` says it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scanned {
    pub len: usize,
    pub name: usize,
    pub empty: bool,
}

/// Where the scan of a block stands between two calls of `prescan`, and its scratch space.
#[derive(Default)]
pub struct Prescan {
    next: usize,
    keys: Keys,
    /// Tags found so far (for `every_other`).
    found: u64,
    /// Index only every other tag found (tests: the parser must scan the ones left out).
    pub every_other: bool,
}

impl Prescan {
    /// Starts over, for a new block.
    pub fn reset(&mut self) {
        self.next = 0;
        self.found = 0;
    }

    /// Whether all of `block` has been scanned.
    pub fn done(&self, block: &[u8]) -> bool {
        self.next >= block.len() || block.len() >= MAX_BLOCK
    }

    /// Scans the start tags whose `<` lies in the next `budget` bytes of `block` (at least one
    /// candidate's), adding those found whole to `marks` in order.
    pub fn step(&mut self, block: &[u8], budget: usize, marks: &mut Vec<Mark>) {
        if block.len() >= MAX_BLOCK {
            return;
        }
        let stop = self.next.saturating_add(budget).min(block.len());
        let cap = block.len() / BYTES_PER_MARK;
        while self.next < stop {
            if marks.len() >= cap {
                self.next = block.len();
                return;
            }
            let Some(k) = memchr::memchr(b'<', &block[self.next..]) else {
                self.next = block.len();
                return;
            };
            let lt = self.next + k;
            if !block.get(lt + 1).is_some_and(|b| is_name_start(*b)) {
                self.next = lt + 1;
                continue;
            }
            match scan_start_tag(block, lt, &mut self.keys) {
                Scan::Done { gt, empty, name } => {
                    self.found += 1;
                    if !self.every_other || self.found % 2 == 1 {
                        marks.push(Mark {
                            at: lt as u32,
                            len: (gt - lt) as u32,
                            name: name as u32 | if empty { EMPTY } else { 0 },
                        });
                    }
                    // A tag found whole holds no `<`.
                    self.next = gt + 1;
                }
                _ => self.next = lt + 1,
            }
        }
    }
}

/// The tags found in one block (whose first byte is at absolute offset `base`), looked up in
/// order.
pub struct TagIndex {
    base: u64,
    end: u64,
    marks: Vec<Mark>,
    next: usize,
}

impl TagIndex {
    /// The index of `marks` for the block of `len` bytes at absolute offset `base`.
    pub fn new(base: u64, len: usize, marks: Vec<Mark>) -> Self {
        TagIndex {
            base,
            end: base + len as u64,
            marks,
            next: 0,
        }
    }

    /// Whether nothing at or after `at` can be found here any more.
    pub fn passed(&self, at: u64) -> bool {
        at >= self.end || self.next == self.marks.len()
    }

    /// What was found of a start tag whose `<` is at absolute offset `at`, if it was; entries
    /// before `at` are dropped (look-ups come in increasing order of offset).
    #[inline]
    pub fn take(&mut self, at: u64) -> Option<Scanned> {
        let rel = at.checked_sub(self.base)?;
        if rel >= self.end - self.base {
            return None;
        }
        let rel = rel as u32;
        while let Some(m) = self.marks.get(self.next) {
            if m.at >= rel {
                return (m.at == rel).then_some(Scanned {
                    len: m.len as usize,
                    name: (m.name & !EMPTY) as usize,
                    empty: m.name & EMPTY != 0,
                });
            }
            self.next += 1;
        }
        None
    }
}
