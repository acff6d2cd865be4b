//! The configuration rules of the contract, one test each.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::spool::source::SourceRef;

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
    /// A `bin` directory holding an executable stub per name: a PATH for scanner lookups that
    /// does not depend on what the machine has installed.
    fn bin(&self, names: &[&str]) -> String {
        let bin = self.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for n in names {
            let p = bin.join(n);
            std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        bin.display().to_string()
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
    // A copy: the checkout's own modes (a umask of 002 makes it group-writable) are not what
    // this test is about.
    let d = Dir::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agent.toml");
    let p = d.config(&std::fs::read_to_string(example).unwrap());
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

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Gives `p` to uid 65534 (nobody); false (the test then skips) where that needs a root the
/// tests do not have. CI runs them as root.
fn give_away(p: &Path) -> bool {
    match rustix::fs::chown(p, Some(rustix::fs::Uid::from_raw(65534)), None) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("skipping: cannot chown {} to uid 65534: {e}", p.display());
            false
        }
    }
}

/// The refusal of an untrusted config file: `ConfigError::File` (exit 78) and its message.
fn file_error(r: Result<Config, ConfigError>) -> String {
    match r {
        Err(e @ ConfigError::File { .. }) => e.to_string(),
        Err(e) => panic!("expected the file to be refused, got {e}"),
        Ok(_) => panic!("expected the config file to be refused"),
    }
}

#[test]
fn a_config_file_writable_by_group_or_others_is_refused_with_the_chmod() {
    let d = Dir::new();
    let p = d.config("");
    for mode in [0o666, 0o620, 0o660, 0o602] {
        chmod(&p, mode);
        let e = file_error(Config::load(&p, &env(&[])));
        let real = std::fs::canonicalize(&p).unwrap();
        assert!(
            e.contains(&format!("run `chmod go-w {}`", real.display())),
            "{mode:o}: {e}"
        );
    }
    chmod(&p, 0o640);
    Config::load(&p, &env(&[])).unwrap();
}

#[test]
fn a_config_file_owned_by_another_user_is_refused_with_the_chown() {
    let d = Dir::new();
    let p = d.config("");
    if !give_away(&p) {
        return;
    }
    let e = file_error(Config::load(&p, &env(&[])));
    assert!(e.contains("is owned by uid 65534"), "{e}");
    let real = std::fs::canonicalize(&p).unwrap();
    assert!(
        e.contains(&format!("run `chown root {}`", real.display())),
        "{e}"
    );
}

#[test]
fn a_config_file_in_a_directory_others_can_write_is_refused_unless_it_is_sticky() {
    let d = Dir::new();
    let conf = d.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    let p = conf.join("agent.toml");
    std::fs::write(&p, format!("[agent]\nstate_dir = {:?}\n", d.state())).unwrap();
    chmod(&p, 0o600);
    chmod(&conf, 0o770);
    let e = file_error(Config::load(&p, &env(&[])));
    let real = std::fs::canonicalize(&conf).unwrap();
    assert!(
        e.contains(&format!(
            "directory {} is writable by group (and not sticky): run `chmod go-w {}`",
            real.display(),
            real.display()
        )),
        "{e}"
    );
    // Sticky, like /tmp: no one else can replace the file in it.
    chmod(&conf, 0o1777);
    Config::load(&p, &env(&[])).unwrap();
    // But its owner could.
    chmod(&conf, 0o755);
    if give_away(&conf) {
        let e = file_error(Config::load(&p, &env(&[])));
        assert!(
            e.contains("is owned by uid 65534") && e.contains("chown root"),
            "{e}"
        );
    }
}

#[test]
fn a_config_file_reached_by_a_link_is_judged_by_the_file_it_names() {
    let d = Dir::new();
    let p = d.config(&format!("[agent]\nstate_dir = {:?}", d.state()));
    let link = d.path().join("link.toml");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    Config::load(&link, &env(&[])).unwrap();
    chmod(&p, 0o620);
    let e = file_error(Config::load(&link, &env(&[])));
    assert!(e.contains("writable by group"), "{e}");
}

#[test]
fn a_key_file_others_could_write_or_own_is_refused_with_the_fix() {
    let d = Dir::new();
    let kf = d.path().join("api-key");
    std::fs::write(&kf, "secret-key\n").unwrap();
    let p = d.config(&format!(
        "[api]\nkey_file = {:?}\n[agent]\nstate_dir = {:?}",
        kf.display(),
        d.state()
    ));
    let real = std::fs::canonicalize(&kf).unwrap();
    chmod(&kf, 0o620);
    let ps = problems(Config::load(&p, &env(&[])));
    assert_eq!(keys(&ps), ["api.key_file"]);
    assert!(
        ps[0].message.contains(&format!(
            "is writable by group: run `chmod go-w {}`",
            real.display()
        )),
        "{}",
        ps[0].message
    );
    assert!(!ps[0].message.contains("secret-key"));
    chmod(&kf, 0o600);
    Config::load(&p, &env(&[])).unwrap();
    if !give_away(&kf) {
        return;
    }
    let ps = problems(Config::load(&p, &env(&[])));
    assert_eq!(keys(&ps), ["api.key_file"]);
    assert!(
        ps[0].message.contains("is owned by uid 65534") && ps[0].message.contains("run `chown "),
        "{}",
        ps[0].message
    );
    // The key file's directory counts too.
    rustix::fs::chown(&kf, Some(rustix::process::geteuid()), None).unwrap();
    Config::load(&p, &env(&[])).unwrap();
    let sub = d.path().join("keys");
    std::fs::create_dir(&sub).unwrap();
    std::fs::rename(&kf, sub.join("api-key")).unwrap();
    let p = d.config(&format!(
        "[api]\nkey_file = {:?}\n[agent]\nstate_dir = {:?}",
        sub.join("api-key").display(),
        d.state()
    ));
    chmod(&sub, 0o777);
    let ps = problems(Config::load(&p, &env(&[])));
    assert!(
        ps[0].message.starts_with("directory ") && ps[0].message.contains("(and not sticky)"),
        "{}",
        ps[0].message
    );
}

#[test]
fn a_key_file_that_becomes_writable_by_others_is_not_reloaded() {
    let d = Dir::new();
    let kf = d.path().join("api-key");
    std::fs::write(&kf, "rotated\n").unwrap();
    chmod(&kf, 0o600);
    let origin = KeyOrigin::KeyFile(kf.clone());
    assert_eq!(origin.reload().unwrap().expose(), "rotated");
    chmod(&kf, 0o602);
    assert!(origin.reload().is_none(), "writable by others");
    chmod(&kf, 0o600);
    if give_away(&kf) {
        assert!(origin.reload().is_none(), "owned by another user");
    }
}

#[test]
fn a_config_holding_the_key_that_others_can_read_gets_a_warning() {
    let d = Dir::new();
    let p = d.config(&format!(
        "[api]\nkey = \"k-123\"\n[agent]\nstate_dir = {:?}",
        d.state()
    ));
    assert!(Config::load(&p, &env(&[])).unwrap().warnings.is_empty());
    chmod(&p, 0o644);
    let c = Config::load(&p, &env(&[])).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("holds api.key") && w.contains("chmod o-r")),
        "{:?}",
        c.warnings
    );
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

#[test]
fn a_command_given_as_one_string_is_refused_without_quoting_it() {
    let d = Dir::new();
    let p = d.config(&format!(
        "[agent]\nstate_dir = {:?}\n[[job]]\nname = \"j\"\nscanner = \"command\"\nschedule = \"@daily\"\ncommand = \"/opt/scan --token=SECRET123 {{output}}\"",
        d.state()
    ));
    let e = file_error(Config::load(&p, &env(&[])));
    assert!(!e.contains("SECRET123"), "{e}");
    assert!(
        e.contains("invalid type: a string, expected a sequence") && e.contains("command"),
        "{e}"
    );
    // Other values are still quoted: they help find the mistake.
    let p = d.config(&format!(
        "[agent]\nstate_dir = {:?}\nupload_concurrency = \"two\"",
        d.state()
    ));
    let e = file_error(Config::load(&p, &env(&[])));
    assert!(e.contains("\"two\""), "{e}");
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
    let c = Config::load(&p, &env(&[("PATH", &d.bin(&["nmap"]))])).unwrap();
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
    let ps = problems(Config::load(&p, &env(&[("PATH", &d.bin(&["nmap"]))])));
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
    let ps = problems(Config::load(&p, &env(&[("PATH", &d.bin(&["nmap"]))])));
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

/// A config with `jobs` (TOML `[[job]]` bodies, without the header) and scanner stubs for
/// nmap, zap.sh and sslyze in PATH; loaded.
fn load_jobs(d: &Dir, jobs: &[&str]) -> Result<Config, ConfigError> {
    let mut body = format!("[agent]\nstate_dir = {:?}\n", d.state());
    for j in jobs {
        body.push_str("[[job]]\n");
        body.push_str(j);
        body.push('\n');
    }
    let p = d.config(&body);
    Config::load(
        &p,
        &env(&[("PATH", &d.bin(&["nmap", "zap.sh", "sslyze", "scan"]))]),
    )
}

/// The messages of the problems with key `k`, joined.
fn msg_of(ps: &[Problem], k: &str) -> String {
    ps.iter()
        .filter(|p| p.key == k)
        .map(|p| p.message.clone())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn keys(ps: &[Problem]) -> Vec<&str> {
    ps.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn each_preset_becomes_its_argv_template_with_the_contracts_defaults() {
    let d = Dir::new();
    let socket = d.path().join("gvmd.sock");
    let _gvmd = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let password = d.path().join("gmp-password");
    std::fs::write(&password, "secret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let vulns_job = format!(
        "name = \"vulns\"\nscanner = \"openvas\"\nschedule = \"@weekly\"\ntargets = [\"10.0.0.0/24\"]\n\
         gmp_username = \"agent\"\ngmp_password_file = {:?}\ngmp_socket = {:?}",
        password.display(),
        socket.display()
    );
    let c = load_jobs(
        &d,
        &[
            r#"name = "tcp"
scanner = "nmap"
schedule = "30 2 * * *"
targets = ["10.0.0.0/24", "host.example"]
args = ["-sS", "-T4"]
privileged = true"#,
            r#"name = "web"
scanner = "zap"
schedule = "@daily"
target = "https://intranet.example:8443/app"
timeout = "2h"
jitter = "5m"
catch_up = true"#,
            r#"name = "tls"
scanner = "sslyze"
schedule = "@weekly"
targets = ["intranet.example:443"]
accept_partial = true"#,
            r#"name = "custom"
scanner = "command"
schedule = "@hourly"
command = ["scan", "--json", "{output}", "{targets}"]
targets = ["10.0.0.1"]
scan_type = "NMAP_UDP""#,
            &vulns_job,
        ],
    )
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let [tcp, web, tls, custom, vulns] = &c.jobs[..] else {
        panic!("{:?}", c.jobs)
    };

    assert_eq!(tcp.scanner(), Scanner::Nmap);
    let ScannerJob::Nmap(n) = &tcp.kind else {
        panic!("{tcp:?}")
    };
    assert_eq!(n.program, "nmap");
    assert_eq!(n.args, ["-sS", "-T4"]);
    assert!(n.privileged);
    assert_eq!(tcp.kind.targets(), ["10.0.0.0/24", "host.example"]);
    assert_eq!(tcp.timeout, Duration::from_secs(4 * 3600), "default 4h");
    assert_eq!(tcp.jitter, Duration::ZERO);
    assert!(!tcp.catch_up);
    assert_eq!(
        tcp.hints.scan_type, None,
        "NMAP or NMAP_UDP: validation decides"
    );
    assert_eq!(tcp.schedule.expr(), "30 2 * * *");
    assert!(tcp.openvas().is_none());

    let ScannerJob::Zap(z) = &web.kind else {
        panic!("{web:?}")
    };
    assert_eq!(z.program, "zap.sh");
    assert!(z.args.is_empty());
    assert_eq!(z.target, "https://intranet.example:8443/app");
    assert_eq!(
        web.hints.target.as_deref(),
        Some("https://intranet.example:8443/app")
    );
    assert_eq!(
        web.hints.scan_type,
        Some(ScanType::OwaspZap),
        "passive by default"
    );
    assert_eq!(z.mode, ZapMode::Passive);
    assert_eq!(
        z.plan,
        ZapPlan::Generated {
            ajax_spider: false,
            durations: crate::config::job::Durations {
                spider: 24,
                spider_ajax: 12,
                passive_wait: 12,
                active: 60
            }
        },
        "shares of the 2h timeout"
    );
    assert_eq!(web.timeout, Duration::from_secs(7200));
    assert_eq!(web.jitter, Duration::from_secs(300));
    assert!(web.catch_up);

    let ScannerJob::Sslyze(t) = &tls.kind else {
        panic!("{tls:?}")
    };
    assert_eq!(t.program, "sslyze");
    assert!(t.args.is_empty());
    assert_eq!(tls.hints.scan_type, Some(ScanType::Sslyze));
    assert!(tls.hints.accept_partial);

    let ScannerJob::Command(cmd) = &custom.kind else {
        panic!("{custom:?}")
    };
    assert_eq!(&cmd.argv[..], ["scan", "--json", "{output}", "{targets}"]);
    assert_eq!(cmd.targets, ["10.0.0.1"]);
    assert_eq!(custom.hints.scan_type, Some(ScanType::NmapUdp));

    assert_eq!(vulns.scanner(), Scanner::Openvas);
    assert_eq!(vulns.hints.scan_type, Some(ScanType::Openvas));
    let o = vulns.openvas().unwrap();
    assert_eq!(o.endpoint, Endpoint::Socket(socket.clone()));
    assert_eq!(o.username, "agent");
    assert_eq!(o.password_file, password);
    assert_eq!(o.port_list_id, "33d0cd82-57c6-11e1-8ed1-406186ea4fc5");
    assert_eq!(o.scan_config_id, "daba56c8-73ec-11df-a475-002264764cea");
    assert_eq!(o.scanner_id, "08b69003-5fc2-4037-a479-93b440211c73");
    assert_eq!(o.min_qod, 70);
    assert!(!o.cleanup);
}

#[test]
fn openvas_jobs_need_a_login_and_a_private_password_file() {
    let d = Dir::new();
    let password = d.path().join("gmp-password");
    std::fs::write(&password, "secret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let base = |name: &str| {
        format!("name = \"{name}\"\nscanner = \"openvas\"\nschedule = \"@daily\"\ntargets = [\"10.0.0.1\"]\n")
    };
    std::fs::write(d.path().join("not-a-ca.pem"), "hello").unwrap();
    let jobs = [
        // 0: no login at all
        base("a"),
        // 1: a password file others can read; a port without a host; a name for an id
        format!(
            "{}gmp_username = \"agent\"\ngmp_password_file = {:?}\ngmp_port = 9390\nscan_config_id = \"Full and fast\"\nmin_qod = 101",
            base("b"),
            password.display()
        ),
        // 2: socket and host both
        format!(
            "{}gmp_username = \"agent\"\ngmp_password_file = \"/nonexistent/pw\"\ngmp_socket = \"/run/gvmd/gvmd.sock\"\ngmp_host = \"gvm.example\"",
            base("c")
        ),
        // 3: nmap's range syntax and a zone in targets; a CA file with no certificate
        format!(
            "name = \"e\"\nscanner = \"openvas\"\nschedule = \"@daily\"\ntargets = [\"10.0.0.1,5\", \"192.168.0-1.1-254\", \"fe80::1%eth0\"]\ngmp_username = \"agent\"\ngmp_password_file = \"/nonexistent/pw\"\ngmp_host = \"gvm.example\"\ngmp_ca_file = {:?}",
            d.path().join("not-a-ca.pem").display()
        ),
    ];
    let refs: Vec<&str> = jobs.iter().map(String::as_str).collect();
    let ps = problems(load_jobs(&d, &refs));
    let msg = |k: &str| {
        ps.iter()
            .filter(|p| p.key == k)
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    assert!(msg("job[0].gmp_username").contains("is required"), "{ps:?}");
    assert!(
        msg("job[0].gmp_password_file").contains("mode 600"),
        "{ps:?}"
    );
    assert!(
        msg("job[1].gmp_password_file").contains(&format!("chmod 600 {}", password.display())),
        "{ps:?}"
    );
    assert!(msg("job[1].gmp_port").contains("set gmp_host"), "{ps:?}");
    assert!(
        msg("job[1].scan_config_id").contains("not a gvmd id"),
        "{ps:?}"
    );
    assert!(msg("job[1].min_qod").contains("0 to 100"), "{ps:?}");
    assert!(msg("job[2].gmp_host").contains("not both"), "{ps:?}");
    assert!(
        msg("job[2].gmp_password_file").contains("cannot read"),
        "{ps:?}"
    );

    // Writable by group: refused like a key file, with the chmod.
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o620)).unwrap();
    let ps = problems(load_jobs(&d, &refs));
    assert!(
        msg_of(&ps, "job[1].gmp_password_file").contains("is writable by group: run `chmod go-w "),
        "{ps:?}"
    );

    // TLS: gvmd's port by default, the CA file made absolute.
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        d.path().join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let c = load_jobs(
        &d,
        &[&format!(
            "{}gmp_username = \"agent\"\ngmp_password_file = {:?}\ngmp_host = \"gvm.example\"\ngmp_ca_file = {:?}\ncleanup = true\nmin_qod = 0\nscan_config_id = \"DABA56C8-73EC-11DF-A475-002264764CEA\"",
            base("d"),
            password.display(),
            d.path().join("ca.pem").display()
        )],
    )
    .unwrap();
    let o = c.jobs[0].openvas().unwrap();
    assert_eq!(
        o.endpoint,
        Endpoint::Tls {
            host: "gvm.example".into(),
            port: 9390,
            ca_file: Some(d.path().join("ca.pem"))
        }
    );
    assert!(o.cleanup);
    assert_eq!(o.min_qod, 0);
    assert_eq!(
        o.scan_config_id, "daba56c8-73ec-11df-a475-002264764cea",
        "gvmd's ids are lower case"
    );
}

#[test]
fn a_scanner_given_as_a_path_must_exist_and_is_made_absolute() {
    let d = Dir::new();
    let zap = d.path().join("zap/zap.sh");
    std::fs::create_dir_all(zap.parent().unwrap()).unwrap();
    std::fs::write(&zap, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&zap, std::fs::Permissions::from_mode(0o755)).unwrap();
    let c = load_jobs(
        &d,
        &[&format!(
            "name = \"web\"\nscanner = \"zap\"\nschedule = \"@daily\"\ntarget = \"https://app.example\"\nzap_path = {:?}\nargs = [\"-config\", \"api.disablekey=true\"]",
            zap.display()
        )],
    )
    .unwrap();
    let ScannerJob::Zap(z) = &c.jobs[0].kind else {
        panic!("{:?}", c.jobs[0])
    };
    assert_eq!(z.program, zap.display().to_string());
    assert_eq!(z.args, ["-config", "api.disablekey=true"]);
}

fn zap_job(extra: &str) -> String {
    format!("name = \"z\"\nscanner = \"zap\"\nschedule = \"@daily\"\ntarget = \"https://app.example\"\n{extra}")
}

#[test]
fn a_zap_jobs_mode_decides_its_scan_type_and_a_scan_type_that_disagrees_is_refused() {
    let d = Dir::new();
    let c = load_jobs(
        &d,
        &[&zap_job(
            "mode = \"active\"\najax_spider = true\nscan_type = \"OWASP_ZAP_ACTIVE\"",
        )],
    )
    .unwrap();
    let ScannerJob::Zap(z) = &c.jobs[0].kind else {
        panic!("{:?}", c.jobs[0])
    };
    assert_eq!(z.mode, ZapMode::Active);
    assert!(matches!(
        z.plan,
        ZapPlan::Generated {
            ajax_spider: true,
            ..
        }
    ));
    assert_eq!(c.jobs[0].hints.scan_type, Some(ScanType::OwaspZapActive));

    for (extra, key, words) in [
        (
            "mode = \"aggressive\"",
            "job[0].mode",
            "\"aggressive\" is not one of",
        ),
        (
            "scan_type = \"OWASP_ZAP_ACTIVE\"",
            "job[0].scan_type",
            "disagrees with mode = \"passive\"",
        ),
        (
            "mode = \"active\"\nscan_type = \"OWASP_ZAP\"",
            "job[0].scan_type",
            "set mode = \"passive\"",
        ),
        (
            "plan = \"/nonexistent/plan.yaml\"",
            "job[0].plan",
            "cannot read /nonexistent/plan.yaml",
        ),
    ] {
        let ps = problems(load_jobs(&d, &[&zap_job(extra)]));
        assert_eq!(keys(&ps), [key], "{extra}");
        assert!(ps[0].message.contains(words), "{extra}: {}", ps[0].message);
    }
    // The zap keys on another scanner.
    let ps = problems(load_jobs(
        &d,
        &["name = \"n\"\nscanner = \"nmap\"\nschedule = \"@daily\"\ntargets = [\"h.example\"]\nmode = \"active\"\nplan = \"/x\""],
    ));
    assert_eq!(keys(&ps), ["job[0].mode", "job[0].plan"]);
    // A timeout too short for ZAP's jobs and its report is a warning.
    let c = load_jobs(&d, &[&zap_job("timeout = \"2m\"")]).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("timeout 2m leaves ZAP no time")),
        "{:?}",
        c.warnings
    );
    let c = load_jobs(&d, &[&zap_job("timeout = \"10m\"")]).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn a_zap_user_plan_is_checked_at_load_against_the_target_and_the_mode() {
    let d = Dir::new();
    let plan = d.path().join("plan.yaml");
    let write = |jobs: &str, url: &str| {
        std::fs::write(
            &plan,
            format!("env:\n  contexts:\n    - name: c\n      urls: [{url}]\njobs:\n{jobs}"),
        )
        .unwrap()
    };
    let with_plan = |extra: &str| zap_job(&format!("plan = {:?}\n{extra}", plan.display()));
    write("  - type: spider\n", "'https://app.example'");
    let c = load_jobs(&d, &[&with_plan("")]).unwrap();
    let ScannerJob::Zap(z) = &c.jobs[0].kind else {
        panic!()
    };
    assert_eq!(z.plan, ZapPlan::User(plan.clone()));
    assert_eq!(c.jobs[0].hints.scan_type, Some(ScanType::OwaspZap));

    for (jobs, url, extra, key, words) in [
        (
            "  - type: activeScan\n",
            "'https://app.example'",
            "",
            "job[0].plan",
            "set mode = \"active\"",
        ),
        (
            "  - type: spider\n",
            "'https://app.example'",
            "mode = \"active\"",
            "job[0].plan",
            "no activeScan",
        ),
        (
            "  - type: spider\n",
            "'https://other.example'",
            "",
            "job[0].plan",
            "not the job's target",
        ),
        (
            "  - type: spider\n",
            "'https://app.example'",
            "ajax_spider = true",
            "job[0].ajax_spider",
            "spiderAjax",
        ),
        (
            "  [oops\n",
            "'https://app.example'",
            "",
            "job[0].plan",
            "not valid YAML",
        ),
    ] {
        write(jobs, url);
        let ps = problems(load_jobs(&d, &[&with_plan(extra)]));
        assert_eq!(keys(&ps), [key], "{jobs} {extra}");
        assert!(
            ps[0].message.contains(words),
            "{jobs} {extra}: {}",
            ps[0].message
        );
    }
    write("  - type: activeScan\n", "'https://app.example'");
    let c = load_jobs(&d, &[&with_plan("mode = \"active\"")]).unwrap();
    assert_eq!(c.jobs[0].hints.scan_type, Some(ScanType::OwaspZapActive));
}

#[test]
fn a_missing_scanner_names_the_key_and_what_to_install() {
    let d = Dir::new();
    let body = format!(
        "[agent]\nstate_dir = {:?}\n\
         [[job]]\nname = \"a\"\nscanner = \"nmap\"\nschedule = \"@daily\"\ntargets = [\"10.0.0.1\"]\n\
         [[job]]\nname = \"b\"\nscanner = \"zap\"\nschedule = \"@daily\"\ntarget = \"https://app.example\"\n\
         [[job]]\nname = \"c\"\nscanner = \"zap\"\nschedule = \"@daily\"\ntarget = \"https://app.example\"\nzap_path = \"/nonexistent/zap.sh\"\n\
         [[job]]\nname = \"d\"\nscanner = \"sslyze\"\nschedule = \"@daily\"\ntargets = [\"app.example\"]\n\
         [[job]]\nname = \"e\"\nscanner = \"command\"\nschedule = \"@daily\"\ncommand = [\"no-such-scanner\", \"{{output}}\"]\n",
        d.state()
    );
    let p = d.config(&body);
    let empty = d.bin(&[]);
    let ps = problems(Config::load(&p, &env(&[("PATH", &empty)])));
    assert_eq!(
        keys(&ps),
        [
            "job[0].scanner",
            "job[1].scanner",
            "job[2].zap_path",
            "job[3].scanner",
            "job[4].command"
        ]
    );
    for (p, words) in ps.iter().zip([
        "install nmap",
        "set zap_path",
        "/nonexistent/zap.sh does not exist",
        "install SSLyze",
        "\"no-such-scanner\" is not in PATH",
    ]) {
        assert!(p.message.contains(words), "{p}");
    }
}

#[test]
fn every_job_mistake_is_a_problem_named_by_its_key() {
    let d = Dir::new();
    let base = |name: &str, scanner: &str| {
        format!("name = \"{name}\"\nscanner = \"{scanner}\"\nschedule = \"@daily\"\n")
    };
    let jobs = [
        // 0: nmap without targets, with keys of other scanners
        format!("{}zap_path = \"zap.sh\"\ntarget = \"10.0.0.1\"", base("a", "nmap")),
        // 1: zap without target, with nmap's keys
        format!("{}privileged = true\ntargets = [\"10.0.0.1\"]", base("b", "zap")),
        // 2: command on a preset; bad durations
        format!(
            "{}targets = [\"10.0.0.1\"]\ncommand = [\"scan\"]\ntimeout = \"soon\"\njitter = \"a bit\"",
            base("c", "sslyze")
        ),
        // 3: command without command; bad scan_type
        format!("{}scan_type = \"NMAPP\"", base("d", "command")),
        // 4: a scan type of another scanner; zero timeout; gmp keys on nmap
        format!(
            "{}targets = [\"10.0.0.1\"]\nscan_type = \"OWASP_ZAP\"\ntimeout = \"0s\"\ngmp_socket = \"/x\"",
            base("e", "nmap")
        ),
        // 5: duplicate name; args on command; {target} with no target
        format!(
            "{}command = [\"scan\", \"{{target}}\", \"{{output}}\"]\nargs = [\"-v\"]",
            base("a", "command")
        ),
        // 6: openvas with args; bad gmp_port
        format!("{}targets = [\"10.0.0.1\"]\nargs = [\"-x\"]\ngmp_port = 0", base("f", "openvas")),
        // 7: unknown scanner
        base("g", "nessus"),
    ];
    let refs: Vec<&str> = jobs.iter().map(String::as_str).collect();
    let ps = problems(load_jobs(&d, &refs));
    let ks = keys(&ps);
    for k in [
        "job[0].zap_path",
        "job[0].target",
        "job[0].targets",
        "job[1].privileged",
        "job[1].targets",
        "job[1].target",
        "job[2].command",
        "job[2].timeout",
        "job[2].jitter",
        "job[3].command",
        "job[3].scan_type",
        "job[4].scan_type",
        "job[4].timeout",
        "job[4].gmp_socket",
        "job[5].name",
        "job[5].args",
        "job[5].target",
        "job[6].args",
        "job[6].gmp_port",
        "job[7].scanner",
    ] {
        assert!(ks.contains(&k), "{k} missing from {ks:?}");
    }
    let msg = |k: &str| {
        ps.iter()
            .filter(|p| p.key == k)
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    assert!(
        msg("job[0].zap_path").contains("scanner = \"zap\" only"),
        "{}",
        msg("job[0].zap_path")
    );
    assert!(
        msg("job[1].targets").contains("use target ="),
        "{}",
        msg("job[1].targets")
    );
    assert!(
        msg("job[2].command").contains("put extra scanner arguments in args"),
        "{}",
        msg("job[2].command")
    );
    assert!(
        msg("job[4].scan_type").contains("NMAP or NMAP_UDP"),
        "{}",
        msg("job[4].scan_type")
    );
    assert!(
        msg("job[5].name").contains("is also job[0]"),
        "{}",
        msg("job[5].name")
    );
    let e = ConfigError::Invalid { problems: ps }.to_string();
    assert!(e.contains("job[0].targets: is required"), "{e}");
}

#[test]
fn job_targets_are_checked_before_they_reach_a_command_line() {
    let d = Dir::new();
    let nmap = |targets: &str| {
        format!("name = \"n\"\nscanner = \"nmap\"\nschedule = \"@daily\"\ntargets = {targets}")
    };
    let zap = |target: &str| {
        format!("name = \"z\"\nscanner = \"zap\"\nschedule = \"@daily\"\ntarget = {target:?}")
    };
    let good = nmap(
        r#"["127.0.0.1", "10.0.0.0/24", "::1", "fe80::/64", "host.example", "10.0.0.1-20", "192.168.0-1.1-254"]"#,
    );
    let c = load_jobs(&d, &[&good, &zap("https://intranet.example:8443/app")]).unwrap();
    assert_eq!(c.jobs[0].kind.targets().len(), 7);

    for (bad, why) in [
        ("-oN/tmp/x", "starts with '-'"),
        ("--script=x", "starts with '-'"),
        ("a b", "whitespace"),
        ("$(id)", "shell metacharacter"),
        (";rm", "shell metacharacter"),
        ("", "is empty"),
        ("http://", "is a URL"),
    ] {
        let ps = problems(load_jobs(&d, &[&nmap(&format!("[{bad:?}]"))]));
        assert_eq!(keys(&ps), ["job[0].targets"], "{bad:?}");
        assert!(ps[0].message.contains(why), "{bad:?}: {}", ps[0].message);
    }
    for (bad, why) in [
        ("-autorun", "starts with '-'"),
        ("intranet.example", "not an http(s) URL"),
        ("http://", "not an http(s) URL"),
        ("https://x.example/`id`", "shell metacharacter"),
    ] {
        let ps = problems(load_jobs(&d, &[&zap(bad)]));
        assert_eq!(keys(&ps), ["job[0].target"], "{bad:?}");
        assert!(ps[0].message.contains(why), "{bad:?}: {}", ps[0].message);
    }
}

#[test]
fn a_placeholder_inside_other_text_is_passed_as_written_with_a_warning() {
    let d = Dir::new();
    let c = load_jobs(
        &d,
        &[r#"name = "c"
scanner = "command"
schedule = "@daily"
command = ["scan", "--token=SECRET123", "--out={output}?token=SECRET123"]"#],
    )
    .unwrap();
    let ScannerJob::Command(cmd) = &c.jobs[0].kind else {
        panic!("{:?}", c.jobs[0])
    };
    assert_eq!(
        &cmd.argv[..],
        [
            "scan",
            "--token=SECRET123",
            "--out={output}?token=SECRET123"
        ]
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("job[0].command[2]") && w.contains("whole arguments only")),
        "{:?}",
        c.warnings
    );
    // The argument is named by its place: its text may hold a credential, and warnings are
    // logged at every start.
    assert!(
        c.warnings.iter().all(|w| !w.contains("SECRET123")),
        "{:?}",
        c.warnings
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("has no \"{output}\" argument")),
        "{:?}",
        c.warnings
    );
    // A preset names the place in its args.
    let c = load_jobs(
        &d,
        &[r#"name = "n"
scanner = "nmap"
schedule = "@daily"
targets = ["10.0.0.1"]
args = ["--script-args=token=SECRET123", "--resume={output}.SECRET123"]"#],
    )
    .unwrap();
    assert!(
        c.warnings.iter().any(|w| w.contains("job[0].args[1]"))
            && c.warnings.iter().all(|w| !w.contains("SECRET123")),
        "{:?}",
        c.warnings
    );
}

/// A finished one-off (explicit years, all past) and a jitter as long as the gap between runs
/// are warnings, not errors: the config stays valid, so the watches keep working.
#[test]
fn past_one_off_schedules_and_oversized_jitter_are_warnings() {
    let d = Dir::new();
    let c = load_jobs(
        &d,
        &[
            "name = \"once-in-2020\"\nscanner = \"nmap\"\nschedule = \"0 0 3 1 6 * 2020\"\ntargets = [\"127.0.0.1\"]",
            "name = \"jumpy\"\nscanner = \"nmap\"\nschedule = \"*/5 * * * *\"\njitter = \"10m\"\ntargets = [\"127.0.0.1\"]",
            "name = \"calm\"\nscanner = \"nmap\"\nschedule = \"*/5 * * * *\"\njitter = \"1m\"\ntargets = [\"127.0.0.1\"]",
        ],
    )
    .unwrap();
    assert_eq!(c.jobs.len(), 3);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("\"once-in-2020\"") && w.contains("no future time")));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("\"jumpy\"") && w.contains("jitter (10m)") && w.contains("5m")));
}

#[test]
fn two_loads_of_one_file_are_equal_and_a_changed_key_makes_them_differ() {
    let d = Dir::new();
    let password = d.path().join("gmp-password");
    std::fs::write(&password, "secret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let body = |nmap_args: &str, exclude: &str| {
        format!(
            "[api]\nkey = \"k-123\"\n[agent]\nstate_dir = {:?}\n\
             [[watch]]\npath = {:?}\ninclude = [\"*.xml\"]\nexclude = [{exclude:?}]\ntarget = \"t\"\n\
             [[job]]\nname = \"n\"\nscanner = \"nmap\"\nschedule = \"30 2 * * *\"\ntargets = [\"10.0.0.1\"]\nargs = [{nmap_args:?}]\n\
             [[job]]\nname = \"o\"\nscanner = \"openvas\"\nschedule = \"@daily\"\ntargets = [\"10.0.0.1\"]\ngmp_username = \"agent\"\ngmp_password_file = {:?}\n\
             [[job]]\nname = \"c\"\nscanner = \"command\"\nschedule = \"@hourly\"\ncommand = [\"scan\", \"{{output}}\"]\n",
            d.state(),
            d.path().join("inbox").display(),
            password.display()
        )
    };
    let path_env = env(&[("PATH", &d.bin(&["nmap", "scan"]))]);
    let load = |b: &str| Config::load(&d.config(b), &path_env).unwrap();
    let a = load(&body("-sV", "*.tmp.xml"));
    let b = load(&body("-sV", "*.tmp.xml"));
    assert_eq!(a, b);
    assert_ne!(a, load(&body("-sS", "*.tmp.xml")), "a job's args");
    assert_ne!(a, load(&body("-sV", "old-*.xml")), "a watch's exclude glob");
    let other_key = body("-sV", "*.tmp.xml").replace("k-123", "k-456");
    assert_ne!(a, load(&other_key), "the API key");
    let other_schedule = body("-sV", "*.tmp.xml").replace("30 2 * * *", "30 3 * * *");
    assert_ne!(a, load(&other_schedule), "a schedule");
    let mut warned = b.clone();
    warned.warnings.push("a remark, not a setting".into());
    assert_eq!(a, warned, "warnings are not compared");
}

/// The issue's several networks: `source` (a name, `{hostname}` expanded) or `source_id` on a
/// watch or job; a name given with an id is pinned to it; anything that names `[source]`'s
/// own source uses `[source]`.
#[test]
fn watches_and_jobs_name_their_own_source() {
    let d = Dir::new();
    let dir = |n: &str| {
        let p = d.path().join(n);
        std::fs::create_dir_all(&p).unwrap();
        p.display().to_string()
    };
    let (a, b, c, e) = (dir("a"), dir("b"), dir("c"), dir("e"));
    let p = d.config(&format!(
        "[source]\nname = \"Main\"\nid = \"main-id\"\n[agent]\nstate_dir = {:?}\n\
         [[watch]]\npath = {a:?}\nsource = \"DMZ ({{hostname}})\"\n\
         [[watch]]\npath = {b:?}\nsource_id = \"lab-id\"\n\
         [[watch]]\npath = {c:?}\nsource = \"Main\"\n\
         [[watch]]\npath = {e:?}\nsource = \"Pinned\"\nsource_id = \"pin-id\"\n\
         [[job]]\nname = \"j\"\nscanner = \"command\"\nschedule = \"@daily\"\ncommand = [\"/bin/true\", \"{{output}}\"]\nsource_id = \"main-id\"\n",
        d.state()
    ));
    let cfg = Config::load(&p, &env(&[("HOSTEDSCAN_API_KEY", "k")])).unwrap();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let refs: Vec<SourceRef> = cfg
        .watches
        .iter()
        .map(|w| w.source.source.clone())
        .collect();
    assert_eq!(
        refs,
        vec![
            SourceRef::Name(format!("DMZ ({host})")),
            SourceRef::Id("lab-id".into()),
            SourceRef::Default,
            SourceRef::Name("Pinned".into()),
        ]
    );
    assert_eq!(
        cfg.jobs[0].source.source,
        SourceRef::Default,
        "[source]'s own id"
    );
    let book = cfg.book(Path::new("/state"));
    assert_eq!(book.pins.get("Pinned").map(String::as_str), Some("pin-id"));
    assert_eq!(
        book.remembered(&SourceRef::Name("Pinned".into()))
            .as_deref(),
        Some("pin-id")
    );
    let uses = cfg.source_uses();
    assert_eq!(uses[0].source, SourceRef::Default);
    assert_eq!(
        uses[0].used_by,
        vec![format!("watch {c}"), "job j".to_string()]
    );
    assert_eq!(uses.len(), 4, "{uses:?}");
}

#[test]
fn conflicting_or_empty_sources_are_refused_with_their_key() {
    let d = Dir::new();
    let dir = |n: &str| {
        let p = d.path().join(n);
        std::fs::create_dir_all(&p).unwrap();
        p.display().to_string()
    };
    let (a, b, c, e) = (dir("a"), dir("b"), dir("c"), dir("e"));
    let p = d.config(&format!(
        "[source]\nname = \"Main\"\n[agent]\nstate_dir = {:?}\n\
         [[watch]]\npath = {a:?}\nsource = \"X\"\nsource_id = \"one\"\n\
         [[watch]]\npath = {b:?}\nsource = \"X\"\nsource_id = \"two\"\n\
         [[watch]]\npath = {c:?}\nsource = \"\"\n\
         [[watch]]\npath = {e:?}\nsource = \"Main\"\nsource_id = \"other\"\n\
         [[job]]\nname = \"j\"\nscanner = \"command\"\nschedule = \"@daily\"\ncommand = [\"/bin/true\", \"{{output}}\"]\nsource_id = \" \"\nsoruce = \"typo\"\n",
        d.state()
    ));
    let e = Config::load(&p, &env(&[("HOSTEDSCAN_API_KEY", "k")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("soruce"), "an unknown key is named: {e}");
    let p = d.config(&format!(
        "[source]\nname = \"Main\"\n[agent]\nstate_dir = {:?}\n\
         [[watch]]\npath = {a:?}\nsource = \"X\"\nsource_id = \"one\"\n\
         [[watch]]\npath = {b:?}\nsource = \"X\"\nsource_id = \"two\"\n\
         [[watch]]\npath = {c:?}\nsource = \"\"\n\
         [[watch]]\npath = {e:?}\nsource = \"Main\"\nsource_id = \"other\"\n\
         [[job]]\nname = \"j\"\nscanner = \"command\"\nschedule = \"@daily\"\ncommand = [\"/bin/true\", \"{{output}}\"]\nsource_id = \" \"\n",
        d.state()
    ));
    let all = problems(Config::load(&p, &env(&[("HOSTEDSCAN_API_KEY", "k")])));
    let text: Vec<String> = all
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    for (key, says) in [
        ("watch[1].source_id", "pinned to one by watch[0].source_id"),
        ("watch[2].source", "must not be empty"),
        ("watch[3].source_id", "[source]'s name"),
        ("job[0].source_id", "must not be empty"),
    ] {
        assert!(
            all.iter().any(|p| p.key == key && p.message.contains(says)),
            "{key}: {says} missing from {text:?}"
        );
    }
}
