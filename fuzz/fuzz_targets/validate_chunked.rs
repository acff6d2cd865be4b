//! The same bytes delivered in small, irregular reads (as a slow disk or pipe would), checked
//! against one whole read: the verdict must not depend on where the reads are cut.
#![no_main]

use std::io::{BufReader, Read};

use hostedscan_agent::validate::{validate, Hints};
use libfuzzer_sys::fuzz_target;

struct Trickle<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    i: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let step = self.sizes.get(self.i % self.sizes.len().max(1)).copied().unwrap_or(7).max(1) as usize;
        self.i += 1;
        let n = step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (sizes, body) = data.split_at(3);
    let whole = validate(body, &Hints::default()).unwrap();
    let reader = BufReader::with_capacity(16, Trickle { data: body, sizes, i: 0 });
    let chunked = validate(reader, &Hints::default()).unwrap();
    assert_eq!(whole.is_ok(), chunked.is_ok(), "verdict depends on read boundaries");
    if let (Err(a), Err(b)) = (&whole, &chunked) {
        assert_eq!(a.kind, b.kind, "rejection kind depends on read boundaries");
    }
});
