//! XML dispatch: runs the pull parser to the root element, picks the checker that element
//! calls for (Nmap, ZAP, GVM) or refuses the document, feeds the checker the rest of the
//! events, and is the one place a parser `XmlError` becomes a `Rejection`: the parser gives a
//! byte offset and a typed kind, this file gives the line and column and the words (and the
//! advice) users see.

use std::io::BufRead;

use crate::validate::ahead::Ahead;
use crate::validate::checker::{Found, XmlChecker};
use crate::validate::gvm;
use crate::validate::nmap;
use crate::validate::types::{reject, Format, RejectKind, Rejection};
use crate::validate::xml::{AttrProblem, ErrorKind, Node, Source, XmlError, XmlPull};
use crate::validate::zap;

/// Why a document stopped being read: the parser's error (worded once the format is known) or
/// a checker's verdict.
enum Stop {
    Xml(XmlError),
    Rejected(Rejection),
}

impl From<XmlError> for Stop {
    fn from(e: XmlError) -> Self {
        Stop::Xml(e)
    }
}

impl From<Rejection> for Stop {
    fn from(r: Rejection) -> Self {
        Stop::Rejected(r)
    }
}

/// Parses the XML document `input` holds (its first byte is byte `base` of the file, the
/// document starts at `doc_start`) and hands it to the checker its root element calls for. No
/// tag may be larger than `max_markup` bytes.
pub(crate) fn check<B: BufRead + Send>(
    input: &mut Ahead<'_, '_, B>,
    base: u64,
    doc_start: u64,
    max_markup: usize,
) -> Result<Found, Rejection> {
    let mut pull = XmlPull::new(&mut *input)
        .with_max_markup(max_markup)
        .with_offsets(base, doc_start);
    // What the document is known to be so far: parser errors are reported under it.
    let mut format = Format::Xml;
    // When the parser (or a checker) stops on its own, before the reader's end or error,
    // whatever the reader found in the bytes the parser had read ahead comes later in the file
    // and is not the verdict: the first problem in the file wins, whatever the read sizes.
    let (verdict, stopped_first) = match route(&mut pull, &mut format) {
        Ok(found) => (Ok(found), false),
        Err(Stop::Rejected(r)) => (Err(r), true),
        Err(Stop::Xml(e)) => {
            let by_reader = matches!(*e.kind, ErrorKind::Read(_));
            let r = rejection(e, format, |at| pull.get_ref().locate(at));
            (Err(r), !by_reader)
        }
    };
    drop(pull);
    if stopped_first {
        input.hold_back(true);
    }
    verdict
}

fn route<R: Source>(pull: &mut XmlPull<R>, format: &mut Format) -> Result<Found, Stop> {
    let root = loop {
        match pull.next()? {
            Node::Start { tag, .. } => break tag.to_owned_tag(),
            Node::Eof => {
                return Err(reject(
                    Format::Xml,
                    RejectKind::Incomplete,
                    "the file holds no element",
                )
                .into())
            }
            _ => continue,
        }
    };
    let tag = root.tag();
    match tag.name() {
        "nmaprun" => {
            *format = Format::NmapXml;
            feed(pull, nmap::Run::new(&tag)?)
        }
        "OWASPZAPReport" => {
            *format = Format::ZapXml;
            feed(pull, zap::ZapXml::new(&tag)?)
        }
        "report" | "get_reports_response" => {
            *format = Format::GvmXml;
            feed(pull, gvm::Scan::new(&tag)?)
        }
        "result" => Err(reject(
            Format::GvmXml,
            RejectKind::NotAReport,
            "a single GVM <result> fragment, not a report: export the whole report with the XML \
             report format (a994b278-1f62-11e1-96ac-406186ea4fc5)",
        )
        .into()),
        "document" if tag.attr("SSLyzeVersion").is_some() => Err(reject(
            Format::Xml,
            RejectKind::Unsupported,
            "SSLyze 2.x XML output (--xml_out): HostedScan imports SSLyze JSON; re-run with \
             SSLyze 3 or later and --json_out",
        )
        .into()),
        other => Err(reject(
            Format::Xml,
            RejectKind::NotAReport,
            format!(
                "not a recognised scanner report: XML whose root element is <{other}> (expected \
                 <nmaprun>, <OWASPZAPReport>, or a GVM <report>/<get_reports_response>)"
            ),
        )
        .into()),
    }
}

/// Hands the rest of the document to `checker`, then asks for its verdict.
fn feed<R: Source, C: XmlChecker>(pull: &mut XmlPull<R>, mut checker: C) -> Result<Found, Stop> {
    // A checker that reads no text spares the parser a return per piece of it.
    pull.hand_text(C::READS_TEXT);
    // Matched in place rather than through `?`: moving the node out of the result first
    // copied it through memory on every event, and the copy stalled on its own stores.
    loop {
        match pull.next() {
            Ok(Node::Start { ref tag, depth }) => checker.start(tag, depth),
            Ok(Node::End { depth }) => checker.end(depth),
            Ok(Node::Text { text, depth }) if C::READS_TEXT => {
                checker.text(&text.to_str(), depth)?
            }
            Ok(Node::Text { .. }) => {}
            Ok(Node::Eof) => return Ok(checker.verdict()?),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Advice for the errors that two concatenated documents cause.
const ONE_DOCUMENT: &str = "the file holds more than one XML document (nmap --append-output \
                            writes this); keep one document per file, e.g. re-run with -oX to a \
                            new file";
const TRUNCATED: &str = "the document is truncated (the scan was interrupted, or the file is \
                         still being written)";

/// The rejection for a parser error in a document of `format`; `locate` says where a byte
/// offset is ("line L, column C (byte N)").
fn rejection(e: XmlError, format: Format, locate: impl Fn(u64) -> String) -> Rejection {
    use RejectKind::{Forbidden, Incomplete, Limit, Malformed, Unsupported};
    let at = locate(e.at);
    let not_wf = |what: &str| (Malformed, format!("not well-formed XML at {at}: {what}"));
    let (kind, reason) = match *e.kind {
        ErrorKind::Truncated(what) => (
            Incomplete,
            format!(
                "the file ends inside {} that starts at {at}: {TRUNCATED}",
                article(what.as_str())
            ),
        ),
        ErrorKind::NoRoot => (
            Incomplete,
            format!(
                "the file ends at {at} before any element: it is truncated or still being written"
            ),
        ),
        ErrorKind::Unclosed { open } => (
            Incomplete,
            format!("the file ends at {at} inside <{open}>: {TRUNCATED}"),
        ),
        ErrorKind::TooLarge { construct, limit } => (
            Limit,
            format!(
                "a single XML {construct} starting at {at} is larger than {limit} bytes; \
                 refusing to buffer it"
            ),
        ),
        ErrorKind::TooDeep { limit } => (
            Limit,
            format!("elements nest deeper than {limit} levels at {at}; no scanner writes that"),
        ),
        ErrorKind::InternalSubset => (
            Forbidden,
            format!(
                "a DOCTYPE with an internal subset or entity declarations at {at}: DTDs and \
                 entities are refused (they can expand or leak data); only a bare <!DOCTYPE \
                 name> is allowed"
            ),
        ),
        ErrorKind::Entity { name } => (
            Forbidden,
            format!(
                "entity reference &{name}; at {at}: only the five predefined XML entities and \
                 character references are allowed (entities are never expanded)"
            ),
        ),
        ErrorKind::UnsupportedEncoding { encoding: enc } => (
            Unsupported,
            format!(
                "the XML declaration says encoding=\"{enc}\"; only UTF-8 is supported: convert \
                 the file (e.g. iconv -f {enc} -t UTF-8) and fix the declaration"
            ),
        ),
        ErrorKind::BadAttribute { element, problem } => (
            match problem {
                AttrProblem::Entity { .. } => Forbidden,
                _ => Malformed,
            },
            format!("bad attribute in <{element}> at {at}: {problem}"),
        ),
        ErrorKind::BareLt => {
            not_wf("'<' is not followed by a name (a bare '<' in text must be written &lt;)")
        }
        ErrorKind::CdataEndInText => not_wf("']]>' in text must be written ]]&gt;"),
        ErrorKind::BadCharRef { name } => (
            Malformed,
            format!("invalid character reference &{name}; at {at}"),
        ),
        ErrorKind::BareAmp => (
            Malformed,
            format!("a bare '&' in text at {at} (must be written &amp;)"),
        ),
        ErrorKind::OutsideRoot { after } => (
            Malformed,
            format!(
                "content {} the root element at {at}: only whitespace, comments and processing \
                 instructions may stand outside it",
                if after { "after" } else { "before" }
            ),
        ),
        ErrorKind::SecondRoot { element } => (
            Malformed,
            format!("a second root element <{element}> at {at}: {ONE_DOCUMENT}"),
        ),
        ErrorKind::BadEndTag => not_wf("a malformed end tag"),
        ErrorKind::UnopenedEnd { name } => not_wf(&format!("the end tag </{name}> closes nothing")),
        ErrorKind::MismatchedEnd { name, open, path } => not_wf(&format!(
            "the end tag </{name}> does not match the open element <{open}> ({path})"
        )),
        ErrorKind::UnknownBang => {
            not_wf("unknown markup after '<!' (expected a comment, CDATA or DOCTYPE)")
        }
        ErrorKind::SecondDoctype => (
            Malformed,
            format!("a second DOCTYPE at {at}: {ONE_DOCUMENT}"),
        ),
        ErrorKind::BadDoctype(problem) => not_wf(&problem.to_string()),
        ErrorKind::LateDoctype => (
            Malformed,
            format!("a DOCTYPE at {at} after the root element or a previous DOCTYPE"),
        ),
        ErrorKind::BadPiTarget => not_wf("a processing instruction without a valid target name"),
        ErrorKind::ReservedPiTarget { target } => not_wf(&format!(
            "the processing instruction name '{target}' is reserved"
        )),
        ErrorKind::SecondDeclaration => (
            Malformed,
            format!("a second XML declaration at {at}: {ONE_DOCUMENT}"),
        ),
        ErrorKind::LateDeclaration { after } => (
            Malformed,
            format!(
                "the XML declaration at {at} is not at the start of the file: {} comes before \
                 it, which is not well-formed XML; remove what precedes <?xml ...?>",
                after.map_or("other content", |p| p.as_str())
            ),
        ),
        ErrorKind::BadDeclaration(problem) => {
            not_wf(&format!("a malformed XML declaration ({problem})"))
        }
        ErrorKind::NotAscii => (
            Malformed,
            format!(
                "the XML declaration says the file is US-ASCII, but the byte at {at} is not \
                 ASCII; declare encoding=\"UTF-8\" if the file is UTF-8, or convert it"
            ),
        ),
        ErrorKind::DoubleHyphen { comment } => not_wf(&format!(
            "'--' inside a comment (the comment that starts at {})",
            locate(comment)
        )),
        // `validate` replaces this with the reader's error or what the checking reader found.
        ErrorKind::Read(e) => (Malformed, format!("read failed: {e}")),
    };
    reject(format, kind, reason)
}

/// "a tag", "an end tag", ...
fn article(what: &str) -> String {
    let an = what.starts_with(|c: char| "aeiouAEIOU".contains(c));
    format!("{} {what}", if an { "an" } else { "a" })
}

#[cfg(test)]
#[path = "xml_tests.rs"]
mod tests;
