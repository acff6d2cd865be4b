//! The hardened XML pull layer shared by the XML formats, and the dispatch on the root
//! element. `XmlPull` wraps quick-xml and adds the well-formedness rules quick-xml leaves to
//! its caller (one root, nothing but whitespace outside it, the declaration first, bounded
//! depth, checked attributes and references) plus the hardening policy (no internal DTD
//! subset, no `<!ENTITY`, no entity other than the five predefined ones; nothing is ever
//! expanded). It hands the format checkers a flat stream of `Node`s that are already known to
//! be well-formed, so they only encode format rules.

use std::borrow::Cow;
use std::io::BufRead;

use quick_xml::errors::{Error as QxError, IllFormedError, SyntaxError};
use quick_xml::events::attributes::Attributes;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::input::{is_ws, Checked};
use super::{gvm, nmap, reject, zap, Format, Found, RejectKind, Rejection};

/// Deeper nesting than any scanner writes: beyond it we assume a hostile or broken file.
pub(crate) const MAX_DEPTH: usize = 4096;
/// The parse buffer is shrunk back after a large token so one big text node does not pin
/// memory for the rest of the file.
const KEEP_BUF: usize = 1024 * 1024;

/// A start tag as seen by the format checkers; attributes are already validated.
pub(crate) struct Tag<'b> {
    raw: &'b str,
    name_len: usize,
}

impl<'b> Tag<'b> {
    pub(crate) fn name(&self) -> &str {
        &self.raw[..self.name_len]
    }

    /// The unescaped value of attribute `key`.
    pub(crate) fn attr(&self, key: &str) -> Option<String> {
        let mut attrs = Attributes::new(self.raw, self.name_len);
        attrs.with_checks(false);
        for a in attrs.flatten() {
            if a.key.as_ref() == key.as_bytes() {
                let raw = String::from_utf8_lossy(&a.value);
                return Some(match quick_xml::escape::unescape(&raw) {
                    Ok(v) => v.into_owned(),
                    Err(_) => raw.into_owned(),
                });
            }
        }
        None
    }

    pub(crate) fn has_attrs(&self) -> bool {
        !self.raw[self.name_len..].trim().is_empty()
    }

    pub(crate) fn to_owned_tag(&self) -> OwnedTag {
        OwnedTag {
            raw: self.raw.to_string(),
            name_len: self.name_len,
        }
    }
}

/// The root tag, kept while the rest of the document is read.
pub(crate) struct OwnedTag {
    raw: String,
    name_len: usize,
}

impl OwnedTag {
    pub(crate) fn tag(&self) -> Tag<'_> {
        Tag {
            raw: &self.raw,
            name_len: self.name_len,
        }
    }
}

pub(crate) enum Node<'b> {
    /// Also produced for `<empty/>`, which is followed by its own `End`.
    Start {
        tag: Tag<'b>,
        depth: usize,
    },
    End {
        depth: usize,
    },
    /// Character data (text with references resolved piecewise, or CDATA) inside the element
    /// at `depth`. One element's text may arrive in several pieces.
    Text {
        text: Cow<'b, str>,
        depth: usize,
    },
    Eof,
}

enum Step {
    /// A start tag whose bytes are `cur` (address and length within the parse buffer).
    Start,
    End(usize),
    /// Character data whose bytes are `cur`.
    Text,
    Ref(Cow<'static, str>),
    Eof,
}

pub(crate) struct XmlPull<'c, B: BufRead> {
    reader: Reader<&'c mut Checked<B>>,
    /// The parse buffer. The `Node` handed out borrows the current start tag or text from it
    /// (no copy per event); it is only reused by the next call to `next`.
    buf: Vec<u8>,
    /// Lossy copy of the current tag or text, used only when its bytes are not valid UTF-8
    /// (a character cut by the end of the file; `validate` rejects such files anyway).
    cur: String,
    cur_name_len: usize,
    names: Vec<u8>,
    ends: Vec<usize>,
    pending_end: bool,
    events: u64,
    first_event: Option<&'static str>,
    root_seen: bool,
    root_done: bool,
    doctype_seen: bool,
    pub(crate) format: Format,
}

impl<'c, B: BufRead> XmlPull<'c, B> {
    pub(crate) fn new(input: &'c mut Checked<B>) -> Self {
        let mut reader = Reader::from_reader(input);
        let cfg = reader.config_mut();
        cfg.check_end_names = true;
        cfg.allow_unmatched_ends = false;
        cfg.check_comments = true;
        cfg.expand_empty_elements = false;
        cfg.trim_text(false);
        XmlPull {
            reader,
            buf: Vec::with_capacity(8 * 1024),
            cur: String::new(),
            cur_name_len: 0,
            names: Vec::new(),
            ends: Vec::new(),
            pending_end: false,
            events: 0,
            first_event: None,
            root_seen: false,
            root_done: false,
            doctype_seen: false,
            format: Format::Xml,
        }
    }

    fn abs(&self, rel: u64) -> u64 {
        self.reader.get_ref().base() + rel
    }

    /// "line L, column C (byte N)" for an absolute offset.
    pub(crate) fn locate(&self, abs: u64) -> String {
        self.reader.get_ref().locate(abs)
    }

    fn depth(&self) -> usize {
        self.ends.len()
    }

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

    fn pop(&mut self) {
        self.ends.pop();
        let keep = self.ends.last().copied().unwrap_or(0);
        self.names.truncate(keep);
        if self.ends.is_empty() {
            self.root_done = true;
        }
    }

    fn err(&self, kind: RejectKind, reason: String) -> Rejection {
        reject(self.format, kind, reason)
    }

    pub(crate) fn next(&mut self) -> Result<Node<'_>, Rejection> {
        if self.pending_end {
            self.pending_end = false;
            let depth = self.depth();
            self.pop();
            return Ok(Node::End { depth });
        }
        if self.cur.capacity() > KEEP_BUF {
            self.cur = String::new();
        }
        let mut buf = std::mem::take(&mut self.buf);
        // Address and length of the bytes of the start tag or text being returned. They always
        // lie inside `buf` (quick-xml's buffered reader borrows its events from it); this is
        // checked below, once `buf` is no longer borrowed by the event.
        let mut cur = (0usize, 0usize);
        let step = loop {
            buf.clear();
            if buf.capacity() > KEEP_BUF {
                buf = Vec::with_capacity(8 * 1024);
            }
            let start = self.abs(self.reader.buffer_position());
            self.reader.get_mut().mark();
            let ev = match self.reader.read_event_into(&mut buf) {
                Ok(ev) => ev,
                Err(e) => return Err(self.parse_error(e, start)),
            };
            self.events += 1;
            let first = self.events == 1;
            match ev {
                Event::Decl(d) => {
                    self.check_decl(&d, start)?;
                    continue;
                }
                Event::DocType(d) => {
                    self.check_doctype(&d, start)?;
                    if first {
                        self.first_event = Some("a DOCTYPE");
                    }
                    continue;
                }
                Event::Comment(_) => {
                    if first {
                        self.first_event = Some("a comment");
                    }
                    continue;
                }
                Event::PI(_) => {
                    if first {
                        self.first_event = Some("a processing instruction");
                    }
                    continue;
                }
                Event::Text(t) => {
                    if self.depth() == 0 {
                        if t.iter().all(|b| is_ws(*b)) {
                            if first {
                                self.first_event = Some("whitespace");
                            }
                            continue;
                        }
                        return Err(self.outside_root(start));
                    }
                    cur = (t.as_ptr() as usize, t.len());
                    break Step::Text;
                }
                Event::CData(t) => {
                    if self.depth() == 0 {
                        return Err(self.outside_root(start));
                    }
                    cur = (t.as_ptr() as usize, t.len());
                    break Step::Text;
                }
                Event::GeneralRef(r) => {
                    if self.depth() == 0 {
                        return Err(self.outside_root(start));
                    }
                    let name = String::from_utf8_lossy(&r);
                    let text = self.resolve_ref(&name, start)?;
                    break Step::Ref(text);
                }
                Event::Start(e) | Event::Empty(e) if self.root_done => {
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    return Err(self.err(
                        RejectKind::Malformed,
                        format!(
                            "a second root element <{name}> at {}: the file holds more than one XML \
                             document (nmap --append-output writes this); keep one document per \
                             file, e.g. re-run with -oX to a new file",
                            self.locate(start)
                        ),
                    ));
                }
                Event::Start(e) => {
                    self.open(&e, start, false)?;
                    cur = (e.as_ptr() as usize, e.len());
                    break Step::Start;
                }
                Event::Empty(e) => {
                    self.open(&e, start, true)?;
                    cur = (e.as_ptr() as usize, e.len());
                    break Step::Start;
                }
                Event::End(_) => {
                    let depth = self.depth();
                    self.pop();
                    break Step::End(depth);
                }
                Event::Eof => {
                    if !self.root_seen {
                        return Err(self.err(
                            RejectKind::Incomplete,
                            format!(
                                "the file ends at {} before any element: it is truncated or still \
                                 being written",
                                self.locate(start)
                            ),
                        ));
                    }
                    if self.depth() > 0 {
                        return Err(self.err(
                            RejectKind::Incomplete,
                            format!(
                                "the file ends at {} inside <{}>: the document is truncated (the \
                                 scan was interrupted, or the file is still being written)",
                                self.locate(start),
                                self.path()
                            ),
                        ));
                    }
                    break Step::Eof;
                }
            }
        };
        self.buf = buf;
        let text: &str = match step {
            Step::Start | Step::Text => {
                let (addr, len) = cur;
                let bytes = addr
                    .checked_sub(self.buf.as_ptr() as usize)
                    .and_then(|off| self.buf.get(off..off.checked_add(len)?));
                let Some(bytes) = bytes else {
                    return Err(self.err(
                        RejectKind::Malformed,
                        "internal error: the XML parser returned data outside its buffer"
                            .to_string(),
                    ));
                };
                match std::str::from_utf8(bytes) {
                    Ok(s) => s,
                    Err(_) => {
                        self.cur = String::from_utf8_lossy(bytes).into_owned();
                        if matches!(step, Step::Start) {
                            self.cur_name_len = self
                                .cur
                                .find(|c: char| is_ws_char(c))
                                .unwrap_or(self.cur.len());
                        }
                        &self.cur
                    }
                }
            }
            _ => "",
        };
        Ok(match step {
            Step::Start => Node::Start {
                tag: Tag {
                    raw: text,
                    name_len: self.cur_name_len,
                },
                depth: self.ends.len(),
            },
            Step::End(depth) => Node::End { depth },
            Step::Text => Node::Text {
                text: Cow::Borrowed(text),
                depth: self.ends.len(),
            },
            Step::Ref(s) => Node::Text {
                text: s,
                depth: self.ends.len(),
            },
            Step::Eof => Node::Eof,
        })
    }

    fn open(
        &mut self,
        e: &quick_xml::events::BytesStart<'_>,
        start: u64,
        empty: bool,
    ) -> Result<(), Rejection> {
        if self.depth() >= MAX_DEPTH {
            return Err(self.err(
                RejectKind::Limit,
                format!(
                    "elements nest deeper than {MAX_DEPTH} levels at {}; no scanner writes that",
                    self.locate(start)
                ),
            ));
        }
        let qname = e.name();
        let name = qname.as_ref();
        // Most tags are plainly well-formed: check those in one pass without allocating, and
        // leave anything unusual to quick-xml's attribute iterator, which words the error.
        if !attrs_plainly_ok(e, name.len()) {
            let name = String::from_utf8_lossy(name);
            for attr in e.attributes() {
                let attr = attr.map_err(|err| {
                    self.err(
                        RejectKind::Malformed,
                        format!("bad attribute in <{name}> at {}: {err}", self.locate(start)),
                    )
                })?;
                self.check_attr_value(&name, &attr.value, start)?;
            }
        }
        self.cur_name_len = name.len();
        self.names.extend_from_slice(name);
        self.ends.push(self.names.len());
        self.root_seen = true;
        self.pending_end = empty;
        Ok(())
    }

    fn check_attr_value(&self, elem: &str, value: &[u8], start: u64) -> Result<(), Rejection> {
        if value.contains(&b'<') {
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "a '<' inside an attribute value of <{elem}> at {}",
                    self.locate(start)
                ),
            ));
        }
        let mut rest = value;
        while let Some(amp) = rest.iter().position(|b| *b == b'&') {
            let after = &rest[amp + 1..];
            let Some(semi) = after.iter().position(|b| *b == b';') else {
                return Err(self.err(
                    RejectKind::Malformed,
                    format!(
                        "a bare '&' in an attribute value of <{elem}> at {} (must be written &amp;)",
                        self.locate(start)
                    ),
                ));
            };
            let name = String::from_utf8_lossy(&after[..semi]);
            self.resolve_ref(&name, start)?;
            rest = &after[semi + 1..];
        }
        Ok(())
    }

    /// The replacement text of a reference, or why it is not allowed.
    fn resolve_ref(&self, name: &str, start: u64) -> Result<Cow<'static, str>, Rejection> {
        if let Some(s) = predefined_entity(name) {
            return Ok(Cow::Borrowed(s));
        }
        if let Some(num) = name.strip_prefix('#') {
            return match char_ref(num) {
                Some(c) => Ok(Cow::Owned(c.to_string())),
                None => Err(self.err(
                    RejectKind::Malformed,
                    format!(
                        "invalid character reference &{name}; at {}",
                        self.locate(start)
                    ),
                )),
            };
        }
        Err(self.err(
            RejectKind::Forbidden,
            format!(
                "entity reference &{name}; at {}: only the five predefined XML entities and \
                 character references are allowed (entities are never expanded)",
                self.locate(start)
            ),
        ))
    }

    fn check_decl(
        &self,
        d: &quick_xml::events::BytesDecl<'_>,
        start: u64,
    ) -> Result<(), Rejection> {
        if self.root_done {
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "a second XML declaration at {}: the file holds more than one XML document \
                     (nmap --append-output writes this); keep one document per file, e.g. re-run \
                     with -oX to a new file",
                    self.locate(start)
                ),
            ));
        }
        if self.events > 1 || start != self.reader.get_ref().base() {
            let what = self.first_event.unwrap_or("other content");
            return Err(self.err(
                RejectKind::Malformed,
                format!(
                    "the XML declaration at {} is not at the start of the file: {what} comes \
                     before it, which is not well-formed XML; remove what precedes <?xml ...?>",
                    self.locate(start)
                ),
            ));
        }
        if let Some(Ok(enc)) = d.encoding() {
            let enc = String::from_utf8_lossy(&enc).into_owned();
            let e = enc.to_ascii_lowercase();
            if !matches!(e.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                return Err(self.err(
                    RejectKind::Unsupported,
                    format!(
                        "the XML declaration says encoding=\"{enc}\"; only UTF-8 is supported: \
                         convert the file (e.g. iconv -f {enc} -t UTF-8) and fix the declaration"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_doctype(&mut self, d: &[u8], start: u64) -> Result<(), Rejection> {
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
        if d.contains(&b'[') || d.windows(6).any(|w| w == b"ENTITY") {
            return Err(self.err(
                RejectKind::Forbidden,
                format!(
                    "a DOCTYPE with an internal subset or entity declarations at {}: DTDs and \
                     entities are refused (they can expand or leak data); only a bare \
                     <!DOCTYPE name> is allowed",
                    self.locate(start)
                ),
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
        Ok(())
    }

    fn outside_root(&self, start: u64) -> Rejection {
        let where_ = if self.root_done { "after" } else { "before" };
        self.err(
            RejectKind::Malformed,
            format!(
                "content {where_} the root element at {}: only whitespace, comments and \
                 processing instructions may stand outside it",
                self.locate(start)
            ),
        )
    }

    fn at_eof(&mut self) -> bool {
        self.reader
            .get_mut()
            .fill_buf()
            .map(|b| b.is_empty())
            .unwrap_or(false)
    }

    fn parse_error(&mut self, e: QxError, start: u64) -> Rejection {
        let at = self.abs(self.reader.error_position()).max(start);
        let here = self.locate(at);
        let truncated = |what: &str| {
            format!(
                "the file ends inside {what} that starts at {here}: the document is truncated (the \
                 scan was interrupted, or the file is still being written)"
            )
        };
        match e {
            // `Checked` or the caller's reader stopped us; `validate` replaces this verdict.
            QxError::Io(err) => self.err(RejectKind::Malformed, format!("read failed: {err}")),
            QxError::Syntax(s) => {
                let what = match s {
                    SyntaxError::UnclosedPIOrXmlDecl => Some("a processing instruction"),
                    SyntaxError::UnclosedComment => Some("a comment"),
                    SyntaxError::UnclosedDoctype => Some("a DOCTYPE"),
                    SyntaxError::UnclosedCData => Some("a CDATA section"),
                    SyntaxError::UnclosedTag => Some("a tag"),
                    SyntaxError::InvalidBangMarkup => {
                        if self.at_eof() {
                            Some("markup")
                        } else {
                            None
                        }
                    }
                };
                match what {
                    Some(what) => self.err(RejectKind::Incomplete, truncated(what)),
                    None => self.err(
                        RejectKind::Malformed,
                        format!("not well-formed XML at {here}: {s}"),
                    ),
                }
            }
            QxError::IllFormed(IllFormedError::MissingEndTag(tag)) => self.err(
                RejectKind::Incomplete,
                format!(
                    "the file ends at {here} while <{tag}> is still open ({}): the document is \
                     truncated (the scan was interrupted, or the file is still being written)",
                    self.path()
                ),
            ),
            QxError::IllFormed(IllFormedError::UnclosedReference) if self.at_eof() => {
                self.err(RejectKind::Incomplete, truncated("a reference"))
            }
            other => self.err(
                RejectKind::Malformed,
                format!("not well-formed XML at {here} (inside {}): {other}", {
                    let p = self.path();
                    if p.is_empty() {
                        "the prolog".to_string()
                    } else {
                        format!("<{p}>")
                    }
                }),
            ),
        }
    }
}

/// The replacement text of one of the five predefined entities.
fn predefined_entity(name: &str) -> Option<&'static str> {
    match name {
        "lt" => Some("<"),
        "gt" => Some(">"),
        "amp" => Some("&"),
        "apos" => Some("'"),
        "quot" => Some("\""),
        _ => None,
    }
}

/// The character of a character reference `&#NUM;` (`num` without the `#`), if it is one XML
/// allows.
fn char_ref(num: &str) -> Option<char> {
    let code = match num.strip_prefix('x') {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => num.parse::<u32>().ok(),
    };
    code.and_then(char::from_u32).filter(|c| is_xml_char(*c))
}

fn is_ws_char(c: char) -> bool {
    c.is_ascii() && is_ws(c as u8)
}

/// Most attributes a tag may hold before `attrs_plainly_ok` leaves it to the slow path.
const PLAIN_ATTRS: usize = 24;

/// True if the attributes of start tag `raw` (after its `name_len`-byte name) are plainly
/// well-formed: `key="value"` or `key='value'` pairs, no space around `=`, no duplicate key,
/// no `<` in a value and only allowed references. Everything it accepts is also accepted by
/// `XmlPull::open`'s slow path (quick-xml's checked attribute iterator plus
/// `check_attr_value`); `false` only means "let the slow path decide and word the error".
pub(crate) fn attrs_plainly_ok(raw: &[u8], name_len: usize) -> bool {
    let mut keys = [(0u32, 0u32); PLAIN_ATTRS];
    let mut nkeys = 0;
    let n = raw.len();
    let mut i = name_len;
    loop {
        while i < n && is_ws(raw[i]) {
            i += 1;
        }
        if i == n {
            return true;
        }
        let key_start = i;
        while i < n && raw[i] != b'=' && !is_ws(raw[i]) {
            i += 1;
        }
        if i == key_start || i == n || raw[i] != b'=' || nkeys == PLAIN_ATTRS {
            return false;
        }
        let key = &raw[key_start..i];
        if keys[..nkeys]
            .iter()
            .any(|&(a, b)| &raw[a as usize..b as usize] == key)
        {
            return false;
        }
        let (Ok(a), Ok(b)) = (u32::try_from(key_start), u32::try_from(i)) else {
            return false;
        };
        keys[nkeys] = (a, b);
        nkeys += 1;
        i += 1;
        let quote = match raw.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return false,
        };
        i += 1;
        // Values are short: one plain pass finds the closing quote and checks the value, where
        // three memchr calls cost more in set-up than they save.
        loop {
            match raw.get(i) {
                None | Some(b'<') => return false,
                Some(&b) if b == quote => break,
                Some(b'&') => match reference_end(&raw[i + 1..]) {
                    Some(len) => i += len + 1,
                    None => return false,
                },
                Some(_) => i += 1,
            }
        }
        i += 1;
    }
}

/// For the bytes after a `&` in an attribute value: the length of an allowed reference's
/// `NAME;`, or None if the slow path must judge it. Stops at the first `;` like
/// `check_attr_value`; a quote or `<` before it means no allowed reference (the name would
/// hold it), so the slow path decides.
fn reference_end(after: &[u8]) -> Option<usize> {
    let semi = after
        .iter()
        .take(16)
        .position(|b| *b == b';' || *b == b'"' || *b == b'\'' || *b == b'<')?;
    if after[semi] != b';' {
        return None;
    }
    let name = std::str::from_utf8(&after[..semi]).ok()?;
    if predefined_entity(name).is_some() || name.strip_prefix('#').and_then(char_ref).is_some() {
        Some(semi + 1)
    } else {
        None
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Parses an XML document and hands it to the checker its root element calls for.
pub(crate) fn check<B: BufRead>(input: &mut Checked<B>) -> Result<Found, Rejection> {
    let mut pull = XmlPull::new(input);
    let root = loop {
        match pull.next()? {
            Node::Start { tag, .. } => break tag.to_owned_tag(),
            Node::Eof => {
                return Err(reject(
                    Format::Xml,
                    RejectKind::Incomplete,
                    "the file holds no element",
                ))
            }
            _ => continue,
        }
    };
    let tag = root.tag();
    match tag.name() {
        "nmaprun" => nmap::check(&mut pull, &tag),
        "OWASPZAPReport" => zap::check_xml(&mut pull, &tag),
        "report" | "get_reports_response" => gvm::check(&mut pull, &tag),
        "result" => Err(reject(
            Format::GvmXml,
            RejectKind::NotAReport,
            "a single GVM <result> fragment, not a report: export the whole report with the XML \
             report format (a994b278-1f62-11e1-96ac-406186ea4fc5)",
        )),
        "document" if tag.attr("SSLyzeVersion").is_some() => Err(reject(
            Format::Xml,
            RejectKind::Unsupported,
            "SSLyze 2.x XML output (--xml_out): HostedScan imports SSLyze JSON; re-run with \
             SSLyze 3 or later and --json_out",
        )),
        other => Err(reject(
            Format::Xml,
            RejectKind::NotAReport,
            format!(
                "not a recognised scanner report: XML whose root element is <{other}> (expected \
                 <nmaprun>, <OWASPZAPReport>, or a GVM <report>/<get_reports_response>)"
            ),
        )),
    }
}
