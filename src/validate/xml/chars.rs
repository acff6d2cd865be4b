//! The character-level rules of XML the pull parser and `Tag` share: which bytes may start or
//! continue a name, what whitespace is, and what a reference (`&name;`, `&#N;`, `&#xH;`)
//! stands for. Only the five predefined entities and character references exist here:
//! nothing is ever expanded from a DTD.

/// Longest reference (`&...;`, without the `&`) we read: far longer than any allowed one
/// (`#x10FFFF;`), but leading zeros are legal, so not just 9 bytes.
pub(crate) const MAX_REF: usize = 256;

const fn class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let start = c.is_ascii_alphabetic() || c == b'_' || c == b':' || c >= 0x80;
        let name = start || c.is_ascii_digit() || c == b'-' || c == b'.';
        let ws = matches!(c, b' ' | b'\t' | b'\r' | b'\n');
        let stop = matches!(c, b'"' | b'\'' | b'<' | b'&');
        let mut class = 0;
        if start {
            class |= NAME_START;
        }
        if name {
            class |= NAME;
        }
        if ws {
            class |= WS;
        }
        if stop {
            class |= STOP;
        }
        t[b] = class;
        b += 1;
    }
    t
}

const NAME_START: u8 = 1;
const NAME: u8 = 2;
const WS: u8 = 4;
const STOP: u8 = 8;
/// One lookup per byte for the hot loops. Bytes >= 0x80 count as name characters: the input
/// is already valid UTF-8, and the finer Unicode ranges of the XML name productions are left
/// to the server's parser (no scanner writes non-ASCII element names).
static CLASS: [u8; 256] = class_table();

#[inline]
pub(crate) fn is_name_start(b: u8) -> bool {
    CLASS[b as usize] & NAME_START != 0
}

#[inline]
pub(crate) fn is_name(b: u8) -> bool {
    CLASS[b as usize] & NAME != 0
}

#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    CLASS[b as usize] & WS != 0
}

/// How many bytes at the start of `bytes` are name characters (`is_name`). Sixteen bytes at a
/// time with one vector test: names are short and of every length, so a byte loop's exit
/// branch mispredicts on nearly every name, and one word holds nearly all names.
#[inline(always)]
pub(crate) fn name_len(bytes: &[u8]) -> usize {
    let mut i = 0;
    while let Some(w) = bytes.get(i..i + 16) {
        let k = first_not_name(w.try_into().unwrap_or(&[0; 16]));
        if k < 16 {
            return i + k;
        }
        i += 16;
    }
    i + bytes[i..].iter().take_while(|b| is_name(**b)).count()
}

/// The index of the first byte of `w` that is not a name character, 16 if none.
#[inline(always)]
pub(crate) fn first_not_name(w: &[u8; 16]) -> usize {
    #[cfg(target_arch = "x86_64")]
    return sse2::first_not_name(w);
    #[cfg(not(target_arch = "x86_64"))]
    return swar::first_not_name(w);
}

/// The index of the first quote, `<` or `&` in `w` (`is_value_stop`), 16 if none.
#[inline(always)]
pub(crate) fn first_value_stop(w: &[u8; 16]) -> usize {
    #[cfg(target_arch = "x86_64")]
    return sse2::first_value_stop(w);
    #[cfg(not(target_arch = "x86_64"))]
    return swar::first_value_stop(w);
}

/// Where the bytes of one ` key="value"` stand in a 32-byte window, one bit per byte: what
/// the tag scanner needs to check a whole short attribute from one load, instead of a chain
/// of loads each waiting for the length found before it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) struct AttrMasks {
    /// Also set for every bit past the window.
    pub not_name: u64,
    pub eq: u64,
    pub dquote: u64,
    pub squote: u64,
    /// `<` or `&`: a value with one goes the long way.
    pub lt_amp: u64,
}

/// The masks of a 32-byte window.
#[inline(always)]
pub(crate) fn attr_masks(w: &[u8; 32]) -> AttrMasks {
    let mut lo = [0u8; 16];
    let mut hi = [0u8; 16];
    lo.copy_from_slice(&w[..16]);
    hi.copy_from_slice(&w[16..]);
    attr_masks16(&lo).join(attr_masks16(&hi))
}

/// The masks of a 16-byte window (most attributes fit).
#[inline(always)]
pub(crate) fn attr_masks16(w: &[u8; 16]) -> AttrMasks {
    #[cfg(target_arch = "x86_64")]
    let m = sse2::attr_masks16(w);
    #[cfg(not(target_arch = "x86_64"))]
    let m = bytewise_attr_masks(w);
    m
}

impl AttrMasks {
    /// The masks of this window followed by the 16-byte window `hi`.
    #[inline(always)]
    fn join(self, hi: AttrMasks) -> AttrMasks {
        let low = |m: u64| m & 0xFFFF;
        AttrMasks {
            not_name: low(self.not_name) | low(hi.not_name) << 16 | !0 << 32,
            eq: self.eq | hi.eq << 16,
            dquote: self.dquote | hi.dquote << 16,
            squote: self.squote | hi.squote << 16,
            lt_amp: self.lt_amp | hi.lt_amp << 16,
        }
    }
}

/// `attr_masks` a byte at a time, from the byte classes (other targets, and the tests).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn bytewise_attr_masks(w: &[u8]) -> AttrMasks {
    let mut m = AttrMasks {
        not_name: !0 << w.len(),
        eq: 0,
        dquote: 0,
        squote: 0,
        lt_amp: 0,
    };
    for (i, &b) in w.iter().enumerate() {
        m.not_name |= u64::from(!is_name(b)) << i;
        m.eq |= u64::from(b == b'=') << i;
        m.dquote |= u64::from(b == b'"') << i;
        m.squote |= u64::from(b == b'\'') << i;
        m.lt_amp |= u64::from(b == b'<' || b == b'&') << i;
    }
    m
}

/// The byte-class tests on sixteen bytes with SSE2 compares (part of every x86-64 CPU): a
/// handful of instructions where the word tests below take forty.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x,
    };

    #[inline(always)]
    fn load(w: &[u8; 16]) -> __m128i {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&w[..8]);
        hi.copy_from_slice(&w[8..]);
        // SAFETY: SSE2 is the x86-64 baseline; a value-only intrinsic, nothing is dereferenced.
        unsafe { _mm_set_epi64x(i64::from_le_bytes(hi), i64::from_le_bytes(lo)) }
    }

    /// The index of the lowest set bit of a 16-bit byte mask, 16 if none.
    #[inline(always)]
    fn first(mask: i32) -> usize {
        ((mask as u32) | 0x1_0000).trailing_zeros() as usize
    }

    #[inline(always)]
    pub(super) fn first_not_name(w: &[u8; 16]) -> usize {
        first(!name_bits(load(w)) & 0xFFFF)
    }

    /// Bit i set where byte i of `v` is a name character.
    #[inline(always)]
    fn name_bits(v: __m128i) -> i32 {
        // SAFETY: SSE2 is the x86-64 baseline; these intrinsics work on values only.
        unsafe {
            let c = |b: u8| _mm_set1_epi8(b as i8);
            // Signed compares: bytes >= 0x80 are negative, so they fail every range test
            // here and count through the sign bit the movemask reads (they are name bytes).
            let lower = _mm_or_si128(v, c(0x20));
            let letter = _mm_and_si128(
                _mm_cmpgt_epi8(lower, c(b'a' - 1)),
                _mm_cmplt_epi8(lower, c(b'z' + 1)),
            );
            // '-', '.', '/', the digits and ':' are 0x2D..=0x3A; '/' is taken out below.
            let punct = _mm_and_si128(
                _mm_cmpgt_epi8(v, c(b'-' - 1)),
                _mm_cmplt_epi8(v, c(b':' + 1)),
            );
            let ok = _mm_or_si128(
                _mm_or_si128(letter, punct),
                _mm_or_si128(v, _mm_cmpeq_epi8(v, c(b'_'))),
            );
            let slash = _mm_movemask_epi8(_mm_cmpeq_epi8(v, c(b'/')));
            _mm_movemask_epi8(ok) & !slash
        }
    }

    #[inline(always)]
    pub(super) fn attr_masks16(w: &[u8; 16]) -> super::AttrMasks {
        let v = load(w);
        let bits = |m: i32| u64::from(m as u16);
        // SAFETY: SSE2 is the x86-64 baseline; these intrinsics work on values only.
        let eq =
            |b: u8| bits(unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8))) });
        // SAFETY: as above.
        let lt_amp = unsafe {
            _mm_movemask_epi8(_mm_or_si128(
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'<' as i8)),
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'&' as i8)),
            ))
        };
        super::AttrMasks {
            not_name: !bits(name_bits(v)),
            eq: eq(b'='),
            dquote: eq(b'"'),
            squote: eq(b'\''),
            lt_amp: bits(lt_amp),
        }
    }

    #[inline(always)]
    pub(super) fn first_value_stop(w: &[u8; 16]) -> usize {
        let v = load(w);
        // SAFETY: SSE2 is the x86-64 baseline; these intrinsics work on values only.
        let stop = unsafe {
            let eq = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
            _mm_movemask_epi8(_mm_or_si128(
                _mm_or_si128(eq(b'"'), eq(b'\'')),
                _mm_or_si128(eq(b'<'), eq(b'&')),
            ))
        };
        first(stop)
    }
}

/// The same tests with branch-free word arithmetic (SWAR), for other targets (and compared
/// with the SSE2 ones in the tests).
#[cfg(any(test, not(target_arch = "x86_64")))]
mod swar {
    /// `b` in every byte of a 128-bit word.
    const fn splat(b: u8) -> u128 {
        u128::from_le_bytes([b; 16])
    }

    const HI: u128 = splat(0x80);
    const LOW7: u128 = splat(0x7F);

    /// The index of the lowest byte whose high bit is set in `mask`, 16 if none.
    fn first(mask: u128) -> usize {
        (mask.trailing_zeros() / 8) as usize
    }

    /// Every byte is tested exactly: no carry crosses a byte, since the ASCII tests work on
    /// seven-bit values.
    pub(super) fn first_not_name(w: &[u8; 16]) -> usize {
        let x = u128::from_le_bytes(*w);
        let high = x & HI; // bytes >= 0x80 are name characters
        let a = x & LOW7;
        // High bit set where the seven-bit byte is >= `b` (no carry: a + 0x80 - b <= 0xFF).
        let ge = |v: u128, b: u8| (v + splat(0x80 - b)) & HI;
        let eq = |b: u8| {
            let y = a ^ splat(b);
            !((y + LOW7) | y) & HI
        };
        let lower = a | splat(0x20);
        let letter = ge(lower, b'a') & !ge(lower, b'z' + 1);
        // '-', '.', the digits and ':' are 0x2D..=0x3A, all but '/'.
        let punct = ge(a, b'-') & !ge(a, b':' + 1) & !eq(b'/');
        let name = high | letter | punct | eq(b'_');
        first(!name & HI)
    }

    /// The lowest match is exact (bits above a match may be spurious, which never matters for
    /// finding the first).
    pub(super) fn first_value_stop(w: &[u8; 16]) -> usize {
        const LO: u128 = splat(0x01);
        let x = u128::from_le_bytes(*w);
        let eq = |b: u8| {
            let y = x ^ splat(b);
            y.wrapping_sub(LO) & !y & HI
        };
        first(eq(b'"') | eq(b'\'') | eq(b'<') | eq(b'&'))
    }
}

/// A byte that ends a run of plain attribute-value characters: a quote, `<` or `&`.
#[inline]
pub(crate) fn is_value_stop(b: u8) -> bool {
    CLASS[b as usize] & STOP != 0
}

/// The replacement text of one of the five predefined entities.
pub(crate) fn predefined_entity(name: &[u8]) -> Option<&'static str> {
    match name {
        b"lt" => Some("<"),
        b"gt" => Some(">"),
        b"amp" => Some("&"),
        b"apos" => Some("'"),
        b"quot" => Some("\""),
        _ => None,
    }
}

/// The character of a character reference `&#NUM;` (`num` without the `#`), if it is one XML
/// allows.
pub(crate) fn char_ref(num: &[u8]) -> Option<char> {
    let num = std::str::from_utf8(num).ok()?;
    let (digits, radix) = match num.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (num, 10),
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    if digits.len() > 8 {
        return None;
    }
    let code = u32::from_str_radix(if digits.is_empty() { "0" } else { digits }, radix).ok()?;
    char::from_u32(code).filter(|c| is_xml_char(*c))
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// What a reference starting right after a `&` is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ref {
    /// An allowed reference of `len` bytes (name and `;`, without the `&`) standing for `text`.
    Ok { len: usize, text: RefText },
    /// The bytes end before the reference does: more input is needed (or the file is cut).
    Short,
    /// A `&` not followed by `name;`.
    Bare,
    /// `&#...;` that is not an XML character.
    BadChar(String),
    /// `&name;` for an entity that is not one of the five predefined ones.
    Entity(String),
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum RefText {
    Static(&'static str),
    Char(char),
}

/// Reads the reference in `after` (the bytes after a `&`).
pub(crate) fn reference(after: &[u8]) -> Ref {
    // The predefined entities are nearly all there is: decide them without a scan.
    for (name, text) in [
        (&b"quot;"[..], "\""),
        (b"amp;", "&"),
        (b"lt;", "<"),
        (b"gt;", ">"),
        (b"apos;", "'"),
    ] {
        if after.starts_with(name) {
            return Ref::Ok {
                len: name.len(),
                text: RefText::Static(text),
            };
        }
    }
    let limit = after.len().min(MAX_REF + 1);
    let mut i = 0;
    while i < limit && (is_name(after[i]) || after[i] == b'#') {
        i += 1;
    }
    if i == limit {
        if i > MAX_REF {
            let shown = String::from_utf8_lossy(&after[..32]).into_owned() + "...";
            return if after.first() == Some(&b'#') {
                Ref::BadChar(shown)
            } else {
                Ref::Entity(shown)
            };
        }
        return Ref::Short;
    }
    if after[i] != b';' || i == 0 {
        return Ref::Bare;
    }
    let name = &after[..i];
    let shown = || String::from_utf8_lossy(name).into_owned();
    if let Some(num) = name.strip_prefix(b"#") {
        return match char_ref(num) {
            Some(c) => Ref::Ok {
                len: i + 1,
                text: RefText::Char(c),
            },
            None => Ref::BadChar(shown()),
        };
    }
    match predefined_entity(name) {
        Some(s) => Ref::Ok {
            len: i + 1,
            text: RefText::Static(s),
        },
        None => Ref::Entity(shown()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let ok = |s: &str| match reference(s.as_bytes()) {
            Ref::Ok { len, text } => (len, text),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(ok("amp; x"), (4, RefText::Static("&")));
        assert_eq!(ok("#x41;"), (5, RefText::Char('A')));
        assert_eq!(ok("#65;"), (4, RefText::Char('A')));
        assert_eq!(ok("#x00000000000000000041;").1, RefText::Char('A'));
        assert_eq!(reference(b"am"), Ref::Short);
        assert_eq!(reference(b"amp"), Ref::Short);
        assert_eq!(reference(b"amp x"), Ref::Bare);
        assert_eq!(reference(b" x"), Ref::Bare);
        assert_eq!(reference(b";"), Ref::Bare);
        assert_eq!(reference(b"#0;"), Ref::BadChar("#0".into()));
        assert_eq!(reference(b"#xD800;"), Ref::BadChar("#xD800".into()));
        assert_eq!(reference(b"#x110000;"), Ref::BadChar("#x110000".into()));
        assert_eq!(reference(b"#;"), Ref::BadChar("#".into()));
        assert_eq!(reference(b"#x;"), Ref::BadChar("#x".into()));
        assert_eq!(reference(b"#1a;"), Ref::BadChar("#1a".into()));
        assert_eq!(reference(b"lol;"), Ref::Entity("lol".into()));
        let long = "a".repeat(MAX_REF + 10);
        assert!(matches!(reference(long.as_bytes()), Ref::Entity(s) if s.ends_with("...")));
    }

    #[test]
    fn name_len_agrees_with_the_byte_class_for_every_byte_at_every_position() {
        let slow = |b: &[u8]| b.iter().take_while(|c| is_name(**c)).count();
        for stop in 0..=255u8 {
            for at in 0..20 {
                for fill in [b'a', b'Z', b'0', b'_', b':', b'-', b'.', 0xC3, 0xA9] {
                    let mut bytes = [fill; 24];
                    bytes[at] = stop;
                    for len in [at + 1, 24] {
                        let b = &bytes[..len];
                        assert_eq!(
                            name_len(b),
                            slow(b),
                            "{stop:#x} at {at} in {fill:#x}, {len}"
                        );
                    }
                }
            }
        }
        assert_eq!(name_len(b""), 0);
        assert_eq!(name_len(b"nmaprun scanner"), 7);
    }

    #[test]
    fn sse2_and_word_tests_agree_with_the_byte_class_for_every_byte_at_every_position() {
        for stop in 0..=255u8 {
            for at in 0..16 {
                for fill in [
                    b'a', b'Z', b'0', b'_', b':', b'-', b'.', b' ', 0xC3, 0xA9, b'/',
                ] {
                    let mut w = [fill; 16];
                    w[at] = stop;
                    let name = w.iter().position(|b| !is_name(*b)).unwrap_or(16);
                    let value = w.iter().position(|b| is_value_stop(*b)).unwrap_or(16);
                    let shown = format!("{stop:#x} at {at} in {fill:#x}");
                    assert_eq!(first_not_name(&w), name, "{shown}");
                    assert_eq!(swar::first_not_name(&w), name, "{shown}");
                    assert_eq!(first_value_stop(&w), value, "{shown}");
                    assert_eq!(swar::first_value_stop(&w), value, "{shown}");
                }
            }
        }
    }

    #[test]
    fn attribute_masks_agree_with_the_byte_classes_for_every_byte_at_every_position() {
        for stop in 0..=255u8 {
            for at in 0..32 {
                for fill in [b'a', b'0', b'-', b' ', b'=', b'"', 0xC3] {
                    let mut w = [fill; 32];
                    w[at] = stop;
                    assert_eq!(attr_masks(&w), bytewise_attr_masks(&w), "{stop:#x} at {at}");
                    let mut half = [0; 16];
                    half.copy_from_slice(&w[at / 2..at / 2 + 16]);
                    assert_eq!(
                        attr_masks16(&half),
                        bytewise_attr_masks(&half),
                        "{stop:#x} at {at}"
                    );
                }
            }
        }
        let w = *b" key=\"v'a\" k2='<&' x   \t=\"\"\">   ";
        let m = attr_masks(&w);
        assert_eq!(m.eq.count_ones(), 3);
        assert_eq!(m.lt_amp, 0b11 << 15);
        assert_eq!(m.not_name & 0b11111, 0b10001);
    }

    #[test]
    fn classes() {
        assert!(is_name_start(b'a') && is_name_start(b'_') && is_name_start(0xC3));
        assert!(!is_name_start(b'1') && !is_name_start(b'-') && !is_name_start(b' '));
        assert!(is_name(b'1') && is_name(b'-') && is_name(b'.'));
        assert!(!is_name(b'=') && !is_name(b'>') && !is_name(b'/') && !is_name(b'"'));
        assert!(is_ws(b'\n') && !is_ws(0x0B));
        assert!(is_value_stop(b'&') && is_value_stop(b'\'') && !is_value_stop(b'>'));
    }
}
