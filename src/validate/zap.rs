//! OWASP ZAP traditional report rules, for both the XML (`OWASPZAPReport`) and the JSON
//! (`@version` + `site`) shapes: collects the site names (the upload target defaults to the
//! first), notes sites without `alerts`, the ZAP <= 2.7 single-object `site`, and a
//! `stoppingInsight` (the scan was stopped early).

use std::fmt;

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::checker::{Found, XmlChecker};
use super::json::{object_in_memory, present, Elements, Scalar, Strings, Take};
use super::types::{reject, Format, RejectKind, Rejection, ScanType};
use super::xml::Tag;

/// Site names kept for the target and the "several sites" warning; the rest are counted.
const NAMED_SITES: usize = 10;
const MAX_NAME: usize = 2048;
const MAX_INSIGHT: usize = 300;

#[derive(Debug, Default)]
struct Sites {
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

/// What the rules need from an `<OWASPZAPReport>` document, gathered as it streams by.
pub(crate) struct ZapXml {
    sites: Sites,
    /// The open `site` element: its name, and whether it has `alerts`.
    site: Option<(Option<String>, bool)>,
    insight: Option<String>,
    in_insight: bool,
}

impl ZapXml {
    /// Checks the root element: a traditional report has a version.
    pub(crate) fn new(root: &Tag<'_>) -> Result<ZapXml, Rejection> {
        if root.attr("version").is_none() {
            return Err(reject(
                Format::ZapXml,
                RejectKind::NotAReport,
                "<OWASPZAPReport> has no version attribute, so it is not a ZAP traditional XML \
                 report",
            ));
        }
        Ok(ZapXml {
            sites: Sites::default(),
            site: None,
            insight: None,
            in_insight: false,
        })
    }
}

impl XmlChecker for ZapXml {
    fn start(&mut self, tag: &Tag<'_>, depth: usize) {
        match (depth, tag.name()) {
            (2, "site") => self.site = Some((tag.attr("name"), false)),
            (3, "alerts") => {
                if let Some(s) = self.site.as_mut() {
                    s.1 = true;
                }
            }
            (2, "stoppingInsight") => {
                self.in_insight = true;
                self.insight.get_or_insert_with(String::new);
            }
            _ => {}
        }
    }

    const READS_TEXT: bool = true;

    fn text(&mut self, text: &str, _depth: usize) -> Result<(), Rejection> {
        if !self.in_insight {
            return Ok(());
        }
        if let Some(buf) = self.insight.as_mut() {
            let room = MAX_INSIGHT.saturating_sub(buf.len());
            let t = text.trim();
            if room > 0 && !t.is_empty() {
                if !buf.is_empty() {
                    buf.push(' ');
                }
                buf.extend(t.chars().take(room));
            }
        }
        Ok(())
    }

    fn end(&mut self, depth: usize) {
        if depth == 2 {
            if let Some((name, alerts)) = self.site.take() {
                self.sites.add(name, alerts);
            }
            self.in_insight = false;
        }
    }

    fn verdict(self) -> Result<Found, Rejection> {
        Ok(found(Format::ZapXml, self.sites, self.insight))
    }
}

/// What the top-level JSON visitor collects for ZAP.
#[derive(Debug, Default)]
pub(crate) struct ZapJson {
    version: bool,
    program_name: bool,
    site: Option<Sites>,
    insight: Option<String>,
}

impl ZapJson {
    /// Reads the value of top-level `key` if it is one of ZAP's; `false` leaves it unread.
    /// `fast` reads the elements of a site list from memory.
    pub(crate) fn take<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        fast: &dyn Elements,
    ) -> Result<bool, A::Error> {
        match key {
            "@version" => self.version = present(map)?,
            "@programName" => self.program_name = present(map)?,
            "site" => {
                let sites = self.site.get_or_insert_with(Sites::default);
                map.next_value_seed(SiteSeed(sites, fast))?;
            }
            "stoppingInsight" => {
                let buf = self.insight.get_or_insert_with(String::new);
                map.next_value_seed(Strings::new(buf, MAX_INSIGHT))?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Some key says ZAP, so a broken file is still reported as ZAP JSON.
    pub(crate) fn claimed(&self) -> bool {
        self.site.is_some() || self.version || self.program_name
    }

    /// ZAP's keys for a report are there: its rules decide.
    pub(crate) fn is_report(&self) -> bool {
        self.site.is_some() && (self.version || self.program_name)
    }
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
struct SiteSeed<'a>(&'a mut Sites, &'a dyn Elements);

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
        let sites = self.0;
        // Each site the parser reads leaves it after an element, where the next ones can be
        // taken from memory while they parse there; the rest (and any error) is the parser's.
        while let Some(site) = seq.next_element::<Site>()? {
            sites.add(site.name, site.alerts);
            while self
                .1
                .next_object(&mut |bytes| match object_in_memory::<Site>(bytes) {
                    Ok((site, used)) => {
                        sites.add(site.name, site.alerts);
                        Take::Used(used)
                    }
                    Err(take) => take,
                })
            {}
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.legacy_object = true;
        let mut site = Site::default();
        OneSite(&mut site).visit_map(map)?;
        self.0.add(site.name, site.alerts);
        Ok(())
    }
}

/// What the rules read of one site object.
#[derive(Default)]
struct Site {
    name: Option<String>,
    alerts: bool,
}

impl<'de> Deserialize<'de> for Site {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Site, D::Error> {
        let mut site = Site::default();
        d.deserialize_map(OneSite(&mut site))?;
        Ok(site)
    }
}

struct OneSite<'a>(&'a mut Site);

impl<'de> Visitor<'de> for OneSite<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a ZAP site object with @name and alerts")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let site = self.0;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "@name" => site.name = map.next_value::<Scalar>()?.0,
                "alerts" => {
                    map.next_value::<IgnoredAny>()?;
                    site.alerts = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}
