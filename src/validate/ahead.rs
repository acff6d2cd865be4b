//! Reading ahead of the parser on a second core: once a file has proved large, a scoped thread
//! takes over the checking reader (`Checked`: the read itself, UTF-8, control characters, the
//! JSON string cap) and hands its checked bytes to the parser in chunks over a bounded
//! channel, so reading and checking overlap parsing; the XML parser takes a chunk whole as its
//! buffer rather than copying it (`Source`). Small files never start a thread.
//!
//! The parser sees exactly what it would see from `Checked` itself: the same bytes in the
//! same pieces (each of the caller's reads whole), then the same end or error at the same
//! offset. What the reader found is only taken into account when the parser got that far
//! (`Finished::reached_end`): a parser that stopped on its own, or a reader above that read
//! ahead of its parser, holds it back (`hold_back`), so the first problem in the file wins
//! however far ahead anything read. The thread finds the newlines of each piece; they are
//! counted here as the piece is handed over, at the places reading inline counts them, so
//! "line L, column C" is the same.
//!
//! For XML (`scan_tags`), the thread also scans start tags ahead when it has time to spare:
//! while the channel is full (the parser has chunks waiting), it indexes the tags whole in the
//! chunk in hand a step at a time, offering the chunk again after each step, and sends the
//! index with it; a parser that is waiting gets its chunk at once. The parser looks a tag up
//! (`Source::scanned_tag`) instead of scanning it; what it finds is its own scan's result
//! (`xml/index.rs`), so no verdict changes.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::ops::Range;
use std::sync::mpsc::{self, TrySendError};
use std::thread::{Scope, ScopedJoinHandle};

use super::input::{read_through, Checked, Lines, Newlines, Stop};
use super::xml::{Mark, Prescan, Scanned, Source, TagIndex};

/// Bytes read inline before the thread is started: a thread costs more than it saves on the
/// small reports that are most files.
pub(crate) const INLINE_LIMIT: u64 = 4 * 1024 * 1024;
/// How many chunks (reads of the caller's reader, 256 KiB in the agent) may wait: enough to
/// ride out a slow read, few enough to keep memory flat.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Room left before the bytes of each chunk, so the parser can take the chunk as its buffer
/// with the unread end of its old one (a tag cut by the chunk's start) moved in front,
/// instead of copying the chunk (`Source::swap_block`). The part of a chunk already consumed
/// is room too.
const ROOM: usize = 8 * 1024;
/// Smaller chunks (short reads) are copied: taking them whole would leave the parser scanning
/// a long tag again after every few bytes.
const SWAP_AT_LEAST: usize = 2 * ROOM;
/// While the parser has chunks waiting, the thread scans the start tags of the next one in
/// steps of this many bytes, offering the chunk again after each.
const PRESCAN_STEP: usize = 32 * 1024;
/// The tag indexes kept for chunks handed over: the parser holds at most a few chunks' bytes
/// unread (and an index dropped early only means scanning those tags itself). With the cap on
/// marks per chunk (`xml::index`), the indexes of a read take at most 13 x 96 KiB for the
/// agent's 256 KiB reads (eight here, four with chunks waiting, one being made), whatever the
/// input.
const INDEXES_KEPT: usize = 8;

/// When the thread scans the start tags of a chunk before handing it over.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum TagScan {
    /// Never (JSON, or XML read inline).
    Off,
    /// While the parser has enough to do: the channel is full.
    WhenAhead,
    /// Tests: every chunk whole; or every chunk, indexing only every other tag found.
    #[cfg(test)]
    All,
    #[cfg(test)]
    EveryOther,
}

#[cfg(test)]
thread_local! {
    /// Tests: how XML read ahead on this thread has its tags scanned (`WhenAhead` unless set).
    pub(crate) static TAG_SCAN: std::cell::Cell<TagScan> =
        const { std::cell::Cell::new(TagScan::WhenAhead) };
    /// Tests: how many start tags the parser on this thread took from an index.
    pub(crate) static TAGS_TAKEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What the thread hands over: checked bytes, their newlines and the start tags found whole
/// in them, or where the input ends (`None`) or why it stops (the error the checking reader
/// returned at that point).
enum Msg {
    Data(Vec<u8>, Newlines, Vec<Mark>),
    End(Option<io::Error>),
}

enum State<'scope, B: BufRead + Send + 'scope> {
    /// Reading on the parser's thread, through `Checked` as it is.
    Inline(Checked<B>),
    /// The thread reads; the parser takes chunks (their bytes start at `ROOM`). The thread gives `Checked` back when it
    /// ends (`None` only if it never got it).
    Ahead {
        chunks: mpsc::Receiver<Msg>,
        spare: mpsc::SyncSender<Vec<u8>>,
        thread: ScopedJoinHandle<'scope, Option<Checked<B>>>,
    },
}

/// The parser's reader: `Checked` inline, then the chunks of the thread ahead.
pub(crate) struct Ahead<'scope, 'env, B: BufRead + Send + 'scope> {
    scope: &'scope Scope<'scope, 'env>,
    state: State<'scope, B>,
    chunk: Vec<u8>,
    pos: usize,
    /// Absolute offset of the next byte the thread will hand over.
    received_to: u64,
    /// Bytes consumed inline; the thread starts past `inline_limit`.
    inline_consumed: u64,
    inline_limit: u64,
    /// No thread could be started: read inline to the end.
    inline_only: bool,
    /// The reader above this one read ahead of its parser into where the input ends or fails:
    /// that is not where the parser stopped (yet).
    held_back: bool,
    /// The thread's last message, once it came: the end, or the error (kind and words, handed
    /// out again on every later read, as `Checked` does).
    end: Option<Option<(io::ErrorKind, String)>>,
    lines: Option<Lines>,
    /// How the thread is to scan start tags ahead, and the indexes of the chunks handed over
    /// whose tags the parser may not have reached yet, oldest first.
    tag_scan: TagScan,
    indexes: VecDeque<TagIndex>,
}

/// What the reader found, as far as the parser read.
pub(crate) struct Finished {
    /// The parser read up to the end of the input or to the reader's error, so what the
    /// reader found is where the parser stopped. When false, the parser stopped first and
    /// whatever the reader found lies beyond (and is not reported).
    pub reached_end: bool,
    stop: Option<Stop>,
    truncated_utf8: Option<u64>,
    lines: Option<Lines>,
}

impl Finished {
    /// "line L, column C (byte N)" for an absolute offset the parser has read.
    pub(crate) fn locate(&self, offset: u64) -> String {
        match &self.lines {
            Some(lines) => lines.locate(offset),
            None => format!("byte {offset}"),
        }
    }

    /// Why the reader stopped, if the parser got there.
    pub(crate) fn stop(&self) -> Option<Stop> {
        self.stop.filter(|_| self.reached_end)
    }

    /// Where a character is cut by the end of the input, if the parser got there.
    pub(crate) fn truncated_utf8(&self) -> Option<u64> {
        self.truncated_utf8.filter(|_| self.reached_end)
    }
}

impl<'scope, 'env, B: BufRead + Send + 'scope> Ahead<'scope, 'env, B> {
    /// Reads `checked` (whose first byte is at absolute offset `base`), inline for the first
    /// `inline_limit` bytes.
    pub(crate) fn new(
        scope: &'scope Scope<'scope, 'env>,
        checked: Checked<B>,
        base: u64,
        inline_limit: u64,
    ) -> Self {
        Ahead {
            scope,
            state: State::Inline(checked),
            chunk: Vec::new(),
            pos: 0,
            received_to: base,
            inline_consumed: 0,
            inline_limit,
            inline_only: false,
            held_back: false,
            end: None,
            lines: None,
            tag_scan: TagScan::Off,
            indexes: VecDeque::new(),
        }
    }

    /// XML: the thread scans start tags ahead when the parser has enough to do
    /// (`Source::scanned_tag`).
    pub(crate) fn scan_tags(mut self) -> Self {
        self.tag_scan = TagScan::WhenAhead;
        #[cfg(test)]
        {
            self.tag_scan = TAG_SCAN.with(|t| t.get());
        }
        self
    }

    /// "line L, column C (byte N)" for an absolute offset at or before the read head.
    pub(crate) fn locate(&self, offset: u64) -> String {
        match (&self.state, &self.lines) {
            (State::Inline(checked), _) => checked.locate(offset),
            (_, Some(lines)) => lines.locate(offset),
            _ => format!("byte {offset}"),
        }
    }

    /// Says whether the end or error this reader handed out was read ahead of the parser
    /// (`true`) or reached by it (`false`): a reader above that reads ahead of its own parser
    /// holds its findings back until the parser gets there.
    pub(crate) fn hold_back(&mut self, held: bool) {
        self.held_back = held;
    }

    /// Stops the thread (it ends at its next hand-over) and says how far the parser read.
    pub(crate) fn finish(self) -> Finished {
        match self.state {
            // Inline, the parser's reads are the reader's: whatever it found, the parser was
            // there.
            State::Inline(mut checked) => Finished {
                reached_end: !self.held_back,
                stop: checked.stop(),
                truncated_utf8: checked.truncated_utf8,
                lines: checked.take_lines(),
            },
            State::Ahead {
                chunks,
                spare,
                thread,
            } => {
                drop(chunks);
                drop(spare);
                let checked = match thread.join() {
                    Ok(checked) => checked,
                    // The thread only moves bytes; a panic there is a bug to surface, not a
                    // verdict to guess.
                    Err(p) => std::panic::resume_unwind(p),
                };
                Finished {
                    reached_end: self.end.is_some() && !self.held_back,
                    stop: checked.as_ref().and_then(Checked::stop),
                    truncated_utf8: checked.and_then(|c| c.truncated_utf8),
                    lines: self.lines,
                }
            }
        }
    }

    /// Hands the checking reader to a thread that reads ahead from now on. If no thread can
    /// be started, reading goes on inline.
    fn start_thread(&mut self) {
        let (give, take) = mpsc::sync_channel::<Checked<B>>(1);
        let (tx, chunks) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
        let (spare, spares) = mpsc::sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT + 1);
        let at = self.received_to;
        let tag_scan = self.tag_scan;
        let started = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn_scoped(self.scope, move || {
                let mut checked = take.recv().ok()?;
                read_ahead(&mut checked, at, &tx, &spares, tag_scan);
                Some(checked)
            });
        let Ok(thread) = started else {
            self.inline_only = true;
            return;
        };
        let placeholder = State::Ahead {
            chunks,
            spare,
            thread,
        };
        let State::Inline(mut checked) = std::mem::replace(&mut self.state, placeholder) else {
            return;
        };
        let lines = checked.take_lines();
        if let Err(mpsc::SendError(mut checked)) = give.send(checked) {
            // The thread is gone already: go on inline, with the lines where they were.
            if let Some(lines) = lines {
                checked.give_lines(lines);
            }
            self.state = State::Inline(checked);
            self.inline_only = true;
            return;
        }
        self.lines = lines;
    }

    fn fill_inline(&mut self) -> io::Result<&[u8]> {
        match &mut self.state {
            State::Inline(checked) => checked.fill_buf(),
            State::Ahead { .. } => Ok(&[]),
        }
    }

    fn end_error(&self) -> Option<io::Error> {
        match &self.end {
            Some(Some((kind, words))) => Some(io::Error::new(*kind, words.clone())),
            _ => None,
        }
    }
}

/// The thread: chunks of checked bytes (the first at absolute offset `at`) until the end, an
/// error, or the parser hangs up. Each chunk is one read of `Checked`, whole: the parser then
/// gets its bytes in the same pieces as reading inline, so lines are counted to the same
/// places and every "line L, column C" is the same.
fn read_ahead<B: BufRead>(
    checked: &mut Checked<B>,
    mut at: u64,
    chunks: &mpsc::SyncSender<Msg>,
    spares: &mpsc::Receiver<Vec<u8>>,
    tag_scan: TagScan,
) {
    let mut prescan = Prescan::default();
    #[cfg(test)]
    {
        prescan.every_other = tag_scan == TagScan::EveryOther;
    }
    loop {
        let msg = match checked.fill_buf() {
            Ok([]) => Msg::End(None),
            Ok(buf) => {
                // A buffer the parser grew for a large tag is not kept.
                let mut chunk = spares
                    .try_recv()
                    .ok()
                    .filter(|c| c.capacity() <= 4 * (ROOM + buf.len()))
                    .unwrap_or_default();
                // The room's bytes are overwritten before they are read: no need to clear them.
                if chunk.len() >= ROOM {
                    chunk.truncate(ROOM);
                } else {
                    chunk.clear();
                    chunk.resize(ROOM, 0);
                }
                chunk.extend_from_slice(buf);
                let n = buf.len();
                let newlines = Newlines::find(at, buf);
                checked.consume(n);
                at += n as u64;
                Msg::Data(chunk, newlines, Vec::new())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Msg::End(Some(e)),
        };
        let last = matches!(msg, Msg::End(_));
        if hand_over(chunks, msg, tag_scan, &mut prescan).is_err() || last {
            return;
        }
    }
}

/// Sends `msg`; while the channel is full (the parser has chunks waiting), scans the start
/// tags of a chunk's bytes a step at a time first. `Err` once the parser hung up.
fn hand_over(
    chunks: &mpsc::SyncSender<Msg>,
    mut msg: Msg,
    tag_scan: TagScan,
    prescan: &mut Prescan,
) -> Result<(), ()> {
    prescan.reset();
    let step = match tag_scan {
        TagScan::Off => return chunks.send(msg).map_err(drop),
        TagScan::WhenAhead => PRESCAN_STEP,
        #[cfg(test)]
        TagScan::All | TagScan::EveryOther => usize::MAX,
    };
    if step == usize::MAX {
        if let Msg::Data(chunk, _, marks) = &mut msg {
            prescan.step(&chunk[ROOM..], step, marks);
        }
    }
    loop {
        msg = match chunks.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(_)) => return Err(()),
            Err(TrySendError::Full(msg)) => msg,
        };
        match &mut msg {
            Msg::Data(chunk, _, marks) if !prescan.done(&chunk[ROOM..]) => {
                prescan.step(&chunk[ROOM..], step, marks);
            }
            _ => return chunks.send(msg).map_err(drop),
        }
    }
}

impl<'scope, 'env, B: BufRead + Send + 'scope> BufRead for Ahead<'scope, 'env, B> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if matches!(self.state, State::Inline(_)) {
            if self.inline_consumed >= self.inline_limit && !self.inline_only {
                self.start_thread();
            }
            if matches!(self.state, State::Inline(_)) {
                return self.fill_inline();
            }
        }
        while self.pos == self.chunk.len() {
            if let Some(e) = self.end_error() {
                return Err(e);
            }
            if self.end.is_some() {
                return Ok(&[]);
            }
            let State::Ahead { chunks, spare, .. } = &self.state else {
                return Ok(&[]);
            };
            match chunks.recv() {
                Ok(Msg::Data(next, newlines, marks)) => {
                    let old = std::mem::replace(&mut self.chunk, next);
                    let _ = spare.try_send(old);
                    self.pos = ROOM;
                    if !marks.is_empty() {
                        if self.indexes.len() == INDEXES_KEPT {
                            self.indexes.pop_front();
                        }
                        let len = self.chunk.len() - ROOM;
                        self.indexes
                            .push_back(TagIndex::new(self.received_to, len, marks));
                    }
                    if let Some(lines) = self.lines.as_mut() {
                        lines.add_found(self.received_to, &self.chunk[ROOM..], newlines);
                    }
                    self.received_to += (self.chunk.len() - ROOM) as u64;
                }
                Ok(Msg::End(e)) => {
                    self.end = Some(e.map(|e| (e.kind(), e.to_string())));
                }
                Err(_) => return Err(io::Error::other("the reading thread stopped")),
            }
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        match &mut self.state {
            State::Inline(checked) => {
                checked.consume(amt);
                self.inline_consumed += amt as u64;
                self.received_to += amt as u64;
            }
            _ => self.pos = (self.pos + amt).min(self.chunk.len()),
        }
    }
}

impl<'scope, 'env, B: BufRead + Send + 'scope> Source for Ahead<'scope, 'env, B> {
    /// From the indexes of the chunks handed over; those the parser has passed are dropped.
    #[inline]
    fn scanned_tag(&mut self, at: u64) -> Option<Scanned> {
        while let Some(index) = self.indexes.front_mut() {
            if !index.passed(at) {
                let found = index.take(at);
                #[cfg(test)]
                TAGS_TAKEN.with(|n| n.set(n.get() + u64::from(found.is_some())));
                return found;
            }
            self.indexes.pop_front();
        }
        None
    }

    /// A whole chunk of the thread's, once it reads ahead: the parser's buffer comes back as a
    /// spare for the thread.
    fn swap_block(&mut self, buf: &mut Vec<u8>, keep: Range<usize>) -> Option<usize> {
        if !matches!(self.state, State::Ahead { .. }) {
            return None;
        }
        // The end or an error: `fill_buf` says it again when the parser asks.
        if self.fill_buf().ok()?.is_empty() || self.chunk.len() - ROOM < SWAP_AT_LEAST {
            return None;
        }
        // What was consumed of the chunk is room too.
        let start = self.pos.checked_sub(keep.len())?;
        // The chunk's first byte must lie at or after the file's (the parser's offsets are
        // counted from there): not so only for a thread started near the start of a file.
        let at_pos = self.received_to - (self.chunk.len() - self.pos) as u64;
        if at_pos < self.pos as u64 {
            return None;
        }
        self.chunk[start..self.pos].copy_from_slice(&buf[keep]);
        std::mem::swap(&mut self.chunk, buf);
        // All of the chunk is consumed: the next read takes the next one (and hands this
        // buffer to the thread).
        self.chunk.clear();
        self.pos = 0;
        Some(start)
    }
}

impl<'scope, 'env, B: BufRead + Send + 'scope> Read for Ahead<'scope, 'env, B> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_through(self, out)
    }
}
