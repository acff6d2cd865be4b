//! A gvmd stand-in speaking GMP on a Unix socket, to try `openvas` jobs by hand, offline:
//!
//!     cargo run --example gmp_standin -- DIR [RESULTS] [PADDING]
//!
//! Listens on DIR/gvmd.sock; the login is "admin" with the password "secret". Each started
//! task runs for two status polls and ends Done, with RESULTS results (default 3) of about
//! PADDING extra bytes each (default 0), streamed as gvmd would. Every command is printed.
//! See standins/src/gmp/mod.rs for what it follows of gvmd.

use std::path::PathBuf;
use std::time::Duration;

use hostedscan_standins::gmp;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: gmp_standin DIR [RESULTS] [PADDING]");
        std::process::exit(64);
    };
    std::fs::create_dir_all(&dir).expect("cannot create DIR");
    let gvmd = gmp::GmpStandIn::start(&dir).await;
    if let Some(n) = args.get(1).and_then(|n| n.parse().ok()) {
        gvmd.set_results(n);
    }
    if let Some(n) = args.get(2).and_then(|n| n.parse().ok()) {
        gvmd.set_result_padding(n);
    }
    println!(
        "gvmd stand-in on {} (user {:?}, password {:?}); Ctrl-C stops it",
        gvmd.socket().display(),
        gmp::DEFAULT_USER,
        gmp::DEFAULT_PASSWORD
    );
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let cmds = gvmd.commands();
        for c in cmds.iter().skip(seen) {
            println!("{c}");
        }
        seen = cmds.len();
    }
}
