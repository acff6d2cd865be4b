//! systemd's service protocol (`sd_notify`): `READY=1` once the daemon has started, `STATUS=`
//! lines with the queue depth and the last upload, `WATCHDOG=1` pings while every part of the
//! daemon is still running, and `STOPPING=1` when it stops. Nothing is sent when systemd did not
//! start the agent (no `NOTIFY_SOCKET`), and scanners never see the socket (see supervise.rs).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::spool::{self, Layout};

/// How often `STATUS=` is refreshed when systemd asks for no watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(30);

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}

/// The daemon's line in `systemctl status`: queue depth, failures, the last upload.
pub fn status_line(state_dir: &Path) -> String {
    let layout = Layout::new(state_dir);
    let counts = spool::counts(&layout).unwrap_or_default();
    // The ledger is appended at each upload: its mtime is the last one (no need to read it).
    let last = std::fs::metadata(state_dir.join("ledger.jsonl"))
        .ok()
        .filter(|m| m.len() > 0)
        .ok_or(())
        .and_then(|m| m.modified().map_err(drop))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|_| "none yet".into());
    format!(
        "queued {}, failed {}, rejected {}; last upload {last}",
        counts.queued, counts.failed, counts.rejected
    )
}

/// Started: `READY=1` with the first status line.
pub fn ready(state_dir: &Path) {
    send(&[
        NotifyState::Ready,
        NotifyState::Status(&status_line(state_dir)),
    ]);
}

/// A free-form line for `systemctl status`.
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

/// A reload starts (`READY=1` follows when it is done).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading the configuration"),
        ]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: in-flight uploads may finish"),
    ]);
}

/// Until `shutdown`: refreshes `STATUS=` and, when systemd set a watchdog, pings it at half
/// its interval, but only while every task in `parts` is still running. A part that ended
/// (or panicked) on its own means the daemon no longer does its job: the pings stop, and
/// systemd restarts the service (`Restart=on-failure`) when the watchdog expires.
pub async fn keep_alive(
    state_dir: PathBuf,
    parts: Vec<(&'static str, AbortHandle)>,
    shutdown: CancellationToken,
) {
    let watchdog = sd_notify::watchdog_enabled();
    watch_over(state_dir, parts, watchdog, shutdown, send).await
}

/// [`keep_alive`] with the watchdog interval and the way messages go given (for tests).
async fn watch_over(
    state_dir: PathBuf,
    parts: Vec<(&'static str, AbortHandle)>,
    watchdog: Option<Duration>,
    shutdown: CancellationToken,
    send: impl Fn(&[NotifyState<'_>]),
) {
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).max(Duration::from_millis(50)));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let dead: Vec<&str> = parts
            .iter()
            .filter(|(_, h)| h.is_finished())
            .map(|(n, _)| *n)
            .collect();
        if !dead.is_empty() {
            if !reported {
                tracing::error!(parts = ?dead, "part of the agent stopped working; no more watchdog pings, so systemd restarts the service");
                send(&[NotifyState::Status(&format!(
                    "unhealthy: {} stopped",
                    dead.join(", ")
                ))]);
                reported = true;
            }
            continue;
        }
        let dir = state_dir.clone();
        let line = tokio::task::spawn_blocking(move || status_line(&dir))
            .await
            .unwrap_or_default();
        match watchdog {
            Some(_) => send(&[NotifyState::Watchdog, NotifyState::Status(&line)]),
            None => send(&[NotifyState::Status(&line)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test(start_paused = true)]
    async fn pings_stop_when_a_part_of_the_daemon_stops() {
        let dir = tempfile::tempdir().unwrap();
        let alive = tokio::spawn(std::future::pending::<()>());
        let dying = tokio::spawn(tokio::time::sleep(Duration::from_secs(5)));
        let sent = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = sent.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(watch_over(
            dir.path().to_path_buf(),
            vec![
                ("uploader", alive.abort_handle()),
                ("watcher", dying.abort_handle()),
            ],
            Some(Duration::from_secs(2)),
            shutdown.clone(),
            move |states| {
                let msg: Vec<String> = states.iter().map(|s| s.to_string()).collect();
                log.lock().unwrap().push(msg.join("\n"));
            },
        ));
        tokio::time::sleep(Duration::from_millis(4500)).await;
        let before = sent.lock().unwrap().clone();
        assert!(before.len() >= 4, "a ping every second: {before:?}");
        assert!(
            before
                .iter()
                .all(|m| m.starts_with("WATCHDOG=1") && m.contains("queued 0")),
            "{before:?}"
        );
        // The watcher ends: one unhealthy status, then silence, so systemd's watchdog fires.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after: Vec<String> = sent.lock().unwrap()[before.len()..].to_vec();
        assert_eq!(
            after
                .iter()
                .filter(|m| m.contains("unhealthy: watcher stopped"))
                .count(),
            1,
            "{after:?}"
        );
        assert!(
            after.iter().filter(|m| m.contains("WATCHDOG=1")).count() <= 1,
            "{after:?}"
        );
        shutdown.cancel();
        task.await.unwrap();
        alive.abort();
    }
}
