//! Byte plumbing between the caller's reader and the parsers. `Trap` keeps the caller's
//! original `io::Error` (so `validate` can hand it back untouched and the file is retried
//! rather than rejected), `read_prefix` pulls the few bytes the sniffer needs without
//! seeking, and `Checked` sits under every parser to enforce UTF-8, cap the length of a JSON
//! string and remember where lines start so reasons can say "line L, column C".

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};

/// How many bytes after leading whitespace the sniffer gets to look at.
pub(crate) const SNIFF_LEN: usize = 512;
/// Leading whitespace beyond this is dropped instead of kept in the prefix, so a file of
/// nothing but blanks cannot make us buffer it.
const MAX_KEPT_WS: usize = 64 * 1024;
/// How many recent newline offsets we remember for line:column reporting. Errors are always
/// near the read head, so a short history is enough; older positions fall back to byte offsets.
const NEWLINE_HISTORY: usize = 4096;

/// Records the first I/O error of the wrapped reader. The parsers only ever see a copy with
/// the same kind; the original goes back to the caller.
pub(crate) struct Trap<R> {
    inner: R,
    error: Option<io::Error>,
    failed: Option<io::ErrorKind>,
}

impl<R: BufRead> Trap<R> {
    pub(crate) fn new(inner: R) -> Self {
        Trap {
            inner,
            error: None,
            failed: None,
        }
    }

    pub(crate) fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }
}

impl<R: BufRead> Read for Trap<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_through(self, out)
    }
}

impl<R: BufRead> BufRead for Trap<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Some(kind) = self.failed {
            // Never touch a reader that has failed once: the caller decides about retries.
            return Err(io::Error::new(kind, "the file could not be read"));
        }
        match self.inner.fill_buf() {
            Ok(buf) => Ok(buf),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let kind = e.kind();
                self.failed = Some(kind);
                self.error = Some(e);
                Err(io::Error::new(kind, "the file could not be read"))
            }
        }
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt)
    }
}

/// The first bytes of the file, already consumed from the reader.
pub(crate) struct Prefix {
    /// Bytes after the BOM (and after any dropped run of leading whitespace).
    pub bytes: Vec<u8>,
    /// Absolute offset of `bytes[0]` in the file.
    pub base: u64,
    /// Newlines in the dropped leading whitespace, so line numbers stay absolute.
    pub base_newlines: u64,
    /// Where the document starts: 3 after a UTF-8 BOM, else 0 (`base` may be further on,
    /// past dropped whitespace).
    pub doc_start: u64,
}

pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Reads until `SNIFF_LEN` bytes past the leading whitespace are in hand, or EOF.
pub(crate) fn read_prefix<R: BufRead>(r: &mut R) -> io::Result<Prefix> {
    let mut p = Prefix {
        bytes: Vec::with_capacity(SNIFF_LEN + 64),
        base: 0,
        base_newlines: 0,
        doc_start: 0,
    };
    let mut bom_checked = false;
    // Leading whitespace bytes in `p.bytes`, counted as they arrive (recounting on every read
    // would be quadratic when reads are small).
    let mut lead_ws = 0;
    let count_ws =
        |bytes: &[u8], from: usize| from + bytes[from..].iter().take_while(|b| is_ws(**b)).count();
    loop {
        let content_len = p.bytes.len() - lead_ws;
        if content_len >= SNIFF_LEN {
            break;
        }
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        // Never past SNIFF_LEN bytes of content, so the prefix (and what is judged from it) is
        // the same however the reads happen to be cut.
        let take = buf.len().min(SNIFF_LEN - content_len);
        let all_ws = lead_ws == p.bytes.len();
        p.bytes.extend_from_slice(&buf[..take]);
        r.consume(take);
        if all_ws {
            lead_ws = count_ws(&p.bytes, lead_ws);
        }
        if !bom_checked && p.bytes.len() >= 3 {
            bom_checked = true;
            if p.bytes.starts_with(b"\xEF\xBB\xBF") {
                p.bytes.drain(..3);
                p.base = 3;
                p.doc_start = 3;
                lead_ws = count_ws(&p.bytes, 0);
            }
        }
        if p.bytes.len() > MAX_KEPT_WS && lead_ws == p.bytes.len() {
            p.base += p.bytes.len() as u64;
            p.base_newlines += memchr::memchr_iter(b'\n', &p.bytes).count() as u64;
            p.bytes.clear();
            lead_ws = 0;
        }
    }
    if !bom_checked && p.bytes.starts_with(b"\xEF\xBB\xBF") {
        p.bytes.drain(..3);
        p.base = 3;
        p.doc_start = 3;
    }
    Ok(p)
}

impl Stop {
    /// Where the problem is (for a too-long string: where the string starts).
    fn offset(self) -> u64 {
        match self {
            Stop::BadUtf8(o)
            | Stop::BadChar(o, _)
            | Stop::NonCharacter(o)
            | Stop::StringTooLarge(o) => o,
        }
    }
}

/// The index of the first control character XML forbids (below 0x20 but tab, LF, CR). Checks
/// 64 bytes at a time with a branch-free test the compiler turns into vector instructions,
/// and only looks closer at a block that has one.
fn find_control(bytes: &[u8]) -> Option<usize> {
    let bad = |b: u8| b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r';
    let mut chunks = bytes.chunks_exact(64);
    let mut at = 0;
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |acc, &b| acc | bad(b)) {
            return chunk.iter().position(|&b| bad(b)).map(|i| at + i);
        }
        at += 64;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| bad(b))
        .map(|i| at + i)
}

/// The absolute offset of the first U+FFFE or U+FFFF (`EF BF BE`/`EF BF BF`) in `bytes`
/// (at absolute offset `at`), including one that starts in `tail`, the two bytes before.
fn find_noncharacter(tail: [u8; 2], at: u64, bytes: &[u8]) -> Option<u64> {
    let head = &bytes[..bytes.len().min(2)];
    let mut joint = [0u8; 4];
    joint[..2].copy_from_slice(&tail);
    joint[2..2 + head.len()].copy_from_slice(head);
    let joint = &joint[..2 + head.len()];
    for start in 0..2 {
        if let Some(w) = joint.get(start..start + 3) {
            if w[0] == 0xEF && w[1] == 0xBF && w[2] >= 0xBE {
                return Some((at + start as u64).saturating_sub(2));
            }
        }
    }
    for i in memchr::memmem::find_iter(bytes, b"\xEF\xBF") {
        if bytes.get(i + 2).is_some_and(|b| *b >= 0xBE) {
            return Some(at + i as u64);
        }
    }
    None
}

/// Why `Checked` stopped handing out bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Invalid UTF-8 starting at this absolute offset.
    BadUtf8(u64),
    /// A control character XML does not allow (any below U+0020 but tab, LF and CR), at this
    /// absolute offset.
    BadChar(u64, u8),
    /// U+FFFE or U+FFFF, which XML does not allow either, at this absolute offset.
    NonCharacter(u64),
    /// A JSON string grew past the limit (serde_json would buffer it whole); it started here.
    StringTooLarge(u64),
}

/// Where the reader is in JSON strings, so one huge string can be refused before the JSON
/// parser has buffered all of it (it buffers every string a visitor looks at).
#[derive(Debug, Default)]
struct JsonStrings {
    cap: u64,
    in_string: bool,
    escaped: bool,
    start: u64,
}

impl JsonStrings {
    /// Scan `bytes` (at absolute offset `abs`); `Err(start)` when the current string is too long.
    /// Whole 64-byte blocks go through bit masks (one bit per byte, as simdjson finds string
    /// bounds) instead of a search per quote, which costs more than the scan itself when strings
    /// are short; the rest, and any block where that shortcut would differ from the byte rules
    /// (a backslash outside a string, a cap shorter than a block), goes byte by byte.
    fn feed(&mut self, abs: u64, bytes: &[u8]) -> Result<(), u64> {
        let whole = if self.cap >= 64 {
            bytes.len() - bytes.len() % 64
        } else {
            0
        };
        let (blocks, rest) = bytes.split_at(whole);
        let mut at = abs;
        for block in blocks.chunks_exact(64) {
            if !self.feed_block(at, block)? {
                self.feed_bytes(at, block)?;
            }
            at += 64;
        }
        self.feed_bytes(at, rest)?;
        let end = abs + bytes.len() as u64;
        if self.in_string && end - self.start > self.cap {
            return Err(self.start);
        }
        Ok(())
    }

    /// One 64-byte block at `abs` by bit masks. `Ok(false)`, with nothing changed, when the
    /// block has a backslash outside a string: only the byte rules say what that does.
    fn feed_block(&mut self, abs: u64, block: &[u8]) -> Result<bool, u64> {
        let (quotes, backslashes) = block_masks(block);
        if quotes == 0 && backslashes == 0 && !self.escaped {
            return Ok(true);
        }
        let mut carry = u64::from(self.escaped);
        let escaped = escaped_bytes(backslashes, &mut carry);
        let quotes = quotes & !escaped;
        // Bit i: byte i is in a string (an opening quote counts, a closing one does not).
        let mut inside = quotes;
        for shift in [1, 2, 4, 8, 16, 32] {
            inside ^= inside << shift;
        }
        if self.in_string {
            inside = !inside;
        }
        if backslashes & !inside != 0 {
            return Ok(false);
        }
        // Strings opened and closed in the block are shorter than it (and than the cap): only
        // one open before it can be too long, and it closes at the block's first quote.
        if self.in_string && quotes != 0 {
            let close = abs + u64::from(quotes.trailing_zeros());
            if close - self.start > self.cap {
                return Err(self.start);
            }
        }
        self.in_string = inside >> 63 == 1;
        self.escaped = carry == 1;
        if self.in_string && quotes != 0 {
            self.start = abs + u64::from(63 - quotes.leading_zeros());
        }
        Ok(true)
    }

    /// The byte rules: a quote opens or closes a string, a backslash in a string escapes the
    /// next byte; a closing quote past the cap is an error.
    fn feed_bytes(&mut self, abs: u64, bytes: &[u8]) -> Result<(), u64> {
        let mut i = 0;
        while i < bytes.len() {
            if self.escaped {
                self.escaped = false;
                i += 1;
                continue;
            }
            if self.in_string {
                match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                    Some(k) => {
                        self.escaped = bytes[i + k] == b'\\';
                        self.in_string = self.escaped;
                        if !self.in_string && abs + (i + k) as u64 - self.start > self.cap {
                            return Err(self.start);
                        }
                        i += k + 1;
                    }
                    None => i = bytes.len(),
                }
            } else {
                match memchr::memchr(b'"', &bytes[i..]) {
                    Some(k) => {
                        self.in_string = true;
                        self.start = abs + (i + k) as u64;
                        i += k + 1;
                    }
                    None => i = bytes.len(),
                }
            }
        }
        Ok(())
    }
}

/// Bit i set where `block[i]` (64 bytes) is a quote, and where it is a backslash: SSE2 compares
/// and byte masks, 16 bytes at a time (SSE2 is part of every x86-64 CPU).
#[cfg(target_arch = "x86_64")]
fn block_masks(block: &[u8]) -> (u64, u64) {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8, _mm_set_epi64x};
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&block[i..i + 8]);
        i64::from_le_bytes(w)
    };
    let mut quotes = 0u64;
    let mut backslashes = 0u64;
    for lane in 0..4 {
        let (lo, hi) = (word(lane * 16), word(lane * 16 + 8));
        // SAFETY: these intrinsics need SSE2, which every x86-64 CPU has (the target's
        // baseline); they work on values, no pointer is read or written.
        let (q, b) = unsafe {
            let v = _mm_set_epi64x(hi, lo);
            (
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))) as u16,
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8))) as u16,
            )
        };
        quotes |= u64::from(q) << (lane * 16);
        backslashes |= u64::from(b) << (lane * 16);
    }
    (quotes, backslashes)
}

/// Bit i set where `block[i]` (64 bytes) is a quote, and where it is a backslash.
#[cfg(not(target_arch = "x86_64"))]
fn block_masks(block: &[u8]) -> (u64, u64) {
    let mut quotes = 0u64;
    let mut backslashes = 0u64;
    for (i, &b) in block.iter().enumerate().take(64) {
        quotes |= u64::from(b == b'"') << i;
        backslashes |= u64::from(b == b'\\') << i;
    }
    (quotes, backslashes)
}

/// The bytes escaped by a backslash (the second of each pair in a run of backslashes), given
/// whether the block's first byte is escaped (`carry`, updated for the next block): simdjson's
/// branch-free odd-run rule.
fn escaped_bytes(backslashes: u64, carry: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let backslashes = backslashes & !*carry;
    let follows_escape = (backslashes << 1) | *carry;
    let odd_starts = backslashes & !EVEN & !follows_escape;
    let (even_starts, overflow) = odd_starts.overflowing_add(backslashes);
    *carry = u64::from(overflow);
    (EVEN ^ (even_starts << 1)) & follows_escape
}

/// Wraps the parser's input: validates UTF-8 incrementally, tracks newlines and, for JSON,
/// enforces the string length cap (the one place where serde_json would buffer without bound).
pub(crate) struct Checked<B> {
    inner: B,
    base: u64,
    /// Bytes consumed from `inner`.
    consumed: u64,
    /// Leading bytes of `inner`'s current buffer that were already validated.
    checked: usize,
    scan: Scan,
    /// A multi-byte sequence was cut by EOF: only fatal if the document was otherwise accepted.
    pub(crate) truncated_utf8: Option<u64>,
    pub(crate) stop: Option<Stop>,
    /// JSON input: the string-length cap (None for XML).
    json: Option<JsonStrings>,
    /// Invalid UTF-8 found ahead of the reader: the bytes before it are handed out first, so a
    /// problem earlier in the file is reported first whatever the read sizes.
    pending_bad: Option<Stop>,
    /// XML input: refuse the control characters XML 1.0 does not allow.
    xml_chars: bool,
    /// The last two bytes checked, so U+FFFE/U+FFFF cut by a read are still seen.
    tail: [u8; 2],
    /// Lines seen so far, while this reader hands its bytes to the parser itself (`None` once
    /// a reader ahead of the parser has taken them over).
    lines: Option<Lines>,
}

/// UTF-8 state, kept apart from `inner` so it can be updated while the inner buffer is
/// borrowed.
struct Scan {
    carry: [u8; 4],
    carry_len: usize,
    carry_at: u64,
}

/// Where the recent lines start, so an offset near the read head can be shown as "line L,
/// column C". Fed every byte once, in order, as it is handed to the parser: as bytes
/// (`feed`), or as the newlines a reader ahead of the parser found in them (`add`), so the
/// parser's thread does not search its bytes for newlines.
pub(crate) struct Lines {
    /// The newlines of the pieces fed, oldest first: only as many pieces as hold the last
    /// `NEWLINE_HISTORY` newlines (pieces without a newline are not kept).
    pieces: VecDeque<Newlines>,
    /// Newline offsets held in `pieces`.
    kept: usize,
    /// Newlines fed (those of the dropped leading whitespace not included).
    fed: u64,
    newline_total: u64,
    /// Bytes before this absolute offset have been fed.
    fed_to: u64,
}

/// The newlines of one piece of input: how many, and where the last `NEWLINE_HISTORY` of them
/// are (older ones could never be shown as a line start).
pub(crate) struct Newlines {
    /// Absolute offsets, in order.
    at: Vec<u64>,
    count: u64,
    /// The absolute offset just past the piece.
    end: u64,
}

impl Newlines {
    /// The newlines of `bytes`, which start at absolute offset `abs`.
    pub(crate) fn find(abs: u64, bytes: &[u8]) -> Self {
        // From the end, so a piece of nothing but newlines is not held whole; memchr skips the
        // bytes between newlines with SIMD instead of testing each one.
        let mut at: Vec<u64> = memchr::memrchr_iter(b'\n', bytes)
            .take(NEWLINE_HISTORY)
            .map(|i| abs + i as u64)
            .collect();
        let mut count = at.len() as u64;
        if let Some(&first) = at.last().filter(|_| at.len() == NEWLINE_HISTORY) {
            count += memchr::memchr_iter(b'\n', &bytes[..(first - abs) as usize]).count() as u64;
        }
        at.reverse();
        Newlines {
            at,
            count,
            end: abs + bytes.len() as u64,
        }
    }
}

impl<B: BufRead> Checked<B> {
    pub(crate) fn new(inner: B, base: u64, base_newlines: u64) -> Self {
        Checked {
            inner,
            base,
            consumed: 0,
            checked: 0,
            scan: Scan {
                carry: [0; 4],
                carry_len: 0,
                carry_at: 0,
            },
            lines: Some(Lines {
                pieces: VecDeque::new(),
                kept: 0,
                fed: 0,
                newline_total: base_newlines,
                fed_to: base,
            }),
            truncated_utf8: None,
            stop: None,
            pending_bad: None,
            xml_chars: false,
            tail: [0; 2],
            json: None,
        }
    }

    /// Refuse the control characters XML does not allow, even as literal text.
    pub(crate) fn xml_chars(mut self) -> Self {
        self.xml_chars = true;
        self
    }

    /// Refuse JSON strings longer than `cap` bytes.
    pub(crate) fn with_json_string_cap(mut self, cap: u64) -> Self {
        self.json = Some(JsonStrings {
            cap,
            ..JsonStrings::default()
        });
        self
    }

    /// "line L, column C (byte N)" for an absolute offset at or before the read head.
    pub(crate) fn locate(&self, offset: u64) -> String {
        match &self.lines {
            Some(lines) => lines.locate(offset),
            None => format!("byte {offset}"),
        }
    }

    /// The line tracking, for a reader that hands these bytes to the parser from now on.
    pub(crate) fn take_lines(&mut self) -> Option<Lines> {
        self.lines.take()
    }

    /// Gives the line tracking back (after a reader ahead could not take it over).
    pub(crate) fn give_lines(&mut self, lines: Lines) {
        self.lines = Some(lines);
    }

    /// Why this reader stopped, once it has.
    pub(crate) fn stop(&self) -> Option<Stop> {
        self.stop
    }
}

impl Lines {
    /// Notes the newlines of `bytes`, which start at absolute offset `abs` (bytes fed before
    /// are skipped, so a piece may be fed twice).
    pub(crate) fn feed(&mut self, abs: u64, bytes: &[u8]) {
        let skip = self.fed_to.saturating_sub(abs).min(bytes.len() as u64) as usize;
        self.add(Newlines::find(abs + skip as u64, &bytes[skip..]));
    }

    /// Notes the newlines of `bytes` (at absolute offset `abs`), found already as `piece`.
    /// A piece that starts before what was fed (the first chunk read ahead is the rest of a read
    /// the parser had taken in part, inline, whose newlines were all counted then) has its new
    /// part searched again instead, so no newline is counted twice.
    pub(crate) fn add_found(&mut self, abs: u64, bytes: &[u8], piece: Newlines) {
        if abs < self.fed_to {
            self.feed(abs, bytes);
        } else {
            self.add(piece);
        }
    }

    /// Notes the newlines found in the next piece (the bytes from `fed_to` on).
    pub(crate) fn add(&mut self, piece: Newlines) {
        self.fed += piece.count;
        self.newline_total += piece.count;
        self.fed_to = self.fed_to.max(piece.end);
        if piece.at.is_empty() {
            return;
        }
        self.kept += piece.at.len();
        self.pieces.push_back(piece);
        // Drop the oldest piece while the newer ones hold the whole history.
        while let Some(old) = self.pieces.front() {
            if self.kept - old.at.len() < NEWLINE_HISTORY {
                break;
            }
            self.kept -= old.at.len();
            self.pieces.pop_front();
        }
    }

    /// The last `NEWLINE_HISTORY` newlines fed (or all, if fewer), newest first.
    fn history(&self) -> impl Iterator<Item = u64> + '_ {
        self.pieces
            .iter()
            .rev()
            .flat_map(|p| p.at.iter().rev().copied())
            .take(NEWLINE_HISTORY)
    }

    /// "line L, column C (byte N)" for an absolute offset at or before what was fed.
    pub(crate) fn locate(&self, offset: u64) -> String {
        let held = self.fed.min(NEWLINE_HISTORY as u64);
        let after = self.history().take_while(|p| *p >= offset).count() as u64;
        let known_all = self.fed < NEWLINE_HISTORY as u64;
        let before_in_history = held - after;
        if !known_all && before_in_history == 0 {
            return format!("byte {offset}");
        }
        let line = self.newline_total - after + 1;
        let line_start = self
            .history()
            .find(|p| *p < offset)
            .map(|p| p + 1)
            .unwrap_or(0);
        let col = offset.saturating_sub(line_start) + 1;
        format!("line {line}, column {col} (byte {offset})")
    }
}

impl Scan {
    fn feed(&mut self, abs: u64, bytes: &[u8]) -> Result<(), u64> {
        let mut rest = bytes;
        let mut at = abs;
        if self.carry_len > 0 {
            let width = utf8_width(self.carry[0]);
            let take = (width - self.carry_len).min(rest.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&rest[..take]);
            self.carry_len += take;
            rest = &rest[take..];
            at += take as u64;
            if self.carry_len < width {
                // Still incomplete; the cut bytes must at least be continuation bytes.
                if self.carry[1..self.carry_len]
                    .iter()
                    .any(|b| b & 0xC0 != 0x80)
                {
                    return Err(self.carry_at);
                }
                return Ok(());
            }
            if std::str::from_utf8(&self.carry[..width]).is_err() {
                return Err(self.carry_at);
            }
            self.carry_len = 0;
        }
        match simdutf8::compat::from_utf8(rest) {
            Ok(_) => Ok(()),
            Err(e) => {
                let valid = e.valid_up_to();
                match e.error_len() {
                    Some(_) => Err(at + valid as u64),
                    None => {
                        let tail = &rest[valid..];
                        self.carry[..tail.len()].copy_from_slice(tail);
                        self.carry_len = tail.len();
                        self.carry_at = at + valid as u64;
                        Ok(())
                    }
                }
            }
        }
    }
}

fn utf8_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl<B: BufRead> BufRead for Checked<B> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Some(stop) = self.stop {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("input rejected: {stop:?}"),
            ));
        }
        // Validate bytes the first time they are handed out.
        let abs = self.base + self.consumed;
        if let Some(stop) = self.pending_bad.filter(|stop| stop.offset() <= abs) {
            self.stop = Some(stop);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("input rejected: {stop:?}"),
            ));
        }
        let buf = self.inner.fill_buf()?;
        if buf.is_empty() {
            if self.scan.carry_len > 0 && self.truncated_utf8.is_none() {
                self.truncated_utf8 = Some(self.scan.carry_at);
            }
            return Ok(buf);
        }
        if let Some(stop) = self.pending_bad {
            return Ok(&buf[..((stop.offset() - abs) as usize).min(buf.len())]);
        }
        let fresh_from = self.checked.min(buf.len());
        if buf.len() > fresh_from {
            if let Some(lines) = self.lines.as_mut() {
                lines.feed(abs + fresh_from as u64, &buf[fresh_from..]);
            }
            let mut bad = self
                .scan
                .feed(abs + fresh_from as u64, &buf[fresh_from..])
                .err()
                .map(Stop::BadUtf8);
            let mut valid_to = match bad {
                None => buf.len(),
                Some(stop) => {
                    (stop.offset().saturating_sub(abs) as usize).clamp(fresh_from, buf.len())
                }
            };
            if self.xml_chars {
                if let Some(i) = find_control(&buf[fresh_from..valid_to]) {
                    valid_to = fresh_from + i;
                    bad = Some(Stop::BadChar(abs + valid_to as u64, buf[valid_to]));
                }
                let at = abs + fresh_from as u64;
                if let Some(off) = find_noncharacter(self.tail, at, &buf[fresh_from..valid_to]) {
                    valid_to = off.saturating_sub(abs) as usize;
                    bad = Some(Stop::NonCharacter(off));
                }
                if let [.., a, b] = buf[..valid_to] {
                    self.tail = [a, b];
                }
            }
            if let Some(js) = self.json.as_mut() {
                if let Err(start) = js.feed(abs + fresh_from as u64, &buf[fresh_from..valid_to]) {
                    let stop = Stop::StringTooLarge(start);
                    self.stop = Some(stop);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("input rejected: {stop:?}"),
                    ));
                }
            }
            match bad {
                None => self.checked = buf.len(),
                Some(stop) if stop.offset() > abs => {
                    self.pending_bad = Some(stop);
                    self.checked = valid_to;
                    return Ok(&buf[..valid_to]);
                }
                Some(stop) => {
                    self.stop = Some(stop);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("input rejected: {stop:?}"),
                    ));
                }
            }
        }
        Ok(buf)
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.consumed += amt as u64;
        self.checked = self.checked.saturating_sub(amt);
    }
}

impl<B: BufRead> Read for Checked<B> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_through(self, out)
    }
}

/// `Read` for a `BufRead` layer: copy from its buffer, so every byte passes its checks.
pub(crate) fn read_through<B: BufRead>(b: &mut B, out: &mut [u8]) -> io::Result<usize> {
    let n = {
        let buf = b.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        n
    };
    b.consume(n);
    Ok(n)
}

#[cfg(test)]
mod json_string_tests {
    use super::JsonStrings;

    fn longest_ok(doc: &[u8], cap: u64, chunk: usize) -> Result<(), u64> {
        let mut js = JsonStrings {
            cap,
            ..JsonStrings::default()
        };
        for (i, c) in doc.chunks(chunk).enumerate() {
            js.feed((i * chunk) as u64, c)?;
        }
        Ok(())
    }

    /// The byte rules alone, as `feed` applied them before it took 64-byte blocks.
    fn by_bytes(js: &mut JsonStrings, abs: u64, bytes: &[u8]) -> Result<(), u64> {
        js.feed_bytes(abs, bytes)?;
        if js.in_string && abs + bytes.len() as u64 - js.start > js.cap {
            return Err(js.start);
        }
        Ok(())
    }

    #[test]
    fn blocks_find_the_same_strings_as_the_byte_rules() {
        // Dense quotes and runs of backslashes, inside strings and out (a backslash outside a
        // string sends its block down the byte path), cut into reads of every kind.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..400 {
            let len = 64 + (next() % 3000) as usize;
            let alphabet: &[u8] = match round % 3 {
                0 => b"\"\\\\ab",
                1 => b"\"\\abcdefghijklmnopqrstuvwxyz  ",
                _ => b"\"abcdefghijklmnopqrstuvwxyz01234567890123456789",
            };
            let doc: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let cap = [64, 100, 200, 1000][round % 4];
            let mut fast = JsonStrings {
                cap,
                ..JsonStrings::default()
            };
            let mut slow = JsonStrings {
                cap,
                ..JsonStrings::default()
            };
            let mut at = 0;
            while at < doc.len() {
                let n = (1 + next() % 300) as usize;
                let piece = &doc[at..doc.len().min(at + n)];
                let (a, b) = (
                    fast.feed(at as u64, piece),
                    by_bytes(&mut slow, at as u64, piece),
                );
                assert_eq!(a, b, "round {round} at {at}");
                if a.is_err() {
                    break;
                }
                assert_eq!(
                    (fast.in_string, fast.escaped),
                    (slow.in_string, slow.escaped),
                    "round {round} at {at}"
                );
                if fast.in_string {
                    assert_eq!(fast.start, slow.start, "round {round} at {at}");
                }
                at += piece.len();
            }
        }
    }

    #[test]
    fn a_string_past_the_cap_is_caught_wherever_reads_are_cut() {
        let long = br#"{"a": "0123456789abcdefghij", "b": 1}"#;
        let short = br#"{"a": "0123", "b": "x\"y\\", "c": "\\\"zz"}"#;
        for chunk in [1, 2, 3, 5, 64] {
            assert_eq!(longest_ok(long, 10, chunk), Err(6), "chunk {chunk}");
            assert_eq!(
                longest_ok(short, 10, chunk),
                Ok(()),
                "escaped quotes end nothing: chunk {chunk}"
            );
        }
    }
}

#[cfg(test)]
mod lines_tests {
    use super::{Lines, Newlines, NEWLINE_HISTORY};
    use std::collections::VecDeque;

    /// What `locate` says, worked out from the whole text: the line and column, or the bare
    /// offset when the line's start is older than the last `NEWLINE_HISTORY` newlines.
    fn expected(text: &[u8], fed_to: usize, base_newlines: u64, offset: usize) -> String {
        let newlines: Vec<usize> = (0..fed_to).filter(|i| text[*i] == b'\n').collect();
        let before = newlines.iter().filter(|p| **p < offset).count();
        let history = newlines.len().min(NEWLINE_HISTORY);
        let in_history = before.saturating_sub(newlines.len() - history);
        if newlines.len() >= NEWLINE_HISTORY && in_history == 0 {
            return format!("byte {offset}");
        }
        let start = if before > 0 {
            newlines[before - 1] + 1
        } else {
            0
        };
        let line = base_newlines + before as u64 + 1;
        format!("line {line}, column {} (byte {offset})", offset - start + 1)
    }

    #[test]
    fn newlines_found_ahead_locate_as_bytes_fed_do() {
        // Runs of short and long lines, and pieces holding more newlines than the history.
        let mut seed = 0x9e37_79b9_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut text = Vec::new();
        while text.len() < 200_000 {
            let (lines, longest) = if next(2) == 0 { (20, 300) } else { (20_000, 3) };
            for _ in 0..lines {
                text.extend(std::iter::repeat_n(b'a', next(longest) as usize));
                text.push(b'\n');
            }
        }
        let fresh = || Lines {
            pieces: VecDeque::new(),
            kept: 0,
            fed: 0,
            newline_total: 7,
            fed_to: 0,
        };
        let (mut fed, mut added) = (fresh(), fresh());
        let mut at = 0;
        while at < text.len() {
            let most = if next(3) == 0 { 40_000 } else { 900 };
            let n = (1 + next(most)) as usize;
            let end = text.len().min(at + n);
            // Fed twice in part, as `Checked` may: what was fed before is skipped.
            fed.feed(
                at.saturating_sub(5) as u64,
                &text[at.saturating_sub(5)..end],
            );
            added.add(Newlines::find(at as u64, &text[at..end]));
            at = end;
            for _ in 0..5 {
                let offset = at - next(at.min(60_000) as u64 + 1) as usize;
                let want = expected(&text, at, 7, offset);
                assert_eq!(fed.locate(offset as u64), want, "fed, to {at}");
                assert_eq!(added.locate(offset as u64), want, "added, to {at}");
            }
        }
    }
}
