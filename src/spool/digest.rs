//! `Sha256`: the identity of a file's content in the agent's custody. Admission computes it
//! once while it reads a file; from there it is the same 32-byte value in the queue's
//! metadata, the ledger, a `rejected/` record, the duplicate check and the check made while
//! the file is sent, and it is only ever written as lowercase hex (JSON, logs, `status`).

use std::fmt;
use std::str::FromStr;

/// A SHA-256 digest. Stored and shown as 64 lowercase hex digits; either case is read.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256([u8; 32]);

/// Computes a [`Sha256`] from bytes fed in any number of pieces.
#[derive(Clone)]
pub struct Hasher(ring::digest::Context);

impl Default for Hasher {
    fn default() -> Hasher {
        Hasher(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> Sha256 {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        Sha256(out)
    }
}

impl Sha256 {
    /// The digest of `bytes`, all in memory.
    pub fn of(bytes: &[u8]) -> Sha256 {
        let mut h = Hasher::default();
        h.update(bytes);
        h.finish()
    }

    /// The 32 bytes, as the ledger's binary index stores them.
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Sha256 {
        Sha256(bytes)
    }
}

/// Not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 (64 hex digits): {0:?}")]
pub struct NotASha256(pub String);

impl FromStr for Sha256 {
    type Err = NotASha256;

    fn from_str(s: &str) -> Result<Sha256, NotASha256> {
        let bad = || NotASha256(s.chars().take(80).collect());
        let hex = s.as_bytes();
        if hex.len() != 64 {
            return Err(bad());
        }
        let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            *o = nibble(pair[0])
                .zip(nibble(pair[1]))
                .map(|(h, l)| h << 4 | l)
                .ok_or_else(bad)?;
        }
        Ok(Sha256(out))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl serde::Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Sha256, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn it_is_the_sha256_of_the_bytes_however_they_are_fed() {
        assert_eq!(Sha256::of(b"abc").to_string(), ABC);
        let mut h = Hasher::default();
        h.update(b"a");
        h.update(b"");
        h.update(b"bc");
        assert_eq!(h.finish(), Sha256::of(b"abc"));
    }

    #[test]
    fn hex_of_either_case_is_read_and_lowercase_is_written() {
        let d: Sha256 = ABC.to_uppercase().parse().unwrap();
        assert_eq!(d.to_string(), ABC);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        assert_eq!(serde_json::from_str::<Sha256>(&json).unwrap(), d);
    }

    #[test]
    fn anything_but_64_hex_digits_is_refused() {
        for bad in [
            "",
            "00",
            &ABC[1..],
            &format!("{ABC}0"),
            &ABC.replace('b', "g"),
        ] {
            assert!(bad.parse::<Sha256>().is_err(), "{bad:?} accepted");
        }
        assert!(serde_json::from_str::<Sha256>("\"00\"").is_err());
    }
}
