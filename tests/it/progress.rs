//! The progress display of `--once` as a person sees it: the built binary under a real
//! pseudo-terminal (util-linux `script`), against the stand-in reading uploads at a slow
//! link's pace, and what it drew read back through a terminal emulator (`vt100`): the files
//! admitted, a large upload's bytes and rate, a job's elapsed time, nothing of it left on the
//! screen at the end, log lines never torn by it, and the summary as it is without a terminal.
//! Without a terminal, under systemd, with `-q` or JSON logs, it is never drawn.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::*;

const ROWS: u16 = 200;
const COLS: u16 = 250;

/// Whether util-linux `script` is here: CI installs it (`.ci/run`) and must not skip.
fn have_script() -> bool {
    let found = Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "util-linux `script` is missing under CI (.ci/run installs bsdutils)"
        );
        eprintln!("skipping: util-linux `script` is not installed (Debian: bsdutils)");
    }
    found
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Longer API timeout and pass deadline than the harness's: a slow upload must finish.
fn patient(home: &Home) {
    let cfg = std::fs::read_to_string(&home.config)
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"60s\"")
        .replace("once_deadline = \"5s\"", "once_deadline = \"60s\"");
    std::fs::write(&home.config, cfg).unwrap();
}

/// `hostedscan-agent -c CONFIG ARGS` on a pseudo-terminal of [`ROWS`] x [`COLS`] with a clean
/// environment (`TERM=xterm` plus `env`), stdout also to `stdout_to` when given. Returns the
/// exit code and everything the terminal received.
fn on_a_terminal(
    home: &Home,
    args: &[&str],
    env: &[(&str, &str)],
    stdout_to: Option<&Path>,
) -> (i32, Vec<u8>) {
    let mut cmd = format!(
        "stty rows {ROWS} cols {COLS} 2>/dev/null; exec {} -c {}",
        quote(env!("CARGO_BIN_EXE_hostedscan-agent")),
        quote(&home.config.display().to_string())
    );
    for a in args {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    if let Some(p) = stdout_to {
        cmd.push_str(&format!(" > {}", quote(&p.display().to_string())));
    }
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), out.stdout)
}

/// What a terminal of [`ROWS`] x [`COLS`] shows once it has received `raw`: one string per
/// line (a line wider than the terminal joined again), trailing blank lines dropped.
fn screen(raw: &[u8]) -> Vec<String> {
    let nz = |n| std::num::NonZeroU16::new(n).unwrap();
    let mut term = vt100::Parser::new(nz(ROWS), nz(COLS), 1000);
    term.process(raw);
    term.screen()
        .contents()
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect()
}

/// The summary with each result id (the stand-in makes new ones) replaced.
fn masked(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l.rfind(" result ") {
            Some(i) => format!("{} result <id>", &l[..i]),
            None => l.clone(),
        })
        .collect()
}

/// What the display's first line says (never in a log line or the summary).
const HEADLINE: &str = " admitted, ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_shows_its_bytes_and_rate_then_leaves_the_summary_alone() {
    if !have_script() {
        return;
    }
    let api = StandIn::start().await;
    // A slow link: the 16 MiB report takes a few seconds to go (more than the sockets hold).
    api.set_upload_rate(Some(6 << 20));
    api.set_keep_bytes(false);
    let big = distinct_report(1, 16 << 20);
    let homes: Vec<Home> = (0..2)
        .map(|_| {
            let home = Home::new(&api.url(), "", "");
            patient(&home);
            home.drop_file("big-scan.xml", &big);
            // Rejected while the display is up: its WARN line must not tear it.
            home.drop_file("bad.xml", &fixture_bytes("nmap-error-localhost.xml"));
            home
        })
        .collect();
    let (piped, (code, raw)) = tokio::task::spawn_blocking(move || {
        (
            homes[0].cli(&["--once"]),
            on_a_terminal(&homes[1], &["--once"], &[], None),
        )
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&raw);

    // Without a terminal: the summary, and not a trace of the display or of escapes.
    assert_eq!(piped.code, 65, "{piped:?}");
    for out in [&piped.stdout, &piped.stderr] {
        assert!(!out.contains('\u{1b}'), "an escape sequence in:\n{out}");
        assert!(
            !out.contains(HEADLINE) && !out.contains("uploading"),
            "{out}"
        );
    }

    // On the terminal: what the pass is doing, while it does it.
    assert_eq!(code, 65, "{text}");
    assert!(text.contains("1 file admitted, 0 uploaded"), "{text}");
    assert!(text.contains("uploading big-scan.xml"), "{text}");
    assert!(text.contains("MiB/s, "), "no rate drawn:\n{text}");
    // Bytes sent out of the total, some of them between nothing and everything.
    let sent: Vec<&str> = text
        .match_indices("/16.00 MiB")
        .filter_map(|(i, _)| {
            let before = &text[..i];
            let unit = before.rfind(' ')?;
            let number = before[..unit].rfind([' ', '[', ']'])?;
            Some(before[number + 1..].trim())
        })
        .collect();
    assert!(
        sent.iter().any(|s| *s != "0 B" && *s != "16.00 MiB"),
        "no partial byte count drawn: {sent:?}\n{text}"
    );

    // At the end, the screen holds log lines and the summary: nothing of the display is left,
    // and every log line starts where a line starts (with its timestamp), none torn by a bar.
    let shown = screen(&raw);
    let summary: Vec<String> = piped.stdout.lines().map(String::from).collect();
    assert!(summary.len() >= 3, "{}", piped.stdout);
    let (logs, tail) = shown.split_at(shown.len().saturating_sub(summary.len()));
    assert_eq!(
        masked(tail),
        masked(&summary),
        "the summary differs from the one without a terminal; the screen:\n{}",
        shown.join("\n")
    );
    for l in logs.iter().filter(|l| !l.is_empty()) {
        assert!(
            l.starts_with("20") && !l.contains(HEADLINE) && !l.contains("uploading"),
            "left on the screen or torn: {l:?}; the screen:\n{}",
            shown.join("\n")
        );
    }
    assert!(
        logs.iter().any(|l| l.contains("bad.xml")),
        "{}",
        shown.join("\n")
    );
    assert_eq!(api.uploads().len(), 2, "both passes uploaded the report");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_shows_its_elapsed_time() {
    if !have_script() {
        return;
    }
    let api = StandIn::start().await;
    let report = fixture("nmap-tcp-localhost.xml");
    let job = format!(
        r#"
[[job]]
name = "slow-scan"
scanner = "command"
schedule = "@daily"
command = ["sh", "-c", "sleep 1.5; cat {} > \"$0\"", "{{output}}"]
"#,
        quote(&report.display().to_string())
    );
    let home = Home::new(&api.url(), "", &job);
    let (code, raw) = tokio::task::spawn_blocking(move || {
        on_a_terminal(&home, &["--once", "--job", "slow-scan"], &[], None)
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("running job slow-scan 00:00:01"), "{text}");
    let shown = screen(&raw).join("\n");
    assert!(
        !shown.contains("running job"),
        "left on the screen:\n{shown}"
    );
    assert!(shown.contains("uploaded 1, rejected 0"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_drawn_for_systemd_quiet_json_or_a_redirected_stdout() {
    if !have_script() {
        return;
    }
    let api = StandIn::start().await;
    let report = nmap_report();
    // What is different each time, the arguments, the environment, and whether stdout goes to
    // a file.
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], bool);
    let cases: &[Case] = &[
        // The control: the same pass on a plain terminal does draw it.
        ("a terminal", &["--once"], &[], false),
        (
            "INVOCATION_ID",
            &["--once"],
            &[("INVOCATION_ID", "1f2e")],
            false,
        ),
        (
            "JOURNAL_STREAM",
            &["--once"],
            &[("JOURNAL_STREAM", "8:1234")],
            false,
        ),
        ("-q", &["--once", "-q"], &[], false),
        (
            "--log-format json",
            &["--once", "--log-format", "json"],
            &[],
            false,
        ),
        ("TERM=dumb", &["--once"], &[("TERM", "dumb")], false),
        ("stdout to a file", &["--once"], &[], true),
    ];
    for (what, args, env, redirect) in cases {
        let home = Home::new(&api.url(), "", "");
        home.drop_file("scan.xml", &report);
        let summary = home.dir.path().join("summary.txt");
        let (code, raw) = {
            let (home, summary) = (&home, &summary);
            tokio::task::block_in_place(|| {
                on_a_terminal(home, args, env, redirect.then_some(summary.as_path()))
            })
        };
        let text = String::from_utf8_lossy(&raw);
        assert_eq!(code, 0, "{what}: {text}");
        let drawn = text.contains(HEADLINE);
        assert_eq!(
            drawn,
            *what == "a terminal",
            "{what}: drawn: {drawn}\n{text}"
        );
        if *redirect {
            let s = std::fs::read_to_string(&summary).unwrap();
            assert!(
                s.contains("uploaded 1, rejected 0") && !s.contains('\u{1b}'),
                "{s}"
            );
        }
    }
}
