//! A stand-in for gvmd's Greenbone Management Protocol (GMP) server, for integration tests of
//! the agent's native GMP client (gvmd itself cannot be installed here).
//!
//! It listens on a Unix socket (`DIR/gvmd.sock`, like gvmd's `/run/gvmd/gvmd.sock`) and speaks
//! GMP as gvmd does: no framing, the client writes one command element and reads one
//! `<COMMAND_response status=".." status_text="..">` element back (no XML declaration), many
//! commands per connection, authentication holds for the connection. Each incoming command is
//! parsed incrementally from the socket with quick-xml (async reader over a tokio `BufReader`);
//! a command ends when its root element closes.
//!
//! Emulated commands: `get_version`, `authenticate`, `get_targets`, `create_target`,
//! `modify_target`, `delete_target`, `get_tasks`, `create_task`, `modify_task`, `start_task`,
//! `stop_task`, `delete_task`, `get_reports`. Any other command name is "bogus" to the stand-in
//! (gvmd knows many more). State (targets, tasks, reports, a trashcan) lives in memory behind a
//! mutex. Known resources: port lists [`PORT_LIST_TCP`] and [`PORT_LIST_TCP_UDP`], scan config
//! [`CONFIG_FULL_AND_FAST`], scanner [`SCANNER_OPENVAS`], report format [`REPORT_FORMAT_XML`].
//!
//! Where the facts come from (greenbone/gvmd):
//! - `src/gmp_base.h`: status codes and texts (`200` "OK", `201` "OK, resource created" with an
//!   `id` attribute, `202` "OK, request submitted", `400` for syntax errors, `400`
//!   "Authentication failed"). It also defines `401` "Authenticate first", but gvmd does not
//!   send it for commands before AUTHENTICATE (see gmp.c below). `src/gmp_base.c`: the 404 text
//!   `Failed to find TYPE 'ID'` (printf'd, so the apostrophes are literal).
//! - `src/gmp.c`: before AUTHENTICATE only GET_VERSION and AUTHENTICATE are accepted, anything
//!   else gets `<gmp_response status="400" status_text="Only command GET_VERSION is allowed
//!   before AUTHENTICATE"/>` (sent at the command's start tag); after it an unknown command gets
//!   `<gmp_response status="400" status_text="Bogus command name"/>`. Both set a parse error, so
//!   `src/gmpd.c` (`serve_gmp`) writes the response and closes the connection; the stand-in does
//!   the same (and closes on malformed XML). A failed AUTHENTICATE keeps the connection open,
//!   unauthenticated. The end-element handlers give the per-command error texts used here
//!   (create_target, create_task, modify_target, modify_task, start_task, stop_task,
//!   delete_task, the `CASE_DELETE` "Target is in use"), the response bodies of authenticate,
//!   start_task (`<report_id>`), get_targets, get_tasks and get_reports (`handle_get_reports`).
//! - `src/gmp_get.c`: `get_data_parse_attributes` (`details` defaults to 0, so get_reports
//!   without `details="1"` carries no `<results>`), `send_get_end` (the `<filters>`, `<sort>`,
//!   `<TYPEs start max/>` and `<TYPE_count>` tail of every get_*_response).
//! - `src/manage_sql_targets.c`: create_target/modify_target/delete_target rules (names unique,
//!   a target is in use while a task outside the trashcan refers to it, HOSTS needs
//!   EXCLUDE_HOSTS in modify_target); `src/manage_sql.c` (`print_report_xml_start`): the inner
//!   report's element order and `<results start max>` (`ignore_pagination` gives start 1,
//!   max -1).
//! - `src/schema_formats/XML/GMP.xml.in`: the protocol reference these follow.
//!
//! Simplifications (documented so a test does not rely on them): filters understand only
//! `name=VALUE` / `name="VALUE"` (exact), `first=N` and `rows=N` (default 10, `-1` for all);
//! other keywords are ignored. A report is produced result by result while it is written, so a
//! test can ask for hundreds of MB. Task runs are scripted (see [`GmpStandIn::set_run`]): after
//! `start_task` the task is `Requested` at the first get_tasks that shows it, then `Running`
//! with growing progress for N more, then it ends (`Done`, `Stopped`, `Interrupted`) or never
//! does. `stop_task` makes it `Stop Requested` at the next get_tasks and `Stopped` at the one
//! after. modify_task refuses to change scanner/config/target of a task that is not `New` and
//! not alterable (gvmd's rule) and, here, of any active task.
//!
//! ```ignore
//! let dir = tempfile::tempdir().unwrap();
//! let gvmd = GmpStandIn::start(dir.path()).await; // user "admin", password "secret"
//! gvmd.set_run(3, End::Done);
//! gvmd.set_results(500);
//! gvmd.fail_next("get_tasks", 503, "Service temporarily down");
//! gvmd.drop_next("get_reports");
//! // ... run the agent with gvmd.socket() ...
//! assert_eq!(gvmd.tasks()[0].status, "Done");
//! ```
//!
//! Include it with `#[path = "../support/gmp.rs"] mod gmp;`; the `#![allow(dead_code)]` below
//! keeps includers that use only part of the API free of warnings.

#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use quick_xml::escape::{escape, partial_escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::{AbortHandle, JoinHandle};

/// What get_version answers (`<version>`), and the `<gmp><version>` of reports.
pub const GMP_VERSION: &str = "22.8";
/// The user [`GmpStandIn::start`] accepts.
pub const DEFAULT_USER: &str = "admin";
/// The password [`GmpStandIn::start`] accepts (change it with [`GmpStandIn::set_password`]).
pub const DEFAULT_PASSWORD: &str = "secret";
/// Port list "All IANA assigned TCP".
pub const PORT_LIST_TCP: &str = "33d0cd82-57c6-11e1-8ed1-406186ea4fc5";
/// Port list "All IANA assigned TCP and UDP".
pub const PORT_LIST_TCP_UDP: &str = "4a4717fe-57d2-11e1-9a26-406186ea4fc5";
/// Scan config "Full and fast".
pub const CONFIG_FULL_AND_FAST: &str = "daba56c8-73ec-11df-a475-002264764cea";
/// Scanner "OpenVAS Default" (gvmd's default scanner for create_task without one).
pub const SCANNER_OPENVAS: &str = "08b69003-5fc2-4037-a479-93b440211c73";
/// Report format "XML".
pub const REPORT_FORMAT_XML: &str = "a994b278-1f62-11e1-96ac-406186ea4fc5";

const PORT_LISTS: [(&str, &str); 2] = [
    (PORT_LIST_TCP, "All IANA assigned TCP"),
    (PORT_LIST_TCP_UDP, "All IANA assigned TCP and UDP"),
];
const CONFIGS: [(&str, &str); 1] = [(CONFIG_FULL_AND_FAST, "Full and fast")];
/// (id, name, gvmd scanner type: 2 = OpenVAS).
const SCANNERS: [(&str, &str, u8); 1] = [(SCANNER_OPENVAS, "OpenVAS Default", 2)];
/// gvmd's default "Rows Per Page".
const DEFAULT_ROWS: i64 = 10;
/// How much report text is gathered before each write to the socket.
const CHUNK: usize = 64 * 1024;

/// How a scripted task run ends (see [`GmpStandIn::set_run`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Done,
    Stopped,
    Interrupted,
    /// The task stays `Running` forever (a hung scan).
    Never,
}

/// A target as the stand-in holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRec {
    pub id: String,
    pub name: String,
    /// As stored by gvmd: the given hosts, trimmed, joined with ", ".
    pub hosts: String,
    pub port_list_id: String,
    /// Deleted to the trashcan (delete_target without ultimate).
    pub in_trash: bool,
}

/// A task as the stand-in holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRec {
    pub id: String,
    pub name: String,
    pub target_id: String,
    pub config_id: String,
    pub scanner_id: String,
    /// gvmd's status name: New, Requested, Queued, Running, Stop Requested, Stopped, Done,
    /// Interrupted.
    pub status: String,
    pub alterable: bool,
    /// Every report of the task, oldest first (one per start_task).
    pub report_ids: Vec<String>,
    /// Deleted to the trashcan (delete_task without ultimate).
    pub in_trash: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    New,
    Requested,
    Queued,
    Running,
    StopRequested,
    Stopped,
    Done,
    Interrupted,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::New => "New",
            Status::Requested => "Requested",
            Status::Queued => "Queued",
            Status::Running => "Running",
            Status::StopRequested => "Stop Requested",
            Status::Stopped => "Stopped",
            Status::Done => "Done",
            Status::Interrupted => "Interrupted",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        [
            Status::New,
            Status::Requested,
            Status::Queued,
            Status::Running,
            Status::StopRequested,
            Status::Stopped,
            Status::Done,
            Status::Interrupted,
        ]
        .into_iter()
        .find(|st| st.name().eq_ignore_ascii_case(s))
    }

    fn active(self) -> bool {
        matches!(
            self,
            Status::Requested | Status::Queued | Status::Running | Status::StopRequested
        )
    }
}

#[derive(Clone, Debug)]
struct Target {
    id: String,
    name: String,
    comment: String,
    hosts: String,
    port_list_id: String,
    port_list_name: String,
    created: String,
    modified: String,
    in_trash: bool,
}

#[derive(Clone, Debug)]
struct Task {
    id: String,
    name: String,
    comment: String,
    target_id: String,
    config_id: String,
    scanner_id: String,
    alterable: bool,
    status: Status,
    progress: i32,
    /// get_tasks observations since the run started.
    polls: usize,
    /// Whether the Stop Requested state has been shown once.
    stop_shown: bool,
    plan_polls: usize,
    plan_end: End,
    current_report: Option<String>,
    last_report: Option<String>,
    reports: Vec<String>,
    created: String,
    modified: String,
    in_trash: bool,
}

#[derive(Clone, Debug)]
struct Report {
    id: String,
    /// Sequence number, for result ids.
    seq: u64,
    task_id: String,
    status: Status,
    results: usize,
    padding: usize,
    created: String,
    scan_start: String,
    scan_end: String,
}

struct State {
    user: String,
    password: String,
    seed: u32,
    counter: u64,
    targets: Vec<Target>,
    tasks: Vec<Task>,
    reports: HashMap<String, Report>,
    run_polls: usize,
    run_end: End,
    results: usize,
    padding: usize,
    fails: HashMap<String, VecDeque<(u16, String)>>,
    drops: HashMap<String, usize>,
    /// Per command: answers to cut after that many bytes, in turn.
    cuts: HashMap<String, VecDeque<usize>>,
    /// Per command: how many to leave unanswered, the connection kept open.
    hangs: HashMap<String, usize>,
    commands: Vec<String>,
    raw: Vec<String>,
    connections: usize,
    stops: usize,
    deleted: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    conns: Mutex<Vec<AbortHandle>>,
}

/// The GMP stand-in: a Unix socket server with scripted gvmd behaviour. Dropping it stops the
/// server and cuts every connection.
pub struct GmpStandIn {
    socket: PathBuf,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl GmpStandIn {
    /// Binds `dir/gvmd.sock` and serves it (user "admin", password "secret"). A stale socket
    /// file is replaced.
    pub async fn start(dir: &Path) -> GmpStandIn {
        let socket = dir.join("gvmd.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .unwrap_or_else(|e| panic!("GMP stand-in: bind {}: {e}", socket.display()));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                user: DEFAULT_USER.to_string(),
                password: DEFAULT_PASSWORD.to_string(),
                seed: rand::random::<u32>() | 0x1000_0000,
                counter: 0,
                targets: Vec::new(),
                tasks: Vec::new(),
                reports: HashMap::new(),
                run_polls: 2,
                run_end: End::Done,
                results: 3,
                padding: 0,
                fails: HashMap::new(),
                drops: HashMap::new(),
                cuts: HashMap::new(),
                hangs: HashMap::new(),
                commands: Vec::new(),
                raw: Vec::new(),
                connections: 0,
                stops: 0,
                deleted: Vec::new(),
            }),
            conns: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                lock(&accept_shared.state).connections += 1;
                let conn_shared = accept_shared.clone();
                let handle = tokio::spawn(serve(stream, conn_shared));
                let mut conns = lock(&accept_shared.conns);
                conns.retain(|h| !h.is_finished());
                conns.push(handle.abort_handle());
            }
        });
        GmpStandIn {
            socket,
            shared,
            accept,
        }
    }

    /// The socket path to give the client.
    pub fn socket(&self) -> PathBuf {
        self.socket.clone()
    }

    /// Changes the password authenticate accepts (user stays "admin").
    pub fn set_password(&self, password: &str) {
        self.state().password = password.to_string();
    }

    /// Scripts the next runs (taken at start_task): `Requested` at the first get_tasks, then
    /// `Running` for `polls_running` more, then `end` (default: 2 polls, [`End::Done`]).
    pub fn set_run(&self, polls_running: usize, end: End) {
        let mut s = self.state();
        s.run_polls = polls_running;
        s.run_end = end;
    }

    /// Results in each report that ends from now on (default 3).
    pub fn set_results(&self, n: usize) {
        self.state().results = n;
    }

    /// Extra bytes in each result's description, to make results bigger (default 0; a result
    /// is about 1 KB without padding).
    pub fn set_result_padding(&self, bytes: usize) {
        self.state().padding = bytes;
    }

    /// The next `command` (e.g. "get_tasks") gets `<command_response status=.. status_text=..>`
    /// instead of its normal handling. Queued: several calls fail several commands in turn.
    pub fn fail_next(&self, command: &str, status: u16, text: &str) {
        self.state()
            .fails
            .entry(command.to_ascii_lowercase())
            .or_default()
            .push_back((status, text.to_string()));
    }

    /// The next `command` is read in full, then the connection is closed without an answer.
    /// Several calls drop several commands.
    pub fn drop_next(&self, command: &str) {
        *self
            .state()
            .drops
            .entry(command.to_ascii_lowercase())
            .or_default() += 1;
    }

    /// The next `command` is answered normally, but the connection is closed after the first
    /// `bytes` bytes of the answer (inside a tag, or a text, as `bytes` falls).
    pub fn cut_next(&self, command: &str, bytes: usize) {
        self.state()
            .cuts
            .entry(command.to_ascii_lowercase())
            .or_default()
            .push_back(bytes);
    }

    /// The next `command` is read and never answered; the connection stays open (a gvmd that
    /// has stopped responding).
    pub fn hang_next(&self, command: &str) {
        *self
            .state()
            .hangs
            .entry(command.to_ascii_lowercase())
            .or_default() += 1;
    }

    /// Command names in the order received, across connections (lowercase).
    pub fn commands(&self) -> Vec<String> {
        self.state().commands.clone()
    }

    /// The text of each command as sent (passwords included), in the order received. A
    /// command refused at its start tag (unknown, or before authenticate) is recorded up to
    /// that tag.
    pub fn raw_commands(&self) -> Vec<String> {
        self.state().raw.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state().connections
    }

    /// Targets, including those in the trashcan, in creation order.
    pub fn targets(&self) -> Vec<TargetRec> {
        self.state()
            .targets
            .iter()
            .map(|t| TargetRec {
                id: t.id.clone(),
                name: t.name.clone(),
                hosts: t.hosts.clone(),
                port_list_id: t.port_list_id.clone(),
                in_trash: t.in_trash,
            })
            .collect()
    }

    /// Tasks, including those in the trashcan, in creation order. Reading them does not move
    /// a scripted run on (only get_tasks does).
    pub fn tasks(&self) -> Vec<TaskRec> {
        self.state()
            .tasks
            .iter()
            .map(|t| TaskRec {
                id: t.id.clone(),
                name: t.name.clone(),
                target_id: t.target_id.clone(),
                config_id: t.config_id.clone(),
                scanner_id: t.scanner_id.clone(),
                status: t.status.name().to_string(),
                alterable: t.alterable,
                report_ids: t.reports.clone(),
                in_trash: t.in_trash,
            })
            .collect()
    }

    /// stop_task commands that stopped an active task.
    pub fn stops(&self) -> usize {
        self.state().stops
    }

    /// Ids of targets and tasks deleted (to the trashcan or for good), in order.
    pub fn deleted(&self) -> Vec<String> {
        self.state().deleted.clone()
    }

    /// Creates a target as if a client had (port list "All IANA assigned TCP" unless given);
    /// returns its id. Panics if the name is taken, as gvmd would refuse it.
    pub fn preset_target(&self, name: &str, hosts: &str, port_list_id: Option<&str>) -> String {
        let mut s = self.state();
        assert!(
            s.target_by_name(name).is_none(),
            "GMP stand-in: target {name:?} exists already"
        );
        let pl = port_list_id.unwrap_or(PORT_LIST_TCP);
        let pl_name = port_list_name(pl)
            .unwrap_or_else(|| panic!("GMP stand-in: unknown port list {pl}"))
            .to_string();
        let id = s.new_id(1);
        let now = now();
        s.targets.push(Target {
            id: id.clone(),
            name: name.to_string(),
            comment: String::new(),
            hosts: clean_hosts(hosts),
            port_list_id: pl.to_string(),
            port_list_name: pl_name,
            created: now.clone(),
            modified: now,
            in_trash: false,
        });
        id
    }

    /// Puts a task named `name` in `status` (a gvmd status name, e.g. "Running" to simulate a
    /// task left running by a previous agent, or "Done"), on the target named `name` (created
    /// with `hosts` if there is none); returns the task id. An active preset task follows the
    /// current [`set_run`](Self::set_run) script as if its first get_tasks had happened; a
    /// finished one gets one finished report.
    pub fn preset_task(&self, name: &str, hosts: &str, status: &str) -> String {
        let status = Status::parse(status)
            .unwrap_or_else(|| panic!("GMP stand-in: unknown task status {status:?}"));
        let existing = self.state().target_by_name(name).map(|t| t.id.clone());
        let target_id = match existing {
            Some(id) => id,
            None => self.preset_target(name, hosts, None),
        };
        let mut s = self.state();
        let id = s.new_id(2);
        let now = now();
        let mut task = Task {
            id: id.clone(),
            name: name.to_string(),
            comment: String::new(),
            target_id,
            config_id: CONFIG_FULL_AND_FAST.to_string(),
            scanner_id: SCANNER_OPENVAS.to_string(),
            alterable: false,
            status,
            progress: -1,
            polls: 0,
            stop_shown: false,
            plan_polls: s.run_polls,
            plan_end: s.run_end,
            current_report: None,
            last_report: None,
            reports: Vec::new(),
            created: now.clone(),
            modified: now.clone(),
            in_trash: false,
        };
        if status != Status::New {
            let report = s.new_report(&id, status);
            task.reports.push(report.clone());
            if status.active() {
                task.current_report = Some(report);
                task.polls = 1;
                task.progress = if status == Status::Requested { 0 } else { 1 };
            } else {
                let (results, padding) = (s.results, s.padding);
                let r = s.reports.get_mut(&report).expect("report just made");
                r.results = results;
                r.padding = padding;
                r.scan_end = now.clone();
                task.last_report = Some(report);
            }
        }
        s.tasks.push(task);
        id
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }
}

impl Drop for GmpStandIn {
    fn drop(&mut self) {
        self.accept.abort();
        for h in lock(&self.shared.conns).drain(..) {
            h.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn port_list_name(id: &str) -> Option<&'static str> {
    PORT_LISTS.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
}

fn config_name(id: &str) -> Option<&'static str> {
    CONFIGS.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
}

fn scanner(id: &str) -> Option<(&'static str, u8)> {
    SCANNERS
        .iter()
        .find(|(i, _, _)| *i == id)
        .map(|(_, n, t)| (*n, *t))
}

/// gvmd's clean_hosts, roughly: each comma-separated host trimmed, empty ones dropped,
/// joined with ", ".
fn clean_hosts(hosts: &str) -> String {
    hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

fn esc(s: &str) -> Cow<'_, str> {
    escape(s)
}

impl State {
    /// A UUID-shaped id, unique in this stand-in (kind: 1 target, 2 task, 3 report).
    fn new_id(&mut self, kind: u16) -> String {
        self.counter += 1;
        format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            self.seed, kind, self.counter
        )
    }

    fn new_report(&mut self, task_id: &str, status: Status) -> String {
        let id = self.new_id(3);
        let now = now();
        self.reports.insert(
            id.clone(),
            Report {
                id: id.clone(),
                seq: self.counter,
                task_id: task_id.to_string(),
                status,
                results: 0,
                padding: 0,
                created: now.clone(),
                scan_start: now,
                scan_end: String::new(),
            },
        );
        id
    }

    fn target_by_name(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| !t.in_trash && t.name == name)
    }

    fn target_idx(&self, id: &str) -> Option<usize> {
        self.targets.iter().position(|t| !t.in_trash && t.id == id)
    }

    fn task_idx(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| !t.in_trash && t.id == id)
    }

    /// gvmd's target_in_use: a task outside the trashcan refers to it.
    fn target_in_use(&self, id: &str) -> bool {
        self.tasks.iter().any(|t| !t.in_trash && t.target_id == id)
    }

    /// One get_tasks observation of an active task: moves the scripted run on.
    fn observe(&mut self, idx: usize) {
        self.step(idx);
        self.sync_report(idx);
    }

    /// A running report's scan_run_status follows its task's status.
    fn sync_report(&mut self, idx: usize) {
        let task = &self.tasks[idx];
        if let Some(r) = task.current_report.as_ref() {
            if let Some(r) = self.reports.get_mut(r) {
                r.status = task.status;
            }
        }
    }

    fn step(&mut self, idx: usize) {
        let task = &mut self.tasks[idx];
        if !task.status.active() {
            return;
        }
        if task.status == Status::StopRequested {
            if task.stop_shown {
                self.finish(idx, Status::Stopped);
            } else {
                task.stop_shown = true;
            }
            return;
        }
        task.polls += 1;
        let k = task.polls;
        let n = task.plan_polls;
        if k == 1 {
            task.status = Status::Requested;
            task.progress = 0;
        } else if task.plan_end == End::Never {
            task.status = Status::Running;
            task.progress = (k as i32 - 1).min(99);
        } else if k <= n + 1 {
            task.status = Status::Running;
            task.progress = (((k - 1) * 100) / (n + 1)).clamp(1, 99) as i32;
        } else {
            let end = match task.plan_end {
                End::Done => Status::Done,
                End::Stopped => Status::Stopped,
                End::Interrupted | End::Never => Status::Interrupted,
            };
            self.finish(idx, end);
        }
    }

    /// Ends the current run of a task with `status`; its report gets the configured results.
    fn finish(&mut self, idx: usize, status: Status) {
        let (results, padding) = (self.results, self.padding);
        let task = &mut self.tasks[idx];
        task.status = status;
        task.progress = -1;
        if let Some(rid) = task.current_report.take() {
            if let Some(r) = self.reports.get_mut(&rid) {
                r.status = status;
                r.results = results;
                r.padding = padding;
                r.scan_end = now();
            }
            task.last_report = Some(rid);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The connection: incremental parsing of commands, dispatch, replies.

/// A parsed command element (names lowercased: gvmd compares them with strcasecmp).
#[derive(Clone, Debug, Default)]
struct Elem {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Elem>,
}

impl Elem {
    fn from_start(e: &BytesStart<'_>) -> Result<Elem, ()> {
        let name = String::from_utf8_lossy(e.name().as_ref()).to_ascii_lowercase();
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|_| ())?;
            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
            let value = a.unescape_value().map_err(|_| ())?.into_owned();
            attrs.push((key, value));
        }
        Ok(Elem {
            name,
            attrs,
            ..Elem::default()
        })
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// gvmd's boolean attributes: present and not "0".
    fn flag(&self, name: &str) -> bool {
        self.attr(name).is_some_and(|v| v != "0")
    }

    fn child(&self, name: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.name == name)
    }

    fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    fn child_id(&self, name: &str) -> Option<&str> {
        self.child(name).and_then(|c| c.attr("id"))
    }
}

/// Records every byte read from the socket, so a command's text can be kept as sent.
struct Tee {
    inner: OwnedReadHalf,
    seen: Vec<u8>,
    /// Stream offset of `seen[0]`.
    base: u64,
}

impl AsyncRead for Tee {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.seen.extend_from_slice(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// What to do with a complete command.
enum Reply {
    Xml(String),
    Reports(ReportsJob),
    /// Close without answering.
    Drop,
    /// Never answer; keep the connection open.
    Hang,
}

const KNOWN: [&str; 13] = [
    "get_version",
    "authenticate",
    "get_targets",
    "create_target",
    "modify_target",
    "delete_target",
    "get_tasks",
    "create_task",
    "modify_task",
    "start_task",
    "stop_task",
    "delete_task",
    "get_reports",
];

async fn serve(stream: UnixStream, shared: Arc<Shared>) {
    let (r, mut w) = stream.into_split();
    let tee = Tee {
        inner: r,
        seen: Vec::new(),
        base: 0,
    };
    let mut reader = Reader::from_reader(BufReader::new(tee));
    let mut authed = false;
    let mut buf = Vec::new();
    let mut stack: Vec<Elem> = Vec::new();
    let mut start = 0u64;
    loop {
        if stack.is_empty() {
            start = reader.buffer_position();
        }
        buf.clear();
        let ev = match reader.read_event_into_async(&mut buf).await {
            Ok(ev) => ev.into_owned(),
            // Malformed XML: gvmd stops parsing and closes the connection.
            Err(_) => return,
        };
        // (element, complete, just opened)
        let (elem, complete, opened) = match ev {
            Event::Start(e) => match Elem::from_start(&e) {
                Ok(el) => (el, false, true),
                Err(()) => return,
            },
            Event::Empty(e) => match Elem::from_start(&e) {
                Ok(el) => (el, true, true),
                Err(()) => return,
            },
            Event::End(_) => match stack.pop() {
                Some(el) => (el, true, false),
                None => return,
            },
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    match t.xml_content() {
                        Ok(s) => top.text.push_str(&s),
                        Err(_) => return,
                    }
                }
                continue;
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
                continue;
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    if let Ok(Some(ch)) = r.resolve_char_ref() {
                        top.text.push(ch);
                    } else {
                        let name = String::from_utf8_lossy(&r);
                        match resolve_predefined_entity(&name) {
                            Some(s) => top.text.push_str(s),
                            None => return,
                        }
                    }
                }
                continue;
            }
            Event::Eof => return,
            _ => continue,
        };
        if opened && stack.is_empty() {
            // The start tag of a command. gvmd answers unknown commands, and commands before
            // authenticating, right here, then closes the connection.
            let name = elem.name.as_str();
            let refusal = if !authed && name != "get_version" && name != "authenticate" {
                Some("Only command GET_VERSION is allowed before AUTHENTICATE")
            } else if !KNOWN.contains(&name) {
                Some("Bogus command name")
            } else {
                None
            };
            if let Some(text) = refusal {
                let pos = reader.buffer_position();
                let raw = take_raw(reader.get_mut().get_mut(), start, pos);
                {
                    let mut s = lock(&shared.state);
                    s.commands.push(elem.name.clone());
                    s.raw.push(raw);
                }
                let reply = format!("<gmp_response status=\"400\" status_text=\"{text}\"/>");
                let _ = w.write_all(reply.as_bytes()).await;
                let _ = w.flush().await;
                return;
            }
        }
        if !complete {
            stack.push(elem);
            continue;
        }
        if let Some(parent) = stack.last_mut() {
            parent.children.push(elem);
            continue;
        }
        // A complete command.
        let pos = reader.buffer_position();
        let raw = take_raw(reader.get_mut().get_mut(), start, pos);
        let (reply, cut) = {
            let mut s = lock(&shared.state);
            s.commands.push(elem.name.clone());
            s.raw.push(raw);
            let reply = dispatch(&mut s, &elem, &mut authed);
            let cut = s.cuts.get_mut(&elem.name).and_then(VecDeque::pop_front);
            (reply, cut)
        };
        let mut limited = Limited {
            w: &mut w,
            left: cut.unwrap_or(usize::MAX),
        };
        let ok = match reply {
            Reply::Drop => return,
            Reply::Hang => std::future::pending::<bool>().await,
            Reply::Xml(xml) => limited.write_all(xml.as_bytes()).await.is_ok(),
            Reply::Reports(job) => write_reports(&mut limited, job).await.is_ok(),
        };
        if cut.is_some() {
            // The answer was cut: close, as a gvmd that died mid-answer would.
            return;
        }
        if !ok || w.flush().await.is_err() {
            return;
        }
    }
}

/// The bytes of the stream from `start` to `end`, as text, trimmed; forgets what came before
/// `end`.
fn take_raw(tee: &mut Tee, start: u64, end: u64) -> String {
    let from = (start.saturating_sub(tee.base) as usize).min(tee.seen.len());
    let to = (end.saturating_sub(tee.base) as usize).min(tee.seen.len());
    let raw = String::from_utf8_lossy(&tee.seen[from..to.max(from)])
        .trim()
        .to_string();
    tee.seen.drain(..to);
    tee.base += to as u64;
    raw
}

/// `<CMD_response status=.. status_text=../>`. The text is written as gvmd's printf does
/// (apostrophes stay literal, as in "Failed to find target 'ID'"); only `&`, `<`, `>` and `"`
/// are escaped.
fn response(cmd: &str, status: u16, text: &str) -> String {
    let text = partial_escape(text).replace('"', "&quot;");
    format!("<{cmd}_response status=\"{status}\" status_text=\"{text}\"/>")
}

fn ok(cmd: &str) -> String {
    response(cmd, 200, "OK")
}

fn syntax(cmd: &str, text: &str) -> String {
    response(cmd, 400, text)
}

/// gvmd's send_find_error_to_client.
fn not_found(cmd: &str, kind: &str, id: &str) -> String {
    response(cmd, 404, &format!("Failed to find {kind} '{id}'"))
}

fn created(cmd: &str, id: &str) -> String {
    format!("<{cmd}_response status=\"201\" status_text=\"OK, resource created\" id=\"{id}\"/>")
}

fn dispatch(s: &mut State, cmd: &Elem, authed: &mut bool) -> Reply {
    let name = cmd.name.as_str();
    if let Some(n) = s.hangs.get_mut(name) {
        if *n > 0 {
            *n -= 1;
            return Reply::Hang;
        }
    }
    if let Some(n) = s.drops.get_mut(name) {
        if *n > 0 {
            *n -= 1;
            return Reply::Drop;
        }
    }
    if let Some((status, text)) = s.fails.get_mut(name).and_then(VecDeque::pop_front) {
        return Reply::Xml(response(name, status, &text));
    }
    Reply::Xml(match name {
        "get_version" => format!(
            "<get_version_response status=\"200\" status_text=\"OK\">\
             <version>{GMP_VERSION}</version></get_version_response>"
        ),
        "authenticate" => authenticate(s, cmd, authed),
        "get_targets" => get_targets(s, cmd),
        "create_target" => create_target(s, cmd),
        "modify_target" => modify_target(s, cmd),
        "delete_target" => delete_target(s, cmd),
        "get_tasks" => get_tasks(s, cmd),
        "create_task" => create_task(s, cmd),
        "modify_task" => modify_task(s, cmd),
        "start_task" => start_task(s, cmd),
        "stop_task" => stop_task(s, cmd),
        "delete_task" => delete_task(s, cmd),
        "get_reports" => return get_reports(s, cmd),
        // Unknown names were refused at their start tag.
        _ => response("gmp", 400, "Bogus command name"),
    })
}

fn authenticate(s: &mut State, cmd: &Elem, authed: &mut bool) -> String {
    let creds = cmd.child("credentials");
    let user = creds.and_then(|c| c.child_text("username")).unwrap_or("");
    let pass = creds.and_then(|c| c.child_text("password")).unwrap_or("");
    if user == s.user && pass == s.password {
        *authed = true;
        "<authenticate_response status=\"200\" status_text=\"OK\">\
         <role>Admin</role><timezone>UTC</timezone></authenticate_response>"
            .to_string()
    } else {
        // gvmd: XML_ERROR_AUTH_FAILED, back to the unauthenticated state.
        *authed = false;
        response("authenticate", 400, "Authentication failed")
    }
}

/// The filter keywords the stand-in understands.
struct Filter {
    name: Option<String>,
    first: i64,
    rows: i64,
    rows_given: bool,
}

fn parse_filter(term: &str) -> Filter {
    let mut f = Filter {
        name: None,
        first: 1,
        rows: DEFAULT_ROWS,
        rows_given: false,
    };
    for token in split_filter(term) {
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        match key.to_ascii_lowercase().as_str() {
            "name" => f.name = Some(value.to_string()),
            "first" => f.first = value.parse().unwrap_or(1).max(1),
            "rows" => {
                f.rows = value.parse().unwrap_or(DEFAULT_ROWS);
                f.rows_given = true;
            }
            _ => {}
        }
    }
    f
}

/// Splits a filter term at spaces outside double quotes.
fn split_filter(term: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in term.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Applies first/rows to a list; returns (page, first, max) for the `<TYPEs start max/>`.
fn paginate<T>(items: Vec<T>, f: &Filter) -> (Vec<T>, i64, i64) {
    let skip = (f.first - 1) as usize;
    let page: Vec<T> = if f.rows < 0 {
        items.into_iter().skip(skip).collect()
    } else {
        items.into_iter().skip(skip).take(f.rows as usize).collect()
    };
    (page, f.first, f.rows)
}

/// gvmd's send_get_end: filters, sort, `<TYPEs start max/>`, counts, end tag.
fn get_end(
    out: &mut String,
    kind: &str,
    term: &str,
    first: i64,
    max: i64,
    full: usize,
    page: usize,
) {
    let _ = write!(
        out,
        "<filters id=\"\"><term>{}</term><keywords/></filters>\
         <sort><field>name<order>ascending</order></field></sort>\
         <{kind}s start=\"{first}\" max=\"{max}\"/>\
         <{kind}_count>{full}<filtered>{full}</filtered><page>{page}</page></{kind}_count>\
         </get_{kind}s_response>",
        esc(term)
    );
}

fn common(
    out: &mut String,
    kind: &str,
    id: &str,
    name: &str,
    comment: &str,
    times: (&str, &str),
    in_use: bool,
) {
    let _ = write!(
        out,
        "<{kind} id=\"{id}\"><owner><name>{DEFAULT_USER}</name></owner><name>{}</name>\
         <comment>{}</comment><creation_time>{}</creation_time>\
         <modification_time>{}</modification_time><writable>1</writable>\
         <in_use>{}</in_use><permissions><permission><name>Everything</name></permission>\
         </permissions>",
        esc(name),
        esc(comment),
        times.0,
        times.1,
        u8::from(in_use)
    );
}

fn term_of(cmd: &Elem, f: &Filter) -> String {
    let mut term = cmd.attr("filter").unwrap_or("").trim().to_string();
    if !f.rows_given {
        let _ = write!(
            term,
            "{}rows={}",
            if term.is_empty() { "" } else { " " },
            f.rows
        );
    }
    term
}

fn get_targets(s: &mut State, cmd: &Elem) -> String {
    let f = parse_filter(cmd.attr("filter").unwrap_or(""));
    let term = term_of(cmd, &f);
    let selected: Vec<Target> = match cmd.attr("target_id") {
        Some(id) => match s.target_idx(id) {
            Some(i) => vec![s.targets[i].clone()],
            None => return not_found("get_targets", "target", id),
        },
        None => s
            .targets
            .iter()
            .filter(|t| !t.in_trash && f.name.as_ref().is_none_or(|n| *n == t.name))
            .cloned()
            .collect(),
    };
    let full = selected.len();
    let (page, first, max) = if cmd.attr("target_id").is_some() {
        (selected, 1, -1)
    } else {
        paginate(selected, &f)
    };
    let mut out = String::from("<get_targets_response status=\"200\" status_text=\"OK\">");
    for t in &page {
        common(
            &mut out,
            "target",
            &t.id,
            &t.name,
            &t.comment,
            (&t.created, &t.modified),
            s.target_in_use(&t.id),
        );
        let max_hosts = t.hosts.split(", ").filter(|h| !h.is_empty()).count();
        let _ = write!(
            out,
            "<hosts>{}</hosts><exclude_hosts></exclude_hosts><max_hosts>{max_hosts}</max_hosts>\
             <port_list id=\"{}\"><name>{}</name><trash>0</trash></port_list>\
             <ssh_credential id=\"\"><name></name><port></port><trash>0</trash></ssh_credential>\
             <smb_credential id=\"\"><name></name><trash>0</trash></smb_credential>\
             <esxi_credential id=\"\"><name></name><trash>0</trash></esxi_credential>\
             <snmp_credential id=\"\"><name></name><trash>0</trash></snmp_credential>\
             <ssh_elevate_credential id=\"\"><name></name><trash>0</trash></ssh_elevate_credential>\
             <krb5_credential id=\"\"><name></name><trash>0</trash></krb5_credential>\
             <reverse_lookup_only>0</reverse_lookup_only>\
             <reverse_lookup_unify>0</reverse_lookup_unify>\
             <alive_tests>Scan Config Default</alive_tests>\
             <allow_simultaneous_ips>1</allow_simultaneous_ips></target>",
            esc(&t.hosts),
            t.port_list_id,
            esc(&t.port_list_name)
        );
    }
    let n = page.len();
    get_end(&mut out, "target", &term, first, max, full, n);
    out
}

fn create_target(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "create_target";
    let Some(name) = cmd.child_text("name") else {
        return syntax(C, "A NAME is required");
    };
    if name.is_empty() {
        return syntax(C, "Name must be at least one character long");
    }
    let Some(hosts) = cmd.child_text("hosts") else {
        return syntax(C, "A host is required");
    };
    if hosts.is_empty() {
        return syntax(C, "Hosts must be at least one character long");
    }
    // manage_sql_targets.c create_target: the name check comes before the port list.
    if s.target_by_name(name).is_some() {
        return syntax(C, "Target exists already");
    }
    let (pl_id, pl_name) = match (cmd.child_id("port_list"), cmd.child_text("port_range")) {
        (Some(id), _) => match port_list_name(id) {
            Some(n) => (id.to_string(), n.to_string()),
            None => return not_found(C, "port_list", id),
        },
        (None, Some(_range)) => (s.new_id(5), name.to_string()),
        (None, None) => return syntax(C, "One of PORT_LIST and PORT_RANGE are required"),
    };
    let hosts = clean_hosts(hosts);
    if hosts.is_empty() {
        return syntax(C, "Error in host specification");
    }
    let id = s.new_id(1);
    let now = now();
    s.targets.push(Target {
        id: id.clone(),
        name: name.to_string(),
        comment: cmd.child_text("comment").unwrap_or("").to_string(),
        hosts,
        port_list_id: pl_id,
        port_list_name: pl_name,
        created: now.clone(),
        modified: now,
        in_trash: false,
    });
    created(C, &id)
}

fn modify_target(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "modify_target";
    let Some(id) = cmd.attr("target_id") else {
        return syntax(C, "A target_id attribute is required");
    };
    let hosts = cmd.child_text("hosts");
    let exclude = cmd.child_text("exclude_hosts");
    if hosts.is_some() && exclude.is_none() {
        return syntax(C, "HOSTS requires an EXCLUDE_HOSTS");
    }
    let Some(idx) = s.target_idx(id) else {
        return not_found(C, "target", id);
    };
    let in_use = s.target_in_use(id);
    let mut t = s.targets[idx].clone();
    if let Some(name) = cmd.child_text("name") {
        if name.is_empty() {
            return syntax(C, "Name must be at least one character long");
        }
        if s.targets
            .iter()
            .any(|o| !o.in_trash && o.id != t.id && o.name == name)
        {
            return syntax(C, "Target exists already");
        }
        t.name = name.to_string();
    }
    if let Some(comment) = cmd.child_text("comment") {
        t.comment = comment.to_string();
    }
    if let Some(pl) = cmd.child_id("port_list") {
        if in_use {
            return syntax(C, "Target is in use");
        }
        match port_list_name(pl) {
            Some(n) => {
                t.port_list_id = pl.to_string();
                t.port_list_name = n.to_string();
            }
            None => return not_found(C, "port_list", pl),
        }
    }
    if exclude.is_some() {
        if in_use {
            return syntax(C, "Target is in use");
        }
        let Some(hosts) = hosts else {
            return syntax(C, "EXCLUDE_HOSTS requires a HOSTS");
        };
        if hosts.is_empty() {
            // Sic: gvmd's text lacks the space.
            return syntax(C, "HOSTS must be at least onecharacter long");
        }
        let cleaned = clean_hosts(hosts);
        if cleaned.is_empty() {
            return syntax(C, "Error in host specification");
        }
        t.hosts = cleaned;
    }
    t.modified = now();
    s.targets[idx] = t;
    ok(C)
}

fn delete_target(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "delete_target";
    let Some(id) = cmd.attr("target_id") else {
        return syntax(C, "A target_id attribute is required");
    };
    let ultimate = cmd.flag("ultimate");
    let Some(idx) = s.targets.iter().position(|t| t.id == id) else {
        return not_found(C, "target", id);
    };
    let id = id.to_string();
    if s.targets[idx].in_trash {
        if !ultimate {
            return ok(C); // Already in the trashcan.
        }
        if s.tasks.iter().any(|t| t.target_id == id) {
            return syntax(C, "Target is in use");
        }
        s.targets.remove(idx);
    } else if !ultimate {
        if s.target_in_use(&id) {
            return syntax(C, "Target is in use");
        }
        s.targets[idx].in_trash = true;
    } else {
        if s.tasks.iter().any(|t| t.target_id == id) {
            return syntax(C, "Target is in use");
        }
        s.targets.remove(idx);
    }
    s.deleted.push(id);
    ok(C)
}

fn get_tasks(s: &mut State, cmd: &Elem) -> String {
    let f = parse_filter(cmd.attr("filter").unwrap_or(""));
    let term = term_of(cmd, &f);
    let selected: Vec<usize> = match cmd.attr("task_id") {
        Some(id) => match s.task_idx(id) {
            Some(i) => vec![i],
            None => return not_found("get_tasks", "task", id),
        },
        None => (0..s.tasks.len())
            .filter(|&i| {
                let t = &s.tasks[i];
                !t.in_trash && f.name.as_ref().is_none_or(|n| *n == t.name)
            })
            .collect(),
    };
    let full = selected.len();
    let (page, first, max) = if cmd.attr("task_id").is_some() {
        (selected, 1, -1)
    } else {
        paginate(selected, &f)
    };
    let mut out = String::from(
        "<get_tasks_response status=\"200\" status_text=\"OK\"><apply_overrides>0</apply_overrides>",
    );
    for &i in &page {
        s.observe(i);
        let t = &s.tasks[i];
        common(
            &mut out,
            "task",
            &t.id,
            &t.name,
            &t.comment,
            (&t.created, &t.modified),
            t.status.active(),
        );
        let target_name = s
            .targets
            .iter()
            .find(|x| x.id == t.target_id)
            .map(|x| x.name.as_str())
            .unwrap_or("");
        let (scanner_name, scanner_type) = scanner(&t.scanner_id).unwrap_or(("", 0));
        let finished = t
            .reports
            .iter()
            .filter(|r| s.reports.get(*r).is_some_and(|r| !r.status.active()))
            .count();
        let _ = write!(
            out,
            "<alterable>{}</alterable><usage_type>scan</usage_type>\
             <config id=\"{}\"><name>{}</name><trash>0</trash></config>\
             <target id=\"{}\"><name>{}</name><trash>0</trash></target>\
             <hosts_ordering></hosts_ordering>\
             <scanner id='{}'><name>{}</name><type>{scanner_type}</type><trash>0</trash></scanner>\
             <status>{}</status><progress>{}</progress>\
             <report_count>{}<finished>{finished}</finished></report_count><trend></trend>\
             <schedule id=\"\"><name></name><trash>0</trash></schedule>\
             <schedule_periods>0</schedule_periods>",
            u8::from(t.alterable),
            t.config_id,
            esc(config_name(&t.config_id).unwrap_or("")),
            t.target_id,
            esc(target_name),
            t.scanner_id,
            esc(scanner_name),
            t.status.name(),
            t.progress,
            t.reports.len(),
        );
        if let Some(r) = t.current_report.as_ref().and_then(|r| s.reports.get(r)) {
            let _ = write!(
                out,
                "<current_report><report id=\"{}\"><timestamp>{}</timestamp>\
                 <scan_start>{}</scan_start><scan_end></scan_end></report></current_report>",
                r.id, r.created, r.scan_start
            );
        }
        if let Some(r) = t.last_report.as_ref().and_then(|r| s.reports.get(r)) {
            let _ = write!(
                out,
                "<last_report><report id=\"{}\"><timestamp>{}</timestamp>\
                 <scan_start>{}</scan_start><scan_end>{}</scan_end></report></last_report>",
                r.id, r.created, r.scan_start, r.scan_end
            );
        }
        out.push_str(
            "<observers></observers><preferences><preference>\
             <name>Maximum concurrently executed NVTs per host</name>\
             <scanner_name>max_checks</scanner_name><value>4</value></preference><preference>\
             <name>Maximum concurrently scanned hosts</name>\
             <scanner_name>max_hosts</scanner_name><value>20</value></preference>\
             </preferences></task>",
        );
    }
    let n = page.len();
    get_end(&mut out, "task", &term, first, max, full, n);
    out
}

fn create_task(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "create_task";
    let Some(name) = cmd.child_text("name") else {
        return syntax(C, "A NAME is required");
    };
    let Some(target_id) = cmd.child_id("target") else {
        return syntax(C, "A target is required");
    };
    let Some(config_id) = cmd.child_id("config") else {
        return syntax(C, "A config is required");
    };
    let scanner_id = cmd.child_id("scanner").unwrap_or(SCANNER_OPENVAS);
    // gmp.c CLIENT_CREATE_TASK checks the scanner, then the config, then the target.
    if scanner(scanner_id).is_none() {
        return not_found(C, "scanner", scanner_id);
    }
    if config_name(config_id).is_none() {
        return not_found(C, "config", config_id);
    }
    if s.target_idx(target_id).is_none() {
        return not_found(C, "target", target_id);
    }
    let alterable = cmd.child_text("alterable").is_some_and(|v| v != "0");
    let id = s.new_id(2);
    let now = now();
    let task = Task {
        id: id.clone(),
        name: name.to_string(),
        comment: cmd.child_text("comment").unwrap_or("").to_string(),
        target_id: target_id.to_string(),
        config_id: config_id.to_string(),
        scanner_id: scanner_id.to_string(),
        alterable,
        status: Status::New,
        progress: -1,
        polls: 0,
        stop_shown: false,
        plan_polls: s.run_polls,
        plan_end: s.run_end,
        current_report: None,
        last_report: None,
        reports: Vec::new(),
        created: now.clone(),
        modified: now,
        in_trash: false,
    };
    s.tasks.push(task);
    created(C, &id)
}

fn modify_task(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "modify_task";
    let Some(id) = cmd.attr("task_id") else {
        return syntax(C, "A task_id attribute is required");
    };
    let Some(idx) = s.task_idx(id) else {
        // Sic: gvmd says "Task" here.
        return not_found(C, "Task", id);
    };
    let mut t = s.tasks[idx].clone();
    let locked = (t.status != Status::New && !t.alterable) || t.status.active();
    if let Some(name) = cmd.child_text("name") {
        t.name = name.to_string();
    }
    if let Some(comment) = cmd.child_text("comment") {
        t.comment = comment.to_string();
    }
    if let Some(sc) = cmd.child_id("scanner") {
        if locked {
            return syntax(C, "Status must be New to edit scanner");
        }
        if scanner(sc).is_none() {
            return not_found(C, "scanner", sc);
        }
        t.scanner_id = sc.to_string();
    }
    if let Some(cf) = cmd.child_id("config") {
        if locked {
            return syntax(C, "Status must be New to edit config");
        }
        if config_name(cf).is_none() {
            return not_found(C, "config", cf);
        }
        t.config_id = cf.to_string();
    }
    if let Some(a) = cmd.child_text("alterable") {
        if t.status != Status::New {
            return syntax(C, "Task must be New to modify Alterable state");
        }
        t.alterable = a != "0";
    }
    if let Some(tg) = cmd.child_id("target") {
        if locked {
            return syntax(C, "Status must be New to edit Target");
        }
        if s.target_idx(tg).is_none() {
            return not_found(C, "target", tg);
        }
        t.target_id = tg.to_string();
    }
    t.modified = now();
    s.tasks[idx] = t;
    ok(C)
}

fn start_task(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "start_task";
    let Some(id) = cmd.attr("task_id") else {
        return syntax(C, "A task_id attribute is required");
    };
    let Some(idx) = s.task_idx(id) else {
        return not_found(C, "task", id);
    };
    if s.tasks[idx].status.active() {
        return syntax(C, "Task is active already");
    }
    let id = id.to_string();
    let report = s.new_report(&id, Status::Requested);
    let (polls, end) = (s.run_polls, s.run_end);
    let t = &mut s.tasks[idx];
    t.status = Status::Requested;
    t.progress = 0;
    t.polls = 0;
    t.stop_shown = false;
    t.plan_polls = polls;
    t.plan_end = end;
    t.current_report = Some(report.clone());
    t.reports.push(report.clone());
    format!(
        "<start_task_response status=\"202\" status_text=\"OK, request submitted\">\
         <report_id>{report}</report_id></start_task_response>"
    )
}

fn stop_task(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "stop_task";
    let Some(id) = cmd.attr("task_id") else {
        return syntax(C, "A task_id attribute is required");
    };
    let Some(idx) = s.task_idx(id) else {
        return not_found(C, "task", id);
    };
    let t = &mut s.tasks[idx];
    if t.status.active() {
        if t.status != Status::StopRequested {
            t.status = Status::StopRequested;
            t.stop_shown = false;
        }
        s.sync_report(idx);
        s.stops += 1;
        response(C, 202, "OK, request submitted")
    } else {
        // gvmd's stop_task_internal: nothing to stop.
        ok(C)
    }
}

fn delete_task(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "delete_task";
    let Some(id) = cmd.attr("task_id") else {
        return syntax(C, "A task_id attribute is required");
    };
    let ultimate = cmd.flag("ultimate");
    let Some(idx) = s.tasks.iter().position(|t| t.id == id) else {
        return not_found(C, "task", id);
    };
    let id = id.to_string();
    let was_active = s.tasks[idx].status.active();
    if was_active {
        // gvmd stops the scan first and answers "request submitted"; here the run is dropped
        // at once.
        let t = &mut s.tasks[idx];
        t.status = Status::Stopped;
        t.progress = -1;
        if let Some(r) = t.current_report.take() {
            if let Some(r) = s.reports.get_mut(&r) {
                r.status = Status::Stopped;
                r.scan_end = now();
            }
        }
    }
    if ultimate {
        let t = s.tasks.remove(idx);
        for r in &t.reports {
            s.reports.remove(r);
        }
    } else {
        s.tasks[idx].in_trash = true;
    }
    s.deleted.push(id);
    if was_active {
        response(C, 202, "OK, request submitted")
    } else {
        ok(C)
    }
}

// ---------------------------------------------------------------------------------------------
// get_reports: planned under the lock, written result by result outside it.

struct ReportsJob {
    /// Everything before the first report.
    head: String,
    reports: Vec<ReportPlan>,
    /// Everything after the last report.
    tail: String,
}

struct ReportPlan {
    report: Report,
    task_name: String,
    target_id: String,
    target_name: String,
    hosts: Vec<String>,
    format_id: Option<String>,
    details: bool,
    /// Results to write: [from, to).
    from: usize,
    to: usize,
    start_attr: i64,
    max_attr: i64,
    term: String,
}

fn get_reports(s: &mut State, cmd: &Elem) -> Reply {
    const C: &str = "get_reports";
    let format_id = cmd.attr("format_id").filter(|f| !f.is_empty());
    if let Some(fmt) = format_id {
        if fmt != REPORT_FORMAT_XML {
            return Reply::Xml(not_found(C, "report format", fmt));
        }
    }
    let visible = |s: &State, r: &Report| s.tasks.iter().any(|t| t.id == r.task_id && !t.in_trash);
    let selected: Vec<Report> = match cmd.attr("report_id") {
        Some(id) => match s.reports.get(id).filter(|r| visible(s, r)) {
            Some(r) => vec![r.clone()],
            None => return Reply::Xml(not_found(C, "report", id)),
        },
        None => {
            let mut all: Vec<Report> = s
                .reports
                .values()
                .filter(|r| visible(s, r))
                .cloned()
                .collect();
            all.sort_by_key(|r| r.seq);
            all
        }
    };
    let f = parse_filter(cmd.attr("filter").unwrap_or(""));
    let ignore_pagination = cmd.flag("ignore_pagination");
    let details = cmd.flag("details");
    let mut plans = Vec::new();
    for r in selected {
        let task = s.tasks.iter().find(|t| t.id == r.task_id);
        let target = task.and_then(|t| s.targets.iter().find(|x| x.id == t.target_id));
        let n = r.results;
        let (from, to, start_attr, max_attr) = if ignore_pagination {
            (0, n, 1, -1)
        } else {
            let from = ((f.first - 1) as usize).min(n);
            let to = if f.rows < 0 {
                n
            } else {
                (from + f.rows as usize).min(n)
            };
            (from, to, f.first, f.rows)
        };
        plans.push(ReportPlan {
            task_name: task.map(|t| t.name.clone()).unwrap_or_default(),
            target_id: target.map(|t| t.id.clone()).unwrap_or_default(),
            target_name: target.map(|t| t.name.clone()).unwrap_or_default(),
            hosts: target
                .map(|t| t.hosts.split(", ").map(str::to_string).collect())
                .unwrap_or_else(|| vec!["127.0.0.1".to_string()]),
            format_id: format_id.map(str::to_string),
            details,
            from,
            to,
            start_attr,
            max_attr,
            term: format!(
                "apply_overrides=0 min_qod=70 first={} rows={} sort-reverse=severity",
                f.first, f.rows
            ),
            report: r,
        });
    }
    let count = plans.len();
    let mut tail = String::new();
    let list_term = cmd.attr("filter").unwrap_or("").trim().to_string();
    get_end(&mut tail, "report", &list_term, 1, -1, count, count);
    Reply::Reports(ReportsJob {
        head: "<get_reports_response status=\"200\" status_text=\"OK\">".to_string(),
        reports: plans,
        tail,
    })
}

async fn write_reports<W: AsyncWrite + Unpin>(w: &mut W, job: ReportsJob) -> io::Result<()> {
    let mut out = String::with_capacity(CHUNK + 8192);
    out.push_str(&job.head);
    for p in &job.reports {
        write_report(w, &mut out, p).await?;
    }
    out.push_str(&job.tail);
    w.write_all(out.as_bytes()).await
}

async fn spill<W: AsyncWrite + Unpin>(w: &mut W, out: &mut String) -> io::Result<()> {
    if out.len() >= CHUNK {
        w.write_all(out.as_bytes()).await?;
        out.clear();
    }
    Ok(())
}

/// One `<report>` of a get_reports_response (the export shape: an outer report with the
/// format attributes wrapping the inner report), generated as it is written.
async fn write_report<W: AsyncWrite + Unpin>(
    w: &mut W,
    out: &mut String,
    p: &ReportPlan,
) -> io::Result<()> {
    let r = &p.report;
    let (fmt, ext, ctype) = match &p.format_id {
        Some(f) => (f.as_str(), "xml", "text/xml"),
        None => ("", "", "application/xml"),
    };
    let status = r.status.name();
    let results = r.results;
    let _ = write!(
        out,
        "<report id=\"{id}\" format_id=\"{fmt}\" config_id=\"\" extension=\"{ext}\" \
         content_type=\"{ctype}\"><owner><name>{DEFAULT_USER}</name></owner>\
         <name>{created}</name><comment></comment><creation_time>{created}</creation_time>\
         <modification_time>{modified}</modification_time><writable>0</writable>\
         <in_use>0</in_use><task id=\"{task}\"><name>{task_name}</name></task>",
        id = r.id,
        created = r.created,
        modified = if r.scan_end.is_empty() {
            &r.created
        } else {
            &r.scan_end
        },
        task = r.task_id,
        task_name = esc(&p.task_name),
    );
    if !fmt.is_empty() {
        let _ = write!(
            out,
            "<report_format id=\"{fmt}\"><name>XML</name></report_format>"
        );
    }
    let _ = write!(
        out,
        "<report id=\"{id}\"><gmp><version>{GMP_VERSION}</version></gmp>\
         <sort><field>severity<order>descending</order></field></sort>\
         <filters id=\"\"><term>{term}</term><keywords/></filters>\
         <scan_run_status>{status}</scan_run_status><hosts><count>{hosts}</count></hosts>\
         <closed_cves><count>0</count></closed_cves><vulns><count>{vulns}</count></vulns>\
         <os><count>0</count></os><apps><count>0</count></apps>\
         <ssl_certs><count>0</count></ssl_certs>\
         <task id=\"{task}\"><name>{task_name}</name><comment></comment>\
         <target id=\"{target}\"><trash>0</trash><name>{target_name}</name>\
         <comment></comment></target><progress>{progress}</progress></task>\
         <timestamp>{created}</timestamp><scan_start>{start}</scan_start>\
         <timezone>Coordinated Universal Time</timezone><timezone_abbrev>UTC</timezone_abbrev>",
        id = r.id,
        term = esc(&p.term),
        hosts = p.hosts.len(),
        vulns = results.min(FINDINGS.len()),
        task = r.task_id,
        task_name = esc(&p.task_name),
        target = p.target_id,
        target_name = esc(&p.target_name),
        progress = if r.status.active() { 0 } else { -1 },
        created = r.created,
        start = r.scan_start,
    );
    if p.details {
        let _ = write!(
            out,
            "<ports start=\"1\" max=\"-1\"><count>{}</count></ports>\
             <results start=\"{}\" max=\"{}\">",
            results.min(FINDINGS.len()),
            p.start_attr,
            p.max_attr
        );
        for i in p.from..p.to {
            push_result(out, p, i);
            spill(w, out).await?;
        }
        out.push_str("</results>");
    }
    let (mut high, mut medium, mut low, mut log) = (0, 0, 0, 0);
    let mut top = 0.0f32;
    for (i, f) in FINDINGS.iter().enumerate() {
        let k = if results > i {
            (results - i).div_ceil(FINDINGS.len())
        } else {
            0
        };
        match f.threat {
            "High" => high += k,
            "Medium" => medium += k,
            "Low" => low += k,
            _ => log += k,
        }
        if k > 0 && f.severity > top {
            top = f.severity;
        }
    }
    let _ = write!(
        out,
        "<result_count>{results}<full>{results}</full><filtered>{results}</filtered>\
         <hole deprecated='1'><full>{high}</full><filtered>{high}</filtered></hole>\
         <high><full>{high}</full><filtered>{high}</filtered></high>\
         <info deprecated='1'><full>{low}</full><filtered>{low}</filtered></info>\
         <low><full>{low}</full><filtered>{low}</filtered></low>\
         <log><full>{log}</full><filtered>{log}</filtered></log>\
         <warning deprecated='1'><full>{medium}</full><filtered>{medium}</filtered></warning>\
         <medium><full>{medium}</full><filtered>{medium}</filtered></medium>\
         <false_positive><full>0</full><filtered>0</filtered></false_positive>\
         </result_count><severity><full>{top:.1}</full><filtered>{top:.1}</filtered></severity>\
         <scan_end>{end}</scan_end><errors><count>0</count></errors></report></report>",
        end = r.scan_end,
    );
    spill(w, out).await
}

struct Finding {
    name: &'static str,
    port: &'static str,
    threat: &'static str,
    severity: f32,
    family: &'static str,
    summary: &'static str,
    solution: &'static str,
}

const FINDINGS: [Finding; 5] = [
    Finding {
        name: "SSH Weak Encryption Algorithms Supported",
        port: "22/tcp",
        threat: "Medium",
        severity: 4.3,
        family: "General",
        summary: "The remote SSH server is configured to allow / support weak encryption \
                  algorithm(s).",
        solution: "Disable the reported weak encryption algorithm(s).",
    },
    Finding {
        name: "SSL/TLS: Report Weak Cipher Suites",
        port: "443/tcp",
        threat: "Medium",
        severity: 5.9,
        family: "SSL and TLS",
        summary: "This routine reports all Weak SSL/TLS cipher suites accepted by a service.",
        solution: "The configuration of this services should be changed so that it does not \
                   accept the listed weak cipher suites anymore.",
    },
    Finding {
        name: "Apache HTTP Server End of Life (EOL) Detection",
        port: "80/tcp",
        threat: "High",
        severity: 10.0,
        family: "Web Servers",
        summary: "The Apache HTTP Server version on the remote host has reached the End of \
                  Life (EOL) and should not be used anymore.",
        solution: "Update the Apache HTTP Server version on the remote host to a still \
                   supported version.",
    },
    Finding {
        name: "TCP Timestamps Information Disclosure",
        port: "general/tcp",
        threat: "Low",
        severity: 2.6,
        family: "General",
        summary: "The remote host implements TCP timestamps and therefore allows to compute \
                  the uptime.",
        solution: "To disable TCP timestamps on linux add the line 'net.ipv4.tcp_timestamps = \
                   0' to /etc/sysctl.conf.",
    },
    Finding {
        name: "OS Detection Consolidation and Reporting",
        port: "general/tcp",
        threat: "Log",
        severity: 0.0,
        family: "Product detection",
        summary: "This script consolidates the OS information detected by several VTs and \
                  tries to find the best matching OS.",
        solution: "",
    },
];

const PAD: &str = "Stand-in padding to make each result bigger for the report size tests. ";

fn push_result(out: &mut String, p: &ReportPlan, i: usize) {
    let r = &p.report;
    let f = &FINDINGS[i % FINDINGS.len()];
    let host = &p.hosts[i % p.hosts.len().max(1)];
    let oid = 100_000 + (i % FINDINGS.len());
    let _ = write!(
        out,
        "<result id=\"{seed:08x}-{seq:04x}-4000-9000-{i:012x}\"><name>{name}</name>\
         <owner><name>{DEFAULT_USER}</name></owner><comment></comment>\
         <creation_time>{t}</creation_time><modification_time>{t}</modification_time>\
         <host>{host}<asset asset_id=\"{seed:08x}-0006-4000-8000-{h:012x}\"/>\
         <hostname></hostname></host><port>{port}</port>\
         <nvt oid=\"1.3.6.1.4.1.25623.1.0.{oid}\"><type>nvt</type><name>{name}</name>\
         <family>{family}</family><cvss_base>{sev:.1}</cvss_base>\
         <severities score=\"{sev:.1}\"></severities>\
         <tags>summary={summary}|solution_type=Mitigation</tags>\
         <solution type=\"Mitigation\">{solution}</solution></nvt>\
         <scan_nvt_version>2024-01-01T00:00:00Z</scan_nvt_version><threat>{threat}</threat>\
         <severity>{sev:.1}</severity><qod><value>80</value><type>remote_banner</type></qod>\
         <description>Result {n} of {total} found on {host} ({port}).",
        seed = (r.seq as u32).wrapping_mul(2_654_435_761) | 0x1000_0000,
        seq = r.seq & 0xffff,
        name = esc(f.name),
        t = r.scan_start,
        host = esc(host),
        h = i % p.hosts.len().max(1),
        port = f.port,
        family = esc(f.family),
        sev = f.severity,
        summary = esc(f.summary),
        solution = esc(f.solution),
        threat = f.threat,
        n = i + 1,
        total = r.results,
    );
    let mut left = r.padding;
    while left > 0 {
        let take = left.min(PAD.len());
        out.push_str(&PAD[..take]);
        left -= take;
    }
    out.push_str("</description></result>");
}

/// A writer that fails once `left` bytes have gone through (for [`GmpStandIn::cut_next`]).
struct Limited<'a> {
    w: &'a mut OwnedWriteHalf,
    left: usize,
}

impl AsyncWrite for Limited<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.left == 0 {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = buf.len().min(self.left);
        let me = &mut *self;
        match Pin::new(&mut *me.w).poll_write(cx, &buf[..n]) {
            Poll::Ready(Ok(k)) => {
                me.left -= k;
                Poll::Ready(Ok(k))
            }
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.w).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.w).poll_shutdown(cx)
    }
}
