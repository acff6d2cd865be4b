//! GMP's XML, both ways: commands written with every value escaped, and responses read off
//! the connection either as a small element tree (every command but the report) or copied
//! event by event into a file (the report, which can be hundreds of MB).
//!
//! GMP has no framing: a response is one element, and it ends when that element closes.

use std::borrow::Cow;

use std::time::Duration;

use quick_xml::events::Event;
use quick_xml::Reader;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};

/// The largest response read into memory (a report is streamed to disk instead). A lookup
/// by name answers in a few KB; this only stops a runaway answer from filling memory.
pub const MAX_RESPONSE: usize = 16 << 20;

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The connection ended or failed: worth one more try on a new connection.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a GMP response.
    #[error("{0}")]
    Malformed(String),
    #[error("the response is larger than {} MiB", MAX_RESPONSE >> 20)]
    TooLarge,
}

impl From<quick_xml::Error> for ReadError {
    fn from(e: quick_xml::Error) -> ReadError {
        match e {
            quick_xml::Error::Io(io) => {
                ReadError::Io(std::io::Error::new(io.kind(), io.to_string()))
            }
            other => ReadError::Malformed(other.to_string()),
        }
    }
}

/// The next event, or an I/O error when gvmd sends nothing for `idle`.
async fn next_event<'b, R: AsyncBufRead + Unpin>(
    reader: &mut Reader<R>,
    buf: &'b mut Vec<u8>,
    idle: Duration,
) -> Result<Event<'b>, ReadError> {
    match tokio::time::timeout(idle, reader.read_event_into_async(buf)).await {
        Ok(ev) => Ok(ev?),
        Err(_) => Err(ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("gvmd sent nothing for {}", humantime::format_duration(idle)),
        ))),
    }
}

/// `s` made safe for XML text and attribute values.
pub fn escape(s: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// One element of a response: enough of a tree for GMP's small answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// The text directly inside (references resolved), whitespace kept.
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element at `path` (child names separated by `/`).
    pub fn at(&self, path: &str) -> Option<&Element> {
        path.split('/').try_fold(self, |e, n| e.child(n))
    }

    /// The trimmed text of the element at `path`, if there is one.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        self.at(path).map(|e| e.text.trim())
    }

    /// The `id` attribute of the element at `path`.
    pub fn id_at(&self, path: &str) -> Option<&str> {
        self.at(path)
            .and_then(|e| e.attr("id"))
            .filter(|s| !s.is_empty())
    }
}

fn name_of(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

fn element_of<R>(
    reader: &Reader<R>,
    e: &quick_xml::events::BytesStart<'_>,
) -> Result<Element, ReadError> {
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| ReadError::Malformed(e.to_string()))?;
        let v = a
            .decode_and_unescape_value(reader.decoder())
            .map_err(|e| ReadError::Malformed(e.to_string()))?;
        attrs.push((name_of(a.key.as_ref()), v.into_owned()));
    }
    Ok(Element {
        name: name_of(e.name().as_ref()),
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// The text an entity or character reference stands for.
fn resolve_ref(r: &quick_xml::events::BytesRef<'_>) -> Result<String, ReadError> {
    if let Some(c) = r
        .resolve_char_ref()
        .map_err(|e| ReadError::Malformed(e.to_string()))?
    {
        return Ok(c.to_string());
    }
    let name = r
        .decode()
        .map_err(|e| ReadError::Malformed(e.to_string()))?;
    match quick_xml::escape::resolve_predefined_entity(&name) {
        Some(s) => Ok(s.to_string()),
        None => Err(ReadError::Malformed(format!("unknown entity &{name};"))),
    }
}

/// Reads one whole response element into memory; `idle` bounds each wait for more.
pub async fn read_element<R: AsyncBufRead + Unpin>(
    reader: &mut Reader<R>,
    idle: Duration,
) -> Result<Element, ReadError> {
    let mut buf = Vec::new();
    let mut stack: Vec<Element> = Vec::new();
    let start = reader.buffer_position();
    loop {
        buf.clear();
        let ev = next_event(reader, &mut buf, idle).await?;
        if reader.buffer_position() - start > MAX_RESPONSE as u64 {
            return Err(ReadError::TooLarge);
        }
        let done = match ev {
            Event::Start(e) => {
                stack.push(element_of(reader, &e)?);
                None
            }
            Event::Empty(e) => Some(element_of(reader, &e)?),
            Event::End(_) => stack.pop(),
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t
                        .decode()
                        .map_err(|e| ReadError::Malformed(e.to_string()))?;
                    top.text.push_str(&s);
                } else if !t.iter().all(u8::is_ascii_whitespace) {
                    return Err(ReadError::Malformed(
                        "text outside the response element".into(),
                    ));
                }
                None
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
                None
            }
            Event::GeneralRef(r) => {
                let s = resolve_ref(&r)?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
                None
            }
            Event::Eof => {
                return Err(ReadError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "gvmd closed the connection",
                )))
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => None,
        };
        if let Some(el) = done {
            match stack.last_mut() {
                Some(parent) => parent.children.push(el),
                None => return Ok(el),
            }
        }
    }
}

/// What [`copy_child`] found.
#[derive(Debug, Default)]
pub struct Copied {
    /// The response element itself (attributes only: its status).
    pub root: Element,
    /// Whether a child named as asked was copied.
    pub found: bool,
    /// Bytes written.
    pub bytes: u64,
}

/// Reads one response and copies its first child element named `child` (with everything in
/// it, byte for byte as gvmd sent it) to `out`, holding no more than one XML event in
/// memory. Before anything is written, `check_root` sees the response element and can stop
/// the copy (a GMP error has no child to copy). The rest of the response is read and
/// dropped, so the connection is ready for the next command.
pub async fn copy_child<R, W>(
    reader: &mut Reader<R>,
    child: &str,
    out: &mut W,
    idle: Duration,
    check_root: impl FnOnce(&Element) -> Result<(), ReadError>,
) -> Result<Copied, ReadError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut copying = false;
    let mut copied = Copied::default();
    let mut check_root = Some(check_root);
    loop {
        buf.clear();
        let ev = next_event(reader, &mut buf, idle).await?;
        if let Event::Eof = ev {
            return Err(ReadError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "gvmd closed the connection in the middle of the report",
            )));
        }
        // The depth of this event: a start tag opens the next level.
        let (opens, closes) = match &ev {
            Event::Start(_) => (true, false),
            Event::End(_) => (false, true),
            _ => (false, false),
        };
        if depth == 0 {
            match &ev {
                Event::Start(e) | Event::Empty(e) => {
                    copied.root = element_of(reader, e)?;
                    if let Some(check) = check_root.take() {
                        check(&copied.root)?;
                    }
                    if matches!(ev, Event::Empty(_)) {
                        return Ok(copied);
                    }
                }
                Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                _ => return Err(ReadError::Malformed("not a GMP response".into())),
            }
            depth = 1;
            continue;
        }
        if depth == 1 && !copied.found {
            if let Event::Start(e) | Event::Empty(e) = &ev {
                if e.name().as_ref() == child.as_bytes() {
                    copying = true;
                    copied.found = true;
                }
            }
        }
        if copying {
            copied.bytes += write_event(out, &ev).await?;
        }
        if opens {
            depth += 1;
        } else if closes {
            depth -= 1;
            if depth == 0 {
                return Ok(copied);
            }
        }
        if copying && depth == 1 {
            // The copied element has closed (or was empty).
            copying = false;
        }
    }
}

/// Writes `ev` as XML text, exactly as it was read (quick-xml keeps events raw).
async fn write_event<W: AsyncWrite + Unpin>(out: &mut W, ev: &Event<'_>) -> std::io::Result<u64> {
    let parts: [&[u8]; 3] = match ev {
        Event::Start(e) => [b"<", e.as_ref(), b">"],
        Event::Empty(e) => [b"<", e.as_ref(), b"/>"],
        Event::End(e) => [b"</", e.as_ref(), b">"],
        Event::Text(t) => [b"", t.as_ref(), b""],
        Event::GeneralRef(r) => [b"&", r.as_ref(), b";"],
        Event::CData(t) => [b"<![CDATA[", t.as_ref(), b"]]>"],
        Event::Comment(t) => [b"<!--", t.as_ref(), b"-->"],
        Event::PI(t) => [b"<?", t.as_ref(), b"?>"],
        Event::Decl(t) => [b"<?", t.as_ref(), b"?>"],
        Event::DocType(t) => [b"<!DOCTYPE ", t.as_ref(), b">"],
        Event::Eof => [b"", b"", b""],
    };
    let mut n = 0u64;
    for p in parts {
        out.write_all(p).await?;
        n += p.len() as u64;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(5);

    fn reader(s: &'static str) -> Reader<&'static [u8]> {
        Reader::from_reader(s.as_bytes())
    }

    #[tokio::test]
    async fn a_response_is_read_up_to_its_end_and_no_further() {
        let mut r = reader(
            r#"<get_tasks_response status="200" status_text="OK"><task id="t1"><name>a &amp; b&#x21;</name><status>Running</status><target id="x"/></task></get_tasks_response><next_response status="200"/>"#,
        );
        let e = read_element(&mut r, IDLE).await.unwrap();
        assert_eq!(e.name, "get_tasks_response");
        assert_eq!(e.attr("status"), Some("200"));
        assert_eq!(e.text_at("task/name"), Some("a & b!"));
        assert_eq!(e.id_at("task/target"), Some("x"));
        let next = read_element(&mut r, IDLE).await.unwrap();
        assert_eq!(next.name, "next_response");
    }

    #[tokio::test]
    async fn a_cut_response_is_a_dropped_connection() {
        let mut r = reader(r#"<get_tasks_response status="200"><task id="t1"><name>a"#);
        assert!(matches!(
            read_element(&mut r, IDLE).await,
            Err(ReadError::Io(_))
        ));
    }

    #[tokio::test]
    async fn the_report_is_copied_byte_for_byte_without_its_wrapper() {
        let report = r#"<report id="r" format_id="f"><report id="r"><results start="1" max="-1"><result id="1"><name>a &lt; b</name><description><![CDATA[x]]></description></result><empty/></results></report></report>"#;
        let doc = format!(
            r#"<get_reports_response status="200" status_text="OK">{report}<filters id=""><term>rows=-1</term></filters><report_count>1</report_count></get_reports_response>"#
        );
        let doc: &'static str = Box::leak(doc.into_boxed_str());
        let mut r = reader(doc);
        let mut out = Vec::new();
        let c = copy_child(&mut r, "report", &mut out, IDLE, |_| Ok(()))
            .await
            .unwrap();
        assert!(c.found);
        assert_eq!(String::from_utf8(out).unwrap(), report);
        assert_eq!(c.bytes as usize, report.len());
        assert_eq!(c.root.attr("status"), Some("200"));
    }

    #[tokio::test]
    async fn an_error_response_writes_nothing() {
        let mut r =
            reader(r#"<get_reports_response status="404" status_text="Failed to find report"/>"#);
        let mut out = Vec::new();
        let e = copy_child(&mut r, "report", &mut out, IDLE, |root| {
            Err(ReadError::Malformed(root.attr("status").unwrap().into()))
        })
        .await;
        assert!(matches!(e, Err(ReadError::Malformed(s)) if s == "404"));
        assert!(out.is_empty());
    }

    #[test]
    fn values_are_escaped() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
