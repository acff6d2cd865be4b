//! Fuzz the validator from a corpus of zap_json reports (see common.rs for the property).
#![no_main]

#[path = "common.rs"]
mod common;

use hostedscan_agent::validate::ScanType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::check(data, ScanType::OwaspZap);
});
