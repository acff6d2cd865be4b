//! The API key as a type that cannot leak: no `Display`, a `Debug` that prints `[redacted]`,
//! and one explicit `expose()` used only where the request header is built; and the check
//! every secret file passes (the key file, gvmd's password file).

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::ownership::{check_trusted_file, Owner};

/// A secret file's problem, if it has one: missing, not a file, unreadable, readable by other
/// users (refused as ssh does, with the `chmod` that fixes it), or open to being written by
/// someone else (see [`super::ownership`]).
pub fn check_private_file(p: &Path) -> Result<(), String> {
    match std::fs::metadata(p) {
        Ok(m) if !m.is_file() => Err(format!("{} is not a file", p.display())),
        Ok(m) if m.permissions().mode() & 0o044 != 0 => Err(format!(
            "{} is readable by other users: run `chmod 600 {}` (and make the agent's user its owner)",
            p.display(),
            p.display()
        )),
        Ok(_) => {
            check_trusted_file(p, Owner::Agent).map_err(|e| e.to_string())?;
            std::fs::File::open(p)
                .map(drop)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", p.display())),
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the `X-HOSTEDSCAN-API-KEY` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// Where the key came from, so messages can say which one to fix without showing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    Credential(std::path::PathBuf),
    KeyFile(std::path::PathBuf),
    Environment,
    ConfigFile,
}

impl KeyOrigin {
    /// The key as its file says now (credential or key file); `None` for the others, which
    /// cannot change while the agent runs.
    pub fn reload(&self) -> Option<ApiKey> {
        let path = match self {
            // systemd's: it made the file, readable by the service only.
            KeyOrigin::Credential(p) => p,
            KeyOrigin::KeyFile(p) => {
                // The same rule as at start: a key others can read or write is not used. (A
                // file that is gone, perhaps being replaced, is simply not read this time.)
                std::fs::metadata(p).ok()?;
                if let Err(e) = check_private_file(p) {
                    tracing::error!(error = %e, "api.key_file cannot be used; not using it");
                    return None;
                }
                p
            }
            KeyOrigin::Environment | KeyOrigin::ConfigFile => return None,
        };
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map(ApiKey::new)
    }
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::Credential(p) => write!(f, "systemd credential {}", p.display()),
            KeyOrigin::KeyFile(p) => write!(f, "api.key_file {}", p.display()),
            KeyOrigin::Environment => f.write_str("$HOSTEDSCAN_API_KEY"),
            KeyOrigin::ConfigFile => f.write_str("api.key in the config file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let k = ApiKey::new("s3cret-value");
        assert!(!format!("{k:?}").contains("s3cret"));
        assert!(!format!("{:?}", Some(k)).contains("s3cret"));
    }
}
