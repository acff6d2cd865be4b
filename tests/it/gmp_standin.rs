//! Self-tests of the GMP stand-in (standins/src/gmp/): raw GMP over its Unix socket, checking
//! that it answers as gvmd does, so tests of the agent's GMP client can trust it.

use std::path::Path;
use std::time::Duration;

use quick_xml::events::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use hostedscan_standins::gmp::*;

/// A raw GMP connection: write a command, read one response element.
struct Raw {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(path: &Path) -> Raw {
        Raw {
            stream: UnixStream::connect(path)
                .await
                .expect("connect to the stand-in"),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, xml: &str) {
        self.stream.write_all(xml.as_bytes()).await.unwrap();
    }

    /// One response element, or None when the server closed the connection first.
    async fn read(&mut self) -> Option<String> {
        loop {
            if let Some(end) = complete_element(&self.buf) {
                let text: Vec<u8> = self.buf.drain(..end).collect();
                return Some(String::from_utf8(text).unwrap().trim().to_string());
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .expect("the stand-in answers within 10 s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn cmd(&mut self, xml: &str) -> String {
        self.send(xml).await;
        self.read()
            .await
            .unwrap_or_else(|| panic!("no answer to {xml}"))
    }

    async fn login(path: &Path) -> Raw {
        let mut c = Raw::connect(path).await;
        let r = c
            .cmd("<authenticate><credentials><username>admin</username><password>secret</password></credentials></authenticate>")
            .await;
        assert_eq!(status(&r), "200", "{r}");
        c
    }

    /// True when the server has closed the connection (no further bytes).
    async fn closed(&mut self) -> bool {
        self.read().await.is_none()
    }
}

/// The end offset of the first complete root element in `bytes`, if it is all there.
fn complete_element(bytes: &[u8]) -> Option<usize> {
    let mut r = quick_xml::Reader::from_reader(bytes);
    let mut depth = 0usize;
    loop {
        match r.read_event() {
            Ok(Event::Start(_)) => depth += 1,
            Ok(Event::End(_)) => {
                depth -= 1;
                if depth == 0 {
                    return Some(r.buffer_position() as usize);
                }
            }
            Ok(Event::Empty(_)) if depth == 0 => return Some(r.buffer_position() as usize),
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

/// An attribute of the root element.
fn root_attr(xml: &str, name: &str) -> String {
    let mut r = quick_xml::Reader::from_str(xml);
    loop {
        match r.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) => {
                return e
                    .try_get_attribute(name)
                    .unwrap()
                    .map(|a| a.unescape_value().unwrap().into_owned())
                    .unwrap_or_default();
            }
            Event::Eof => return String::new(),
            _ => {}
        }
    }
}

fn status(xml: &str) -> String {
    root_attr(xml, "status")
}

fn status_text(xml: &str) -> String {
    root_attr(xml, "status_text")
}

fn root_name(xml: &str) -> String {
    let mut r = quick_xml::Reader::from_str(xml);
    loop {
        match r.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) => {
                return String::from_utf8_lossy(e.name().as_ref()).into_owned()
            }
            Event::Eof => return String::new(),
            _ => {}
        }
    }
}

/// The text of the first `<tag>` (no nested elements expected).
fn text_of(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}

/// The first element `<tag ...>...</tag>` (the outer one if nested), as text.
fn element(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag} "))?;
    let end = xml.rfind(&format!("</{tag}>"))? + tag.len() + 3;
    Some(xml[start..end].to_string())
}

async fn create_target(c: &mut Raw, name: &str, hosts: &str) -> String {
    let r = c
        .cmd(&format!(
            "<create_target><name>{name}</name><hosts>{hosts}</hosts>\
             <port_list id=\"{PORT_LIST_TCP}\"/></create_target>"
        ))
        .await;
    assert_eq!(
        (status(&r).as_str(), status_text(&r).as_str()),
        ("201", "OK, resource created"),
        "{r}"
    );
    root_attr(&r, "id")
}

async fn create_task(c: &mut Raw, name: &str, target: &str) -> String {
    let r = c
        .cmd(&format!(
            "<create_task><name>{name}</name><config id=\"{CONFIG_FULL_AND_FAST}\"/>\
             <target id=\"{target}\"/><scanner id=\"{SCANNER_OPENVAS}\"/></create_task>"
        ))
        .await;
    assert_eq!(status(&r), "201", "{r}");
    root_attr(&r, "id")
}

async fn task_status(c: &mut Raw, task: &str) -> (String, i32, String) {
    let r = c.cmd(&format!("<get_tasks task_id=\"{task}\"/>")).await;
    assert_eq!(status(&r), "200", "{r}");
    (
        text_of(&r, "status").unwrap(),
        text_of(&r, "progress").unwrap().parse().unwrap(),
        r,
    )
}

/// `hostedscan-agent validate --format json FILE` → (valid, reason).
async fn validate(xml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    std::fs::write(&file, xml).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hostedscan-agent"))
        .args(["validate", "--format", "json"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("validate output {out:?}: {e}"));
    (
        v["valid"].as_bool().unwrap(),
        v["reason"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmp_standin_version_authentication_and_protocol_errors() {
    let dir = tempfile::tempdir().unwrap();
    let gvmd = GmpStandIn::start(dir.path()).await;
    assert_eq!(gvmd.socket(), dir.path().join("gvmd.sock"));

    // Before authenticating: get_version works, anything else is refused and the
    // connection is closed (gvmd: parse error after the response).
    let mut c = Raw::connect(&gvmd.socket()).await;
    let r = c.cmd("<get_version/>").await;
    assert_eq!(
        r,
        "<get_version_response status=\"200\" status_text=\"OK\"><version>22.8</version></get_version_response>"
    );
    let r = c.cmd("<get_tasks/>").await;
    assert_eq!(
        r,
        "<gmp_response status=\"400\" status_text=\"Only command GET_VERSION is allowed before AUTHENTICATE\"/>"
    );
    assert!(c.closed().await);

    // A failed authenticate keeps the connection, unauthenticated; then it works.
    let mut c = Raw::connect(&gvmd.socket()).await;
    let r = c
        .cmd("<authenticate><credentials><username>admin</username><password>nope</password></credentials></authenticate>")
        .await;
    assert_eq!(
        r,
        "<authenticate_response status=\"400\" status_text=\"Authentication failed\"/>"
    );
    let r = c
        .cmd("<authenticate><credentials><username>admin</username><password>secret</password></credentials></authenticate>")
        .await;
    assert_eq!(status(&r), "200", "{r}");
    assert_eq!(text_of(&r, "role").as_deref(), Some("Admin"));
    assert_eq!(text_of(&r, "timezone").as_deref(), Some("UTC"));

    // Several commands in one write: answered in order on the same connection.
    c.send("<get_version/>\n<get_tasks filter=\"rows=-1\"/>")
        .await;
    assert_eq!(root_name(&c.read().await.unwrap()), "get_version_response");
    let r = c.read().await.unwrap();
    assert_eq!(root_name(&r), "get_tasks_response");
    assert_eq!(status(&r), "200");

    // An unknown command: gvmd's answer, then the connection is closed.
    let r = c.cmd("<get_bogus_things/>").await;
    assert_eq!(
        r,
        "<gmp_response status=\"400\" status_text=\"Bogus command name\"/>"
    );
    assert!(c.closed().await);

    // set_password takes effect for new authentications.
    gvmd.set_password("changed");
    let mut c = Raw::connect(&gvmd.socket()).await;
    let r = c
        .cmd("<authenticate><credentials><username>admin</username><password>secret</password></credentials></authenticate>")
        .await;
    assert_eq!(status_text(&r), "Authentication failed");

    assert_eq!(gvmd.connections(), 3);
    assert_eq!(
        gvmd.commands(),
        [
            "get_version",
            "get_tasks",
            "authenticate",
            "authenticate",
            "get_version",
            "get_tasks",
            "get_bogus_things",
            "authenticate"
        ]
    );
    let raw = gvmd.raw_commands();
    assert_eq!(raw[5], "<get_tasks filter=\"rows=-1\"/>");
    assert!(raw[3].contains("<password>secret</password>"), "{}", raw[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmp_standin_targets_are_unique_and_locked_while_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let gvmd = GmpStandIn::start(dir.path()).await;
    let mut c = Raw::login(&gvmd.socket()).await;

    let target = create_target(&mut c, "hostedscan web", " 10.0.0.1 ,10.0.0.2").await;
    assert_eq!(gvmd.targets()[0].hosts, "10.0.0.1, 10.0.0.2");
    assert_eq!(gvmd.targets()[0].port_list_id, PORT_LIST_TCP);

    let r = c
        .cmd(&format!(
            "<create_target><name>hostedscan web</name><hosts>10.0.0.3</hosts>\
             <port_list id=\"{PORT_LIST_TCP}\"/></create_target>"
        ))
        .await;
    assert_eq!(
        r,
        "<create_target_response status=\"400\" status_text=\"Target exists already\"/>"
    );
    let r = c
        .cmd("<create_target><name>other</name><hosts>10.0.0.3</hosts><port_list id=\"nope\"/></create_target>")
        .await;
    assert_eq!(
        r,
        "<create_target_response status=\"404\" status_text=\"Failed to find port_list 'nope'\"/>"
    );
    let r = c
        .cmd("<create_target><hosts>1.2.3.4</hosts></create_target>")
        .await;
    assert_eq!(status_text(&r), "A NAME is required");

    let r = c
        .cmd("<get_targets filter=\"name=&quot;hostedscan web&quot; rows=-1\"/>")
        .await;
    assert_eq!(status(&r), "200", "{r}");
    assert_eq!(r.matches("<target id=").count(), 1, "{r}");
    assert!(r.contains(&format!("<target id=\"{target}\">")), "{r}");
    assert_eq!(text_of(&r, "in_use").as_deref(), Some("0"));
    assert_eq!(text_of(&r, "hosts").as_deref(), Some("10.0.0.1, 10.0.0.2"));
    assert!(
        r.contains(&format!(
            "<port_list id=\"{PORT_LIST_TCP}\"><name>All IANA assigned TCP</name>"
        )),
        "{r}"
    );
    assert!(r.contains("<target_count>1<filtered>1</filtered><page>1</page></target_count>"));
    let r = c.cmd("<get_targets filter=\"name=nothing\"/>").await;
    assert_eq!(r.matches("<target id=").count(), 0, "{r}");
    let r = c.cmd("<get_targets target_id=\"missing\"/>").await;
    assert_eq!(
        r,
        "<get_targets_response status=\"404\" status_text=\"Failed to find target 'missing'\"/>"
    );

    // In use once a task refers to it.
    let task = create_task(&mut c, "hostedscan web", &target).await;
    let r = c
        .cmd(&format!("<get_targets target_id=\"{target}\"/>"))
        .await;
    assert_eq!(text_of(&r, "in_use").as_deref(), Some("1"), "{r}");
    let r = c
        .cmd(&format!(
            "<modify_target target_id=\"{target}\"><hosts>10.0.0.9</hosts>\
             <exclude_hosts></exclude_hosts></modify_target>"
        ))
        .await;
    assert_eq!(
        r,
        "<modify_target_response status=\"400\" status_text=\"Target is in use\"/>"
    );
    let r = c
        .cmd(&format!(
            "<modify_target target_id=\"{target}\"><hosts>10.0.0.9</hosts></modify_target>"
        ))
        .await;
    assert_eq!(status_text(&r), "HOSTS requires an EXCLUDE_HOSTS");
    let r = c
        .cmd(&format!(
            "<modify_target target_id=\"{target}\"><comment>renamed ok</comment></modify_target>"
        ))
        .await;
    assert_eq!(
        r,
        "<modify_target_response status=\"200\" status_text=\"OK\"/>"
    );
    let r = c
        .cmd(&format!(
            "<delete_target target_id=\"{target}\" ultimate=\"1\"/>"
        ))
        .await;
    assert_eq!(
        r,
        "<delete_target_response status=\"400\" status_text=\"Target is in use\"/>"
    );

    // Once the task is gone for good, the target can go too.
    let r = c
        .cmd(&format!("<delete_task task_id=\"{task}\" ultimate=\"1\"/>"))
        .await;
    assert_eq!(
        r,
        "<delete_task_response status=\"200\" status_text=\"OK\"/>"
    );
    let r = c
        .cmd(&format!(
            "<modify_target target_id=\"{target}\"><hosts>10.0.0.9</hosts>\
             <exclude_hosts></exclude_hosts></modify_target>"
        ))
        .await;
    assert_eq!(status(&r), "200", "{r}");
    assert_eq!(gvmd.targets()[0].hosts, "10.0.0.9");
    let r = c
        .cmd(&format!(
            "<delete_target target_id=\"{target}\" ultimate=\"1\"/>"
        ))
        .await;
    assert_eq!(
        r,
        "<delete_target_response status=\"200\" status_text=\"OK\"/>"
    );
    let r = c
        .cmd(&format!(
            "<delete_target target_id=\"{target}\" ultimate=\"1\"/>"
        ))
        .await;
    assert_eq!(status(&r), "404", "{r}");
    assert_eq!(gvmd.deleted(), [task, target]);
    assert!(gvmd.targets().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmp_standin_runs_a_task_and_serves_its_report_as_gvmd_does() {
    let dir = tempfile::tempdir().unwrap();
    let gvmd = GmpStandIn::start(dir.path()).await;
    gvmd.set_run(2, End::Done);
    gvmd.set_results(12);
    let mut c = Raw::login(&gvmd.socket()).await;
    let target = create_target(&mut c, "t1", "127.0.0.1").await;

    let r = c
        .cmd(&format!(
            "<create_task><name>t1</name><config id=\"nope\"/><target id=\"{target}\"/>\
             <scanner id=\"{SCANNER_OPENVAS}\"/></create_task>"
        ))
        .await;
    assert_eq!(
        r,
        "<create_task_response status=\"404\" status_text=\"Failed to find config 'nope'\"/>"
    );
    let r = c
        .cmd(&format!(
            "<create_task><name>t1</name><config id=\"{CONFIG_FULL_AND_FAST}\"/>\
             <target id=\"missing\"/></create_task>"
        ))
        .await;
    assert_eq!(status_text(&r), "Failed to find target 'missing'");
    let task = create_task(&mut c, "t1", &target).await;
    assert_eq!(task_status(&mut c, &task).await.0, "New");

    let r = c.cmd(&format!("<start_task task_id=\"{task}\"/>")).await;
    assert_eq!(status(&r), "202", "{r}");
    assert_eq!(status_text(&r), "OK, request submitted");
    let report = text_of(&r, "report_id").unwrap();
    let r = c.cmd(&format!("<start_task task_id=\"{task}\"/>")).await;
    assert_eq!(
        r,
        "<start_task_response status=\"400\" status_text=\"Task is active already\"/>"
    );

    let (st, p0, r) = task_status(&mut c, &task).await;
    assert_eq!(st, "Requested");
    assert!(
        r.contains(&format!("<current_report><report id=\"{report}\">")),
        "{r}"
    );
    let (st, p1, _) = task_status(&mut c, &task).await;
    assert_eq!(st, "Running");
    let (st, p2, _) = task_status(&mut c, &task).await;
    assert_eq!(st, "Running");
    assert!(p0 <= p1 && p1 < p2, "{p0} {p1} {p2}");
    let r = c
        .cmd(&format!(
            "<get_reports report_id=\"{report}\" ignore_pagination=\"1\" details=\"1\"/>"
        ))
        .await;
    assert!(
        r.contains("<scan_run_status>Running</scan_run_status>"),
        "{r}"
    );
    let (valid, reason) = validate(&element(&r, "report").unwrap()).await;
    assert!(!valid && reason.contains("not Done"), "{reason}");

    // Not New and not alterable: gvmd refuses to retarget it.
    let r = c
        .cmd(&format!(
            "<modify_task task_id=\"{task}\"><target id=\"{target}\"/></modify_task>"
        ))
        .await;
    assert_eq!(
        r,
        "<modify_task_response status=\"400\" status_text=\"Status must be New to edit Target\"/>"
    );

    let (st, _, r) = task_status(&mut c, &task).await;
    assert_eq!(st, "Done");
    assert!(!r.contains("<current_report>"), "{r}");
    assert!(
        r.contains(&format!("<last_report><report id=\"{report}\">")),
        "{r}"
    );
    assert!(
        r.contains("<report_count>1<finished>1</finished></report_count>"),
        "{r}"
    );
    assert_eq!(gvmd.tasks()[0].report_ids, std::slice::from_ref(&report));
    assert_eq!(gvmd.tasks()[0].status, "Done");

    // Paginated like gvmd when the client forgets: one page, and the agent refuses it.
    let r = c
        .cmd(&format!(
            "<get_reports report_id=\"{report}\" format_id=\"{REPORT_FORMAT_XML}\" details=\"1\"/>"
        ))
        .await;
    assert_eq!(status(&r), "200");
    assert!(r.contains("<results start=\"1\" max=\"10\">"), "{r}");
    assert_eq!(r.matches("<result id=").count(), 10);
    assert!(r.contains("<result_count>12<full>12</full><filtered>12</filtered>"));
    let (valid, reason) = validate(&element(&r, "report").unwrap()).await;
    assert!(!valid && reason.contains("pagination"), "{reason}");

    // The whole report: the inner report of a Done task passes the agent's validator,
    // unwrapped and wrapped.
    let r = c
        .cmd(&format!(
            "<get_reports report_id=\"{report}\" format_id=\"{REPORT_FORMAT_XML}\" \
             filter=\"apply_overrides=0 min_qod=70 rows=-1\" ignore_pagination=\"1\" details=\"1\"/>"
        ))
        .await;
    assert!(r.contains("<results start=\"1\" max=\"-1\">"), "{r}");
    assert_eq!(r.matches("<result id=").count(), 12);
    assert!(r.contains("<scan_run_status>Done</scan_run_status>"));
    assert!(r.contains(&format!(
        "<report id=\"{report}\" format_id=\"{REPORT_FORMAT_XML}\" config_id=\"\" \
         extension=\"xml\" content_type=\"text/xml\">"
    )));
    assert!(r.ends_with("<report_count>1<filtered>1</filtered><page>1</page></report_count></get_reports_response>"), "{r}");
    let inner = element(&r, "report").unwrap();
    assert_eq!(validate(&inner).await, (true, String::new()));
    assert_eq!(validate(&r).await, (true, String::new()));

    // rows=-1 alone is not paginated either; without details there are no results
    // (gvmd's default), which the validator refuses.
    let r = c
        .cmd(&format!(
            "<get_reports report_id=\"{report}\" filter=\"rows=-1\" details=\"1\"/>"
        ))
        .await;
    assert_eq!(r.matches("<result id=").count(), 12);
    assert!(
        r.contains("format_id=\"\" config_id=\"\" extension=\"\" content_type=\"application/xml\"")
    );
    let r = c
        .cmd(&format!(
            "<get_reports report_id=\"{report}\" ignore_pagination=\"1\"/>"
        ))
        .await;
    assert!(!r.contains("<results"), "{r}");
    assert!(!validate(&element(&r, "report").unwrap()).await.0);

    let r = c
        .cmd("<get_reports report_id=\"missing\" details=\"1\"/>")
        .await;
    assert_eq!(
        r,
        "<get_reports_response status=\"404\" status_text=\"Failed to find report 'missing'\"/>"
    );
    let r = c
        .cmd(&format!(
            "<get_reports report_id=\"{report}\" format_id=\"nope\"/>"
        ))
        .await;
    assert_eq!(status_text(&r), "Failed to find report format 'nope'");

    // Finished: it can be retargeted only if alterable; it is not, so delete it.
    let r = c.cmd(&format!("<delete_task task_id=\"{task}\"/>")).await;
    assert_eq!(status(&r), "200", "{r}");
    assert!(gvmd.tasks()[0].in_trash);
    let r = c.cmd(&format!("<get_tasks task_id=\"{task}\"/>")).await;
    assert_eq!(status(&r), "404", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmp_standin_stops_interrupts_hangs_and_injects_faults() {
    let dir = tempfile::tempdir().unwrap();
    let gvmd = GmpStandIn::start(dir.path()).await;
    let mut c = Raw::login(&gvmd.socket()).await;
    let target = create_target(&mut c, "t", "127.0.0.1").await;

    // stop_task: Stop Requested once, then Stopped, with a Stopped report.
    gvmd.set_run(5, End::Done);
    let t1 = create_task(&mut c, "stopped", &target).await;
    c.cmd(&format!("<start_task task_id=\"{t1}\"/>")).await;
    assert_eq!(task_status(&mut c, &t1).await.0, "Requested");
    let r = c.cmd(&format!("<stop_task task_id=\"{t1}\"/>")).await;
    assert_eq!(
        r,
        "<stop_task_response status=\"202\" status_text=\"OK, request submitted\"/>"
    );
    assert_eq!(task_status(&mut c, &t1).await.0, "Stop Requested");
    assert_eq!(task_status(&mut c, &t1).await.0, "Stopped");
    assert_eq!(gvmd.stops(), 1);
    let report = gvmd.tasks()[0].report_ids[0].clone();
    let r = c
        .cmd(&format!(
            "<get_reports report_id=\"{report}\" ignore_pagination=\"1\" details=\"1\"/>"
        ))
        .await;
    assert!(
        r.contains("<scan_run_status>Stopped</scan_run_status>"),
        "{r}"
    );
    let r = c.cmd(&format!("<stop_task task_id=\"{t1}\"/>")).await;
    assert_eq!(r, "<stop_task_response status=\"200\" status_text=\"OK\"/>");

    // Interrupted after one running poll.
    gvmd.set_run(1, End::Interrupted);
    let t2 = create_task(&mut c, "interrupted", &target).await;
    c.cmd(&format!("<start_task task_id=\"{t2}\"/>")).await;
    let seen: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(task_status(&mut c, &t2).await.0);
        }
        v
    };
    assert_eq!(seen, ["Requested", "Running", "Interrupted"]);

    // Hung: Running for ever.
    gvmd.set_run(1, End::Never);
    let t3 = create_task(&mut c, "hung", &target).await;
    c.cmd(&format!("<start_task task_id=\"{t3}\"/>")).await;
    for _ in 0..20 {
        task_status(&mut c, &t3).await;
    }
    assert_eq!(task_status(&mut c, &t3).await.0, "Running");

    // A task left running by a previous agent.
    gvmd.set_run(0, End::Done);
    let t4 = gvmd.preset_task("left over", "10.1.1.1", "Running");
    assert_eq!(task_status(&mut c, &t4).await.0, "Done");
    assert_eq!(gvmd.targets().last().unwrap().name, "left over");

    // Queued faults, then normal service.
    gvmd.fail_next("get_tasks", 503, "Service temporarily down");
    gvmd.fail_next("get_tasks", 500, "Internal error");
    let r = c.cmd("<get_tasks/>").await;
    assert_eq!(
        r,
        "<get_tasks_response status=\"503\" status_text=\"Service temporarily down\"/>"
    );
    assert_eq!(status(&c.cmd("<get_tasks/>").await), "500");
    assert_eq!(status(&c.cmd("<get_tasks/>").await), "200");

    // A dropped command: read in full, no answer, connection closed.
    gvmd.drop_next("start_task");
    c.send(&format!("<start_task task_id=\"{t1}\"/>")).await;
    assert!(c.closed().await);
    assert_eq!(
        gvmd.tasks()[0].status,
        "Stopped",
        "the dropped command did nothing"
    );
    assert_eq!(gvmd.commands().last().unwrap(), "start_task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmp_standin_streams_a_big_report() {
    let dir = tempfile::tempdir().unwrap();
    let gvmd = GmpStandIn::start(dir.path()).await;
    gvmd.set_run(0, End::Done);
    gvmd.set_results(5_000);
    gvmd.set_result_padding(3_000);
    let task = gvmd.preset_task("big", "127.0.0.1", "Done");
    let report = gvmd.tasks()[0].report_ids[0].clone();
    assert!(!task.is_empty());

    let mut c = Raw::login(&gvmd.socket()).await;
    c.send(&format!(
        "<get_reports report_id=\"{report}\" format_id=\"{REPORT_FORMAT_XML}\" \
         ignore_pagination=\"1\" details=\"1\"/>"
    ))
    .await;
    // Count results as they stream in, without keeping the document.
    let mut reader = quick_xml::Reader::from_reader(tokio::io::BufReader::new(c.stream));
    let mut buf = Vec::new();
    let (mut depth, mut results) = (0usize, 0usize);
    loop {
        buf.clear();
        match reader.read_event_into_async(&mut buf).await.unwrap() {
            Event::Start(e) => {
                depth += 1;
                if depth == 5 && e.name().as_ref() == b"result" {
                    results += 1;
                }
            }
            Event::End(_) => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Event::Eof => panic!("closed mid-report"),
            _ => {}
        }
    }
    assert_eq!(results, 5_000);
    assert!(
        reader.buffer_position() > 15_000_000,
        "{}",
        reader.buffer_position()
    );
}
