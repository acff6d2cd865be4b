//! The agent's main job end to end, offline, in one command:
//!
//!     cargo run --example demo
//!
//! It starts a HostedScan stand-in on 127.0.0.1, makes a temporary agent home, puts example
//! reports in its watch directory (a live Nmap scan of a port this demo opens on 127.0.0.1 when
//! nmap is installed, plus the bundled ZAP, SSLyze and OpenVAS fixtures and a few broken files),
//! runs one pass of the real agent (`--once`), and prints what was uploaded, what was rejected
//! and why, and where every file ended up.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hostedscan_agent::config::{Config, Env};
use hostedscan_standins::api::StandIn;
use tokio_util::sync::CancellationToken;

const KEY: &str = "demo-key";

fn put(inbox: &Path, name: &str, bytes: &[u8]) {
    let p = inbox.join(name);
    std::fs::write(&p, bytes).unwrap();
    // Written a while ago: settled, and a truncated one counts as abandoned, not in progress.
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

fn live_nmap() -> Option<Vec<u8>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    let port = listener.local_addr().ok()?.port().to_string();
    let out = std::process::Command::new("nmap")
        .args(["-n", "-Pn", "-sT", "-p", &port, "-oX", "-", "127.0.0.1"])
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

#[tokio::main]
async fn main() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let fixture = |n: &str| std::fs::read(fixtures.join(n)).unwrap();

    let api = StandIn::start_with_key(KEY).await;
    let home = tempfile::tempdir().unwrap();
    let inbox = home.path().join("inbox");
    let state = home.path().join("state");
    std::fs::create_dir_all(&inbox).unwrap();
    let config = home.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nurl = \"{}\"\nkey = \"{KEY}\"\n\n[source]\nname = \"Demo ({{hostname}})\"\n\n[agent]\nstate_dir = \"{}\"\nsettle = \"1s\"\n\n[retry]\nonce_deadline = \"30s\"\n\n[[watch]]\npath = \"{}\"\n",
            api.url(),
            state.display(),
            inbox.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();

    println!("HostedScan stand-in listening at {}", api.url());
    println!("agent home {}\n", home.path().display());
    match live_nmap() {
        Some(xml) => {
            println!("ran: nmap -n -Pn -sT -p <a port this demo opened> -oX - 127.0.0.1");
            put(&inbox, "nmap-live-127.0.0.1.xml", &xml);
        }
        None => {
            println!(
                "nmap is not installed (apt-get install nmap): using the bundled Nmap fixture"
            );
            put(
                &inbox,
                "nmap-live-127.0.0.1.xml",
                &fixture("nmap-tcp-localhost.xml"),
            );
        }
    }
    for n in [
        "nmap-udp-localhost.xml",
        "zap-intranet.json",
        "zap-intranet.xml",
        "sslyze-localhost.json",
        "openvas-localhost.xml",
    ] {
        put(&inbox, n, &fixture(n));
    }
    // What goes wrong in real life:
    put(
        &inbox,
        "nmap-failed-script.xml",
        &fixture("nmap-error-localhost.xml"),
    );
    let tcp = fixture("nmap-tcp-localhost.xml");
    put(&inbox, "nmap-interrupted.xml", &tcp[..tcp.len() * 2 / 3]);
    put(&inbox, "scan.gnmap", b"# Nmap 7.93 scan initiated as: nmap -oG scan.gnmap 127.0.0.1\nHost: 127.0.0.1 ()\tStatus: Up\n");
    put(&inbox, "empty-sslyze.json", b"[]");
    println!(
        "dropped {} files into {}\n",
        std::fs::read_dir(&inbox).unwrap().count(),
        inbox.display()
    );

    let cfg = Config::load(&config, &Env::new()).unwrap();
    let report = hostedscan_agent::run_once(cfg, &[], CancellationToken::new())
        .await
        .unwrap();

    println!("== what the agent did (the summary `hostedscan-agent --once` prints)");
    print!("{}", report.summary(false));

    println!("\n== what HostedScan received");
    for s in api.sources() {
        println!(
            "source   {}  {:?} (IMPORTED, created once and remembered in state/source.json)",
            s.id, s.name
        );
    }
    for u in api.uploads() {
        println!(
            "result   {:<26} {:<9} {:>6} bytes  sha256 {}…{}",
            u.file_name.as_deref().unwrap_or("-"),
            u.scan_type,
            u.bytes.len(),
            &u.sha256[..12],
            u.target
                .as_ref()
                .map(|t| format!("  target {t}"))
                .unwrap_or_default()
        );
    }

    println!("\n== why the rejected files were rejected (state/rejected/*.reason.json)");
    let mut reasons: Vec<_> = std::fs::read_dir(state.join("rejected"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".reason.json"))
        .collect();
    reasons.sort_by_key(|e| e.file_name());
    for e in reasons {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        let reason = v["reason"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let reason: String = reason.chars().take(220).collect();
        println!(
            "{:<26} [{}] {reason}",
            e.file_name()
                .to_string_lossy()
                .trim_end_matches(".reason.json"),
            v["kind"].as_str().unwrap_or_default()
        );
    }

    println!("\n== where everything is now");
    for sub in [
        "inbox",
        "state/queue",
        "state/failed",
        "state/rejected",
        "state/archive",
    ] {
        let n = walk(&home.path().join(sub));
        println!("{sub:<15} {n} file(s)");
    }
    let code = report.exit_code();
    println!(
        "\nexit code of this pass: {code} (65 = some input was rejected; see Exit codes in README.md)"
    );
    api.shutdown().await;
}

fn walk(p: &Path) -> usize {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
