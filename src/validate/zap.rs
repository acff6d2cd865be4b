//! OWASP ZAP traditional report rules, for both the XML (`OWASPZAPReport`) and the JSON
//! (`@version` + `site`) shapes: collects the site names (the upload target defaults to the
//! first), notes sites without `alerts`, the ZAP <= 2.7 single-object `site`, and a
//! `stoppingInsight` (the scan was stopped early).

use std::fmt;
use std::io::BufRead;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::json::{Scalar, Strings};
use super::xml::{Node, Tag, XmlPull};
use super::{reject, Format, Found, RejectKind, Rejection, ScanType};

/// Site names kept for the target and the "several sites" warning; the rest are counted.
const NAMED_SITES: usize = 10;
const MAX_NAME: usize = 2048;
pub(crate) const MAX_INSIGHT: usize = 300;

#[derive(Debug, Default)]
pub(crate) struct Sites {
    names: Vec<String>,
    count: usize,
    without_alerts: usize,
    /// ZAP <= 2.7 wrote a single site as an object instead of an array.
    legacy_object: bool,
}

impl Sites {
    fn add(&mut self, name: Option<String>, alerts: bool) {
        self.count += 1;
        if !alerts {
            self.without_alerts += 1;
        }
        if let Some(n) = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) {
            if self.names.len() < NAMED_SITES {
                self.names.push(n.chars().take(MAX_NAME).collect());
            }
        }
    }
}

/// Everything both shapes report, turned into a `Found`.
fn found(format: Format, sites: Sites, insight: Option<String>) -> Found {
    let mut warnings = Vec::new();
    if sites.legacy_object {
        warnings.push("legacy ZAP (<= 2.7) JSON: site is a single object, not a list".to_string());
    }
    if sites.without_alerts > 0 {
        warnings.push(format!(
            "{} site(s) have no alerts element",
            sites.without_alerts
        ));
    }
    if let Some(text) = insight {
        let text = text.trim();
        warnings.push(if text.is_empty() {
            "the report has a stoppingInsight: ZAP stopped the scan early, so findings may be \
             incomplete"
                .to_string()
        } else {
            format!(
                "the report has a stoppingInsight: ZAP stopped the scan early, so findings may be \
                 incomplete ({text})"
            )
        });
    }
    Found {
        format: Some(format),
        scan_type: Some(ScanType::OwaspZap),
        warnings,
        partial: None,
        site_count: sites.count,
        sites: sites.names,
    }
}

pub(crate) fn check_xml<B: BufRead>(
    pull: &mut XmlPull<'_, B>,
    root: &Tag<'_>,
) -> Result<Found, Rejection> {
    pull.format = Format::ZapXml;
    if root.attr("version").is_none() {
        return Err(reject(
            Format::ZapXml,
            RejectKind::NotAReport,
            "<OWASPZAPReport> has no version attribute, so it is not a ZAP traditional XML report",
        ));
    }
    let mut sites = Sites::default();
    let mut site: Option<(Option<String>, bool)> = None;
    let mut insight: Option<String> = None;
    let mut in_insight = false;
    loop {
        match pull.next()? {
            Node::Start { tag, depth } => match (depth, tag.name()) {
                (2, "site") => site = Some((tag.attr("name"), false)),
                (3, "alerts") => {
                    if let Some(s) = site.as_mut() {
                        s.1 = true;
                    }
                }
                (2, "stoppingInsight") => {
                    in_insight = true;
                    insight.get_or_insert_with(String::new);
                }
                _ => {}
            },
            Node::Text { text, .. } if in_insight => {
                if let Some(buf) = insight.as_mut() {
                    let room = MAX_INSIGHT.saturating_sub(buf.len());
                    let t = text.trim();
                    if room > 0 && !t.is_empty() {
                        if !buf.is_empty() {
                            buf.push(' ');
                        }
                        buf.extend(t.chars().take(room));
                    }
                }
            }
            Node::End { depth: 2 } => {
                if let Some((name, alerts)) = site.take() {
                    sites.add(name, alerts);
                }
                in_insight = false;
            }
            Node::Eof => break,
            _ => {}
        }
    }
    Ok(found(Format::ZapXml, sites, insight))
}

/// What the top-level JSON visitor collects for ZAP.
#[derive(Debug, Default)]
pub(crate) struct ZapJson {
    pub version: bool,
    pub program_name: bool,
    pub site: Option<Sites>,
    pub insight: Option<String>,
}

pub(crate) fn json_verdict(z: ZapJson) -> Result<Found, Rejection> {
    let Some(sites) = z.site else {
        return Err(reject(
            Format::ZapJson,
            RejectKind::NotAReport,
            "ZAP JSON without a site key",
        ));
    };
    if !z.version {
        return Err(reject(
            Format::ZapJson,
            RejectKind::NotAReport,
            "the JSON has ZAP's site list but no @version key, so it is not a ZAP traditional \
             JSON report",
        ));
    }
    Ok(found(Format::ZapJson, sites, z.insight))
}

/// The value of the top-level `site` key: a list of sites, or one site object (ZAP <= 2.7).
pub(crate) struct SiteSeed<'a>(pub &'a mut Sites);

impl<'de> DeserializeSeed<'de> for SiteSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SiteSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of ZAP site objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(OneSite(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.legacy_object = true;
        OneSite(self.0).visit_map(map)
    }
}

struct OneSite<'a>(&'a mut Sites);

impl<'de> DeserializeSeed<'de> for OneSite<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OneSite<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a ZAP site object with @name and alerts")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut name = None;
        let mut alerts = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "@name" => name = map.next_value::<Scalar>()?.0,
                "alerts" => {
                    map.next_value::<IgnoredAny>()?;
                    alerts = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.0.add(name, alerts);
        Ok(())
    }
}

/// Collects a short text from a `stoppingInsight` value, whatever its shape.
pub(crate) fn insight_seed(buf: &mut String) -> Strings<'_> {
    Strings::new(buf, MAX_INSIGHT)
}
