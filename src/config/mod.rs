//! Configuration: the TOML file (plus `HOSTEDSCAN_AGENT__SECTION__KEY` environment overrides)
//! read through the `config` crate into `raw` structs, then validated, one section per file,
//! into the typed settings the rest of the agent uses. Every problem names its key and says
//! how to fix it; all problems are reported at once (they collect in one `Checker`) so an
//! operator fixes the file in one go. This layer imports nothing above it: the job settings,
//! schedules and GMP settings it validates are its own types.

mod agent;
mod api;
pub mod job;
mod metrics;
pub mod ownership;
mod raw;
mod retry;
pub mod schedule;
mod secret;
pub(crate) mod source;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::Glob;

pub use agent::AgentSettings;
pub use api::ApiSettings;
use api::KeyCheck;
pub use job::{
    Argv, CommandJob, Endpoint, JobSpec, NmapJob, OpenvasJob, OpenvasSettings, Polling, Scanner,
    ScannerJob, SslyzeJob, Targets, ZapJob, ZapMode, ZapPlan,
};
pub use metrics::MetricsSettings;
pub use retry::RetrySettings;
pub use schedule::Schedule;
pub use secret::{ApiKey, KeyOrigin};
pub use source::{Book, SharedBook, SourceChoice, SourceSettings, SourceSpec, SourceUse};
pub use watch::{is_temporary_name, Globs, WatchSettings};

use crate::validate::ScanType;

/// `agent.state_dir` when the configuration does not say.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hostedscan-agent";

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

/// The whole configuration, validated. Two loads of the same file are equal (`==`) whatever
/// their `warnings` (remarks about the file, not settings: left out of the comparison).
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

impl PartialEq for Config {
    fn eq(&self, other: &Config) -> bool {
        self.file == other.file
            && self.api == other.api
            && self.source == other.source
            && self.agent == other.agent
            && self.retry == other.retry
            && self.metrics == other.metrics
            && self.watches == other.watches
            && self.jobs == other.jobs
    }
}

impl Eq for Config {}

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
        let built = layered(path, env).map_err(|e| ConfigError::File {
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

/// The file at `path` under the environment's `HOSTEDSCAN_AGENT__...` overrides, not validated.
fn layered(path: &Path, env: &Env) -> Result<config::Config, config::ConfigError> {
    let overrides: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("HOSTEDSCAN_AGENT__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("HOSTEDSCAN_AGENT")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(overrides)),
        )
        .build()
}

/// The state directory that the configuration at `path` names, read leniently: for `status`
/// when the configuration is invalid. `agent.state_dir` when the file parses (whatever else is
/// wrong with it) and is trusted as the configuration must be, else `None`. Nothing else of the file is looked at.
pub fn state_dir_hint(path: &Path, env: &Env) -> Option<std::path::PathBuf> {
    // A file others could have written names nothing to be trusted, not even where to read.
    ownership::check_trusted_file(path, ownership::Owner::Root).ok()?;
    let built = layered(path, env).ok()?;
    built
        .get_string("agent.state_dir")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .map(std::path::PathBuf::from)
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

pub(crate) struct Checker {
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

    fn globs(&mut self, key: &str, patterns: &[String]) -> Globs {
        let mut good = Vec::new();
        for p in patterns {
            match Glob::new(p) {
                Ok(_) => good.push(p.as_str()),
                Err(e) => self
                    .problems
                    .push(problem(key, format!("{p:?} is not a valid glob: {e}"))),
            }
        }
        Globs::new(&good).unwrap_or_default()
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

fn validate(
    raw: raw::RawConfig,
    file: &Path,
    env: &Env,
    key_check: KeyCheck,
) -> Result<Config, ConfigError> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let api = api::check(&raw.api, env, key_check, &mut c);
    let source = source::check(raw.source, &mut c);
    let agent = agent::check(&raw.agent, &mut c);
    let retry = retry::check(&raw.retry, &mut c);
    let watches = watch::check(raw.watch, raw.job.is_empty(), &agent.state_dir, &mut c);

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
        if let Some(spec) = job::check_job(&mut c, &mut warnings, i, j, path_var) {
            jobs.push(spec);
        }
    }

    let mut watches = watches;
    let choices = watches
        .iter_mut()
        .enumerate()
        .map(|(i, w)| (format!("watch[{i}]"), &mut w.source))
        .chain(
            jobs.iter_mut()
                .enumerate()
                .map(|(i, j)| (format!("job[{i}]"), &mut j.source)),
        )
        .collect();
    source::reconcile(&source, choices, &mut c);
    let metrics = metrics::check(&raw.metrics, &mut c, &mut warnings);
    if !c.problems.is_empty() {
        return Err(ConfigError::Invalid {
            problems: c.problems,
        });
    }
    Ok(Config {
        file: file.to_path_buf(),
        api: api.expect("no problems: the URL is usable"),
        source,
        agent,
        retry,
        metrics,
        watches,
        jobs,
        warnings,
    })
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
