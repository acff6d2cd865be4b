//! The shared real-world samples through `validate --format json`: the verdict, scan_type and
//! ZAP target of every row of EXPECTED.tsv. Skips (with a message) where the samples are absent.

use crate::harness::*;

#[test]
fn every_sample_gets_its_expected_verdict() {
    let Some(dir) = samples_dir() else { return };
    let home = Home::new("http://127.0.0.1:9/v1", "", "");
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut checked = 0;
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (path, verdict, scan_type, target) = (cols[0], cols[1], cols[2], cols[3]);
        let out = home.cli(&[
            "validate",
            "--format",
            "json",
            dir.join(path).to_str().unwrap(),
        ]);
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("{path}: {e}: {out:?}"));
        assert_eq!(v["valid"], verdict == "accept", "{path}: {v}");
        assert_eq!(out.code, if verdict == "accept" { 0 } else { 65 }, "{path}");
        if verdict == "accept" {
            assert_eq!(v["scan_type"], scan_type, "{path}");
            if target != "-" {
                assert_eq!(v["target"], target, "{path}");
            }
        } else {
            assert!(
                v["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{path}: a rejection needs a reason"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_samples_dropped_into_a_watch_directory_end_uploaded_or_rejected() {
    let Some(dir) = samples_dir() else { return };
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut accepted = 0;
    let mut rejected = 0;
    for (i, line) in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .enumerate()
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let name = format!("{i:02}-{}", cols[0].rsplit('/').next().unwrap());
        let bytes = std::fs::read(dir.join(cols[0])).unwrap();
        let dest = home.drop_file(&name, &bytes);
        // Old enough that a truncated sample counts as abandoned, not still being written.
        age(&dest, 3600);
        if cols[1] == "accept" {
            accepted += 1
        } else {
            rejected += 1
        }
    }
    let (out, home) = home.once_async().await;
    assert_eq!(out.code, 65, "{out:?}");
    assert_eq!(api.uploads().len(), accepted, "{}", out.stdout);
    assert_eq!(
        home.names_in("rejected").len(),
        2 * rejected,
        "{}",
        out.stdout
    );
    assert!(home.inbox_names().is_empty());
}
