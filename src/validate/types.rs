//! The vocabulary of validation, at the bottom of `validate`: what a file is (`Format`), what
//! HostedScan calls the scan (`ScanType`), the verdict (`Report` or `Rejection` with its
//! `RejectKind`) and what the configuration says about a source (`Hints`). Each enum has one
//! spelling, its `as_str()`, used alike by `Display`, `FromStr` and serde, because these names
//! are printed, configured and stored on disk.

use std::fmt;
use std::str::FromStr;

/// Serde through `as_str()`/`FromStr`, so the stored spelling is the printed one.
macro_rules! serde_as_str {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// What the file's bytes are (sniffed), as printed by `validate --format json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    NmapXml,
    GvmXml,
    GvmCsv,
    ZapXml,
    ZapJson,
    SslyzeJson,
    /// Nmap normal (`-oN`, `.nmap`) or grepable (`-oG`, `.gnmap`) output.
    NmapText,
    /// JSON that is none of the above.
    Json,
    /// XML that is none of the above.
    Xml,
    Unknown,
}

impl Format {
    pub const ALL: [Format; 10] = [
        Format::NmapXml,
        Format::GvmXml,
        Format::GvmCsv,
        Format::ZapXml,
        Format::ZapJson,
        Format::SslyzeJson,
        Format::NmapText,
        Format::Json,
        Format::Xml,
        Format::Unknown,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Format::NmapXml => "nmap-xml",
            Format::GvmXml => "gvm-xml",
            Format::GvmCsv => "gvm-csv",
            Format::ZapXml => "zap-xml",
            Format::ZapJson => "zap-json",
            Format::SslyzeJson => "sslyze-json",
            Format::NmapText => "nmap-text",
            Format::Json => "json",
            Format::Xml => "xml",
            Format::Unknown => "unknown",
        }
    }

    /// The content type sent with the upload.
    pub fn content_type(&self) -> &'static str {
        match self {
            Format::NmapXml | Format::GvmXml | Format::ZapXml | Format::Xml => "application/xml",
            Format::ZapJson | Format::SslyzeJson | Format::Json => "application/json",
            Format::GvmCsv => "text/csv",
            Format::NmapText => "text/plain",
            Format::Unknown => "application/octet-stream",
        }
    }

    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Format::NmapXml => "an Nmap XML report",
            Format::GvmXml => "a GVM/OpenVAS XML report",
            Format::GvmCsv => "a GVM CSV export",
            Format::ZapXml => "an OWASP ZAP XML report",
            Format::ZapJson => "an OWASP ZAP JSON report",
            Format::SslyzeJson => "an SSLyze JSON report",
            Format::NmapText => "Nmap text output",
            Format::Json => "JSON",
            Format::Xml => "XML",
            Format::Unknown => "an unrecognised file",
        }
    }
}

/// A format name that is not one of `Format::as_str()`'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}: expected one of nmap-xml, gvm-xml, gvm-csv, zap-xml, zap-json, sslyze-json, nmap-text, json, xml, unknown")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

serde_as_str!(Format);

/// HostedScan scan types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanType {
    Nmap,
    NmapUdp,
    Openvas,
    OwaspZap,
    OwaspZapActive,
    Sslyze,
}

impl ScanType {
    pub const ALL: [ScanType; 6] = [
        ScanType::Nmap,
        ScanType::NmapUdp,
        ScanType::Openvas,
        ScanType::OwaspZap,
        ScanType::OwaspZapActive,
        ScanType::Sslyze,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ScanType::Nmap => "NMAP",
            ScanType::NmapUdp => "NMAP_UDP",
            ScanType::Openvas => "OPENVAS",
            ScanType::OwaspZap => "OWASP_ZAP",
            ScanType::OwaspZapActive => "OWASP_ZAP_ACTIVE",
            ScanType::Sslyze => "SSLYZE",
        }
    }

    /// ZAP uploads must name the target the report is about.
    pub fn needs_target(&self) -> bool {
        matches!(self, ScanType::OwaspZap | ScanType::OwaspZapActive)
    }

    /// Scan types that can describe the same file: a configured type may replace the sniffed
    /// one only within its family.
    pub(crate) fn family(&self) -> u8 {
        match self {
            ScanType::Nmap | ScanType::NmapUdp => 0,
            ScanType::Openvas => 1,
            ScanType::OwaspZap | ScanType::OwaspZapActive => 2,
            ScanType::Sslyze => 3,
        }
    }
}

/// A scan type name that is not one of the exact upper-case names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scan type {0:?}: expected one of NMAP, NMAP_UDP, OPENVAS, OWASP_ZAP, OWASP_ZAP_ACTIVE, SSLYZE")]
pub struct UnknownScanType(pub String);

impl FromStr for ScanType {
    type Err = UnknownScanType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScanType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownScanType(s.to_string()))
    }
}

serde_as_str!(ScanType);

/// What the configuration says about files from this source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// `None` = auto.
    pub scan_type: Option<ScanType>,
    pub target: Option<String>,
    pub accept_partial: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub format: Format,
    pub scan_type: ScanType,
    pub target: Option<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// Ends before the document does (truncated / empty file): may still be being written.
    Incomplete,
    /// Not well-formed (bad syntax, bad UTF-8, two roots, stuff before the XML declaration, ...).
    Malformed,
    /// The scanner reports an error (nmap exit="error", GVM error response, sslyze no connectivity).
    ScanFailed,
    /// Stopped/interrupted/running scan, paginated GVM export.
    Partial,
    /// A known format HostedScan does not import (GVM CSV, nmap -oN/-oG text, base64 GVM).
    Unsupported,
    /// Valid JSON/XML/text but not a report of a supported kind.
    NotAReport,
    /// DTD internal subset / ENTITY declarations / unknown entities.
    Forbidden,
    /// A size/depth limit was exceeded.
    Limit,
    /// The configured scan_type does not fit the format.
    Mismatch,
    /// ZAP report with no site and no configured target.
    NoTarget,
}

impl RejectKind {
    pub const ALL: [RejectKind; 10] = [
        RejectKind::Incomplete,
        RejectKind::Malformed,
        RejectKind::ScanFailed,
        RejectKind::Partial,
        RejectKind::Unsupported,
        RejectKind::NotAReport,
        RejectKind::Forbidden,
        RejectKind::Limit,
        RejectKind::Mismatch,
        RejectKind::NoTarget,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            RejectKind::Incomplete => "incomplete",
            RejectKind::Malformed => "malformed",
            RejectKind::ScanFailed => "scan_failed",
            RejectKind::Partial => "partial",
            RejectKind::Unsupported => "unsupported",
            RejectKind::NotAReport => "not_a_report",
            RejectKind::Forbidden => "forbidden",
            RejectKind::Limit => "limit",
            RejectKind::Mismatch => "mismatch",
            RejectKind::NoTarget => "no_target",
        }
    }
}

/// A rejection kind name that is not one of `RejectKind::as_str()`'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rejection kind {0:?}: expected one of incomplete, malformed, scan_failed, partial, unsupported, not_a_report, forbidden, limit, mismatch, no_target")]
pub struct UnknownRejectKind(pub String);

impl FromStr for RejectKind {
    type Err = UnknownRejectKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RejectKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownRejectKind(s.to_string()))
    }
}

serde_as_str!(RejectKind);

#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub format: Format,
    pub kind: RejectKind,
    pub reason: String,
    pub warnings: Vec<String>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.as_str(),
            self.format,
            self.reason
        )
    }
}

pub type Verdict = Result<Report, Rejection>;

/// A rejection with no warnings yet, the way every checker words one.
pub(crate) fn reject(format: Format, kind: RejectKind, reason: impl Into<String>) -> Rejection {
    Rejection {
        format,
        kind,
        reason: reason.into(),
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lead stores these in spool records: serde must write `as_str()` and read it back.
    #[test]
    fn names_round_trip_through_serde_display_and_from_str() {
        fn round_trip<T>(all: &[T], name: fn(&T) -> &'static str)
        where
            T: serde::Serialize
                + serde::de::DeserializeOwned
                + FromStr
                + fmt::Display
                + PartialEq
                + fmt::Debug
                + Copy,
            T::Err: fmt::Debug,
        {
            for t in all {
                let json = serde_json::to_string(t).expect("ser");
                assert_eq!(json, format!("\"{}\"", name(t)));
                assert_eq!(serde_json::from_str::<T>(&json).expect("de"), *t);
                assert_eq!(t.to_string(), name(t));
                assert_eq!(name(t).parse::<T>().expect("parse"), *t);
            }
        }
        round_trip(&Format::ALL, Format::as_str);
        round_trip(&ScanType::ALL, ScanType::as_str);
        round_trip(&RejectKind::ALL, RejectKind::as_str);
    }

    #[test]
    fn the_spellings_on_disk_stay_what_they_were() {
        let names: Vec<&str> = Format::ALL.iter().map(Format::as_str).collect();
        assert_eq!(
            names,
            [
                "nmap-xml",
                "gvm-xml",
                "gvm-csv",
                "zap-xml",
                "zap-json",
                "sslyze-json",
                "nmap-text",
                "json",
                "xml",
                "unknown"
            ]
        );
        let kinds: Vec<&str> = RejectKind::ALL.iter().map(RejectKind::as_str).collect();
        assert_eq!(
            kinds,
            [
                "incomplete",
                "malformed",
                "scan_failed",
                "partial",
                "unsupported",
                "not_a_report",
                "forbidden",
                "limit",
                "mismatch",
                "no_target"
            ]
        );
    }

    #[test]
    fn unknown_names_are_refused_and_named() {
        let e = "NMAP-XML".parse::<Format>().expect_err("case matters");
        assert!(e.to_string().contains("nmap-xml"), "{e}");
        assert!(serde_json::from_str::<Format>("\"html\"").is_err());
        let e = "not-a-report"
            .parse::<RejectKind>()
            .expect_err("snake case");
        assert!(e.to_string().contains("not_a_report"), "{e}");
        assert!(serde_json::from_str::<RejectKind>("\"Limit\"").is_err());
        assert!(serde_json::from_str::<ScanType>("\"nmap\"").is_err());
    }
}
