//! The exact reasons users see for each parser error, as the validator words them (pinned
//! from the wording before the parser had its own error type; only the format of a US-ASCII
//! violation changed: it is now always the root element's, as for every other error).

use crate::validate::{validate, Hints};

#[test]
fn each_parser_error_is_worded_as_before() {
    let cases = [
        (
            "<nmaprun scanner=\"nmap\">1 < 2</nmaprun>",
            "nmap-xml",
            "not well-formed XML at line 1, column 27 (byte 26): '<' is not followed by a name (a bare '<' in text must be written &lt;)",
        ),
        (
            "<nmaprun scanner=\"nmap\">x]]>y</nmaprun>",
            "nmap-xml",
            "not well-formed XML at line 1, column 26 (byte 25): ']]>' in text must be written ]]&gt;",
        ),
        (
            "<nmaprun scanner=\"nmap\">&lol;</nmaprun>",
            "nmap-xml",
            "entity reference &lol; at line 1, column 25 (byte 24): only the five predefined XML entities and character references are allowed (entities are never expanded)",
        ),
        (
            "<nmaprun scanner=\"nmap\">&#0;</nmaprun>",
            "nmap-xml",
            "invalid character reference &#0; at line 1, column 25 (byte 24)",
        ),
        (
            "<nmaprun scanner=\"nmap\">x & y</nmaprun>",
            "nmap-xml",
            "a bare '&' in text at line 1, column 27 (byte 26) (must be written &amp;)",
        ),
        (
            "<nmaprun scanner=\"nmap\"></nmaprun>\nx",
            "nmap-xml",
            "content after the root element at line 1, column 35 (byte 34): only whitespace, comments and processing instructions may stand outside it",
        ),
        (
            "<nmaprun scanner=\"nmap\"><b/></nmaprun><b/>",
            "nmap-xml",
            "a second root element <b> at line 1, column 39 (byte 38): the file holds more than one XML document (nmap --append-output writes this); keep one document per file, e.g. re-run with -oX to a new file",
        ),
        (
            "<nmaprun scanner=\"nmap\"></ b></nmaprun>",
            "nmap-xml",
            "not well-formed XML at line 1, column 25 (byte 24): a malformed end tag",
        ),
        (
            "</nmaprun>",
            "xml",
            "not well-formed XML at line 1, column 1 (byte 0): the end tag </nmaprun> closes nothing",
        ),
        (
            "<nmaprun scanner=\"nmap\"><host><ports></host>",
            "nmap-xml",
            "not well-formed XML at line 1, column 38 (byte 37): the end tag </host> does not match the open element <ports> (nmaprun/host/ports)",
        ),
        (
            "<nmaprun scanner=\"nmap\"><!ELEMENT x></nmaprun>",
            "nmap-xml",
            "not well-formed XML at line 1, column 25 (byte 24): unknown markup after '<!' (expected a comment, CDATA or DOCTYPE)",
        ),
        (
            "<nmaprun scanner=\"nmap\"></nmaprun><!DOCTYPE n>",
            "nmap-xml",
            "a second DOCTYPE at line 1, column 35 (byte 34): the file holds more than one XML document (nmap --append-output writes this); keep one document per file, e.g. re-run with -oX to a new file",
        ),
        (
            "<!DOCTYPE n [<!ENTITY x \"y\">]><nmaprun scanner=\"nmap\"></nmaprun>",
            "xml",
            "a DOCTYPE with an internal subset or entity declarations at line 1, column 1 (byte 0): DTDs and entities are refused (they can expand or leak data); only a bare <!DOCTYPE name> is allowed",
        ),
        (
            "<!DOCTYPE n junk><nmaprun scanner=\"nmap\"></nmaprun>",
            "xml",
            "not well-formed XML at line 1, column 1 (byte 0): a malformed DOCTYPE (expected SYSTEM \"uri\" or PUBLIC \"id\" \"uri\")",
        ),
        (
            "<!DOCTYPE n><!DOCTYPE n><nmaprun scanner=\"nmap\"></nmaprun>",
            "xml",
            "a DOCTYPE at line 1, column 13 (byte 12) after the root element or a previous DOCTYPE",
        ),
        (
            "<nmaprun scanner=\"nmap\"><? x?></nmaprun>",
            "nmap-xml",
            "not well-formed XML at line 1, column 25 (byte 24): a processing instruction without a valid target name",
        ),
        (
            "<nmaprun scanner=\"nmap\"><?XmL x?></nmaprun>",
            "nmap-xml",
            "not well-formed XML at line 1, column 25 (byte 24): the processing instruction name 'XmL' is reserved",
        ),
        (
            "<nmaprun scanner=\"nmap\"></nmaprun><?xml version=\"1.0\"?>",
            "nmap-xml",
            "a second XML declaration at line 1, column 35 (byte 34): the file holds more than one XML document (nmap --append-output writes this); keep one document per file, e.g. re-run with -oX to a new file",
        ),
        (
            "<!-- c --><?xml version=\"1.0\"?><nmaprun scanner=\"nmap\"></nmaprun>",
            "xml",
            "the XML declaration at line 1, column 11 (byte 10) is not at the start of the file: a comment comes before it, which is not well-formed XML; remove what precedes <?xml ...?>",
        ),
        (
            "<?xml version=\"2.0\"?><nmaprun scanner=\"nmap\"></nmaprun>",
            "xml",
            "not well-formed XML at line 1, column 1 (byte 0): a malformed XML declaration (version=\"2.0\" is not a value XML allows)",
        ),
        (
            "<?xml version=\"1.0\" encoding=\"latin1\"?><nmaprun scanner=\"nmap\"></nmaprun>",
            "xml",
            "the XML declaration says encoding=\"latin1\"; only UTF-8 is supported: convert the file (e.g. iconv -f latin1 -t UTF-8) and fix the declaration",
        ),
        (
            "<?xml version=\"1.0\" encoding=\"US-ASCII\"?>\n<nmaprun scanner=\"nmap\">é</nmaprun>",
            "nmap-xml",
            "the XML declaration says the file is US-ASCII, but the byte at line 2, column 25 (byte 66) is not ASCII; declare encoding=\"UTF-8\" if the file is UTF-8, or convert it",
        ),
        (
            "<nmaprun scanner=\"nmap\">\n<!-- a -- b --></nmaprun>",
            "nmap-xml",
            "not well-formed XML at line 2, column 8 (byte 32): '--' inside a comment (the comment that starts at line 2, column 1 (byte 25))",
        ),
        (
            "<nmaprun scanner=\"nmap\"><b c=\"1\"/ ></nmaprun>",
            "nmap-xml",
            "bad attribute in <b> at line 1, column 25 (byte 24): '/' not followed by '>'",
        ),
        (
            "<nmaprun scanner=\"nmap\"><b c=\"&x;\"/></nmaprun>",
            "nmap-xml",
            "bad attribute in <b> at line 1, column 25 (byte 24): entity reference &x; in attribute c: only the five predefined XML entities and character references are allowed (entities are never expanded)",
        ),
        (
            "<nmaprun scanner=\"nmap\"><b c=\"1\" c=\"2\"/></nmaprun>",
            "nmap-xml",
            "bad attribute in <b> at line 1, column 25 (byte 24): attribute c appears twice",
        ),
        (
            "<nmaprun scanner=\"nmap\"><b>text",
            "nmap-xml",
            "the file ends at line 1, column 32 (byte 31) inside <nmaprun/b>: the document is truncated (the scan was interrupted, or the file is still being written)",
        ),
        (
            "<nmaprun scanner=\"nmap\"><b x=\"1",
            "nmap-xml",
            "the file ends inside a tag that starts at line 1, column 25 (byte 24): the document is truncated (the scan was interrupted, or the file is still being written)",
        ),
        (
            "<nmaprun scanner=\"nmap\"><b></b",
            "nmap-xml",
            "the file ends inside an end tag that starts at line 1, column 28 (byte 27): the document is truncated (the scan was interrupted, or the file is still being written)",
        ),
        (
            "<nmaprun scanner=\"nmap\">&am",
            "nmap-xml",
            "the file ends inside a reference that starts at line 1, column 25 (byte 24): the document is truncated (the scan was interrupted, or the file is still being written)",
        ),
        (
            "<nmaprun scanner=\"nmap\"><!-- x",
            "nmap-xml",
            "the file ends inside a comment that starts at line 1, column 25 (byte 24): the document is truncated (the scan was interrupted, or the file is still being written)",
        ),
        (
            "<nmaprun scanner=\"nmap\"><?pi x",
            "nmap-xml",
            "the file ends inside a processing instruction that starts at line 1, column 25 (byte 24): the document is truncated (the scan was interrupted, or the file is still being written)",
        ),
        (
            "<nmaprun scanner=\"nmap\"><![CDATA[x]]",
            "nmap-xml",
            "the file ends inside a CDATA section that starts at line 1, column 25 (byte 24): the document is truncated (the scan was interrupted, or the file is still being written)",
        ),
        (
            "<nmaprun scanner=\"nmap\"><![CD",
            "nmap-xml",
            "the file ends inside a markup that starts at line 1, column 25 (byte 24): the document is truncated (the scan was interrupted, or the file is still being written)",
        ),
        (
            "<!DOCTYPE n SYSTEM \"x",
            "xml",
            "the file ends inside a DOCTYPE that starts at line 1, column 1 (byte 0): the document is truncated (the scan was interrupted, or the file is still being written)",
        ),
        (
            "<?xml version=\"1.0\"",
            "xml",
            "the file ends inside a XML declaration that starts at line 1, column 1 (byte 0): the document is truncated (the scan was interrupted, or the file is still being written)",
        ),
        (
            "<!-- only -->",
            "xml",
            "the file ends at line 1, column 14 (byte 13) before any element: it is truncated or still being written",
        ),
        (
            "<nmaprun scanner=\"nmap\"><![CDATA[x]]></nmaprun><![CDATA[y]]>",
            "nmap-xml",
            "content after the root element at line 1, column 48 (byte 47): only whitespace, comments and processing instructions may stand outside it",
        ),
    ];
    for (doc, format, reason) in cases {
        let v = validate(doc.as_bytes(), &Hints::default()).expect("no I/O error");
        let r = v.expect_err(doc);
        assert_eq!(
            (r.format.as_str(), r.reason.as_str()),
            (format, reason),
            "{doc:?}"
        );
    }
    // Too deep, under the ZAP root.
    let doc = format!("<OWASPZAPReport version=\"1\"><site>{}", "<a>".repeat(4100));
    let r = validate(doc.as_bytes(), &Hints::default())
        .expect("no I/O error")
        .expect_err("too deep");
    assert_eq!(
        (r.format.as_str(), r.reason.as_str()),
        (
            "zap-xml",
            "elements nest deeper than 4096 levels at line 1, column 12317 (byte 12316); no \
             scanner writes that"
        )
    );
}
