//! Fuzz the validator on nmap-shaped input (the corpus is seeded with nmap reports), once
//! detecting the format and once with the scan type configured: it must never panic, hang or
//! allocate without bound, and both runs must agree on whether the file is a report.
#![no_main]

use hostedscan_agent::validate::{validate, Hints, ScanType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let auto = validate(data, &Hints::default()).unwrap();
    let hinted = Hints { scan_type: Some(ScanType::Nmap), target: Some("https://fuzz.example".into()), accept_partial: false };
    let configured = validate(data, &hinted).unwrap();
    // A configured type may reject more (mismatch), never accept what detection rejected,
    // except a ZAP report without a site, which the configured target makes uploadable.
    if configured.is_ok() && auto.is_err() {
        let kind = auto.as_ref().err().map(|r| r.kind);
        assert_eq!(kind, Some(hostedscan_agent::validate::RejectKind::NoTarget), "configured scan type accepted what detection rejected");
    }
});
