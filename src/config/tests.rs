//! The configuration rules of the contract, one test each.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    /// A config file with `body`, mode 0600, and a state dir inside the temp dir.
    fn config(&self, body: &str) -> PathBuf {
        let p = self.path().join("agent.toml");
        let text = format!("{body}\n");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
    fn state(&self) -> String {
        self.path().join("state").display().to_string()
    }
}

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn problems(r: Result<Config, ConfigError>) -> Vec<Problem> {
    match r {
        Err(ConfigError::Invalid { problems }) => problems,
        Err(e) => panic!("expected problems, got {e}"),
        Ok(_) => panic!("expected the config to be refused"),
    }
}

#[test]
fn an_empty_file_gets_the_contracts_defaults() {
    let d = Dir::new();
    let p = d.config(&format!("[agent]\nstate_dir = {:?}", d.state()));
    let c = Config::load(&p, &env(&[])).unwrap();
    assert_eq!(c.api.url.as_str(), "https://api.hostedscan.com/v1");
    assert_eq!(c.api.timeout, Duration::from_secs(600));
    assert_eq!(c.api.connect_timeout, Duration::from_secs(10));
    assert!(c.source.name.starts_with("Internal scans (") && !c.source.name.contains("{hostname}"));
    assert_eq!(c.agent.upload_concurrency, 2);
    assert_eq!(c.agent.max_file_size, 2 * 1024 * 1024 * 1024);
    assert_eq!(c.agent.settle, Duration::from_secs(5));
    assert_eq!(c.agent.incomplete_grace, Duration::from_secs(600));
    assert_eq!(c.agent.rescan_interval, Duration::from_secs(60));
    assert_eq!(c.agent.after_upload, AfterUpload::Archive);
    assert_eq!(c.agent.archive_retention, Duration::from_secs(30 * 86400));
    assert_eq!(c.retry.initial_backoff, Duration::from_secs(1));
    assert_eq!(c.retry.max_backoff, Duration::from_secs(300));
    assert_eq!(c.retry.once_deadline, Duration::from_secs(600));
    assert_eq!(c.watches.len(), 1, "the default watch is state_dir/inbox");
    assert_eq!(c.watches[0].path, Path::new(&d.state()).join("inbox"));
    assert!(c.watches[0].wants("scan.xml"));
}

#[test]
fn the_commented_example_config_parses() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agent.toml");
    let c = Config::load(&p, &env(&[])).unwrap();
    assert_eq!(c.agent.state_dir, Path::new("/var/lib/hostedscan-agent"));
    assert_eq!(
        c.watches[0].path,
        Path::new("/var/lib/hostedscan-agent/inbox")
    );
    assert!(c.api.key.is_none());
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let d = Dir::new();
    let p = d.config("[api]\ntimeuot = \"5s\"");
    let e = Config::load(&p, &env(&[])).unwrap_err().to_string();
    assert!(e.contains("timeuot") && e.contains("api"), "{e}");
    let p = d.config("[agnet]\nsettle = \"5s\"");
    let e = Config::load(&p, &env(&[])).unwrap_err().to_string();
    assert!(e.contains("agnet"), "{e}");
    let p = d.config("[[watch]]\npath = \"/tmp\"\nrecursiv = true");
    let e = Config::load(&p, &env(&[])).unwrap_err().to_string();
    assert!(e.contains("recursiv"), "{e}");
}

#[test]
fn environment_overrides_the_file() {
    let d = Dir::new();
    let p = d.config(&format!(
        "[agent]\nstate_dir = {:?}\nupload_concurrency = 2",
        d.state()
    ));
    let c = Config::load(
        &p,
        &env(&[
            ("HOSTEDSCAN_AGENT__AGENT__UPLOAD_CONCURRENCY", "5"),
            ("HOSTEDSCAN_AGENT__API__URL", "http://127.0.0.1:8080/v1"),
            ("HOSTEDSCAN_AGENT__AGENT__SETTLE", "250ms"),
        ]),
    )
    .unwrap();
    assert_eq!(c.agent.upload_concurrency, 5);
    assert_eq!(c.api.url.as_str(), "http://127.0.0.1:8080/v1");
    assert_eq!(c.agent.settle, Duration::from_millis(250));
}

#[test]
fn every_bad_value_is_reported_at_once_with_its_key() {
    let d = Dir::new();
    let p = d.config(&format!(
        "[api]\nurl = \"http://api.example.com/v1\"\n[agent]\nstate_dir = {:?}\nsettle = \"soon\"\nmax_file_size = \"big\"\nafter_upload = \"shred\"\n[retry]\ninitial_backoff = \"10s\"\nmax_backoff = \"1s\"\n[[watch]]\npath = {:?}\nscan_type = \"NMAPP\"\ninclude = [\"[\"]",
        d.state(),
        d.path().join("in").display()
    ));
    let keys: Vec<String> = problems(Config::load(&p, &env(&[])))
        .into_iter()
        .map(|p| p.key)
        .collect();
    for k in [
        "api.url",
        "agent.settle",
        "agent.max_file_size",
        "agent.after_upload",
        "retry.max_backoff",
        "watch[0].scan_type",
        "watch[0].include",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
    }
}

#[test]
fn http_is_only_for_loopback() {
    let d = Dir::new();
    for (url, ok) in [
        ("http://127.0.0.1:9/v1", true),
        ("http://localhost:9/v1", true),
        ("http://[::1]:9/v1", true),
        ("https://api.example.com/v1", true),
        ("http://10.0.0.1/v1", false),
        ("http://api.example.com/v1", false),
        ("ftp://api.example.com/v1", false),
    ] {
        let p = d.config(&format!(
            "[api]\nurl = {url:?}\n[agent]\nstate_dir = {:?}",
            d.state()
        ));
        assert_eq!(Config::load(&p, &env(&[])).is_ok(), ok, "{url}");
    }
}

#[test]
fn a_missing_watch_directory_needs_an_existing_parent() {
    let d = Dir::new();
    let p = d.config(&format!(
        "[agent]\nstate_dir = {:?}\n[[watch]]\npath = {:?}",
        d.state(),
        d.path().join("new-inbox").display()
    ));
    let c = Config::load(&p, &env(&[])).unwrap();
    prepare_watch_dirs(&c).unwrap();
    assert!(d.path().join("new-inbox").is_dir());

    let p = d.config(&format!(
        "[agent]\nstate_dir = {:?}\n[[watch]]\npath = {:?}",
        d.state(),
        d.path().join("no/such/inbox").display()
    ));
    let ps = problems(Config::load(&p, &env(&[])));
    assert_eq!(ps[0].key, "watch[0].path");
    assert!(
        ps[0].message.contains("does not exist"),
        "{}",
        ps[0].message
    );
}

#[test]
fn a_key_file_readable_by_others_is_refused_with_the_fix() {
    let d = Dir::new();
    let kf = d.path().join("api-key");
    std::fs::write(&kf, "secret-key\n").unwrap();
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = d.config(&format!(
        "[api]\nkey_file = {:?}\n[agent]\nstate_dir = {:?}",
        kf.display(),
        d.state()
    ));
    let ps = problems(Config::load(&p, &env(&[])));
    assert_eq!(ps[0].key, "api.key_file");
    assert!(ps[0].message.contains("chmod 600"), "{}", ps[0].message);
    assert!(!ps[0].message.contains("secret-key"));

    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = Config::load(&p, &env(&[])).unwrap();
    assert_eq!(c.api.require_key().unwrap().expose(), "secret-key");
    assert!(
        !format!("{c:?}").contains("secret-key"),
        "Debug output must not show the key"
    );
}

#[test]
fn a_config_file_writable_by_others_is_refused() {
    let d = Dir::new();
    let p = d.config("");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = Config::load(&p, &env(&[])).unwrap_err().to_string();
    assert!(e.contains("chmod o-w"), "{e}");
}

#[test]
fn the_key_comes_from_the_first_source_that_has_one() {
    let d = Dir::new();
    let creds = d.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("api-key"), "from-credential").unwrap();
    let kf = d.path().join("key");
    std::fs::write(&kf, "from-file").unwrap();
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with_file = format!(
        "[api]\nkey = \"from-config\"\nkey_file = {:?}\n[agent]\nstate_dir = {:?}",
        kf.display(),
        d.state()
    );
    let without_file = format!(
        "[api]\nkey = \"from-config\"\n[agent]\nstate_dir = {:?}",
        d.state()
    );
    let key = |body: &str, e: &[(&str, &str)]| {
        let p = d.config(body);
        Config::load(&p, &env(e))
            .unwrap()
            .api
            .require_key()
            .unwrap()
            .expose()
            .to_string()
    };
    let cred = creds.display().to_string();
    assert_eq!(
        key(
            &with_file,
            &[
                ("CREDENTIALS_DIRECTORY", &cred),
                ("HOSTEDSCAN_API_KEY", "from-env")
            ]
        ),
        "from-credential"
    );
    assert_eq!(
        key(&with_file, &[("HOSTEDSCAN_API_KEY", "from-env")]),
        "from-file"
    );
    assert_eq!(
        key(&without_file, &[("HOSTEDSCAN_API_KEY", "from-env")]),
        "from-env"
    );
    assert_eq!(key(&without_file, &[]), "from-config");
}

#[test]
fn a_missing_key_is_a_config_error_only_when_one_is_needed() {
    let d = Dir::new();
    let p = d.config(&format!("[agent]\nstate_dir = {:?}", d.state()));
    let c = Config::load(&p, &env(&[])).unwrap();
    let e = c.api.require_key().unwrap_err().to_string();
    assert!(e.contains("api.key_file"), "{e}");
}

#[test]
fn dotfiles_and_partial_names_are_never_wanted() {
    let d = Dir::new();
    let p = d.config(&format!(
        "[agent]\nstate_dir = {:?}\n[[watch]]\npath = {:?}\ninclude = [\"*.xml\", \"*.json\"]\nexclude = [\"*-draft.*\"]",
        d.state(),
        d.path().display()
    ));
    let c = Config::load(&p, &env(&[])).unwrap();
    let w = &c.watches[0];
    assert!(w.wants("scan.xml") && w.wants("report.json"));
    for n in [
        ".scan.xml",
        "scan.xml.tmp",
        "scan.xml.part",
        "scan.xml.swp",
        "scan.xml~",
        "scan.csv",
        "a-draft.xml",
    ] {
        assert!(!w.wants(n), "{n}");
    }
}

#[test]
fn a_watch_directory_may_not_hold_the_state_directory() {
    let d = Dir::new();
    for (path, recursive, ok) in [
        (d.state(), false, false),
        (d.path().display().to_string(), true, false),
        (d.path().display().to_string(), false, true),
        (format!("{}/queue", d.state()), false, false),
        (format!("{}/inbox", d.state()), false, true),
    ] {
        let p = d.config(&format!(
            "[agent]\nstate_dir = {:?}\n[[watch]]\npath = {path:?}\nrecursive = {recursive}",
            d.state()
        ));
        assert_eq!(
            Config::load(&p, &env(&[])).is_ok(),
            ok,
            "{path} recursive={recursive}"
        );
    }
}

#[test]
fn a_syntax_error_never_echoes_the_line_with_the_key() {
    let d = Dir::new();
    let p = d.config("[api]\nkey = \"s3cret-key-value\n");
    let e = Config::load(&p, &env(&[])).unwrap_err().to_string();
    assert!(!e.contains("s3cret"), "{e}");
    assert!(e.contains("line 2") || e.contains("TOML"), "{e}");
}

/// A config with one `[[job]]` per `(schedule, timezone)`, `None` leaving timezone unset.
fn jobs_config(d: &Dir, jobs: &[(&str, Option<&str>)]) -> PathBuf {
    let mut body = format!("[agent]\nstate_dir = {:?}\n", d.state());
    for (i, (schedule, timezone)) in jobs.iter().enumerate() {
        body.push_str(&format!(
            "[[job]]\nname = \"job-{i}\"\nscanner = \"nmap\"\nschedule = {schedule:?}\ntargets = [\"10.0.0.0/24\"]\n"
        ));
        if let Some(tz) = timezone {
            body.push_str(&format!("timezone = {tz:?}\n"));
        }
    }
    d.config(&body)
}

#[test]
fn job_schedules_in_every_accepted_form_load() {
    let d = Dir::new();
    let p = jobs_config(
        &d,
        &[
            ("30 2 * * *", None),
            ("0 9 * * 1-5", Some("local")),
            ("*/5 * * * * *", Some("UTC")),
            ("0 0 12 1 1 * 2099", Some("Europe/Berlin")),
            ("@weekly", Some("America/New_York")),
        ],
    );
    let c = Config::load(&p, &env(&[])).unwrap();
    assert_eq!(c.jobs.len(), 5);
}

#[test]
fn a_bad_cron_line_names_the_jobs_schedule_key() {
    let d = Dir::new();
    let p = jobs_config(
        &d,
        &[
            ("30 2 * *", None),
            ("60 2 * * *", None),
            ("0 9 * * 8", None),
            ("@reboot", None),
            ("0 0 30 2 *", None),
        ],
    );
    let ps = problems(Config::load(&p, &env(&[])));
    let keys: Vec<&str> = ps.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "job[0].schedule",
            "job[1].schedule",
            "job[2].schedule",
            "job[3].schedule",
            "job[4].schedule"
        ]
    );
    for (p, words) in ps.iter().zip([
        "expected 5 fields (minute hour day-of-month month day-of-week)",
        "the minute field \"60\" is not valid: use 0-59",
        "the day-of-week field \"8\"",
        "\"@reboot\" is not supported",
        "never fires",
    ]) {
        assert!(p.message.contains(words), "{p}");
    }
}

#[test]
fn a_bad_time_zone_names_the_jobs_timezone_key() {
    let d = Dir::new();
    let p = jobs_config(
        &d,
        &[
            ("30 2 * * *", Some("Europe/Berln")),
            ("30 2 * * *", Some("utc")),
            ("30 2 *", Some("Mars/Olympus")),
        ],
    );
    let ps = problems(Config::load(&p, &env(&[])));
    let keys: Vec<&str> = ps.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "job[0].timezone",
            "job[1].timezone",
            "job[2].timezone",
            "job[2].schedule"
        ],
        "a bad zone and a bad schedule are both reported"
    );
    assert!(ps[0].message.contains("\"Europe/Berln\""), "{}", ps[0]);
    assert!(ps[1].message.contains("did you mean \"UTC\""), "{}", ps[1]);
    let e = ConfigError::Invalid { problems: ps }.to_string();
    assert!(
        e.starts_with("job[0].timezone: unknown time zone \"Europe/Berln\""),
        "{e}"
    );
}
