//! The streaming XML pull parser under the XML formats. It reads the document once, in
//! blocks, and enforces well-formedness itself: matched tags, one root, nothing but
//! whitespace, comments and processing instructions outside it, the declaration first and
//! only there, checked names, attributes (quoted, separated, not repeated, no `<`) and
//! references, bounded depth; and the hardening policy: no internal DTD subset, no entity
//! other than the five predefined ones, nothing ever expanded. Text, CDATA, comments and
//! processing instructions stream through in pieces whatever their size; only one tag (or the
//! declaration, or the DOCTYPE) must fit in memory, up to an explicit limit. The format
//! checkers get a flat stream of `Node`s already known to be well-formed.

use std::borrow::Cow;
use std::io::{self, BufRead};

use super::chars::{is_name, is_name_start, is_value_stop, is_ws, reference, Ref, RefText};
use super::tag::Tag;
use crate::validate::input::Checked;
use crate::validate::{reject, Format, RejectKind, Rejection};

/// Deeper nesting than any scanner writes: beyond it we assume a hostile or broken file.
pub(crate) const MAX_DEPTH: usize = 4096;
/// The largest single tag (with all its attributes), XML declaration or DOCTYPE we hold in
/// memory. Nmap puts NSE script output in attributes, which reach tens of kilobytes.
pub(crate) const MAX_MARKUP: usize = 8 * 1024 * 1024;
/// The buffer's usual size, and what one refill tries to read.
const BLOCK: usize = 256 * 1024;
/// More attributes than this on one tag are checked for repeats with a hash set.
const FEW_ATTRS: usize = 16;

pub(crate) enum Node<'b> {
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
        text: Cow<'b, str>,
        depth: usize,
    },
    Eof,
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

/// The outcome of scanning a tag that must be whole in the buffer.
enum Scan {
    /// The tag ends with the `>` at this index; `empty` for `/>`.
    Done { gt: usize, empty: bool },
    /// The buffer ends first.
    More,
    /// Not well-formed: the kind and what is wrong.
    Bad(RejectKind, String),
}

pub(crate) struct XmlPull<'c, B: BufRead> {
    input: &'c mut Checked<B>,
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
    attr_keys: Vec<Key>,
    pending_end: bool,
    /// Tokens seen so far, and what the first one was (for "X comes before the declaration").
    tokens: u64,
    first_token: Option<&'static str>,
    root_seen: bool,
    root_done: bool,
    doctype_seen: bool,
    /// The declaration said US-ASCII: any other byte is an error.
    ascii_only: bool,
    /// An error found in bytes read ahead, raised once the parser has used every byte before
    /// it (so the first problem in the file wins whatever the read sizes).
    pending: Option<Rejection>,
    /// What the reference in text being handed out stands for.
    lossy: String,
    pub(crate) format: Format,
}

impl<'c, B: BufRead> XmlPull<'c, B> {
    pub(crate) fn new(input: &'c mut Checked<B>, max_markup: usize) -> Self {
        let base = input.base();
        XmlPull {
            input,
            buf: vec![0; BLOCK],
            pos: 0,
            end: 0,
            base,
            eof: false,
            mode: Mode::Content,
            max_markup,
            names: Vec::new(),
            ends: Vec::new(),
            attr_keys: Vec::new(),
            pending_end: false,
            tokens: 0,
            first_token: None,
            root_seen: false,
            root_done: false,
            doctype_seen: false,
            ascii_only: false,
            pending: None,
            lossy: String::new(),
            format: Format::Xml,
        }
    }

    /// "line L, column C (byte N)" for buffer index `i`.
    fn locate(&self, i: usize) -> String {
        self.input.locate(self.base + i as u64)
    }

    fn locate_abs(&self, abs: u64) -> String {
        self.input.locate(abs)
    }

    fn err(&self, kind: RejectKind, reason: String) -> Rejection {
        reject(self.format, kind, reason)
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
    fn fill(&mut self, want: usize) -> Result<bool, Rejection> {
        if self.eof {
            return match self.pending.take() {
                Some(e) => Err(e),
                None => Ok(false),
            };
        }
        let unread = self.end - self.pos;
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
                // `Checked` or the caller's reader stopped us; `validate` words the verdict.
                Err(e) => return Err(self.err(RejectKind::Malformed, format!("read failed: {e}"))),
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

    pub(crate) fn next(&mut self) -> Result<Node<'_>, Rejection> {
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
                    Some((from, to)) => return Ok(self.text_node(from, to)),
                    None => continue,
                },
            }
            if self.buf[self.pos] != b'<' {
                match self.text()? {
                    Some((from, to)) => return Ok(self.text_node(from, to)),
                    None => continue,
                }
            }
            // Markup: at least the two bytes that say which kind.
            if self.end - self.pos < 2 && !self.more(self.pos, "markup")? {
                continue;
            }
            self.tokens += 1;
            match self.buf[self.pos + 1] {
                b'/' => {
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
                _ => {
                    return Err(self.err(
                        RejectKind::Malformed,
                        format!(
                            "not well-formed XML at {}: '<' is not followed by a name (a bare '<' \
                             in text must be written &lt;)",
                            self.locate(self.pos)
                        ),
                    ))
                }
            }
        }
    }

    /// The token starting at `start` needs more bytes than are buffered: reads them. `false`
    /// means "read, now scan again"; at the end of the input it is the truncation error.
    fn more(&mut self, start: usize, what: &str) -> Result<bool, Rejection> {
        let have = self.end - start;
        if !self.eof {
            self.within_limit(start, have + 1, what)?;
        }
        let offset = start - self.pos;
        // Double what is held, so a large tag is scanned a few times, not once per block.
        if self.fill(offset + (have * 2).clamp(have + 1, self.max_markup + 1))? {
            return Ok(false);
        }
        let at = self.base + start as u64;
        Err(self.truncated(at, what))
    }

    /// A byte that is not ASCII at buffer index `i` of a document declared US-ASCII: the input
    /// ends there, and the error is raised when the parser gets that far.
    fn not_ascii(&mut self, i: usize) {
        let reason = format!(
            "the XML declaration says the file is US-ASCII, but the byte at {} is not ASCII; \
             declare encoding=\"UTF-8\" if the file is UTF-8, or convert it",
            self.locate(i)
        );
        self.pending = Some(self.err(RejectKind::Malformed, reason));
        self.end = i;
        self.eof = true;
    }

    /// Refuses a tag (or declaration, or DOCTYPE) of `len` bytes past the limit, whatever
    /// the buffer happened to hold.
    fn within_limit(&self, start: usize, len: usize, what: &str) -> Result<(), Rejection> {
        if len <= self.max_markup {
            return Ok(());
        }
        Err(self.err(
            RejectKind::Limit,
            format!(
                "a single XML {what} starting at {} is larger than {} bytes; refusing to buffer it",
                self.locate(start),
                self.max_markup
            ),
        ))
    }

    fn truncated(&self, at: u64, what: &str) -> Rejection {
        self.err(
            RejectKind::Incomplete,
            format!(
                "the file ends inside {} that starts at {}: the document is truncated (the scan \
                 was interrupted, or the file is still being written)",
                article(what),
                self.locate_abs(at)
            ),
        )
    }

    fn at_eof(&mut self) -> Result<Node<'_>, Rejection> {
        let here = self.locate(self.end);
        match self.mode {
            Mode::Content => {}
            Mode::Comment(at) => return Err(self.truncated(at, "comment")),
            Mode::Pi(at) => return Err(self.truncated(at, "processing instruction")),
            Mode::Cdata(at) => return Err(self.truncated(at, "CDATA section")),
        }
        if !self.root_seen {
            return Err(self.err(
                RejectKind::Incomplete,
                format!(
                    "the file ends at {here} before any element: it is truncated or still being \
                     written"
                ),
            ));
        }
        if self.depth() > 0 {
            return Err(self.err(
                RejectKind::Incomplete,
                format!(
                    "the file ends at {here} inside <{}>: the document is truncated (the scan was \
                     interrupted, or the file is still being written)",
                    self.path()
                ),
            ));
        }
        Ok(Node::Eof)
    }

    fn note_first(&mut self, what: &'static str) {
        if self.tokens == 1 {
            self.first_token = Some(what);
        }
    }

    /// Character data up to the next markup or reference. `Some((from, to))` is a piece to
    /// hand out; `None` means "go round again" (whitespace skipped, or more input read).
    fn text(&mut self) -> Result<Option<(usize, usize)>, Rejection> {
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
                            return Err(self.err(
                                RejectKind::Malformed,
                                format!(
                                    "not well-formed XML at {}: ']]>' in text must be written \
                                     ]]&gt;",
                                    self.locate(at)
                                ),
                            ));
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
            self.note_first("whitespace");
            return Ok(None);
        }
        if self.depth() == 0 {
            return Err(self.outside_root(start));
        }
        Ok(Some((start, stop)))
    }

    /// A reference in text, handed out as a piece of its own.
    fn reference(&mut self) -> Result<Option<(usize, usize)>, Rejection> {
        let start = self.pos;
        if self.depth() == 0 {
            return Err(self.outside_root(start));
        }
        match reference(&self.buf[start + 1..self.end]) {
            Ref::Ok { len, text } => {
                self.pos = start + 1 + len;
                self.lossy.clear();
                match text {
                    RefText::Static(s) => self.lossy.push_str(s),
                    RefText::Char(c) => self.lossy.push(c),
                }
                Ok(Some((usize::MAX, 0)))
            }
            Ref::Short => {
                self.more(start, "reference")?;
                Ok(None)
            }
            bad => Err(self.bad_ref(bad, start, "text")),
        }
    }

    fn bad_ref(&self, bad: Ref, at: usize, place: &str) -> Rejection {
        let here = self.locate(at);
        match bad {
            Ref::Entity(name) => self.err(
                RejectKind::Forbidden,
                format!(
                    "entity reference &{name}; at {here}: only the five predefined XML entities \
                     and character references are allowed (entities are never expanded)"
                ),
            ),
            Ref::BadChar(name) => self.err(
                RejectKind::Malformed,
                format!("invalid character reference &{name}; at {here}"),
            ),
            _ => self.err(
                RejectKind::Malformed,
                format!("a bare '&' in {place} at {here} (must be written &amp;)"),
            ),
        }
    }

    /// The node for a text piece: `buf[from..to]`, or the reference text kept in `lossy` when
    /// `from` is `usize::MAX`.
    fn text_node(&mut self, from: usize, to: usize) -> Node<'_> {
        let depth = self.depth();
        if from == usize::MAX {
            return Node::Text {
                text: Cow::Borrowed(&self.lossy),
                depth,
            };
        }
        let text = match std::str::from_utf8(&self.buf[from..to]) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(&self.buf[from..to]),
        };
        Node::Text { text, depth }
    }

    fn outside_root(&self, at: usize) -> Rejection {
        let where_ = if self.root_done { "after" } else { "before" };
        self.err(
            RejectKind::Malformed,
            format!(
                "content {where_} the root element at {}: only whitespace, comments and \
                 processing instructions may stand outside it",
                self.locate(at)
            ),
        )
    }

    /// A start tag, whole in the buffer: `Some(range of its content)` once it is read.
    fn start_tag(&mut self) -> Result<Option<(usize, usize, usize)>, Rejection> {
        let start = self.pos;
        let (gt, empty) = match scan_start_tag(&self.buf[..self.end], start, &mut self.attr_keys) {
            Scan::Done { gt, empty } => (gt, empty),
            Scan::More => {
                self.more(start, "tag")?;
                return Ok(None);
            }
            Scan::Bad(kind, what) => {
                let name = String::from_utf8_lossy(name_at(&self.buf[..self.end], start + 1));
                return Err(self.err(
                    kind,
                    format!(
                        "bad attribute in <{name}> at {}: {what}",
                        self.locate(start)
                    ),
                ));
            }
        };
        self.within_limit(start, gt + 1 - start, "tag")?;
        let name = name_at(&self.buf[..gt], start + 1);
        if self.root_done {
            let name = String::from_utf8_lossy(name);
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "a second root element <{name}> at {}: the file holds more than one XML \
                     document (nmap --append-output writes this); keep one document per file, \
                     e.g. re-run with -oX to a new file",
                    self.locate(start)
                ),
            ));
        }
        if self.depth() >= MAX_DEPTH {
            return Err(self.err(
                RejectKind::Limit,
                format!(
                    "elements nest deeper than {MAX_DEPTH} levels at {}; no scanner writes that",
                    self.locate(start)
                ),
            ));
        }
        let name_len = name.len();
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
    fn end_tag(&mut self) -> Result<Option<usize>, Rejection> {
        let start = self.pos;
        let buf = &self.buf[..self.end];
        let name = name_at(buf, start + 2);
        let mut i = start + 2 + name.len();
        while i < buf.len() && is_ws(buf[i]) {
            i += 1;
        }
        if i >= buf.len() {
            self.more(start, "end tag")?;
            return Ok(None);
        }
        if buf[i] != b'>' || name.is_empty() {
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "not well-formed XML at {}: a malformed end tag",
                    self.locate(start)
                ),
            ));
        }
        if self.depth() == 0 {
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "not well-formed XML at {}: the end tag </{}> closes nothing",
                    self.locate(start),
                    String::from_utf8_lossy(name)
                ),
            ));
        }
        if name != self.open_name() {
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "not well-formed XML at {}: the end tag </{}> does not match the open \
                     element <{}> ({})",
                    self.locate(start),
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(self.open_name()),
                    self.path()
                ),
            ));
        }
        self.pos = i + 1;
        let depth = self.depth();
        self.pop();
        Ok(Some(depth))
    }

    /// `<!`: a comment, a CDATA section or a DOCTYPE.
    fn bang(&mut self) -> Result<(), Rejection> {
        let start = self.pos;
        let rest = &self.buf[start..self.end];
        const COMMENT: &[u8] = b"<!--";
        const CDATA: &[u8] = b"<![CDATA[";
        const DOCTYPE: &[u8] = b"<!DOCTYPE";
        for kw in [COMMENT, CDATA, DOCTYPE] {
            let n = rest.len().min(kw.len());
            if rest[..n] != kw[..n] {
                continue;
            }
            if n < kw.len() {
                self.more(start, "markup")?;
                return Ok(());
            }
            let at = self.base + start as u64;
            if kw == COMMENT {
                self.note_first("a comment");
                self.pos += kw.len();
                self.mode = Mode::Comment(at);
            } else if kw == CDATA {
                if self.depth() == 0 {
                    return Err(self.outside_root(start));
                }
                self.pos += kw.len();
                self.mode = Mode::Cdata(at);
            } else {
                self.note_first("a DOCTYPE");
                self.doctype()?;
            }
            return Ok(());
        }
        Err(self.err(
            RejectKind::Malformed,
            format!(
                "not well-formed XML at {}: unknown markup after '<!' (expected a comment, \
                 CDATA or DOCTYPE)",
                self.locate(start)
            ),
        ))
    }

    fn doctype(&mut self) -> Result<(), Rejection> {
        let start = self.pos;
        if self.root_done {
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "a second DOCTYPE at {}: the file holds more than one XML document (nmap \
                     --append-output writes this); keep one document per file, e.g. re-run with \
                     -oX to a new file",
                    self.locate(start)
                ),
            ));
        }
        let buf = &self.buf[..self.end];
        let mut i = start + b"<!DOCTYPE".len();
        let gt = loop {
            match buf.get(i) {
                None => {
                    self.more(start, "DOCTYPE")?;
                    return Ok(());
                }
                Some(b'>') => break i,
                Some(b'[') => {
                    return Err(self.err(
                        RejectKind::Forbidden,
                        format!(
                            "a DOCTYPE with an internal subset or entity declarations at {}: DTDs \
                             and entities are refused (they can expand or leak data); only a bare \
                             <!DOCTYPE name> is allowed",
                            self.locate(start)
                        ),
                    ))
                }
                Some(&q @ (b'"' | b'\'')) => match memchr::memchr(q, &buf[i + 1..]) {
                    Some(k) => i += k + 2,
                    None => {
                        self.more(start, "DOCTYPE")?;
                        return Ok(());
                    }
                },
                Some(_) => i += 1,
            }
        };
        self.within_limit(start, gt + 1 - start, "DOCTYPE")?;
        let buf = &self.buf[..self.end];
        let body = &buf[start + b"<!DOCTYPE".len()..gt];
        if let Err(what) = doctype_body(body) {
            return Err(self.err(
                RejectKind::Malformed,
                format!("not well-formed XML at {}: {what}", self.locate(start)),
            ));
        }
        if self.root_seen || self.doctype_seen {
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "a DOCTYPE at {} after the root element or a previous DOCTYPE",
                    self.locate(start)
                ),
            ));
        }
        self.doctype_seen = true;
        self.pos = gt + 1;
        Ok(())
    }

    /// `<?`: the XML declaration, or a processing instruction (streamed through).
    fn pi(&mut self) -> Result<(), Rejection> {
        let start = self.pos;
        let buf = &self.buf[..self.end];
        let target = name_at(buf, start + 2);
        let after = start + 2 + target.len();
        if after >= buf.len() {
            self.more(start, "processing instruction")?;
            return Ok(());
        }
        if buf[after] == b'?' && after + 1 >= buf.len() {
            self.more(start, "processing instruction")?;
            return Ok(());
        }
        if target.is_empty() || !(is_ws(buf[after]) || buf[after..].starts_with(b"?>")) {
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "not well-formed XML at {}: a processing instruction without a valid target \
                     name",
                    self.locate(start)
                ),
            ));
        }
        if target == b"xml" {
            return self.declaration();
        }
        if target.eq_ignore_ascii_case(b"xml") {
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "not well-formed XML at {}: the processing instruction name '{}' is reserved",
                    self.locate(start),
                    String::from_utf8_lossy(target)
                ),
            ));
        }
        self.note_first("a processing instruction");
        self.mode = Mode::Pi(self.base + start as u64);
        self.pos = after;
        Ok(())
    }

    fn declaration(&mut self) -> Result<(), Rejection> {
        let start = self.pos;
        let at = self.base + start as u64;
        if self.root_done {
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "a second XML declaration at {}: the file holds more than one XML document \
                     (nmap --append-output writes this); keep one document per file, e.g. \
                     re-run with -oX to a new file",
                    self.locate(start)
                ),
            ));
        }
        if self.tokens > 1 || at != self.input.doc_start() {
            let what = self.first_token.unwrap_or("other content");
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "the XML declaration at {} is not at the start of the file: {what} comes \
                     before it, which is not well-formed XML; remove what precedes <?xml ...?>",
                    self.locate(start)
                ),
            ));
        }
        let Some(k) = memchr::memmem::find(&self.buf[start..self.end], b"?>") else {
            self.more(start, "XML declaration")?;
            return Ok(());
        };
        self.within_limit(start, k + 2, "XML declaration")?;
        let body = &self.buf[start + 5..start + k];
        let pseudo = match pseudo_attrs(body) {
            Ok(p) => p,
            Err(what) => {
                return Err(self.err(
                    RejectKind::Malformed,
                    format!(
                        "not well-formed XML at {}: a malformed XML declaration ({what})",
                        self.locate(start)
                    ),
                ))
            }
        };
        if let Some((_, enc)) = pseudo.iter().find(|(k, _)| *k == "encoding") {
            let e = enc.to_ascii_lowercase();
            if matches!(e.as_str(), "us-ascii" | "ascii") {
                // ASCII is UTF-8 without the multi-byte characters: hold the rest to that.
                self.ascii_only = true;
                if let Some(i) = self.buf[start + k + 2..self.end]
                    .iter()
                    .position(|b| !b.is_ascii())
                {
                    self.not_ascii(start + k + 2 + i);
                }
            } else if e != "utf-8" && e != "utf8" {
                return Err(self.err(
                    RejectKind::Unsupported,
                    format!(
                        "the XML declaration says encoding=\"{enc}\"; only UTF-8 is supported: \
                         convert the file (e.g. iconv -f {enc} -t UTF-8) and fix the declaration"
                    ),
                ));
            }
        }
        self.pos = start + k + 2;
        Ok(())
    }

    /// Inside a comment: on to its `-->`.
    fn skip_comment(&mut self, start: u64) -> Result<(), Rejection> {
        let rest = &self.buf[self.pos..self.end];
        match memchr::memmem::find(rest, b"--") {
            Some(k) if k + 2 < rest.len() => {
                if rest[k + 2] != b'>' {
                    let at = self.pos + k;
                    return Err(self.err(
                        RejectKind::Malformed,
                        format!(
                            "not well-formed XML at {}: '--' inside a comment (the comment that \
                             starts at {})",
                            self.locate(at),
                            self.locate_abs(start)
                        ),
                    ));
                }
                self.pos += k + 3;
                self.mode = Mode::Content;
                Ok(())
            }
            Some(k) => self.stream_on(self.pos + k, start, "comment"),
            None => {
                let keep = usize::from(rest.last() == Some(&b'-'));
                self.stream_on(self.end - keep, start, "comment")
            }
        }
    }

    /// Inside a processing instruction: on to its `?>`.
    fn skip_pi(&mut self, start: u64) -> Result<(), Rejection> {
        let rest = &self.buf[self.pos..self.end];
        match memchr::memmem::find(rest, b"?>") {
            Some(k) => {
                self.pos += k + 2;
                self.mode = Mode::Content;
                Ok(())
            }
            None => {
                let keep = usize::from(rest.last() == Some(&b'?'));
                self.stream_on(self.end - keep, start, "processing instruction")
            }
        }
    }

    /// Inside CDATA: the next piece of its text, or `None` when it ended or more input is
    /// needed.
    fn cdata(&mut self, start: u64) -> Result<Option<(usize, usize)>, Rejection> {
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
                    self.stream_on(from, start, "CDATA section")?;
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
    fn stream_on(&mut self, keep_from: usize, start: u64, what: &str) -> Result<(), Rejection> {
        self.pos = keep_from;
        let held = self.end - keep_from;
        if self.fill(held + 1)? {
            return Ok(());
        }
        Err(self.truncated(start, what))
    }
}

/// Checks what stands between `<!DOCTYPE` and `>` (no internal subset: that is refused
/// before): whitespace, the root element name, then optionally `SYSTEM "uri"` or
/// `PUBLIC "id" "uri"`.
fn doctype_body(body: &[u8]) -> Result<(), String> {
    let mut i = 0;
    let ws = |i: &mut usize| {
        let from = *i;
        while *i < body.len() && is_ws(body[*i]) {
            *i += 1;
        }
        *i > from
    };
    let literal = |i: &mut usize, pubid: bool| -> Result<(), String> {
        let Some(&q @ (b'"' | b'\'')) = body.get(*i) else {
            return Err("a quoted identifier is missing in the DOCTYPE".into());
        };
        let len = memchr::memchr(q, &body[*i + 1..])
            .ok_or_else(|| "an unterminated identifier in the DOCTYPE".to_string())?;
        let value = &body[*i + 1..*i + 1 + len];
        let pubid_char =
            |b: &u8| b.is_ascii_alphanumeric() || b" \r\n-'()+,./:=?;!*#@$_%".contains(b);
        if pubid && !value.iter().all(pubid_char) {
            return Err("the public identifier in the DOCTYPE holds a character it may not".into());
        }
        *i += len + 2;
        Ok(())
    };
    if !ws(&mut i) {
        return Err("a DOCTYPE without whitespace before the root element name".into());
    }
    let name = name_at(body, i);
    if name.is_empty() {
        return Err("a DOCTYPE without a root element name".into());
    }
    i += name.len();
    let spaced = ws(&mut i);
    let rest = &body[i..];
    if rest.is_empty() {
        return Ok(());
    }
    let bad =
        || Err("a malformed DOCTYPE (expected SYSTEM \"uri\" or PUBLIC \"id\" \"uri\")".into());
    if !spaced {
        return bad();
    }
    if rest.starts_with(b"SYSTEM") {
        i += 6;
        if !ws(&mut i) {
            return bad();
        }
        literal(&mut i, false)?;
    } else if rest.starts_with(b"PUBLIC") {
        i += 6;
        if !ws(&mut i) {
            return bad();
        }
        literal(&mut i, true)?;
        if !ws(&mut i) {
            return bad();
        }
        literal(&mut i, false)?;
    } else {
        return bad();
    }
    ws(&mut i);
    if i != body.len() {
        return bad();
    }
    Ok(())
}

/// "a tag", "an end tag", ...
fn article(what: &str) -> String {
    let an = what.starts_with(|c: char| "aeiouAEIOU".contains(c));
    format!("{} {what}", if an { "an" } else { "a" })
}

/// The name starting at `from` (empty if none does).
fn name_at(buf: &[u8], from: usize) -> &[u8] {
    let rest = buf.get(from..).unwrap_or_default();
    if !rest.first().is_some_and(|b| is_name_start(*b)) {
        return &[];
    }
    let len = rest.iter().position(|b| !is_name(*b)).unwrap_or(rest.len());
    &rest[..len]
}

/// The length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence.
fn char_boundary(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=n.min(4) {
        let b = bytes[n - back];
        if b & 0xC0 != 0x80 {
            let width = match b {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xFF => 4,
                _ => 1,
            };
            return if width > back { n - back } else { n };
        }
    }
    n
}

/// Checks the tag starting with the `<` at `start`: its name, and each attribute (separated
/// by whitespace, `name = "value"`, no `<` in the value, only allowed references, no key
/// twice). `keys` is scratch space for the keys seen.
fn scan_start_tag(buf: &[u8], start: usize, keys: &mut Vec<Key>) -> Scan {
    let n = buf.len();
    let mut i = start + 1 + name_at(buf, start + 1).len();
    keys.clear();
    let mut many: Option<std::collections::HashSet<&[u8]>> = None;
    // One bit per key seen: a key whose bit is clear is new without comparing it to any.
    let mut bloom = 0u64;
    loop {
        let Some(&b) = buf.get(i) else {
            return Scan::More;
        };
        match b {
            b'>' => {
                return Scan::Done {
                    gt: i,
                    empty: false,
                }
            }
            b'/' => {
                return match buf.get(i + 1) {
                    None => Scan::More,
                    Some(b'>') => Scan::Done {
                        gt: i + 1,
                        empty: true,
                    },
                    Some(_) => Scan::Bad(RejectKind::Malformed, "'/' not followed by '>'".into()),
                }
            }
            _ if is_ws(b) => {}
            _ => {
                return Scan::Bad(
                    RejectKind::Malformed,
                    if keys.is_empty() {
                        format!("unexpected '{}' after the element name", b.escape_ascii())
                    } else {
                        "attributes must be separated by whitespace".into()
                    },
                )
            }
        }
        while i < n && is_ws(buf[i]) {
            i += 1;
        }
        let Some(&b) = buf.get(i) else {
            return Scan::More;
        };
        if b == b'>' || b == b'/' {
            continue;
        }
        let key = name_at(buf, i);
        if key.is_empty() {
            return Scan::Bad(
                RejectKind::Malformed,
                format!("expected an attribute name, found '{}'", b.escape_ascii()),
            );
        }
        let key_at = i;
        i += key.len();
        while i < n && is_ws(buf[i]) {
            i += 1;
        }
        let shown = || String::from_utf8_lossy(key).into_owned();
        match buf.get(i) {
            None => return Scan::More,
            Some(b'=') => i += 1,
            Some(_) => {
                return Scan::Bad(
                    RejectKind::Malformed,
                    format!("attribute {} has no value", shown()),
                )
            }
        }
        while i < n && is_ws(buf[i]) {
            i += 1;
        }
        let quote = match buf.get(i) {
            None => return Scan::More,
            Some(&q @ (b'"' | b'\'')) => q,
            Some(_) => {
                return Scan::Bad(
                    RejectKind::Malformed,
                    format!("the value of attribute {} is not quoted", shown()),
                )
            }
        };
        i += 1;
        loop {
            i = value_stop(buf, i);
            let Some(&b) = buf.get(i) else {
                return Scan::More;
            };
            match b {
                b'"' | b'\'' if b != quote => i += 1,
                b'<' => {
                    return Scan::Bad(
                        RejectKind::Malformed,
                        format!("a '<' inside the value of attribute {}", shown()),
                    )
                }
                b'&' => match reference(&buf[i + 1..]) {
                    Ref::Ok { len, .. } => i += 1 + len,
                    Ref::Short => return Scan::More,
                    Ref::Entity(name) => {
                        return Scan::Bad(
                            RejectKind::Forbidden,
                            format!(
                                "entity reference &{name}; in attribute {}: only the five \
                                 predefined XML entities and character references are allowed \
                                 (entities are never expanded)",
                                shown()
                            ),
                        )
                    }
                    Ref::BadChar(name) => {
                        return Scan::Bad(
                            RejectKind::Malformed,
                            format!(
                                "invalid character reference &{name}; in attribute {}",
                                shown()
                            ),
                        )
                    }
                    Ref::Bare => {
                        return Scan::Bad(
                            RejectKind::Malformed,
                            format!(
                                "a bare '&' in the value of attribute {} (must be written &amp;)",
                                shown()
                            ),
                        )
                    }
                },
                _ => {
                    i += 1;
                    break;
                }
            }
        }
        let repeated = match many.as_mut() {
            Some(set) => !set.insert(key),
            None => {
                let new = Key::new(buf, key_at, key.len());
                let bit = 1u64 << (new.head.wrapping_add(new.len as u64).wrapping_mul(K) >> 58);
                let seen = bloom & bit != 0 && keys.iter().any(|k| k.same(&new, buf));
                bloom |= bit;
                keys.push(new);
                if keys.len() > FEW_ATTRS {
                    many = Some(keys.iter().map(|k| k.bytes(buf)).collect());
                }
                seen
            }
        };
        if repeated {
            return Scan::Bad(
                RejectKind::Malformed,
                format!("attribute {} appears twice", shown()),
            );
        }
    }
}

/// The index of the first quote, `<` or `&` at or after `i` (or `buf.len()`). Values are
/// short, so memchr's set-up costs more than it saves; eight bytes at a time with a
/// branch-free word test (SWAR) beats a byte loop, whose exit branch mispredicts on every
/// value of a new length.
#[inline]
fn value_stop(buf: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // High bit set in each byte of `x` equal to `b`; the lowest one set is exact (bits above
    // a match may be spurious, which never matters for finding the first).
    let eq = |x: u64, b: u8| {
        let y = x ^ (LO * u64::from(b));
        y.wrapping_sub(LO) & !y & HI
    };
    while let Some(w) = buf.get(i..i + 8) {
        let x = u64::from_le_bytes(w.try_into().unwrap_or_default());
        let m = eq(x, b'"') | eq(x, b'\'') | eq(x, b'<') | eq(x, b'&');
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < buf.len() && !is_value_stop(buf[i]) {
        i += 1;
    }
    i
}

/// An attribute key seen in the tag being scanned, compared by its first eight bytes and
/// length before its bytes (most keys are that short, so the first test decides).
#[derive(Clone, Copy)]
struct Key {
    head: u64,
    at: usize,
    len: usize,
}

/// A multiplier that spreads `Key::head` over the bloom filter's 64 bits.
const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Key {
    /// The key of `len` bytes at `buf[at..]`.
    fn new(buf: &[u8], at: usize, len: usize) -> Key {
        let n = len.min(8);
        let head = match buf.get(at..at + 8) {
            // One load instead of a copy of `n` bytes; the bytes past the key are masked off.
            Some(w) => {
                let w = u64::from_le_bytes(w.try_into().unwrap_or_default());
                if n == 8 {
                    w
                } else {
                    w & ((1u64 << (8 * n)) - 1)
                }
            }
            None => {
                let mut head = [0u8; 8];
                head[..n].copy_from_slice(&buf[at..at + n]);
                u64::from_le_bytes(head)
            }
        };
        Key { head, at, len }
    }

    fn bytes<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.at..self.at + self.len]
    }

    fn same(&self, other: &Key, buf: &[u8]) -> bool {
        self.head == other.head
            && self.len == other.len
            && (self.len <= 8 || self.bytes(buf) == other.bytes(buf))
    }
}

/// The pseudo-attributes of an XML declaration (`body` is what follows `<?xml`): `version`
/// first, then optionally `encoding` and `standalone`.
fn pseudo_attrs(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let ws_start = i;
        while i < body.len() && is_ws(body[i]) {
            i += 1;
        }
        if i == body.len() {
            break;
        }
        if i == ws_start {
            return Err("pseudo-attributes must be separated by whitespace".into());
        }
        let key = name_at(body, i);
        i += key.len();
        while i < body.len() && is_ws(body[i]) {
            i += 1;
        }
        if body.get(i) != Some(&b'=') {
            return Err(format!("{} has no value", String::from_utf8_lossy(key)));
        }
        i += 1;
        while i < body.len() && is_ws(body[i]) {
            i += 1;
        }
        let Some(&q @ (b'"' | b'\'')) = body.get(i) else {
            return Err("an unquoted value".into());
        };
        let Some(len) = memchr::memchr(q, &body[i + 1..]) else {
            return Err("an unterminated value".into());
        };
        out.push((
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(&body[i + 1..i + 1 + len]).into_owned(),
        ));
        i += len + 2;
    }
    let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
    let allowed = matches!(
        keys.as_slice(),
        ["version"]
            | ["version", "encoding"]
            | ["version", "standalone"]
            | ["version", "encoding", "standalone"]
    );
    if !allowed {
        return Err("it must be version=\"1.x\", then optionally encoding and standalone".into());
    }
    for (key, value) in &out {
        let v = value.as_bytes();
        let ok = match key.as_str() {
            "version" => {
                v.len() > 2 && v.starts_with(b"1.") && v[2..].iter().all(u8::is_ascii_digit)
            }
            "encoding" => {
                v.first().is_some_and(u8::is_ascii_alphabetic)
                    && v.iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
            }
            _ => value == "yes" || value == "no",
        };
        if !ok {
            return Err(format!("{key}=\"{value}\" is not a value XML allows"));
        }
    }
    Ok(out)
}
