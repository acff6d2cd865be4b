//! What the parser meets at `<!` and `<?`: comments and CDATA sections (entered here, then
//! streamed by the parser), the DOCTYPE (checked, never read: an internal subset is refused),
//! processing instructions and the XML declaration, with the rules on where each may stand.

// Through the parent's imports: the parser's own parts, nothing from outside `xml`.
use super::{
    doctype_body, is_ws, name_at, pseudo_attrs, Construct, ErrorKind, Mode, Prior, Source,
    XmlError, XmlPull,
};

impl<R: Source> XmlPull<R> {
    /// `<!`: a comment, a CDATA section or a DOCTYPE.
    pub(super) fn bang(&mut self) -> Result<(), XmlError> {
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
                self.more(start, Construct::Markup)?;
                return Ok(());
            }
            let at = self.base + start as u64;
            if kw == COMMENT {
                self.note_first(Prior::Comment);
                self.pos += kw.len();
                self.mode = Mode::Comment(at);
            } else if kw == CDATA {
                if self.depth() == 0 {
                    return Err(self.outside_root(start));
                }
                self.pos += kw.len();
                self.mode = Mode::Cdata(at);
            } else {
                self.note_first(Prior::Doctype);
                self.doctype()?;
            }
            return Ok(());
        }
        Err(self.err(start, ErrorKind::UnknownBang))
    }

    fn doctype(&mut self) -> Result<(), XmlError> {
        let start = self.pos;
        if self.root_done {
            return Err(self.err(start, ErrorKind::SecondDoctype));
        }
        let buf = &self.buf[..self.end];
        let mut i = start + b"<!DOCTYPE".len();
        let gt = loop {
            match buf.get(i) {
                None => {
                    self.more(start, Construct::Doctype)?;
                    return Ok(());
                }
                Some(b'>') => break i,
                Some(b'[') => return Err(self.err(start, ErrorKind::InternalSubset)),
                Some(&q @ (b'"' | b'\'')) => match memchr::memchr(q, &buf[i + 1..]) {
                    Some(k) => i += k + 2,
                    None => {
                        self.more(start, Construct::Doctype)?;
                        return Ok(());
                    }
                },
                Some(_) => i += 1,
            }
        };
        self.within_limit(start, gt + 1 - start, Construct::Doctype)?;
        let buf = &self.buf[..self.end];
        let body = &buf[start + b"<!DOCTYPE".len()..gt];
        if let Err(problem) = doctype_body(body) {
            return Err(self.err(start, ErrorKind::BadDoctype(problem)));
        }
        if self.root_seen || self.doctype_seen {
            return Err(self.err(start, ErrorKind::LateDoctype));
        }
        self.doctype_seen = true;
        self.pos = gt + 1;
        Ok(())
    }

    /// `<?`: the XML declaration, or a processing instruction (streamed through).
    pub(super) fn pi(&mut self) -> Result<(), XmlError> {
        let start = self.pos;
        let buf = &self.buf[..self.end];
        let target = name_at(buf, start + 2);
        let after = start + 2 + target.len();
        if after >= buf.len() {
            self.more(start, Construct::ProcessingInstruction)?;
            return Ok(());
        }
        if buf[after] == b'?' && after + 1 >= buf.len() {
            self.more(start, Construct::ProcessingInstruction)?;
            return Ok(());
        }
        if target.is_empty() || !(is_ws(buf[after]) || buf[after..].starts_with(b"?>")) {
            return Err(self.err(start, ErrorKind::BadPiTarget));
        }
        if target == b"xml" {
            return self.declaration();
        }
        if target.eq_ignore_ascii_case(b"xml") {
            let target = String::from_utf8_lossy(target).into_owned();
            return Err(self.err(start, ErrorKind::ReservedPiTarget { target }));
        }
        self.note_first(Prior::ProcessingInstruction);
        self.mode = Mode::Pi(self.base + start as u64);
        self.pos = after;
        Ok(())
    }

    fn declaration(&mut self) -> Result<(), XmlError> {
        let start = self.pos;
        let at = self.base + start as u64;
        if self.root_done {
            return Err(self.err(start, ErrorKind::SecondDeclaration));
        }
        if self.tokens > 1 || at != self.doc_start {
            let after = self.first_token;
            return Err(self.err(start, ErrorKind::LateDeclaration { after }));
        }
        let Some(k) = memchr::memmem::find(&self.buf[start..self.end], b"?>") else {
            self.more(start, Construct::Declaration)?;
            return Ok(());
        };
        self.within_limit(start, k + 2, Construct::Declaration)?;
        let body = &self.buf[start + 5..start + k];
        let pseudo = match pseudo_attrs(body) {
            Ok(p) => p,
            Err(problem) => return Err(self.err(start, ErrorKind::BadDeclaration(problem))),
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
                let encoding = enc.clone();
                return Err(self.err(start, ErrorKind::UnsupportedEncoding { encoding }));
            }
        }
        self.pos = start + k + 2;
        Ok(())
    }
}
