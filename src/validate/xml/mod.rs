//! XML reports: the streaming pull parser (`pull`), the tag view the format checkers read
//! (`tag`), the character rules they share (`chars`), and the dispatch on the root element to
//! the Nmap, ZAP or GVM checker.

mod chars;
mod pull;
mod tag;

use std::io::BufRead;

pub(crate) use pull::{Node, XmlPull, MAX_MARKUP};
pub(crate) use tag::Tag;

use super::input::Checked;
use super::{gvm, nmap, reject, zap, Format, Found, RejectKind, Rejection};

/// Parses an XML document and hands it to the checker its root element calls for. No tag may
/// be larger than `max_markup` bytes.
pub(crate) fn check<B: BufRead>(
    input: &mut Checked<B>,
    max_markup: usize,
) -> Result<Found, Rejection> {
    let mut pull = XmlPull::new(input, max_markup);
    let root = loop {
        match pull.next()? {
            Node::Start { tag, .. } => break tag.to_owned_tag(),
            Node::Eof => {
                return Err(reject(
                    Format::Xml,
                    RejectKind::Incomplete,
                    "the file holds no element",
                ))
            }
            _ => continue,
        }
    };
    let tag = root.tag();
    match tag.name() {
        "nmaprun" => nmap::check(&mut pull, &tag),
        "OWASPZAPReport" => zap::check_xml(&mut pull, &tag),
        "report" | "get_reports_response" => gvm::check(&mut pull, &tag),
        "result" => Err(reject(
            Format::GvmXml,
            RejectKind::NotAReport,
            "a single GVM <result> fragment, not a report: export the whole report with the XML \
             report format (a994b278-1f62-11e1-96ac-406186ea4fc5)",
        )),
        "document" if tag.attr("SSLyzeVersion").is_some() => Err(reject(
            Format::Xml,
            RejectKind::Unsupported,
            "SSLyze 2.x XML output (--xml_out): HostedScan imports SSLyze JSON; re-run with \
             SSLyze 3 or later and --json_out",
        )),
        other => Err(reject(
            Format::Xml,
            RejectKind::NotAReport,
            format!(
                "not a recognised scanner report: XML whose root element is <{other}> (expected \
                 <nmaprun>, <OWASPZAPReport>, or a GVM <report>/<get_reports_response>)"
            ),
        )),
    }
}
