//! SSLyze JSON rules (3.x and later): at least one server must have been scanned
//! (`scan_status` COMPLETED in 5.x+, or `scan_commands_results` in the legacy 3.x/4.x shape);
//! a run where every server was unreachable is a failed scan; 5.x+ files must carry
//! `sslyze_version` and both dates. Failed scan commands and skipped servers become warnings.

use std::fmt;

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::checker::Found;
use super::json::{object_in_memory, present, CountSeed, Elements, Scalar, Take};
use super::types::{reject, Format, RejectKind, Rejection, ScanType};

/// Servers and failed commands named in reasons and warnings; the rest are counted.
const NAMED: usize = 5;

/// What the top-level visitor collects for SSLyze.
#[derive(Debug, Default)]
pub(crate) struct Sslyze {
    servers: Option<Servers>,
    version: bool,
    started: bool,
    completed: bool,
    /// Keys only the 3.x/4.x output has.
    legacy_keys: bool,
    invalid_server_strings: usize,
    connectivity_errors: usize,
}

impl Sslyze {
    /// Reads the value of top-level `key` if it is one of SSLyze's; `false` leaves it unread.
    /// `fast` reads the elements of the server list from memory.
    pub(crate) fn take<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        fast: &dyn Elements,
    ) -> Result<bool, A::Error> {
        match key {
            "server_scan_results" => {
                let servers = self.servers.get_or_insert_with(Default::default);
                map.next_value_seed(ServersSeed(servers, fast))?;
            }
            "sslyze_version" => self.version = present(map)?,
            "date_scans_started" => self.started = present(map)?,
            "date_scans_completed" => self.completed = present(map)?,
            "total_scan_time" => {
                map.next_value::<IgnoredAny>()?;
                self.legacy_keys = true;
            }
            "invalid_server_strings" => {
                self.invalid_server_strings = map.next_value_seed(CountSeed)?;
            }
            "server_connectivity_errors" => {
                self.legacy_keys = true;
                self.connectivity_errors = map.next_value_seed(CountSeed)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The server list is there: this is SSLyze's, and its rules decide.
    pub(crate) fn claimed(&self) -> bool {
        self.servers.is_some()
    }
}

#[derive(Debug, Default)]
struct Servers {
    count: usize,
    completed: usize,
    legacy: usize,
    unreachable: usize,
    unreachable_named: Vec<String>,
    other_status: Vec<String>,
    missing_keys: Vec<&'static str>,
    command_errors: usize,
    command_errors_named: Vec<String>,
}

pub(crate) fn verdict(s: Sslyze) -> Result<Found, Rejection> {
    let servers = s.servers.unwrap_or_default();
    let legacy = s.legacy_keys || servers.legacy > 0;
    if servers.count == 0 {
        let why = if s.invalid_server_strings > 0 {
            format!(
                " ({} server string(s) were invalid and never scanned)",
                s.invalid_server_strings
            )
        } else {
            String::new()
        };
        return Err(reject(
            Format::SslyzeJson,
            RejectKind::ScanFailed,
            format!(
                "SSLyze scanned nothing: server_scan_results is empty{why}; check the target list \
                 and re-run"
            ),
        ));
    }
    if !legacy {
        let mut missing: Vec<&str> = Vec::new();
        if !s.version {
            missing.push("sslyze_version");
        }
        if !s.started {
            missing.push("date_scans_started");
        }
        if !s.completed {
            missing.push("date_scans_completed");
        }
        for k in &servers.missing_keys {
            if !missing.contains(k) {
                missing.push(k);
            }
        }
        if !missing.is_empty() {
            return Err(reject(
                Format::SslyzeJson,
                RejectKind::Malformed,
                format!(
                    "the SSLyze JSON lacks required key(s) {}: it does not match SSLyze's output \
                     schema (an edited or abridged file?); submit the file sslyze --json_out wrote",
                    missing.join(", ")
                ),
            ));
        }
    }
    if servers.completed == 0 {
        let reason = if servers.unreachable == servers.count {
            format!(
                "no server could be scanned: every server is ERROR_NO_CONNECTIVITY ({}); check \
                 that the targets are reachable and re-run the scan",
                named(&servers.unreachable_named, servers.unreachable)
            )
        } else {
            format!(
                "no server was scanned completely (scan_status: {}); re-run the scan",
                servers.other_status.join(", ")
            )
        };
        return Err(reject(Format::SslyzeJson, RejectKind::ScanFailed, reason));
    }
    let mut found = Found {
        format: Some(Format::SslyzeJson),
        scan_type: Some(ScanType::Sslyze),
        ..Found::default()
    };
    let w = &mut found.warnings;
    if servers.unreachable > 0 {
        w.push(format!(
            "{} server(s) could not be reached (ERROR_NO_CONNECTIVITY) and have no results: {}",
            servers.unreachable,
            named(&servers.unreachable_named, servers.unreachable)
        ));
    }
    if servers.command_errors > 0 {
        w.push(format!(
            "{} scan command(s) failed (status ERROR), so those checks are missing: {}",
            servers.command_errors,
            named(&servers.command_errors_named, servers.command_errors)
        ));
    }
    if s.invalid_server_strings > 0 {
        w.push(format!(
            "{} server string(s) were invalid and never scanned (invalid_server_strings)",
            s.invalid_server_strings
        ));
    }
    if s.connectivity_errors > 0 {
        w.push(format!(
            "{} server(s) could not be reached (server_connectivity_errors)",
            s.connectivity_errors
        ));
    }
    if legacy {
        w.push("legacy SSLyze 3.x/4.x JSON shape".to_string());
    }
    Ok(found)
}

fn named(names: &[String], total: usize) -> String {
    let mut s = names.join(", ");
    if total > names.len() {
        s.push_str(", ...");
    }
    s
}

struct ServersSeed<'a>(&'a mut Servers, &'a dyn Elements);

impl<'de> DeserializeSeed<'de> for ServersSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ServersSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of SSLyze server scan results")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let servers = self.0;
        // Each server the parser reads leaves it after an element, where the next ones can be
        // taken from memory while they parse there; the rest (and any error) is the parser's.
        while let Some(one) = seq.next_element::<Server>()? {
            servers.add(one);
            while self
                .1
                .next_object(&mut |bytes| match object_in_memory::<Server>(bytes) {
                    Ok((one, used)) => {
                        servers.add(one);
                        Take::Used(used)
                    }
                    Err(take) => take,
                })
            {}
        }
        Ok(())
    }
}

#[derive(Default)]
struct Server {
    uuid: bool,
    scan_status: Option<String>,
    legacy_results: bool,
    location: Location,
    trace: Option<String>,
    command_errors: Vec<String>,
}

#[derive(Default)]
struct Location {
    hostname: Option<String>,
    port: Option<String>,
}

impl Servers {
    fn add(&mut self, s: Server) {
        self.count += 1;
        let name = match (&s.location.hostname, &s.location.port) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.clone(),
            _ => format!("server #{}", self.count),
        };
        if s.legacy_results && s.scan_status.is_none() {
            self.legacy += 1;
            self.completed += 1;
        } else {
            if !s.uuid && !self.missing_keys.contains(&"uuid") {
                self.missing_keys.push("uuid");
            }
            match s.scan_status.as_deref() {
                Some("COMPLETED") => self.completed += 1,
                Some("ERROR_NO_CONNECTIVITY") => {
                    self.unreachable += 1;
                    if self.unreachable_named.len() < NAMED {
                        let why = s.trace.map(|t| format!(": {t}")).unwrap_or_default();
                        self.unreachable_named.push(format!("{name}{why}"));
                    }
                }
                Some(other) => {
                    if self.other_status.len() < NAMED {
                        self.other_status.push(format!("{name} {other}"));
                    }
                }
                None => {
                    if !self.missing_keys.contains(&"scan_status") {
                        self.missing_keys.push("scan_status");
                    }
                }
            }
        }
        for c in s.command_errors {
            self.command_errors += 1;
            if self.command_errors_named.len() < NAMED {
                self.command_errors_named.push(format!("{name} {c}"));
            }
        }
    }
}

impl<'de> Deserialize<'de> for Server {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Server, D::Error> {
        let mut one = Server::default();
        ServerSeed(&mut one).deserialize(d)?;
        Ok(one)
    }
}

struct ServerSeed<'a>(&'a mut Server);

impl<'de> DeserializeSeed<'de> for ServerSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ServerSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SSLyze server scan result object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let s = self.0;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "uuid" => {
                    map.next_value::<IgnoredAny>()?;
                    s.uuid = true;
                }
                "scan_status" => s.scan_status = map.next_value::<Scalar>()?.0,
                "server_location" => map.next_value_seed(LocationSeed(&mut s.location))?,
                // 3.x/4.x nest the location one level down.
                "server_info" => map.next_value_seed(ServerInfoSeed(&mut s.location))?,
                "scan_result" => map.next_value_seed(CommandsSeed(&mut s.command_errors))?,
                "scan_commands_results" => {
                    map.next_value::<IgnoredAny>()?;
                    s.legacy_results = true;
                }
                "scan_commands_errors" => {
                    let n = map.next_value_seed(CountSeed)?;
                    for _ in 0..n.min(NAMED) {
                        s.command_errors.push("(scan_commands_errors)".to_string());
                    }
                }
                "connectivity_error_trace" => {
                    s.trace = map.next_value::<Scalar>()?.0.and_then(|t| {
                        t.lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .map(|l| l.trim().chars().take(200).collect())
                    });
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct LocationSeed<'a>(&'a mut Location);

impl<'de> DeserializeSeed<'de> for LocationSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LocationSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a server location object")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "hostname" => self.0.hostname = map.next_value::<Scalar>()?.0,
                "port" => self.0.port = map.next_value::<Scalar>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct ServerInfoSeed<'a>(&'a mut Location);

impl<'de> DeserializeSeed<'de> for ServerInfoSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ServerInfoSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SSLyze server_info object")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "server_location" {
                map.next_value_seed(LocationSeed(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `scan_result`: null, or a map from scan command to `{status, error_reason, ...}`.
struct CommandsSeed<'a>(&'a mut Vec<String>);

impl<'de> DeserializeSeed<'de> for CommandsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CommandsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SSLyze scan_result object or null")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(command) = map.next_key::<String>()? {
            let mut c = Command::default();
            map.next_value_seed(CommandSeed(&mut c))?;
            if c.status.as_deref() == Some("ERROR") && self.0.len() < 64 {
                let why = c.reason.map(|r| format!(" ({r})")).unwrap_or_default();
                self.0.push(format!("{command}{why}"));
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Command {
    status: Option<String>,
    reason: Option<String>,
}

struct CommandSeed<'a>(&'a mut Command);

impl<'de> DeserializeSeed<'de> for CommandSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CommandSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SSLyze scan command result")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "status" => self.0.status = map.next_value::<Scalar>()?.0,
                "error_reason" => self.0.reason = map.next_value::<Scalar>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}
