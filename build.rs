//! The build script: the man pages and shell completions, generated from the clap definitions
//! of src/cli.rs (compiled here as they are, so they cannot drift from what the binary parses)
//! and the operator sections of man/sections.rs, into OUT_DIR:
//!
//!   man/man1/hostedscan-agent.1, man/man1/hostedscan-agent-<command>.1   (roff, uncompressed;
//!                                    `man -M OUT_DIR/man hostedscan-agent` reads them)
//!   completions/hostedscan-agent.bash, completions/_hostedscan-agent (zsh),
//!   completions/hostedscan-agent.fish
//!
//! packaging/build.sh takes them from there (the `out_dir` of cargo's build-script-executed
//! message) into the packages; tests/it/manpage.rs finds them through `env!("OUT_DIR")`. It
//! runs again only when one of the files it reads changes, not on every build.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::{Generator, Shell};
use clap_mangen::roff::Roff;
use clap_mangen::Man;

// The binary reads the parsed values; here only the definitions matter.
#[allow(dead_code)]
#[path = "src/cli.rs"]
mod cli;
#[path = "src/exit.rs"]
mod exit;
#[path = "man/sections.rs"]
mod sections;

const BIN: &str = "hostedscan-agent";

fn main() -> io::Result<()> {
    for f in ["build.rs", "src/cli.rs", "src/exit.rs", "man/sections.rs"] {
        println!("cargo:rerun-if-changed={f}");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or(io::Error::new(
        io::ErrorKind::NotFound,
        "OUT_DIR is not set: run by cargo only",
    ))?);
    man_pages(&out.join("man").join("man1"))?;
    completions(&out.join("completions"))
}

/// hostedscan-agent.1 (options, commands, then the operator sections) and one page per command
/// (`help` left out: it is not a command an operator looks up).
fn man_pages(dir: &Path) -> io::Result<()> {
    // Emptied first: the page of a command renamed or removed must not stay to be packaged.
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(dir)?;
    let mut cmd = cli::Cli::command()
        .disable_help_subcommand(true)
        .subcommand_help_heading("COMMANDS");
    cmd.build();
    let page = |man: &Man, command: bool| -> io::Result<Vec<u8>> {
        let mut w = Vec::new();
        man.render_title(&mut w)?;
        roff(&mut w, sections::layout)?;
        man.render_name_section(&mut w)?;
        man.render_synopsis_section(&mut w)?;
        man.render_description_section(&mut w)?;
        if !command {
            roff(&mut w, sections::description)?;
        }
        man.render_options_section(&mut w)?;
        if command {
            roff(&mut w, sections::command_page)?;
        } else {
            man.render_subcommands_section(&mut w)?;
            roff(&mut w, sections::main_page)?;
            man.render_version_section(&mut w)?;
        }
        Ok(one_preamble(w))
    };
    let source = format!("{BIN} {}", env!("CARGO_PKG_VERSION"));
    let man = Man::new(cmd.clone()).manual("User Commands");
    std::fs::write(dir.join(man.get_filename()), page(&man, false)?)?;
    for sub in cmd.get_subcommands() {
        let man = Man::new(sub.clone())
            .manual("User Commands")
            .source(source.as_str());
        std::fs::write(dir.join(man.get_filename()), page(&man, true)?)?;
    }
    Ok(())
}

fn roff(w: &mut Vec<u8>, sections: fn(&mut Roff)) -> io::Result<()> {
    let mut r = Roff::new();
    sections(&mut r);
    r.to_writer(w)
}

/// Each rendered piece starts with the same two-line preamble (the apostrophe string): keep the
/// first only.
fn one_preamble(page: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&page);
    let preamble = Roff::new().render();
    match text.strip_prefix(preamble.as_str()) {
        Some(rest) => format!("{preamble}{}", rest.replace(preamble.as_str(), "")).into_bytes(),
        None => page,
    }
}

fn completions(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cli::Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, BIN, &mut script);
        if shell == Shell::Bash {
            script = bash_hyphen_fix(&script);
        }
        std::fs::write(dir.join(shell.file_name(BIN)), script)?;
    }
    Ok(())
}

/// clap_complete's bash script completes nothing after a command when the program's name holds
/// a `-` (clap-rs/clap#6421, open in clap_complete 4.6.12): the loop that finds the command
/// spells its state `hostedscan__agent__subcmd__status`, the case arms
/// `hostedscan__subcmd__agent__subcmd__status`. Spell the arms as the loop does (nothing to
/// replace once it is fixed upstream; tests/it/manpage.rs completes a command's options).
fn bash_hyphen_fix(script: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(script);
    text.replace(&BIN.replace('-', "__subcmd__"), &BIN.replace('-', "__"))
        .into_bytes()
}
