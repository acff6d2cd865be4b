//! Reports of the GMP stand-in: one per task run, its results generated on demand (a test can
//! ask for hundreds of MB) and get_reports, planned under the state lock and written result by
//! result outside it, in gvmd's export shape.

use std::fmt::Write as _;
use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::commands::{not_found, Reply};
use super::connection::Elem;
use super::listing::{get_end, parse_filter};
use super::runs::Status;
use super::{esc, now, GmpStandIn, State, DEFAULT_USER, GMP_VERSION, REPORT_FORMAT_XML};

/// How much report text is gathered before each write to the socket.
const CHUNK: usize = 64 * 1024;

/// A report: one task run; its results are generated when it is written (see [`write_report`]).
#[derive(Clone, Debug)]
pub(super) struct Report {
    pub(super) id: String,
    /// Sequence number, for result ids.
    pub(super) seq: u64,
    pub(super) task_id: String,
    pub(super) status: Status,
    pub(super) results: usize,
    pub(super) padding: usize,
    pub(super) created: String,
    pub(super) scan_start: String,
    pub(super) scan_end: String,
}

impl GmpStandIn {
    /// Results in each report that ends from now on (default 3).
    pub fn set_results(&self, n: usize) {
        self.state().results = n;
    }

    /// Extra bytes in each result's description, to make results bigger (default 0; a result
    /// is about 1 KB without padding).
    pub fn set_result_padding(&self, bytes: usize) {
        self.state().padding = bytes;
    }
}

impl State {
    pub(super) fn new_report(&mut self, task_id: &str, status: Status) -> String {
        let id = self.new_id(3);
        let now = now();
        self.reports.insert(
            id.clone(),
            Report {
                id: id.clone(),
                seq: self.counter,
                task_id: task_id.to_string(),
                status,
                results: 0,
                padding: 0,
                created: now.clone(),
                scan_start: now,
                scan_end: String::new(),
            },
        );
        id
    }
}

/// A get_reports answer, planned under the state lock so that it can be written outside it.
pub(super) struct ReportsJob {
    /// Everything before the first report.
    head: String,
    reports: Vec<ReportPlan>,
    /// Everything after the last report.
    tail: String,
}

/// One report of a [`ReportsJob`]: what is needed of the state to write it.
struct ReportPlan {
    report: Report,
    task_name: String,
    target_id: String,
    target_name: String,
    hosts: Vec<String>,
    format_id: Option<String>,
    details: bool,
    /// Results to write: [from, to).
    from: usize,
    to: usize,
    start_attr: i64,
    max_attr: i64,
    term: String,
}

pub(super) fn get_reports(s: &mut State, cmd: &Elem) -> Reply {
    const C: &str = "get_reports";
    let format_id = cmd.attr("format_id").filter(|f| !f.is_empty());
    if let Some(fmt) = format_id {
        if fmt != REPORT_FORMAT_XML {
            return Reply::Xml(not_found(C, "report format", fmt));
        }
    }
    let visible = |s: &State, r: &Report| s.tasks.iter().any(|t| t.id == r.task_id && !t.in_trash);
    let selected: Vec<Report> = match cmd.attr("report_id") {
        Some(id) => match s.reports.get(id).filter(|r| visible(s, r)) {
            Some(r) => vec![r.clone()],
            None => return Reply::Xml(not_found(C, "report", id)),
        },
        None => {
            let mut all: Vec<Report> = s
                .reports
                .values()
                .filter(|r| visible(s, r))
                .cloned()
                .collect();
            all.sort_by_key(|r| r.seq);
            all
        }
    };
    let f = parse_filter(cmd.attr("filter").unwrap_or(""));
    let ignore_pagination = cmd.flag("ignore_pagination");
    let details = cmd.flag("details");
    let mut plans = Vec::new();
    for r in selected {
        let task = s.tasks.iter().find(|t| t.id == r.task_id);
        let target = task.and_then(|t| s.targets.iter().find(|x| x.id == t.target_id));
        let n = r.results;
        let (from, to, start_attr, max_attr) = if ignore_pagination {
            (0, n, 1, -1)
        } else {
            let from = ((f.first - 1) as usize).min(n);
            let to = if f.rows < 0 {
                n
            } else {
                (from + f.rows as usize).min(n)
            };
            (from, to, f.first, f.rows)
        };
        plans.push(ReportPlan {
            task_name: task.map(|t| t.name.clone()).unwrap_or_default(),
            target_id: target.map(|t| t.id.clone()).unwrap_or_default(),
            target_name: target.map(|t| t.name.clone()).unwrap_or_default(),
            hosts: target
                .map(|t| t.hosts.split(", ").map(str::to_string).collect())
                .unwrap_or_else(|| vec!["127.0.0.1".to_string()]),
            format_id: format_id.map(str::to_string),
            details,
            from,
            to,
            start_attr,
            max_attr,
            term: format!(
                "apply_overrides=0 min_qod=70 first={} rows={} sort-reverse=severity",
                f.first, f.rows
            ),
            report: r,
        });
    }
    let count = plans.len();
    let mut tail = String::new();
    let list_term = cmd.attr("filter").unwrap_or("").trim().to_string();
    get_end(&mut tail, "report", &list_term, 1, -1, count, count);
    Reply::Reports(ReportsJob {
        head: "<get_reports_response status=\"200\" status_text=\"OK\">".to_string(),
        reports: plans,
        tail,
    })
}

pub(super) async fn write_reports<W: AsyncWrite + Unpin>(
    w: &mut W,
    job: ReportsJob,
) -> io::Result<()> {
    let mut out = String::with_capacity(CHUNK + 8192);
    out.push_str(&job.head);
    for p in &job.reports {
        write_report(w, &mut out, p).await?;
    }
    out.push_str(&job.tail);
    w.write_all(out.as_bytes()).await
}

async fn spill<W: AsyncWrite + Unpin>(w: &mut W, out: &mut String) -> io::Result<()> {
    if out.len() >= CHUNK {
        w.write_all(out.as_bytes()).await?;
        out.clear();
    }
    Ok(())
}

/// One `<report>` of a get_reports_response (the export shape: an outer report with the
/// format attributes wrapping the inner report), generated as it is written.
async fn write_report<W: AsyncWrite + Unpin>(
    w: &mut W,
    out: &mut String,
    p: &ReportPlan,
) -> io::Result<()> {
    let r = &p.report;
    let (fmt, ext, ctype) = match &p.format_id {
        Some(f) => (f.as_str(), "xml", "text/xml"),
        None => ("", "", "application/xml"),
    };
    let status = r.status.name();
    let results = r.results;
    let _ = write!(
        out,
        "<report id=\"{id}\" format_id=\"{fmt}\" config_id=\"\" extension=\"{ext}\" \
         content_type=\"{ctype}\"><owner><name>{DEFAULT_USER}</name></owner>\
         <name>{created}</name><comment></comment><creation_time>{created}</creation_time>\
         <modification_time>{modified}</modification_time><writable>0</writable>\
         <in_use>0</in_use><task id=\"{task}\"><name>{task_name}</name></task>",
        id = r.id,
        created = r.created,
        modified = if r.scan_end.is_empty() {
            &r.created
        } else {
            &r.scan_end
        },
        task = r.task_id,
        task_name = esc(&p.task_name),
    );
    if !fmt.is_empty() {
        let _ = write!(
            out,
            "<report_format id=\"{fmt}\"><name>XML</name></report_format>"
        );
    }
    let _ = write!(
        out,
        "<report id=\"{id}\"><gmp><version>{GMP_VERSION}</version></gmp>\
         <sort><field>severity<order>descending</order></field></sort>\
         <filters id=\"\"><term>{term}</term><keywords/></filters>\
         <scan_run_status>{status}</scan_run_status><hosts><count>{hosts}</count></hosts>\
         <closed_cves><count>0</count></closed_cves><vulns><count>{vulns}</count></vulns>\
         <os><count>0</count></os><apps><count>0</count></apps>\
         <ssl_certs><count>0</count></ssl_certs>\
         <task id=\"{task}\"><name>{task_name}</name><comment></comment>\
         <target id=\"{target}\"><trash>0</trash><name>{target_name}</name>\
         <comment></comment></target><progress>{progress}</progress></task>\
         <timestamp>{created}</timestamp><scan_start>{start}</scan_start>\
         <timezone>Coordinated Universal Time</timezone><timezone_abbrev>UTC</timezone_abbrev>",
        id = r.id,
        term = esc(&p.term),
        hosts = p.hosts.len(),
        vulns = results.min(FINDINGS.len()),
        task = r.task_id,
        task_name = esc(&p.task_name),
        target = p.target_id,
        target_name = esc(&p.target_name),
        progress = if r.status.active() { 0 } else { -1 },
        created = r.created,
        start = r.scan_start,
    );
    if p.details {
        let _ = write!(
            out,
            "<ports start=\"1\" max=\"-1\"><count>{}</count></ports>\
             <results start=\"{}\" max=\"{}\">",
            results.min(FINDINGS.len()),
            p.start_attr,
            p.max_attr
        );
        for i in p.from..p.to {
            push_result(out, p, i);
            spill(w, out).await?;
        }
        out.push_str("</results>");
    }
    let (mut high, mut medium, mut low, mut log) = (0, 0, 0, 0);
    let mut top = 0.0f32;
    for (i, f) in FINDINGS.iter().enumerate() {
        let k = if results > i {
            (results - i).div_ceil(FINDINGS.len())
        } else {
            0
        };
        match f.threat {
            "High" => high += k,
            "Medium" => medium += k,
            "Low" => low += k,
            _ => log += k,
        }
        if k > 0 && f.severity > top {
            top = f.severity;
        }
    }
    let _ = write!(
        out,
        "<result_count>{results}<full>{results}</full><filtered>{results}</filtered>\
         <hole deprecated='1'><full>{high}</full><filtered>{high}</filtered></hole>\
         <high><full>{high}</full><filtered>{high}</filtered></high>\
         <info deprecated='1'><full>{low}</full><filtered>{low}</filtered></info>\
         <low><full>{low}</full><filtered>{low}</filtered></low>\
         <log><full>{log}</full><filtered>{log}</filtered></log>\
         <warning deprecated='1'><full>{medium}</full><filtered>{medium}</filtered></warning>\
         <medium><full>{medium}</full><filtered>{medium}</filtered></medium>\
         <false_positive><full>0</full><filtered>0</filtered></false_positive>\
         </result_count><severity><full>{top:.1}</full><filtered>{top:.1}</filtered></severity>\
         <scan_end>{end}</scan_end><errors><count>0</count></errors></report></report>",
        end = r.scan_end,
    );
    spill(w, out).await
}

/// A vulnerability the generated results cycle through.
struct Finding {
    name: &'static str,
    port: &'static str,
    threat: &'static str,
    severity: f32,
    family: &'static str,
    summary: &'static str,
    solution: &'static str,
}

const FINDINGS: [Finding; 5] = [
    Finding {
        name: "SSH Weak Encryption Algorithms Supported",
        port: "22/tcp",
        threat: "Medium",
        severity: 4.3,
        family: "General",
        summary: "The remote SSH server is configured to allow / support weak encryption \
                  algorithm(s).",
        solution: "Disable the reported weak encryption algorithm(s).",
    },
    Finding {
        name: "SSL/TLS: Report Weak Cipher Suites",
        port: "443/tcp",
        threat: "Medium",
        severity: 5.9,
        family: "SSL and TLS",
        summary: "This routine reports all Weak SSL/TLS cipher suites accepted by a service.",
        solution: "The configuration of this services should be changed so that it does not \
                   accept the listed weak cipher suites anymore.",
    },
    Finding {
        name: "Apache HTTP Server End of Life (EOL) Detection",
        port: "80/tcp",
        threat: "High",
        severity: 10.0,
        family: "Web Servers",
        summary: "The Apache HTTP Server version on the remote host has reached the End of \
                  Life (EOL) and should not be used anymore.",
        solution: "Update the Apache HTTP Server version on the remote host to a still \
                   supported version.",
    },
    Finding {
        name: "TCP Timestamps Information Disclosure",
        port: "general/tcp",
        threat: "Low",
        severity: 2.6,
        family: "General",
        summary: "The remote host implements TCP timestamps and therefore allows to compute \
                  the uptime.",
        solution: "To disable TCP timestamps on linux add the line 'net.ipv4.tcp_timestamps = \
                   0' to /etc/sysctl.conf.",
    },
    Finding {
        name: "OS Detection Consolidation and Reporting",
        port: "general/tcp",
        threat: "Log",
        severity: 0.0,
        family: "Product detection",
        summary: "This script consolidates the OS information detected by several VTs and \
                  tries to find the best matching OS.",
        solution: "",
    },
];

const PAD: &str = "Stand-in padding to make each result bigger for the report size tests. ";

fn push_result(out: &mut String, p: &ReportPlan, i: usize) {
    let r = &p.report;
    let f = &FINDINGS[i % FINDINGS.len()];
    let host = &p.hosts[i % p.hosts.len().max(1)];
    let oid = 100_000 + (i % FINDINGS.len());
    let _ = write!(
        out,
        "<result id=\"{seed:08x}-{seq:04x}-4000-9000-{i:012x}\"><name>{name}</name>\
         <owner><name>{DEFAULT_USER}</name></owner><comment></comment>\
         <creation_time>{t}</creation_time><modification_time>{t}</modification_time>\
         <host>{host}<asset asset_id=\"{seed:08x}-0006-4000-8000-{h:012x}\"/>\
         <hostname></hostname></host><port>{port}</port>\
         <nvt oid=\"1.3.6.1.4.1.25623.1.0.{oid}\"><type>nvt</type><name>{name}</name>\
         <family>{family}</family><cvss_base>{sev:.1}</cvss_base>\
         <severities score=\"{sev:.1}\"></severities>\
         <tags>summary={summary}|solution_type=Mitigation</tags>\
         <solution type=\"Mitigation\">{solution}</solution></nvt>\
         <scan_nvt_version>2024-01-01T00:00:00Z</scan_nvt_version><threat>{threat}</threat>\
         <severity>{sev:.1}</severity><qod><value>80</value><type>remote_banner</type></qod>\
         <description>Result {n} of {total} found on {host} ({port}).",
        seed = (r.seq as u32).wrapping_mul(2_654_435_761) | 0x1000_0000,
        seq = r.seq & 0xffff,
        name = esc(f.name),
        t = r.scan_start,
        host = esc(host),
        h = i % p.hosts.len().max(1),
        port = f.port,
        family = esc(f.family),
        sev = f.severity,
        summary = esc(f.summary),
        solution = esc(f.solution),
        threat = f.threat,
        n = i + 1,
        total = r.results,
    );
    let mut left = r.padding;
    while left > 0 {
        let take = left.min(PAD.len());
        out.push_str(&PAD[..take]);
        left -= take;
    }
    out.push_str("</description></result>");
}
