//! How a report comes into the agent's custody (issue 19): a copy-on-write clone where the file
//! system can make one (validated and hashed in the clone, so a writer who goes on changing the
//! original changes nothing the agent keeps or sends), the agent's own job output moved in
//! rather than copied, and a file from a watch directory never hard-linked or renamed in.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn inode(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

async fn cli_env(
    home: Home,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
) -> (Output, Home) {
    tokio::task::spawn_blocking(move || (home.cli_env(args, env), home))
        .await
        .unwrap()
}

/// The one archived file (after_upload = "archive", the default).
fn the_archived(home: &Home) -> PathBuf {
    let mut found = vec![];
    for day in std::fs::read_dir(home.state.join("archive"))
        .unwrap()
        .flatten()
    {
        for f in std::fs::read_dir(day.path()).unwrap().flatten() {
            found.push(f.path());
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_output_is_moved_into_custody_not_copied() {
    let api = StandIn::start().await;
    let tools = tempfile::tempdir().unwrap();
    let seen = tools.path().join("inode");
    let report = fixture("nmap-tcp-localhost.xml");
    let job = format!(
        r#"
[[job]]
name = "moved"
scanner = "command"
schedule = "@daily"
command = ["sh", "-c", "cat '{report}' > \"$0\" && stat -c %i \"$0\" > '{seen}'", "{{output}}"]
"#,
        report = report.display(),
        seen = seen.display()
    );
    let home = Home::new(&api.url(), "", &job);
    let (out, home) = cli_env(home, &["--once", "--job", "moved"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let ups = api.uploads();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].bytes, fixture_bytes("nmap-tcp-localhost.xml"));
    let written: u64 = std::fs::read_to_string(&seen)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let archived = the_archived(&home);
    assert_eq!(
        inode(&archived),
        written,
        "the file the scanner wrote is the one archived (moved, not copied)"
    );
    assert_eq!(
        std::fs::metadata(&archived).unwrap().nlink(),
        1,
        "no name left elsewhere"
    );
    assert_eq!(std::fs::read(&archived).unwrap(), ups[0].bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_file_is_copied_never_linked_or_renamed() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let report = distinct_report(1, 300_000);
    let original = home.drop_file("a.xml", &report);
    // A second name outside the watch directory keeps the original's inode to compare with.
    let kept = home.dir.path().join("kept.xml");
    std::fs::hard_link(&original, &kept).unwrap();
    let (out, home) = cli_env(home, &["--once"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(home.inbox_names().is_empty());
    let archived = the_archived(&home);
    assert_ne!(
        inode(&archived),
        inode(&kept),
        "the agent keeps its own inode"
    );
    assert_eq!(
        std::fs::metadata(&kept).unwrap().nlink(),
        1,
        "no name of the original is left in the state directory"
    );
    // Its writer goes on writing into the same inode: what the agent kept does not change.
    let f = std::fs::OpenOptions::new().write(true).open(&kept).unwrap();
    f.write_all_at(b"<!-- rewritten -->", 0).unwrap();
    drop(f);
    assert_eq!(std::fs::read(&archived).unwrap(), report);
    assert_eq!(api.uploads()[0].bytes, report);
}

/// A small XFS file system with reflinks, on a loop device in a private temporary directory,
/// unmounted on drop. `None` (with a message) when not root or the tools are missing, unless CI
/// is set: then it fails instead.
struct Xfs {
    dir: tempfile::TempDir,
}

impl Xfs {
    fn mount(why: &str) -> Option<Xfs> {
        let missing: Vec<&str> = ["mkfs.xfs", "filefrag", "mount", "umount"]
            .into_iter()
            .filter(|p| {
                !have(p)
                    && !Path::new("/usr/sbin").join(p).is_file()
                    && !Path::new("/sbin").join(p).is_file()
            })
            .collect();
        let problem = if !is_root() {
            Some("it needs root to mount a file system".to_string())
        } else if !missing.is_empty() {
            Some(format!(
                "{} missing (xfsprogs, e2fsprogs)",
                missing.join(", ")
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            assert!(
                !in_ci(),
                "{why}: {p} (.ci/run installs xfsprogs and runs as root)"
            );
            eprintln!("skipping {why}: {p}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("xfs.img");
        // Sparse: the smallest size mkfs.xfs accepts costs a few MiB of real disk.
        std::fs::File::create(&image)
            .unwrap()
            .set_len(320 << 20)
            .unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("mkfs.xfs")
            .args(["-q", "-m", "reflink=1"])
            .arg(&image));
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mnt));
        Some(Xfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// `filefrag -v` says every extent of `p` is shared (with the file it was cloned from).
fn shares_extents(p: &Path) -> (bool, String) {
    let out = Command::new("filefrag").arg("-v").arg(p).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let extents: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
                && l.contains(':')
        })
        .collect();
    (
        !extents.is_empty() && extents.iter().all(|l| l.contains("shared")),
        text,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_file_system_with_reflinks_the_queue_holds_a_clone_and_a_later_change_is_not_sent() {
    let Some(xfs) = Xfs::mount("the reflink test") else {
        return;
    };
    let api = StandIn::start().await;
    let mut home = Home::new(&api.url(), "", "");
    home.set_state(&xfs.path().join("state"));
    home.set_inbox(&xfs.path().join("inbox"));
    let report = distinct_report(7, 4 << 20);
    let original = home.drop_file("big.xml", &report);
    // The writer keeps a name of its own for the file (outside the watch directory).
    let writer = xfs.path().join("writer.xml");
    std::fs::hard_link(&original, &writer).unwrap();
    // The API is down for this pass: the report is admitted and waits in queue/.
    api.go_down().await;
    let (out, home) = cli_env(
        home,
        &["-v", "--once"],
        &[("HOSTEDSCAN_AGENT__RETRY__ONCE_DEADLINE", "1s")],
    )
    .await;
    assert_eq!(out.code, 75, "{out:?}");
    assert!(
        out.stderr.contains("how=\"reflink\"") || out.stdout.contains("how=\"reflink\""),
        "admitted by a reflink: {}{}",
        out.stdout,
        out.stderr
    );
    assert!(home.inbox_names().is_empty(), "{:?}", home.inbox_names());
    let queued = home.state.join("queue/big.xml");
    assert_eq!(std::fs::read(&queued).unwrap(), report);
    assert_ne!(
        inode(&queued),
        inode(&writer),
        "a new inode, the agent's own"
    );
    let (shared, frag) = shares_extents(&queued);
    assert!(shared, "the clone shares the original's blocks: {frag}");

    // The writer changes its file after admission, in place: the clone keeps what was read.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&writer)
        .unwrap();
    f.write_all_at(b"<!-- changed after it was admitted -->", 0)
        .unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(std::fs::read(&queued).unwrap(), report);

    api.come_back().await;
    let (out, home) = cli_env(home, &["--once"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let ups = api.uploads();
    assert_eq!(ups.len(), 1);
    assert_eq!(
        ups[0].bytes, report,
        "what was validated and hashed is what was sent"
    );
    assert_eq!(ups[0].sha256, sha256_hex(&report));
    drop(home);
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(xfs);
}
