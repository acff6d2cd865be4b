//! The HostedScan API over HTTP: the client (rustls, certificates always verified, optional
//! extra CA and proxy, no redirects so the key never travels elsewhere), source listing and
//! creation, and the streamed multipart upload (its body checked by `verify.rs`, and counted by
//! `counted.rs` for the progress display). Each call returns an [`Attempt`]; deciding what
//! to do about it is `retry.rs`'s job.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::multipart::{Form, Part};

use super::counted::Counted;
use super::retry::Attempt;
use super::verify::{Check, Verified};
use crate::config::{ApiKey, ApiSettings};
use crate::spool::QueuedEntry;

pub const USER_AGENT: &str = concat!("hostedscan-agent/", env!("CARGO_PKG_VERSION"));
const KEY_HEADER: &str = "X-HOSTEDSCAN-API-KEY";
/// How much of a response body is kept for messages.
const BODY_LIMIT: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("api.ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("api.proxy: {0}")]
    Proxy(String),
    #[error("the API key contains characters that cannot be sent in a header")]
    BadKey,
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    settings: ApiSettings,
}

impl Api {
    pub fn new(settings: &ApiSettings, key: &ApiKey) -> Result<Api, ClientError> {
        let mut headers = HeaderMap::new();
        let mut v = HeaderValue::from_str(key.expose()).map_err(|_| ClientError::BadKey)?;
        v.set_sensitive(true);
        headers.insert(KEY_HEADER, v);
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &settings.ca_file {
            let pem = std::fs::read(ca).map_err(|e| ClientError::CaFile {
                path: ca.display().to_string(),
                message: e.to_string(),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientError::CaFile {
                    path: ca.display().to_string(),
                    message: format!("not a PEM certificate bundle: {e}"),
                })?;
            if certs.is_empty() {
                return Err(ClientError::CaFile {
                    path: ca.display().to_string(),
                    message: "holds no PEM certificate".into(),
                });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let Some(p) = &settings.proxy {
            let proxy = reqwest::Proxy::all(p.as_str())
                .map_err(|e| ClientError::Proxy(e.to_string()))?
                .no_proxy(reqwest::NoProxy::from_env());
            b = b.proxy(proxy);
        }
        let client = b.build().map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Api {
            client,
            settings: settings.clone(),
        })
    }

    pub fn settings(&self) -> &ApiSettings {
        &self.settings
    }

    /// `GET /sources`, one page.
    pub async fn list_sources(&self, page_token: Option<&str>) -> Attempt {
        let mut req = self.client.get(self.settings.endpoint("sources"));
        if let Some(t) = page_token {
            req = req.query(&[("page_token", t)]);
        }
        into_attempt(req.send().await).await
    }

    /// `POST /sources` for an IMPORTED source.
    pub async fn create_source(&self, name: &str) -> Attempt {
        let req = self
            .client
            .post(self.settings.endpoint("sources"))
            .json(&serde_json::json!({"source_type": "IMPORTED", "name": name}));
        into_attempt(req.send().await).await
    }

    /// `POST /results`: the queued file streamed from disk as the `file` part, its bytes added
    /// to `sent` as the request takes them (for the progress display).
    pub async fn upload(
        &self,
        entry: &QueuedEntry,
        source_id: &str,
        sent: Option<Arc<AtomicU64>>,
    ) -> Attempt {
        let name = entry.meta.file.file_name.clone();
        let mime = &entry.meta.file.content_type;
        let bad_mime = |e: reqwest::Error| Attempt::Transport {
            message: format!("bad content type {mime}: {e}"),
            timeout: false,
            connect: false,
        };
        // A small copy is read whole and checked before anything is sent (one blocking read,
        // the request in one write); a larger one is streamed and checked as it goes.
        let (part, check) = if entry.meta.file.size <= SMALL_BODY {
            let (path, size, expected) = (
                entry.data_path.clone(),
                entry.meta.file.size,
                entry.meta.file.expected(),
            );
            let bytes =
                match tokio::task::spawn_blocking(move || read_checked(&path, size, &expected))
                    .await
                {
                    Ok(Ok(b)) => b,
                    Ok(Err(a)) => return a,
                    Err(e) => {
                        return Attempt::Local {
                            message: format!("reading the queued copy failed: {e}"),
                        }
                    }
                };
            if let Some(sent) = &sent {
                sent.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            }
            match Part::bytes(bytes).file_name(name).mime_str(mime) {
                Ok(p) => (p, None),
                Err(e) => return bad_mime(e),
            }
        } else {
            match self.streamed(entry, sent).await {
                Ok((body, len, check)) => {
                    match Part::stream_with_length(body, len)
                        .file_name(name)
                        .mime_str(mime)
                    {
                        Ok(p) => (p, Some(check)),
                        Err(e) => return bad_mime(e),
                    }
                }
                Err(a) => return a,
            }
        };
        let mut form = Form::new()
            .text("source_id", source_id.to_string())
            .text("scan_type", entry.meta.file.scan_type.as_str());
        if let Some(t) = &entry.meta.file.target {
            form = form.text("target", t.clone());
        }
        let form = form.part("file", part);
        let req = self
            .client
            .post(self.settings.endpoint("results"))
            .multipart(form);
        let attempt = into_attempt(req.send().await).await;
        let Some(check) = check else {
            return attempt;
        };
        // Whatever the server answered to a body that failed its check, it did not get the file.
        if let Some(reason) = check.damage() {
            return Attempt::Damaged {
                reason: reason.to_string(),
            };
        }
        match attempt {
            // An answer before the last byte (a proxy, a server that does not read bodies) says
            // nothing about the file: it was not received whole.
            Attempt::Response { status, .. }
                if (200..300).contains(&status) && !check.complete() =>
            {
                Attempt::Local {
                    message: format!(
                        "HTTP {status} came before the whole file was sent; not taken as accepted"
                    ),
                }
            }
            a => a,
        }
    }
}

impl Api {
    /// The queued copy as a body streamed from disk, checked as it goes; its length.
    async fn streamed(
        &self,
        entry: &QueuedEntry,
        sent: Option<Arc<AtomicU64>>,
    ) -> Result<(reqwest::Body, u64, Arc<Check>), Attempt> {
        let file = tokio::fs::File::open(&entry.data_path)
            .await
            .map_err(|e| Attempt::Local {
                message: format!("cannot open queued file {}: {e}", entry.data_path.display()),
            })?;
        let len = file
            .metadata()
            .await
            .map(|m| m.len())
            .map_err(|e| Attempt::Local {
                message: format!("cannot stat queued file {}: {e}", entry.data_path.display()),
            })?;
        if len != entry.meta.file.size {
            return Err(Attempt::Damaged {
                reason: format!(
                    "the queued copy is {len} bytes but {} were validated",
                    entry.meta.file.size
                ),
            });
        }
        let check = Arc::new(Check::default());
        let body = reqwest::Body::wrap_stream(Counted::new(
            Verified::new(file, len, entry.meta.file.expected(), check.clone()),
            sent,
        ));
        Ok((body, len, check))
    }
}

/// Queued copies up to this size are read whole and checked before they are sent.
const SMALL_BODY: u64 = 256 * 1024;

/// A small queued copy, read whole and checked against what admission validated (the same
/// reasons as the streamed body's check): a damaged copy is never sent at all.
fn read_checked(
    path: &std::path::Path,
    size: u64,
    expected: &crate::spool::digest::Expected,
) -> Result<Vec<u8>, Attempt> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Attempt::Local {
        message: format!("cannot open queued file {}: {e}", path.display()),
    })?;
    let len = file
        .metadata()
        .map(|m| m.len())
        .map_err(|e| Attempt::Local {
            message: format!("cannot stat queued file {}: {e}", path.display()),
        })?;
    let damaged = |reason: String| Attempt::Damaged { reason };
    if len != size {
        return Err(damaged(format!(
            "the queued copy is {len} bytes but {size} were validated"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| damaged(format!("reading the queued copy failed: {e}")))?;
    if bytes.len() as u64 != size {
        return Err(damaged(format!(
            "the queued copy ended after {} of the {size} bytes that were validated",
            bytes.len()
        )));
    }
    if let Some(why) = expected.check(&bytes) {
        return Err(damaged(why));
    }
    Ok(bytes)
}

async fn into_attempt(res: reqwest::Result<reqwest::Response>) -> Attempt {
    let mut resp = match res {
        Ok(r) => r,
        Err(e) => return transport(e),
    };
    let status = resp.status().as_u16();
    let header = |r: &reqwest::Response, h| {
        r.headers()
            .get(h)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(String::from)
    };
    let retry_after = header(&resp, RETRY_AFTER);
    let content_type = header(&resp, reqwest::header::CONTENT_TYPE);
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                let room = BODY_LIMIT.saturating_sub(body.len());
                body.extend_from_slice(&c[..c.len().min(room)]);
                if room == 0 {
                    break;
                }
            }
            Ok(None) => break,
            // The status is what matters; a body cut short still tells us the outcome.
            Err(_) => break,
        }
    }
    Attempt::Response {
        status,
        retry_after,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn transport(e: reqwest::Error) -> Attempt {
    // reqwest's Display includes the URL (never the key, which is only in a header) and the
    // cause chain is where the useful part ("connection refused") is.
    let mut message = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    Attempt::Transport {
        message,
        timeout: e.is_timeout(),
        // Refused, DNS, TLS, or the connect timeout: the request never reached the API.
        connect: e.is_connect(),
    }
}
