//! The validator with every configured scan type, a target and accept_partial, chosen by the
//! first byte: the hint paths (mismatch, ZAP target, partial scans) get fuzzed too.
#![no_main]

use hostedscan_agent::validate::{validate, Hints, ScanType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let types = [None, Some(ScanType::Nmap), Some(ScanType::NmapUdp), Some(ScanType::Openvas), Some(ScanType::OwaspZap), Some(ScanType::OwaspZapActive), Some(ScanType::Sslyze)];
    let hints = Hints {
        scan_type: types[(sel & 7) as usize % types.len()],
        target: (sel & 8 != 0).then(|| "https://fuzz.example".to_string()),
        accept_partial: sel & 16 != 0,
    };
    let _ = validate(rest, &hints);
});
