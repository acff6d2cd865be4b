//! The configuration file exactly as written: serde structs with the contract's keys and
//! defaults, and nothing else. Unknown keys are refused here (`deny_unknown_fields`), by name.
//! Turning these strings into durations, sizes, globs and URLs is `super::validate`'s job.

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub api: RawApi,
    pub source: RawSource,
    pub agent: RawAgent,
    pub retry: RawRetry,
    pub metrics: RawMetrics,
    pub watch: Vec<RawWatch>,
    pub job: Vec<RawJob>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApi {
    pub url: String,
    pub key_file: Option<String>,
    pub key: Option<String>,
    pub timeout: String,
    pub connect_timeout: String,
    pub proxy: Option<String>,
    pub ca_file: Option<String>,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            url: "https://api.hostedscan.com/v1".into(),
            key_file: None,
            key: None,
            timeout: "10m".into(),
            connect_timeout: "10s".into(),
            proxy: None,
            ca_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSource {
    pub name: String,
    pub id: Option<String>,
}

impl Default for RawSource {
    fn default() -> Self {
        RawSource {
            name: "Internal scans ({hostname})".into(),
            id: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAgent {
    pub state_dir: String,
    pub upload_concurrency: i64,
    pub max_file_size: String,
    pub settle: String,
    pub incomplete_grace: String,
    pub rescan_interval: String,
    pub after_upload: String,
    pub archive_retention: String,
    pub max_concurrent_jobs: i64,
    pub rejected_retention: String,
    pub rejected_max_size: String,
    /// Unset: 1GiB or 5% of the state file system, whichever is less.
    pub min_free_space: Option<String>,
}

impl Default for RawAgent {
    fn default() -> Self {
        RawAgent {
            state_dir: super::DEFAULT_STATE_DIR.into(),
            upload_concurrency: 2,
            max_file_size: "2GiB".into(),
            settle: "5s".into(),
            incomplete_grace: "10m".into(),
            rescan_interval: "60s".into(),
            after_upload: "archive".into(),
            archive_retention: "30d".into(),
            max_concurrent_jobs: 1,
            rejected_retention: "30d".into(),
            rejected_max_size: "2GiB".into(),
            min_free_space: None,
        }
    }
}

/// `[metrics]`: off unless `listen` is set.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    pub listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetry {
    pub initial_backoff: String,
    pub max_backoff: String,
    pub once_deadline: String,
}

impl Default for RawRetry {
    fn default() -> Self {
        RawRetry {
            initial_backoff: "1s".into(),
            max_backoff: "5m".into(),
            once_deadline: "10m".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    pub path: String,
    #[serde(default = "auto")]
    pub scan_type: String,
    #[serde(default)]
    pub include: Option<Vec<String>>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub recursive: bool,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub accept_partial: bool,
    /// This watch's IMPORTED source by name (`{hostname}` expanded); default: `[source]`.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
}

fn auto() -> String {
    "auto".into()
}

/// `[[job]]` as the contract lists it. Scheduling them is not part of this build yet; the keys
/// are accepted (and misspellings refused) so that one config file serves every version.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    pub name: String,
    pub scanner: String,
    pub schedule: String,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub args: Option<Vec<String>>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub jitter: Option<String>,
    #[serde(default)]
    pub catch_up: Option<bool>,
    #[serde(default)]
    pub scan_type: Option<String>,
    #[serde(default)]
    pub accept_partial: Option<bool>,
    #[serde(default)]
    pub privileged: Option<bool>,
    #[serde(default)]
    pub zap_path: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub ajax_spider: Option<bool>,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub gmp_socket: Option<String>,
    #[serde(default)]
    pub gmp_host: Option<String>,
    #[serde(default)]
    pub gmp_port: Option<i64>,
    #[serde(default)]
    pub gmp_username: Option<String>,
    #[serde(default)]
    pub gmp_password_file: Option<String>,
    #[serde(default)]
    pub port_list_id: Option<String>,
    #[serde(default)]
    pub scan_config_id: Option<String>,
    #[serde(default)]
    pub scanner_id: Option<String>,
    #[serde(default)]
    pub cleanup: Option<bool>,
    #[serde(default)]
    pub gmp_ca_file: Option<String>,
    #[serde(default)]
    pub min_qod: Option<i64>,
    /// This job's IMPORTED source by name (`{hostname}` expanded); default: `[source]`.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
}
