//! Configuration: the TOML file (plus `HOSTEDSCAN_AGENT__SECTION__KEY` environment overrides)
//! read through the `config` crate into `raw` structs, then validated into the typed settings
//! the rest of the agent uses. Every problem names its key and says how to fix it; all problems
//! are reported at once so an operator fixes the file in one go.

mod gmp;
pub mod ownership;
mod raw;
mod secret;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use url::Url;

pub use secret::{ApiKey, KeyOrigin};

use crate::jobs::schedule::Schedule;
use crate::jobs::spec::{self, JobSpec, Scanner};
use crate::validate::{Hints, ScanType};

/// Where the config is read from when `-c` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hostedscan-agent/agent.toml";

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// Why a configuration cannot be used. Always exit code 78.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}

impl ConfigError {
    fn one(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            problems: vec![problem(key, message)],
        }
    }
}

pub use crate::spool::AfterUpload;

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone, PartialEq)]
pub struct SourceSettings {
    /// The source name with `{hostname}` expanded.
    pub name: String,
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    pub state_dir: PathBuf,
    pub upload_concurrency: usize,
    pub max_file_size: u64,
    pub settle: Duration,
    pub incomplete_grace: Duration,
    pub rescan_interval: Duration,
    pub after_upload: AfterUpload,
    pub archive_retention: Duration,
    pub max_concurrent_jobs: usize,
    /// rejected/ and failed/ entries older than this are deleted.
    pub rejected_retention: Duration,
    /// rejected/ is kept under this many allocated bytes, oldest entries dropped first.
    pub rejected_max_size: u64,
    /// Admission pauses below this much free space in the state file system (`None`: 1 GiB
    /// or 5% of that file system, whichever is less).
    pub min_free_space: Option<u64>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSettings {
    /// Where `/metrics` is served (Prometheus), if anywhere.
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub once_deadline: Duration,
}

#[derive(Debug, Clone)]
pub struct WatchSettings {
    pub path: PathBuf,
    pub hints: Hints,
    pub include: GlobSet,
    pub exclude: GlobSet,
    pub recursive: bool,
}

impl WatchSettings {
    /// Whether a file name passes the include/exclude globs. Dotfiles and editor/partial
    /// suffixes are always skipped: they are how writers mark a file as not finished.
    pub fn wants(&self, file_name: &str) -> bool {
        if is_temporary_name(file_name) {
            return false;
        }
        self.include.is_match(file_name) && !self.exclude.is_match(file_name)
    }
}

/// Names that writers use for files they have not finished: never read.
pub fn is_temporary_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [".tmp", ".part", ".swp"]
            .iter()
            .any(|s| name.len() > s.len() && name.to_ascii_lowercase().ends_with(s))
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    pub api: ApiSettings,
    pub source: SourceSettings,
    pub agent: AgentSettings,
    pub retry: RetrySettings,
    pub metrics: MetricsSettings,
    pub watches: Vec<WatchSettings>,
    pub jobs: Vec<JobSpec>,
    /// Non-fatal remarks (e.g. a key in a world-readable config file).
    pub warnings: Vec<String>,
}

/// The process environment as the loader sees it (injected by tests).
pub type Env = HashMap<String, String>;

impl Config {
    /// Read, override from `env`, and validate. `env` is normally `std::env::vars()`.
    pub fn load(path: &Path, env: &Env) -> Result<Config, ConfigError> {
        Self::load_with(path, env, KeyCheck::Resolve)
    }

    /// As [`Config::load`], but the API key is neither looked for nor checked (`key` is
    /// `None`): for `reload`, which runs beside a daemon holding a key that it cannot see (the
    /// service's credential), and whose key sources the daemon itself resolves again.
    pub fn load_without_key(path: &Path, env: &Env) -> Result<Config, ConfigError> {
        Self::load_with(path, env, KeyCheck::Skip)
    }

    fn load_with(path: &Path, env: &Env, key: KeyCheck) -> Result<Config, ConfigError> {
        let meta = std::fs::metadata(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            message: match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "not found: create it (see config/agent.toml for a commented example) or pass -c PATH"
                        .to_string()
                }
                _ => e.to_string(),
            },
        })?;
        // Whoever can write it could redirect uploads, read the key, or run a command job as
        // the agent: only root and the agent's user may (as ssh asks of its files).
        if let Err(u) = ownership::check_trusted_file(path, ownership::Owner::Root) {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                message: if u.is_dir { u.to_string() } else { u.problem },
            });
        }
        let overrides: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("HOSTEDSCAN_AGENT__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let built = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("HOSTEDSCAN_AGENT")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(overrides)),
            )
            .build()
            .map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: without_source_lines(&e.to_string()),
            })?;
        let raw: raw::RawConfig = built.try_deserialize().map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            message: explain_serde(&e.to_string()),
        })?;
        let mut cfg = validate(raw, path, env, key)?;
        if cfg.api.key.as_ref().map(|(_, o)| o) == Some(&KeyOrigin::ConfigFile)
            && meta.permissions().mode() & 0o004 != 0
        {
            cfg.warnings.push(format!(
                "{} holds api.key and is readable by other users: move the key to api.key_file, \
                 or run `chmod o-r {}`",
                path.display(),
                path.display()
            ));
        }
        Ok(cfg)
    }
}

/// A parse error without the quoted source lines: the line at fault may be `key = "..."`, and
/// the key must never reach a log.
fn without_source_lines(msg: &str) -> String {
    msg.lines()
        .filter(|l| {
            let quoted = l
                .split_once('|')
                .is_some_and(|(n, _)| n.trim().chars().all(|c| c.is_ascii_digit()));
            !quoted
        })
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// serde's message: "unknown field" with the list of valid keys it carries kept; the value
/// of a mistyped `command`, `args` or `key` left out (`command = "scan --token=..."` given as
/// one string would otherwise be quoted whole, credentials and all).
fn explain_serde(msg: &str) -> String {
    let secret_key = msg
        .rsplit_once("for key `")
        .and_then(|(_, k)| k.split('`').next())
        .is_some_and(|k| ["command", "args", "key"].iter().any(|s| k.ends_with(s)));
    if let (true, Some(start)) = (secret_key, msg.find("invalid type: string \"")) {
        let value = start + "invalid type: string ".len();
        if let Some(end) = msg[value..].rfind("\", expected ") {
            return format!(
                "{}a string{}",
                &msg[..start + "invalid type: ".len()],
                &msg[value + end + 1..]
            );
        }
    }
    if msg.contains("unknown field") {
        format!(
            "{msg} (unknown keys are refused so a misspelling cannot silently change behaviour)"
        )
    } else {
        msg.to_string()
    }
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn duration(&mut self, key: &str, value: &str) -> Duration {
        match humantime::parse_duration(value.trim()) {
            Ok(d) => d,
            Err(e) => {
                self.problems.push(problem(
                    key,
                    format!("{value:?} is not a duration ({e}): write it like \"90s\", \"5m\" or \"1h 30m\""),
                ));
                Duration::ZERO
            }
        }
    }

    fn size(&mut self, key: &str, value: &str) -> u64 {
        match value.trim().parse::<bytesize::ByteSize>() {
            Ok(s) if s.as_u64() > 0 => s.as_u64(),
            _ => {
                self.problems.push(problem(
                    key,
                    format!("{value:?} is not a size: write it like \"512MiB\" or \"2GiB\""),
                ));
                0
            }
        }
    }

    fn globs(&mut self, key: &str, patterns: &[String]) -> GlobSet {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            match Glob::new(p) {
                Ok(g) => {
                    b.add(g);
                }
                Err(e) => self
                    .problems
                    .push(problem(key, format!("{p:?} is not a valid glob: {e}"))),
            }
        }
        b.build().unwrap_or_else(|_| GlobSet::empty())
    }

    /// A count of things at once: 1 to 64.
    fn count(&mut self, key: &str, value: i64) -> usize {
        match value {
            n @ 1..=64 => n as usize,
            n => {
                self.push(key, format!("{n} is out of range: use 1 to 64"));
                1
            }
        }
    }

    /// `"auto"` (`None`) or one of the scan type names.
    fn scan_type(&mut self, key: &str, value: &str) -> Option<ScanType> {
        match value {
            "auto" => None,
            s => match s.parse::<ScanType>() {
                Ok(t) => Some(t),
                Err(e) => {
                    self.push(key, format!("{e} (or \"auto\")"));
                    None
                }
            },
        }
    }

    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(problem(key, message));
    }
}

fn absolute(p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}

/// `p` with symlinks resolved as far as it exists (the rest appended), for overlap checks.
fn canonical(p: &Path) -> PathBuf {
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(|n| n.to_owned()),
            existing.parent(),
        ) {
            (Some(n), Some(parent)) => {
                rest.push(n);
                existing = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for n in rest.into_iter().rev() {
        out.push(n);
    }
    out
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether loading looks for the API key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyCheck {
    Resolve,
    Skip,
}

fn validate(
    raw: raw::RawConfig,
    file: &Path,
    env: &Env,
    key_check: KeyCheck,
) -> Result<Config, ConfigError> {
    let mut c = Checker {
        problems: Vec::new(),
    };

    // [api]
    let url = match Url::parse(raw.api.url.trim()) {
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
                    raw.api.url
                ),
            );
            None
        }
    };
    let timeout = c.duration("api.timeout", &raw.api.timeout);
    let connect_timeout = c.duration("api.connect_timeout", &raw.api.connect_timeout);
    let proxy = raw.api.proxy.as_deref().and_then(|p| match Url::parse(p) {
        Ok(u) => Some(u),
        Err(e) => {
            c.push(
                "api.proxy",
                format!("{p:?} is not a URL ({e}): write it like \"http://proxy.internal:3128\""),
            );
            None
        }
    });
    let ca_file = raw.api.ca_file.as_deref().map(absolute);
    if let Some(ca) = &ca_file {
        if !ca.is_file() {
            c.push(
                "api.ca_file",
                format!("{} is not a readable file", ca.display()),
            );
        }
    }
    let key = match key_check {
        KeyCheck::Resolve => resolve_key(&raw.api, env, &mut c),
        KeyCheck::Skip => None,
    };

    // [source]
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    let name = raw.source.name.replace("{hostname}", &hostname);
    if name.trim().is_empty() {
        c.push("source.name", "must not be empty");
    }
    let id = raw.source.id.filter(|s| !s.trim().is_empty());

    // [agent]
    let a = &raw.agent;
    let state_dir = absolute(&a.state_dir);
    let upload_concurrency = c.count("agent.upload_concurrency", a.upload_concurrency);
    let max_concurrent_jobs = c.count("agent.max_concurrent_jobs", a.max_concurrent_jobs);
    let after_upload = match a.after_upload.as_str() {
        "archive" => AfterUpload::Archive,
        "delete" => AfterUpload::Delete,
        "keep" => AfterUpload::Keep,
        other => {
            c.push(
                "agent.after_upload",
                format!("{other:?} is not one of \"archive\", \"delete\", \"keep\""),
            );
            AfterUpload::Archive
        }
    };
    let agent = AgentSettings {
        state_dir: state_dir.clone(),
        upload_concurrency,
        max_file_size: c.size("agent.max_file_size", &a.max_file_size),
        settle: c.duration("agent.settle", &a.settle),
        incomplete_grace: c.duration("agent.incomplete_grace", &a.incomplete_grace),
        rescan_interval: c.duration("agent.rescan_interval", &a.rescan_interval),
        after_upload,
        archive_retention: c.duration("agent.archive_retention", &a.archive_retention),
        max_concurrent_jobs,
        rejected_retention: c.duration("agent.rejected_retention", &a.rejected_retention),
        rejected_max_size: c.size("agent.rejected_max_size", &a.rejected_max_size),
        min_free_space: a
            .min_free_space
            .as_ref()
            .map(|v| c.size("agent.min_free_space", v)),
    };
    if agent.rescan_interval < Duration::from_secs(1) && c.problems.is_empty() {
        c.push("agent.rescan_interval", "must be at least 1s");
    }

    // [retry]
    let retry = RetrySettings {
        initial_backoff: c.duration("retry.initial_backoff", &raw.retry.initial_backoff),
        max_backoff: c.duration("retry.max_backoff", &raw.retry.max_backoff),
        once_deadline: c.duration("retry.once_deadline", &raw.retry.once_deadline),
    };
    if retry.initial_backoff.is_zero() {
        c.push("retry.initial_backoff", "must be more than 0s");
    }
    if retry.max_backoff < retry.initial_backoff {
        c.push(
            "retry.max_backoff",
            "must not be smaller than retry.initial_backoff",
        );
    }

    // [[watch]]
    let raw_watches = if raw.watch.is_empty() && raw.job.is_empty() {
        vec![raw::RawWatch {
            path: state_dir.join("inbox").to_string_lossy().into_owned(),
            scan_type: "auto".into(),
            include: None,
            exclude: vec![],
            recursive: false,
            target: None,
            accept_partial: false,
        }]
    } else {
        raw.watch
    };
    let mut seen = BTreeMap::new();
    let mut watches = Vec::new();
    for (i, w) in raw_watches.into_iter().enumerate() {
        let key = |k: &str| format!("watch[{i}].{k}");
        let path = absolute(&w.path);
        if let Some(j) = seen.insert(path.clone(), i) {
            c.push(
                key("path"),
                format!("{} is also watch[{j}]", path.display()),
            );
        }
        // The agent must never read its own custody back in: no watch directory inside the
        // state directory's working parts, and none that holds the state directory.
        let (canon_path, canon_state) = (canonical(&path), canonical(&state_dir));
        for internal in ["queue", "failed", "rejected", "archive", "tmp"] {
            if canon_path.starts_with(canon_state.join(internal)) {
                c.push(
                    key("path"),
                    format!(
                        "{} is inside the agent's own {internal}/ directory",
                        path.display()
                    ),
                );
            }
        }
        if canon_state.starts_with(&canon_path) && (w.recursive || canon_state == canon_path) {
            c.push(
                key("path"),
                format!(
                    "{} contains the state directory {}: watch a subdirectory such as {}/inbox instead",
                    path.display(),
                    state_dir.display(),
                    state_dir.display()
                ),
            );
        }
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => c.push(
                key("path"),
                format!("{} is not a directory", path.display()),
            ),
            Err(_) => {
                let parent_ok = path
                    .parent()
                    .is_some_and(|p| p.is_dir() || p.starts_with(&state_dir));
                if !parent_ok {
                    c.push(
                        key("path"),
                        format!(
                            "{} does not exist and neither does its parent: create it, or fix the path",
                            path.display()
                        ),
                    );
                }
            }
        }
        let scan_type = c.scan_type(&key("scan_type"), &w.scan_type);
        let target = w.target.filter(|t| !t.trim().is_empty());
        if let Some(t) = &target {
            if t.starts_with('-') {
                c.push(key("target"), format!("{t:?} must not start with '-'"));
            }
        }
        let include = w.include.unwrap_or_else(|| vec!["*".into()]);
        watches.push(WatchSettings {
            path,
            hints: Hints {
                scan_type,
                target,
                accept_partial: w.accept_partial,
            },
            include: c.globs(&key("include"), &include),
            exclude: c.globs(&key("exclude"), &w.exclude),
            recursive: w.recursive,
        });
    }

    // [[job]]
    let path_var = env.get("PATH").map(String::as_str);
    let mut names = BTreeMap::new();
    let mut jobs = Vec::new();
    let mut warnings = Vec::new();
    for (i, j) in raw.job.into_iter().enumerate() {
        if j.name.is_empty()
            || !j
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            c.push(
                format!("job[{i}].name"),
                format!("{:?}: use letters, digits, '-' and '_' only", j.name),
            );
        }
        if let Some(k) = names.insert(j.name.clone(), i) {
            c.push(
                format!("job[{i}].name"),
                format!("{:?} is also job[{k}]", j.name),
            );
        }
        if let Some(spec) = job(&mut c, &mut warnings, i, j, path_var) {
            jobs.push(spec);
        }
    }

    let metrics = MetricsSettings {
        listen: raw.metrics.listen.as_deref().and_then(|l| {
            match l.parse::<std::net::SocketAddr>() {
                Ok(a) => {
                    if !a.ip().is_loopback() {
                        warnings.push(format!(
                            "metrics.listen = {l:?} is reachable from other hosts: the metrics \
                             hold no secrets, but job names and counts are visible; prefer \
                             127.0.0.1 behind a firewall or a scraping proxy"
                        ));
                    }
                    Some(a)
                }
                Err(_) => {
                    c.push(
                        "metrics.listen",
                        format!("{l:?} is not an address and port, such as \"127.0.0.1:9464\""),
                    );
                    None
                }
            }
        }),
    };
    if !c.problems.is_empty() {
        return Err(ConfigError::Invalid {
            problems: c.problems,
        });
    }
    Ok(Config {
        file: file.to_path_buf(),
        api: ApiSettings {
            url: url.expect("checked above"),
            key,
            timeout,
            connect_timeout,
            proxy,
            ca_file,
        },
        source: SourceSettings { name, id },
        agent,
        retry,
        metrics,
        watches,
        jobs,
        warnings,
    })
}

/// One `[[job]]` checked and turned into its spec; `None` when it cannot be (the problems are
/// in `c`). Keys that belong to another scanner are problems, like unknown keys: a `zap_path`
/// on an nmap job is a misunderstanding the operator should hear about, not a silent no-op.
fn job(
    c: &mut Checker,
    warnings: &mut Vec<String>,
    i: usize,
    j: raw::RawJob,
    path_var: Option<&str>,
) -> Option<JobSpec> {
    let key = |k: &str| format!("job[{i}].{k}");
    let scanner = Scanner::parse(&j.scanner);
    if scanner.is_none() {
        c.push(
            key("scanner"),
            format!(
                "{:?} is not one of nmap, zap, openvas, sslyze, command",
                j.scanner
            ),
        );
    }
    let timezone = j.timezone.as_deref().unwrap_or("local");
    let schedule = match Schedule::parse(&j.schedule, timezone) {
        Ok(s) => Some(s),
        Err(e) if e.is_timezone() => {
            c.push(key("timezone"), e.to_string());
            // The expression may be wrong too: report both at once.
            if let Err(e) = Schedule::parse(&j.schedule, "UTC") {
                c.push(key("schedule"), e.to_string());
            }
            None
        }
        Err(e) => {
            c.push(key("schedule"), e.to_string());
            None
        }
    };
    let timeout = match &j.timeout {
        None => spec::DEFAULT_TIMEOUT,
        Some(t) => {
            let before = c.problems.len();
            let d = c.duration(&key("timeout"), t);
            if d.is_zero() && c.problems.len() == before {
                c.push(
                    key("timeout"),
                    "must be more than 0s (the default is \"4h\")",
                );
            }
            d
        }
    };
    let jitter = j
        .jitter
        .as_deref()
        .map_or(Duration::ZERO, |t| c.duration(&key("jitter"), t));
    if let Some(s) = &schedule {
        let now = chrono::Utc::now();
        match s.next_after(now) {
            None => warnings.push(format!(
                "job {:?}: schedule {:?} has no future time (its years have passed); it will not run",
                j.name,
                s.expr()
            )),
            Some(first) => {
                let gap = s.next_after(first).map(|second| second - first);
                if let Some(gap) = gap.and_then(|g| g.to_std().ok()) {
                    if !jitter.is_zero() && jitter >= gap {
                        warnings.push(format!(
                            "job {:?}: jitter ({}) is as long as the time between runs ({}): \
                             runs will be merged or skipped; use a shorter jitter",
                            j.name,
                            humantime::format_duration(jitter),
                            humantime::format_duration(gap)
                        ));
                    }
                }
            }
        }
    }
    let scan_type = c.scan_type(&key("scan_type"), j.scan_type.as_deref().unwrap_or("auto"));
    let scanner = scanner?;
    if let Some(t) = scan_type {
        if !scanner.scan_types().contains(&t) {
            let fits: Vec<&str> = scanner.scan_types().iter().map(|t| t.as_str()).collect();
            c.push(
                key("scan_type"),
                format!(
                    "{t} does not fit scanner = \"{scanner}\": use \"auto\" or {}",
                    fits.join(" or ")
                ),
            );
        }
    }

    // Keys for other scanners.
    use Scanner::{Command, Nmap, Openvas, Sslyze, Zap};
    let gmp: &[Scanner] = &[Openvas];
    let keys: [(&str, bool, &[Scanner]); 16] = [
        (
            "targets",
            j.targets.is_some(),
            &[Nmap, Openvas, Sslyze, Command],
        ),
        ("target", j.target.is_some(), &[Zap, Command]),
        ("args", j.args.is_some(), &[Nmap, Zap, Sslyze]),
        ("command", j.command.is_some(), &[Command]),
        ("privileged", j.privileged.is_some(), &[Nmap]),
        ("zap_path", j.zap_path.is_some(), &[Zap]),
        ("gmp_socket", j.gmp_socket.is_some(), gmp),
        ("gmp_host", j.gmp_host.is_some(), gmp),
        ("gmp_port", j.gmp_port.is_some(), gmp),
        ("gmp_username", j.gmp_username.is_some(), gmp),
        ("gmp_password_file", j.gmp_password_file.is_some(), gmp),
        ("port_list_id", j.port_list_id.is_some(), gmp),
        ("scan_config_id", j.scan_config_id.is_some(), gmp),
        ("scanner_id", j.scanner_id.is_some(), gmp),
        ("gmp_ca_file", j.gmp_ca_file.is_some(), gmp),
        ("min_qod", j.min_qod.is_some(), gmp),
    ];
    let mut applies = |k: &str, given: bool, for_: &[Scanner]| {
        if !given || for_.contains(&scanner) {
            return true;
        }
        let hint = match (k, scanner) {
            ("command", _) => format!(
                "the {scanner} preset builds its own command line: put extra scanner arguments in args, or use scanner = \"command\""
            ),
            ("targets", Zap) => "a zap job scans one URL: use target = \"https://...\"".into(),
            ("target", _) => "use targets = [...] (a list)".into(),
            ("args", Command) => "put every argument in command".into(),
            _ => {
                let names: Vec<String> = for_.iter().map(|s| format!("\"{s}\"")).collect();
                format!("it is for scanner = {} only", names.join(" or "))
            }
        };
        c.push(
            key(k),
            format!("does not apply to scanner = \"{scanner}\": {hint}"),
        );
        false
    };
    let mut ok = [true; 16];
    for (n, (k, given, for_)) in keys.iter().enumerate() {
        ok[n] = applies(k, *given, for_);
    }
    if j.cleanup.is_some() {
        applies("cleanup", true, gmp);
    }
    let [targets_ok, target_ok, ..] = ok;

    // What to scan.
    let kind = scanner.target_kind();
    let targets = if targets_ok {
        j.targets.clone().unwrap_or_default()
    } else {
        Vec::new()
    };
    if matches!(scanner, Nmap | Openvas | Sslyze) && targets.is_empty() {
        c.push(
            key("targets"),
            format!(
                "is required for scanner = \"{scanner}\": list what to scan, e.g. targets = [\"10.0.0.0/24\"]"
            ),
        );
    }
    for t in &targets {
        let checked = match scanner {
            Openvas => spec::check_gvmd_host(t),
            _ => spec::check_target(t, kind),
        };
        if let Err(e) = checked {
            c.push(key("targets"), e);
        }
    }
    let target = if target_ok { j.target.clone() } else { None };
    if scanner == Zap && target.is_none() {
        c.push(
            key("target"),
            "is required for scanner = \"zap\": the URL to scan, e.g. target = \"https://intranet.example\"",
        );
    }
    if let Some(t) = &target {
        if let Err(e) = spec::check_target(t, kind) {
            c.push(key("target"), e);
        }
    }

    // What to run.
    let args = j.args.clone().unwrap_or_default();
    let mut argv = match scanner {
        Nmap | Sslyze | Zap => {
            let (program, program_key) = match (&j.zap_path, scanner) {
                (Some(p), Zap) => (p.as_str(), key("zap_path")),
                (None, Zap) => (spec::DEFAULT_ZAP_PATH, key("scanner")),
                _ => (scanner.as_str(), key("scanner")),
            };
            let program = match spec::find_program(program, path_var) {
                // A path is made absolute: runs do not start in the agent's directory.
                Ok(found) if program.contains('/') => found.to_string_lossy().into_owned(),
                Ok(_) => program.to_string(),
                Err(e) => {
                    c.push(program_key, format!("{e}: {}", scanner.install_hint()));
                    program.to_string()
                }
            };
            spec::preset_argv(scanner, &program, &args, j.privileged.unwrap_or(false))
        }
        Command => match j.command.clone().filter(|v| !v.is_empty()) {
            None => {
                c.push(
                    key("command"),
                    "is required for scanner = \"command\": the program and its arguments, e.g. \
                     [\"/usr/local/bin/scan\", \"--out\", \"{output}\", \"{targets}\"]",
                );
                Vec::new()
            }
            Some(mut v) => {
                match spec::find_program(&v[0], path_var) {
                    Ok(found) if v[0].contains('/') => {
                        v[0] = found.to_string_lossy().into_owned();
                    }
                    Ok(_) => {}
                    Err(e) => c.push(key("command"), format!("{e}: {}", scanner.install_hint())),
                }
                v
            }
        },
        Openvas => Vec::new(),
    };
    let argv_key = key(if scanner == Command {
        "command"
    } else {
        "args"
    });
    // An argument is named by its place in the list the operator wrote (`command`, or a
    // preset's `args`), never by its text: it may hold a credential, and these messages reach
    // check-config's output and the log.
    let written: &[String] = if scanner == Command { &argv } else { &args };
    let at = |i: usize| format!("{argv_key}[{i}]");
    let nul = argv.iter().any(|a| a.contains('\0'));
    if nul {
        match written.iter().position(|a| a.contains('\0')) {
            Some(i) => c.push(at(i), "contains a NUL character"),
            None => c.push(argv_key.clone(), "the program contains a NUL character"),
        }
    } else {
        for (i, a) in written.iter().enumerate() {
            let placeholders = [spec::OUTPUT, spec::TARGET, spec::TARGETS];
            if let Some(p) = placeholders.iter().find(|p| a.contains(**p) && a != **p) {
                warnings.push(format!(
                    "{}: contains {p} inside other text; placeholders replace whole arguments \
                     only, so it is passed as written: make {p} an argument of its own",
                    at(i)
                ));
            }
        }
    }
    if nul {
        argv.clear();
    }
    if scanner == Command && !argv.is_empty() {
        if !argv.iter().any(|a| a == spec::OUTPUT) {
            warnings.push(format!(
                "{argv_key}: has no \"{}\" argument: the run's output file is where the command must write its report",
                spec::OUTPUT
            ));
        }
        if argv.iter().any(|a| a == spec::TARGET) && target.is_none() && target_ok {
            c.push(key("target"), "command uses {target}: set target");
        }
        if argv.iter().any(|a| a == spec::TARGETS) && targets.is_empty() && targets_ok {
            c.push(key("targets"), "command uses {targets}: set targets");
        }
    }

    let openvas = if scanner == Openvas {
        Some(gmp::settings(&j, &key, c, warnings)?)
    } else {
        None
    };

    Some(JobSpec {
        name: j.name,
        scanner,
        schedule: schedule?,
        timeout,
        jitter,
        catch_up: j.catch_up.unwrap_or(false),
        hints: Hints {
            scan_type: scan_type.or(scanner.default_scan_type()),
            target: target.clone(),
            accept_partial: j.accept_partial.unwrap_or(false),
        },
        targets,
        target,
        argv,
        output_file: scanner.output_file().into(),
        openvas,
    })
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

/// Create watch directories that do not exist yet (their parent exists: checked at load).
pub fn prepare_watch_dirs(cfg: &Config) -> std::io::Result<()> {
    for w in &cfg.watches {
        if !w.path.exists() {
            std::fs::create_dir_all(&w.path)?;
            std::fs::set_permissions(&w.path, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
