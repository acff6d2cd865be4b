//! The status report: what is queued, failed and rejected, what was uploaded and when, the last
//! error and the source in use, read from the state directory alone, so it works whether the
//! daemon is running or not and never needs the API key.

use std::path::Path;

use serde::Serialize;

use crate::spool::{self, ledger, source, status_file, Layout};

#[derive(Debug, Serialize)]
pub struct Status {
    pub state_dir: String,
    /// Why the configuration cannot be used, when it cannot: the report then holds what the
    /// state directory does (no configured sources, no next runs).
    pub config_error: Option<String>,
    pub daemon_running: bool,
    pub queued: usize,
    pub failed: usize,
    pub rejected: usize,
    pub uploaded_total: u64,
    pub last_upload_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub paused: Option<String>,
    pub paused_until: Option<String>,
    /// The default (`[source]`) source's id and name.
    pub source_id: Option<String>,
    pub source_name: Option<String>,
    /// Every source in use: `[source]` first, then those of watches and jobs, then any other
    /// that uploads went to.
    pub sources: Vec<SourceStatus>,
    /// The first [`FILES_LISTED`] names in failed/ (all are counted in `failed`).
    pub failed_files: Vec<String>,
    /// The first [`FILES_LISTED`] names in rejected/ (all are counted in `rejected`).
    pub rejected_files: Vec<String>,
    /// Why admission waits (the state file system is below `min_free_space`), if it does.
    pub admission_paused: Option<String>,
    /// Files left in watch directories until they change (too large, unreadable).
    pub parked: usize,
    /// The first of them, with why.
    pub parked_files: Vec<status_file::Parked>,
    pub jobs: Vec<JobStatus>,
}

#[derive(Debug, Serialize)]
pub struct SourceStatus {
    /// The source's name; a bare `source_id`'s is the id (the agent never learns its name).
    pub name: Option<String>,
    /// `None` until it was looked up or created (at its first upload).
    pub id: Option<String>,
    pub uploaded_total: u64,
    pub last_upload_at: Option<String>,
    /// False when HostedScan answered that it does not know the source (deleted on its side):
    /// its files wait in queue/ (see `problem` for what to do).
    pub usable: bool,
    pub problem: Option<String>,
    /// The watches and jobs that send reports to it (`[source]` for the default).
    pub used_by: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct JobStatus {
    pub name: String,
    pub last_run: Option<String>,
    pub outcome: Option<String>,
    /// The last lines the last run wrote to stderr.
    pub last_stderr: Vec<String>,
    pub next_run: Option<String>,
}

/// Names of failed/ and rejected/ listed at most (a flood of junk must not make `status` print
/// a hundred thousand names; `ls` has them all).
pub const FILES_LISTED: usize = 100;

fn first(mut names: Vec<String>) -> Vec<String> {
    names.truncate(FILES_LISTED);
    names
}

/// Whether a daemon holds the state directory's lock right now.
fn locked(root: &Path) -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .open(root.join("lock"))
    else {
        return false;
    };
    match f.try_lock_shared() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(_) => false,
    }
}

/// What `status` reports: the state directory, with the configuration's jobs and sources
/// (`Err`: why the configuration cannot be used; the jobs and sources the state directory
/// remembers are reported then, without next runs).
pub fn gather(
    state_dir: &Path,
    cfg: Result<&crate::config::Config, &str>,
) -> std::io::Result<Status> {
    let layout = Layout::new(state_dir);
    let counts = spool::counts(&layout)?;
    let summary = ledger::summary(state_dir)?;
    let src = source::load_readonly(state_dir);
    let daemon = status_file::load(state_dir);
    let running = locked(state_dir);
    // What the daemon says about itself holds only while it runs.
    let live = daemon.as_ref().filter(|_| running);
    Ok(Status {
        state_dir: state_dir.display().to_string(),
        config_error: cfg.err().map(str::to_string),
        daemon_running: running,
        queued: counts.queued,
        failed: counts.failed,
        rejected: counts.rejected,
        uploaded_total: summary.total,
        last_upload_at: summary.last_at,
        last_error: daemon.as_ref().and_then(|d| d.last_error.clone()),
        last_error_at: daemon.as_ref().and_then(|d| d.last_error_at.clone()),
        paused: live.and_then(|d| d.paused.clone()),
        paused_until: live.and_then(|d| d.paused_until.clone()),
        source_id: src.as_ref().map(|s| s.id.clone()),
        source_name: src.map(|s| s.name),
        sources: source_status(state_dir, cfg, live)?,
        failed_files: first(spool::list_payloads(&layout.failed, ".error.json")?),
        rejected_files: first(spool::list_payloads(&layout.rejected, ".reason.json")?),
        admission_paused: live.and_then(|d| d.admission_paused.clone()),
        parked: live.map_or(0, |d| d.parked_total),
        parked_files: live.map(|d| d.parked.clone()).unwrap_or_default(),
        jobs: job_status(state_dir, cfg.ok(), running),
    })
}

/// Each source in use: its id as remembered, its uploads from the ledger, whether the running
/// daemon found it deleted on HostedScan.
fn source_status(
    state_dir: &Path,
    cfg: Result<&crate::config::Config, &str>,
    daemon: Option<&status_file::DaemonStatus>,
) -> std::io::Result<Vec<SourceStatus>> {
    let mut totals = ledger::summaries(state_dir)?;
    let unusable = |id: &Option<String>| {
        daemon.and_then(|d| {
            d.unusable_sources
                .iter()
                .find(|u| Some(&u.id) == id.as_ref())
                .map(|u| u.reason.clone())
        })
    };
    let mut out = Vec::new();
    let (uses, book) = match cfg {
        Ok(c) => (c.source_uses(), Some(c.book(state_dir))),
        Err(_) => (vec![], None),
    };
    for u in uses {
        let id = u
            .configured_id
            .clone()
            .or_else(|| book.as_ref().and_then(|b| b.remembered(&u.source)));
        let t = id
            .as_ref()
            .and_then(|i| totals.remove(i))
            .unwrap_or_default();
        let problem = unusable(&id);
        out.push(SourceStatus {
            name: u.name.or_else(|| id.clone()),
            id,
            uploaded_total: t.total,
            last_upload_at: t.last_at,
            usable: problem.is_none(),
            problem,
            used_by: if u.source.is_default() && u.used_by.is_empty() {
                vec!["[source]".into()]
            } else {
                u.used_by
            },
        });
    }
    // Sources uploaded to before (another configuration): their totals, and their names
    // where the state directory remembers them.
    let named = source::load_named_readonly(state_dir).sources;
    let default = source::load_readonly(state_dir);
    for (id, t) in totals {
        let name = named
            .iter()
            .chain(default.iter())
            .find(|r| r.id == id)
            .map(|r| r.name.clone());
        let problem = unusable(&Some(id.clone()));
        out.push(SourceStatus {
            name,
            id: Some(id),
            uploaded_total: t.total,
            last_upload_at: t.last_at,
            usable: problem.is_none(),
            problem,
            used_by: vec![],
        });
    }
    Ok(out)
}

/// Each configured job's last run (from `jobs.json`) and next scheduled time; without a
/// usable configuration, each job `jobs.json` remembers, with no next run.
fn job_status(
    state_dir: &Path,
    cfg: Option<&crate::config::Config>,
    running: bool,
) -> Vec<JobStatus> {
    let history = crate::jobs::history::JobHistory::load(state_dir).unwrap_or_default();
    let now = chrono::Utc::now();
    let jobs: Vec<(String, Option<&crate::config::JobSpec>)> = match cfg {
        Some(c) => c.jobs.iter().map(|j| (j.name.clone(), Some(j))).collect(),
        None => history.iter().map(|(n, _)| (n.to_string(), None)).collect(),
    };
    jobs.into_iter()
        .map(|(name, j)| {
            let rec = history.get(&name);
            let outcome = rec.and_then(|r| {
                // A run without an end is running only while a daemon is; otherwise it was
                // cut off.
                if r.last_started > r.last_finished {
                    return Some(if running { "running" } else { "interrupted" }.to_string());
                }
                let o = r.last_outcome?;
                Some({
                    let word = o.as_str().to_string();
                    match r.last_reason.as_deref() {
                        Some(reason) if o != crate::jobs::history::Outcome::Ok => {
                            format!("{word}: {reason}")
                        }
                        _ => word,
                    }
                })
            });
            JobStatus {
                name,
                last_run: rec.and_then(|r| r.last_started).map(|t| t.to_rfc3339()),
                outcome,
                last_stderr: rec.map(|r| r.last_stderr.clone()).unwrap_or_default(),
                next_run: j
                    .and_then(|j| j.schedule.next_after(now))
                    .map(|t| t.to_rfc3339()),
            }
        })
        .collect()
}

/// Names and messages from outside, one line each (`crate::escape`).
fn esc(s: &str) -> String {
    crate::escape::text(s).into_owned()
}

pub fn render_text(s: &Status) -> String {
    let mut out = String::new();
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    out.push_str(&format!("state directory  {}\n", s.state_dir));
    if let Some(e) = &s.config_error {
        out.push_str(&format!(
            "configuration    INVALID: {} (`hostedscan-agent check-config` says more)\n",
            esc(e)
        ));
    }
    out.push_str(&format!(
        "daemon           {}\n",
        if s.daemon_running {
            "running"
        } else {
            "not running"
        }
    ));
    out.push_str(&format!(
        "source           {}{}\n",
        esc(&dash(&s.source_id)),
        s.source_name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    ));
    if s.sources.len() > 1 || s.sources.iter().any(|x| !x.usable) {
        for x in &s.sources {
            out.push_str(&format!(
                "  {} {}: {} uploaded{}{}\n",
                esc(&dash(&x.id)),
                x.name
                    .as_deref()
                    .map(|n| format!("({})", esc(n)))
                    .unwrap_or_default(),
                x.uploaded_total,
                if x.used_by.is_empty() {
                    " (no longer configured)".to_string()
                } else {
                    format!(", from {}", esc(&x.used_by.join(", ")))
                },
                x.problem
                    .as_deref()
                    .map(|p| format!("\n    UNUSABLE: {}", esc(p)))
                    .unwrap_or_default()
            ));
        }
    }
    out.push_str(&format!("queued           {}\n", s.queued));
    out.push_str(&format!(
        "uploaded         {} (last {})\n",
        s.uploaded_total,
        dash(&s.last_upload_at)
    ));
    out.push_str(&format!(
        "failed           {}{}\n",
        s.failed,
        list(&s.failed_files, s.failed)
    ));
    out.push_str(&format!(
        "rejected         {}{}\n",
        s.rejected,
        list(&s.rejected_files, s.rejected)
    ));
    if let Some(p) = &s.paused {
        out.push_str(&format!(
            "uploads paused   {p} until {}\n",
            dash(&s.paused_until)
        ));
    }
    if let Some(p) = &s.admission_paused {
        out.push_str(&format!("admission paused {}\n", esc(p)));
    }
    if s.parked > 0 {
        out.push_str(&format!(
            "parked           {} (left in the watch directories until they change)\n",
            s.parked
        ));
        for p in &s.parked_files {
            out.push_str(&format!("  {}: {}\n", esc(&p.file), esc(&p.reason)));
        }
        if s.parked > s.parked_files.len() {
            out.push_str(&format!("  and {} more\n", s.parked - s.parked_files.len()));
        }
    }
    out.push_str(&format!(
        "last error       {}{}\n",
        esc(&dash(&s.last_error)),
        s.last_error_at
            .as_ref()
            .map(|t| format!(" (at {t})"))
            .unwrap_or_default()
    ));
    for j in &s.jobs {
        let next = match (&s.config_error, &j.next_run) {
            (Some(_), _) => "unknown (the configuration is invalid)".to_string(),
            (None, n) => dash(n),
        };
        out.push_str(&format!(
            "job {:<12} last {} ({}), next {}\n",
            j.name,
            dash(&j.last_run),
            dash(&j.outcome),
            next
        ));
    }
    if s.failed > 0 || s.rejected > 0 {
        out.push_str("see failed/*.error.json and rejected/*.reason.json for why; `hostedscan-agent requeue` sends failed files again\n");
    }
    out
}

fn list(names: &[String], total: usize) -> String {
    if names.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = names.iter().take(5).map(|n| esc(n)).collect();
    let more = total.saturating_sub(shown.len());
    format!(
        ": {}{}",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}
