//! Tests for `validate`: the shared samples with their expected verdicts, and small inline
//! fixtures for each rule (truncation at every offset, hardening, hints, I/O errors), and that
//! reading ahead (with start tags scanned ahead or not) changes no verdict.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use super::*;

fn run(bytes: &[u8]) -> Verdict {
    run_with(bytes, &Hints::default())
}

fn run_with(bytes: &[u8], hints: &Hints) -> Verdict {
    validate(bytes, hints).expect("no I/O error from a byte slice")
}

/// The same, but the reader hands out `cap` bytes at a time, so every chunk boundary case
/// (UTF-8 sequences, tags, the sniff prefix) gets exercised.
fn run_chunked(bytes: &[u8], cap: usize) -> Verdict {
    validate(BufReader::with_capacity(cap, bytes), &Hints::default()).expect("no I/O error")
}

fn rejected(v: &Verdict) -> &Rejection {
    match v {
        Ok(r) => panic!("expected a rejection, got {r:?}"),
        Err(r) => r,
    }
}

fn accepted(v: &Verdict) -> &Report {
    match v {
        Ok(r) => r,
        Err(r) => panic!("expected acceptance, got {r:?}"),
    }
}

fn assert_kind(v: &Verdict, kind: RejectKind, needle: &str) {
    let r = rejected(v);
    assert_eq!(r.kind, kind, "{r:?}");
    assert!(
        r.reason.contains(needle),
        "reason should mention {needle:?}: {}",
        r.reason
    );
}

// ---------------------------------------------------------------------------------------
// The shared samples.

#[test]
fn shared_samples_match_expected_tsv() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples"));
    let tsv = dir.join("EXPECTED.tsv");
    let Ok(table) = std::fs::read_to_string(&tsv) else {
        eprintln!("skipping: ../shared/samples not found ({})", tsv.display());
        return;
    };
    // Rejections whose kind the policy pins down.
    let kinds = [
        ("nmap/nmap-7.93-error-nse.xml", RejectKind::ScanFailed),
        ("nmap/nmap-7.93-interrupted.xml", RejectKind::Incomplete),
        ("gvm-csv/no_vuln.csv", RejectKind::Unsupported),
        ("gvm-csv/one_vuln.csv", RejectKind::Unsupported),
        (
            "zap-json/sshniro-markdown-in-json/report_json.json",
            RejectKind::NotAReport,
        ),
        ("sslyze-json/unavailable-host.json", RejectKind::ScanFailed),
        ("sslyze-json/test-empty-report.json", RejectKind::NotAReport),
    ];
    let mut checked = 0;
    for line in table.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 4, "bad EXPECTED.tsv line: {line}");
        let (path, verdict, scan_type, target) = (cols[0], cols[1], cols[2], cols[3]);
        let file = std::fs::File::open(dir.join(path)).expect("sample listed in EXPECTED.tsv");
        let v = validate(BufReader::new(file), &Hints::default()).expect("readable sample");
        match verdict {
            "accept" => {
                let r = match &v {
                    Ok(r) => r,
                    Err(e) => panic!("{path}: expected accept, got {e:?}"),
                };
                assert_eq!(r.scan_type.as_str(), scan_type, "{path}: {r:?}");
                let want = (target != "-").then(|| target.to_string());
                assert_eq!(r.target, want, "{path}: {r:?}");
            }
            "reject" => {
                let r = match &v {
                    Ok(r) => panic!("{path}: expected reject, got {r:?}"),
                    Err(e) => e,
                };
                assert!(!r.reason.is_empty(), "{path}: empty reason");
                if let Some((_, kind)) = kinds.iter().find(|(p, _)| *p == path) {
                    assert_eq!(r.kind, *kind, "{path}: {r:?}");
                }
            }
            other => panic!("{path}: unknown verdict {other}"),
        }
        checked += 1;
    }
    assert!(checked >= 21, "only {checked} samples checked");
}

// ---------------------------------------------------------------------------------------
// Nmap.

const NMAP: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<?xml-stylesheet href="file:///usr/share/nmap/nmap.xsl" type="text/xsl"?>
<!-- Nmap 7.93 scan initiated as: nmap -&#45;reason -oX - 10.0.0.1 (café ✓) -->
<nmaprun scanner="nmap" args="nmap -oX - 10.0.0.1" start="1" version="7.93" xmloutputversion="1.05">
<scaninfo type="connect" protocol="tcp" numservices="1" services="22"/>
<verbose level="0"/>
<debugging level="0"/>
<host starttime="1" endtime="2"><status state="up" reason="conn-refused" reason_ttl="0"/>
<address addr="10.0.0.1" addrtype="ipv4"/>
<hostnames><hostname name="hôte.example" type="PTR"/></hostnames>
<ports><port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="0"/><service name="ssh" method="table" conf="3"/><script id="x" output="a &lt;b&gt; &#x263A; &amp; c"><![CDATA[raw <text>]]>ünïcode &#233;</script></port></ports>
</host>
<runstats><finished time="2" timestr="x" summary="done" elapsed="1.00" exit="success"/><hosts up="1" down="0" total="1"/>
</runstats>
</nmaprun>
"#;

fn nmap_with(scaninfo: &str, finished: &str, hosts: &str) -> String {
    NMAP.replace(
        r#"<scaninfo type="connect" protocol="tcp" numservices="1" services="22"/>"#,
        scaninfo,
    )
    .replace(
        r#"<finished time="2" timestr="x" summary="done" elapsed="1.00" exit="success"/>"#,
        finished,
    )
    .replace(r#"<hosts up="1" down="0" total="1"/>"#, hosts)
}

#[test]
fn nmap_fixture_is_accepted() {
    let v = run(NMAP.as_bytes());
    let r = accepted(&v);
    assert_eq!(r.format, Format::NmapXml);
    assert_eq!(r.scan_type, ScanType::Nmap);
    assert_eq!(r.target, None);
    assert!(r.warnings.is_empty(), "{r:?}");
    assert_eq!(run_chunked(NMAP.as_bytes(), 1), v);
    assert_eq!(run_chunked(NMAP.as_bytes(), 7), v);
}

#[test]
fn nmap_truncated_at_every_offset_is_never_accepted() {
    let end = NMAP.find("</nmaprun>").expect("fixture") + "</nmaprun>".len();
    let bytes = NMAP.as_bytes();
    for cut in 0..end {
        for v in [run(&bytes[..cut]), run_chunked(&bytes[..cut], 3)] {
            let r = rejected(&v);
            assert!(
                matches!(r.kind, RejectKind::Incomplete | RejectKind::Malformed),
                "cut at {cut}: {r:?}"
            );
        }
    }
    // Cut inside the body, the verdict is "truncated", not "broken".
    let mid = NMAP.find("<ports>").expect("fixture");
    assert_kind(&run(&bytes[..mid]), RejectKind::Incomplete, "truncated");
    // Trailing whitespace after the root is fine.
    accepted(&run(&bytes[..end]));
}

#[test]
fn nmap_exit_error_quotes_errormsg() {
    let doc = nmap_with(
        r#"<scaninfo type="connect" protocol="tcp" numservices="1" services="22"/>"#,
        r#"<finished time="2" timestr="x" elapsed="0.1" exit="error" errormsg="NSE: failed to initialize the script engine:&#xa;&apos;nope&apos; did not match"/>"#,
        r#"<hosts up="0" down="0" total="0"/>"#,
    );
    assert_kind(
        &run(doc.as_bytes()),
        RejectKind::ScanFailed,
        "NSE: failed to initialize the script engine:\n'nope' did not match",
    );
}

#[test]
fn nmap_early_fatal_is_scan_failed() {
    let doc = r#"<nmaprun><runstats><finished time="1" timestr="x" elapsed="0" summary="" exit="error" errormsg="Unable to split netmask from target expression: &quot;10.0.0.0/33&quot;"/><hosts up="0" down="0" total="0"/></runstats></nmaprun>"#;
    assert_kind(
        &run(doc.as_bytes()),
        RejectKind::ScanFailed,
        "\"10.0.0.0/33\"",
    );
}

#[test]
fn nmap_udp_only_vs_mixed() {
    let udp = r#"<scaninfo type="udp" protocol="udp" numservices="1" services="53"/>"#;
    let tcp = r#"<scaninfo type="syn" protocol="tcp" numservices="1" services="22"/>"#;
    let fin = r#"<finished time="2" timestr="x" summary="done" elapsed="1.00" exit="success"/>"#;
    let hosts = r#"<hosts up="1" down="0" total="1"/>"#;
    let only_udp = nmap_with(udp, fin, hosts);
    assert_eq!(
        accepted(&run(only_udp.as_bytes())).scan_type,
        ScanType::NmapUdp
    );
    let mixed = nmap_with(&format!("{udp}\n{tcp}"), fin, hosts);
    assert_eq!(accepted(&run(mixed.as_bytes())).scan_type, ScanType::Nmap);
    let ping = nmap_with("", fin, hosts);
    assert_eq!(accepted(&run(ping.as_bytes())).scan_type, ScanType::Nmap);
    // A configured NMAP_UDP wins within the family, with a note.
    let hints = Hints {
        scan_type: Some(ScanType::NmapUdp),
        ..Hints::default()
    };
    let r = run_with(mixed.as_bytes(), &hints);
    assert_eq!(accepted(&r).scan_type, ScanType::NmapUdp);
    assert!(!accepted(&r).warnings.is_empty());
}

#[test]
fn nmap_append_output_is_malformed() {
    let twice = format!("{NMAP}{NMAP}");
    assert_kind(
        &run(twice.as_bytes()),
        RejectKind::Malformed,
        "more than one XML document",
    );
    let no_decl = NMAP.replace(r#"<?xml version="1.0" encoding="UTF-8"?>"#, "");
    let twice = format!("{NMAP}{no_decl}");
    assert_kind(
        &run(twice.as_bytes()),
        RejectKind::Malformed,
        "more than one XML document",
    );
}

#[test]
fn nmap_missing_runstats_and_warnings() {
    let start = NMAP.find("<runstats>").expect("fixture");
    let stop = NMAP.find("</nmaprun>").expect("fixture");
    let doc = format!("{}{}", &NMAP[..start], &NMAP[stop..]);
    assert_kind(
        &run(doc.as_bytes()),
        RejectKind::Partial,
        "runstats/finished",
    );

    let doc = NMAP
        .replace(
            r#"<host starttime="1" endtime="2">"#,
            r#"<host starttime="1" endtime="2" timedout="true">"#,
        )
        .replace(
            r#"<hosts up="1" down="0" total="1"/>"#,
            r#"<hosts up="1" down="0" total="0"/>"#,
        );
    let v = run(doc.as_bytes());
    let w = accepted(&v).warnings.join("\n");
    assert!(w.contains("timed out") && w.contains("10.0.0.1"), "{w}");
    assert!(w.contains("total=\"0\""), "{w}");
}

#[test]
fn nmap_masscan_is_not_a_report() {
    let doc = NMAP.replace(r#"scanner="nmap""#, r#"scanner="masscan""#);
    assert_kind(&run(doc.as_bytes()), RejectKind::NotAReport, "masscan");
}

#[test]
fn nmap_text_output_is_unsupported() {
    let v = run(b"# Nmap 7.93 scan initiated Thu Nov 26 as: nmap -oN x 10.0.0.1\nNmap scan report for 10.0.0.1\n");
    assert_kind(&v, RejectKind::Unsupported, "-oX");
    assert_eq!(rejected(&v).format, Format::NmapText);
    assert_kind(
        &run(b"Starting Nmap 7.93 ( https://nmap.org )\n"),
        RejectKind::Unsupported,
        "-oX",
    );
}

// ---------------------------------------------------------------------------------------
// XML hardening and well-formedness.

#[test]
fn comment_before_declaration_is_malformed() {
    let doc = format!("<!-- SPDX-License-Identifier: Apache-2.0 -->\n{NMAP}");
    assert_kind(
        &run(doc.as_bytes()),
        RejectKind::Malformed,
        "a comment comes before it",
    );
    let doc = format!("\n{NMAP}");
    assert_kind(
        &run(doc.as_bytes()),
        RejectKind::Malformed,
        "not at the start",
    );
}

#[test]
fn bom_is_accepted() {
    let doc = format!("\u{FEFF}{NMAP}");
    accepted(&run(doc.as_bytes()));
    accepted(&run_chunked(doc.as_bytes(), 1));
    let json =
        "\u{FEFF}{\"@version\":\"2.9.0\",\"site\":[{\"@name\":\"https://a\",\"alerts\":[]}]}";
    accepted(&run(json.as_bytes()));
}

#[test]
fn internal_dtd_subset_and_entities_are_forbidden() {
    let xxe = NMAP.replace(
        "<!DOCTYPE nmaprun>",
        "<!DOCTYPE nmaprun [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>",
    );
    assert_kind(
        &run(xxe.as_bytes()),
        RejectKind::Forbidden,
        "internal subset",
    );
    let text = NMAP.replace("ünïcode", "&xxe;");
    assert_kind(&run(text.as_bytes()), RejectKind::Forbidden, "&xxe;");
    let attr = NMAP.replace(r#"summary="done""#, r#"summary="&lol;""#);
    assert_kind(&run(attr.as_bytes()), RejectKind::Forbidden, "&lol;");
    // An external DTD (Nmap 6.45) is never fetched, and allowed.
    let ext = NMAP.replace(
        "<!DOCTYPE nmaprun>",
        "<!DOCTYPE nmaprun PUBLIC \"-//IDN nmap.org//DTD Nmap XML 1.04//EN\" \"https://svn.nmap.org/nmap/docs/nmap.dtd\">",
    );
    accepted(&run(ext.as_bytes()));
}

#[test]
fn invalid_utf8_reports_the_byte_offset() {
    let at = NMAP.find("ünïcode").expect("fixture");
    let mut doc = NMAP.as_bytes().to_vec();
    doc[at] = 0xFF;
    for v in [run(&doc), run_chunked(&doc, 1), run_chunked(&doc, 5)] {
        assert_kind(&v, RejectKind::Malformed, &format!("byte {at})"));
        assert!(rejected(&v).reason.contains("UTF-8"));
    }
    // A lead byte followed by a non-continuation byte, split across reads.
    let mut doc = NMAP.as_bytes().to_vec();
    doc[at] = 0xC3;
    doc[at + 1] = b'(';
    assert_kind(
        &run_chunked(&doc, 2),
        RejectKind::Malformed,
        &format!("byte {at})"),
    );
    // JSON too.
    let json = b"{\"@version\":\"2.9.0\",\"site\":[{\"@name\":\"http://x\xFF\",\"alerts\":[]}]}";
    let at = json.iter().position(|b| *b == 0xFF).expect("fixture");
    assert_kind(&run(json), RejectKind::Malformed, &format!("byte {at})"));
    // Inside an attribute value, too.
    let at = NMAP.find("hôte").expect("fixture") + 1;
    let mut doc = NMAP.as_bytes().to_vec();
    doc[at] = 0x80;
    assert_kind(&run(&doc), RejectKind::Malformed, &format!("byte {at})"));
}

#[test]
fn control_characters_are_refused_with_their_offset() {
    for (needle, byte) in [("ünïcode", 0x01u8), ("hôte", 0x0B), ("summary", 0x1F)] {
        let at = NMAP.find(needle).expect("fixture");
        let mut doc = NMAP.as_bytes().to_vec();
        doc[at] = byte;
        for v in [run(&doc), run_chunked(&doc, 1), run_chunked(&doc, 7)] {
            assert_kind(&v, RejectKind::Malformed, &format!("byte {at})"));
            assert!(
                rejected(&v).reason.contains(&format!("U+{byte:04X}")),
                "{v:?}"
            );
        }
    }
    // Tab, CR, LF and DEL are characters XML allows.
    let doc = NMAP.replace("ünïcode", "a\tb\r\nc\u{7f}");
    accepted(&run(doc.as_bytes()));
}

/// Cases where a differential run against libxml2 (xmllint) found us too lax.
#[test]
fn xmllint_agreement() {
    const T: &str = r#"<OWASPZAPReport version="2.9.0"><site name="https://a"><alerts/></site></OWASPZAPReport>"#;
    let malformed = [
        format!(r#"<?xml version="2.0"?>{T}"#),
        format!(r#"<?xml version=""?>{T}"#),
        format!(r#"<?xml version="1"?>{T}"#),
        format!(r#"<?xml version="1.0a"?>{T}"#),
        format!(r#"<?xml version="1.0" standalone="maybe"?>{T}"#),
        format!(r#"<?xml version="1.0" encoding="utf 8"?>{T}"#),
        format!("<!DOCTYPE x y>{T}"),
        format!("<!DOCTYPE x \"a\">{T}"),
        format!("<!DOCTYPE x PUBLIC \"a\">{T}"),
        format!("<!DOCTYPE x SYSTEM>{T}"),
        format!("<!DOCTYPE x SYSTEM \"a\" junk>{T}"),
        format!("<!DOCTYPE x SYSTEM \"a\" \"b\">{T}"),
        format!("<!DOCTYPE x PUBLIC \"a{{\" \"b\">{T}"),
        format!("<!DOCTYPEx>{T}"),
        format!("<?pi?x ?>{T}"),
        format!("<?l??>{T}"),
        format!("{}<?xml version=\"1.0\"?>{T}", " ".repeat(66_048)),
        format!("\u{FEFF}{}<?xml version=\"1.0\"?>{T}", " ".repeat(66_045)),
        format!(
            r#"<?xml version="1.0" encoding="US-ASCII"?>{}"#,
            T.replace("<alerts/>", "<alerts>é</alerts>")
        ),
        T.replace("<alerts/>", "<alerts>\u{FFFE}</alerts>"),
        T.replace("https://a", "https://a\u{FFFF}"),
    ];
    for doc in &malformed {
        for v in [
            run(doc.as_bytes()),
            run_chunked(doc.as_bytes(), 1),
            run_chunked(doc.as_bytes(), 5),
        ] {
            let r = rejected(&v);
            assert_eq!(r.kind, RejectKind::Malformed, "{doc:.120}: {r:?}");
        }
    }
    let fine = [
        format!(r#"<?xml version="1.1" encoding="utf-8" standalone="no"?>{T}"#),
        format!("<?xml version='1.0' encoding='US-ASCII'?>{T}"),
        format!("<!DOCTYPE x SYSTEM 'a>b'>{T}"),
        format!("<!DOCTYPE x PUBLIC \"-//A B//EN\" \"http://x/y.dtd\" >{T}"),
        format!("<?pi?>{T}"),
        format!("{}{T}", " ".repeat(66_048)),
        T.replace("<alerts/>", "<alerts>\u{FFFD}\u{EFBF}</alerts>"),
    ];
    for doc in &fine {
        for v in [run(doc.as_bytes()), run_chunked(doc.as_bytes(), 1)] {
            accepted(&v);
        }
    }
}

#[test]
fn xml_oddities() {
    // Text after the root.
    let doc = format!("{NMAP}trailing words\n");
    assert_kind(
        &run(doc.as_bytes()),
        RejectKind::Malformed,
        "after the root",
    );
    // Mismatched tags.
    let doc = NMAP.replace("</ports>", "</port>");
    assert_eq!(rejected(&run(doc.as_bytes())).kind, RejectKind::Malformed);
    // Tags interleaved by nmap's status output (nmap#1601).
    let doc = NMAP.replace(
        r#"<port protocol="tcp" portid="22">"#,
        r#"<port protocol="tcp" <taskprogress task="x"/> portid="22">"#,
    );
    assert_eq!(rejected(&run(doc.as_bytes())).kind, RejectKind::Malformed);
    // Duplicate attribute.
    let doc = NMAP.replace(r#"version="7.93""#, r#"version="7.93" version="7.94""#);
    assert_eq!(rejected(&run(doc.as_bytes())).kind, RejectKind::Malformed);
    // Non-UTF-8 declared encoding.
    let doc = NMAP.replace("UTF-8", "ISO-8859-1");
    assert_kind(&run(doc.as_bytes()), RejectKind::Unsupported, "ISO-8859-1");
    // Unknown root.
    assert_kind(
        &run(b"<svg xmlns=\"x\"><g/></svg>"),
        RejectKind::NotAReport,
        "<svg>",
    );
    // HTML.
    assert_kind(
        &run(b"<!DOCTYPE html><html><body>"),
        RejectKind::NotAReport,
        "HTML",
    );
}

/// Attribute syntax: what XML allows is accepted, and each kind of mistake is named.
#[test]
fn attribute_rules() {
    let many: String = (0..40).map(|i| format!(" k{i}=\"{i}\"")).collect();
    let many_dup = format!("{many} k3=\"again\"");
    let cases: Vec<(String, Option<(RejectKind, &str)>)> = vec![
        (r#" a="1" b='2'"#.into(), None),
        (" a=\"1\"\n\tb=\"2\" ".into(), None),
        (r#" a = "1""#.into(), None),
        (r#" a="&#xa;&#10;&amp;&quot;&lt;&gt;&apos;""#.into(), None),
        (r#" a="it's" b='say "hi"'"#.into(), None),
        (r#" a="1 > 0""#.into(), None),
        (many.clone(), None),
        (r#" b="&#x00000000000000000041;""#.into(), None),
        (
            r#" a="1"b="2""#.into(),
            Some((RejectKind::Malformed, "separated by whitespace")),
        ),
        (
            r#" a="&amp" b="x;""#.into(),
            Some((RejectKind::Malformed, "a bare '&'")),
        ),
        (
            r#" a="1" a="2""#.into(),
            Some((RejectKind::Malformed, "attribute a appears twice")),
        ),
        (
            many_dup,
            Some((RejectKind::Malformed, "attribute k3 appears twice")),
        ),
        (
            r#" a="&#0;""#.into(),
            Some((RejectKind::Malformed, "invalid character reference &#0;")),
        ),
        (
            r#" a="&#xD800;""#.into(),
            Some((RejectKind::Malformed, "invalid character reference")),
        ),
        (
            r#" a="&foo;""#.into(),
            Some((RejectKind::Forbidden, "entity reference &foo;")),
        ),
        (
            r#" a="x & y""#.into(),
            Some((RejectKind::Malformed, "a bare '&'")),
        ),
        (
            r#" a="1 < 2""#.into(),
            Some((
                RejectKind::Malformed,
                "a '<' inside the value of attribute a",
            )),
        ),
        (
            " a=1".into(),
            Some((
                RejectKind::Malformed,
                "the value of attribute a is not quoted",
            )),
        ),
        (
            " a".into(),
            Some((RejectKind::Malformed, "attribute a has no value")),
        ),
        (
            r#" a="1" b"#.into(),
            Some((RejectKind::Malformed, "attribute b has no value")),
        ),
        (
            r#" 1a="1""#.into(),
            Some((RejectKind::Malformed, "expected an attribute name")),
        ),
    ];
    for (attrs, want) in cases {
        let tag = format!("port protocol=\"tcp\" portid=\"22\"{attrs}");
        let doc = NMAP.replace(r#"<port protocol="tcp" portid="22">"#, &format!("<{tag}>"));
        assert_ne!(doc, NMAP, "fixture");
        for v in [run(doc.as_bytes()), run_chunked(doc.as_bytes(), 7)] {
            match want {
                None => {
                    accepted(&v);
                }
                Some((kind, needle)) => {
                    assert_kind(&v, kind, needle);
                    assert!(rejected(&v).reason.contains("<port>"), "{v:?}");
                }
            }
        }
    }
}

#[test]
fn nesting_limit() {
    let mut doc = String::from("<nmaprun scanner=\"nmap\">");
    for _ in 0..5000 {
        doc.push_str("<a>");
    }
    assert_kind(&run(doc.as_bytes()), RejectKind::Limit, "4096");
}

// ---------------------------------------------------------------------------------------
// GVM.

fn gvm(status: &str, results_attr: &str, n: usize, errors: u32) -> String {
    let mut results = String::new();
    for i in 0..n {
        results.push_str(&format!(
            "<result id=\"r{i}\"><name>n</name><host>10.0.0.{i}</host><detection><result id=\"d\"/></detection><description>a &lt;b&gt;</description></result>\n"
        ));
    }
    format!(
        r#"<report id="x" format_id="a994b278-1f62-11e1-96ac-406186ea4fc5" extension="xml" content_type="text/xml">
  <owner><name>u</name></owner><name>n</name><task id="t"><name>scan</name></task>
  <report id="x"><gmp><version>22.6</version></gmp><scan_run_status>{status}</scan_run_status>
    <results {results_attr}>
{results}    </results>
    <result_count>{n}<full>{n}</full><filtered>{n}</filtered></result_count>
    <errors><count>{errors}</count></errors>
    <scan_end>2024-01-01T00:00:00Z</scan_end>
  </report>
</report>
"#
    )
}

#[test]
fn gvm_done_is_accepted() {
    let v = run(gvm("Done", r#"start="1" max="-1""#, 3, 0).as_bytes());
    let r = accepted(&v);
    assert_eq!((r.format, r.scan_type), (Format::GvmXml, ScanType::Openvas));
    assert!(r.warnings.is_empty(), "{r:?}");
    let v = run(gvm("Done", r#"start="1" max="-1""#, 1, 2).as_bytes());
    assert!(accepted(&v)
        .warnings
        .iter()
        .any(|w| w.contains("2 scan error")));
}

#[test]
fn gvm_stopped_is_partial_unless_accepted() {
    let doc = gvm("Stopped", r#"start="1" max="-1""#, 1, 0);
    assert_kind(&run(doc.as_bytes()), RejectKind::Partial, "Stopped");
    let hints = Hints {
        accept_partial: true,
        ..Hints::default()
    };
    let v = run_with(doc.as_bytes(), &hints);
    assert!(accepted(&v).warnings.iter().any(|w| w.contains("Stopped")));
    assert_kind(
        &run(gvm("Interrupted", r#"max="-1""#, 1, 0).as_bytes()),
        RejectKind::Partial,
        "Interrupted",
    );
}

#[test]
fn gvm_pagination() {
    let doc = gvm("Done", r#"start="1" max="2""#, 2, 0);
    assert_kind(&run(doc.as_bytes()), RejectKind::Partial, "rows=-1");
    // A page that is not full is the whole report.
    accepted(&run(gvm("Done", r#"start="1" max="50""#, 8, 0).as_bytes()));
    // A later page: the first results are missing, whatever the page size.
    let doc = gvm("Done", r#"start="101" max="-1""#, 8, 0);
    assert_kind(&run(doc.as_bytes()), RejectKind::Partial, "start=\"101\"");
    let v = run_with(
        doc.as_bytes(),
        &Hints {
            accept_partial: true,
            ..Hints::default()
        },
    );
    assert!(accepted(&v)
        .warnings
        .iter()
        .any(|w| w.contains("later page")));
}

#[test]
fn gvm_base64_error_response_wrapped_and_fragments() {
    let b64 = r#"<report id="x" format_id="c1645568-627a-11e3-a660-406186ea4fc5" extension="csv" content_type="text/csv"><owner><name>u</name></owner>SVAsSG9zdG5hbWUsUG9ydCxQb3J0IFByb3RvY29sLENWU1MsU2V2ZXJpdHks</report>"#;
    assert_kind(&run(b64.as_bytes()), RejectKind::Unsupported, "base64");
    let resp = r#"<get_reports_response status="404" status_text="Failed to find report 'x'"/>"#;
    assert_kind(&run(resp.as_bytes()), RejectKind::ScanFailed, "404");
    let wrapped = format!(
        "<get_reports_response status=\"200\" status_text=\"OK\">{}</get_reports_response>",
        gvm("Done", r#"max="-1""#, 1, 0)
    );
    let v = run(wrapped.as_bytes());
    assert!(accepted(&v).warnings.is_empty(), "{v:?}");
    let b64_wrapped = format!(
        "<?xml version=\"1.0\"?><get_reports_response status=\"200\" status_text=\"OK\">{b64}</get_reports_response>"
    );
    assert_kind(
        &run(b64_wrapped.as_bytes()),
        RejectKind::Unsupported,
        "base64",
    );
    let lone = r#"<result id="r"><name>n</name><host>1.2.3.4</host></result>"#;
    assert_eq!(rejected(&run(lone.as_bytes())).kind, RejectKind::NotAReport);
    let no_results = r#"<report id="x" format_id="a994b278-1f62-11e1-96ac-406186ea4fc5"><report id="x"><scan_run_status>Done</scan_run_status></report></report>"#;
    assert_kind(
        &run(no_results.as_bytes()),
        RejectKind::NotAReport,
        "<results>",
    );
    let legacy = r#"<report id="x"><scan_run_status>Done</scan_run_status><results><result id="a"/></results></report>"#;
    let v = run(legacy.as_bytes());
    assert!(accepted(&v).warnings.iter().any(|w| w.contains("legacy")));
}

#[test]
fn gvm_csv_is_unsupported() {
    let csv = b"IP,Hostname,Port,Port Protocol,CVSS,Severity,QoD,Solution Type,NVT Name\n10.0.0.8,,22,tcp,5.0,Medium,80,x,y\n";
    let v = run(csv);
    assert_kind(
        &v,
        RejectKind::Unsupported,
        "a994b278-1f62-11e1-96ac-406186ea4fc5",
    );
    assert_eq!(rejected(&v).format, Format::GvmCsv);
    // CSV Hosts: a different header, and only a per-host summary.
    let hosts = b"IP,Hostname,OS,Scan Start,Scan End,CVSS,Severity,High,Medium,Low,Log,False Positive,Total,Ports,Apps,Distance,Auth\n10.0.0.8,,,x,y,5.0,Medium,0,1,0,0,0,1,2,0,1,\n";
    let v = run(hosts);
    assert_kind(&v, RejectKind::Unsupported, "CSV Hosts");
    assert_eq!(rejected(&v).format, Format::GvmCsv);
}

// ---------------------------------------------------------------------------------------
// ZAP.

const ZAP_XML_NO_SITE: &str = r#"<?xml version="1.0"?><OWASPZAPReport programName="ZAP" version="2.16.1" generated="x">
</OWASPZAPReport>"#;

#[test]
fn zap_xml_without_site_needs_a_target() {
    let v = run(ZAP_XML_NO_SITE.as_bytes());
    assert_kind(&v, RejectKind::NoTarget, "target");
    let hints = Hints {
        target: Some("https://app.example.com".to_string()),
        ..Hints::default()
    };
    let v = run_with(ZAP_XML_NO_SITE.as_bytes(), &hints);
    let r = accepted(&v);
    assert_eq!(r.target.as_deref(), Some("https://app.example.com"));
    assert_eq!(r.scan_type, ScanType::OwaspZap);
    let hints = Hints {
        scan_type: Some(ScanType::OwaspZapActive),
        target: Some("https://app.example.com".to_string()),
        ..Hints::default()
    };
    assert_eq!(
        accepted(&run_with(ZAP_XML_NO_SITE.as_bytes(), &hints)).scan_type,
        ScanType::OwaspZapActive
    );
}

#[test]
fn zap_xml_sites_and_insight() {
    let doc = r#"<?xml version="1.0"?><OWASPZAPReport version="2.16.1" generated="x">
<site name="https://a.example" host="a.example" port="443" ssl="true"><alerts><alertitem><desc>&lt;p&gt;x&lt;/p&gt;</desc></alertitem></alerts></site>
<site name="https://b.example" host="b.example" port="443" ssl="true"><alerts/></site>
<stoppingInsight><level>High</level><reason>Memory is low</reason></stoppingInsight>
</OWASPZAPReport>"#;
    let v = run(doc.as_bytes());
    let r = accepted(&v);
    assert_eq!(r.target.as_deref(), Some("https://a.example"));
    let w = r.warnings.join("\n");
    assert!(
        w.contains("https://b.example") && w.contains("2 sites"),
        "{w}"
    );
    assert!(
        w.contains("stoppingInsight") && w.contains("Memory is low"),
        "{w}"
    );
    // Truncated ZAP XML.
    assert_eq!(
        rejected(&run(&doc.as_bytes()[..doc.len() - 5])).kind,
        RejectKind::Incomplete
    );
}

#[test]
fn zap_json_variants() {
    let ok = r#"{"@programName":"ZAP","@version":"2.14.0","site":[{"@name":"http://x.test","@port":"80","alerts":[{"instances":[{"nodeName":null}],"systemic":false}]}],"stoppingInsight":{"reason":"user stopped"}}"#;
    let v = run(ok.as_bytes());
    let r = accepted(&v);
    assert_eq!(
        (r.format, r.target.as_deref()),
        (Format::ZapJson, Some("http://x.test"))
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("user stopped")),
        "{r:?}"
    );

    let legacy = r#"{"@version":"2.7.0","site":{"@name":"http://old.test","alerts":[]}}"#;
    let v = run(legacy.as_bytes());
    assert_eq!(accepted(&v).target.as_deref(), Some("http://old.test"));
    assert!(accepted(&v).warnings.iter().any(|w| w.contains("2.7")));

    let no_site = r#"{"@version":"2.14.0","site":[]}"#;
    assert_kind(&run(no_site.as_bytes()), RejectKind::NoTarget, "target");

    let double = serde_json::to_string(legacy).expect("encode");
    let v = run(double.as_bytes());
    assert_kind(&v, RejectKind::NotAReport, "double-encoded");

    assert_eq!(
        rejected(&run(&ok.as_bytes()[..40])).kind,
        RejectKind::Incomplete
    );
    assert_eq!(
        rejected(&run(format!("{ok} x").as_bytes())).kind,
        RejectKind::Malformed
    );
    accepted(&run(format!("{ok}\n\n").as_bytes()));

    let md = b"\n# ZAP Scanning Report\n\n## Summary of Alerts\n";
    assert_kind(&run(md), RejectKind::NotAReport, "Markdown");

    let other = r#"{"name":"x","items":[1,2,3]}"#;
    assert_kind(
        &run(other.as_bytes()),
        RejectKind::NotAReport,
        "\"name\", \"items\"",
    );
}

// ---------------------------------------------------------------------------------------
// SSLyze.

fn sslyze(servers: &str, tail: &str) -> String {
    format!(r#"{{"invalid_server_strings":[],"server_scan_results":[{servers}]{tail}}}"#)
}

const SSL_DATES: &str = r#","date_scans_started":"2025-11-05T12:15:09Z","date_scans_completed":"2025-11-05T12:15:53Z","sslyze_version":"6.2.0","sslyze_url":"https://github.com/nabla-c0d3/sslyze""#;

fn server(host: &str, status: &str, result: &str) -> String {
    format!(
        r#"{{"uuid":"u","server_location":{{"hostname":"{host}","port":443,"connection_type":"DIRECT","ip_address":"1.2.3.4"}},"connectivity_status":"ERROR","connectivity_error_trace":"Traceback...\nConnectionRefused: refused\n","scan_status":"{status}","scan_result":{result}}}"#
    )
}

#[test]
fn sslyze_variants() {
    let ok_result = r#"{"certificate_info":{"status":"COMPLETED","error_reason":null,"result":{"x":[1,{"y":"z"}]}},"heartbleed":{"status":"ERROR","error_reason":"BUG_IN_SSLYZE","error_trace":"..."},"robot":{"status":"NOT_SCHEDULED"}}"#;
    let good = sslyze(&server("a.test", "COMPLETED", ok_result), SSL_DATES);
    let v = run(good.as_bytes());
    let r = accepted(&v);
    assert_eq!(
        (r.format, r.scan_type),
        (Format::SslyzeJson, ScanType::Sslyze)
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("heartbleed (BUG_IN_SSLYZE)")),
        "{r:?}"
    );

    let down = sslyze(
        &server("b.test", "ERROR_NO_CONNECTIVITY", "null"),
        SSL_DATES,
    );
    assert_kind(
        &run(down.as_bytes()),
        RejectKind::ScanFailed,
        "ERROR_NO_CONNECTIVITY",
    );
    assert!(rejected(&run(down.as_bytes()))
        .reason
        .contains("b.test:443"));

    let mixed = sslyze(
        &format!(
            "{},{}",
            server("a.test", "COMPLETED", "{}"),
            server("b.test", "ERROR_NO_CONNECTIVITY", "null")
        ),
        SSL_DATES,
    );
    let v = run(mixed.as_bytes());
    assert!(accepted(&v).warnings.iter().any(|w| w.contains("b.test")));

    assert_kind(&run(b"[]"), RejectKind::NotAReport, "array");
    assert_kind(
        &run(sslyze("", SSL_DATES).as_bytes()),
        RejectKind::ScanFailed,
        "empty",
    );

    let no_dates = sslyze(
        &server("a.test", "COMPLETED", "{}"),
        r#","sslyze_version":"6.2.0""#,
    );
    assert_kind(
        &run(no_dates.as_bytes()),
        RejectKind::Malformed,
        "date_scans_started",
    );

    let legacy = r#"{"server_scan_results":[{"server_info":{"server_location":{"hostname":"old.test","port":443,"ip_address":"1.2.3.4"},"tls_probing_result":{}},"scan_commands":["certificate_info"],"scan_commands_results":{"certificate_info":{}},"scan_commands_errors":{},"scan_commands_extra_arguments":{}}],"server_connectivity_errors":[],"sslyze_url":"u","sslyze_version":"3.0.7","total_scan_time":1.5}"#;
    let v = run(legacy.as_bytes());
    assert!(accepted(&v).warnings.iter().any(|w| w.contains("legacy")));

    // Configured for ZAP: mismatch.
    let hints = Hints {
        scan_type: Some(ScanType::OwaspZap),
        ..Hints::default()
    };
    assert_kind(
        &run_with(good.as_bytes(), &hints),
        RejectKind::Mismatch,
        "SSLYZE",
    );
}

#[test]
fn mismatch_names_the_fix() {
    let hints = Hints {
        scan_type: Some(ScanType::Sslyze),
        ..Hints::default()
    };
    assert_kind(
        &run_with(NMAP.as_bytes(), &hints),
        RejectKind::Mismatch,
        "NMAP or NMAP_UDP",
    );
}

// ---------------------------------------------------------------------------------------
// Odds and ends.

#[test]
fn empty_and_blank_files_are_incomplete() {
    assert_eq!(rejected(&run(b"")).kind, RejectKind::Incomplete);
    assert_eq!(rejected(&run(b" \n\t\n")).kind, RejectKind::Incomplete);
    assert_eq!(rejected(&run(b"\xEF\xBB\xBF")).kind, RejectKind::Incomplete);
    assert_eq!(rejected(&run(b"\xFF\xFE<\0")).kind, RejectKind::Malformed);
    assert_kind(&run(b"\x00\x01\x02binary"), RejectKind::NotAReport, "\\x00");
    assert_kind(&run(b"%PDF-1.4\n"), RejectKind::NotAReport, "PDF");
    assert_kind(
        &run(b"nope, just text"),
        RejectKind::NotAReport,
        "plain text",
    );
}

/// Hands out `data` in small pieces, then fails with `kind` (or is interrupted once first).
struct Flaky {
    data: Vec<u8>,
    pos: usize,
    fail_at: usize,
    kind: io::ErrorKind,
    interrupted: bool,
}

impl Read for Flaky {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // Every other read is interrupted by a "signal" and must be retried by someone.
        self.interrupted = !self.interrupted;
        if self.interrupted {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
        }
        if self.pos >= self.fail_at {
            return Err(io::Error::new(self.kind, "disk on fire"));
        }
        let end = (self.pos + 16).min(self.fail_at).min(self.data.len());
        let n = (end - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn flaky(data: &[u8], fail_at: usize) -> impl BufRead {
    BufReader::with_capacity(
        8,
        Flaky {
            data: data.to_vec(),
            pos: 0,
            fail_at,
            kind: io::ErrorKind::ConnectionReset,
            interrupted: false,
        },
    )
}

#[test]
fn reader_errors_surface_as_io_errors() {
    let json = sslyze(&server("a.test", "COMPLETED", "{}"), SSL_DATES);
    for (doc, at) in [
        (NMAP.as_bytes(), 3),
        (NMAP.as_bytes(), 700),
        (json.as_bytes(), 2),
        (json.as_bytes(), 300),
        (
            b"IP,Hostname,Port,Port Protocol,CVSS,Severity,".as_slice(),
            10,
        ),
    ] {
        let err = match validate(flaky(doc, at), &Hints::default()) {
            Err(e) => e,
            Ok(v) => panic!("fail at {at}: expected an I/O error, got {v:?}"),
        };
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(err.to_string(), "disk on fire");
    }
    // An Interrupted read is retried, not reported.
    let v = validate(flaky(NMAP.as_bytes(), usize::MAX), &Hints::default()).expect("retried");
    accepted(&v);
}

#[test]
fn names_and_serde() {
    for t in ScanType::ALL {
        assert_eq!(t.as_str().parse::<ScanType>(), Ok(t));
        let json = serde_json::to_string(&t).expect("ser");
        assert_eq!(json, format!("\"{}\"", t.as_str()));
        assert_eq!(serde_json::from_str::<ScanType>(&json).expect("de"), t);
    }
    let err = "nmap".parse::<ScanType>().expect_err("lower case");
    assert!(err.to_string().contains("OWASP_ZAP_ACTIVE"));
    assert!(ScanType::OwaspZap.needs_target() && !ScanType::Nmap.needs_target());
    for f in Format::ALL {
        assert_eq!(
            serde_json::to_string(&f).expect("ser"),
            format!("\"{}\"", f.as_str())
        );
    }
    assert_eq!(Format::GvmXml.content_type(), "application/xml");
    assert_eq!(Format::SslyzeJson.content_type(), "application/json");
    assert_eq!(
        serde_json::to_string(&RejectKind::NotAReport).expect("ser"),
        "\"not_a_report\""
    );
}

#[test]
fn mutated_fixtures_never_panic() {
    let json = sslyze(&server("a.test", "COMPLETED", "{}"), SSL_DATES);
    let zap =
        r#"{"@version":"2.14.0","site":[{"@name":"http://x.test","alerts":[{"a":"\u00e9\n"}]}]}"#;
    let docs = [
        NMAP.to_string(),
        gvm("Done", r#"max="2""#, 2, 1),
        json,
        zap.to_string(),
    ];
    for doc in &docs {
        let bytes = doc.as_bytes();
        for i in 0..bytes.len() {
            for b in [b'<', b'&', b'"', b'>', b'[', b'{', 0xFF, 0xC3, b'\0'] {
                let mut m = bytes.to_vec();
                m[i] = b;
                let _ = run(&m);
            }
            // Deleting a byte shifts everything after it.
            let mut m = bytes.to_vec();
            m.remove(i);
            let _ = run(&m);
        }
    }
}

#[test]
fn oversized_tag_hits_the_limit_but_long_text_streams() {
    let big_attr = NMAP.replace(
        r#"summary="done""#,
        &format!("summary=\"{}\"", "x".repeat(5000)),
    );
    for cap in [64, 4096] {
        let reader = BufReader::with_capacity(cap, big_attr.as_bytes());
        let v = validate_limited(reader, &Hints::default(), 1000).expect("no I/O error");
        assert_kind(&v, RejectKind::Limit, "larger than 1000 bytes");
        assert!(
            rejected(&v).reason.contains("tag starting at line"),
            "{v:?}"
        );
    }
    // Text, comments and CDATA of any length stream through in pieces.
    let long = "y".repeat(5000);
    for doc in [
        NMAP.replace("ünïcode", &long),
        NMAP.replace("<verbose", &format!("<!-- {long} --><verbose")),
        NMAP.replace("ünïcode", &format!("<![CDATA[{long}]]>")),
        NMAP.replace("<verbose", &format!("<?pi {long}?><verbose")),
    ] {
        let v = validate_limited(doc.as_bytes(), &Hints::default(), 1000).expect("no I/O error");
        accepted(&v);
    }
    let v = validate_limited(NMAP.as_bytes(), &Hints::default(), 1000).expect("no I/O error");
    accepted(&v);
}

/// Found by fuzzing (fuzz/fuzz_targets/validate_chunked.rs): the verdict must not depend on how
/// the reads are cut. The first problem in the file wins: a start that is no report at all
/// before invalid UTF-8 further on, a non-report root element before it, and invalid UTF-8
/// before a truncation.
#[test]
fn the_first_problem_wins_whatever_the_read_sizes() {
    // The invalid bytes sit just past the 512-byte sniff window, where a larger read sees them.
    let mut not_a_report = b"1.0\"?><OWASPZAPReport version=\"2\">".to_vec();
    not_a_report.extend(std::iter::repeat_n(b'a', 510));
    not_a_report.extend_from_slice(b"\xbc\xbc</OWASPZAPReport>");
    let mut odd_root = b"<?xml version=\"1.0\"?><catalog>".to_vec();
    odd_root.extend(std::iter::repeat_n(b'b', 2000));
    odd_root.extend_from_slice(b"\xff</catalog>");
    let mut bad_then_cut = NMAP.as_bytes()[..NMAP.len() / 2].to_vec();
    bad_then_cut.extend_from_slice(b"<x a=\"\xc3\x28\">");
    for doc in [not_a_report, odd_root, bad_then_cut] {
        let whole = rejected(&run(&doc)).kind;
        for cap in [1, 3, 7, 16, 61, 4096] {
            assert_eq!(
                rejected(&run_chunked(&doc, cap)).kind,
                whole,
                "read size {cap}"
            );
        }
    }
    let mut not_a_report = b"1.0\"?>".to_vec();
    not_a_report.extend(std::iter::repeat_n(b'a', 600));
    not_a_report.push(0xff);
    assert_eq!(rejected(&run(&not_a_report)).kind, RejectKind::NotAReport);
}

// ---------------------------------------------------------------------------------------
// Reading ahead on a second thread: the same verdict, reason and line as reading inline.

fn tuned(bytes: &[u8], cap: usize, ahead_after: u64) -> io::Result<Verdict> {
    validate_tuned(
        BufReader::with_capacity(cap, bytes),
        &Hints::default(),
        xml::MAX_MARKUP,
        ahead_after,
    )
}

/// `bytes` read ahead from the first byte and inline give the same verdict.
fn same_ahead_and_inline(bytes: &[u8], cap: usize, what: &str) {
    let inline = tuned(bytes, cap, u64::MAX).expect("no I/O error");
    let ahead = tuned(bytes, cap, 0).expect("no I/O error");
    assert_eq!(ahead, inline, "{what}");
}

#[test]
fn reading_ahead_changes_no_verdict_for_any_cut_or_damaged_byte() {
    let json = sslyze(&server("a.test", "COMPLETED", "{}"), SSL_DATES);
    for doc in [NMAP.as_bytes(), json.as_bytes()] {
        for cut in 0..doc.len() {
            same_ahead_and_inline(&doc[..cut], 5, &format!("cut at {cut}"));
        }
        for at in 0..doc.len() {
            for bad in [0xFF, b'<', 0x01, b'"'] {
                let mut damaged = doc.to_vec();
                damaged[at] = bad;
                same_ahead_and_inline(&damaged, 7, &format!("{bad:#x} at {at}"));
            }
        }
    }
}

/// An Nmap report of at least `size` bytes: the fixture with its host copied.
fn big_nmap(size: usize) -> String {
    let start = NMAP.find("<host ").expect("fixture");
    let end = NMAP.find("</host>\n").expect("fixture") + "</host>\n".len();
    let mut doc = String::with_capacity(NMAP.len() + size);
    doc.push_str(&NMAP[..start]);
    while doc.len() < size {
        doc.push_str(&NMAP[start..end]);
    }
    doc.push_str(&NMAP[end..]);
    doc
}

#[test]
fn a_big_report_read_ahead_gets_the_verdict_reason_and_line_of_reading_inline() {
    let doc = big_nmap(13 << 19); // 6.5 MiB: the thread starts at 4 MiB
    assert!(doc.len() as u64 > ahead::INLINE_LIMIT + (1 << 20));
    let real = |bytes: &[u8]| {
        validate(
            BufReader::with_capacity(64 * 1024, bytes),
            &Hints::default(),
        )
    };
    let inline = |bytes: &[u8]| tuned(bytes, 64 * 1024, u64::MAX);
    let check = |bytes: &[u8], what: &str| {
        let (a, b) = (
            real(bytes).expect("no I/O error"),
            inline(bytes).expect("no I/O error"),
        );
        assert_eq!(a, b, "{what}");
        // In the agent's reads of 256 KiB the parser may hold part of a read when the thread
        // takes over (the thread's first chunk is the rest of it): its newlines must not be
        // counted twice. Taking over at a few places puts that moment inside a read.
        let d = tuned(bytes, 256 * 1024, u64::MAX).expect("no I/O error");
        assert_eq!(d, a, "{what}: the same line whatever the read size");
        for after in [0, 12_345, 131_079] {
            let c = tuned(bytes, 256 * 1024, ahead::INLINE_LIMIT + after).expect("no I/O error");
            assert_eq!(c, d, "{what}, reads of 256 KiB, ahead after {after} more");
        }
        // And read ahead from the first byte, where a chunk taken whole must not place the
        // parser's buffer before the file's start.
        let c = tuned(bytes, 256 * 1024, 0).expect("no I/O error");
        assert_eq!(c, d, "{what}, reads of 256 KiB, ahead from the start");
        // Reads of 1 MiB take chunks whole early in the file. (A read holding more than the
        // 4096 newlines a piece keeps may then place an error by its byte offset only: the
        // same verdict, less precisely placed.)
        let c = tuned(bytes, 1 << 20, 0).expect("no I/O error");
        match (&c, &d) {
            (Ok(_), Ok(_)) => {}
            (Err(a), Err(b)) => {
                assert_eq!(
                    a.kind, b.kind,
                    "{what}, reads of 1 MiB, ahead from the start"
                );
                let byte = |r: &str| {
                    r.split("byte ").nth(1).map(|t| {
                        t.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                    })
                };
                assert_eq!(
                    byte(&a.reason),
                    byte(&b.reason),
                    "{what}: {} / {}",
                    a.reason,
                    b.reason
                );
            }
            _ => panic!("{what}, reads of 1 MiB, ahead from the start: {c:?} / {d:?}"),
        }
        a
    };
    // Accepted, with the warning its host count gives.
    accepted(&check(doc.as_bytes(), "as it is"));
    // Past the point where the thread starts: a broken end tag with bad UTF-8 600 KiB after
    // it, which the thread reads but the parser, stopped at the tag, never does (the tag's
    // error is the verdict); bad UTF-8 alone; a cut.
    let at = doc[5 << 20..].find("</host>").expect("a host") + (5 << 20);
    let mut broken = doc.clone().into_bytes();
    broken[at + 2..at + 6].copy_from_slice(b"hoss");
    broken[at + 600 * 1024] = 0xFF;
    let v = check(&broken, "mismatched end tag then bad UTF-8");
    assert_kind(&v, RejectKind::Malformed, "line ");
    assert!(rejected(&v).reason.contains("hoss"), "{v:?}");
    let far = broken.clone();
    // Bad UTF-8 within the parser's own read-ahead is beyond the tag too: the tag's error,
    // whatever the read sizes (bad bytes used to win when the parser happened to read them).
    broken[at + 300] = 0xFF;
    for cap in [8 * 1024, 64 * 1024, 256 * 1024] {
        let v = validate(
            BufReader::with_capacity(cap, &broken[..]),
            &Hints::default(),
        )
        .expect("no I/O error");
        assert_kind(&v, RejectKind::Malformed, "hoss");
    }
    let mut bad = doc.clone().into_bytes();
    bad[at + 300] = 0xFF;
    let v = check(&bad, "bad UTF-8");
    assert_kind(&v, RejectKind::Malformed, "invalid UTF-8 at line ");
    let v = check(&doc.as_bytes()[..at], "cut");
    assert_kind(&v, RejectKind::Incomplete, "truncated");
    // A read error the parser never reached (the thread read past the broken tag into it)
    // leaves the verdict; one it reached is an I/O error, for the file to be read again.
    let fails = |data: &[u8], fail_at: usize| {
        validate(
            BufReader::with_capacity(
                64 * 1024,
                Flaky {
                    data: data.to_vec(),
                    pos: 0,
                    fail_at,
                    kind: io::ErrorKind::ConnectionReset,
                    interrupted: false,
                },
            ),
            &Hints::default(),
        )
    };
    let v = fails(&far, at + 400 * 1024).expect("the verdict, not the read error");
    assert_kind(&v, RejectKind::Malformed, "hoss");
    let e = fails(doc.as_bytes(), at).expect_err("a read error of a good file");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
}

/// Read ahead, the parser takes whole chunks as its buffer, with the unread end of its old
/// buffer moved in front: tags longer than that room, cut by a chunk's start at every few
/// bytes, a non-ASCII byte in a document declared US-ASCII, and errors after them, decide as
/// reading inline does.
#[test]
fn chunks_taken_whole_decide_as_reading_inline() {
    let doc = big_nmap(1 << 20);
    let at = doc.find("<host ").expect("a host") + (600 << 10);
    let at = doc[at..].find("<host ").expect("a host") + at;
    let long = format!("<x a=\"{}\"/>", "y".repeat(20_000));
    let cap = 64 * 1024;
    for shift in (0..30_000).step_by(997) {
        // The long tag where a read of 64 KiB ends inside it, at a different place each time.
        let mut d = doc.clone();
        d.insert_str(at, &" ".repeat(shift));
        d.insert_str(at + shift, &long);
        same_ahead_and_inline(d.as_bytes(), cap, &format!("long tag at {shift}"));
        let mut bad = d.clone().into_bytes();
        let end = at + shift + long.len() + 100;
        let gt = end + bad[end..].iter().position(|b| *b == b'>').expect("a tag");
        bad[gt] = b'<';
        same_ahead_and_inline(&bad, cap, &format!("long tag at {shift}, bad tag after"));
    }
    let ascii: String = doc
        .replacen("encoding=\"UTF-8\"", "encoding=\"US-ASCII\"", 1)
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect();
    assert!(
        ascii.contains("US-ASCII"),
        "the fixture declares its encoding"
    );
    for k in [300_000, 700_000, 900_001] {
        let mut d = ascii.clone();
        let i = d[k..].find('>').expect("a tag") + k + 1;
        d.insert(i, 'é');
        same_ahead_and_inline(d.as_bytes(), cap, &format!("not ASCII at {i}"));
        let v = tuned(d.as_bytes(), cap, 0).expect("no I/O error");
        assert_kind(
            &v,
            RejectKind::Malformed,
            &format!("(byte {i}) is not ASCII"),
        );
    }
}

/// Start tags scanned ahead by the reading thread (every chunk whole, every other tag of each,
/// or as the parser leaves it time) decide as reading inline: a report of 4.5 MiB with, at
/// places past where the thread starts, a bad attribute, a repeated key, a tag over the limit
/// on tags, and a comment, CDATA and a PI holding tag-like text (good and broken "tags" the
/// parser must not take for tags), alone and with a bad tag after them. Read in pieces of 8 KiB
/// (copied into the parser's buffer, several indexes pending) and of 256 KiB (taken whole).
#[test]
fn tags_scanned_ahead_decide_as_reading_inline() {
    use ahead::{TagScan, TAGS_TAKEN, TAG_SCAN};
    const LIMIT: usize = 4096;
    let doc = big_nmap(9 << 19); // 4.5 MiB: the thread starts at 4 MiB
    let run = |bytes: &[u8], cap: usize, after: u64, scan: TagScan| {
        TAG_SCAN.with(|t| t.set(scan));
        let v = validate_tuned(
            BufReader::with_capacity(cap, bytes),
            &Hints::default(),
            LIMIT,
            after,
        );
        TAG_SCAN.with(|t| t.set(TagScan::WhenAhead));
        v.expect("no I/O error")
    };
    let lookalikes = "<!-- <host a=\"1\" a=\"2\"> <y b=\"<\"/> <z c=\"d\"/> <w e=\"&bad;\"> -->\
                      <?pi <port x=\"1\"/> <v a=\"b\"c=\"d\">?>";
    let cdata = "<![CDATA[<port protocol=\"tcp\"> <q r=\"1\" r=\"2\"/> <s t=\"u\"/>]]>";
    let oversized = format!("<x a=\"{}\"/>", "y".repeat(LIMIT + 100));
    type Damage = fn(&mut String, usize, &str, &str, &str);
    let damages: [(&str, Damage); 6] = [
        ("bad attribute", |d, at, _, _, _| {
            let i = d[at..].find("<port protocol=\"tcp\"").expect("a port") + at;
            d.replace_range(i + 16..i + 19, "t<p");
        }),
        ("repeated key", |d, at, _, _, _| {
            let i = d[at..].find("<service name=\"ssh\"").expect("a service") + at;
            d.insert_str(i + 19, " name=\"x\"");
        }),
        ("tag over the limit", |d, at, _, _, big| {
            let i = d[at..].find("<port ").expect("a port") + at;
            d.insert_str(i, big);
        }),
        ("tag-like text", |d, at, look, cdata, _| {
            let i = d[at..].find("<port ").expect("a port") + at;
            d.insert_str(i, look);
            let i = d[i..].find("<script ").expect("a script") + i;
            let gt = d[i..].find('>').expect("a tag") + i + 1;
            d.insert_str(gt, cdata);
        }),
        (
            "tag-like text, then a tag not separated",
            |d, at, look, cdata, _| {
                let i = d[at..].find("<port ").expect("a port") + at;
                d.insert_str(i, look);
                d.insert_str(i, cdata);
                let i = d[i..].find("<state state=").expect("a state") + i;
                d.replace_range(i + 19..i + 20, "\"x=");
            },
        ),
        ("an end tag misspelt after a long tag", |d, at, _, _, _| {
            let i = d[at..].find("<port ").expect("a port") + at;
            d.insert_str(i, &format!("<x a=\"{}\"/>", "y".repeat(LIMIT - 100)));
            let i = d[i..].find("</port>").expect("a port") + i;
            d.replace_range(i + 2..i + 3, "q");
        }),
    ];
    let combos = [
        (256 * 1024, TagScan::All),
        (8 * 1024, TagScan::EveryOther),
        (256 * 1024, TagScan::EveryOther),
        (8 * 1024, TagScan::All),
        (256 * 1024, TagScan::WhenAhead),
    ];
    // Each damage at four places, each place read in two of the ways (every way meets every
    // damage): a debug build reads about 10 MB/s.
    let mut tried = 0;
    let mut every_other_took = 0;
    for k in 0..4 {
        let at = ahead::INLINE_LIMIT as usize + 20_000 + k * 90_017;
        for (j, (what, damage)) in damages.into_iter().enumerate() {
            let mut d = doc.clone();
            damage(&mut d, at, lookalikes, cdata, &oversized);
            let bytes = d.as_bytes();
            let inline = run(bytes, 256 * 1024, u64::MAX, TagScan::Off);
            if k == 0 {
                let v = inline.as_ref().map(|_| "accepted");
                let kinds = match what {
                    "tag over the limit" => Err(RejectKind::Limit),
                    w if w.starts_with("tag-like") && !w.contains(',') => Ok("accepted"),
                    _ => Err(RejectKind::Malformed),
                };
                assert_eq!(v.map_err(|r| r.kind), kinds, "{what}: {inline:?}");
            }
            for (cap, scan) in [combos[(j + 2 * k) % 5], combos[(j + 2 * k + 1) % 5]] {
                let taken = TAGS_TAKEN.with(|n| n.get());
                let v = run(bytes, cap, ahead::INLINE_LIMIT, scan);
                assert_eq!(v, inline, "{what} past {at}, reads of {cap}, {scan:?}");
                let took = TAGS_TAKEN.with(|n| n.get()) - taken;
                if scan == TagScan::All {
                    assert!(took > 0, "{what} past {at}, reads of {cap}: none taken");
                }
                // Where the damage lies within what the parser read inline, nothing is taken
                // from an index: every other tag is counted over all the runs.
                if scan == TagScan::EveryOther {
                    every_other_took += took;
                }
                tried += 1;
            }
        }
    }
    assert_eq!(tried, 48);
    assert!(every_other_took > 0, "every other tag indexed, none taken");
}

/// An independent review's sweeps: read ahead from several points vs inline, at the read size
/// `REVIEW_CAP` (64 KiB by default).
mod review {
    use super::*;

    fn cap() -> usize {
        std::env::var("REVIEW_CAP")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64 * 1024)
    }

    fn ahead(bytes: &[u8], cap: usize, after: u64) -> io::Result<Verdict> {
        tuned(bytes, cap, after)
    }

    /// Compares `run` reading inline with `run` reading ahead after each of `afters` bytes,
    /// noting every difference under `what`.
    fn compare(
        diffs: &mut Vec<String>,
        what: &str,
        afters: &[u64],
        run: impl Fn(u64) -> io::Result<Verdict>,
    ) {
        let inline = show(&run(u64::MAX));
        for &after in afters {
            let a = show(&run(after));
            if inline != a {
                diffs.push(format!(
                    "{what}, after {after}:\n  inline {inline}\n  ahead  {a}"
                ));
            }
        }
    }

    fn assert_none(diffs: &[String], tried: usize) {
        assert!(
            diffs.is_empty(),
            "{} of {tried} differ:\n{}",
            diffs.len(),
            diffs.join("\n")
        );
    }

    fn show(v: &io::Result<Verdict>) -> String {
        match v {
            Ok(Ok(r)) => format!("OK {:?}", r.scan_type),
            Ok(Err(r)) => format!("{:?}: {}", r.kind, r.reason),
            Err(e) => format!("IO {:?}", e.kind()),
        }
    }

    /// A broken end tag at P and bad UTF-8 at P + d: inline and ahead, 64 KiB reads
    /// (REVIEW_CAP=262144 for the reads admission makes: those agree).
    #[test]
    fn review_xml_broken_tag_then_bad_byte_sweep() {
        let doc = big_nmap(3 << 19);
        let hosts: Vec<usize> = doc.match_indices("</host>").map(|(i, _)| i).collect();
        let mut diffs = Vec::new();
        let mut tried = 0;
        for (k, &p) in hosts.iter().enumerate().skip(40).step_by(97) {
            for d in (500usize..80_000).step_by(7_919) {
                if p + d >= doc.len() - 100 {
                    continue;
                }
                let mut b = doc.clone().into_bytes();
                b[p + 2..p + 6].copy_from_slice(b"hoss");
                b[p + d] = 0xFF;
                tried += 1;
                let what = format!("host {k} at {p}, d {d}");
                compare(&mut diffs, &what, &[0, 300_000, 777_777], |after| {
                    ahead(&b, cap(), after)
                });
            }
        }
        assert_none(&diffs, tried);
    }

    /// Many short lines after an error: line and column in both modes.
    #[test]
    fn review_xml_dense_lines_locate_the_same() {
        let mut doc = String::from("<?xml version=\"1.0\"?>\n<nmaprun scanner=\"nmap\">\n");
        while doc.len() < 1_500_000 {
            doc.push_str("<a/>\n");
        }
        doc.push_str("</nmaprun>\n");
        let mut diffs = Vec::new();
        let mut tried = 0;
        for p in (300_000..1_200_000).step_by(9_973) {
            // The tag at or after p: make it a bad end tag.
            let at = doc[p..].find("<a/>").unwrap() + p;
            let mut b = doc.clone().into_bytes();
            b[at..at + 4].copy_from_slice(b"</b>");
            tried += 1;
            let what = format!("at {at}");
            compare(&mut diffs, &what, &[0, 200_000], |after| {
                ahead(&b, cap(), after)
            });
        }
        assert_none(&diffs, tried);
    }

    /// A reader whose reads fill the caller's whole buffer, failing at `fail_at`.
    struct Fails {
        data: Vec<u8>,
        pos: usize,
        fail_at: usize,
    }

    impl Read for Fails {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pos >= self.fail_at {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "disk on fire",
                ));
            }
            let end = (self.pos + out.len())
                .min(self.fail_at)
                .min(self.data.len());
            let n = end - self.pos;
            out[..n].copy_from_slice(&self.data[self.pos..end]);
            self.pos = end;
            Ok(n)
        }
    }

    fn fails(data: &[u8], fail_at: usize, after: u64) -> io::Result<Verdict> {
        validate_tuned(
            BufReader::with_capacity(
                cap(),
                Fails {
                    data: data.to_vec(),
                    pos: 0,
                    fail_at,
                },
            ),
            &Hints::default(),
            xml::MAX_MARKUP,
            after,
        )
    }

    /// A broken tag at P and a read error at P + d: I/O error or verdict, the same both ways.
    #[test]
    fn review_xml_broken_tag_then_read_error_sweep() {
        let doc = big_nmap(3 << 19);
        let hosts: Vec<usize> = doc.match_indices("</host>").map(|(i, _)| i).collect();
        let mut diffs = Vec::new();
        let mut tried = 0;
        for (k, &p) in hosts.iter().enumerate().skip(40).step_by(97) {
            for d in (500usize..80_000).step_by(7_919) {
                if p + d >= doc.len() - 100 {
                    continue;
                }
                let mut b = doc.clone().into_bytes();
                b[p + 2..p + 6].copy_from_slice(b"hoss");
                tried += 1;
                let what = format!("host {k} at {p}, d {d}");
                compare(&mut diffs, &what, &[0, 300_000, 777_777], |after| {
                    fails(&b, p + d, after)
                });
            }
        }
        assert_none(&diffs, tried);
    }

    /// A ZAP JSON report with a syntax error at P and bad UTF-8 or a read error at P + d.
    #[test]
    fn review_json_syntax_error_then_bad_byte_or_read_error_sweep() {
        let mut doc = String::from("{\n\"@version\": \"2.16.1\",\n\"site\": [\n");
        let mut i = 0;
        while doc.len() < 1_600_000 {
            if i > 0 {
                doc.push_str(",\n");
            }
            doc.push_str(&format!(
                "{{\"@name\": \"http://h{i}.example\", \"alerts\": [{{\"desc\": \"{}\", \"n\": {i}}}]}}",
                "x".repeat(i % 700)
            ));
            i += 1;
        }
        doc.push_str("\n]\n}\n");
        assert!(ahead(doc.as_bytes(), cap(), 0).unwrap().is_ok());
        let marks: Vec<usize> = doc.match_indices("\"n\": ").map(|(i, _)| i).collect();
        let mut diffs = Vec::new();
        let mut tried = 0;
        for &p in marks.iter().skip(30).step_by(53) {
            for d in [100usize, 30_000, 70_000, 300_000, 1_100_000] {
                if p + d >= doc.len() - 10 {
                    continue;
                }
                let mut b = doc.clone().into_bytes();
                b[p] = b'!';
                let mut u = b.clone();
                u[p + d] = 0xFF;
                tried += 1;
                let what = format!("bad byte at {p}, d {d}");
                compare(&mut diffs, &what, &[0, 300_000, 777_777], |after| {
                    ahead(&u, cap(), after)
                });
                let what = format!("read error at {p}, d {d}");
                compare(&mut diffs, &what, &[0, 300_000, 777_777], |after| {
                    fails(&b, p + d, after)
                });
            }
        }
        assert_none(&diffs, tried);
    }
}
