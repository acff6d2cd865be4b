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
//! This file holds the server's state, its known resources and the scripting of faults; the
//! protocol and each kind of resource have their own file: `connection.rs` (a client's
//! connection: commands parsed as they arrive, answers written), `commands.rs` (dispatch,
//! response shapes, get_version and authenticate), `listing.rs` (what every get_* shares:
//! filters, pagination, the tail), `targets.rs`, `tasks.rs`, `runs.rs` (a task's scripted runs:
//! start_task, stop_task, the progress get_tasks observes) and `reports.rs` (get_reports, written
//! result by result).

mod commands;
mod connection;
mod listing;
mod reports;
mod runs;
mod targets;
mod tasks;

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use quick_xml::escape::escape;
use tokio::net::UnixListener;
use tokio::task::{AbortHandle, JoinHandle};

use reports::Report;
use targets::Target;
use tasks::Task;

pub use runs::End;
pub use targets::TargetRec;
pub use tasks::TaskRec;

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

/// Everything the stand-in knows and is scripted to do, behind one mutex (see [`lock`]).
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

/// What the accept loop and every connection share.
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
                let handle = tokio::spawn(connection::serve(stream, conn_shared));
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

    /// Ids of targets and tasks deleted (to the trashcan or for good), in order.
    pub fn deleted(&self) -> Vec<String> {
        self.state().deleted.clone()
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
}
