//! A start tag as the format checkers see it: its name and, on demand, an attribute's value
//! with references replaced. The pull parser has already checked the tag's syntax, so reading
//! it again here only has to find things, not judge them.

use super::chars::{is_name, is_ws, reference, Ref, RefText};

/// A start tag; `raw` is what stands between `<` and `>` (or `/>`). It is valid UTF-8 (the
/// input was checked as it was read), but only the parts a checker asks for are converted.
pub struct Tag<'b> {
    pub(super) raw: &'b [u8],
    pub(super) name_len: usize,
}

impl<'b> Tag<'b> {
    /// The element name ("" in the impossible case that it is not UTF-8).
    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.raw[..self.name_len]).unwrap_or_default()
    }

    /// The value of attribute `key`, references replaced.
    pub fn attr(&self, key: &str) -> Option<String> {
        Attrs {
            raw: self.raw,
            at: self.name_len,
        }
        .find(|(k, _)| *k == key.as_bytes())
        .map(|(_, v)| unescape(v))
    }

    /// The element name as bytes, for checkers that compare it on every tag.
    pub fn name_bytes(&self) -> &[u8] {
        &self.raw[..self.name_len]
    }

    pub fn has_attrs(&self) -> bool {
        self.raw[self.name_len..].iter().any(|b| !is_ws(*b))
    }

    pub fn to_owned_tag(&self) -> OwnedTag {
        OwnedTag {
            raw: self.raw.to_vec(),
            name_len: self.name_len,
        }
    }
}

/// The root tag, kept while the rest of the document is read.
pub struct OwnedTag {
    raw: Vec<u8>,
    name_len: usize,
}

impl OwnedTag {
    pub fn tag(&self) -> Tag<'_> {
        Tag {
            raw: &self.raw,
            name_len: self.name_len,
        }
    }
}

/// `(key, raw value)` pairs of an already checked tag.
struct Attrs<'a> {
    raw: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let raw = self.raw;
        let mut i = self.at;
        while i < raw.len() && is_ws(raw[i]) {
            i += 1;
        }
        let key_start = i;
        while i < raw.len() && is_name(raw[i]) {
            i += 1;
        }
        let key = &raw[key_start..i];
        while i < raw.len() && (is_ws(raw[i]) || raw[i] == b'=') {
            i += 1;
        }
        let quote = *raw.get(i)?;
        let value_start = i + 1;
        let len = raw.get(value_start..)?.iter().position(|b| *b == quote)?;
        self.at = value_start + len + 1;
        Some((key, &raw[value_start..value_start + len]))
    }
}

/// An attribute value with its references replaced (the parser has checked them all).
fn unescape(v: &[u8]) -> String {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(amp) = memchr::memchr(b'&', rest) {
        out.push_str(&String::from_utf8_lossy(&rest[..amp]));
        rest = &rest[amp + 1..];
        match reference(rest) {
            Ref::Ok { len, text } => {
                match text {
                    RefText::Static(s) => out.push_str(s),
                    RefText::Char(c) => out.push(c),
                }
                rest = &rest[len..];
            }
            _ => out.push('&'),
        }
    }
    out.push_str(&String::from_utf8_lossy(rest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_found_and_unescaped() {
        let raw = "port protocol=\"tcp\" a = 'x &amp; &#x41;&lt;' b=\"it's\"\n c=\"\"";
        let tag = Tag {
            raw: raw.as_bytes(),
            name_len: 4,
        };
        assert_eq!(tag.name(), "port");
        assert_eq!(tag.attr("protocol").as_deref(), Some("tcp"));
        assert_eq!(tag.attr("a").as_deref(), Some("x & A<"));
        assert_eq!(tag.attr("b").as_deref(), Some("it's"));
        assert_eq!(tag.attr("c").as_deref(), Some(""));
        assert_eq!(tag.attr("port"), None);
        assert_eq!(tag.attr("d"), None);
        assert!(tag.has_attrs());
        assert!(!Tag {
            raw: b"x  ",
            name_len: 1
        }
        .has_attrs());
    }
}
