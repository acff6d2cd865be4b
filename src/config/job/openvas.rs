//! `scanner = "openvas"`: the GMP keys of an openvas job checked and turned into
//! [`OpenvasSettings`]: where gvmd listens (its socket, or TLS to `gmp_host`), who logs in (the
//! user, and a password file other users cannot read), and the gvmd objects the scan uses
//! (UUIDs, with gvmd's defaults). The types are the config's; `crate::gmp` connects with them
//! and `crate::scanners::openvas` runs the scan.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::{absolute, secret};
use super::{JobCheck, OpenvasJob, ScannerJob, TargetKind, Targets};
use crate::validate::ScanType;

/// The scanner-specific keys an openvas job takes.
pub const KEYS: &[&str] = &[
    "targets",
    "gmp_socket",
    "gmp_host",
    "gmp_port",
    "gmp_username",
    "gmp_password_file",
    "port_list_id",
    "scan_config_id",
    "scanner_id",
    "gmp_ca_file",
    "min_qod",
    "cleanup",
];
pub const DEFAULT_SCAN_TYPE: Option<ScanType> = Some(ScanType::Openvas);
pub const SCAN_TYPES: &[ScanType] = &[ScanType::Openvas];
/// Checked further by `check_gvmd_host`: gvmd's host syntax is narrower than nmap's.
pub const TARGET_KIND: TargetKind = TargetKind::Network;
pub const INSTALL_HINT: &str = "install Greenbone/gvmd";

/// gvmd's socket when `gmp_socket` is not set.
pub const DEFAULT_GMP_SOCKET: &str = "/run/gvmd/gvmd.sock";
/// gvmd's TLS port when `gmp_host` is set without `gmp_port`.
pub const DEFAULT_GMP_PORT: u16 = 9390;
/// gvmd's "All IANA assigned TCP" port list.
pub const DEFAULT_PORT_LIST: &str = "33d0cd82-57c6-11e1-8ed1-406186ea4fc5";
/// gvmd's "Full and fast" scan config.
pub const DEFAULT_SCAN_CONFIG: &str = "daba56c8-73ec-11df-a475-002264764cea";
/// gvmd's "OpenVAS Default" scanner.
pub const DEFAULT_SCANNER: &str = "08b69003-5fc2-4037-a479-93b440211c73";
/// gvmd's (and GSA's) default minimum quality of detection: results below it are hidden.
pub const DEFAULT_MIN_QOD: u8 = 70;
/// gvmd can take minutes to start sending a large report; longer silence is a hung gvmd.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(600);

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

/// An `openvas` job's GMP settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenvasSettings {
    pub endpoint: Endpoint,
    pub username: String,
    /// Read at each run (so a new password needs no restart); never logged.
    pub password_file: PathBuf,
    pub port_list_id: String,
    pub scan_config_id: String,
    pub scanner_id: String,
    /// Delete the task and target once the report is safely queued.
    pub cleanup: bool,
    /// Default [`DEFAULT_MIN_QOD`].
    pub min_qod: u8,
    /// How often the task's status is asked for (not a config key: the default suits gvmd;
    /// tests make it faster).
    pub polling: Polling,
    /// The longest gvmd may take to accept a connection, or stay silent in the middle of an
    /// answer, before the connection counts as dropped ([`DEFAULT_REPLY_TIMEOUT`]; not a
    /// config key).
    pub reply_timeout: Duration,
}

/// How often the task's status is asked for: `first`, growing by half each time up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Polling {
    fn default() -> Polling {
        Polling {
            first: Duration::from_secs(2),
            max: Duration::from_secs(60),
        }
    }
}

impl Polling {
    /// The interval after one of `now`.
    pub fn next(&self, now: Duration) -> Duration {
        (now + now / 2).min(self.max).max(self.first.min(self.max))
    }
}

pub(super) fn check(c: &mut JobCheck<'_>) -> Option<ScannerJob> {
    let targets = c.targets(true, super::target::check_gvmd_host);
    let key = |k: &str| format!("job[{}].{k}", c.i);
    let settings = settings(c.j, &key, c.c, c.warnings)?;
    Some(ScannerJob::Openvas(OpenvasJob {
        targets: Targets::new(targets)?,
        settings,
    }))
}

/// Whether `s` is shaped like the UUIDs gvmd gives its objects.
fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The settings of job `j` (`key` names its keys), or `None` with the problems in `c`.
fn settings(
    j: &super::super::raw::RawJob,
    key: &dyn Fn(&str) -> String,
    c: &mut super::super::Checker,
    warnings: &mut Vec<String>,
) -> Option<OpenvasSettings> {
    let before = c.problems.len();
    let endpoint = match (&j.gmp_host, &j.gmp_socket) {
        (Some(_), Some(_)) => {
            c.push(
                key("gmp_host"),
                "give gmp_socket (gvmd's Unix socket) or gmp_host (gvmd over TLS), not both",
            );
            None
        }
        (Some(host), None) => {
            let port = match j.gmp_port {
                None => Some(DEFAULT_GMP_PORT),
                Some(p) => match u16::try_from(p) {
                    Ok(p) if p > 0 => Some(p),
                    _ => {
                        c.push(
                            key("gmp_port"),
                            format!("{p} is not a port: use 1 to 65535"),
                        );
                        None
                    }
                },
            };
            if host.is_empty() || host.starts_with('-') || host.contains(['/', ' ']) {
                c.push(
                    key("gmp_host"),
                    format!("{host:?} is not a host name or address"),
                );
            }
            let ca_file = j.gmp_ca_file.as_deref().map(absolute);
            if let Some(ca) = &ca_file {
                if let Err(e) = std::fs::File::open(ca) {
                    c.push(
                        key("gmp_ca_file"),
                        format!("cannot read {}: {e}", ca.display()),
                    );
                }
            }
            port.map(|port| Endpoint::Tls {
                host: host.clone(),
                port,
                ca_file,
            })
        }
        (None, socket) => {
            if j.gmp_port.is_some() {
                c.push(key("gmp_port"), "is for gvmd over TLS: set gmp_host too");
            }
            if j.gmp_ca_file.is_some() {
                c.push(key("gmp_ca_file"), "is for gvmd over TLS: set gmp_host too");
            }
            let path = absolute(socket.as_deref().unwrap_or(DEFAULT_GMP_SOCKET));
            if let Some(w) = socket_warning(&path) {
                warnings.push(format!("job {:?}: {w}", j.name));
            }
            Some(Endpoint::Socket(path))
        }
    };
    let username = match j.gmp_username.as_deref().map(str::trim) {
        Some(u) if !u.is_empty() => Some(u.to_string()),
        _ => {
            c.push(
                key("gmp_username"),
                "is required for scanner = \"openvas\": the gvmd user the agent logs in as",
            );
            None
        }
    };
    let password_file = match &j.gmp_password_file {
        None => {
            c.push(
                key("gmp_password_file"),
                "is required for scanner = \"openvas\": a file (mode 600, owned by the agent's \
                 user) holding that gvmd user's password",
            );
            None
        }
        Some(f) => {
            let p: PathBuf = absolute(f);
            if let Err(e) = secret::check_private_file(&p) {
                c.push(key("gmp_password_file"), e);
            }
            Some(p)
        }
    };
    let mut id = |k: &str, given: &Option<String>, default: &str| -> String {
        match given {
            Some(v) if !is_uuid(v) => {
                c.push(
                    key(k),
                    format!("{v:?} is not a gvmd id (a UUID such as {default})"),
                );
                default.to_string()
            }
            // gvmd's ids are lower case, and it compares them as text.
            Some(v) => v.to_ascii_lowercase(),
            None => default.to_string(),
        }
    };
    let port_list_id = id("port_list_id", &j.port_list_id, DEFAULT_PORT_LIST);
    let scan_config_id = id("scan_config_id", &j.scan_config_id, DEFAULT_SCAN_CONFIG);
    let scanner_id = id("scanner_id", &j.scanner_id, DEFAULT_SCANNER);
    let min_qod = match j.min_qod {
        None => DEFAULT_MIN_QOD,
        Some(q) => u8::try_from(q)
            .ok()
            .filter(|q| *q <= 100)
            .unwrap_or_else(|| {
                c.push(
                    key("min_qod"),
                    format!("{q} is not a quality of detection: use 0 to 100"),
                );
                DEFAULT_MIN_QOD
            }),
    };
    if c.problems.len() > before {
        return None;
    }
    Some(OpenvasSettings {
        endpoint: endpoint?,
        username: username?,
        password_file: password_file?,
        port_list_id,
        scan_config_id,
        scanner_id,
        cleanup: j.cleanup.unwrap_or(false),
        min_qod,
        polling: Polling::default(),
        reply_timeout: DEFAULT_REPLY_TIMEOUT,
    })
}

/// A socket that is missing or that this user may not open is only a warning: gvmd may start
/// after the agent, and the group may be granted before the first run.
fn socket_warning(path: &Path) -> Option<String> {
    use rustix::fs::{access, Access};
    match std::fs::metadata(path) {
        Err(_) => Some(format!(
            "gvmd's socket {} does not exist (yet): runs fail until gvmd listens there",
            path.display()
        )),
        Ok(_) if access(path, Access::READ_OK | Access::WRITE_OK).is_err() => Some(format!(
            "this user may not open gvmd's socket {}: add the agent's user to the socket's \
             group (`ls -l {}`; e.g. `usermod -aG _gvm hostedscan-agent`)",
            path.display(),
            path.display()
        )),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_grows_by_half_up_to_the_maximum() {
        let p = Polling {
            first: Duration::from_secs(4),
            max: Duration::from_secs(10),
        };
        assert_eq!(p.next(Duration::from_secs(4)), Duration::from_secs(6));
        assert_eq!(p.next(Duration::from_secs(6)), Duration::from_secs(9));
        assert_eq!(p.next(Duration::from_secs(9)), Duration::from_secs(10));
    }

    #[test]
    fn uuids() {
        assert!(is_uuid(DEFAULT_PORT_LIST));
        assert!(is_uuid("DABA56C8-73EC-11DF-A475-002264764CEA"));
        assert!(!is_uuid("daba56c8-73ec-11df-a475"));
        assert!(!is_uuid("Full and fast"));
        assert!(!is_uuid("daba56c8-73ec-11df-a475-00226476\"cea"));
    }

    #[test]
    fn a_missing_socket_is_a_warning_not_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("gvmd.sock");
        let w = socket_warning(&p).unwrap();
        assert!(w.contains("does not exist"), "{w}");
        let _l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert_eq!(socket_warning(&p), None);
    }
}
