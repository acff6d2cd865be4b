//! The reader under serde_json: a window over `Checked` that serves the streaming parser byte
//! by byte, in the same 64 KiB reads from `Checked` as the `BufReader` it replaces (so every
//! byte check fires at the same point of the parse), and lets a list visitor take whole
//! elements from memory (`Elements`), several times faster. serde_json counts lines only in
//! what it read itself, so `place` puts an error it reports after such a jump back where it is
//! in the file.

use std::cell::RefCell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use crate::validate::ahead::Ahead;
use crate::validate::input::is_ws;
use crate::validate::json::{Elements, Take};

/// What one read from `Checked` asks for (the capacity of the `BufReader` this replaces).
const CHUNK: usize = 64 * 1024;
/// How far ahead of the parser an element is first looked for; an element that is longer is
/// offered again with twice as much, up to `MAX_AHEAD` (past that, the parser reads it).
const AHEAD: usize = 1024 * 1024;
const MAX_AHEAD: usize = 4 * 1024 * 1024;
/// Bytes behind the parser kept before they are dropped from the window.
const KEEP_BEHIND: usize = 1024 * 1024;

/// A line and a column as serde_json counts them: lines from 1, columns from 0 after a newline
/// and the bytes since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LineCol {
    line: usize,
    col: usize,
}

impl LineCol {
    fn advance(&mut self, bytes: &[u8]) {
        match memchr::memrchr(b'\n', bytes) {
            Some(last) => {
                self.line += memchr::memchr_iter(b'\n', bytes).count();
                self.col = bytes.len() - last - 1;
            }
            None => self.col += bytes.len(),
        }
    }
}

/// The last jump over elements: where the parser's own count stood, and where the file was,
/// when the parser read on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Jump {
    parser: LineCol,
    file: LineCol,
}

/// Where serde_json's "line L column C" is in the file, given the last jump.
pub(crate) fn place(jump: Option<Jump>, line: usize, col: usize) -> (usize, usize) {
    match jump {
        None => (line, col),
        Some(j) if line == j.parser.line => (j.file.line, j.file.col + col - j.parser.col),
        Some(j) => (line - j.parser.line + j.file.line, col),
    }
}

pub(crate) struct Lane<'a, 's, 'e, B: BufRead + Send> {
    input: &'a mut Ahead<'s, 'e, B>,
    buf: Vec<u8>,
    /// The parser's next byte in `buf`.
    pos: usize,
    eof: bool,
    /// A read from `Checked` failed: what `Checked` found (and a read error below it) is held
    /// back until the parser gets there, as it would not have read this far yet.
    failed: Option<io::ErrorKind>,
    /// Bytes of `buf` before this are counted in `parser` and `file`.
    counted: usize,
    parser: LineCol,
    file: LineCol,
    jump: Option<Jump>,
}

impl<'a, 's, 'e, B: BufRead + Send> Lane<'a, 's, 'e, B> {
    pub(crate) fn new(input: &'a mut Ahead<'s, 'e, B>) -> Self {
        let start = LineCol { line: 1, col: 0 };
        Lane {
            input,
            buf: Vec::with_capacity(KEEP_BEHIND + MAX_AHEAD + 2 * CHUNK),
            pos: 0,
            eof: false,
            failed: None,
            counted: 0,
            parser: start,
            file: start,
            jump: None,
        }
    }

    pub(crate) fn jump(&self) -> Option<Jump> {
        self.jump
    }

    /// One read from `Checked` appended to the window; false at the end or after a failure.
    fn fill(&mut self) -> bool {
        if self.eof || self.failed.is_some() {
            return false;
        }
        if self.buf.len() + CHUNK > self.buf.capacity() || self.pos > KEEP_BEHIND {
            self.count_to(self.pos);
            self.buf.drain(..self.pos);
            self.counted -= self.pos;
            self.pos = 0;
        }
        loop {
            match self.input.fill_buf() {
                Ok(bytes) => {
                    let n = bytes.len().min(CHUNK);
                    self.buf.extend_from_slice(&bytes[..n]);
                    self.input.consume(n);
                    self.eof = n == 0;
                    return n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.failed = Some(e.kind());
                    self.input.hold_back(true);
                    return false;
                }
            }
        }
    }

    /// Counts the bytes up to `to` (all read by the parser) in both counts.
    fn count_to(&mut self, to: usize) {
        if to > self.counted {
            let bytes = &self.buf[self.counted..to];
            self.parser.advance(bytes);
            self.file.advance(bytes);
            self.counted = to;
        }
    }

    /// The parser's read: from the window, refilled as the `BufReader` was.
    fn read_parser(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if !self.fill() {
                if let Some(kind) = self.failed {
                    // Now the parser has got there: what `Checked` found counts.
                    self.input.hold_back(false);
                    return Err(io::Error::new(kind, "the input could not be read"));
                }
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    /// The window holds at least `want` bytes past the parser, or all there is.
    fn ensure(&mut self, want: usize) {
        while self.buf.len() - self.pos < want && self.fill() {}
    }

    fn next_object(&mut self, take: &mut dyn FnMut(&[u8]) -> Take) -> bool {
        let mut want = AHEAD;
        loop {
            self.ensure(want);
            let more = !self.eof && self.failed.is_none() && want < MAX_AHEAD;
            let bytes = &self.buf[self.pos..];
            let skip = |from: usize| from + bytes[from..].iter().take_while(|b| is_ws(**b)).count();
            // `, {` ahead: anything else is for the parser (a short window: look further).
            let at = |i: usize, what: u8| match bytes.get(i) {
                Some(b) if *b == what => None,
                Some(_) => Some(Take::Refuse),
                None => Some(Take::NeedMore),
            };
            let comma = skip(0);
            let open = skip((comma + 1).min(bytes.len()));
            let taken = match at(comma, b',').or_else(|| at(open, b'{')) {
                Some(no) => no,
                None => take(&bytes[open..]),
            };
            match taken {
                Take::Used(n) => {
                    let end = self.pos + open + n;
                    self.count_to(self.pos);
                    let parser = self.parser;
                    self.file.advance(&self.buf[self.pos..end]);
                    self.jump = Some(Jump {
                        parser,
                        file: self.file,
                    });
                    self.counted = end;
                    self.pos = end;
                    return true;
                }
                Take::NeedMore if more => want *= 2,
                Take::NeedMore | Take::Refuse => return false,
            }
        }
    }
}

/// The lane shared between serde_json (which owns its reader) and the list visitors.
pub(crate) struct Shared<'a, 's, 'e, B: BufRead + Send>(pub Rc<RefCell<Lane<'a, 's, 'e, B>>>);

impl<B: BufRead + Send> Read for Shared<'_, '_, '_, B> {
    /// serde_json asks for one byte at a time: that case is kept short.
    #[inline]
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        {
            let mut lane = self.0.borrow_mut();
            if let ([slot], Some(&b)) = (&mut *out, lane.buf.get(lane.pos)) {
                *slot = b;
                lane.pos += 1;
                return Ok(1);
            }
        }
        self.refill_and_read(out)
    }
}

impl<B: BufRead + Send> Shared<'_, '_, '_, B> {
    #[cold]
    #[inline(never)]
    fn refill_and_read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read_parser(out)
    }
}

impl<B: BufRead + Send> Elements for Shared<'_, '_, '_, B> {
    fn next_object(&self, take: &mut dyn FnMut(&[u8]) -> Take) -> bool {
        self.0.borrow_mut().next_object(take)
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;

    use serde::de::IgnoredAny;

    use super::{place, Jump, LineCol};
    use crate::validate::{validate, Hints, RejectKind, Verdict};

    /// A ZAP report of `sites` sites over several lines each; site `pad` (if any) carries a
    /// long description.
    fn zap(sites: usize, pad: Option<(usize, usize)>) -> String {
        let mut doc = String::from("{\n\"@version\": \"2.16.1\",\n\"site\": [\n");
        for i in 0..sites {
            if i > 0 {
                doc.push_str(",\n");
            }
            let desc = match pad {
                Some((at, len)) if at == i => "y".repeat(len),
                _ => "<p>x</p>".to_string(),
            };
            doc.push_str(&format!(
                "{{\n  \"@name\": \"http://h{i}.example\",\n  \"alerts\": [\n    \
                 {{\"desc\": \"{desc}\", \"n\": {i}}}\n  ]\n}}"
            ));
        }
        doc.push_str("\n]\n}\n");
        doc
    }

    /// Whole, and in reads of 1 and 7 bytes.
    fn verdicts(doc: &[u8]) -> Vec<Verdict> {
        let hints = Hints::default();
        let mut all = vec![validate(doc, &hints).expect("no I/O error")];
        for cap in [1, 7] {
            let reader = BufReader::with_capacity(cap, doc);
            all.push(validate(reader, &hints).expect("no I/O error"));
        }
        all
    }

    /// "line L column C" as serde_json says it for the whole document in memory.
    fn place_of_error(doc: &[u8]) -> String {
        let e = serde_json::from_slice::<IgnoredAny>(doc).expect_err("the document is broken");
        format!("line {} column {}", e.line(), e.column())
    }

    #[test]
    fn an_error_after_sites_read_from_memory_is_placed_where_it_is() {
        let good = zap(40, None);
        assert!(verdicts(good.as_bytes())
            .iter()
            .all(|v| v.as_ref().is_ok_and(|r| r.warnings[0].contains("40 sites"))));
        // A missing comma between sites 30 and 31, after 29 sites read from memory.
        let cut = good.match_indices("},\n{").nth(30).expect("31 sites").0 + 1;
        let broken = format!("{}{}", &good[..cut], &good[cut + 1..]);
        let at = place_of_error(broken.as_bytes());
        for v in verdicts(broken.as_bytes()) {
            let r = v.expect_err("a missing comma");
            assert_eq!(r.kind, RejectKind::Malformed, "{r:?}");
            assert!(
                r.reason.ends_with(&format!("expected `,` or `]` at {at}")),
                "{r:?}"
            );
        }
        // Cut short in site 35.
        let cut = good.match_indices("\"n\": 35").next().expect("site 35").0;
        let e = serde_json::from_slice::<IgnoredAny>(&good.as_bytes()[..cut]).expect_err("cut");
        for v in verdicts(&good.as_bytes()[..cut]) {
            let r = v.expect_err("truncated");
            assert_eq!(r.kind, RejectKind::Incomplete, "{r:?}");
            let at = format!("at line {}, column {}", e.line(), e.column());
            assert!(r.reason.contains(&at), "{r:?} {at}");
        }
    }

    #[test]
    fn a_bad_byte_read_ahead_does_not_hide_an_earlier_syntax_error() {
        // Site 20 holds 300 KiB of text, so the window reads well past site 10, where the syntax
        // error is, before the parser gets there; the invalid UTF-8 sits in site 30.
        let good = zap(40, Some((20, 300 * 1024)));
        let mut bad_utf8 = good.clone().into_bytes();
        let at = good.find("h30.example").expect("site 30");
        bad_utf8[at] = 0xFF;
        for v in verdicts(&bad_utf8) {
            let r = v.expect_err("bad UTF-8");
            assert!(r.reason.starts_with("invalid UTF-8 at line "), "{r:?}");
        }
        let cut = good.find("\"n\": 10").expect("site 10");
        let mut both = bad_utf8.clone();
        both[cut] = b'!';
        let at = place_of_error(&both);
        for v in verdicts(&both) {
            let r = v.expect_err("a syntax error");
            assert_eq!(r.kind, RejectKind::Malformed, "{r:?}");
            assert!(r.reason.starts_with("not valid JSON: "), "{r:?}");
            assert!(r.reason.ends_with(&at), "{r:?} {at}");
        }
    }

    #[test]
    fn line_and_column_are_counted_as_serde_json_counts_them() {
        let mut at = LineCol { line: 1, col: 0 };
        at.advance(b"ab");
        assert_eq!(at, LineCol { line: 1, col: 2 });
        at.advance(b"c\nde\n\nfgh");
        assert_eq!(at, LineCol { line: 4, col: 3 });
        at.advance(b"\n");
        assert_eq!(at, LineCol { line: 5, col: 0 });
    }

    #[test]
    fn an_error_after_a_jump_is_placed_in_the_file() {
        // The parser read 1 line and 10 columns, the jump went over 3 lines to column 7.
        let jump = Some(Jump {
            parser: LineCol { line: 2, col: 10 },
            file: LineCol { line: 5, col: 7 },
        });
        assert_eq!(place(jump, 2, 12), (5, 9), "same line as the jump");
        assert_eq!(place(jump, 4, 3), (7, 3), "lines later");
        assert_eq!(place(None, 4, 3), (4, 3));
    }
}
