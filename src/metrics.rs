//! Prometheus metrics (`[metrics] listen`), all named `hostedscan_agent_*`: files admitted and
//! rejected, uploads by result and the bytes sent, job runs by job and outcome (counted as they
//! happen, through [`crate::report::RunReport`]), the probes of a down API, and, read from the
//! state directory when scraped, the queue depth, the files in `failed/`, the last successful
//! upload and whether uploads are paused (the API down, or the key refused). Served as OpenMetrics text at `GET /metrics` by a small HTTP/1.1
//! responder: nothing else is served, and nothing secret is in it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::spool::{self, status_file, Layout};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanType {
    scan_type: String,
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
    job: String,
    outcome: String,
}

/// The agent's metrics. Counters change as things happen; gauges are read at each scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    admitted: Family<ScanType, Counter>,
    rejected: Counter,
    uploads: Family<UploadResult, Counter>,
    bytes: Counter,
    source_uploads: Family<Source, Counter>,
    sources_unusable: Gauge,
    job_runs: Family<JobRun, Counter>,
    probes: Counter,
    queue: Gauge,
    failed: Gauge,
    last_upload: Gauge<f64, AtomicU64>,
    paused: Gauge,
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
            rejected: Counter::default(),
            uploads: Family::default(),
            bytes: Counter::default(),
            source_uploads: Family::default(),
            sources_unusable: Gauge::default(),
            job_runs: Family::default(),
            probes: Counter::default(),
            queue: Gauge::default(),
            failed: Gauge::default(),
            last_upload: Gauge::default(),
            paused: Gauge::default(),
            resume_in: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "files_admitted",
            "Files validated and queued for upload, by scan type",
            m.admitted.clone(),
        );
        registry.register(
            "files_rejected",
            "Files refused by validation (kept in rejected/ with the reason)",
            m.rejected.clone(),
        );
        registry.register(
            "uploads",
            "Upload attempts by result: uploaded, duplicate (the same content was already sent; not sent again), retried (will be tried again), unauthorized (the key was refused; the file stays queued), failed (refused for good, in failed/)",
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
            "Scan job runs by job and outcome",
            m.job_runs.clone(),
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
            "uploads_resume_in_seconds",
            "Seconds until uploads are tried again (0 when not paused)",
            m.resume_in.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn admitted(&self, scan_type: &str) {
        self.admitted
            .get_or_create(&ScanType {
                scan_type: scan_type.into(),
            })
            .inc();
    }

    pub fn rejected(&self) {
        self.rejected.inc();
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
                job: job.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// The text served at `/metrics`, with the gauges read from `state_dir` now.
    pub fn render(&self, state_dir: &Path) -> String {
        let counts = spool::counts(&Layout::new(state_dir)).unwrap_or_default();
        self.queue.set(counts.queued as i64);
        self.failed.set(counts.failed as i64);
        let since_epoch = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        };
        // The ledger is appended at each upload: its mtime is the last one.
        let last = std::fs::metadata(state_dir.join("ledger.jsonl"))
            .and_then(|m| m.modified())
            .map(since_epoch)
            .unwrap_or(0.0);
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
        m.probe();
        let text = m.render(dir.path());
        for want in [
            "hostedscan_agent_files_admitted_total{scan_type=\"NMAP\"} 2",
            "hostedscan_agent_uploads_total{result=\"uploaded\"} 1",
            "hostedscan_agent_uploads_total{result=\"retried\"} 1",
            "hostedscan_agent_uploaded_bytes_total 1000",
            "hostedscan_agent_job_runs_total{job=\"nightly\",outcome=\"ok\"} 1",
            "hostedscan_agent_queue_depth 0",
            "hostedscan_agent_failed_files 0",
            "hostedscan_agent_uploads_paused 0",
            "hostedscan_agent_api_probes_total 1",
            "# EOF",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }
}
