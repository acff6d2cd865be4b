//! The streaming XML pull parser. It reads the document once, in blocks, and enforces
//! well-formedness itself: matched tags, one root, nothing but whitespace, comments and
//! processing instructions outside it, the declaration first and only there, checked names,
//! attributes (quoted, separated, not repeated, no `<`) and references, bounded depth; and
//! the hardening policy: no internal DTD subset, no entity other than the five predefined
//! ones, nothing ever expanded. Text, CDATA, comments and processing instructions stream
//! through in pieces whatever their size; only one tag (or the declaration, or the DOCTYPE)
//! must fit in memory, up to an explicit limit. Its user gets a flat stream of `Node`s already
//! known to be well-formed, or one `XmlError`.
//!
//! The input must be UTF-8 and is not checked for it here (the bytes between markup are
//! handed out as they are, with U+FFFD for a bad sequence): the reader underneath checks the
//! encoding, so that every byte is checked once and the first problem in the file wins.
//! `prolog.rs` handles what starts with `<!` or `<?` wherever it stands (the declaration and
//! DOCTYPE before the root, comments, PIs, entering CDATA); `markup.rs` the byte-level syntax
//! checks. A start tag whole in the buffer that the reader's thread scanned already
//! (`Source::scanned_tag`, `index.rs`) is taken as found there, not scanned again; its size is
//! checked against the limit all the same.

mod prolog;

use std::borrow::Cow;
use std::io::{self, BufRead};
use std::ops::Range;

use super::chars::{is_name_start, is_ws, reference, Ref, RefText};
use super::error::{Construct, ErrorKind, Prior, XmlError};
use super::index::Scanned;
use super::markup::{
    char_boundary, doctype_body, name_at, pseudo_attrs, scan_start_tag, Keys, Scan,
};
use super::tag::Tag;

/// Deeper nesting than any scanner writes: beyond it we assume a hostile or broken file.
pub const MAX_DEPTH: usize = 4096;
/// The largest single tag (with all its attributes), XML declaration or DOCTYPE we hold in
/// memory. Nmap puts NSE script output in attributes, which reach tens of kilobytes.
pub const MAX_MARKUP: usize = 8 * 1024 * 1024;
/// The buffer's usual size, and what one refill tries to read.
const BLOCK: usize = 256 * 1024;

/// What the parser reads: any `BufRead`. A reader whose bytes come in owned blocks with room
/// before them can hand a block over whole (`swap_block`) instead of having it copied.
pub trait Source: BufRead {
    /// Hands over the bytes `fill_buf` would return next by swapping buffers, if this reader
    /// can: it moves `buf[keep]` into the room before those bytes, swaps its block with `buf`
    /// (keeping the old buffer to reuse), counts the block consumed, and says where the kept
    /// bytes start now (`buf` ends with the block's last byte). `None`, with nothing changed,
    /// when it cannot; the bytes (or the end, or an error) are then read with `fill_buf`.
    fn swap_block(&mut self, _buf: &mut Vec<u8>, _keep: Range<usize>) -> Option<usize> {
        None
    }

    /// What another thread found scanning the start tag whose `<` is at absolute offset `at`
    /// in the bytes it handed over (`index.rs`), if it found it whole. Asked in increasing
    /// order of `at`, only where the parser stands at a start tag.
    #[inline(always)]
    fn scanned_tag(&mut self, _at: u64) -> Option<Scanned> {
        None
    }
}

impl Source for &[u8] {}

impl<R: io::Read> Source for io::BufReader<R> {}

impl<S: Source + ?Sized> Source for &mut S {
    fn swap_block(&mut self, buf: &mut Vec<u8>, keep: Range<usize>) -> Option<usize> {
        (**self).swap_block(buf, keep)
    }

    #[inline(always)]
    fn scanned_tag(&mut self, at: u64) -> Option<Scanned> {
        (**self).scanned_tag(at)
    }
}

/// One event of the document.
pub enum Node<'b> {
    /// Also produced for `<empty/>`, which is followed by its own `End`.
    Start {
        tag: Tag<'b>,
        depth: usize,
    },
    End {
        depth: usize,
    },
    /// Character data (text, CDATA, or what a reference stands for) inside the element at
    /// `depth`. One element's text may arrive in several pieces; pieces that are only
    /// whitespace are not handed out.
    Text {
        text: Text<'b>,
        depth: usize,
    },
    Eof,
}

/// A piece of text, turned into a string only if someone asks (most text is not looked at).
pub enum Text<'b> {
    Bytes(&'b [u8]),
    Str(&'b str),
}

impl<'b> Text<'b> {
    /// The text (the input was checked as UTF-8 as it was read; a damaged sequence would show
    /// as U+FFFD).
    pub fn to_str(&self) -> Cow<'b, str> {
        match *self {
            Text::Str(s) => Cow::Borrowed(s),
            Text::Bytes(b) => String::from_utf8_lossy(b),
        }
    }
}

/// A construct that spans refills of the buffer, streamed through rather than held.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Content,
    /// Inside a comment, a processing instruction or a CDATA section that started at this
    /// absolute offset.
    Comment(u64),
    Pi(u64),
    Cdata(u64),
}

/// The parser over a reader `R` (pass `&mut reader` to keep the reader).
pub struct XmlPull<R: Source> {
    input: R,
    /// Unread input is `buf[pos..end]`; `buf.len()` is the capacity in use.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Absolute offset of `buf[0]` in the file.
    base: u64,
    eof: bool,
    mode: Mode,
    max_markup: usize,
    /// The open elements' names, end to end; `ends[i]` is where the i-th one ends.
    names: Vec<u8>,
    ends: Vec<usize>,
    attr_keys: Keys,
    pending_end: bool,
    /// Where the document starts: the one place an XML declaration may stand.
    doc_start: u64,
    /// Tokens seen so far, and what the first one was (for "X comes before the declaration").
    tokens: u64,
    first_token: Option<Prior>,
    root_seen: bool,
    root_done: bool,
    doctype_seen: bool,
    /// The declaration said US-ASCII: any other byte is an error.
    ascii_only: bool,
    /// An error found in bytes read ahead, raised once the parser has used every byte before
    /// it (so the first problem in the file wins whatever the read sizes).
    pending: Option<XmlError>,
    /// What the reference in text being handed out stands for.
    lossy: String,
    /// Text is handed out (`Node::Text`); when not, it is checked all the same, and skipped.
    hand_text: bool,
}

impl<R: Source> XmlPull<R> {
    /// A parser for the document `input` holds from its first byte, with the `MAX_MARKUP` and
    /// `MAX_DEPTH` limits.
    pub fn new(input: R) -> Self {
        XmlPull {
            input,
            buf: vec![0; BLOCK],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            mode: Mode::Content,
            max_markup: MAX_MARKUP,
            names: Vec::new(),
            ends: Vec::new(),
            attr_keys: Keys::default(),
            pending_end: false,
            doc_start: 0,
            tokens: 0,
            first_token: None,
            root_seen: false,
            root_done: false,
            doctype_seen: false,
            ascii_only: false,
            pending: None,
            lossy: String::new(),
            hand_text: true,
        }
    }

    /// No tag (with its attributes), declaration or DOCTYPE may be larger than `max` bytes.
    pub fn with_max_markup(mut self, max: usize) -> Self {
        self.max_markup = max;
        self
    }

    /// The input's first byte is byte `base` of the file (whose earlier bytes were read by
    /// someone else), and the document starts at byte `doc_start` (after a byte-order mark,
    /// say): offsets in errors count from the start of the file, and an XML declaration is
    /// allowed only at `doc_start`. Call before the first `next`.
    pub fn with_offsets(mut self, base: u64, doc_start: u64) -> Self {
        self.base = base;
        self.doc_start = doc_start;
        self
    }

    /// Whether text is handed out (it is unless told otherwise): a user that never looks at
    /// text gets no `Node::Text`, and what a reference stands for is not worked out. The text
    /// is checked all the same, so the same errors come at the same places.
    pub fn hand_text(&mut self, hand: bool) {
        self.hand_text = hand;
    }

    /// The reader, e.g. to ask it where a line starts.
    pub fn get_ref(&self) -> &R {
        &self.input
    }

    /// The error for the problem at buffer index `i`.
    fn err(&self, i: usize, kind: ErrorKind) -> XmlError {
        XmlError::new(self.base + i as u64, kind)
    }

    fn depth(&self) -> usize {
        self.ends.len()
    }

    /// The open elements, e.g. `nmaprun/host/ports`, shortened in the middle when deep.
    fn path(&self) -> String {
        let mut parts = Vec::new();
        let mut start = 0;
        for end in &self.ends {
            parts.push(String::from_utf8_lossy(&self.names[start..*end]).into_owned());
            start = *end;
        }
        if parts.len() > 6 {
            let tail = parts.split_off(parts.len() - 5);
            format!("{}/.../{}", parts[0], tail.join("/"))
        } else {
            parts.join("/")
        }
    }

    fn open_name(&self) -> &[u8] {
        let n = self.ends.len();
        let start = if n > 1 { self.ends[n - 2] } else { 0 };
        &self.names[start..self.ends.last().copied().unwrap_or(0)]
    }

    fn pop(&mut self) {
        self.ends.pop();
        let keep = self.ends.last().copied().unwrap_or(0);
        self.names.truncate(keep);
        if self.ends.is_empty() {
            self.root_done = true;
        }
    }

    /// Reads more input behind what is buffered, until at least `want` bytes are unread (or
    /// one block came in). `Ok(false)` once the input is exhausted.
    fn fill(&mut self, want: usize) -> Result<bool, XmlError> {
        if self.eof {
            return match self.pending.take() {
                Some(e) => Err(e),
                None => Ok(false),
            };
        }
        let unread = self.end - self.pos;
        // A reader that can hand its next block over whole spares copying it.
        if let Some(start) = self.input.swap_block(&mut self.buf, self.pos..self.end) {
            self.base = self.base + self.pos as u64 - start as u64;
            let from = start + unread;
            self.pos = start;
            self.end = self.buf.len();
            if self.ascii_only {
                if let Some(i) = self.buf[from..self.end].iter().position(|b| !b.is_ascii()) {
                    self.not_ascii(from + i);
                }
            }
            return Ok(true);
        }
        let need = want.max(unread + BLOCK / 2);
        // A large tag is behind us: give its memory back.
        let shrink = self.buf.len() > 4 * BLOCK && need <= 2 * BLOCK;
        if self.pos > 0
            && (unread == 0
                || shrink
                || self.buf.len() - self.end < BLOCK / 2
                || self.buf.len() - self.pos < need)
        {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.pos = 0;
            self.end = unread;
        }
        if shrink {
            self.buf.truncate(2 * BLOCK);
            self.buf.shrink_to_fit();
        } else if self.buf.len() < need {
            let grown = (2 * self.buf.len()).min(self.max_markup + BLOCK);
            self.buf.resize(need.max(grown), 0);
        }
        let mut got = 0;
        while self.end < self.buf.len() && (self.end - self.pos < want || got < BLOCK / 4) {
            let chunk = match self.input.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A later refill sees the same error again (the readers below remember it).
                Err(_) if got > 0 => break,
                // The reader stopped us (a checking reader may have refused a byte): the user
                // of the parser knows which and words it.
                Err(e) => return Err(self.err(self.end, ErrorKind::Read(e))),
            };
            if chunk.is_empty() {
                self.eof = true;
                break;
            }
            let n = chunk.len().min(self.buf.len() - self.end);
            self.buf[self.end..self.end + n].copy_from_slice(&chunk[..n]);
            self.input.consume(n);
            let from = self.end;
            self.end += n;
            got += n;
            if self.ascii_only {
                if let Some(i) = self.buf[from..self.end].iter().position(|b| !b.is_ascii()) {
                    self.not_ascii(from + i);
                    break;
                }
            }
        }
        Ok(got > 0)
    }

    /// The next event; `Node::Eof` once the document is complete, and again after that.
    #[allow(clippy::should_implement_trait)] // a lending iterator: `Node` borrows the buffer
    #[inline(always)]
    pub fn next(&mut self) -> Result<Node<'_>, XmlError> {
        if self.pending_end {
            self.pending_end = false;
            let depth = self.depth();
            self.pop();
            return Ok(Node::End { depth });
        }
        loop {
            if self.pos == self.end && !self.fill(1)? {
                return self.at_eof();
            }
            match self.mode {
                Mode::Content => {}
                Mode::Comment(start) => {
                    self.skip_comment(start)?;
                    continue;
                }
                Mode::Pi(start) => {
                    self.skip_pi(start)?;
                    continue;
                }
                Mode::Cdata(start) => match self.cdata(start)? {
                    Some((from, to)) if self.hand_text => return Ok(self.text_node(from, to)),
                    _ => continue,
                },
            }
            if self.buf[self.pos] != b'<' {
                // Whitespace between two tags (the newline after most of them): skipped as
                // `text` would skip it, without its search.
                let ws = self.buf[self.pos..self.end]
                    .iter()
                    .take_while(|b| is_ws(**b))
                    .count();
                if ws > 0 && self.buf.get(self.pos + ws) == Some(&b'<') && self.pos + ws < self.end
                {
                    self.pos += ws;
                    self.tokens += 1;
                    self.note_first(Prior::Whitespace);
                    continue;
                }
                match self.text()? {
                    Some((from, to)) if self.hand_text => return Ok(self.text_node(from, to)),
                    _ => continue,
                }
            }
            // Markup: at least the two bytes that say which kind.
            if self.end - self.pos < 2 && !self.more(self.pos, Construct::Markup)? {
                continue;
            }
            self.tokens += 1;
            match self.buf[self.pos + 1] {
                b'/' => {
                    // `</name>` of the open element, the common case, compared in one go.
                    let open = self.open_name();
                    let len = open.len();
                    let at = self.pos + 2;
                    if len > 0
                        && self.buf.get(at + len) == Some(&b'>')
                        && at + len < self.end
                        && &self.buf[at..at + len] == open
                    {
                        self.pos = at + len + 1;
                        let depth = self.depth();
                        self.pop();
                        return Ok(Node::End { depth });
                    }
                    if let Some(depth) = self.end_tag()? {
                        return Ok(Node::End { depth });
                    }
                }
                b'!' => self.bang()?,
                b'?' => self.pi()?,
                b if is_name_start(b) => {
                    if let Some(raw) = self.start_tag()? {
                        return Ok(self.start_node(raw));
                    }
                }
                _ => return Err(self.err(self.pos, ErrorKind::BareLt)),
            }
        }
    }

    /// The token starting at `start` needs more bytes than are buffered: reads them. `false`
    /// means "read, now scan again"; at the end of the input it is the truncation error.
    fn more(&mut self, start: usize, what: Construct) -> Result<bool, XmlError> {
        let have = self.end - start;
        if !self.eof {
            self.within_limit(start, have + 1, what)?;
        }
        let offset = start - self.pos;
        // Double what is held, so a large tag is scanned a few times, not once per block. At
        // the end of the input more than `max_markup` may be held already (the last read can
        // overshoot), so "at least one more byte" wins over the cap (`clamp` would panic).
        let want = (have * 2).min(self.max_markup + 1).max(have + 1);
        if self.fill(offset + want)? {
            return Ok(false);
        }
        let at = self.base + start as u64;
        Err(XmlError::new(at, ErrorKind::Truncated(what)))
    }

    /// A byte that is not ASCII at buffer index `i` of a document declared US-ASCII: the input
    /// ends there, and the error is raised when the parser gets that far.
    fn not_ascii(&mut self, i: usize) {
        self.pending = Some(self.err(i, ErrorKind::NotAscii));
        self.end = i;
        self.eof = true;
    }

    /// Refuses a tag (or declaration, or DOCTYPE) of `len` bytes past the limit, whatever
    /// the buffer happened to hold.
    fn within_limit(&self, start: usize, len: usize, what: Construct) -> Result<(), XmlError> {
        if len <= self.max_markup {
            return Ok(());
        }
        Err(self.err(
            start,
            ErrorKind::TooLarge {
                construct: what,
                limit: self.max_markup,
            },
        ))
    }

    fn at_eof(&mut self) -> Result<Node<'_>, XmlError> {
        let truncated = |at: u64, what| Err(XmlError::new(at, ErrorKind::Truncated(what)));
        match self.mode {
            Mode::Content => {}
            Mode::Comment(at) => return truncated(at, Construct::Comment),
            Mode::Pi(at) => return truncated(at, Construct::ProcessingInstruction),
            Mode::Cdata(at) => return truncated(at, Construct::Cdata),
        }
        if !self.root_seen {
            return Err(self.err(self.end, ErrorKind::NoRoot));
        }
        if self.depth() > 0 {
            let open = self.path();
            return Err(self.err(self.end, ErrorKind::Unclosed { open }));
        }
        Ok(Node::Eof)
    }

    fn note_first(&mut self, what: Prior) {
        if self.tokens == 1 {
            self.first_token = Some(what);
        }
    }

    /// Character data up to the next markup or reference. `Some((from, to))` is a piece to
    /// hand out; `None` means "go round again" (whitespace skipped, or more input read).
    fn text(&mut self) -> Result<Option<(usize, usize)>, XmlError> {
        let start = self.pos;
        if self.buf[start] == b'&' {
            return self.reference();
        }
        let mut i = start;
        let stop = loop {
            match memchr::memchr3(b'<', b'&', b']', &self.buf[i..self.end]) {
                None => break self.end,
                Some(k) => {
                    let at = i + k;
                    if self.buf[at] != b']' {
                        break at;
                    }
                    if at + 2 < self.end {
                        if &self.buf[at + 1..at + 3] == b"]>" {
                            return Err(self.err(at, ErrorKind::CdataEndInText));
                        }
                    } else if !self.eof {
                        // Maybe "]]>" cut by the end of the buffer: decide after a refill.
                        break at;
                    }
                    i = at + 1;
                }
            }
        };
        let stop = if stop == self.end && !self.eof {
            char_boundary(&self.buf[start..self.end]) + start
        } else {
            stop
        };
        if stop == start {
            self.fill(self.end - start + 4)?;
            return Ok(None);
        }
        self.pos = stop;
        let piece = &self.buf[start..stop];
        if piece.iter().all(|b| is_ws(*b)) {
            self.tokens += 1;
            self.note_first(Prior::Whitespace);
            return Ok(None);
        }
        if self.depth() == 0 {
            return Err(self.outside_root(start));
        }
        Ok(Some((start, stop)))
    }

    /// A reference in text, handed out as a piece of its own.
    fn reference(&mut self) -> Result<Option<(usize, usize)>, XmlError> {
        let start = self.pos;
        if self.depth() == 0 {
            return Err(self.outside_root(start));
        }
        match reference(&self.buf[start + 1..self.end]) {
            Ref::Ok { len, text } => {
                self.pos = start + 1 + len;
                if !self.hand_text {
                    return Ok(None);
                }
                self.lossy.clear();
                match text {
                    RefText::Static(s) => self.lossy.push_str(s),
                    RefText::Char(c) => self.lossy.push(c),
                }
                Ok(Some((usize::MAX, 0)))
            }
            Ref::Short => {
                self.more(start, Construct::Reference)?;
                Ok(None)
            }
            Ref::Entity(name) => Err(self.err(start, ErrorKind::Entity { name })),
            Ref::BadChar(name) => Err(self.err(start, ErrorKind::BadCharRef { name })),
            Ref::Bare => Err(self.err(start, ErrorKind::BareAmp)),
        }
    }

    /// The node for a text piece: `buf[from..to]`, or the reference text kept in `lossy` when
    /// `from` is `usize::MAX`.
    fn text_node(&mut self, from: usize, to: usize) -> Node<'_> {
        let depth = self.depth();
        if from == usize::MAX {
            return Node::Text {
                text: Text::Str(&self.lossy),
                depth,
            };
        }
        Node::Text {
            text: Text::Bytes(&self.buf[from..to]),
            depth,
        }
    }

    fn outside_root(&self, at: usize) -> XmlError {
        let after = self.root_done;
        self.err(at, ErrorKind::OutsideRoot { after })
    }

    /// A start tag, whole in the buffer: `Some(range of its content)` once it is read.
    fn start_tag(&mut self) -> Result<Option<(usize, usize, usize)>, XmlError> {
        let start = self.pos;
        // Scanned already by the reader's thread: taken only for a tag whole in the buffer,
        // where this scan would find it whole too, with the same result.
        let found = self
            .input
            .scanned_tag(self.base + start as u64)
            .filter(|t| start + t.len < self.end);
        let (gt, empty, name_len) = match found {
            Some(t) => (start + t.len, t.empty, t.name),
            None => match scan_start_tag(&self.buf[..self.end], start, &mut self.attr_keys) {
                Scan::Done { gt, empty, name } => (gt, empty, name),
                Scan::More => {
                    self.more(start, Construct::Tag)?;
                    return Ok(None);
                }
                Scan::Bad(problem) => {
                    let name = name_at(&self.buf[..self.end], start + 1);
                    let element = String::from_utf8_lossy(name).into_owned();
                    return Err(self.err(start, ErrorKind::BadAttribute { element, problem }));
                }
            },
        };
        // Decided on the tag's length alone, however it was scanned.
        self.within_limit(start, gt + 1 - start, Construct::Tag)?;
        let name = &self.buf[start + 1..start + 1 + name_len];
        if self.root_done {
            let element = String::from_utf8_lossy(name).into_owned();
            return Err(self.err(start, ErrorKind::SecondRoot { element }));
        }
        if self.depth() >= MAX_DEPTH {
            return Err(self.err(start, ErrorKind::TooDeep { limit: MAX_DEPTH }));
        }
        self.names.extend_from_slice(name);
        self.ends.push(self.names.len());
        self.root_seen = true;
        self.pending_end = empty;
        self.pos = gt + 1;
        let to = if empty { gt - 1 } else { gt };
        Ok(Some((start + 1, to, name_len)))
    }

    fn start_node(&self, (from, to, name_len): (usize, usize, usize)) -> Node<'_> {
        Node::Start {
            tag: Tag {
                raw: &self.buf[from..to],
                name_len,
            },
            depth: self.ends.len(),
        }
    }

    /// An end tag: `Some(depth)` of the element it closes once it is read.
    fn end_tag(&mut self) -> Result<Option<usize>, XmlError> {
        let start = self.pos;
        let buf = &self.buf[..self.end];
        let name = name_at(buf, start + 2);
        let mut i = start + 2 + name.len();
        while i < buf.len() && is_ws(buf[i]) {
            i += 1;
        }
        if i >= buf.len() {
            self.more(start, Construct::EndTag)?;
            return Ok(None);
        }
        if buf[i] != b'>' || name.is_empty() {
            return Err(self.err(start, ErrorKind::BadEndTag));
        }
        if self.depth() == 0 {
            let name = String::from_utf8_lossy(name).into_owned();
            return Err(self.err(start, ErrorKind::UnopenedEnd { name }));
        }
        if name != self.open_name() {
            let name = String::from_utf8_lossy(name).into_owned();
            let open = String::from_utf8_lossy(self.open_name()).into_owned();
            let path = self.path();
            return Err(self.err(start, ErrorKind::MismatchedEnd { name, open, path }));
        }
        self.pos = i + 1;
        let depth = self.depth();
        self.pop();
        Ok(Some(depth))
    }

    /// Inside a comment: on to its `-->`.
    fn skip_comment(&mut self, start: u64) -> Result<(), XmlError> {
        let rest = &self.buf[self.pos..self.end];
        match memchr::memmem::find(rest, b"--") {
            Some(k) if k + 2 < rest.len() => {
                if rest[k + 2] != b'>' {
                    let at = self.pos + k;
                    return Err(self.err(at, ErrorKind::DoubleHyphen { comment: start }));
                }
                self.pos += k + 3;
                self.mode = Mode::Content;
                Ok(())
            }
            Some(k) => self.stream_on(self.pos + k, start, Construct::Comment),
            None => {
                let keep = usize::from(rest.last() == Some(&b'-'));
                self.stream_on(self.end - keep, start, Construct::Comment)
            }
        }
    }

    /// Inside a processing instruction: on to its `?>`.
    fn skip_pi(&mut self, start: u64) -> Result<(), XmlError> {
        let rest = &self.buf[self.pos..self.end];
        match memchr::memmem::find(rest, b"?>") {
            Some(k) => {
                self.pos += k + 2;
                self.mode = Mode::Content;
                Ok(())
            }
            None => {
                let keep = usize::from(rest.last() == Some(&b'?'));
                self.stream_on(self.end - keep, start, Construct::ProcessingInstruction)
            }
        }
    }

    /// Inside CDATA: the next piece of its text, or `None` when it ended or more input is
    /// needed.
    fn cdata(&mut self, start: u64) -> Result<Option<(usize, usize)>, XmlError> {
        let from = self.pos;
        let rest = &self.buf[from..self.end];
        let (to, next) = match memchr::memmem::find(rest, b"]]>") {
            Some(k) => {
                self.mode = Mode::Content;
                (from + k, from + k + 3)
            }
            None => {
                let keep = rest
                    .iter()
                    .rev()
                    .take(2)
                    .take_while(|b| **b == b']')
                    .count();
                let to = from + char_boundary(&rest[..rest.len() - keep]);
                if to == from {
                    self.stream_on(from, start, Construct::Cdata)?;
                    return Ok(None);
                }
                (to, to)
            }
        };
        self.pos = next;
        if self.buf[from..to].iter().all(|b| is_ws(*b)) {
            return Ok(None);
        }
        Ok(Some((from, to)))
    }

    /// A streamed construct that started at `start` continues past the buffer: drop what is
    /// before `keep_from` and read on.
    fn stream_on(&mut self, keep_from: usize, start: u64, what: Construct) -> Result<(), XmlError> {
        self.pos = keep_from;
        let held = self.end - keep_from;
        if self.fill(held + 1)? {
            return Ok(());
        }
        Err(XmlError::new(start, ErrorKind::Truncated(what)))
    }
}
