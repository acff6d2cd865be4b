//! Temporary stand-in for the validators while they are written elsewhere.
#![allow(dead_code)]
use std::io::BufRead;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Format { NmapXml, GvmXml, GvmCsv, ZapXml, ZapJson, SslyzeJson, NmapText, Json, Xml, Unknown }
impl Format {
    pub fn as_str(&self) -> &'static str { "nmap-xml" }
    pub fn content_type(&self) -> &'static str { "application/xml" }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanType { Nmap, NmapUdp, Openvas, OwaspZap, OwaspZapActive, Sslyze }
impl ScanType {
    pub fn as_str(&self) -> &'static str { match self { ScanType::Nmap => "NMAP", ScanType::NmapUdp => "NMAP_UDP", ScanType::Openvas => "OPENVAS", ScanType::OwaspZap => "OWASP_ZAP", ScanType::OwaspZapActive => "OWASP_ZAP_ACTIVE", ScanType::Sslyze => "SSLYZE" } }
    pub fn needs_target(&self) -> bool { matches!(self, ScanType::OwaspZap | ScanType::OwaspZapActive) }
}
impl std::str::FromStr for ScanType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s { "NMAP" => ScanType::Nmap, "NMAP_UDP" => ScanType::NmapUdp, "OPENVAS" => ScanType::Openvas, "OWASP_ZAP" => ScanType::OwaspZap, "OWASP_ZAP_ACTIVE" => ScanType::OwaspZapActive, "SSLYZE" => ScanType::Sslyze, _ => return Err(format!("unknown scan type {s:?}: expected one of NMAP, NMAP_UDP, OPENVAS, OWASP_ZAP, OWASP_ZAP_ACTIVE, SSLYZE")) })
    }
}
impl serde::Serialize for ScanType { fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.as_str()) } }
impl<'de> serde::Deserialize<'de> for ScanType { fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> { let s = String::deserialize(d)?; s.parse().map_err(serde::de::Error::custom) } }
#[derive(Debug, Clone, Default)]
pub struct Hints { pub scan_type: Option<ScanType>, pub target: Option<String>, pub accept_partial: bool }
#[derive(Debug, Clone, PartialEq)]
pub struct Report { pub format: Format, pub scan_type: ScanType, pub target: Option<String>, pub warnings: Vec<String> }
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind { Incomplete, Malformed, ScanFailed, Partial, Unsupported, NotAReport, Forbidden, Limit, Mismatch, NoTarget }
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection { pub format: Format, pub kind: RejectKind, pub reason: String, pub warnings: Vec<String> }
pub type Verdict = Result<Report, Rejection>;
pub fn validate<R: BufRead>(mut reader: R, hints: &Hints) -> std::io::Result<Verdict> {
    let mut s = String::new();
    reader.read_to_string(&mut s)?;
    if s.trim().is_empty() { return Ok(Err(Rejection { format: Format::Unknown, kind: RejectKind::Incomplete, reason: "empty".into(), warnings: vec![] })); }
    if s.contains("<nmaprun") && s.contains("</nmaprun>") { Ok(Ok(Report { format: Format::NmapXml, scan_type: hints.scan_type.unwrap_or(ScanType::Nmap), target: hints.target.clone(), warnings: vec![] })) }
    else if s.contains("<nmaprun") { Ok(Err(Rejection { format: Format::NmapXml, kind: RejectKind::Incomplete, reason: "truncated".into(), warnings: vec![] })) }
    else { Ok(Err(Rejection { format: Format::Unknown, kind: RejectKind::NotAReport, reason: "not a recognised scanner report".into(), warnings: vec![] })) }
}
