//! Verdicts for files that are neither XML nor JSON, reached from the sniffed prefix alone:
//! Nmap normal/grepable output and GVM CSV (known, but not importable: say which export to
//! use instead) and everything else (say what it looked like).

use super::sniff::{show_start, Sniffed};
use super::types::{reject, Format, RejectKind, Rejection};

pub(crate) fn reject_text(sniffed: Sniffed, prefix: &[u8]) -> Rejection {
    match sniffed {
        Sniffed::NmapText => reject(
            Format::NmapText,
            RejectKind::Unsupported,
            "Nmap normal or grepable output (-oN/-oG, .nmap/.gnmap): HostedScan imports Nmap XML; \
             use -oX (or the .xml file that -oA writes)",
        ),
        Sniffed::GvmCsv => reject(
            Format::GvmCsv,
            RejectKind::Unsupported,
            "GVM \"CSV Results\" export: HostedScan imports OpenVAS XML reports: export with the \
             XML report format (a994b278-1f62-11e1-96ac-406186ea4fc5)",
        ),
        Sniffed::GvmCsvHosts => reject(
            Format::GvmCsv,
            RejectKind::Unsupported,
            "GVM \"CSV Hosts\" export (one summary line per host, no results): HostedScan \
             imports OpenVAS XML reports: export with the XML report format \
             (a994b278-1f62-11e1-96ac-406186ea4fc5)",
        ),
        Sniffed::Other(looks) => reject(
            Format::Unknown,
            RejectKind::NotAReport,
            format!(
                "not a recognised scanner report: it looks like {}; it starts with {}",
                looks.describe(),
                show_start(prefix)
            ),
        ),
        _ => reject(
            Format::Unknown,
            RejectKind::NotAReport,
            format!(
                "not a recognised scanner report; it starts with {}",
                show_start(prefix)
            ),
        ),
    }
}
