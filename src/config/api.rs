//! `[api]`: where HostedScan is (https, or http to a loopback host for tests), how long a
//! request may take, an optional proxy and CA file, and where the API key comes from (the
//! systemd credential, `key_file`, `$HOSTEDSCAN_API_KEY`, or `key`, in that order).

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::raw;
use super::secret::{self, ApiKey, KeyOrigin};
use super::{absolute, Checker, ConfigError, Env};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// Base URL without a trailing slash, e.g. `https://api.hostedscan.com/v1`.
    pub url: Url,
    pub key: Option<(ApiKey, KeyOrigin)>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub proxy: Option<Url>,
    pub ca_file: Option<PathBuf>,
}

impl ApiSettings {
    /// The key, or the configuration error that says where to put one.
    pub fn require_key(&self) -> Result<&ApiKey, ConfigError> {
        self.key.as_ref().map(|(k, _)| k).ok_or_else(|| {
            ConfigError::one(
                "api.key_file",
                "no API key found: put it in a file readable only by the agent and set \
                 api.key_file, or use the systemd credential \"api-key\", or $HOSTEDSCAN_API_KEY",
            )
        })
    }

    /// `url` joined with an endpoint path such as `results`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}/{}", self.url.as_str().trim_end_matches('/'), path)
    }
}

/// Whether loading looks for the API key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyCheck {
    Resolve,
    Skip,
}

/// `[api]` checked; `None` when its URL is unusable (the problems are in `c`).
pub(super) fn check(
    api: &raw::RawApi,
    env: &Env,
    key_check: KeyCheck,
    c: &mut Checker,
) -> Option<ApiSettings> {
    let url = match Url::parse(api.url.trim()) {
        Ok(u) if u.scheme() == "https" => Some(u),
        Ok(u) if u.scheme() == "http" && is_loopback(&u) => Some(u),
        Ok(u) if u.scheme() == "http" => {
            c.push(
                "api.url",
                format!("{u} uses http://, which is only allowed for loopback hosts: use https://"),
            );
            None
        }
        Ok(u) => {
            c.push("api.url", format!("{u}: the scheme must be https"));
            None
        }
        Err(e) => {
            c.push(
                "api.url",
                format!(
                    "{:?} is not a URL ({e}); the default is https://api.hostedscan.com/v1",
                    api.url
                ),
            );
            None
        }
    };
    let timeout = c.duration("api.timeout", &api.timeout);
    let connect_timeout = c.duration("api.connect_timeout", &api.connect_timeout);
    let proxy = api.proxy.as_deref().and_then(|p| match Url::parse(p) {
        Ok(u) => Some(u),
        Err(e) => {
            c.push(
                "api.proxy",
                format!("{p:?} is not a URL ({e}): write it like \"http://proxy.internal:3128\""),
            );
            None
        }
    });
    let ca_file = api.ca_file.as_deref().map(absolute);
    if let Some(ca) = &ca_file {
        if !ca.is_file() {
            c.push(
                "api.ca_file",
                format!("{} is not a readable file", ca.display()),
            );
        }
    }
    let key = match key_check {
        KeyCheck::Resolve => resolve_key(api, env, c),
        KeyCheck::Skip => None,
    };
    Some(ApiSettings {
        url: url?,
        key,
        timeout,
        connect_timeout,
        proxy,
        ca_file,
    })
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The first of: systemd credential, key_file, $HOSTEDSCAN_API_KEY, api.key.
fn resolve_key(api: &raw::RawApi, env: &Env, c: &mut Checker) -> Option<(ApiKey, KeyOrigin)> {
    if let Some(dir) = env.get("CREDENTIALS_DIRECTORY") {
        let p = Path::new(dir).join("api-key");
        if let Ok(s) = std::fs::read_to_string(&p) {
            if !s.trim().is_empty() {
                return Some((ApiKey::new(s.trim()), KeyOrigin::Credential(p)));
            }
        }
    }
    if let Some(f) = &api.key_file {
        let p = absolute(f);
        if let Err(e) = secret::check_private_file(&p) {
            c.push("api.key_file", e);
            return None;
        }
        match std::fs::read_to_string(&p) {
            Ok(s) if !s.trim().is_empty() => {
                return Some((ApiKey::new(s.trim()), KeyOrigin::KeyFile(p)))
            }
            Ok(_) => {
                c.push("api.key_file", format!("{} is empty", p.display()));
                return None;
            }
            Err(e) => {
                c.push("api.key_file", format!("cannot read {}: {e}", p.display()));
                return None;
            }
        }
    }
    if let Some(k) = env
        .get("HOSTEDSCAN_API_KEY")
        .filter(|k| !k.trim().is_empty())
    {
        return Some((ApiKey::new(k.trim()), KeyOrigin::Environment));
    }
    api.key
        .as_deref()
        .filter(|k| !k.trim().is_empty())
        .map(|k| (ApiKey::new(k.trim()), KeyOrigin::ConfigFile))
}
