//! The syntax checks of the pull parser that work on bytes already in hand, free of its
//! buffering: a whole start tag (name, attributes, references, repeated keys), the body of a
//! DOCTYPE and the pseudo-attributes of an XML declaration, plus the small scanners they share.
//! Each says what is wrong with a typed problem; the parser adds where. A start tag's scan
//! is decided by nothing past its `>`, so it may be made ahead, on another thread (`index.rs`).

use super::chars::AttrMasks;
use super::chars::{
    attr_masks, attr_masks16, first_value_stop, is_name_start, is_value_stop, is_ws, name_len,
    reference, Ref,
};
use super::error::{AttrProblem, DeclProblem, DoctypeProblem};

/// More attributes than this on one tag are checked for repeats with a hash set.
const FEW_ATTRS: usize = 16;

/// The outcome of scanning a tag that must be whole in the buffer.
pub(super) enum Scan {
    /// The tag ends with the `>` at this index; `empty` for `/>`; its name is `name` bytes.
    Done { gt: usize, empty: bool, name: usize },
    /// The buffer ends first.
    More,
    /// Not well-formed (or, for an entity reference, refused).
    Bad(AttrProblem),
}
/// Checks what stands between `<!DOCTYPE` and `>` (no internal subset: that is refused
/// before): whitespace, the root element name, then optionally `SYSTEM "uri"` or
/// `PUBLIC "id" "uri"`.
pub(super) fn doctype_body(body: &[u8]) -> Result<(), DoctypeProblem> {
    let mut i = 0;
    let ws = |i: &mut usize| {
        let from = *i;
        while *i < body.len() && is_ws(body[*i]) {
            *i += 1;
        }
        *i > from
    };
    let literal = |i: &mut usize, pubid: bool| -> Result<(), DoctypeProblem> {
        let Some(&q @ (b'"' | b'\'')) = body.get(*i) else {
            return Err(DoctypeProblem::NoLiteral);
        };
        let len = memchr::memchr(q, &body[*i + 1..]).ok_or(DoctypeProblem::Unterminated)?;
        let value = &body[*i + 1..*i + 1 + len];
        let pubid_char =
            |b: &u8| b.is_ascii_alphanumeric() || b" \r\n-'()+,./:=?;!*#@$_%".contains(b);
        if pubid && !value.iter().all(pubid_char) {
            return Err(DoctypeProblem::BadPublicId);
        }
        *i += len + 2;
        Ok(())
    };
    if !ws(&mut i) {
        return Err(DoctypeProblem::NoSpace);
    }
    let name = name_at(body, i);
    if name.is_empty() {
        return Err(DoctypeProblem::NoName);
    }
    i += name.len();
    let spaced = ws(&mut i);
    let rest = &body[i..];
    if rest.is_empty() {
        return Ok(());
    }
    let bad = || Err(DoctypeProblem::Malformed);
    if !spaced {
        return bad();
    }
    if rest.starts_with(b"SYSTEM") {
        i += 6;
        if !ws(&mut i) {
            return bad();
        }
        literal(&mut i, false)?;
    } else if rest.starts_with(b"PUBLIC") {
        i += 6;
        if !ws(&mut i) {
            return bad();
        }
        literal(&mut i, true)?;
        if !ws(&mut i) {
            return bad();
        }
        literal(&mut i, false)?;
    } else {
        return bad();
    }
    ws(&mut i);
    if i != body.len() {
        return bad();
    }
    Ok(())
}

/// The name starting at `from` (empty if none does).
#[inline(always)]
pub(super) fn name_at(buf: &[u8], from: usize) -> &[u8] {
    let rest = buf.get(from..).unwrap_or_default();
    if !rest.first().is_some_and(|b| is_name_start(*b)) {
        return &[];
    }
    &rest[..name_len(rest)]
}

/// The length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence.
pub(super) fn char_boundary(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=n.min(4) {
        let b = bytes[n - back];
        if b & 0xC0 != 0x80 {
            let width = match b {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xFF => 4,
                _ => 1,
            };
            return if width > back { n - back } else { n };
        }
    }
    n
}

/// Checks the tag starting with the `<` at `start`: its name, and each attribute (separated
/// by whitespace, `name = "value"`, no `<` in the value, only allowed references, no key
/// twice). `keys` is scratch space for the keys seen. A tag found whole (`Done`) is decided by
/// its bytes from `<` to `>` alone, whatever the buffer holds after them: tags scanned ahead
/// on another thread (`index.rs`) rely on it.
#[inline]
pub(super) fn scan_start_tag(buf: &[u8], start: usize, keys: &mut Keys) -> Scan {
    let n = buf.len();
    let name = name_at(buf, start + 1).len();
    let mut i = start + 1 + name;
    keys.n = 0;
    let mut many: Option<std::collections::HashSet<&[u8]>> = None;
    let mut bloom = 0u64;
    loop {
        // The usual attribute, ` key="value"` with one space, no space around `=` and nothing
        // to read twice in the value, checked whole from the masks of the first 16 bytes, or
        // of 32; anything else (and an attribute that does not fit) takes the steps below,
        // which decide the same.
        if let Some(w) = buf.get(i..i + 32) {
            if is_ws(w[0]) && is_name_start(w[1]) {
                let mut lo = [0u8; 16];
                lo.copy_from_slice(&w[..16]);
                let found = whole_attr(&attr_masks16(&lo), 16)
                    .or_else(|| whole_attr(&attr_masks(w.try_into().unwrap_or(&[0; 32])), 32));
                if let Some((eq, close)) = found {
                    let key = &buf[i + 1..i + eq];
                    if repeated(buf, i + 1, key, keys, &mut bloom, &mut many) {
                        let key = String::from_utf8_lossy(key).into_owned();
                        return Scan::Bad(AttrProblem::Repeated { key });
                    }
                    i += close + 1;
                    continue;
                }
            }
        }
        let Some(&b) = buf.get(i) else {
            return Scan::More;
        };
        match b {
            b'>' => {
                return Scan::Done {
                    gt: i,
                    empty: false,
                    name,
                }
            }
            b'/' => {
                return match buf.get(i + 1) {
                    None => Scan::More,
                    Some(b'>') => Scan::Done {
                        gt: i + 1,
                        empty: true,
                        name,
                    },
                    Some(_) => Scan::Bad(AttrProblem::SlashNotClosing),
                }
            }
            _ if is_ws(b) => i += 1,
            _ => {
                return Scan::Bad(if keys.n == 0 && many.is_none() {
                    AttrProblem::AfterName(b)
                } else {
                    AttrProblem::NotSeparated
                })
            }
        }
        // Usually one space: more whitespace is the rare case.
        while i < n && is_ws(buf[i]) {
            i += 1;
        }
        let Some(&b) = buf.get(i) else {
            return Scan::More;
        };
        if b == b'>' || b == b'/' {
            continue;
        }
        let key = name_at(buf, i);
        if key.is_empty() {
            return Scan::Bad(AttrProblem::ExpectedName(b));
        }
        let key_at = i;
        i += key.len();
        let shown = || String::from_utf8_lossy(key).into_owned();
        // `key="` is the common case; whitespace around `=` the rare one.
        if buf.get(i) == Some(&b'=') {
            i += 1;
        } else {
            while i < n && is_ws(buf[i]) {
                i += 1;
            }
            match buf.get(i) {
                None => return Scan::More,
                Some(b'=') => i += 1,
                Some(_) => return Scan::Bad(AttrProblem::NoValue { key: shown() }),
            }
        }
        while i < n && is_ws(buf[i]) {
            i += 1;
        }
        let quote = match buf.get(i) {
            None => return Scan::More,
            Some(&q @ (b'"' | b'\'')) => q,
            Some(_) => return Scan::Bad(AttrProblem::Unquoted { key: shown() }),
        };
        i += 1;
        loop {
            i = value_stop(buf, i);
            let Some(&b) = buf.get(i) else {
                return Scan::More;
            };
            if b == quote {
                i += 1;
                break;
            }
            match b {
                b'<' => return Scan::Bad(AttrProblem::Lt { key: shown() }),
                b'&' => match reference(&buf[i + 1..]) {
                    Ref::Ok { len, .. } => i += 1 + len,
                    Ref::Short => return Scan::More,
                    Ref::Entity(name) => {
                        return Scan::Bad(AttrProblem::Entity { key: shown(), name })
                    }
                    Ref::BadChar(name) => {
                        return Scan::Bad(AttrProblem::BadCharRef { key: shown(), name })
                    }
                    Ref::Bare => return Scan::Bad(AttrProblem::BareAmp { key: shown() }),
                },
                // The other quote, which is only a character here.
                _ => i += 1,
            }
        }
        if repeated(buf, key_at, key, keys, &mut bloom, &mut many) {
            return Scan::Bad(AttrProblem::Repeated { key: shown() });
        }
    }
}

/// Where `=` and the closing quote stand when the window (of `limit` bytes, whose masks are
/// `m`) holds a whole ` key="value"` whose value has no `<` or `&`.
#[inline(always)]
fn whole_attr(m: &AttrMasks, limit: usize) -> Option<(usize, usize)> {
    // Where the key ends (bit 0, the space, is not a name byte).
    let eq = (m.not_name & !1).trailing_zeros() as usize;
    if eq + 2 >= limit || m.eq >> eq & 1 == 0 {
        return None;
    }
    let open = eq + 1;
    let quotes = if m.dquote >> open & 1 != 0 {
        m.dquote
    } else if m.squote >> open & 1 != 0 {
        m.squote
    } else {
        return None;
    };
    // The first closing quote, `<` or `&` in the value.
    let close = open + 1 + ((quotes | m.lt_amp) >> (open + 1)).trailing_zeros() as usize;
    (close < limit && quotes >> close & 1 != 0).then_some((eq, close))
}

/// Notes the key `key` (at `buf[key_at..]`) of the tag being scanned; `true` if the tag had
/// it already. `bloom` holds one bit per key seen, so a key whose bit is clear is new without
/// comparing it to any; past `FEW_ATTRS` keys, `many` holds them all.
#[inline(always)]
fn repeated<'b>(
    buf: &'b [u8],
    key_at: usize,
    key: &'b [u8],
    keys: &mut Keys,
    bloom: &mut u64,
    many: &mut Option<std::collections::HashSet<&'b [u8]>>,
) -> bool {
    match many.as_mut() {
        Some(set) => !set.insert(key),
        None => {
            let head = key_head(buf, key_at, key.len());
            let bit = 1u64 << (head.wrapping_add(key.len() as u64).wrapping_mul(K) >> 58);
            let seen = *bloom & bit != 0 && keys.seen(head, key, buf);
            *bloom |= bit;
            if keys.n < FEW_ATTRS {
                keys.push(head, key_at, key.len());
            } else {
                let mut set = keys.to_set(buf);
                set.insert(key);
                *many = Some(set);
            }
            seen
        }
    }
}

/// The index of the first quote, `<` or `&` at or after `i` (or `buf.len()`). Values are
/// short, so memchr's set-up costs more than it saves; sixteen bytes at a time with one vector
/// test beats a byte loop, whose exit branch mispredicts on every value of a new length.
#[inline(always)]
fn value_stop(buf: &[u8], mut i: usize) -> usize {
    while let Some(w) = buf.get(i..i + 16) {
        let k = first_value_stop(w.try_into().unwrap_or(&[0; 16]));
        if k < 16 {
            return i + k;
        }
        i += 16;
    }
    while i < buf.len() && !is_value_stop(buf[i]) {
        i += 1;
    }
    i
}

/// The attribute keys seen in the tag being scanned (up to `FEW_ATTRS`; more go to a hash
/// set), each compared by its first eight bytes and length before its bytes (most keys are
/// that short, so the first test decides). Kept in arrays the scan writes field by field:
/// building a key as a struct and pushing it cost a store-forwarding stall per attribute.
pub(super) struct Keys {
    head: [u64; FEW_ATTRS],
    at: [usize; FEW_ATTRS],
    len: [usize; FEW_ATTRS],
    n: usize,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            head: [0; FEW_ATTRS],
            at: [0; FEW_ATTRS],
            len: [0; FEW_ATTRS],
            n: 0,
        }
    }
}

/// A multiplier that spreads a key's head over the bloom filter's 64 bits.
const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Keys {
    #[inline(always)]
    fn push(&mut self, head: u64, at: usize, len: usize) {
        let k = self.n;
        self.head[k] = head;
        self.at[k] = at;
        self.len[k] = len;
        self.n = k + 1;
    }

    /// Whether `key` (whose head is `head`) is among the keys kept.
    fn seen(&self, head: u64, key: &[u8], buf: &[u8]) -> bool {
        (0..self.n).any(|k| {
            self.head[k] == head
                && self.len[k] == key.len()
                && (key.len() <= 8 || &buf[self.at[k]..self.at[k] + self.len[k]] == key)
        })
    }

    fn to_set<'b>(&self, buf: &'b [u8]) -> std::collections::HashSet<&'b [u8]> {
        (0..self.n)
            .map(|k| &buf[self.at[k]..self.at[k] + self.len[k]])
            .collect()
    }
}

/// The first eight bytes of the key of `len` bytes at `buf[at..]`, zero-padded.
#[inline(always)]
fn key_head(buf: &[u8], at: usize, len: usize) -> u64 {
    let n = len.min(8);
    match buf.get(at..at + 8) {
        // One load instead of a copy of `n` bytes; the bytes past the key are masked off.
        Some(w) => {
            let w = u64::from_le_bytes(w.try_into().unwrap_or_default());
            if n == 8 {
                w
            } else {
                w & ((1u64 << (8 * n)) - 1)
            }
        }
        None => {
            let mut head = [0u8; 8];
            head[..n].copy_from_slice(&buf[at..at + n]);
            u64::from_le_bytes(head)
        }
    }
}

/// The pseudo-attributes of an XML declaration (`body` is what follows `<?xml`): `version`
/// first, then optionally `encoding` and `standalone`.
pub(super) fn pseudo_attrs(body: &[u8]) -> Result<Vec<(String, String)>, DeclProblem> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let ws_start = i;
        while i < body.len() && is_ws(body[i]) {
            i += 1;
        }
        if i == body.len() {
            break;
        }
        if i == ws_start {
            return Err(DeclProblem::NotSeparated);
        }
        let key = name_at(body, i);
        i += key.len();
        while i < body.len() && is_ws(body[i]) {
            i += 1;
        }
        if body.get(i) != Some(&b'=') {
            return Err(DeclProblem::NoValue {
                key: String::from_utf8_lossy(key).into_owned(),
            });
        }
        i += 1;
        while i < body.len() && is_ws(body[i]) {
            i += 1;
        }
        let Some(&q @ (b'"' | b'\'')) = body.get(i) else {
            return Err(DeclProblem::Unquoted);
        };
        let Some(len) = memchr::memchr(q, &body[i + 1..]) else {
            return Err(DeclProblem::Unterminated);
        };
        out.push((
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(&body[i + 1..i + 1 + len]).into_owned(),
        ));
        i += len + 2;
    }
    let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
    let allowed = matches!(
        keys.as_slice(),
        ["version"]
            | ["version", "encoding"]
            | ["version", "standalone"]
            | ["version", "encoding", "standalone"]
    );
    if !allowed {
        return Err(DeclProblem::Order);
    }
    for (key, value) in &out {
        let v = value.as_bytes();
        let ok = match key.as_str() {
            "version" => {
                v.len() > 2 && v.starts_with(b"1.") && v[2..].iter().all(u8::is_ascii_digit)
            }
            "encoding" => {
                v.first().is_some_and(u8::is_ascii_alphabetic)
                    && v.iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
            }
            _ => value == "yes" || value == "no",
        };
        if !ok {
            return Err(DeclProblem::BadValue {
                key: key.clone(),
                value: value.clone(),
            });
        }
    }
    Ok(out)
}
