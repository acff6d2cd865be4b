//! Nmap XML (`-oX`) rules: the root must be a real nmap run, the run must have finished
//! (`runstats/finished`, `exit` absent or success), and fatal errors are reported with nmap's
//! own `errormsg`. Also decides NMAP vs NMAP_UDP from the `scaninfo` protocols and collects
//! the sanity warnings (timed-out hosts, nothing scanned, inconsistent host counts).

use super::checker::{Found, XmlChecker};
use super::types::{reject, Format, RejectKind, Rejection, ScanType};
use super::xml::Tag;

/// Timed-out host addresses named in the warning; the rest are only counted.
const NAMED_HOSTS: usize = 5;

/// What the rules need from an `<nmaprun>` document, gathered as it streams by.
#[derive(Default)]
pub(crate) struct Run {
    /// A bare `<nmaprun>`: nmap stopped on a fatal error before scanning.
    early_fatal: bool,
    scaninfo: usize,
    udp: usize,
    in_host: bool,
    want_addr: bool,
    timed_out: usize,
    timed_out_addrs: Vec<String>,
    up_hosts_seen: u64,
    in_runstats: bool,
    finished: bool,
    exit: Option<String>,
    errormsg: Option<String>,
    total: Option<u64>,
    up: Option<u64>,
    down: Option<u64>,
}

impl Run {
    /// Checks the root element: it must have been written by nmap.
    pub(crate) fn new(root: &Tag<'_>) -> Result<Run, Rejection> {
        // Early fatal errors (bad options) write a bare <nmaprun> with only runstats inside.
        let early_fatal = !root.has_attrs();
        if !early_fatal {
            match root.attr("scanner").as_deref() {
            Some("nmap") => {}
            Some("masscan") => return Err(reject(
                Format::NmapXml,
                RejectKind::NotAReport,
                "masscan output (<nmaprun scanner=\"masscan\">) looks like Nmap XML but is not: \
                     HostedScan imports Nmap -oX reports; scan with nmap instead",
            )),
            Some(other) => {
                return Err(reject(
                    Format::NmapXml,
                    RejectKind::NotAReport,
                    format!(
                        "<nmaprun scanner=\"{other}\"> was not written by nmap: HostedScan imports \
                         Nmap -oX reports"
                    ),
                ))
            }
            None => {
                return Err(reject(
                    Format::NmapXml,
                    RejectKind::NotAReport,
                    "<nmaprun> has no scanner=\"nmap\" attribute, so it is not Nmap -oX output",
                ))
            }
        }
        }
        Ok(Run {
            early_fatal,
            ..Run::default()
        })
    }

    fn errormsg(&self) -> String {
        match self.errormsg.as_deref().map(str::trim) {
            Some(m) if !m.is_empty() => {
                let m: String = m.chars().take(1000).collect();
                format!("nmap says: \"{m}\"")
            }
            _ => "nmap gave no errormsg".to_string(),
        }
    }
}

impl XmlChecker for Run {
    fn start(&mut self, tag: &Tag<'_>, depth: usize) {
        match (depth, tag.name_bytes()) {
            (2, b"scaninfo") => {
                self.scaninfo += 1;
                if tag.attr("protocol").as_deref() == Some("udp") {
                    self.udp += 1;
                }
            }
            (2, b"host") => {
                self.in_host = true;
                if tag.attr("timedout").as_deref() == Some("true") {
                    self.timed_out += 1;
                    self.want_addr = self.timed_out_addrs.len() < NAMED_HOSTS;
                }
            }
            (3, b"status") if self.in_host && tag.attr("state").as_deref() == Some("up") => {
                self.up_hosts_seen += 1;
            }
            (3, b"address") if self.in_host && self.want_addr => {
                if let Some(a) = tag.attr("addr") {
                    self.timed_out_addrs.push(a);
                }
                self.want_addr = false;
            }
            (2, b"runstats") => self.in_runstats = true,
            (3, b"finished") if self.in_runstats => {
                self.finished = true;
                self.exit = tag.attr("exit");
                self.errormsg = tag.attr("errormsg");
            }
            (3, b"hosts") if self.in_runstats => {
                let num = |k: &str| tag.attr(k).and_then(|v| v.trim().parse::<u64>().ok());
                self.total = num("total");
                self.up = num("up");
                self.down = num("down");
            }
            _ => {}
        }
    }

    fn end(&mut self, depth: usize) {
        if depth == 2 {
            self.in_host = false;
            self.in_runstats = false;
        }
    }

    fn verdict(self) -> Result<Found, Rejection> {
        if self.early_fatal {
            return Err(reject(
                Format::NmapXml,
                RejectKind::ScanFailed,
                format!(
                    "nmap stopped with a fatal error before scanning (bare <nmaprun> without \
                     attributes); {}; fix the command line and re-run the scan",
                    self.errormsg()
                ),
            ));
        }
        if self.exit.as_deref() == Some("error") {
            return Err(reject(
                Format::NmapXml,
                RejectKind::ScanFailed,
                format!(
                    "nmap finished with exit=\"error\"; {}; fix the cause and re-run the scan",
                    self.errormsg()
                ),
            ));
        }
        let mut found = Found {
            format: Some(Format::NmapXml),
            scan_type: Some(if self.scaninfo > 0 && self.udp == self.scaninfo {
                ScanType::NmapUdp
            } else {
                ScanType::Nmap
            }),
            ..Found::default()
        };
        if !self.finished {
            found.partial = Some(
                "the Nmap report has no runstats/finished element, so the run did not finish; \
                 re-run the scan"
                    .to_string(),
            );
        }
        let w = &mut found.warnings;
        if let Some(exit) = self.exit.as_deref().filter(|e| *e != "success") {
            w.push(format!(
                "runstats/finished has an unexpected exit=\"{exit}\""
            ));
        }
        if self.timed_out > 0 {
            let mut names = self.timed_out_addrs.join(", ");
            if self.timed_out > self.timed_out_addrs.len() {
                names.push_str(", ...");
            }
            w.push(format!(
                "{} host(s) timed out (--host-timeout) and have partial results: {names}",
                self.timed_out
            ));
        }
        if self.total == Some(0) {
            w.push(
                "hosts total=\"0\": nothing was scanned (an invalid or empty target list?)"
                    .to_string(),
            );
        }
        if let (Some(total), Some(up), Some(down)) = (self.total, self.up, self.down) {
            if up.checked_add(down) != Some(total) {
                w.push(format!(
                    "runstats/hosts is inconsistent: up={up} + down={down} != total={total}"
                ));
            }
        }
        if let Some(up) = self.up {
            if self.finished && up != self.up_hosts_seen {
                w.push(format!(
                    "runstats/hosts says up={up} but the report holds {} host(s) that are up",
                    self.up_hosts_seen
                ));
            }
        }
        Ok(found)
    }
}
