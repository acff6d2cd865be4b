//! The man pages and shell completions that build.rs generates from the clap definitions, as
//! the packages ship them (packaging/build.sh copies the same files): every command and every
//! long option that the binary's own `--help` prints is in the pages, so a new option without
//! its page fails here; the operator sections are there and agree with the code (every exit
//! code of src/exit.rs, every key of config/agent.toml's main sections, the stop's grace
//! periods); `man` renders every page without a warning; the bash completion loads and
//! completes commands, options and their values.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where build.rs wrote them (cargo gives every target of the package its build script's
/// OUT_DIR).
fn gen_dir() -> PathBuf {
    PathBuf::from(env!("OUT_DIR"))
}

fn page_path(name: &str) -> PathBuf {
    gen_dir().join("man").join("man1").join(format!("{name}.1"))
}

fn page(name: &str) -> String {
    let p = page_path(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The roff source as words: escapes and font changes taken out.
fn plain(roff: &str) -> String {
    roff.replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\fP", "")
        .replace("\\&", "")
}

/// The roff source of section `name` (from its `.SH` line to the next).
fn section<'a>(roff: &'a str, name: &str) -> &'a str {
    let head = if name.contains(' ') {
        format!(".SH \"{name}\"\n")
    } else {
        format!(".SH {name}\n")
    };
    let start = roff
        .find(&head)
        .unwrap_or_else(|| panic!("no {name} section in:\n{roff}"))
        + head.len();
    let end = roff[start..]
        .find("\n.SH ")
        .map_or(roff.len(), |i| start + i);
    &roff[start..end]
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The commands `--help` lists (clap's "Commands:" block), `help` left out.
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

/// Every `--long` option of an option line of `--help`.
fn long_options(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help.lines().filter(|l| l.trim_start().starts_with('-')) {
        for word in line.split_whitespace() {
            if let Some(name) = word.strip_prefix("--") {
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if !name.is_empty() {
                    out.insert(format!("--{name}"));
                }
            }
        }
    }
    out
}

/// Each option is an item of OPTIONS (`.TP`, then the option), not only named in the synopsis.
fn described(page: &str, opts: &BTreeSet<String>, name: &str) {
    let items = plain(section(page, "OPTIONS"));
    for o in opts {
        let found = items.split(".TP\n").any(|item| {
            let head = item.lines().next().unwrap_or("");
            head.split([' ', ',']).any(|w| w == o)
        });
        assert!(
            found,
            "{name} does not describe {o} under OPTIONS:\n{items}"
        );
    }
}

#[test]
fn every_command_and_option_of_help_is_in_the_man_pages() {
    let top = help(&["--help"]);
    let cmds = commands(&top);
    assert!(
        cmds.len() >= 6 && cmds.iter().any(|c| c == "status"),
        "commands not found in --help:\n{top}"
    );
    let main = page("hostedscan-agent");
    let opts = long_options(&top);
    assert!(
        opts.contains("--once") && opts.contains("--config"),
        "{opts:?}"
    );
    described(&main, &opts, "hostedscan-agent.1");
    let listed = plain(section(&main, "COMMANDS"));
    for c in &cmds {
        assert!(
            listed.contains(&format!("hostedscan-agent-{c}(1)")),
            "COMMANDS lacks {c}:\n{listed}"
        );
        let sub = page(&format!("hostedscan-agent-{c}"));
        let synopsis = plain(section(&sub, "SYNOPSIS"));
        assert!(
            synopsis.contains(&format!("hostedscan-agent {c}")),
            "the page of {c} has no synopsis for it:\n{synopsis}"
        );
        let opts = long_options(&help(&[c, "--help"]));
        assert!(opts.contains("--config"), "{c}: {opts:?}");
        described(&sub, &opts, &format!("hostedscan-agent-{c}.1"));
    }
    // No page for a command that no longer exists (the packages ship every page there is).
    let dir = page_path("hostedscan-agent")
        .parent()
        .unwrap()
        .to_path_buf();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let cmd = name
            .strip_suffix(".1")
            .and_then(|n| n.strip_prefix("hostedscan-agent"))
            .unwrap_or_else(|| panic!("unexpected file {name} in {}", dir.display()));
        assert!(
            cmd.is_empty() || cmds.iter().any(|c| cmd == format!("-{c}")),
            "{name}: no such command in --help"
        );
    }
}

#[test]
fn the_main_page_has_what_an_operator_needs_offline() {
    let main = page("hostedscan-agent");
    let heads: Vec<&str> = main
        .lines()
        .filter_map(|l| l.strip_prefix(".SH "))
        .map(|h| h.trim_matches('"'))
        .collect();
    for want in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "SIGNALS",
        "CONFIGURATION",
        "SEE ALSO",
    ] {
        assert!(heads.contains(&want), "no {want} section: {heads:?}");
    }

    // Every exit code of src/exit.rs, each as an item of its own.
    let exit_rs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/exit.rs")).unwrap();
    let codes: Vec<&str> = exit_rs
        .lines()
        .filter(|l| l.starts_with("pub const "))
        .filter_map(|l| l.rsplit_once("= ")?.1.strip_suffix(';'))
        .collect();
    assert!(codes.len() >= 7, "{codes:?}");
    let status = plain(section(&main, "EXIT STATUS"));
    for c in &codes {
        assert!(
            status.contains(&format!(".TP\n{c}\n")),
            "EXIT STATUS lacks {c}:\n{status}"
        );
    }

    let env = plain(section(&main, "ENVIRONMENT"));
    for v in [
        "HOSTEDSCAN_AGENT_CONFIG",
        "HOSTEDSCAN_API_KEY",
        "CREDENTIALS_DIRECTORY",
        "HOSTEDSCAN_AGENT__SECTION__KEY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "RUST_LOG",
    ] {
        assert!(
            env.contains(&format!(".TP\n{v}\n")),
            "ENVIRONMENT lacks {v}"
        );
    }

    let files = plain(section(&main, "FILES"));
    for f in [
        hostedscan_agent::cli::DEFAULT_CONFIG_PATH,
        "/var/lib/hostedscan-agent",
        "queue/",
        "rejected/",
        "failed/",
        "archive/",
        "/usr/lib/systemd/system/hostedscan-agent.service",
        "/usr/share/doc/hostedscan-agent/README.md",
    ] {
        assert!(files.contains(&format!(".TP\n{f}")), "FILES lacks {f}");
    }

    let signals = plain(section(&main, "SIGNALS"));
    for s in ["SIGTERM", "SIGINT", "SIGHUP"] {
        assert!(signals.contains(s), "SIGNALS lacks {s}");
    }
    let grace = hostedscan_agent::shutdown::GRACE.as_secs();
    let kill = hostedscan_agent::jobs::runner::KILL_GRACE.as_secs();
    assert!(
        signals.contains(&format!("for {grace} s")) && signals.contains(&format!("{kill} s later")),
        "SIGNALS must give the stop's grace ({grace} s) and the scanners' ({kill} s):\n{signals}"
    );
}

/// Every key of config/agent.toml's sections but [[job]] (whose keys are per scanner) is named,
/// in bold, under its section in CONFIGURATION.
#[test]
fn configuration_names_every_key_of_the_annotated_file() {
    let toml =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agent.toml"))
            .unwrap();
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut current = String::new();
    for line in toml.lines() {
        let l = line.trim_start_matches('#').trim();
        if l.starts_with('[') {
            current = l.split_whitespace().next().unwrap_or("").to_owned();
            if current == "[[job]]" {
                break;
            }
            continue;
        }
        let Some((key, _)) = l.split_once(" = ") else {
            continue;
        };
        if !current.is_empty()
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            keys.push((current.clone(), key.to_owned()));
        }
    }
    assert!(
        keys.len() > 25,
        "keys not found in config/agent.toml: {keys:?}"
    );

    let main = page("hostedscan-agent");
    let conf = section(&main, "CONFIGURATION");
    // Each section is one item: `.TP`, then `\fB[name]\fR`, then its keys.
    let items: Vec<&str> = conf.split(".TP\n").collect();
    for (sect, key) in &keys {
        let head = format!("\\fB{sect}\\fR\n");
        let item = items
            .iter()
            .find(|i| i.starts_with(&head))
            .unwrap_or_else(|| panic!("CONFIGURATION has no {sect}:\n{conf}"));
        let bold_key = format!("\\fB{key}\\fR");
        assert!(
            item.contains(&bold_key),
            "CONFIGURATION's {sect} does not name {key}:\n{item}"
        );
    }
}

/// Whether a tool is here; a missing one fails under CI (`.ci/run` installs it) and skips,
/// saying so, elsewhere.
fn have(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing under CI (.ci/run installs it)"
        );
        eprintln!("SKIP: {tool} not installed (apt-get install {package})");
    }
    found
}

#[test]
fn man_renders_every_page_without_a_warning() {
    if !have("man", "man-db") {
        return;
    }
    let dir = gen_dir().join("man");
    let pages: Vec<String> = std::fs::read_dir(dir.join("man1"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".1").unwrap().to_owned()
        })
        .collect();
    assert!(pages.len() >= 7, "{pages:?}");
    for p in &pages {
        // As `man hostedscan-agent-status` finds it once installed: by name, in a man1/.
        let out = Command::new("man")
            .args(["--warnings", "-M"])
            .arg(&dir)
            .arg(p)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "man {p}: {err}");
        assert!(err.trim().is_empty(), "man {p} warns:\n{err}");
        assert!(text.contains("SYNOPSIS"), "man {p}:\n{text}");
        if p == "hostedscan-agent" {
            for want in [
                "EXIT STATUS",
                "SIGNALS",
                "hostedscan-agent-status(1)",
                "--once",
            ] {
                assert!(text.contains(want), "man {p} does not show {want}:\n{text}");
            }
        }
    }
}

/// Runs the generated bash completion as bash-completion would: the function that `complete`
/// registered, called with COMP_WORDS and COMP_CWORD for `line` (completing its last word).
fn complete(line: &str) -> Vec<String> {
    let script = gen_dir().join("completions").join("hostedscan-agent.bash");
    assert!(script.is_file(), "{} missing", script.display());
    let words: Vec<&str> = line.split(' ').collect();
    let program = r#"
source "$1"
spec=$(complete -p hostedscan-agent) || { echo "no completion registered" >&2; exit 1; }
fn=$(sed -E 's/.* -F ([^ ]+) .*/\1/' <<<"$spec")
shift
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$fn" hostedscan-agent "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", program, "bash"])
        .arg(&script)
        .args(&words)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    got.sort();
    got
}

#[test]
fn the_bash_completion_completes_commands_options_and_values() {
    assert_eq!(complete("hostedscan-agent sta"), ["status"]);
    assert_eq!(complete("hostedscan-agent req"), ["requeue"]);
    assert_eq!(complete("hostedscan-agent --on"), ["--once"]);
    assert_eq!(complete("hostedscan-agent status --fo"), ["--format"]);
    assert_eq!(
        complete("hostedscan-agent status --format "),
        ["json", "text"]
    );
    assert_eq!(complete("hostedscan-agent requeue --rej"), ["--rejected"]);
}

#[test]
fn the_zsh_and_fish_completions_are_generated() {
    let dir = gen_dir().join("completions");
    let zsh = std::fs::read_to_string(dir.join("_hostedscan-agent")).unwrap();
    assert!(zsh.starts_with("#compdef hostedscan-agent"), "{zsh}");
    let fish = std::fs::read_to_string(dir.join("hostedscan-agent.fish")).unwrap();
    for c in ["check-config", "status", "requeue", "reload"] {
        assert!(zsh.contains(c) && fish.contains(c), "{c} missing");
    }
    assert!(fish.contains("complete -c hostedscan-agent"), "{fish}");
}
