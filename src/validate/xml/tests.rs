//! Unit tests of the pull parser alone: the events of well-formed documents (each node kind,
//! references, CDATA, what is skipped), each error it detects with its kind and offset, the
//! limits, and that the events and errors do not depend on how the input is cut into reads;
//! and that start tags scanned ahead (`index.rs`) are the parser's own results.

use std::io::{self, BufRead, BufReader, Read};

use super::error::{AttrProblem, Construct, DeclProblem, DoctypeProblem, ErrorKind, Prior};
use super::index::{Prescan, Scanned, TagIndex, BYTES_PER_MARK};
use super::markup::{scan_start_tag, Keys, Scan};
use super::pull::{Node, Source, XmlPull, MAX_DEPTH};
use super::XmlError;

/// The events as strings: `<name@depth [raw tag]`, `/@depth`, `T@depth text` (consecutive
/// pieces at one depth joined, since where text is cut depends on the reads), `EOF`.
fn events_of<R: Source>(pull: &mut XmlPull<R>) -> Result<Vec<String>, XmlError> {
    let mut out: Vec<String> = Vec::new();
    loop {
        match pull.next()? {
            Node::Start { tag, depth } => out.push(format!(
                "<{}@{depth} [{}]",
                tag.name(),
                String::from_utf8_lossy(tag.raw)
            )),
            Node::End { depth } => out.push(format!("/@{depth}")),
            Node::Text { text, depth } => {
                let key = format!("T@{depth} ");
                match out.last_mut().filter(|l| l.starts_with(&key)) {
                    Some(last) => last.push_str(&text.to_str()),
                    None => out.push(format!("{key}{}", text.to_str())),
                }
            }
            Node::Eof => {
                out.push("EOF".into());
                return Ok(out);
            }
        }
    }
}

fn events(doc: &str) -> Vec<String> {
    events_of(&mut XmlPull::new(doc.as_bytes())).unwrap_or_else(|e| panic!("{doc:?}: {e}"))
}

fn error(doc: &[u8]) -> XmlError {
    match events_of(&mut XmlPull::new(doc)) {
        Ok(ev) => panic!("{:?} parsed: {ev:?}", String::from_utf8_lossy(doc)),
        Err(e) => e,
    }
}

/// A reader whose first read ends at byte `cut`, then hands out the rest.
struct Split<'a> {
    data: &'a [u8],
    cut: usize,
    pos: usize,
}

impl Read for Split<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl Source for Split<'_> {}

impl BufRead for Split<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let end = if self.pos < self.cut {
            self.cut
        } else {
            self.data.len()
        };
        Ok(&self.data[self.pos..end])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}

/// The outcome (events or error, with its offset) as one comparable string.
fn outcome<R: Source>(r: R) -> String {
    match events_of(&mut XmlPull::new(r)) {
        Ok(ev) => ev.join("\n"),
        Err(e) => format!("{:?} at {}", e.kind, e.at),
    }
}

/// A document, the offset its error is at, and a test of the error's kind.
type Case = (&'static str, u64, fn(&ErrorKind) -> bool);

const DOC: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <!DOCTYPE run SYSTEM \"run.dtd\">\n\
    <!-- a comment -->\n\
    <?style sheet?>\n\
    <run a=\"1\" b='x &amp; &#x41;&lt;'>\n\
      <host up=\"yes\"><addr v=\"10.0.0.1\"/>text &gt; &#233; é</host>\n\
      <![CDATA[raw <b>&amp;</b> ]] ]>]]>\n\
      <!-- inside --><?pi inside?>\n\
      <empty/>\n\
    </run>\n\
    <!-- after -->\n";

#[test]
fn every_node_kind() {
    assert_eq!(
        events(DOC),
        [
            "<run@1 [run a=\"1\" b='x &amp; &#x41;&lt;']",
            "<host@2 [host up=\"yes\"]",
            "<addr@3 [addr v=\"10.0.0.1\"]",
            "/@3",
            "T@2 text >é é",
            "/@2",
            "T@1 raw <b>&amp;</b> ]] ]>",
            "<empty@2 [empty]",
            "/@2",
            "/@1",
            "EOF",
        ]
    );
}

#[test]
fn attributes_are_read_with_references_replaced() {
    let mut pull = XmlPull::new(&b"<r a=\"1\" b='x &amp; &#x41;&lt;' c = \"it's\"/>"[..]);
    match pull.next().expect("start") {
        Node::Start { tag, depth } => {
            assert_eq!((tag.name(), depth), ("r", 1));
            assert_eq!(tag.attr("a").as_deref(), Some("1"));
            assert_eq!(tag.attr("b").as_deref(), Some("x & A<"));
            assert_eq!(tag.attr("c").as_deref(), Some("it's"));
            assert_eq!(tag.attr("d"), None);
            assert!(tag.has_attrs());
        }
        _ => panic!("expected the start tag"),
    }
    assert!(matches!(pull.next(), Ok(Node::End { depth: 1 })));
    assert!(matches!(pull.next(), Ok(Node::Eof)));
    assert!(matches!(pull.next(), Ok(Node::Eof)), "Eof again");
}

#[test]
fn references_and_whitespace_in_text() {
    // A piece of text that is only whitespace is not handed out, even between references (the
    // checkers only ever read words and numbers).
    assert_eq!(
        events("<a> &lt;&gt;&amp;&apos;&quot; &#65;&#x42;&#x0000043; </a>"),
        ["<a@1 [a]", "T@1 <>&'\"ABC", "/@1", "EOF"]
    );
    assert_eq!(
        events("<a>\n  <b/>\n</a>"),
        ["<a@1 [a]", "<b@2 [b]", "/@2", "/@1", "EOF"]
    );
}

/// Each rule the parser enforces, with what it reports and where (the offset of the
/// offending construct).
#[test]
fn each_error_with_its_offset() {
    let cases: Vec<Case> = vec![
        ("<a>1 < 2</a>", 5, |k| matches!(k, ErrorKind::BareLt)),
        ("<a>x]]>y</a>", 4, |k| {
            matches!(k, ErrorKind::CdataEndInText)
        }),
        (
            "<a>&lol;</a>",
            3,
            |k| matches!(k, ErrorKind::Entity { name } if name == "lol"),
        ),
        (
            "<a>&#0;</a>",
            3,
            |k| matches!(k, ErrorKind::BadCharRef { name } if name == "#0"),
        ),
        ("<a>x & y</a>", 5, |k| matches!(k, ErrorKind::BareAmp)),
        ("x<a/>", 0, |k| {
            matches!(k, ErrorKind::OutsideRoot { after: false })
        }),
        ("<a/>x", 4, |k| {
            matches!(k, ErrorKind::OutsideRoot { after: true })
        }),
        ("<a/><![CDATA[x]]>", 4, |k| {
            matches!(k, ErrorKind::OutsideRoot { after: true })
        }),
        (
            "<a/><b/>",
            4,
            |k| matches!(k, ErrorKind::SecondRoot { element } if element == "b"),
        ),
        ("<a></ a>", 3, |k| matches!(k, ErrorKind::BadEndTag)),
        (
            "</a>",
            0,
            |k| matches!(k, ErrorKind::UnopenedEnd { name } if name == "a"),
        ),
        ("<a><b></a></b>", 6, |k| {
            matches!(k, ErrorKind::MismatchedEnd { name, open, path }
                if name == "a" && open == "b" && path == "a/b")
        }),
        ("<a><!ELEMENT x></a>", 3, |k| {
            matches!(k, ErrorKind::UnknownBang)
        }),
        ("<a/><!DOCTYPE a>", 4, |k| {
            matches!(k, ErrorKind::SecondDoctype)
        }),
        ("<!DOCTYPE a [<!ENTITY x \"y\">]><a/>", 0, |k| {
            matches!(k, ErrorKind::InternalSubset)
        }),
        ("<!DOCTYPE a junk><a/>", 0, |k| {
            matches!(k, ErrorKind::BadDoctype(DoctypeProblem::Malformed))
        }),
        ("<!DOCTYPEa><a/>", 0, |k| {
            matches!(k, ErrorKind::BadDoctype(DoctypeProblem::NoSpace))
        }),
        ("<!DOCTYPE a PUBLIC \"{\" \"u\"><a/>", 0, |k| {
            matches!(k, ErrorKind::BadDoctype(DoctypeProblem::BadPublicId))
        }),
        ("<!DOCTYPE a><!DOCTYPE a><a/>", 12, |k| {
            matches!(k, ErrorKind::LateDoctype)
        }),
        ("<a><? x?></a>", 3, |k| matches!(k, ErrorKind::BadPiTarget)),
        (
            "<a><?XmL x?></a>",
            3,
            |k| matches!(k, ErrorKind::ReservedPiTarget { target } if target == "XmL"),
        ),
        ("<a/><?xml version=\"1.0\"?>", 4, |k| {
            matches!(k, ErrorKind::SecondDeclaration)
        }),
        ("<!-- c --><?xml version=\"1.0\"?><a/>", 10, |k| {
            matches!(
                k,
                ErrorKind::LateDeclaration {
                    after: Some(Prior::Comment)
                }
            )
        }),
        (" <?xml version=\"1.0\"?><a/>", 1, |k| {
            matches!(
                k,
                ErrorKind::LateDeclaration {
                    after: Some(Prior::Whitespace)
                }
            )
        }),
        (
            "<?xml version=\"2.0\"?><a/>",
            0,
            |k| matches!(k, ErrorKind::BadDeclaration(DeclProblem::BadValue { key, .. }) if key == "version"),
        ),
        ("<?xml encoding=\"UTF-8\"?><a/>", 0, |k| {
            matches!(k, ErrorKind::BadDeclaration(DeclProblem::Order))
        }),
        ("<?xml version=\"1.0\"encoding=\"UTF-8\"?><a/>", 0, |k| {
            matches!(k, ErrorKind::BadDeclaration(DeclProblem::NotSeparated))
        }),
        (
            "<?xml version=\"1.0\" encoding=\"latin1\"?><a/>",
            0,
            |k| matches!(k, ErrorKind::UnsupportedEncoding { encoding } if encoding == "latin1"),
        ),
        (
            "<?xml version=\"1.0\" encoding=\"US-ASCII\"?><a>é</a>",
            44,
            |k| matches!(k, ErrorKind::NotAscii),
        ),
        ("<a><!-- a -- b --></a>", 10, |k| {
            matches!(k, ErrorKind::DoubleHyphen { comment: 3 })
        }),
    ];
    for (doc, at, kind) in cases {
        let e = error(doc.as_bytes());
        assert!(kind(&e.kind), "{doc:?}: {e:?}");
        assert_eq!(e.at, at, "{doc:?}: {e:?}");
    }
}

#[test]
fn attribute_errors() {
    let cases: Vec<(&str, AttrProblem)> = vec![
        ("<a b=\"1\"/ >", AttrProblem::SlashNotClosing),
        ("<a\"b\"/>", AttrProblem::AfterName(b'"')),
        ("<a b=\"1\"c=\"2\"/>", AttrProblem::NotSeparated),
        ("<a 1=\"2\"/>", AttrProblem::ExpectedName(b'1')),
        ("<a b/>", AttrProblem::NoValue { key: "b".into() }),
        ("<a b=1/>", AttrProblem::Unquoted { key: "b".into() }),
        ("<a b=\"<\"/>", AttrProblem::Lt { key: "b".into() }),
        (
            "<a b=\"&x;\"/>",
            AttrProblem::Entity {
                key: "b".into(),
                name: "x".into(),
            },
        ),
        (
            "<a b=\"&#xD800;\"/>",
            AttrProblem::BadCharRef {
                key: "b".into(),
                name: "#xD800".into(),
            },
        ),
        ("<a b=\"x & y\"/>", AttrProblem::BareAmp { key: "b".into() }),
        (
            "<a b=\"1\" b=\"2\"/>",
            AttrProblem::Repeated { key: "b".into() },
        ),
    ];
    for (doc, want) in cases {
        let e = error(doc.as_bytes());
        match &*e.kind {
            ErrorKind::BadAttribute { element, problem } => {
                assert_eq!((element.as_str(), problem), ("a", &want), "{doc:?}");
            }
            other => panic!("{doc:?}: {other:?}"),
        }
        assert_eq!(e.at, 0, "{doc:?}");
    }
    // Many attributes go through the hash set: a repeat is still caught.
    let many: String = (0..40).map(|i| format!(" k{i}=\"{i}\"")).collect();
    let e = error(format!("<a{many} k7=\"x\"/>").as_bytes());
    assert!(
        matches!(&*e.kind, ErrorKind::BadAttribute { problem: AttrProblem::Repeated { key }, .. } if key == "k7"),
        "{e:?}"
    );
}

#[test]
fn truncation_says_where_the_cut_construct_starts() {
    let cases: Vec<Case> = vec![
        ("", 0, |k| matches!(k, ErrorKind::NoRoot)),
        ("  <!-- c -->", 12, |k| matches!(k, ErrorKind::NoRoot)),
        (
            "<a><b>text",
            10,
            |k| matches!(k, ErrorKind::Unclosed { open } if open == "a/b"),
        ),
        ("<a><b x=\"1", 3, |k| {
            matches!(k, ErrorKind::Truncated(Construct::Tag))
        }),
        ("<a></a", 3, |k| {
            matches!(k, ErrorKind::Truncated(Construct::EndTag))
        }),
        ("<a>&am", 3, |k| {
            matches!(k, ErrorKind::Truncated(Construct::Reference))
        }),
        ("<a><!-- x", 3, |k| {
            matches!(k, ErrorKind::Truncated(Construct::Comment))
        }),
        ("<a><?pi x", 3, |k| {
            matches!(k, ErrorKind::Truncated(Construct::ProcessingInstruction))
        }),
        ("<a><![CDATA[x]]", 3, |k| {
            matches!(k, ErrorKind::Truncated(Construct::Cdata))
        }),
        ("<a><![CD", 3, |k| {
            matches!(k, ErrorKind::Truncated(Construct::Markup))
        }),
        ("<!DOCTYPE a SYSTEM \"x", 0, |k| {
            matches!(k, ErrorKind::Truncated(Construct::Doctype))
        }),
        ("<?xml version=\"1.0\"", 0, |k| {
            matches!(k, ErrorKind::Truncated(Construct::Declaration))
        }),
    ];
    for (doc, at, kind) in cases {
        let e = error(doc.as_bytes());
        assert!(kind(&e.kind), "{doc:?}: {e:?}");
        assert_eq!(e.at, at, "{doc:?}: {e:?}");
    }
}

#[test]
fn limits() {
    let deep = "<a>".repeat(MAX_DEPTH + 1);
    let e = error(deep.as_bytes());
    assert!(
        matches!(*e.kind, ErrorKind::TooDeep { limit: MAX_DEPTH }),
        "{e:?}"
    );
    assert_eq!(e.at, 3 * MAX_DEPTH as u64);
    // One tag larger than the cap.
    let big = format!("<a><b c=\"{}\"/></a>", "x".repeat(500));
    let mut pull = XmlPull::new(big.as_bytes()).with_max_markup(100);
    let e = events_of(&mut pull).expect_err("too large");
    assert!(
        matches!(
            *e.kind,
            ErrorKind::TooLarge {
                construct: Construct::Tag,
                limit: 100
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.at, 3);
    // Read in small pieces, the cap is hit before the whole tag is held.
    let mut pull = XmlPull::new(BufReader::with_capacity(16, big.as_bytes())).with_max_markup(100);
    assert!(matches!(
        events_of(&mut pull).map_err(|e| *e.kind),
        Err(ErrorKind::TooLarge { .. })
    ));
    // Cut inside the oversized tag, with all of it read at once: truncated (this once
    // panicked: more than the cap was held when the input ended).
    let mut pull = XmlPull::new(&big.as_bytes()[..200]).with_max_markup(100);
    let e = events_of(&mut pull).expect_err("truncated");
    assert!(
        matches!(*e.kind, ErrorKind::Truncated(Construct::Tag)),
        "{e:?}"
    );
    // Text, comments, PIs and CDATA stream through whatever their size.
    let long = "y".repeat(1000);
    for doc in [
        format!("<a>{long}</a>"),
        format!("<a><!--{long}--></a>"),
        format!("<a><?p {long}?></a>"),
        format!("<a><![CDATA[{long}]]></a>"),
    ] {
        let mut pull = XmlPull::new(doc.as_bytes()).with_max_markup(100);
        events_of(&mut pull).unwrap_or_else(|e| panic!("{doc:.20}: {e}"));
    }
}

#[test]
fn offsets_count_from_where_the_reader_starts_in_the_file() {
    // As if a caller had consumed 10 bytes (say a BOM and blanks) before handing the rest over.
    let mut pull = XmlPull::new(&b"<a>x & y</a>"[..]).with_offsets(10, 10);
    let e = events_of(&mut pull).expect_err("bare &");
    assert_eq!(e.at, 15);
    // A declaration is allowed only where the document starts.
    let decl = &b"<?xml version=\"1.0\"?><a/>"[..];
    assert!(events_of(&mut XmlPull::new(decl).with_offsets(3, 3)).is_ok());
    let e = events_of(&mut XmlPull::new(decl).with_offsets(5, 3)).expect_err("late");
    assert!(
        matches!(*e.kind, ErrorKind::LateDeclaration { after: None }),
        "{e:?}"
    );
}

#[test]
fn a_failing_reader_is_reported_with_its_error() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let e = events_of(&mut XmlPull::new(BufReader::new(Failing))).expect_err("read error");
    assert!(matches!(&*e.kind, ErrorKind::Read(io) if io.to_string() == "disk on fire"));
    assert!(std::error::Error::source(&e).is_some());
    assert!(e.to_string().contains("disk on fire"), "{e}");
}

/// However the input is cut into reads, the events (and any error, with its offset) are the
/// same: a split at every byte of a document with every node kind, of its truncations and of a
/// few broken documents.
#[test]
fn cutting_the_input_changes_nothing() {
    let mut docs: Vec<Vec<u8>> = vec![DOC.as_bytes().to_vec()];
    docs.extend(
        (0..DOC.len())
            .step_by(7)
            .map(|n| DOC.as_bytes()[..n].to_vec()),
    );
    docs.extend(
        [
            "<a><b></a>",
            "<a>]]></a>",
            "<a><!-- -- --></a>",
            "<a b=\"&x;\"/>",
            "<a/><b/>",
        ]
        .map(|d| d.as_bytes().to_vec()),
    );
    for doc in &docs {
        let whole = outcome(&doc[..]);
        for cut in 0..=doc.len() {
            let split = Split {
                data: doc,
                cut,
                pos: 0,
            };
            assert_eq!(
                outcome(split),
                whole,
                "{:?} cut at {cut}",
                String::from_utf8_lossy(doc)
            );
        }
        for cap in [1, 2, 3, 5, 8] {
            assert_eq!(
                outcome(BufReader::with_capacity(cap, &doc[..])),
                whole,
                "{:?} read {cap} bytes at a time",
                String::from_utf8_lossy(doc)
            );
        }
    }
}

/// A parser told not to hand out text checks it all the same: the same events but the text,
/// and the same error at the same offset, however the input is cut into reads.
#[test]
fn text_not_handed_out_is_checked_all_the_same() {
    let mut docs: Vec<&[u8]> = vec![DOC.as_bytes()];
    docs.extend((0..DOC.len()).step_by(5).map(|n| &DOC.as_bytes()[..n]));
    docs.extend(
        [
            "<a>1 < 2</a>",
            "<a>x]]>y</a>",
            "<a>x]]</a>",
            "<a>&lol;</a>",
            "<a>t &#0;</a>",
            "<a>x & y</a>",
            "<a>&amp</a>",
            "<a>&lt;&#x10FFFF;&#1114112;</a>",
            "x<a/>",
            "&amp;<a/>",
            "<a/>x",
            "<a/>&lt;",
            "<a/><![CDATA[x]]>",
            "<a><![CDATA[x]]></a>y",
            "<a>&#233;</b>",
        ]
        .map(str::as_bytes),
    );
    let without_text = |r: Split| {
        let mut pull = XmlPull::new(r);
        pull.hand_text(false);
        match events_of(&mut pull) {
            Ok(ev) => ev.join("\n"),
            Err(e) => format!("{:?} at {}", e.kind, e.at),
        }
    };
    for doc in docs {
        let whole = outcome(doc);
        let expected: Vec<&str> = whole.lines().filter(|l| !l.starts_with("T@")).collect();
        for cut in 0..=doc.len() {
            let split = Split {
                data: doc,
                cut,
                pos: 0,
            };
            assert_eq!(
                without_text(split),
                expected.join("\n"),
                "{:?} cut at {cut}",
                String::from_utf8_lossy(doc)
            );
        }
    }
}

/// The attribute checked whole from one 32-byte window: at every length of key and value
/// (inside the window, at its edge and past it), with each quote, the other quote or `>`
/// inside, a `<` or `&` at every place in the value, a repeated key, and a tag cut short.
#[test]
fn attributes_of_every_length_decide_as_the_rules_say() {
    let problem = |doc: &str| match &*error(doc.as_bytes()).kind {
        ErrorKind::BadAttribute { problem, .. } => problem.clone(),
        other => panic!("{doc:?}: {other:?}"),
    };
    for klen in 1..34 {
        let key: String = "k".repeat(klen);
        for vlen in 0..34 {
            for (q, other) in [('"', '\''), ('\'', '"')] {
                let value: String = "v>".repeat(vlen).chars().take(vlen).collect();
                let value = value.replacen('v', &other.to_string(), usize::from(vlen % 3 == 1));
                let tag = format!("a x=\"1\"\t{key}={q}{value}{q} z=\"2\"\r\n");
                let doc = format!("<{tag}/>");
                assert_eq!(
                    events(&doc),
                    [format!("<a@1 [{tag}]"), "/@1".into(), "EOF".into()]
                );
                assert_eq!(
                    problem(&format!("<a {key}={q}{value}{q} {key}='' />")),
                    AttrProblem::Repeated { key: key.clone() },
                );
                let cut = format!("<a {key}={q}{value}{q}");
                assert!(matches!(
                    *error(cut.as_bytes()).kind,
                    ErrorKind::Truncated(Construct::Tag)
                ));
                for at in 0..=vlen {
                    let (head, tail) = value.split_at(at);
                    let lt = format!("<a {key}={q}{head}<{tail}{q}/>");
                    assert_eq!(problem(&lt), AttrProblem::Lt { key: key.clone() }, "{lt:?}");
                    let amp = format!("<a {key}={q}{head}&amp;{tail}{q} b=\"&quot;\"/>");
                    assert_eq!(events(&amp).len(), 3, "{amp:?}");
                    let bare = format!("<a {key}={q}{head}& {tail}{q}/>");
                    assert_eq!(problem(&bare), AttrProblem::BareAmp { key: key.clone() });
                }
            }
        }
    }
}

/// The shortcuts of the pull parser (whitespace between tags, `</name>` of the open element,
/// the attribute window) decide as the long way when the buffer ends at every place of what
/// they read: the parser's first read ends at byte 65536 (a quarter block), and a prefix of
/// each length moves the documents' tails across it.
#[test]
fn shortcuts_cut_by_the_buffer_end_decide_as_the_whole() {
    // Each tail, and what its document comes to.
    let tails = [
        (
            "\n<a k=\"v\" k2='w' k3=\"x>y\" k4=\"a'b\" k5=\"&amp;\">\r\n\t<b x=\"1\"/>\t</a>\r\n<c></c >\
             <d e=\"fffffffffffffffffffffffffffffffffff\"></d></r>\n",
            "EOF",
        ),
        ("\n<ab k=\"v\"></a></r>", "MismatchedEnd"),
        ("\n<a></ab></r>", "MismatchedEnd"),
        ("\n<a></a\n></r>", "EOF"),
        ("\n<a k=\"1\" k=\"2\"/></r>", "Repeated"),
        ("\n<a k=\"<\"/></r>", "Lt"),
        ("\n<a k=\"1\"k=\"2\"/></r>", "NotSeparated"),
        ("\n<a\tk\r=\n\"1\"\n/></r>", "EOF"),
        (" \t\r\n </r>\r\n \t", "EOF"),
    ];
    const FIRST_READ: usize = 65536;
    for (tail, want) in tails {
        for shift in 0..tail.len() {
            let pad = FIRST_READ - shift - "<r><!---->".len();
            let doc = format!("<r><!--{}-->{tail}", " ".repeat(pad));
            let whole = outcome(doc.as_bytes());
            assert!(
                whole.ends_with(want) || whole.contains(want),
                "{tail:?}: {whole}"
            );
            let split = Split {
                data: doc.as_bytes(),
                cut: FIRST_READ,
                pos: 0,
            };
            assert_eq!(outcome(split), whole, "{tail:?} cut at {shift}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Start tags scanned ahead (`index.rs`).

/// The XML the tag index is checked on: the repository's fixtures, the shared samples when
/// present, a generated Nmap report, `DOC`, and tags of every shape near a comment and CDATA
/// holding tag-like text.
fn index_corpus() -> Vec<(String, Vec<u8>)> {
    let mut docs = Vec::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("tests/fixtures"), root.join("../shared/samples")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "xml") {
                let bytes = std::fs::read(&path).expect("a fixture");
                docs.push((path.display().to_string(), bytes));
            }
        }
    }
    assert!(
        docs.len() >= 5,
        "the repository's XML fixtures: {}",
        docs.len()
    );
    let mut nmap = String::from("<nmaprun scanner=\"nmap\">\n");
    for host in 0..300 {
        nmap.push_str(&format!(
            "<host starttime=\"1\"><status state=\"up\" reason=\"arp-response\"/>\n\
             <address addr=\"10.0.{}.{}\" addrtype=\"ipv4\"/>\n<ports>",
            host / 256,
            host % 256
        ));
        for p in [22, 80, 443] {
            nmap.push_str(&format!(
                "<port protocol=\"tcp\" portid=\"{p}\"><state state=\"open\"/><service \
                 name=\"http\" product=\"nginx\" conf=\"10\"><cpe>cpe:/a:nginx</cpe></service>\
                 <script id=\"t\" output=\"&quot;x&quot; &amp; &lt;3 &#x263A;\"><elem \
                 key=\"title\">t</elem></script></port>\n"
            ));
        }
        nmap.push_str("</ports></host>\n");
    }
    nmap.push_str("</nmaprun>\n");
    docs.push(("generated Nmap".into(), nmap.into_bytes()));
    docs.push(("DOC".into(), DOC.as_bytes().to_vec()));
    let odd = format!(
        "<r>\n<a\tk\r=\n'1' k2 = \"2\"\n/><b x=\"{}\" y='{}'></b><c {} /><é ü=\"ö\"/>\n\
         <!-- <d a=\"1\"> <e a=\"1\" a=\"2\"/> <f g=\"<\"> --><![CDATA[<h i=\"j\"/><k l]]>\n\
         <?pi <m n=\"o\"/>?><p q=\"&amp;&#60;&bad;\"/><s t=\"1\"u=\"2\"/><v w=\"x\" w=\"y\"/></r>",
        "z".repeat(40),
        "&amp;".repeat(9),
        (0..20)
            .map(|i| format!("a{i}=\"{i}\" "))
            .collect::<String>(),
    );
    docs.push(("odd tags".into(), odd.into_bytes()));
    docs
}

/// Where a start tag may begin: `<` and a name's first byte.
fn tag_candidates(doc: &[u8]) -> impl Iterator<Item = usize> + '_ {
    (0..doc.len().saturating_sub(1))
        .filter(|&i| doc[i] == b'<' && super::chars::is_name_start(doc[i + 1]))
}

fn done(s: Scan) -> Option<(usize, bool, usize)> {
    match s {
        Scan::Done { gt, empty, name } => Some((gt, empty, name)),
        _ => None,
    }
}

/// What the index stands on: a start tag scanned whole is decided by its bytes from `<` to
/// `>` alone. Scanned again in a buffer cut right after its `>`, or moved to another place
/// with other bytes after it (the 16/32-byte windows then see other bytes), it is the same.
#[test]
fn a_tag_scanned_whole_is_decided_by_its_own_bytes() {
    let mut keys = Keys::default();
    let tails: [&[u8]; 5] = [
        b"",
        b"\"'<>&",
        &[b' '; 40],
        b" z=\"1\" z=\"2\" y='3'>>>>>>>>>>>>>>>>>",
        &[b'"'; 40],
    ];
    let mut tags = 0;
    for (name, doc) in index_corpus() {
        for i in tag_candidates(&doc) {
            let Some((gt, empty, nlen)) = done(scan_start_tag(&doc, i, &mut keys)) else {
                continue;
            };
            tags += 1;
            let cut = done(scan_start_tag(&doc[..gt + 1], i, &mut keys));
            assert_eq!(cut, Some((gt, empty, nlen)), "{name} at {i}, cut after '>'");
            for tail in tails {
                for pad in [0, 1, 7] {
                    let mut moved = vec![b'x'; pad];
                    moved.extend_from_slice(&doc[i..=gt]);
                    moved.extend_from_slice(tail);
                    let again = done(scan_start_tag(&moved, pad, &mut keys));
                    let want = Some((gt - i + pad, empty, nlen));
                    assert_eq!(again, want, "{name} at {i}, moved by {pad}, tail {tail:?}");
                }
            }
        }
    }
    assert!(tags > 5000, "tags checked: {tags}");
}

/// The index of a block holds exactly the start tags whole in that block, each as
/// `scan_start_tag` finds it in the whole document, whatever the block sizes and the steps
/// the scan is made in; and a look-up gives the entry at that offset, or nothing.
#[test]
fn the_tag_index_agrees_with_scanning_at_every_tag() {
    let mut keys = Keys::default();
    for (name, doc) in index_corpus() {
        let whole: Vec<(usize, Scanned)> = tag_candidates(&doc)
            .filter_map(|i| {
                let (gt, empty, nlen) = done(scan_start_tag(&doc, i, &mut keys))?;
                let s = Scanned {
                    len: gt - i,
                    name: nlen,
                    empty,
                };
                Some((i, s))
            })
            .collect();
        for block in [doc.len(), 4096, 777, 64] {
            for budget in [usize::MAX, 100, 1] {
                let mut found = Vec::new();
                let mut want = Vec::new();
                for from in (0..doc.len()).step_by(block) {
                    let bytes = &doc[from..(from + block).min(doc.len())];
                    let mut prescan = Prescan::default();
                    let mut marks = Vec::new();
                    while !prescan.done(bytes) {
                        prescan.step(bytes, budget, &mut marks);
                    }
                    let mut index = TagIndex::new(from as u64 + 1000, bytes.len(), marks);
                    for i in from..from + bytes.len() {
                        if let Some(s) = index.take(i as u64 + 1000) {
                            found.push((i, s));
                        }
                    }
                    // The block's whole tags, in order, up to the cap on marks a block.
                    want.extend(
                        whole
                            .iter()
                            .filter(|(i, s)| *i >= from && i + s.len < from + bytes.len())
                            .take(bytes.len() / BYTES_PER_MARK)
                            .copied(),
                    );
                }
                assert_eq!(found, want, "{name}, blocks of {block}, steps of {budget}");
            }
        }
    }
}

/// However many tags a block holds, its index takes a bounded share of its size: a block of
/// `<a/>` (a tag every 4 bytes) is indexed only up to one mark per `BYTES_PER_MARK` bytes,
/// and the tags past the cap are left to the parser.
#[test]
fn a_block_dense_with_tags_is_indexed_only_up_to_the_cap() {
    let block = b"<a/>".repeat(64 * 1024);
    let mut prescan = Prescan::default();
    let mut marks = Vec::new();
    while !prescan.done(&block) {
        prescan.step(&block, 32 * 1024, &mut marks);
    }
    assert_eq!(marks.len(), block.len() / BYTES_PER_MARK);
    let mut index = TagIndex::new(0, block.len(), marks);
    let last = (block.len() / BYTES_PER_MARK - 1) as u64 * 4;
    assert!(
        index.take(last).is_some(),
        "the tags up to the cap are indexed"
    );
    assert_eq!(
        index.take(last + 4),
        None,
        "the ones past it are the parser's to scan"
    );
}

/// A reader that hands out `cap` bytes at a time, with an index of the tags of all of them
/// (built ahead, every tag or every other one), counting the look-ups that found a tag.
struct Indexed<'a> {
    data: &'a [u8],
    pos: usize,
    cap: usize,
    index: TagIndex,
    taken: usize,
}

impl<'a> Indexed<'a> {
    fn new(data: &'a [u8], cap: usize, every_other: bool) -> Self {
        let mut prescan = Prescan::default();
        prescan.every_other = every_other;
        let mut marks = Vec::new();
        prescan.step(data, usize::MAX, &mut marks);
        Indexed {
            data,
            pos: 0,
            cap,
            index: TagIndex::new(0, data.len(), marks),
            taken: 0,
        }
    }
}

impl BufRead for Indexed<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(&self.data[self.pos..(self.pos + self.cap).min(self.data.len())])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}

impl Read for Indexed<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.len().min(out.len());
        out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.consume(n);
        Ok(n)
    }
}

impl Source for Indexed<'_> {
    fn scanned_tag(&mut self, at: u64) -> Option<Scanned> {
        let s = self.index.take(at);
        self.taken += usize::from(s.is_some());
        s
    }
}

/// The parser given the index gives the same events (each tag's name and raw bytes) and the
/// same errors at the same offsets as scanning every tag itself, for reads of every size
/// (tags cut by its buffer's end are in the index but not whole in the buffer), with a limit
/// on tags that some indexed tags exceed, and with every byte of a document damaged.
#[test]
fn the_parser_given_the_index_decides_as_scanning() {
    let outcome_of = |r: &mut dyn FnMut() -> Result<Vec<String>, XmlError>| match r() {
        Ok(ev) => ev.join("\n"),
        Err(e) => format!("{:?} at {}", e.kind, e.at),
    };
    for (name, doc) in index_corpus() {
        for max in [super::MAX_MARKUP, 60] {
            let plain =
                outcome_of(&mut || events_of(&mut XmlPull::new(&doc[..]).with_max_markup(max)));
            for cap in [1, 7, 100, 4096, 1 << 20] {
                for every_other in [false, true] {
                    let mut src = Indexed::new(&doc, cap, every_other);
                    let got = outcome_of(&mut || {
                        events_of(&mut XmlPull::new(&mut src).with_max_markup(max))
                    });
                    assert_eq!(got, plain, "{name}, limit {max}, reads of {cap}");
                    if max > 60 && cap > 100 && doc.len() > 1000 {
                        assert!(src.taken > 0, "{name}: no tag taken from the index");
                    }
                }
            }
        }
    }
    let doc = DOC.as_bytes();
    for at in 0..doc.len() {
        for bad in [b'<', b'"', b'>', b' ', b'/'] {
            let mut d = doc.to_vec();
            d[at] = bad;
            let plain = outcome(&d[..]);
            for cap in [3, 64] {
                assert_eq!(
                    outcome(Indexed::new(&d, cap, false)),
                    plain,
                    "{bad} at {at}"
                );
            }
        }
    }
}
