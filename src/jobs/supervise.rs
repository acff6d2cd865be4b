//! Running one scanner process under supervision: started without a shell in its own process
//! group and private working directory, stopped on timeout or shutdown (SIGTERM to the group,
//! then SIGKILL after a grace period), and never left running: whatever the leader leaves behind
//! in its group is killed when it ends, and the group is killed if the run is abandoned (its
//! future dropped). The last lines of stderr are kept, in bounded memory, to say why it failed.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// How many lines of stderr a [`RunResult`] keeps (the last ones).
pub const TAIL_LINES: usize = 20;
/// How many characters of each stderr line are kept; the rest of the line is dropped.
pub const TAIL_LINE_CHARS: usize = 500;
/// Bytes kept of a line before decoding: enough for `TAIL_LINE_CHARS` characters of any width.
const TAIL_LINE_BYTES: usize = 4 * TAIL_LINE_CHARS;
/// Size of each read from the stderr pipe.
const READ_CHUNK: usize = 16 * 1024;
/// How long stderr may stay open once the process group has ended (a process that left the
/// group may still hold it) before the tail is taken as it is.
const STDERR_DRAIN: Duration = Duration::from_secs(1);

/// One process to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// `argv[0]` is the program (looked up on `PATH` if it has no `/`); no shell, ever.
    pub argv: Vec<OsString>,
    /// A private directory, created by the caller: the working directory, and `TMPDIR`, `TMP`
    /// and `TEMP` point at it.
    pub workdir: PathBuf,
    /// How long the process may run before it is stopped.
    pub timeout: Duration,
    /// How long a stopped process gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

/// What happened to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    pub ended: Ended,
    /// The last [`TAIL_LINES`] lines of stderr (lossy UTF-8, each cut to [`TAIL_LINE_CHARS`]
    /// characters), oldest first.
    pub stderr_tail: Vec<String>,
    /// From just before the start to the end of supervision.
    pub elapsed: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The process exited by itself with this status.
    Exited(i32),
    /// The process was killed by this signal, not by the supervisor.
    Signaled(i32),
    /// It ran past its timeout and was stopped.
    TimedOut,
    /// The agent is shutting down and stopped it.
    Cancelled,
    /// It could not be started; the message names the program and says why.
    SpawnFailed(String),
    /// It was started but its end could not be observed (the wait for it failed); its process
    /// group has been killed. The message says why.
    WaitFailed(String),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Exited(code) => write!(f, "exited with status {code}"),
            Ended::Signaled(sig) => write!(f, "killed by signal {sig}"),
            Ended::TimedOut => f.write_str("timed out"),
            Ended::Cancelled => f.write_str("stopped because the agent is shutting down"),
            Ended::SpawnFailed(why) => write!(f, "could not start: {why}"),
            Ended::WaitFailed(why) => write!(f, "lost track of the process: {why}"),
        }
    }
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
enum SpawnError {
    #[error("the command is empty: there is no program to run")]
    NoProgram,
    #[error("cannot start {program}: working directory {}: {problem}", workdir.display())]
    Workdir {
        program: String,
        workdir: PathBuf,
        problem: String,
    },
    #[error("cannot start {program}: {source}{}", not_found_hint(source))]
    Start { program: String, source: io::Error },
}

fn not_found_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::NotFound {
        " (is it installed, and on PATH or given with its full path?)"
    } else {
        ""
    }
}

/// Runs `req.argv` to its end, or until `req.timeout` passes or `cancel` fires, and then makes
/// sure nothing of its process group is left running.
pub async fn run(req: RunRequest, cancel: CancellationToken) -> RunResult {
    let started = Instant::now();
    let program = req
        .argv
        .first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut child = match spawn(&req, &program).await {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(program = %program, error = %e, "cannot start the job's process");
            return RunResult {
                ended: Ended::SpawnFailed(e.to_string()),
                stderr_tail: Vec::new(),
                elapsed: started.elapsed(),
            };
        }
    };
    let pid = child.id();
    let stderr = child.stderr.take();
    tracing::info!(
        program = %program,
        pid,
        workdir = %req.workdir.display(),
        timeout_ms = u64::try_from(req.timeout.as_millis()).unwrap_or(u64::MAX),
        "job process started"
    );
    let mut group = Group {
        pgid: pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw),
        child,
        program: &program,
        done: false,
    };
    let mut tail = Tail::default();
    let ended = {
        let supervised = pin!(group.supervise(req.timeout, req.kill_grace, &cancel));
        let reader = pin!(read_stderr(stderr, &mut tail));
        drive(supervised, reader).await
    };
    drop(group);
    let elapsed = started.elapsed();
    tracing::info!(
        program = %program,
        pid,
        outcome = %ended,
        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "job process ended"
    );
    RunResult {
        ended,
        stderr_tail: tail.into_lines(),
        elapsed,
    }
}

async fn spawn(req: &RunRequest, program: &str) -> Result<Child, SpawnError> {
    let Some((prog, args)) = req.argv.split_first() else {
        return Err(SpawnError::NoProgram);
    };
    let workdir_error = |problem: String| SpawnError::Workdir {
        program: program.to_owned(),
        workdir: req.workdir.clone(),
        problem,
    };
    // Absolute, so that TMPDIR means the same directory from inside the child's cwd.
    let workdir = std::path::absolute(&req.workdir).map_err(|e| workdir_error(e.to_string()))?;
    match tokio::fs::metadata(&workdir).await {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(workdir_error("not a directory".to_owned())),
        Err(e) => return Err(workdir_error(e.to_string())),
    }
    command(prog, args, &workdir)
        .spawn()
        .map_err(|source| SpawnError::Start {
            program: program.to_owned(),
            source,
        })
}

fn command(prog: &OsString, args: &[OsString], workdir: &Path) -> Command {
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir(workdir)
        .env("TMPDIR", workdir)
        .env("TMP", workdir)
        .env("TEMP", workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own group, so that one signal reaches everything it starts.
        .process_group(0);
    // The agent's secrets are not the scanner's business: a wrapper script printing its
    // environment would put the API key in the stderr tail, the log and jobs.json. Nor is
    // systemd's notify socket.
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n == "HOSTEDSCAN_API_KEY"
            || n == "CREDENTIALS_DIRECTORY"
            || n.starts_with("HOSTEDSCAN_AGENT__")
            // systemd's channel is the agent's: a scanner must not report for the service.
            || n == "NOTIFY_SOCKET"
            || n.starts_with("WATCHDOG_")
        {
            cmd.env_remove(&name);
        }
    }
    die_with_the_agent(&mut cmd);
    cmd
}

/// Has the kernel SIGKILL the scanner if the agent dies without stopping it (kill -9, the
/// OOM killer): its own process group keeps it out of the agent's signals otherwise. Covers the
/// scanner process itself; what it starts in turn is for the service's cgroup (systemd's
/// KillMode=control-group) to clean up.
#[cfg(target_os = "linux")]
fn die_with_the_agent(cmd: &mut Command) {
    let agent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec. It makes two system calls
    // (prctl, getppid), both async-signal-safe, and takes no lock and allocates nothing.
    // The death signal follows the forking thread: jobs are spawned from the runtime's worker
    // threads, which live as long as the agent's runtime.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            // The agent may have died between fork and prctl.
            if rustix::process::getppid() != Some(agent) {
                return Err(io::Error::other(
                    "the agent exited while the scanner was starting",
                ));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_the_agent(_cmd: &mut Command) {}

/// Polls supervision and the stderr reader together (so a full pipe never blocks the child),
/// then gives the reader a moment to reach the end of what the dead group wrote.
async fn drive(
    mut supervised: Pin<&mut impl Future<Output = Ended>>,
    mut reader: Pin<&mut impl Future<Output = ()>>,
) -> Ended {
    let mut reader_done = false;
    let ended = loop {
        tokio::select! {
            ended = &mut supervised => break ended,
            () = &mut reader, if !reader_done => reader_done = true,
        }
    };
    if !reader_done && tokio::time::timeout(STDERR_DRAIN, reader).await.is_err() {
        tracing::debug!(
            "stderr is still open after the process group ended; keeping what was read"
        );
    }
    ended
}

/// Why the supervisor stopped a process.
#[derive(Debug, Clone, Copy)]
enum Stop {
    TimedOut,
    Cancelled,
}

/// The started process and its group. Until `done`, dropping it kills the whole group.
struct Group<'a> {
    pgid: Option<Pid>,
    child: Child,
    program: &'a str,
    done: bool,
}

impl Group<'_> {
    async fn supervise(
        &mut self,
        timeout: Duration,
        grace: Duration,
        cancel: &CancellationToken,
    ) -> Ended {
        let stop = tokio::select! {
            status = self.child.wait() => return self.reaped(status),
            () = tokio::time::sleep(timeout) => Stop::TimedOut,
            () = cancel.cancelled() => Stop::Cancelled,
        };
        tracing::warn!(
            program = %self.program,
            pid = self.pgid.map(Pid::as_raw_pid),
            reason = match stop { Stop::TimedOut => "timeout", Stop::Cancelled => "shutdown" },
            grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            "stopping the job: SIGTERM to its process group"
        );
        self.signal(Signal::TERM);
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!(
                    program = %self.program,
                    pid = self.pgid.map(Pid::as_raw_pid),
                    "the job did not stop within its grace period: SIGKILL to its process group"
                );
                self.signal(Signal::KILL);
                self.child.wait().await
            }
        };
        match self.reaped(status) {
            Ended::WaitFailed(why) => Ended::WaitFailed(why),
            _ => match stop {
                Stop::TimedOut => Ended::TimedOut,
                Stop::Cancelled => Ended::Cancelled,
            },
        }
    }

    /// The leader has been waited for: kill whatever it left in its group, while its pid
    /// cannot yet have been reused as another group's id, and say how it ended.
    fn reaped(&mut self, status: io::Result<ExitStatus>) -> Ended {
        if self.signal(Signal::KILL) {
            tracing::warn!(
                program = %self.program,
                pid = self.pgid.map(Pid::as_raw_pid),
                "killed processes the job left behind in its process group"
            );
        }
        self.done = true;
        match status {
            Ok(status) => ended_by(status),
            Err(e) => {
                tracing::error!(program = %self.program, error = %e, "cannot wait for the job's process");
                Ended::WaitFailed(e.to_string())
            }
        }
    }

    /// Sends `sig` to the group; true if any process received it.
    fn signal(&self, sig: Signal) -> bool {
        let Some(pgid) = self.pgid else { return false };
        match rustix::process::kill_process_group(pgid, sig) {
            Ok(()) => true,
            Err(rustix::io::Errno::SRCH) => false,
            Err(e) => {
                tracing::warn!(
                    program = %self.program,
                    pgid = pgid.as_raw_pid(),
                    signal = sig.as_raw(),
                    error = %e,
                    "cannot signal the job's process group"
                );
                false
            }
        }
    }
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        if !self.done {
            tracing::warn!(
                program = %self.program,
                pid = self.pgid.map(Pid::as_raw_pid),
                "the run was abandoned: SIGKILL to its process group"
            );
            self.signal(Signal::KILL);
        }
    }
}

fn ended_by(status: ExitStatus) -> Ended {
    if let Some(code) = status.code() {
        Ended::Exited(code)
    } else if let Some(sig) = status.signal() {
        Ended::Signaled(sig)
    } else {
        Ended::WaitFailed(format!("unrecognised wait status {status}"))
    }
}

async fn read_stderr(stderr: Option<impl AsyncRead + Unpin>, tail: &mut Tail) {
    let Some(mut stderr) = stderr else { return };
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => tail.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the job's stderr");
                return;
            }
        }
    }
}

/// The last lines of a byte stream, in memory bounded by `TAIL_LINES * TAIL_LINE_BYTES`
/// whatever the stream holds.
#[derive(Debug, Default)]
struct Tail {
    lines: VecDeque<String>,
    /// The line being read, cut to `TAIL_LINE_BYTES`.
    current: Vec<u8>,
}

impl Tail {
    fn push(&mut self, mut data: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', data) {
            self.extend(&data[..i]);
            self.end_line();
            data = &data[i + 1..];
        }
        self.extend(data);
    }

    fn extend(&mut self, part: &[u8]) {
        let room = TAIL_LINE_BYTES.saturating_sub(self.current.len());
        self.current
            .extend_from_slice(&part[..part.len().min(room)]);
    }

    fn end_line(&mut self) {
        let bytes = self.current.strip_suffix(b"\r").unwrap_or(&self.current);
        let line: String = String::from_utf8_lossy(bytes)
            .chars()
            .take(TAIL_LINE_CHARS)
            .collect();
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
        self.current.clear();
    }

    /// The lines, with an unterminated last line counted as a line.
    fn into_lines(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.end_line();
        }
        self.lines.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, dir: &Path, timeout_ms: u64, grace_ms: u64) -> RunRequest {
        RunRequest {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            workdir: dir.to_owned(),
            timeout: Duration::from_millis(timeout_ms),
            kill_grace: Duration::from_millis(grace_ms),
        }
    }

    /// The pid the fixture script wrote to `pid` in its workdir (`echo $$ > pid`), once written.
    async fn pid_of(dir: &Path) -> Pid {
        let file = dir.join("pid");
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(&file) {
                if let Some(pid) = text.trim().parse().ok().and_then(Pid::from_raw) {
                    return pid;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the fixture did not write its pid");
    }

    /// Whether any live (not zombie) process is in group `pgid`. Zombies are dead, waiting for
    /// their new parent (init or a subreaper, not us) to reap them, so they do not count.
    fn group_alive(pgid: Pid) -> bool {
        if rustix::process::test_kill_process_group(pgid) == Err(rustix::io::Errno::SRCH) {
            return false;
        }
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return true;
        };
        procs.flatten().any(|p| {
            let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else {
                return false;
            };
            // After the last ')': state ppid pgrp ...
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.as_raw_pid().to_string()
        })
    }

    /// Waits (briefly) for the group to be gone; false if it is still alive after 3 s.
    async fn group_gone(pgid: Pid) -> bool {
        for _ in 0..300 {
            if !group_alive(pgid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn exit_code_and_stderr_tail() {
        let dir = tempfile::tempdir().unwrap();
        let script = "i=1; while [ $i -le 30 ]; do echo \"line $i\" >&2; i=$((i+1)); done; exit 3";
        let r = run(
            sh(script, dir.path(), 10_000, 1_000),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(r.ended, Ended::Exited(3));
        let want: Vec<String> = (11..=30).map(|i| format!("line {i}")).collect();
        assert_eq!(r.stderr_tail, want);
    }

    #[tokio::test]
    async fn killed_by_a_signal_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(
            sh("kill -9 $$", dir.path(), 10_000, 1_000),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(r.ended, Ended::Signaled(9));
    }

    #[tokio::test]
    async fn cwd_tmpdir_and_null_stdin() {
        let dir = tempfile::tempdir().unwrap();
        // `cat` would wait forever on an inherited terminal or pipe; stdin is null, so it ends.
        let script = "cat; pwd >&2; echo \"$TMPDIR|$TMP|$TEMP\" >&2; echo to-stdout";
        let r = run(
            sh(script, dir.path(), 10_000, 1_000),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(r.ended, Ended::Exited(0));
        let d = std::fs::canonicalize(dir.path())
            .unwrap()
            .display()
            .to_string();
        let t = dir.path().display().to_string();
        assert_eq!(r.stderr_tail, vec![d, format!("{t}|{t}|{t}")]);
    }

    #[tokio::test]
    async fn timeout_stops_sleep_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let req = RunRequest {
            argv: vec!["sleep".into(), "30".into()],
            workdir: dir.path().to_owned(),
            timeout: Duration::from_millis(200),
            kill_grace: Duration::from_millis(200),
        };
        let r = run(req, CancellationToken::new()).await;
        assert_eq!(r.ended, Ended::TimedOut);
        assert!(r.elapsed >= Duration::from_millis(200), "{:?}", r.elapsed);
        // SIGTERM ends `sleep` at once (generous bound: the machine may be busy).
        assert!(r.elapsed < Duration::from_secs(1), "{:?}", r.elapsed);
    }

    #[tokio::test]
    async fn term_ignored_means_kill_after_grace() {
        let dir = tempfile::tempdir().unwrap();
        let script = "trap '' TERM; echo $$ > pid; echo ignoring >&2; sleep 30";
        let r = run(sh(script, dir.path(), 200, 300), CancellationToken::new()).await;
        assert_eq!(r.ended, Ended::TimedOut);
        assert!(r.elapsed >= Duration::from_millis(500), "{:?}", r.elapsed);
        assert!(r.elapsed < Duration::from_millis(1500), "{:?}", r.elapsed);
        assert_eq!(r.stderr_tail, vec!["ignoring"]);
        assert!(group_gone(pid_of(dir.path()).await).await);
    }

    #[tokio::test]
    async fn timeout_kills_background_children() {
        let dir = tempfile::tempdir().unwrap();
        let script = "echo $$ > pid; sleep 60 & sleep 60 & wait";
        let r = run(sh(script, dir.path(), 200, 200), CancellationToken::new()).await;
        assert_eq!(r.ended, Ended::TimedOut);
        assert!(group_gone(pid_of(dir.path()).await).await);
    }

    #[tokio::test]
    async fn leftovers_killed_after_leader_exits() {
        let dir = tempfile::tempdir().unwrap();
        // The background sleep also holds stderr open: the run must not wait for it.
        let script = "echo $$ > pid; sleep 60 & echo done >&2; exit 0";
        let r = run(
            sh(script, dir.path(), 10_000, 1_000),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(r.ended, Ended::Exited(0));
        assert_eq!(r.stderr_tail, vec!["done"]);
        assert!(r.elapsed < Duration::from_secs(2), "{:?}", r.elapsed);
        assert!(group_gone(pid_of(dir.path()).await).await);
    }

    #[tokio::test]
    async fn cancel_stops_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let script = "echo $$ > pid; sleep 60 & sleep 60";
        let task = tokio::spawn(run(sh(script, dir.path(), 30_000, 300), cancel.clone()));
        let pid = pid_of(dir.path()).await;
        // The child leads a group of its own, not ours.
        assert_eq!(rustix::process::getpgid(Some(pid)).unwrap(), pid);
        assert_ne!(rustix::process::getpgrp(), pid);
        cancel.cancel();
        let r = task.await.unwrap();
        assert_eq!(r.ended, Ended::Cancelled);
        assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
        assert!(group_gone(pid).await);
    }

    #[tokio::test]
    async fn dropping_the_run_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let script = "trap '' TERM; echo $$ > pid; sleep 60 & sleep 60";
        let task = tokio::spawn(run(
            sh(script, dir.path(), 30_000, 30_000),
            CancellationToken::new(),
        ));
        let pid = pid_of(dir.path()).await;
        assert!(group_alive(pid));
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert!(group_gone(pid).await);
    }

    #[tokio::test]
    async fn missing_program_is_spawn_failed() {
        let dir = tempfile::tempdir().unwrap();
        for prog in ["hostedscan-no-such-scanner", "/nonexistent/no-such-scanner"] {
            let req = RunRequest {
                argv: vec![prog.into(), "-x".into()],
                workdir: dir.path().to_owned(),
                timeout: Duration::from_secs(10),
                kill_grace: Duration::from_secs(1),
            };
            let r = run(req, CancellationToken::new()).await;
            let Ended::SpawnFailed(msg) = &r.ended else {
                panic!("{:?}", r.ended)
            };
            assert!(msg.contains(prog), "{msg}");
            assert!(msg.contains("No such file or directory"), "{msg}");
            assert!(r.stderr_tail.is_empty());
        }
    }

    #[tokio::test]
    async fn empty_argv_and_missing_workdir_are_spawn_failed() {
        let dir = tempfile::tempdir().unwrap();
        let mut req = sh("exit 0", dir.path(), 1_000, 100);
        req.argv.clear();
        let r = run(req, CancellationToken::new()).await;
        assert!(
            matches!(r.ended, Ended::SpawnFailed(ref m) if m.contains("empty")),
            "{:?}",
            r.ended
        );

        let gone = dir.path().join("gone");
        let r = run(sh("exit 0", &gone, 1_000, 100), CancellationToken::new()).await;
        let Ended::SpawnFailed(msg) = &r.ended else {
            panic!("{:?}", r.ended)
        };
        assert!(
            msg.contains("working directory") && msg.contains("gone"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn huge_stderr_is_read_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let script = "head -c 50000000 /dev/zero | tr '\\0' 'x' >&2; echo >&2; echo last >&2";
        let r = run(
            sh(script, dir.path(), 10_000, 1_000),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(r.ended, Ended::Exited(0));
        assert_eq!(r.stderr_tail.len(), 2);
        assert_eq!(r.stderr_tail[0], "x".repeat(TAIL_LINE_CHARS));
        assert_eq!(r.stderr_tail[1], "last");
    }

    #[test]
    fn tail_keeps_last_lines_cut_and_decoded() {
        let mut t = Tail::default();
        for i in 0..25 {
            t.push(format!("l{i}\r\n").as_bytes());
        }
        // Split across pushes, invalid UTF-8, multi-byte characters cut at the limit.
        t.push(b"sp");
        t.push(b"lit\n\xff\xfeok\n");
        t.push("é".repeat(600).as_bytes());
        t.push(b"\n\nunterminated");
        assert_eq!(t.current.len(), "unterminated".len());
        let lines = t.into_lines();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(
            lines[lines.len() - 5..],
            [
                "split",
                "\u{fffd}\u{fffd}ok",
                &"é".repeat(500),
                "",
                "unterminated"
            ]
        );
        assert_eq!(lines[0], "l10");
    }

    #[test]
    fn tail_line_memory_is_capped() {
        let mut t = Tail::default();
        for _ in 0..1000 {
            t.push(&[b'y'; 4096]);
        }
        assert_eq!(t.current.len(), TAIL_LINE_BYTES);
        assert_eq!(t.into_lines(), vec!["y".repeat(TAIL_LINE_CHARS)]);
    }
}
