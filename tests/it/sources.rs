//! Several IMPORTED sources: each watch and job sends its reports to its own `source` (or
//! `source_id`), resolved once and remembered in `sources.json`; the ledger is per source; a
//! reload may add a source; a source deleted on HostedScan's side holds its files in `queue/`
//! while the other sources go on.

use std::time::Duration;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(20);

/// A Home with a second watch directory `dmz` whose reports go to the source "DMZ
/// ({hostname})", and `job` appended (a section or nothing).
fn two_watches(api: &StandIn, job: &str) -> (Home, std::path::PathBuf) {
    let home = Home::new(&api.url(), "", "");
    let dmz = home.dir.path().join("dmz");
    std::fs::create_dir_all(&dmz).unwrap();
    let cfg = format!(
        "{}\n[[watch]]\npath = \"{}\"\nsource = \"DMZ ({{hostname}})\"\n{job}",
        std::fs::read_to_string(&home.config).unwrap(),
        dmz.display()
    );
    std::fs::write(&home.config, cfg).unwrap();
    (home, dmz)
}

/// A command job (named `name`) whose run copies the Nmap fixture to its output, into `source`.
fn copy_job(name: &str, source: &str) -> String {
    format!(
        "\n[[job]]\nname = \"{name}\"\nscanner = \"command\"\nschedule = \"@yearly\"\ncommand = [\"/bin/cp\", \"{}\", \"{{output}}\"]\nsource = \"{source}\"\n",
        fixture("nmap-tcp-localhost.xml").display()
    )
}

/// The Nmap fixture made distinct by a comment naming `n`.
fn report(n: &str) -> Vec<u8> {
    let mut r = nmap_report();
    r.extend_from_slice(format!("<!-- {n} -->\n").as_bytes());
    r
}

fn drop_into(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes).unwrap();
    age(&tmp, 60);
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn id_of(api: &StandIn, name: &str) -> String {
    api.sources()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no source {name:?} in {:?}", api.sources()))
        .id
}

fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn status_json(home: &Home) -> serde_json::Value {
    let out = home.cli(&["status", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// The first case: one agent, three networks. Each report lands in the source of the
/// watch or job it came from; the same bytes dropped into two watches go to both sources (the
/// ledger is per source); `status` and `check-config` say which goes where; a second pass (a
/// restart) creates no source again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_watch_and_job_uploads_to_its_own_source_and_a_restart_reuses_them() {
    let api = StandIn::start().await;
    let (home, dmz) = two_watches(&api, &copy_job("lab-scan", "Lab"));
    let report = nmap_report();
    home.drop_file("office.xml", &report);
    drop_into(&dmz, "dmz.xml", &report);

    let out = home.cli(&["check-config"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dmz_name = format!("DMZ ({})", hostname());
    assert!(
        out.stdout.contains(&format!(
            "source     \"{dmz_name}\" (IMPORTED): watch {}",
            dmz.display()
        )),
        "check-config says where the dmz watch goes:\n{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("source     \"Lab\" (IMPORTED): job lab-scan"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "source     \"Agent tests\" (IMPORTED, [source]): watch {}",
            home.inbox.display()
        )),
        "{}",
        out.stdout
    );

    let out = home.cli(&["--once", "--job", "all"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (default_id, dmz_id, lab_id) = (
        id_of(&api, "Agent tests"),
        id_of(&api, &dmz_name),
        id_of(&api, "Lab"),
    );
    let ups = api.uploads();
    assert_eq!(ups.len(), 3, "{ups:?}");
    let to = |file: &str| {
        ups.iter()
            .find(|u| u.file_name.as_deref() == Some(file))
            .unwrap_or_else(|| panic!("{file} not uploaded"))
            .source_id
            .clone()
    };
    assert_eq!(to("office.xml"), default_id);
    assert_eq!(
        to("dmz.xml"),
        dmz_id,
        "the same bytes go to the second source too"
    );
    let lab_upload = ups.iter().find(|u| u.source_id == lab_id).unwrap();
    assert_eq!(lab_upload.bytes, fixture_bytes("nmap-tcp-localhost.xml"));

    // Remembered before use: sources.json by name and URL, source.json for [source].
    let named: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.state.join("sources.json")).unwrap()).unwrap();
    let names: Vec<(&str, &str)> = named["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["id"].as_str().unwrap()))
        .collect();
    assert!(
        names.contains(&(dmz_name.as_str(), dmz_id.as_str())),
        "{named}"
    );
    assert!(names.contains(&("Lab", lab_id.as_str())), "{named}");

    let s = status_json(&home);
    assert_eq!(s["source_id"], default_id.as_str(), "{s}");
    let sources = s["sources"].as_array().unwrap();
    let entry = |id: &str| {
        sources
            .iter()
            .find(|x| x["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {s}"))
    };
    for (id, name) in [
        (&default_id, "Agent tests"),
        (&dmz_id, dmz_name.as_str()),
        (&lab_id, "Lab"),
    ] {
        assert_eq!(entry(id)["name"], name);
        assert_eq!(entry(id)["uploaded_total"], 1, "{s}");
        assert_eq!(entry(id)["usable"], true);
    }
    assert_eq!(entry(&lab_id)["used_by"][0], "job lab-scan");

    // A second pass (a restart): new files, no new source, nothing sent twice.
    let sources_before = api.sources().len();
    let creates = || {
        api.requests_to(Endpoint::Sources)
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    };
    let created = creates();
    let mut second = nmap_report();
    second.extend_from_slice(b"<!-- second -->\n");
    drop_into(&dmz, "dmz2.xml", &second);
    drop_into(&dmz, "dmz-again.xml", &report);
    let out = home.cli(&["--once", "--job", "all"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(api.sources().len(), sources_before);
    assert_eq!(creates(), created, "no source created twice");
    let ups = api.uploads();
    assert_eq!(
        ups.iter().filter(|u| u.source_id == dmz_id).count(),
        2,
        "dmz2.xml is new; dmz-again.xml was already uploaded to DMZ: {ups:?}"
    );
    assert_eq!(
        ups.iter().filter(|u| u.source_id == lab_id).count(),
        1,
        "the job's identical report is a duplicate in its source"
    );
}

/// A reload that adds a watch with its own source (created at its first upload), another
/// whose name is pinned to an existing source's id, and renames `[source]`: each report goes
/// where the new configuration says, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_sources_and_renames_the_default() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "", "");
    let daemon = Daemon::start_reloading(home.load());
    home.drop_file("first.xml", &nmap_report());
    api.wait_for_uploads(1, WAIT).await;
    let first_default = id_of(&api, "Agent tests");

    let existing = api.add_source("Pinned network");
    let (lab, pinned) = (home.dir.path().join("lab"), home.dir.path().join("pinned"));
    std::fs::create_dir_all(&lab).unwrap();
    std::fs::create_dir_all(&pinned).unwrap();
    let cfg = format!(
        "{}\n[[watch]]\npath = \"{}\"\nsource = \"Lab\"\n\n[[watch]]\npath = \"{}\"\nsource = \"Pinned\"\nsource_id = \"{existing}\"\n",
        std::fs::read_to_string(&home.config)
            .unwrap()
            .replace("name = \"Agent tests\"", "name = \"Renamed default\""),
        lab.display(),
        pinned.display()
    );
    std::fs::write(&home.config, cfg).unwrap();
    daemon.reload(home.load()).await;
    eventually("the reload is taken", WAIT, || {
        std::fs::read_to_string(home.state.join("reload.json")).is_ok_and(|r| r.contains("true"))
    })
    .await;
    drop_into(&lab, "lab.xml", &report("lab"));
    drop_into(&pinned, "pinned.xml", &report("pinned"));
    home.drop_file("office.xml", &report("office"));
    let ups = api.wait_for_uploads(4, WAIT).await;
    let to = |n: &str| {
        ups.iter()
            .find(|u| u.file_name.as_deref() == Some(n))
            .unwrap_or_else(|| panic!("{n} not uploaded: {ups:?}"))
            .source_id
            .clone()
    };
    assert_eq!(to("lab.xml"), id_of(&api, "Lab"));
    assert_eq!(to("pinned.xml"), existing, "the pin is taken by the reload");
    assert!(
        !api.sources().iter().any(|s| s.name == "Pinned"),
        "a pinned name is never looked up or created"
    );
    let renamed = id_of(&api, "Renamed default");
    assert_ne!(renamed, first_default);
    assert_eq!(to("office.xml"), renamed, "[source] is taken by the reload");
    daemon.stop().await;
}

/// Many files for a source not known yet, uploaded four at a time: the name is created once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_name_is_created_once_however_many_uploads_need_it_at_once() {
    let api = StandIn::start().await;
    let home = Home::new(&api.url(), "upload_concurrency = 4", "source = \"Busy\"");
    api.set_list_sources_404(true);
    for i in 0..12 {
        let mut r = nmap_report();
        r.extend_from_slice(format!("<!-- {i} -->\n").as_bytes());
        home.drop_file(&format!("r{i}.xml"), &r);
    }
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(api.uploads().len(), 12);
    let busy: Vec<_> = api
        .sources()
        .into_iter()
        .filter(|s| s.name == "Busy")
        .collect();
    assert_eq!(busy.len(), 1, "{busy:?}");
    assert!(api.uploads().iter().all(|u| u.source_id == busy[0].id));
}

/// The deleted source: HostedScan refuses uploads to a source deleted on its side. Its
/// files stay in queue/ (not failed/), one ERROR says what to do, `status` shows the source
/// unusable, and the other source goes on. Removing the name from sources.json (the fix the
/// message gives) has it created again, and the held files go there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_source_holds_its_files_until_it_is_fixed_and_the_others_go_on() {
    let api = StandIn::start().await;
    let (home, dmz) = two_watches(&api, "");
    let dmz_name = format!("DMZ ({})", hostname());
    let d = Daemon::start(home.load());
    drop_into(&dmz, "before.xml", &nmap_report());
    api.wait_for_uploads(1, WAIT).await;
    let old_dmz = id_of(&api, &dmz_name);
    assert!(api.delete_source(&old_dmz));

    drop_into(&dmz, "held1.xml", &report("held1"));
    drop_into(&dmz, "held2.xml", &report("held2"));
    eventually(
        "both DMZ files are refused once and wait in queue/",
        WAIT,
        || {
            home.queued().len() == 2
                && status_json(&home)["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["id"] == old_dmz.as_str() && s["usable"] == false)
        },
    )
    .await;
    // The other source is not held up.
    home.drop_file("office.xml", &report("office"));
    eventually("the office file is uploaded", WAIT, || {
        api.uploads()
            .iter()
            .any(|u| u.file_name.as_deref() == Some("office.xml"))
    })
    .await;
    assert!(home.names_in("failed").is_empty(), "not failed/");
    let s = status_json(&home);
    let gone = s["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == old_dmz.as_str())
        .unwrap()
        .clone();
    let problem = gone["problem"].as_str().unwrap();
    assert!(
        problem.contains("sources.json") && problem.contains("source_id"),
        "the message says what to do: {problem}"
    );
    // One refusal per file at most, not a retry storm: the second may have been in flight.
    let refused = api
        .requests_to(Endpoint::Results)
        .iter()
        .filter(|r| r.status == 400)
        .count();
    assert!((1..=2).contains(&refused), "{refused} refused uploads");

    // The fix the message gives: remove the name's entry; the daemon creates the source again
    // and sends the files. Other entries of the file stay as they were.
    let path = home.state.join("sources.json");
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    file["sources"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["name"] != dmz_name.as_str());
    file["sources"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"id": "kept", "name": "Other", "api_url": "u", "at": "t"}));
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    eventually("the held files go to a new DMZ source", WAIT, || {
        api.uploads()
            .iter()
            .filter(|u| {
                u.file_name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("held"))
            })
            .count()
            == 2
    })
    .await;
    let new_dmz = id_of(&api, &dmz_name);
    assert_ne!(new_dmz, old_dmz);
    assert!(api
        .uploads()
        .iter()
        .filter(|u| u
            .file_name
            .as_deref()
            .is_some_and(|n| n.starts_with("held")))
        .all(|u| u.source_id == new_dmz));
    eventually(
        "the queue is empty and status no longer shows a source unusable",
        WAIT,
        || {
            home.names_in("queue").is_empty()
                && status_json(&home)["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s["usable"] == true)
        },
    )
    .await;
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        file["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "kept"),
        "the other entries are kept: {file}"
    );
    d.stop().await;
}

/// Files held for a deleted source survive a restart (still queued, found gone again, not
/// failed), and a reload that pins the name to an existing source sends them there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_files_survive_a_restart_and_follow_a_reloaded_pin() {
    let api = StandIn::start().await;
    let (home, dmz) = two_watches(&api, "");
    let dmz_name = format!("DMZ ({})", hostname());
    drop_into(&dmz, "a.xml", &nmap_report());
    assert_eq!(home.cli(&["--once"]).code, 0);
    api.delete_source(&id_of(&api, &dmz_name));
    let mut b = nmap_report();
    b.extend_from_slice(b"<!-- b -->\n");
    drop_into(&dmz, "b.xml", &b);

    let unusable = |home: &Home| {
        status_json(home)["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["usable"] == false)
    };
    let d = Daemon::start(home.load());
    eventually("b.xml is held", WAIT, || unusable(&home)).await;
    d.stop().await;
    assert!(home.names_in("failed").is_empty());
    assert_eq!(home.queued(), ["b.xml"]);

    let daemon = Daemon::start_reloading(home.load());
    eventually("b.xml is held again after the restart", WAIT, || {
        unusable(&home)
    })
    .await;
    let replacement = api.add_source("DMZ replacement");
    let cfg = std::fs::read_to_string(&home.config).unwrap().replace(
        "source = \"DMZ ({hostname})\"",
        &format!("source = \"DMZ ({{hostname}})\"\nsource_id = \"{replacement}\""),
    );
    std::fs::write(&home.config, cfg).unwrap();
    daemon.reload(home.load()).await;
    eventually("b.xml goes to the pinned source", WAIT, || {
        api.uploads()
            .iter()
            .any(|u| u.file_name.as_deref() == Some("b.xml") && u.source_id == replacement)
    })
    .await;
    eventually("status shows every source usable", WAIT, || {
        !unusable(&home)
    })
    .await;
    daemon.stop().await;
}

/// `--once` with a deleted source: the file stays queued and the pass exits 75 (pending) with
/// the reason; a `source_id` set on the watch next to its name (the other fix) sends it on
/// the next pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_keeps_the_files_of_a_deleted_source_and_a_pinned_id_sends_them() {
    let api = StandIn::start().await;
    let (home, dmz) = two_watches(&api, "");
    let dmz_name = format!("DMZ ({})", hostname());
    drop_into(&dmz, "a.xml", &nmap_report());
    assert_eq!(home.cli(&["--once"]).code, 0);
    let old = id_of(&api, &dmz_name);
    api.delete_source(&old);
    // A 404 this time (the other way HostedScan may say it).
    api.push_fault(Endpoint::Results, Fault::Status(404));
    let mut b = nmap_report();
    b.extend_from_slice(b"<!-- b -->\n");
    drop_into(&dmz, "b.xml", &b);
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 75, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("does not know source") || out.stderr.contains("does not know source"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(home.names_in("failed").is_empty());
    assert_eq!(home.queued(), ["b.xml"]);

    let replacement = api.add_source("DMZ replacement");
    let cfg = std::fs::read_to_string(&home.config).unwrap().replace(
        "source = \"DMZ ({hostname})\"",
        &format!("source = \"DMZ ({{hostname}})\"\nsource_id = \"{replacement}\""),
    );
    std::fs::write(&home.config, cfg).unwrap();
    let out = home.cli(&["--once"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let last = api.uploads().pop().unwrap();
    assert_eq!(last.file_name.as_deref(), Some("b.xml"));
    assert_eq!(last.source_id, replacement);
}

fn queued_reports(home: &Home) -> usize {
    home.queued().len()
}

fn uploaded_named(api: &StandIn, prefix: &str) -> Vec<String> {
    api.uploads()
        .iter()
        .filter(|u| {
            u.file_name
                .as_deref()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|u| u.source_id.clone())
        .collect()
}

/// More files held for a deleted source than the uploader keeps in memory (the cap made 2 by
/// a testing knob; 10 000 in a release): admission goes on for the other sources, and the fix
/// still releases every held file, those past the cap included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_held_past_the_memory_cap_stop_no_other_source_and_all_follow_the_fix() {
    let api = StandIn::start().await;
    let (home, dmz) = two_watches(&api, "");
    let dmz_name = format!("DMZ ({})", hostname());
    let agent = Agent::start(&home, &[("HOSTEDSCAN_AGENT_PENDING_CAP", "2")]);
    drop_into(&dmz, "before.xml", &nmap_report());
    api.wait_for_uploads(1, WAIT).await;
    let old_dmz = id_of(&api, &dmz_name);
    assert!(api.delete_source(&old_dmz));
    for i in 0..6 {
        drop_into(&dmz, &format!("held{i}.xml"), &report(&format!("held{i}")));
    }
    eventually("the six DMZ files wait in queue/", WAIT, || {
        queued_reports(&home) == 6 && dmz.read_dir().unwrap().count() == 0
    })
    .await;
    for i in 0..3 {
        home.drop_file(&format!("office{i}.xml"), &report(&format!("office{i}")));
    }
    eventually("the office files are uploaded all the same", WAIT, || {
        uploaded_named(&api, "office").len() == 3
    })
    .await;

    let path = home.state.join("sources.json");
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    file["sources"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["name"] != dmz_name.as_str());
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    eventually("all six held files go to a new DMZ source", WAIT, || {
        uploaded_named(&api, "held").len() == 6
    })
    .await;
    let new_dmz = id_of(&api, &dmz_name);
    assert!(
        uploaded_named(&api, "held").iter().all(|id| *id == new_dmz),
        "{:?}",
        api.uploads()
    );
    eventually("queue/ is empty", WAIT, || {
        home.names_in("queue").is_empty()
    })
    .await;
    let ended = agent.stop().await;
    assert_eq!(ended.code, Some(0), "{}", ended.log);
}

/// HostedScan refuses to look up a source (a 4xx that retrying will not fix): the source's
/// files wait in queue/ without each asking again, one ERROR says what to check, the other
/// sources go on, and a reload asks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_source_lookup_is_asked_once_and_its_files_wait_for_a_reload() {
    let api = StandIn::start().await;
    let (home, dmz) = two_watches(&api, "");
    let daemon = Daemon::start_reloading(home.load());
    home.drop_file("office0.xml", &nmap_report());
    api.wait_for_uploads(1, WAIT).await;

    api.set_default_fault(Endpoint::Sources, Some(Fault::Status(422)));
    let asked_before = api.requests_to(Endpoint::Sources).len();
    for i in 0..3 {
        drop_into(&dmz, &format!("dmz{i}.xml"), &report(&format!("dmz{i}")));
    }
    eventually(
        "the DMZ files wait in queue/ and status says why",
        WAIT,
        || {
            queued_reports(&home) == 3
                && status_json(&home)["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("refused to look up or create"))
        },
    )
    .await;
    home.drop_file("office1.xml", &report("office1"));
    eventually("the office goes on", WAIT, || {
        uploaded_named(&api, "office").len() == 2
    })
    .await;
    // Three queue rescans (rescan_interval = 1s) later, still one question for three files.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        api.requests_to(Endpoint::Sources).len() - asked_before,
        1,
        "one lookup for the source, not one per file and retry"
    );
    assert_eq!(queued_reports(&home), 3);
    assert!(home.names_in("failed").is_empty());

    // The operator's fix (here: HostedScan accepts again) and a reload: the files go.
    api.set_default_fault(Endpoint::Sources, None);
    daemon.reload(home.load()).await;
    eventually("the DMZ files are uploaded after the reload", WAIT, || {
        uploaded_named(&api, "dmz").len() == 3
    })
    .await;
    let dmz_id = id_of(&api, &format!("DMZ ({})", hostname()));
    assert!(uploaded_named(&api, "dmz").iter().all(|id| *id == dmz_id));
    daemon.stop().await;
}
