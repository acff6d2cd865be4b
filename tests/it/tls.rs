//! TLS: certificates and host names are always verified, and `api.ca_file` adds trust. The
//! server is `openssl s_server` on 127.0.0.1 with a certificate from a CA made for the test; it
//! answers every request with an HTML status page, which the agent reports as "an HTML page"
//! only when the TLS handshake succeeded.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::*;

pub(crate) struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A CA, and a certificate for `localhost` signed by it. None when openssl is missing.
pub(crate) fn make_pki(dir: &std::path::Path) -> Option<()> {
    std::fs::write(dir.join("leaf.ext"), "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n").ok()?;
    let ok = openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=hostedscan-agent test CA",
        ],
    ) && openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
    ) && openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
    ok.then_some(())
}

pub(crate) fn start_server(dir: &std::path::Path) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "leaf.pem",
            "-key",
            "leaf.key",
            "-www",
            "-quiet",
        ])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, port)
}

#[test]
fn an_untrusted_certificate_is_refused_and_ca_file_adds_trust() {
    let pki = tempfile::tempdir().unwrap();
    if make_pki(pki.path()).is_none() {
        eprintln!("skipping: openssl is not installed");
        return;
    }
    let (_server, port) = start_server(pki.path());
    let home = Home::new(&format!("https://localhost:{port}/v1"), "", "");

    let out = home.cli(&["test-connection"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(
        out.stderr.to_lowercase().contains("certificate"),
        "an unknown CA must fail the handshake: {}",
        out.stderr
    );

    let cfg = std::fs::read_to_string(&home.config).unwrap().replace(
        "[api]\n",
        &format!(
            "[api]\nca_file = \"{}\"\n",
            pki.path().join("ca.pem").display()
        ),
    );
    std::fs::write(&home.config, cfg).unwrap();
    let out = home.cli(&["test-connection"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(
        out.stderr.contains("HTML page"),
        "with the CA trusted, the handshake succeeds and the (non-API) answer is seen: {}",
        out.stderr
    );

    // The name is checked too: the same trusted certificate, reached as 127.0.0.1, is refused.
    let cfg = std::fs::read_to_string(&home.config).unwrap().replace(
        &format!("https://localhost:{port}"),
        &format!("https://127.0.0.1:{port}"),
    );
    std::fs::write(&home.config, cfg).unwrap();
    let out = home.cli(&["test-connection"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(
        !out.stderr.contains("HTML page"),
        "a certificate for another name must not be accepted: {}",
        out.stderr
    );
}
