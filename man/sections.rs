//! The man pages' own words: what clap does not know about the agent (how it runs, EXIT STATUS,
//! ENVIRONMENT, FILES, SIGNALS, CONFIGURATION, SEE ALSO), kept here in one place and compiled
//! into build.rs, which renders them after clap's sections. They restate the contract
//! (../shared/docs/contract.md, README.md's "Exit codes", "The state directory" and
//! "Configuration"); the exit codes are src/exit.rs's constants and the config path src/cli.rs's,
//! and tests/it/manpage.rs checks the rest against the code where it can (every exit code, every
//! key of config/agent.toml's sections, the stop's grace).

use clap_mangen::roff::{bold, italic, roman, Inline, Roff};

use crate::cli::DEFAULT_CONFIG_PATH;
use crate::exit;

const STATE_DIR: &str = "/var/lib/hostedscan-agent";
const DOC: &str = "/usr/share/doc/hostedscan-agent/README.md";

/// Right after the title of every page: no hyphenation (a path or a variable broken across two
/// lines cannot be copied) and no justification.
pub fn layout(r: &mut Roff) {
    r.control("nh", []);
    r.control("ad", ["l"]);
}

/// Paragraphs that follow clap's one-line DESCRIPTION of the main page.
pub fn description(r: &mut Roff) {
    r.control("PP", []);
    let daemon = "Without a command, hostedscan-agent runs as a daemon, normally as the systemd \
                  service hostedscan-agent.service: it watches the directories of its \
                  configuration for scanner reports (Nmap XML, OpenVAS/GVM XML, OWASP ZAP XML \
                  and JSON, SSLyze JSON), runs its scheduled scan jobs, validates each report, \
                  keeps a durable copy in its state directory and uploads it to the HostedScan \
                  API under an IMPORTED source, retrying until it is accepted. A file is either \
                  uploaded, or kept with the reason it was not (see FILES). With ";
    r.text([
        roman(daemon),
        bold("--once"),
        roman(" it makes one pass and exits (see EXIT STATUS)."),
    ]);
    r.control("PP", []);
    r.text([roman(
        "hostedscan-agent is an independent client of HostedScan's public API, not a \
         HostedScan product.",
    )]);
}

/// The sections after clap's OPTIONS and COMMANDS on the main page.
pub fn main_page(r: &mut Roff) {
    exit_status(r);
    environment(r);
    files(r);
    signals(r);
    configuration(r);
    see_also(r, true);
}

/// The sections after clap's on a command's own page.
pub fn command_page(r: &mut Roff) {
    r.control("SH", ["EXIT STATUS"]);
    r.text([
        roman("0 on success; otherwise one of the codes listed in "),
        bold("hostedscan-agent"),
        roman("(1)."),
    ]);
    see_also(r, false);
}

fn item(r: &mut Roff, term: impl Into<Vec<Inline>>, body: &str) {
    r.control("TP", []);
    r.text(term);
    r.text([roman(body)]);
}

fn exit_status(r: &mut Roff) {
    r.control("SH", ["EXIT STATUS"]);
    let codes: [(i32, &str); 7] = [
        (
            exit::OK,
            "Everything found was uploaded (or there was nothing to do); the daemon stopped \
             cleanly; a command did what was asked.",
        ),
        (
            exit::USAGE,
            "Command-line usage error; also requeue run as another user than the state \
             directory's owner (the message says as whom to run it).",
        ),
        (
            exit::DATAERR,
            "Some input was rejected by validation, or refused permanently by the API (a 4xx): \
             see rejected/ and failed/ in the state directory. validate: a file is not a valid \
             report.",
        ),
        (
            exit::TEMPFAIL,
            "Work is left pending: the API unreachable, 5xx or 429 past retry.once_deadline, a \
             file still being written, or the state directory in use by another agent; nothing \
             is lost, the next run retries it. reload: no daemon answered in time.",
        ),
        (
            exit::NOPERM,
            "The API refused the key (401 or 403); nothing was dropped.",
        ),
        (
            exit::CONFIG,
            "The configuration is invalid: the message names the key and the fix. reload: the \
             file is invalid, or the daemon refused it; either way the daemon keeps its \
             previous configuration.",
        ),
        (exit::INTERNAL, "Unexpected internal error."),
    ];
    for (code, meaning) in codes {
        item(r, [bold(code.to_string())], meaning);
    }
    r.control("PP", []);
    r.text([roman(format!(
        "When several apply, the first in the order {}, {}, {}, {} wins.",
        exit::CONFIG,
        exit::NOPERM,
        exit::TEMPFAIL,
        exit::DATAERR
    ))]);
}

fn environment(r: &mut Roff) {
    r.control("SH", ["ENVIRONMENT"]);
    let vars: [(&str, String); 8] = [
        (
            "HOSTEDSCAN_AGENT_CONFIG",
            format!("The configuration file when -c is not given (default {DEFAULT_CONFIG_PATH})."),
        ),
        (
            "CREDENTIALS_DIRECTORY",
            "Set by systemd (LoadCredential= in the unit): the API key is read first from its \
             file api-key. To check a configuration as the service sees it, run check-config \
             with CREDENTIALS_DIRECTORY=/etc/hostedscan-agent."
                .into(),
        ),
        (
            "HOSTEDSCAN_API_KEY",
            "The API key, used when neither the credential nor api.key_file gives one (before \
             api.key in the file)."
                .into(),
        ),
        (
            "HOSTEDSCAN_AGENT__SECTION__KEY",
            "Overrides a key of the configuration file, for example HOSTEDSCAN_AGENT__API__URL \
             or HOSTEDSCAN_AGENT__AGENT__UPLOAD_CONCURRENCY."
                .into(),
        ),
        (
            "HTTPS_PROXY",
            "The proxy for the API when api.proxy is not set.".into(),
        ),
        (
            "NO_PROXY",
            "Hosts reached without the proxy (with api.proxy too).".into(),
        ),
        (
            "RUST_LOG",
            "A log filter (tracing's EnvFilter syntax, for example \
             hostedscan_agent=debug) that replaces the level set by -v and -q."
                .into(),
        ),
        (
            "JOURNAL_STREAM",
            "Set by systemd: when it names stderr, log lines carry no timestamp or colour of \
             their own."
                .into(),
        ),
    ];
    for (name, what) in vars {
        item(r, [bold(name)], &what);
    }
    r.control("PP", []);
    r.text([roman(
        "Scan jobs run without HOSTEDSCAN_API_KEY, CREDENTIALS_DIRECTORY, \
         HOSTEDSCAN_AGENT__*, NOTIFY_SOCKET and WATCHDOG_*, with TMPDIR set to their private \
         run directory.",
    )]);
}

fn files(r: &mut Roff) {
    r.control("SH", ["FILES"]);
    item(
        r,
        [bold(DEFAULT_CONFIG_PATH)],
        "The configuration (root:hostedscan-agent 0640). The packaged file is annotated: every \
         key with its default and what it does.",
    );
    item(
        r,
        [bold("/etc/hostedscan-agent/api-key")],
        "The API key (root 0600), handed to the service as the systemd credential api-key.",
    );
    item(
        r,
        [bold(STATE_DIR)],
        "The state directory (agent.state_dir), the agent's custody of every file it admitted. \
         Its layout is the interface for operators:",
    );
    r.control("RS", []);
    let state: [(&str, &str); 13] = [
        (
            "queue/",
            "admitted files waiting for upload, each with its record (the extended attribute \
             user.hostedscan.entry, or <name>.meta.json where the file system keeps none)",
        ),
        (
            "failed/",
            "refused by the API: <name> and <name>.error.json (status, the server's message); \
             hostedscan-agent requeue sends them again",
        ),
        (
            "rejected/",
            "failed validation: <name> and <name>.reason.json (reason, where it came from); \
             requeue --rejected after fixing",
        ),
        (
            "archive/YYYY-MM-DD/",
            "originals after upload (agent.after_upload = \"archive\"), for agent.archive_retention",
        ),
        ("inbox/", "the default watch directory"),
        ("source.json", "the default IMPORTED source in use ([source])"),
        (
            "sources.json",
            "the sources that watches and jobs name: name to id, per API URL",
        ),
        (
            "ledger.jsonl, ledger.index, ledger-history/",
            "every accepted upload (SHA-256, source): the same content is never uploaded twice \
             to one source",
        ),
        (
            "status.json",
            "the daemon's last error, pauses and parked files, read by status",
        ),
        ("jobs.json", "each job's last run and outcome"),
        ("reload.json", "the daemon's answer to its last SIGHUP, read by reload"),
        ("tmp/", "copies being written (cleared at start)"),
        ("lock", "held by the running agent"),
    ];
    for (name, what) in state {
        item(r, [bold(name)], what);
    }
    r.control("RE", []);
    item(
        r,
        [bold("/usr/lib/systemd/system/hostedscan-agent.service")],
        "The daemon, sandboxed, with no capability; change it with a drop-in (systemctl edit \
         hostedscan-agent), for example ReadWritePaths= for a watch directory outside the \
         state directory.",
    );
    item(
        r,
        [bold(
            "/usr/lib/systemd/system/hostedscan-agent-once.service, hostedscan-agent-once.timer",
        )],
        "An hourly --once pass instead of the daemon (the two conflict).",
    );
    item(
        r,
        [bold("/usr/share/hostedscan-agent/raw-sockets.conf")],
        "A drop-in granting CAP_NET_RAW for nmap SYN scans, inactive until copied into a \
         unit's .d/ directory.",
    );
    item(
        r,
        [bold("/usr/lib/sysusers.d/hostedscan-agent.conf")],
        "The system user and group hostedscan-agent.",
    );
    item(
        r,
        [bold(DOC)],
        "The full documentation: how it works, operations, scan jobs, security.",
    );
}

fn signals(r: &mut Roff) {
    r.control("SH", ["SIGNALS"]);
    item(
        r,
        [bold("SIGTERM"), roman(", "), bold("SIGINT")],
        "Stop: no new work is taken, uploads in flight may finish for 15 s, running scanners \
         get SIGTERM (their process group) and SIGKILL 30 s later. A second signal exits at \
         once (0 for the daemon, 75 for --once). Queued files stay queued either way.",
    );
    item(
        r,
        [bold("SIGHUP")],
        "The daemon reads its configuration file again and takes it if it is valid and needs \
         no restart (a changed agent.state_dir or api.url does); otherwise it keeps the \
         previous one. Its answer goes to reload.json, which hostedscan-agent reload (and so \
         systemctl reload) waits for. A --once pass ignores SIGHUP.",
    );
    r.control("PP", []);
    r.text([roman(
        "A kill -9 at any moment loses nothing: every move is a rename after an fsync, and \
         the next start uploads whatever was admitted.",
    )]);
}

fn configuration(r: &mut Roff) {
    r.control("SH", ["CONFIGURATION"]);
    r.text([
        roman("One TOML file, "),
        bold(DEFAULT_CONFIG_PATH),
        roman(
            ", annotated with every key and its default. Unknown keys are an error; \
             hostedscan-agent check-config lists every problem at once, each with its key. \
             Durations are written like \"90s\", \"5m\", \"1h 30m\", \"30d\"; sizes like \
             \"512MiB\". The main keys:",
        ),
    ]);
    let sections: [(&str, &[(&str, &str)]); 6] = [
        (
            "[api]",
            &[
                ("url", "the API (https://api.hostedscan.com/v1)"),
                ("key_file", "a root-only file holding the API key"),
                (
                    "key",
                    "the key itself (avoid: prefer key_file or the credential)",
                ),
                ("timeout", "one whole request, body included (10m)"),
                ("connect_timeout", "the TCP and TLS connection (10s)"),
                ("proxy", "an HTTP(S) proxy for the API"),
                (
                    "ca_file",
                    "an extra CA (PEM) to trust; certificates are always verified",
                ),
            ],
        ),
        (
            "[source]",
            &[
                (
                    "name",
                    "the IMPORTED source reports go to, found or created once \
                     (\"Internal scans ({hostname})\")",
                ),
                ("id", "an existing source's id instead"),
            ],
        ),
        (
            "[agent]",
            &[
                ("state_dir", STATE_DIR),
                ("upload_concurrency", "uploads at once (2)"),
                ("max_file_size", "larger files are refused unread (2GiB)"),
                (
                    "settle",
                    "a file must be unchanged this long before it is read (5s)",
                ),
                (
                    "incomplete_grace",
                    "a truncated report younger than this is still being written (10m)",
                ),
                (
                    "rescan_interval",
                    "the full scan of every watch directory (60s)",
                ),
                ("after_upload", "archive, delete or keep (archive)"),
                ("archive_retention", "how long archive/ keeps a file (30d)"),
                (
                    "rejected_retention",
                    "how long rejected/ and failed/ keep a file (30d)",
                ),
                ("rejected_max_size", "the most rejected/ may hold (2GiB)"),
                (
                    "min_free_space",
                    "below this much free space, admission pauses (1GiB, or 5% of the file \
                     system if less)",
                ),
                ("max_concurrent_jobs", "scan jobs running at once (1)"),
            ],
        ),
        (
            "[retry]",
            &[
                ("initial_backoff", "the first retry delay (1s)"),
                ("max_backoff", "the longest (5m)"),
                (
                    "once_deadline",
                    "how long --once keeps retrying before it exits 75 (10m)",
                ),
            ],
        ),
        (
            "[metrics]",
            &[(
                "listen",
                "where Prometheus metrics are served at /metrics, for example \
                 127.0.0.1:9464 (off unless set)",
            )],
        ),
        (
            "[[watch]]",
            &[
                ("path", "a directory to watch (repeat [[watch]] for more)"),
                (
                    "scan_type",
                    "auto, or NMAP, NMAP_UDP, OPENVAS, OWASP_ZAP, OWASP_ZAP_ACTIVE, SSLYZE",
                ),
                ("include, exclude", "globs on the file name"),
                ("recursive", "also watch subdirectories (false)"),
                (
                    "target",
                    "ZAP uploads: the target (default: the report's first site)",
                ),
                (
                    "accept_partial",
                    "upload stopped or interrupted scans too (false)",
                ),
                ("source, source_id", "this directory's own IMPORTED source"),
            ],
        ),
    ];
    for (section, keys) in sections {
        r.control("TP", []);
        r.text([bold(section)]);
        for (i, (key, what)) in keys.iter().enumerate() {
            if i > 0 {
                r.control("br", []);
            }
            // One bold word per key ("include, exclude"), as tests/it/manpage.rs looks for.
            let mut line: Vec<Inline> = Vec::new();
            for (j, k) in key.split(", ").enumerate() {
                if j > 0 {
                    line.push(roman(", "));
                }
                line.push(bold(k));
            }
            line.extend([roman(": "), roman(*what)]);
            r.text(line);
        }
    }
    r.control("TP", []);
    r.text([bold("[[job]]")]);
    r.text([
        roman(
            "A scheduled scan (scanner = nmap, zap, openvas, sslyze or command; schedule, \
               targets, timeout, source...), uploaded like a dropped file; ",
        ),
        bold("--once --job"),
        roman(" "),
        italic("NAME"),
        roman(" runs one now. See the file's [[job]] comments and \"Scan jobs\" in "),
        roman(DOC),
        roman("."),
    ]);
    r.control("PP", []);
    r.text([roman(
        "Every key can be overridden from the environment (see ENVIRONMENT). After an edit: \
         systemctl reload hostedscan-agent.",
    )]);
}

fn see_also(r: &mut Roff, main: bool) {
    r.control("SH", ["SEE ALSO"]);
    let mut refs: Vec<Inline> = Vec::new();
    if !main {
        refs.extend([bold("hostedscan-agent"), roman("(1), ")]);
    }
    refs.extend([
        bold("systemctl"),
        roman("(1), "),
        bold("journalctl"),
        roman("(1), "),
        bold("systemd.exec"),
        roman("(5), "),
        roman(DOC),
        roman(", and the annotated "),
        roman(DEFAULT_CONFIG_PATH),
        roman("."),
    ]);
    r.text(refs);
}
