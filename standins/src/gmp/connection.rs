//! One client connection of the GMP stand-in: commands parsed incrementally from the socket with
//! quick-xml (a command ends when its root element closes), refused at their start tag as gvmd
//! does, dispatched, and answered (or cut, dropped or left unanswered as scripted).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::commands::{dispatch, Reply};
use super::reports::write_reports;
use super::{lock, Shared};

/// A parsed command element (names lowercased: gvmd compares them with strcasecmp).
#[derive(Clone, Debug, Default)]
pub(super) struct Elem {
    pub(super) name: String,
    pub(super) attrs: Vec<(String, String)>,
    pub(super) text: String,
    pub(super) children: Vec<Elem>,
}

impl Elem {
    fn from_start(e: &BytesStart<'_>) -> Result<Elem, ()> {
        let name = String::from_utf8_lossy(e.name().as_ref()).to_ascii_lowercase();
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|_| ())?;
            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
            let value = a.unescape_value().map_err(|_| ())?.into_owned();
            attrs.push((key, value));
        }
        Ok(Elem {
            name,
            attrs,
            ..Elem::default()
        })
    }

    pub(super) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// gvmd's boolean attributes: present and not "0".
    pub(super) fn flag(&self, name: &str) -> bool {
        self.attr(name).is_some_and(|v| v != "0")
    }

    pub(super) fn child(&self, name: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.name == name)
    }

    pub(super) fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    pub(super) fn child_id(&self, name: &str) -> Option<&str> {
        self.child(name).and_then(|c| c.attr("id"))
    }
}

/// Records every byte read from the socket, so a command's text can be kept as sent.
struct Tee {
    inner: OwnedReadHalf,
    seen: Vec<u8>,
    /// Stream offset of `seen[0]`.
    base: u64,
}

impl AsyncRead for Tee {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.seen.extend_from_slice(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

const KNOWN: [&str; 13] = [
    "get_version",
    "authenticate",
    "get_targets",
    "create_target",
    "modify_target",
    "delete_target",
    "get_tasks",
    "create_task",
    "modify_task",
    "start_task",
    "stop_task",
    "delete_task",
    "get_reports",
];

pub(super) async fn serve(stream: UnixStream, shared: Arc<Shared>) {
    let (r, mut w) = stream.into_split();
    let tee = Tee {
        inner: r,
        seen: Vec::new(),
        base: 0,
    };
    let mut reader = Reader::from_reader(BufReader::new(tee));
    let mut authed = false;
    let mut buf = Vec::new();
    let mut stack: Vec<Elem> = Vec::new();
    let mut start = 0u64;
    loop {
        if stack.is_empty() {
            start = reader.buffer_position();
        }
        buf.clear();
        let ev = match reader.read_event_into_async(&mut buf).await {
            Ok(ev) => ev.into_owned(),
            // Malformed XML: gvmd stops parsing and closes the connection.
            Err(_) => return,
        };
        // (element, complete, just opened)
        let (elem, complete, opened) = match ev {
            Event::Start(e) => match Elem::from_start(&e) {
                Ok(el) => (el, false, true),
                Err(()) => return,
            },
            Event::Empty(e) => match Elem::from_start(&e) {
                Ok(el) => (el, true, true),
                Err(()) => return,
            },
            Event::End(_) => match stack.pop() {
                Some(el) => (el, true, false),
                None => return,
            },
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    match t.xml_content() {
                        Ok(s) => top.text.push_str(&s),
                        Err(_) => return,
                    }
                }
                continue;
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
                continue;
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    if let Ok(Some(ch)) = r.resolve_char_ref() {
                        top.text.push(ch);
                    } else {
                        let name = String::from_utf8_lossy(&r);
                        match resolve_predefined_entity(&name) {
                            Some(s) => top.text.push_str(s),
                            None => return,
                        }
                    }
                }
                continue;
            }
            Event::Eof => return,
            _ => continue,
        };
        if opened && stack.is_empty() {
            // The start tag of a command. gvmd answers unknown commands, and commands before
            // authenticating, right here, then closes the connection.
            let name = elem.name.as_str();
            let refusal = if !authed && name != "get_version" && name != "authenticate" {
                Some("Only command GET_VERSION is allowed before AUTHENTICATE")
            } else if !KNOWN.contains(&name) {
                Some("Bogus command name")
            } else {
                None
            };
            if let Some(text) = refusal {
                let pos = reader.buffer_position();
                let raw = take_raw(reader.get_mut().get_mut(), start, pos);
                {
                    let mut s = lock(&shared.state);
                    s.commands.push(elem.name.clone());
                    s.raw.push(raw);
                }
                let reply = format!("<gmp_response status=\"400\" status_text=\"{text}\"/>");
                let _ = w.write_all(reply.as_bytes()).await;
                let _ = w.flush().await;
                return;
            }
        }
        if !complete {
            stack.push(elem);
            continue;
        }
        if let Some(parent) = stack.last_mut() {
            parent.children.push(elem);
            continue;
        }
        // A complete command.
        let pos = reader.buffer_position();
        let raw = take_raw(reader.get_mut().get_mut(), start, pos);
        let (reply, cut) = {
            let mut s = lock(&shared.state);
            s.commands.push(elem.name.clone());
            s.raw.push(raw);
            let reply = dispatch(&mut s, &elem, &mut authed);
            let cut = s.cuts.get_mut(&elem.name).and_then(VecDeque::pop_front);
            (reply, cut)
        };
        let mut limited = Limited {
            w: &mut w,
            left: cut.unwrap_or(usize::MAX),
        };
        let ok = match reply {
            Reply::Drop => return,
            Reply::Hang => std::future::pending::<bool>().await,
            Reply::Xml(xml) => limited.write_all(xml.as_bytes()).await.is_ok(),
            Reply::Reports(job) => write_reports(&mut limited, job).await.is_ok(),
        };
        if cut.is_some() {
            // The answer was cut: close, as a gvmd that died mid-answer would.
            return;
        }
        if !ok || w.flush().await.is_err() {
            return;
        }
    }
}

/// The bytes of the stream from `start` to `end`, as text, trimmed; forgets what came before
/// `end`.
fn take_raw(tee: &mut Tee, start: u64, end: u64) -> String {
    let from = (start.saturating_sub(tee.base) as usize).min(tee.seen.len());
    let to = (end.saturating_sub(tee.base) as usize).min(tee.seen.len());
    let raw = String::from_utf8_lossy(&tee.seen[from..to.max(from)])
        .trim()
        .to_string();
    tee.seen.drain(..to);
    tee.base += to as u64;
    raw
}

/// A writer that fails once `left` bytes have gone through (for [`super::GmpStandIn::cut_next`]).
struct Limited<'a> {
    w: &'a mut OwnedWriteHalf,
    left: usize,
}

impl AsyncWrite for Limited<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.left == 0 {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = buf.len().min(self.left);
        let me = &mut *self;
        match Pin::new(&mut *me.w).poll_write(cx, &buf[..n]) {
            Poll::Ready(Ok(k)) => {
                me.left -= k;
                Poll::Ready(Ok(k))
            }
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.w).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.w).poll_shutdown(cx)
    }
}
