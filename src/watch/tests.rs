//! The watcher's own limits: parked files and floods past what it tracks.

use super::*;

fn watch_settings(dir: &Path) -> WatchSettings {
    WatchSettings {
        path: dir.to_path_buf(),
        hints: Hints::default(),
        include: crate::config::Globs::new(&["*"]).unwrap(),
        exclude: crate::config::Globs::default(),
        recursive: false,
        source: Default::default(),
    }
}

/// A directory of `n` files `{prefix}{i}.xml`, last written a minute ago.
fn settled_files(prefix: &str, n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        let p = dir.path().join(format!("{prefix}{i}.xml"));
        std::fs::write(&p, b"x").unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }
    dir
}

/// More parked files than are remembered one by one: the rest are remembered by a hash, and
/// none is offered again while it does not change (scan after scan).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_files_past_the_limit_are_not_offered_again() {
    let dir = settled_files("u", 10);
    let mut w = Watcher::new(
        &[watch_settings(dir.path())],
        Duration::from_millis(10),
        Duration::from_millis(200),
    );
    w.max_parked = 3;
    let (tx, mut rx) = mpsc::channel(16);
    let (fb_tx, fb_rx) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let task = tokio::spawn(w.run(tx, fb_rx, stop.clone()));
    let mut offered = HashSet::new();
    // Ten files, then a second of scans every 200 ms: each is offered once.
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(s)) = tokio::time::timeout_at(until, rx.recv()).await {
        assert!(
            offered.insert(s.path.clone()),
            "offered again: {:?}",
            s.path
        );
        let fb = Feedback::Parked(s.seen, Some("cannot read it".into()));
        fb_tx.send((s.path, fb)).await.unwrap();
    }
    assert_eq!(offered.len(), 10);
    // A change brings one back.
    let p = dir.path().join("u7.xml");
    std::fs::write(&p, b"changed").unwrap();
    let s = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the changed file is offered again")
        .unwrap();
    assert_eq!(s.path, p);
    stop.cancel();
    task.await.unwrap();
}

/// More files than the daemon tracks at once: the rest wait untracked in the directory and
/// are all offered in turn as the tracked ones drain, without waiting for the periodic scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_tracked_limit_is_taken_in_turn() {
    let dir = settled_files("r", 50);
    let mut w = Watcher::new(
        &[watch_settings(dir.path())],
        Duration::from_millis(10),
        Duration::from_secs(3600),
    );
    w.max_tracked = 10;
    let (tx, mut rx) = mpsc::channel(4);
    let (fb_tx, fb_rx) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let task = tokio::spawn(w.run(tx, fb_rx, stop.clone()));
    let mut offered = HashSet::new();
    while offered.len() < 50 {
        let s = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("every file is offered before the periodic scan (an hour away)")
            .unwrap();
        assert!(
            offered.insert(s.path.clone()),
            "offered twice: {:?}",
            s.path
        );
        std::fs::remove_file(&s.path).unwrap();
        fb_tx.send((s.path, Feedback::Done)).await.unwrap();
    }
    stop.cancel();
    task.await.unwrap();
}
