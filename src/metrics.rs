//! Prometheus metrics (`[metrics] listen`), all named `hostedscan_agent_*`: files admitted and
//! rejected (by the kind of reason), uploads by result and the bytes sent, job runs by job and
//! outcome and how long they took (counted as they happen, through
//! [`crate::report::RunReport`]), each job's last success and failures in a row (as `jobs.json`
//! has them, so a restart keeps them), the probes of a down API, the version, and, read from the
//! state directory when scraped, the queue depth, the files in `failed/`, the last successful
//! upload and whether uploads are paused (the API down, or the key refused) or admission waits
//! (the disk is full). Served as OpenMetrics text at `GET /metrics` by a small HTTP/1.1
//! responder: nothing else is served, and nothing secret is in it.
//!
//! The label of a job is `scan_job`, not `job`: Prometheus gives every scraped series the
//! `job` of its scrape configuration, and would rename ours to `exported_job`. The alerting
//! rules and the dashboard in `packaging/` use these names; `tests/it/alerts.rs` checks them
//! against a live `/metrics`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::spool::{self, status_file, Layout, RejectedFor};
use crate::validate::RejectKind;

/// The results `hostedscan_agent_uploads_total` counts, each shown (as 0) from the start: an
/// alert on `increase()` sees the first one too.
pub const UPLOAD_RESULTS: [&str; 6] = [
    "uploaded",
    "duplicate",
    "retried",
    "unauthorized",
    "failed",
    "source_gone",
];

/// A job run's duration buckets, in seconds: a second to a day.
const JOB_DURATION_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanType {
    scan_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Version {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanJob {
    scan_job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UploadResult {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Source {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobRun {
    scan_job: String,
    outcome: String,
}

fn job_duration_histogram() -> Histogram {
    Histogram::new(JOB_DURATION_BUCKETS)
}

/// Seconds since the Unix epoch (0 before it).
fn unix_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The agent's metrics. Counters change as things happen; gauges are read at each scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    admitted: Family<ScanType, Counter>,
    rejected: Family<Kind, Counter>,
    uploads: Family<UploadResult, Counter>,
    bytes: Counter,
    source_uploads: Family<Source, Counter>,
    sources_unusable: Gauge,
    job_runs: Family<JobRun, Counter>,
    job_duration: Family<ScanJob, Histogram, fn() -> Histogram>,
    job_last_success: Family<ScanJob, Gauge<f64, AtomicU64>>,
    job_failures: Family<ScanJob, Gauge>,
    probes: Counter,
    queue: Gauge,
    failed: Gauge,
    last_upload: Gauge<f64, AtomicU64>,
    paused: Gauge,
    key_refused: Gauge,
    admission_paused: Gauge,
    resume_in: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hostedscan_agent");
        let m = Metrics {
            admitted: Family::default(),
            rejected: Family::default(),
            uploads: Family::default(),
            bytes: Counter::default(),
            source_uploads: Family::default(),
            sources_unusable: Gauge::default(),
            job_runs: Family::default(),
            job_duration: Family::new_with_constructor(job_duration_histogram),
            job_last_success: Family::default(),
            job_failures: Family::default(),
            probes: Counter::default(),
            queue: Gauge::default(),
            failed: Gauge::default(),
            last_upload: Gauge::default(),
            paused: Gauge::default(),
            key_refused: Gauge::default(),
            admission_paused: Gauge::default(),
            resume_in: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "files_admitted",
            "Files validated and queued for upload, by scan type",
            m.admitted.clone(),
        );
        let build = Family::<Version, Gauge>::default();
        build
            .get_or_create(&Version {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the agent's version is in its label",
            build,
        );
        registry.register(
            "files_rejected",
            "Files refused by validation or set aside (kept in rejected/ with the reason), by the kind of reason (the reason file's `kind`)",
            m.rejected.clone(),
        );
        registry.register(
            "uploads",
            "Upload attempts by result: uploaded, duplicate (the same content was already sent; not sent again), retried (will be tried again), unauthorized (the key was refused; the file stays queued), failed (refused for good, in failed/), source_gone (HostedScan does not know the file's source; it waits in queue/)",
            m.uploads.clone(),
        );
        registry.register(
            "uploaded_bytes",
            "Bytes of reports accepted by HostedScan",
            m.bytes.clone(),
        );
        registry.register(
            "source_uploads",
            "Reports accepted by HostedScan, by IMPORTED source (its name; its id for a bare source_id)",
            m.source_uploads.clone(),
        );
        registry.register(
            "sources_unusable",
            "Sources HostedScan answered it does not know (deleted on its side): their files wait in queue/ (see `status`)",
            m.sources_unusable.clone(),
        );
        registry.register(
            "job_runs",
            "Scan job runs by job (scan_job) and outcome: ok, failed, timeout, skipped (the previous run was still going)",
            m.job_runs.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "How long each finished job run took, by job",
            m.job_duration.clone(),
        );
        registry.register(
            "job_last_success_timestamp_seconds",
            "When each configured job last ended ok (Unix time; 0 if it never has)",
            m.job_last_success.clone(),
        );
        registry.register(
            "job_consecutive_failures",
            "Runs of each configured job that failed or timed out since its last success",
            m.job_failures.clone(),
        );
        registry.register(
            "api_probes",
            "Uploads sent alone, one at a time, to see whether the API is back while it is down",
            m.probes.clone(),
        );
        registry.register(
            "queue_depth",
            "Reports waiting in queue/ for upload",
            m.queue.clone(),
        );
        registry.register(
            "failed_files",
            "Reports in failed/ (refused by HostedScan; see `status`)",
            m.failed.clone(),
        );
        registry.register(
            "last_upload_timestamp_seconds",
            "When the last report was accepted (Unix time; 0 before the first)",
            m.last_upload.clone(),
        );
        registry.register(
            "uploads_paused",
            "1 while uploads are paused: the API is down (one request at a time probes it) or refuses the key. A single file waiting to be retried does not pause the others",
            m.paused.clone(),
        );
        registry.register(
            "api_key_refused",
            "1 while HostedScan refuses the API key (401/403): uploads are paused until the key is fixed",
            m.key_refused.clone(),
        );
        registry.register(
            "admission_paused",
            "1 while admission waits because the state directory's file system is below agent.min_free_space",
            m.admission_paused.clone(),
        );
        registry.register(
            "uploads_resume_in_seconds",
            "Seconds until uploads are tried again (0 when not paused)",
            m.resume_in.clone(),
        );
        // Every kind and result shown from the start, as 0.
        for k in RejectKind::ALL
            .into_iter()
            .map(RejectedFor::Invalid)
            .chain([
                RejectedFor::TooLarge,
                RejectedFor::JobFailed,
                RejectedFor::QueueEntry,
            ])
        {
            let _ = m.rejected.get_or_create(&Kind {
                kind: k.as_str().into(),
            });
        }
        for r in UPLOAD_RESULTS {
            let _ = m.uploads.get_or_create(&UploadResult { result: r.into() });
        }
        Metrics { registry, ..m }
    }

    pub fn admitted(&self, scan_type: &str) {
        self.admitted
            .get_or_create(&ScanType {
                scan_type: scan_type.into(),
            })
            .inc();
    }

    /// A file set aside in `rejected/`, for a reason of this `kind`.
    pub fn rejected(&self, kind: RejectedFor) {
        self.rejected
            .get_or_create(&Kind {
                kind: kind.as_str().into(),
            })
            .inc();
    }

    /// One upload attempt's result; `bytes` counts for `uploaded` only.
    pub fn upload(&self, result: &str, bytes: u64) {
        self.uploads
            .get_or_create(&UploadResult {
                result: result.into(),
            })
            .inc();
        if result == "uploaded" {
            self.bytes.inc_by(bytes);
        }
    }

    /// A report accepted into `source` (its name, or its id).
    pub fn uploaded_to(&self, source: &str) {
        self.source_uploads
            .get_or_create(&Source {
                source: label_value(source),
            })
            .inc();
    }

    /// One upload sent alone to see whether the down API is back.
    pub fn probe(&self) {
        self.probes.inc();
    }

    pub fn job_run(&self, job: &str, outcome: &str) {
        self.job_runs
            .get_or_create(&JobRun {
                scan_job: job.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// A run of `job` that ran took `took`.
    pub fn job_took(&self, job: &str, took: std::time::Duration) {
        self.job_duration
            .get_or_create(&ScanJob {
                scan_job: job.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// What `jobs.json` says of `job` now: its last success, and its failures since.
    pub fn job_state(
        &self,
        job: &str,
        last_success: Option<std::time::SystemTime>,
        failures_in_a_row: u32,
    ) {
        let key = ScanJob {
            scan_job: job.into(),
        };
        self.job_last_success
            .get_or_create(&key)
            .set(last_success.map_or(0.0, unix_seconds));
        self.job_failures
            .get_or_create(&key)
            .set(i64::from(failures_in_a_row));
    }

    /// The configured jobs changed: the state of the jobs removed is not shown any more (an
    /// alert on a job that is gone would never end).
    pub fn jobs_configured<'a>(
        &self,
        jobs: impl IntoIterator<Item = (&'a str, Option<std::time::SystemTime>, u32)>,
    ) {
        self.job_last_success.clear();
        self.job_failures.clear();
        for (job, last_success, failures) in jobs {
            self.job_state(job, last_success, failures);
        }
    }

    /// The text served at `/metrics`, with the gauges read from `state_dir` now.
    pub fn render(&self, state_dir: &Path) -> String {
        let counts = spool::counts(&Layout::new(state_dir)).unwrap_or_default();
        self.queue.set(counts.queued as i64);
        self.failed.set(counts.failed as i64);
        let since_epoch = unix_seconds;
        // The ledger's own record of the last upload (its index keeps it across compactions,
        // which begin an empty ledger.jsonl).
        let last = crate::spool::ledger::summary(state_dir)
            .ok()
            .and_then(|s| s.last_at)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0);
        self.last_upload.set(last);
        let daemon = status_file::load(state_dir).unwrap_or_default();
        let until = daemon
            .paused_until
            .as_deref()
            .and_then(|u| humantime::parse_rfc3339(u).ok());
        let left = until.map_or(0.0, |u| {
            (since_epoch(u) - since_epoch(std::time::SystemTime::now())).max(0.0)
        });
        // Paused until a success says otherwise: once the pause is over, a down API is still
        // down while its probe is out.
        self.paused.set(i64::from(daemon.paused.is_some()));
        self.key_refused.set(i64::from(
            daemon.paused.as_deref() == Some(status_file::PAUSED_AUTH),
        ));
        self.admission_paused
            .set(i64::from(daemon.admission_paused.is_some()));
        self.resume_in.set(left);
        self.sources_unusable
            .set(daemon.unusable_sources.len() as i64);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// Connections served at once by [`serve`]; each may last [`serve`]'s 5 s at most.
const MAX_CONNECTIONS: usize = 8;

/// Serves `GET /metrics` on `listen` until `shutdown`. Binding fails loudly (the operator asked
/// for it); a bad request gets a 4xx, never a crash.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    state_dir: PathBuf,
    shutdown: CancellationToken,
) {
    // A scraper needs one connection; a few spare. More would only spend the agent's file
    // descriptors, which admission and uploads need.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (mut conn, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics: too many connections; this one is closed");
            continue;
        };
        let (metrics, dir) = (metrics.clone(), state_dir.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let answer = async {
                let mut req = Vec::with_capacity(1024);
                let mut buf = [0u8; 1024];
                // The request head only; nothing here needs a body.
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                    let n = conn.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                let line = String::from_utf8_lossy(&req);
                let mut parts = line.split_whitespace();
                let (status, ctype, body) = match (parts.next(), parts.next()) {
                    (Some("GET"), Some(p)) if p == "/metrics" || p.starts_with("/metrics?") => {
                        let body = tokio::task::spawn_blocking(move || metrics.render(&dir))
                            .await
                            .unwrap_or_default();
                        (
                            "200 OK",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            body,
                        )
                    }
                    (Some("GET"), _) => ("404 Not Found", "text/plain", "see /metrics\n".into()),
                    _ => (
                        "405 Method Not Allowed",
                        "text/plain",
                        "GET /metrics only\n".into(),
                    ),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                conn.write_all(head.as_bytes()).await?;
                conn.write_all(body.as_bytes()).await?;
                conn.shutdown().await
            };
            let timed = tokio::time::timeout(std::time::Duration::from_secs(5), answer);
            if let Ok(Err(e)) = timed.await {
                tracing::debug!(error = %e, "metrics: connection ended early");
            }
        });
    }
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// `s` as a label value of the text exposition: prometheus-client writes label values as they
/// are, and a source name is the operator's free text (a `"` or `\\` in it would make every
/// scrape unparseable).
fn label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_upload_time_survives_a_ledger_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger =
            crate::spool::ledger::Ledger::open_compacting_every(dir.path(), 1).unwrap();
        ledger
            .record(crate::spool::ledger::LedgerLine {
                sha256: crate::spool::Sha256::of(b"report"),
                source_id: "src".into(),
                at: "2026-12-06T16:16:26Z".into(),
                file: "r.xml".into(),
                scan_type: crate::validate::ScanType::Nmap,
                size: 6,
                result_id: None,
            })
            .unwrap();
        let jsonl = std::fs::metadata(dir.path().join("ledger.jsonl")).unwrap();
        assert_eq!(jsonl.len(), 0, "compacted: a new, empty ledger.jsonl");
        let text = Metrics::new().render(dir.path());
        assert!(
            text.contains("hostedscan_agent_last_upload_timestamp_seconds 1796573786.0"),
            "{text}"
        );
    }

    #[test]
    fn a_source_name_with_quotes_and_backslashes_keeps_the_exposition_parseable() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics::new();
        m.uploaded_to("Lab \"B\" C:\\scans\nx");
        let text = m.render(dir.path());
        let line = text
            .lines()
            .find(|l| l.starts_with("hostedscan_agent_source_uploads_total{"))
            .unwrap_or_else(|| panic!("no source line in\n{text}"));
        assert_eq!(
            line,
            r#"hostedscan_agent_source_uploads_total{source="Lab \"B\" C:\\scans\nx"} 1"#
        );
    }

    #[test]
    fn counters_and_gauges_are_named_for_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics::new();
        m.admitted("NMAP");
        m.admitted("NMAP");
        m.upload("uploaded", 1000);
        m.upload("retried", 0);
        m.job_run("nightly", "ok");
        m.job_took("nightly", std::time::Duration::from_secs(90));
        m.rejected(RejectedFor::TooLarge);
        m.probe();
        let text = m.render(dir.path());
        for want in [
            &format!(
                "hostedscan_agent_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
            "hostedscan_agent_files_admitted_total{scan_type=\"NMAP\"} 2",
            "hostedscan_agent_files_rejected_total{kind=\"too_large\"} 1",
            "hostedscan_agent_files_rejected_total{kind=\"malformed\"} 0",
            "hostedscan_agent_uploads_total{result=\"uploaded\"} 1",
            "hostedscan_agent_uploads_total{result=\"retried\"} 1",
            "hostedscan_agent_uploads_total{result=\"failed\"} 0",
            "hostedscan_agent_uploaded_bytes_total 1000",
            "hostedscan_agent_job_runs_total{scan_job=\"nightly\",outcome=\"ok\"} 1",
            "hostedscan_agent_job_duration_seconds_count{scan_job=\"nightly\"} 1",
            "hostedscan_agent_job_duration_seconds_bucket{le=\"60.0\",scan_job=\"nightly\"} 0",
            "hostedscan_agent_job_duration_seconds_bucket{le=\"300.0\",scan_job=\"nightly\"} 1",
            "hostedscan_agent_api_key_refused 0",
            "hostedscan_agent_admission_paused 0",
            "hostedscan_agent_queue_depth 0",
            "hostedscan_agent_failed_files 0",
            "hostedscan_agent_uploads_paused 0",
            "hostedscan_agent_api_probes_total 1",
            "# EOF",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }

    #[test]
    fn job_states_follow_the_configured_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics::new();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        m.jobs_configured([("nightly", Some(at), 0), ("weekly", None, 2)]);
        let text = m.render(dir.path());
        for want in [
            "hostedscan_agent_job_last_success_timestamp_seconds{scan_job=\"nightly\"} 1700000000.0",
            "hostedscan_agent_job_last_success_timestamp_seconds{scan_job=\"weekly\"} 0.0",
            "hostedscan_agent_job_consecutive_failures{scan_job=\"weekly\"} 2",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        m.jobs_configured([("weekly", None, 3)]);
        let text = m.render(dir.path());
        assert!(!text.contains("scan_job=\"nightly\""), "{text}");
        assert!(
            text.contains("hostedscan_agent_job_consecutive_failures{scan_job=\"weekly\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn a_refused_key_and_a_full_disk_show_from_the_status_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics::new();
        let s = status_file::DaemonStatus {
            paused: Some(status_file::PAUSED_AUTH.into()),
            admission_paused: Some("below min_free_space".into()),
            ..Default::default()
        };
        status_file::save(dir.path(), &s).unwrap();
        let text = m.render(dir.path());
        for want in [
            "hostedscan_agent_uploads_paused 1",
            "hostedscan_agent_api_key_refused 1",
            "hostedscan_agent_admission_paused 1",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }
}
