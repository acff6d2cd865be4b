//! Any bytes through the validator with no hints: it must never panic, hang or allocate without
//! bound, and a verdict must be reached for every input.
#![no_main]

use hostedscan_agent::validate::{validate, Hints};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = validate(data, &Hints::default());
});
