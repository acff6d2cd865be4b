//! What the pull parser reports when it stops: one `XmlError` with the absolute byte offset of
//! the problem and an `ErrorKind` that says which rule was broken, with the names involved.
//! The parser words nothing for an end user: whoever runs it turns the offset into a line and
//! column and the kind into advice (the validator does so in one place).

use std::fmt;
use std::io;

/// Why the parser stopped, and where.
#[derive(Debug)]
pub struct XmlError {
    /// Absolute byte offset: where the offending construct starts (for a truncation, where the
    /// construct the input ends in started; for `NoRoot`/`Unclosed`, where the input ends).
    pub at: u64,
    /// Boxed, so that the parser's results stay two words wide on the hot path (an error is
    /// made once per document).
    pub kind: Box<ErrorKind>,
}

impl XmlError {
    pub(crate) fn new(at: u64, kind: ErrorKind) -> Self {
        XmlError {
            at,
            kind: Box::new(kind),
        }
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.kind, self.at)
    }
}

impl std::error::Error for XmlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            ErrorKind::Read(e) => Some(e),
            _ => None,
        }
    }
}

/// The rule a document broke. Grouped: the input ends early; a limit; refused by policy
/// (well-formed, but never accepted here); not well-formed; the reader failed.
#[derive(Debug)]
pub enum ErrorKind {
    /// The input ends inside this construct (which starts at `at`).
    Truncated(Construct),
    /// The input ends before any element.
    NoRoot,
    /// The input ends inside open elements: their path, e.g. `a/b/c` (shortened when deep).
    Unclosed { open: String },

    /// One construct that must be held whole is larger than the limit.
    TooLarge { construct: Construct, limit: usize },
    /// Elements nest deeper than the limit.
    TooDeep { limit: usize },

    /// A DOCTYPE with an internal subset (`[`): DTDs are never read.
    InternalSubset,
    /// A reference in text to an entity other than the five predefined ones.
    Entity { name: String },
    /// The declaration names an encoding other than UTF-8 (or US-ASCII).
    UnsupportedEncoding { encoding: String },

    /// A `<` not followed by a name.
    BareLt,
    /// `]]>` in text.
    CdataEndInText,
    /// `&#...;` in text that is not an XML character.
    BadCharRef { name: String },
    /// A `&` in text that does not start a reference.
    BareAmp,
    /// Text, a reference or CDATA before (`after == false`) or after the root element.
    OutsideRoot { after: bool },
    /// A start tag's attributes break a rule.
    BadAttribute {
        element: String,
        problem: AttrProblem,
    },
    /// A start tag after the root element closed.
    SecondRoot { element: String },
    /// `</` not followed by a name and `>`.
    BadEndTag,
    /// An end tag with no element open.
    UnopenedEnd { name: String },
    /// An end tag that does not close the open element (`open`, inside `path`).
    MismatchedEnd {
        name: String,
        open: String,
        path: String,
    },
    /// `<!` followed by neither a comment, CDATA nor DOCTYPE.
    UnknownBang,
    /// A DOCTYPE after the root element closed.
    SecondDoctype,
    /// A DOCTYPE with a syntax error.
    BadDoctype(DoctypeProblem),
    /// A DOCTYPE after the root element started or after another DOCTYPE.
    LateDoctype,
    /// `<?` without a valid target name.
    BadPiTarget,
    /// A processing instruction named `xml` in another case.
    ReservedPiTarget { target: String },
    /// An XML declaration after the root element closed.
    SecondDeclaration,
    /// An XML declaration that is not the first thing in the document; `after` is what came
    /// first, when the parser saw it.
    LateDeclaration { after: Option<Prior> },
    /// An XML declaration with a syntax error.
    BadDeclaration(DeclProblem),
    /// A byte that is not ASCII in a document declared US-ASCII.
    NotAscii,
    /// `--` inside the comment that starts at byte `comment`.
    DoubleHyphen { comment: u64 },

    /// The reader failed.
    Read(io::Error),
}

/// `c` with its indefinite article ("an end tag", "an XML declaration", "a comment").
fn a(c: &impl fmt::Display) -> String {
    let c = c.to_string();
    let an = c.starts_with(|ch: char| "aeiouAEIOU".contains(ch)) || c.starts_with("XML");
    format!("{} {c}", if an { "an" } else { "a" })
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Truncated(c) => write!(f, "the input ends inside {}", a(c)),
            ErrorKind::NoRoot => f.write_str("the input ends before any element"),
            ErrorKind::Unclosed { open } => write!(f, "the input ends inside <{open}>"),
            ErrorKind::TooLarge { construct, limit } => {
                write!(f, "{} larger than {limit} bytes", a(construct))
            }
            ErrorKind::TooDeep { limit } => write!(f, "elements nest deeper than {limit} levels"),
            ErrorKind::InternalSubset => f.write_str("a DOCTYPE with an internal subset"),
            ErrorKind::Entity { name } => write!(f, "a reference to the entity &{name};"),
            ErrorKind::UnsupportedEncoding { encoding } => {
                write!(f, "the unsupported encoding {encoding:?}")
            }
            ErrorKind::BareLt => f.write_str("'<' not followed by a name"),
            ErrorKind::CdataEndInText => f.write_str("']]>' in text"),
            ErrorKind::BadCharRef { name } => write!(f, "invalid character reference &{name};"),
            ErrorKind::BareAmp => f.write_str("a bare '&' in text"),
            ErrorKind::OutsideRoot { after } => {
                let side = if *after { "after" } else { "before" };
                write!(f, "content {side} the root element")
            }
            ErrorKind::BadAttribute { element, problem } => {
                write!(f, "bad attribute in <{element}>: {problem}")
            }
            ErrorKind::SecondRoot { element } => write!(f, "a second root element <{element}>"),
            ErrorKind::BadEndTag => f.write_str("a malformed end tag"),
            ErrorKind::UnopenedEnd { name } => write!(f, "the end tag </{name}> closes nothing"),
            ErrorKind::MismatchedEnd { name, open, .. } => {
                write!(
                    f,
                    "the end tag </{name}> does not match the open element <{open}>"
                )
            }
            ErrorKind::UnknownBang => f.write_str("unknown markup after '<!'"),
            ErrorKind::SecondDoctype => f.write_str("a second DOCTYPE"),
            ErrorKind::BadDoctype(p) => p.fmt(f),
            ErrorKind::LateDoctype => {
                f.write_str("a DOCTYPE after the root element or a previous DOCTYPE")
            }
            ErrorKind::BadPiTarget => {
                f.write_str("a processing instruction without a valid target name")
            }
            ErrorKind::ReservedPiTarget { target } => {
                write!(f, "the reserved processing instruction name '{target}'")
            }
            ErrorKind::SecondDeclaration => f.write_str("a second XML declaration"),
            ErrorKind::LateDeclaration { .. } => {
                f.write_str("an XML declaration not at the start of the document")
            }
            ErrorKind::BadDeclaration(p) => write!(f, "a malformed XML declaration ({p})"),
            ErrorKind::NotAscii => f.write_str("a byte that is not ASCII in a US-ASCII document"),
            ErrorKind::DoubleHyphen { .. } => f.write_str("'--' inside a comment"),
            ErrorKind::Read(e) => write!(f, "read failed: {e}"),
        }
    }
}

/// A construct the input can end in, or that can be too large to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Construct {
    /// The first bytes of markup, before it is known which kind.
    Markup,
    Tag,
    EndTag,
    Reference,
    Comment,
    ProcessingInstruction,
    Cdata,
    Doctype,
    Declaration,
}

impl Construct {
    pub fn as_str(self) -> &'static str {
        match self {
            Construct::Markup => "markup",
            Construct::Tag => "tag",
            Construct::EndTag => "end tag",
            Construct::Reference => "reference",
            Construct::Comment => "comment",
            Construct::ProcessingInstruction => "processing instruction",
            Construct::Cdata => "CDATA section",
            Construct::Doctype => "DOCTYPE",
            Construct::Declaration => "XML declaration",
        }
    }
}

impl fmt::Display for Construct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What stood before a misplaced XML declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    Whitespace,
    Comment,
    Doctype,
    ProcessingInstruction,
}

impl Prior {
    pub fn as_str(self) -> &'static str {
        match self {
            Prior::Whitespace => "whitespace",
            Prior::Comment => "a comment",
            Prior::Doctype => "a DOCTYPE",
            Prior::ProcessingInstruction => "a processing instruction",
        }
    }
}

/// What is wrong with a start tag's attributes (`key`: the attribute's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttrProblem {
    #[error("'/' not followed by '>'")]
    SlashNotClosing,
    #[error("unexpected '{}' after the element name", .0.escape_ascii())]
    AfterName(u8),
    #[error("attributes must be separated by whitespace")]
    NotSeparated,
    #[error("expected an attribute name, found '{}'", .0.escape_ascii())]
    ExpectedName(u8),
    #[error("attribute {key} has no value")]
    NoValue { key: String },
    #[error("the value of attribute {key} is not quoted")]
    Unquoted { key: String },
    #[error("a '<' inside the value of attribute {key}")]
    Lt { key: String },
    /// Refused by policy rather than malformed: entities are never expanded.
    #[error(
        "entity reference &{name}; in attribute {key}: only the five predefined XML entities and \
         character references are allowed (entities are never expanded)"
    )]
    Entity { key: String, name: String },
    #[error("invalid character reference &{name}; in attribute {key}")]
    BadCharRef { key: String, name: String },
    #[error("a bare '&' in the value of attribute {key} (must be written &amp;)")]
    BareAmp { key: String },
    #[error("attribute {key} appears twice")]
    Repeated { key: String },
}

/// What is wrong with a DOCTYPE (one without an internal subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DoctypeProblem {
    #[error("a DOCTYPE without whitespace before the root element name")]
    NoSpace,
    #[error("a DOCTYPE without a root element name")]
    NoName,
    #[error("a malformed DOCTYPE (expected SYSTEM \"uri\" or PUBLIC \"id\" \"uri\")")]
    Malformed,
    #[error("a quoted identifier is missing in the DOCTYPE")]
    NoLiteral,
    #[error("an unterminated identifier in the DOCTYPE")]
    Unterminated,
    #[error("the public identifier in the DOCTYPE holds a character it may not")]
    BadPublicId,
}

/// What is wrong with the pseudo-attributes of an XML declaration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeclProblem {
    #[error("pseudo-attributes must be separated by whitespace")]
    NotSeparated,
    #[error("{key} has no value")]
    NoValue { key: String },
    #[error("an unquoted value")]
    Unquoted,
    #[error("an unterminated value")]
    Unterminated,
    #[error("it must be version=\"1.x\", then optionally encoding and standalone")]
    Order,
    #[error("{key}=\"{value}\" is not a value XML allows")]
    BadValue { key: String, value: String },
}
