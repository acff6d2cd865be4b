//! Test harness: a temporary agent home (config, inbox, state directory) pointed at a HostedScan
//! stand-in on 127.0.0.1, the real agent run in-process through `run(config, shutdown)` or as the
//! built binary, and fixtures made by real nmap where it is installed.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hostedscan_agent::config::{Config, Env};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use hostedscan_standins::api::{Endpoint, Fault, Outage, RandomFaults, StandIn};

/// The attribute a queued copy keeps its record in.
pub const QUEUE_XATTR: &str = hostedscan_agent::spool::queue::META_XATTR;

/// The record attribute of a queued copy, if it has one.
pub fn queued_attribute(copy: &Path) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    match rustix::fs::getxattr(copy, QUEUE_XATTR, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        // None there; or a file system that keeps no user attributes (the record is a file).
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => None,
        Err(e) => panic!("{}: {e}", copy.display()),
    }
}

pub const KEY: &str = "test-key";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// The shared samples, when this checkout has them beside it.
pub fn samples_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples");
    if p.join("EXPECTED.tsv").is_file() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/samples not found (it sits beside the checkout in CI)");
        None
    }
}

/// An Nmap XML report of a port this test opens on 127.0.0.1, made by the real nmap when it is
/// installed (CI installs it), else the committed fixture made the same way.
/// SHA-256 of `b` in lower-case hex, as the agent and the stand-in write it.
pub fn sha256_hex(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Uploads the stand-in accepted, counted by content (SHA-256 -> times).
pub fn upload_counts(api: &StandIn) -> std::collections::HashMap<String, usize> {
    let mut m = std::collections::HashMap::new();
    for u in api.uploads() {
        *m.entry(u.sha256).or_insert(0) += 1;
    }
    m
}

/// A valid Nmap report of at least `size` bytes, distinct for each `n` (a comment at its end).
pub fn distinct_report(n: usize, size: usize) -> Vec<u8> {
    let mut r = fixture_bytes("nmap-tcp-localhost.xml");
    r.extend_from_slice(format!("<!-- report {n} ").as_bytes());
    r.resize(r.len().max(size), b'x');
    r.extend_from_slice(b" -->\n");
    r
}

pub fn nmap_report() -> Vec<u8> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = Command::new("nmap")
        .args([
            "-n",
            "-Pn",
            "-sT",
            "-p",
            &port.to_string(),
            "-oX",
            "-",
            "127.0.0.1",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout);
            assert!(
                s.contains(&format!("portid=\"{port}\"")),
                "nmap did not report the port:\n{s}"
            );
            o.stdout
        }
        _ => {
            eprintln!("note: nmap is not installed; using tests/fixtures/nmap-tcp-localhost.xml");
            fixture_bytes("nmap-tcp-localhost.xml")
        }
    }
}

/// A temporary agent installation.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub inbox: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
}

impl Home {
    /// `extra` is appended to the generated config (more sections or keys of [agent] given as
    /// `agent_extra`).
    pub fn new(url: &str, agent_extra: &str, extra: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        let state = dir.path().join("state");
        let config = dir.path().join("agent.toml");
        let body = format!(
            r#"[api]
url = "{url}"
key = "{KEY}"
timeout = "5s"
connect_timeout = "2s"

[source]
name = "Agent tests"

[agent]
state_dir = "{state}"
settle = "200ms"
rescan_interval = "1s"
{agent_extra}

[retry]
initial_backoff = "50ms"
max_backoff = "400ms"
once_deadline = "5s"

[[watch]]
path = "{inbox}"
{extra}
"#,
            state = state.display(),
            inbox = inbox.display(),
        );
        std::fs::write(&config, body).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::create_dir_all(&inbox).unwrap();
        Home {
            dir,
            inbox,
            state,
            config,
        }
    }

    /// Point the configuration's `state_dir` elsewhere (e.g. a small tmpfs).
    pub fn set_state(&mut self, state: &Path) {
        let cfg = std::fs::read_to_string(&self.config).unwrap().replace(
            &format!("state_dir = \"{}\"", self.state.display()),
            &format!("state_dir = \"{}\"", state.display()),
        );
        std::fs::write(&self.config, cfg).unwrap();
        self.state = state.to_path_buf();
    }

    /// Point the (first) watch elsewhere (e.g. another file system); created if missing.
    pub fn set_inbox(&mut self, inbox: &Path) {
        let cfg = std::fs::read_to_string(&self.config).unwrap().replace(
            &format!("path = \"{}\"", self.inbox.display()),
            &format!("path = \"{}\"", inbox.display()),
        );
        std::fs::write(&self.config, cfg).unwrap();
        std::fs::create_dir_all(inbox).unwrap();
        self.inbox = inbox.to_path_buf();
    }

    pub fn load(&self) -> Config {
        Config::load(&self.config, &Env::new()).unwrap()
    }

    /// Write a file into the inbox the way a careful writer does (temp name, then rename), with an
    /// mtime in the past so it is settled at once.
    pub fn drop_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        // A short temporary name: `name` may be as long as the file system allows.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .inbox
            .join(format!(".drop-{}-{n}.part", std::process::id()));
        std::fs::write(&tmp, bytes).unwrap();
        let past = std::time::SystemTime::now() - Duration::from_secs(60);
        let f = std::fs::File::options().write(true).open(&tmp).unwrap();
        f.set_modified(past).unwrap();
        drop(f);
        let dest = self.inbox.join(name);
        std::fs::rename(&tmp, &dest).unwrap();
        dest
    }

    pub fn names_in(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = match std::fs::read_dir(self.state.join(sub)) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Err(_) => vec![],
        };
        v.sort();
        v
    }

    /// Everything in tmp/ (copies being made there have hidden names).
    pub fn tmp_files(&self) -> Vec<String> {
        let mut v: Vec<String> = match std::fs::read_dir(self.state.join("tmp")) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => vec![],
        };
        v.sort();
        v
    }

    /// The entries in queue/: each copy's name (a record kept in a file beside it, as where
    /// the file system keeps no record on the copy, is not an entry).
    pub fn queued(&self) -> Vec<String> {
        self.names_in("queue")
            .into_iter()
            .filter(|n| !n.ends_with(".meta.json"))
            .collect()
    }

    /// The record of the queued entry `name`: the one its copy carries, else its metadata file.
    pub fn queued_record(&self, name: &str) -> serde_json::Value {
        let copy = self.state.join("queue").join(name);
        let bytes = match queued_attribute(&copy) {
            Some(b) => b,
            None => std::fs::read(self.state.join("queue").join(format!("{name}.meta.json")))
                .unwrap_or_else(|e| panic!("{name} has no record: {e}")),
        };
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Rewrites the record of the queued entry `name` as an older version kept it: in
    /// `<name>.meta.json`, the copy without one of its own.
    pub fn record_to_file(&self, name: &str, record: &serde_json::Value) {
        let q = self.state.join("queue");
        std::fs::write(
            q.join(format!("{name}.meta.json")),
            serde_json::to_vec_pretty(record).unwrap(),
        )
        .unwrap();
        match rustix::fs::removexattr(q.join(name), QUEUE_XATTR) {
            Ok(()) | Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => {}
            Err(e) => panic!("{e}"),
        }
    }

    pub fn inbox_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.inbox)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Files under archive/ (any day).
    pub fn archived(&self) -> Vec<String> {
        let mut out = vec![];
        if let Ok(days) = std::fs::read_dir(self.state.join("archive")) {
            for d in days.flatten() {
                for f in std::fs::read_dir(d.path()).unwrap().flatten() {
                    out.push(f.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    /// `--once`, run off the async runtime (the stand-in answers on it meanwhile); the home is
    /// handed back for the checks that follow.
    pub async fn once_async(self) -> (Output, Home) {
        tokio::task::spawn_blocking(move || (self.cli(&["--once"]), self))
            .await
            .unwrap()
    }

    /// The reason record of `name` in `rejected/`.
    pub fn rejected_reason(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join(format!("rejected/{name}.reason.json"))).unwrap()
    }

    /// Run the built binary with this home's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_env(args, &[])
    }

    /// Run the built binary with this home's config and these extra environment variables.
    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        use std::os::unix::process::ExitStatusExt;
        let out = Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_remove("HOSTEDSCAN_API_KEY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("RUST_LOG")
            .env_remove("FAILPOINTS")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The built binary running as a daemon; killed if the test ends (or panics) without
/// [`Agent::stop`]. Its stderr is read as it goes (a full pipe would block its logging).
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub struct Agent {
    child: Option<std::process::Child>,
    log: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// How a daemon ended.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub struct Ended {
    pub code: Option<i32>,
    pub log: String,
}

#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
impl Agent {
    /// `hostedscan-agent -c <config>` with a clean environment plus `env`.
    pub fn start(home: &Home, env: &[(&str, &str)]) -> Agent {
        Agent::start_with(
            Command::new(env!("CARGO_BIN_EXE_hostedscan-agent")),
            home,
            env,
        )
    }

    /// The same, as user and group `uid` (`setpriv`, as the packaged service runs: not root).
    pub fn start_as(uid: u32, home: &Home, env: &[(&str, &str)]) -> Agent {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".to_string(),
            env!("CARGO_BIN_EXE_hostedscan-agent").to_string(),
        ]);
        Agent::start_with(cmd, home, env)
    }

    fn start_with(mut cmd: Command, home: &Home, env: &[(&str, &str)]) -> Agent {
        let mut child = cmd
            .arg("-c")
            .arg(&home.config)
            .env_remove("HOSTEDSCAN_API_KEY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("RUST_LOG")
            .env_remove("FAILPOINTS")
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = std::io::Read::read(&mut stderr, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Agent {
            child: Some(child),
            log,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGTERM; its exit code and everything it logged.
    pub async fn stop(mut self) -> Ended {
        let mut child = self.child.take().unwrap();
        let reader = self.reader.take().unwrap();
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let status = tokio::task::spawn_blocking(move || {
            let s = child.wait().unwrap();
            reader.join().unwrap();
            s
        })
        .await
        .unwrap();
        Ended {
            code: status.code(),
            log: String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned(),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    /// The signal that ended it, if one did (read by the failpoint tests).
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The daemon, in-process.
pub struct Daemon {
    pub token: CancellationToken,
    pub handle: JoinHandle<Result<(), hostedscan_agent::app::AppError>>,
    /// Where [`Daemon::reload`] sends a configuration (as SIGHUP would have it read).
    reloads: Option<tokio::sync::mpsc::Sender<hostedscan_agent::app::Reload>>,
}

impl Daemon {
    pub fn start(cfg: Config) -> Daemon {
        let token = CancellationToken::new();
        let handle = tokio::spawn(hostedscan_agent::run(cfg, token.clone()));
        Daemon {
            token,
            handle,
            reloads: None,
        }
    }

    /// The same, taking reloads from [`Daemon::reload`].
    pub fn start_reloading(cfg: Config) -> Daemon {
        let token = CancellationToken::new();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let handle = tokio::spawn(hostedscan_agent::app::run_reloading(
            cfg,
            Some(rx),
            token.clone(),
        ));
        Daemon {
            token,
            handle,
            reloads: Some(tx),
        }
    }

    /// Have a daemon of [`Daemon::start_reloading`] take `cfg`, as a SIGHUP would.
    pub async fn reload(&self, cfg: Config) {
        let tx = self.reloads.as_ref().expect("started with start_reloading");
        tx.send(Ok(cfg)).await.unwrap();
    }

    /// Stop it and wait; panics if it takes longer than the shutdown grace plus a margin.
    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(25), self.handle)
            .await
            .expect("the daemon did not stop within its grace")
            .unwrap()
            .unwrap();
    }
}

/// Poll `cond` until it holds or `timeout` passes.
pub async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Append to a file in steps, the way a scanner writes its report.
pub fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Make a file's mtime `secs` seconds in the past.
pub fn age(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

/// Whether the tests run as root (CI does): mounts, other users and mode-000 files need it.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A tmpfs of its own, mounted in a private temporary directory and unmounted on drop: a small
/// or separate file system for disk-full and cross-filesystem tests. Root only (`None` with a
/// message otherwise).
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str, why: &str) -> Option<Tmpfs> {
        if !is_root() {
            eprintln!("skipping {why}: it needs root to mount a tmpfs (CI runs as root)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs failed");
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Give it another size (disk space coming back).
    pub fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount of the tmpfs failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
