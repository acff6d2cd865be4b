//! Small serde visitors the JSON format checkers share: the length of a list (`CountSeed`), a
//! scalar as text (`Scalar`), the strings anywhere in a value (`Strings`) and whether a key
//! is there (`present`). They read through serde_json without buffering what they skip. Also
//! the fast lane for long lists (`Elements`, `object_in_memory`): elements parsed from memory
//! when they lie whole in the reader's window.

use std::fmt;

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// The streaming parser reads byte by byte; a list of thousands of objects (ZAP's sites,
/// SSLyze's servers) is read several times faster by parsing each element from memory. The
/// reader under the parser offers that for the list being visited, after its first element.
pub(crate) trait Elements {
    /// If the list's next element (after its comma) is an object, hands the bytes from its `{`
    /// to the end of the reader's window to `take`, and consumes what `take` says it used. On
    /// anything else (the list's end, a syntax error, an element past the window) nothing is
    /// consumed and false returned: the streaming parser reads on from there, and words any
    /// error exactly as it would have.
    fn next_object(&self, take: &mut dyn FnMut(&[u8]) -> Take) -> bool;
}

/// What `Elements::next_object`'s caller made of the bytes it was offered.
pub(crate) enum Take {
    /// The element parsed and was counted: it is this many bytes long.
    Used(usize),
    /// The window ends inside the element: offer it again with more bytes.
    NeedMore,
    /// Leave it to the streaming parser.
    Refuse,
}

/// Parses one object from the start of `bytes` (the window the reader offers): the value and
/// its length, `NeedMore` when the window ends inside it, `Refuse` for anything else. The
/// parser's nesting limit (128) cannot tell the two apart: it counts only the levels a visitor
/// descends (skipped values are not counted), a handful in the element types used here.
pub(crate) fn object_in_memory<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<(T, usize), Take> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
    match values.next() {
        Some(Ok(v)) => Ok((v, values.byte_offset())),
        Some(Err(e)) if e.is_eof() => Err(Take::NeedMore),
        _ => Err(Take::Refuse),
    }
}

/// Whether a key's value is there and not null.
pub(crate) fn present<'de, A: MapAccess<'de>>(map: &mut A) -> Result<bool, A::Error> {
    Ok(map.next_value::<Option<IgnoredAny>>()?.is_some())
}

/// The number of elements of an array (0 for null or any non-array).
pub(crate) struct CountSeed;

impl<'de> DeserializeSeed<'de> for CountSeed {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CountSeed {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_str<E>(self, _: &str) -> Result<usize, E> {
        Ok(0)
    }
}

/// A scalar as text (strings as they are, numbers and booleans printed, null as `None`);
/// anything else is skipped. ZAP writes ports as strings, SSLyze as numbers.
pub(crate) struct Scalar(pub Option<String>);

/// Longest scalar we keep; names and statuses are short, the rest is never needed whole.
const MAX_SCALAR: usize = 2048;

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or number")
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.chars().take(MAX_SCALAR).collect())))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
    fn visit_none<E>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar(None))
    }
}

/// Appends the string scalars found anywhere in a value to `buf`, up to `max` bytes; used to
/// quote free-form explanations (ZAP's stoppingInsight) in a warning.
pub(crate) struct Strings<'a> {
    buf: &'a mut String,
    max: usize,
}

impl<'a> Strings<'a> {
    pub(crate) fn new(buf: &'a mut String, max: usize) -> Self {
        Strings { buf, max }
    }

    fn push(&mut self, s: &str) {
        let room = self.max.saturating_sub(self.buf.len());
        let s = s.trim();
        if room == 0 || s.is_empty() {
            return;
        }
        if !self.buf.is_empty() {
            self.buf.push_str("; ");
        }
        let mut cut = room.min(s.len());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.buf.push_str(&s[..cut]);
    }
}

impl<'de> DeserializeSeed<'de> for Strings<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strings<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(mut self, v: &str) -> Result<(), E> {
        self.push(v);
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Strings::new(&mut *self.buf, self.max))?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Strings::new(&mut *self.buf, self.max))?;
        }
        Ok(())
    }
}
