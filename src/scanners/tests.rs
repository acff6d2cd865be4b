//! The presets' command lines, placeholder substitution, exit meanings and summaries.

use std::path::{Path, PathBuf};

use super::*;
use crate::config::{
    Argv, CommandJob, Endpoint, NmapJob, OpenvasSettings, SslyzeJob, Targets, ZapJob, ZapMode,
    ZapPlan,
};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn run_argv(job: &ScannerJob, output: &str) -> Vec<String> {
    match launch(job, Path::new(output)).unwrap() {
        Launch::Process { argv, .. } => {
            argv.into_iter().map(|s| s.into_string().unwrap()).collect()
        }
        Launch::Gmp(_) => panic!("not a process"),
    }
}

fn command(argv: &[&str], targets: &[&str], target: Option<&str>) -> ScannerJob {
    ScannerJob::Command(CommandJob {
        argv: Argv::new(strings(argv)).unwrap(),
        target: target.map(str::to_string),
        targets: strings(targets),
    })
}

fn nmap(args: &[&str], privileged: bool, targets: &[&str]) -> ScannerJob {
    ScannerJob::Nmap(NmapJob {
        program: "nmap".into(),
        args: strings(args),
        privileged,
        targets: Targets::new(strings(targets)).unwrap(),
    })
}

fn zap_with(target: &str, mode: ZapMode, plan: ZapPlan) -> ScannerJob {
    ScannerJob::Zap(ZapJob {
        program: "/opt/zap/zap.sh".into(),
        args: strings(&["-config", "a=b", "{target}"]),
        target: target.into(),
        mode,
        plan,
    })
}

fn zap(target: &str) -> ScannerJob {
    zap_with(
        target,
        ZapMode::Passive,
        ZapPlan::Generated {
            ajax_spider: false,
            durations: crate::config::job::Durations::from_timeout(std::time::Duration::from_secs(
                3600,
            )),
        },
    )
}

fn sslyze(targets: &[&str]) -> ScannerJob {
    ScannerJob::Sslyze(SslyzeJob {
        program: "sslyze".into(),
        args: strings(&["--mozilla_config=modern"]),
        targets: Targets::new(strings(targets)).unwrap(),
    })
}

fn openvas() -> ScannerJob {
    ScannerJob::Openvas(crate::config::OpenvasJob {
        targets: Targets::new(strings(&["10.0.0.1", "10.0.0.2"])).unwrap(),
        settings: OpenvasSettings {
            endpoint: Endpoint::Socket(PathBuf::from("/run/gvmd/gvmd.sock")),
            username: "agent".into(),
            password_file: PathBuf::from("/etc/pw"),
            port_list_id: "p".into(),
            scan_config_id: "s".into(),
            scanner_id: "x".into(),
            cleanup: true,
            min_qod: 70,
            polling: Default::default(),
            reply_timeout: std::time::Duration::from_secs(1),
        },
    })
}

#[test]
fn the_command_summary_names_the_program_and_counts_its_arguments_only() {
    let s = command(&["/opt/scan", "--token=SECRET123", "{output}"], &[], None);
    assert_eq!(summary(&s), "/opt/scan with 2 arguments");
    assert_eq!(
        summary(&command(&["x", "{output}"], &[], None)),
        "x with 1 argument"
    );
    assert_eq!(summary(&command(&["x"], &[], None)), "x with no arguments");
    assert_eq!(
        summary(&openvas()),
        "GMP to gvmd at /run/gvmd/gvmd.sock as \"agent\", hosts 10.0.0.1,10.0.0.2, port list p, scan config s, cleanup"
    );
}

#[test]
fn the_nmap_preset_writes_xml_and_expands_every_target() {
    let j = nmap(&["-sV", "-T4"], false, &["10.0.0.0/24", "host.example"]);
    assert_eq!(
        argv_template(&j),
        ["nmap", "-sV", "-T4", "-oX", "{output}", "{targets}"]
    );
    assert_eq!(output_file(&j), "nmap.xml");
    assert_eq!(
        run_argv(&j, "/run/x/nmap.xml"),
        [
            "nmap",
            "-sV",
            "-T4",
            "-oX",
            "/run/x/nmap.xml",
            "10.0.0.0/24",
            "host.example"
        ]
    );
    assert_eq!(
        argv_template(&nmap(&["-sS"], true, &["a.example"])),
        [
            "nmap",
            "--privileged",
            "-sS",
            "-oX",
            "{output}",
            "{targets}"
        ]
    );
}

#[test]
fn the_zap_preset_runs_the_plan_it_writes_beside_the_report() {
    let j = zap("https://app.example");
    assert_eq!(
        argv_template(&j),
        [
            "/opt/zap/zap.sh",
            "-cmd",
            "-autorun",
            "{plan}",
            "-config",
            "a=b",
            "{target}"
        ]
    );
    assert_eq!(output_file(&j), "zap.json");
    let Ok(Launch::Process { argv, inputs }) = launch(&j, Path::new("/run/x/web-zap.json")) else {
        panic!("a process")
    };
    assert_eq!(
        argv,
        [
            "/opt/zap/zap.sh",
            "-cmd",
            "-autorun",
            "/run/x/zap-plan.yaml",
            "-config",
            "a=b",
            "https://app.example"
        ]
    );
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].path, Path::new("/run/x/zap-plan.yaml"));
    let plan = &inputs[0].contents;
    assert!(
        plan.contains("reportDir: /run/x\n") && plan.contains("reportFile: web-zap.json\n"),
        "{plan}"
    );
    assert!(
        plan.contains("- https://app.example\n") && !plan.contains("activeScan"),
        "{plan}"
    );
    assert_eq!(
        summary(&j),
        "/opt/zap/zap.sh with 6 arguments; mode passive (OWASP_ZAP), generated plan"
    );
}

#[test]
fn a_zap_user_plan_is_read_at_each_run_and_a_broken_one_stops_the_run() {
    let d = tempfile::tempdir().unwrap();
    let user = d.path().join("plan.yaml");
    std::fs::write(
        &user,
        "env: {contexts: [{urls: ['https://app.example']}]}\njobs:\n  - type: spider\n  - type: activeScan\n",
    )
    .unwrap();
    let j = zap_with(
        "https://app.example",
        ZapMode::Active,
        ZapPlan::User(user.clone()),
    );
    let Ok(Launch::Process { inputs, .. }) = launch(&j, Path::new("/run/y/zap.json")) else {
        panic!("a process")
    };
    assert!(
        inputs[0].contents.contains("type: activeScan"),
        "{}",
        inputs[0].contents
    );
    assert!(
        inputs[0].contents.contains("reportDir: /run/y"),
        "{}",
        inputs[0].contents
    );
    assert!(summary(&j).ends_with(&format!(
        "mode active (OWASP_ZAP_ACTIVE), user plan {}",
        user.display()
    )));
    // Changed since the configuration was loaded: the run does not start.
    std::fs::write(
        &user,
        "env: {contexts: [{urls: ['https://other.example']}]}\njobs: []\n",
    )
    .unwrap();
    let Err(e) = launch(&j, Path::new("/run/y/zap.json")) else {
        panic!("refused")
    };
    assert!(e.contains("other.example"), "{e}");
}

#[test]
fn the_sslyze_preset_writes_json() {
    let j = sslyze(&["a.example:443", "b.example"]);
    assert_eq!(
        argv_template(&j),
        [
            "sslyze",
            "--mozilla_config=modern",
            "--json_out",
            "{output}",
            "{targets}"
        ]
    );
    assert_eq!(output_file(&j), "sslyze.json");
    assert_eq!(
        run_argv(&j, "/o/sslyze.json"),
        [
            "sslyze",
            "--mozilla_config=modern",
            "--json_out",
            "/o/sslyze.json",
            "a.example:443",
            "b.example"
        ]
    );
}

#[test]
fn openvas_runs_no_process() {
    let j = openvas();
    assert!(argv_template(&j).is_empty());
    assert_eq!(output_file(&j), "openvas.xml");
    assert!(matches!(launch(&j, Path::new("/o")), Ok(Launch::Gmp(_))));
}

#[test]
fn placeholders_replace_whole_arguments_only() {
    let s = command(
        &[
            "/bin/scan",
            "--out={output}",
            "{output}",
            "x{target}",
            "{target}",
            "{targets}",
            "{targets}x",
            "{output}",
        ],
        &["a", "b"],
        Some("https://t.example"),
    );
    assert_eq!(output_file(&s), "output");
    assert_eq!(
        run_argv(&s, "/o/output"),
        [
            "/bin/scan",
            "--out={output}",
            "/o/output",
            "x{target}",
            "https://t.example",
            "a",
            "b",
            "{targets}x",
            "/o/output"
        ]
    );
    let none = command(&["/bin/scan", "{targets}", "{target}"], &[], None);
    assert_eq!(run_argv(&none, "/o"), ["/bin/scan", "{target}"]);
}

#[test]
fn exit_statuses_mean_what_each_scanner_says() {
    use ExitMeaning::*;
    let (n, z, s, c, o) = (
        nmap(&[], false, &["h.example"]),
        zap("https://app.example"),
        sslyze(&["h.example"]),
        command(&["x"], &[], None),
        openvas(),
    );
    for (job, code, meaning) in [
        (&n, 0, Success),
        (&n, 1, Failure),
        (&n, 2, Failure),
        (&z, 0, Success),
        (&z, 1, Failure),
        (&z, 2, Warnings),
        (&z, 3, Failure),
        (&z, 137, Failure),
        (&z, -1, Failure),
        (&s, 0, Success),
        (&s, 1, Failure),
        (&c, 0, Success),
        (&c, 2, Failure),
        (&o, 1, Failure),
    ] {
        assert_eq!(exit_meaning(job, code), meaning, "{} {code}", job.scanner());
    }
    assert!(exit_detail(&z, 1).is_some_and(|d| d.contains("errors")));
    assert_eq!(exit_detail(&z, 3), None);
    assert_eq!(exit_detail(&c, 1), None);
    // Only ZAP's failed runs keep their report back.
    assert!(failed_run_report_kept_back(&z).is_some());
    for j in [&n, &s, &c, &o] {
        assert_eq!(failed_run_report_kept_back(j), None, "{}", j.scanner());
    }
}
