//! A GMP session: the connection to gvmd (its Unix socket, or TLS to `gmp_host:gmp_port`),
//! the login, and one command at a time with its response checked for a 2xx status.
//!
//! What can go wrong is said the way a Greenbone admin fixes it: a missing socket (gvmd not
//! running, or listening elsewhere), a socket the agent's user may not open (the group), a
//! refused login (user or password file), and any GMP error with its command, status and
//! status_text.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use quick_xml::Reader;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::xml::{self, Element, ReadError};
use crate::config::Endpoint;

/// Why a GMP conversation failed.
#[derive(Debug, thiserror::Error)]
pub enum GmpError {
    #[error("{0}")]
    Connect(String),
    /// The connection dropped (or failed) in the middle of `command`.
    #[error("the connection to gvmd was lost during {command}: {source}")]
    Dropped {
        command: String,
        source: std::io::Error,
    },
    #[error("gvmd refused the login of user {user:?} ({status} {text}): check gmp_username and the password in gmp_password_file")]
    Login {
        user: String,
        status: String,
        text: String,
    },
    /// A non-2xx `status`.
    #[error("gvmd answered {command} with {status} {text:?}")]
    Status {
        command: String,
        status: String,
        text: String,
    },
    #[error("gvmd's answer to {command} is not understood: {detail}")]
    Protocol { command: String, detail: String },
    #[error("{0}")]
    Local(String),
}

impl GmpError {
    /// Worth a second try on a new connection.
    pub fn is_dropped(&self) -> bool {
        matches!(self, GmpError::Dropped { .. })
    }

    fn from_read(command: &str, e: ReadError) -> GmpError {
        match e {
            ReadError::Io(source) => GmpError::Dropped {
                command: command.into(),
                source,
            },
            other => GmpError::Protocol {
                command: command.into(),
                detail: other.to_string(),
            },
        }
    }
}

/// A Unix or TLS stream, as one type.
enum Stream {
    Unix(UnixStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The stream, noting when gvmd closed it (or it failed): a response cut inside a tag is a
/// syntax error to the XML reader, but a dropped connection to the session.
struct Tracked {
    stream: Stream,
    ended: bool,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.stream).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                me.ended = true
            }
            Poll::Ready(Err(_)) => me.ended = true,
            _ => {}
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A logged-in connection to gvmd.
pub struct Session {
    reader: Reader<BufReader<Tracked>>,
    /// The longest gvmd may stay silent in the middle of a response.
    idle: Duration,
}

/// How a missing or forbidden socket is explained.
fn socket_error(path: &Path, e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    let p = path.display();
    match e.kind() {
        NotFound => format!(
            "gvmd's socket {p} does not exist: is gvmd running (`systemctl status gvmd`)? If it \
             listens elsewhere (gvmd --unix-socket), set gmp_socket to that path"
        ),
        PermissionDenied => format!(
            "permission denied on gvmd's socket {p}: the agent's user must be in the group that \
             owns it (`ls -l {p}`; e.g. `usermod -aG _gvm hostedscan-agent`, then restart the agent)"
        ),
        ConnectionRefused => format!(
            "nothing accepts connections on {p}: gvmd is not running (`systemctl status gvmd`)"
        ),
        _ => format!("cannot connect to gvmd's socket {p}: {e}"),
    }
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, GmpError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    if let Some(ca) = ca_file {
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| GmpError::Local(format!("gmp_ca_file {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(GmpError::Local(format!(
                "gmp_ca_file {}: no PEM certificate in it",
                ca.display()
            )));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| GmpError::Local(format!("gmp_ca_file {}: {e}", ca.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GmpError::Local(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A failed TLS handshake, said with what fixes it.
fn tls_error(host: &str, port: u16, e: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    let cause = e.get_ref().and_then(|i| i.downcast_ref::<Error>());
    let fix = match cause {
        Some(Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => format!(
            "gvmd's certificate does not name {host:?}: set gmp_host to a name the certificate \
             holds, or make a certificate for it (gvm-manage-certs with GVM_CERTIFICATE_SAN_DNS \
             or GVM_CERTIFICATE_SAN_IP)"
        ),
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            "gvmd's certificate is not trusted: set gmp_ca_file to the CA that signed it \
             (GVM's own CA: /var/lib/gvm/CA/cacert.pem)"
                .to_string()
        }
        Some(Error::InvalidCertificate(_)) => {
            "gvmd's certificate is not valid (expired?): renew it (gvm-manage-certs)".to_string()
        }
        _ => "is gvmd listening with TLS on that port? (gvmd --listen, --port)".to_string(),
    };
    format!("TLS with gvmd at {host}:{port} failed: {e}: {fix}")
}

async fn connect(endpoint: &Endpoint) -> Result<Stream, GmpError> {
    match endpoint {
        Endpoint::Socket(path) => UnixStream::connect(path)
            .await
            .map(Stream::Unix)
            .map_err(|e| GmpError::Connect(socket_error(path, &e))),
        Endpoint::Tls {
            host,
            port,
            ca_file,
        } => {
            let config = tls_config(ca_file.as_deref())?;
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|e| GmpError::Local(format!("gmp_host {host:?}: {e}")))?;
            let tcp = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|e| {
                    GmpError::Connect(format!("cannot connect to gvmd at {host}:{port}: {e}"))
                })?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| GmpError::Connect(tls_error(host, *port, &e)))?;
            Ok(Stream::Tls(Box::new(tls)))
        }
    }
}

/// Whether a `status` attribute says success (GMP uses 200, 201 and 202).
fn is_ok(status: &str) -> bool {
    status.len() == 3 && status.starts_with('2')
}

impl Session {
    /// Connects and logs in. The password is only ever written to the connection.
    pub async fn open(
        endpoint: &Endpoint,
        user: &str,
        password: &str,
        idle: Duration,
    ) -> Result<Session, GmpError> {
        let stream = match tokio::time::timeout(idle, connect(endpoint)).await {
            Ok(s) => s?,
            Err(_) => {
                return Err(GmpError::Connect(format!(
                    "gvmd at {endpoint} did not accept the connection within {}",
                    humantime::format_duration(idle)
                )))
            }
        };
        let stream = Tracked {
            stream,
            ended: false,
        };
        let mut reader = Reader::from_reader(BufReader::with_capacity(256 * 1024, stream));
        reader.config_mut().trim_text(false);
        let mut s = Session { reader, idle };
        let cmd = format!(
            "<authenticate><credentials><username>{}</username><password>{}</password></credentials></authenticate>",
            xml::escape(user),
            xml::escape(password)
        );
        let resp = s.exchange("authenticate", &cmd).await?;
        let status = resp.attr("status").unwrap_or_default();
        if !is_ok(status) {
            return Err(GmpError::Login {
                user: user.into(),
                status: status.into(),
                text: resp.attr("status_text").unwrap_or_default().into(),
            });
        }
        Ok(s)
    }

    async fn send(&mut self, command: &str, xml: &str) -> Result<(), GmpError> {
        let w = self.reader.get_mut().get_mut();
        let sent = async {
            w.write_all(xml.as_bytes()).await?;
            w.flush().await
        };
        let sent = match tokio::time::timeout(self.idle, sent).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "gvmd does not read its commands",
            )),
        };
        sent.map_err(|source| GmpError::Dropped {
            command: command.into(),
            source,
        })
    }

    /// A read error as the session sees it: after the connection ended, whatever the XML
    /// reader made of the cut (an unclosed tag, say) is a dropped connection.
    fn read_error(&self, command: &str, e: ReadError) -> GmpError {
        match e {
            ReadError::Malformed(detail) if self.reader.get_ref().get_ref().ended => {
                GmpError::Dropped {
                    command: command.into(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "gvmd closed the connection in the middle of its answer ({detail})"
                        ),
                    ),
                }
            }
            e => GmpError::from_read(command, e),
        }
    }

    /// Sends `xml` and reads the response, whatever its status.
    async fn exchange(&mut self, command: &str, xml: &str) -> Result<Element, GmpError> {
        self.send(command, xml).await?;
        let resp = match xml::read_element(&mut self.reader, self.idle).await {
            Ok(r) => r,
            Err(e) => return Err(self.read_error(command, e)),
        };
        if resp.attr("status").is_none() {
            return Err(GmpError::Protocol {
                command: command.into(),
                detail: format!("<{}> has no status", resp.name),
            });
        }
        Ok(resp)
    }

    /// Sends `xml` (the command `command`) and returns the response if its status is 2xx.
    pub async fn call(&mut self, command: &str, xml: &str) -> Result<Element, GmpError> {
        let resp = self.exchange(command, xml).await?;
        check(command, &resp)?;
        Ok(resp)
    }

    /// Sends `xml` and copies the response's first `<report>` into `out`, streaming.
    pub async fn fetch_into<W: AsyncWrite + Unpin>(
        &mut self,
        command: &str,
        xml: &str,
        out: &mut W,
    ) -> Result<u64, GmpError> {
        self.send(command, xml).await?;
        let mut refused = None;
        let copied = xml::copy_child(&mut self.reader, "report", out, self.idle, |root| {
            if let Err(e) = check(command, root) {
                refused = Some(e);
                return Err(ReadError::Malformed(String::new()));
            }
            Ok(())
        })
        .await;
        if let Some(e) = refused {
            return Err(e);
        }
        let copied = match copied {
            Ok(c) => c,
            Err(e) => return Err(self.read_error(command, e)),
        };
        if !copied.found {
            return Err(GmpError::Protocol {
                command: command.into(),
                detail: "the response holds no report".into(),
            });
        }
        Ok(copied.bytes)
    }
}

/// A non-2xx status as an error.
fn check(command: &str, resp: &Element) -> Result<(), GmpError> {
    let status = resp.attr("status").unwrap_or_default();
    if is_ok(status) {
        return Ok(());
    }
    Err(GmpError::Status {
        command: command.into(),
        status: status.into(),
        text: resp.attr("status_text").unwrap_or_default().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_problems_say_what_to_do() {
        let p = Path::new("/run/gvmd/gvmd.sock");
        let e = |k| std::io::Error::from(k);
        let missing = socket_error(p, &e(std::io::ErrorKind::NotFound));
        assert!(
            missing.contains("is gvmd running") && missing.contains("gmp_socket"),
            "{missing}"
        );
        let denied = socket_error(p, &e(std::io::ErrorKind::PermissionDenied));
        assert!(
            denied.contains("must be in the group") && denied.contains("usermod -aG"),
            "{denied}"
        );
        let refused = socket_error(p, &e(std::io::ErrorKind::ConnectionRefused));
        assert!(refused.contains("gvmd is not running"), "{refused}");
    }

    #[test]
    fn only_2xx_is_success() {
        for (s, ok) in [
            ("200", true),
            ("201", true),
            ("202", true),
            ("400", false),
            ("2", false),
            ("", false),
        ] {
            assert_eq!(is_ok(s), ok, "{s}");
        }
    }
}
