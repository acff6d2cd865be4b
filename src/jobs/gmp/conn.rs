//! A GMP session: the connection to gvmd (its Unix socket, or TLS to `gmp_host:gmp_port`),
//! the login, and one command at a time with its response checked for a 2xx status.
//!
//! What can go wrong is said the way a Greenbone admin fixes it: a missing socket (gvmd not
//! running, or listening elsewhere), a socket the agent's user may not open (the group), a
//! refused login (user or password file), and any GMP error with its command, status and
//! status_text.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quick_xml::Reader;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::xml::{self, Element, ReadError};

/// Where gvmd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Socket(PathBuf),
    Tls {
        host: String,
        port: u16,
        /// Extra trust for gvmd's certificate (GVM makes its own CA).
        ca_file: Option<PathBuf>,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Socket(p) => write!(f, "{}", p.display()),
            Endpoint::Tls { host, port, .. } => write!(f, "{host}:{port} (TLS)"),
        }
    }
}

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

/// A logged-in connection to gvmd.
pub struct Session {
    reader: Reader<BufReader<Stream>>,
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
                .map_err(|e| {
                    GmpError::Connect(format!(
                        "TLS with gvmd at {host}:{port} failed: {e} (gvmd's certificate must be \
                         trusted: set gmp_ca_file to GVM's CA certificate, e.g. /var/lib/gvm/CA/cacert.pem)"
                    ))
                })?;
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
    ) -> Result<Session, GmpError> {
        let stream = connect(endpoint).await?;
        let mut reader = Reader::from_reader(BufReader::with_capacity(256 * 1024, stream));
        reader.config_mut().trim_text(false);
        let mut s = Session { reader };
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
        sent.await.map_err(|source| GmpError::Dropped {
            command: command.into(),
            source,
        })
    }

    /// Sends `xml` and reads the response, whatever its status.
    async fn exchange(&mut self, command: &str, xml: &str) -> Result<Element, GmpError> {
        self.send(command, xml).await?;
        let resp = xml::read_element(&mut self.reader)
            .await
            .map_err(|e| GmpError::from_read(command, e))?;
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
        let copied = xml::copy_child(&mut self.reader, "report", out, |root| {
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
        let copied = copied.map_err(|e| GmpError::from_read(command, e))?;
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
