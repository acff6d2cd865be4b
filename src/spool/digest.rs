//! `Sha256`: the identity of a file's content in the agent's custody. Admission computes it
//! once while it reads a file; from there it is the same 32-byte value in the queue's
//! metadata, the ledger, a `rejected/` record and the duplicate check, and it is only ever
//! written as lowercase hex (JSON, logs, `status`). `Xxh3`, computed in the same read, is what
//! a queued copy is checked against while it is sent ([`Expected`]).

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

/// XXH3-128 of a file's content: the check of a queued copy while it is sent. Not an identity
/// (that is the SHA-256) and no proof against a forger (who could rewrite the metadata beside
/// it): it catches a copy damaged or edited in `queue/`, at several GB/s (about 0.15 CPU-s a
/// GiB here, where SHA-256 takes 0.6), so that a file's
/// content goes through SHA-256 once, at admission, and not again on each attempt to send it.
/// Stored and shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Xxh3(u128);

/// Computes an [`Xxh3`] from bytes fed in any number of pieces.
#[derive(Clone, Default)]
pub struct Xxh3Hasher(xxhash_rust::xxh3::Xxh3Default);

impl Xxh3Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(&self) -> Xxh3 {
        Xxh3(self.0.digest128())
    }
}

impl Xxh3 {
    /// The checksum of `bytes`, all in memory.
    pub fn of(bytes: &[u8]) -> Xxh3 {
        Xxh3(xxhash_rust::xxh3::xxh3_128(bytes))
    }
}

/// Not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an XXH3-128 (32 hex digits): {0:?}")]
pub struct NotAnXxh3(pub String);

impl FromStr for Xxh3 {
    type Err = NotAnXxh3;

    fn from_str(s: &str) -> Result<Xxh3, NotAnXxh3> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NotAnXxh3(s.chars().take(80).collect()));
        }
        u128::from_str_radix(s, 16)
            .map(Xxh3)
            .map_err(|_| NotAnXxh3(s.to_string()))
    }
}

impl fmt::Display for Xxh3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Xxh3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Xxh3({self})")
    }
}

impl serde::Serialize for Xxh3 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Xxh3 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Xxh3, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a queued copy must hash to when it is sent: its [`Xxh3`] where admission recorded one
/// (every entry queued since it does), else its [`Sha256`] (an entry an older version queued).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    Xxh3(Xxh3),
    Sha256(Sha256),
}

impl Expected {
    pub fn new(xxh3: Option<Xxh3>, sha256: Sha256) -> Expected {
        match xxh3 {
            Some(x) => Expected::Xxh3(x),
            None => Expected::Sha256(sha256),
        }
    }

    /// A check of bytes fed in pieces against this.
    pub fn checker(&self) -> Checker {
        match *self {
            Expected::Xxh3(want) => Checker::Xxh3(Xxh3Hasher::default(), want),
            Expected::Sha256(want) => Checker::Sha256(Hasher::default(), want),
        }
    }

    /// Why `bytes` (all in memory) are not the content admission validated, if they are not.
    pub fn check(&self, bytes: &[u8]) -> Option<String> {
        let mut c = self.checker();
        c.update(bytes);
        c.mismatch()
    }
}

/// The hash an [`Expected`] calls for, fed as the bytes come, with the value they must reach.
#[derive(Clone)]
pub enum Checker {
    Xxh3(Xxh3Hasher, Xxh3),
    Sha256(Hasher, Sha256),
}

impl Checker {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Checker::Xxh3(h, _) => h.update(bytes),
            Checker::Sha256(h, _) => h.update(bytes),
        }
    }

    /// Why the bytes fed so far are not the content admission validated, if they are not.
    pub fn mismatch(&self) -> Option<String> {
        let why = |what: &str, got: &dyn fmt::Display, want: &dyn fmt::Display| {
            format!("the queued copy's {what} is {got}, not the {want} that was validated")
        };
        match self {
            Checker::Xxh3(h, want) => {
                let got = h.finish();
                (got != *want).then(|| why("xxh3", &got, want))
            }
            Checker::Sha256(h, want) => {
                let got = h.clone().finish();
                (got != *want).then(|| why("sha256", &got, want))
            }
        }
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

    #[test]
    fn xxh3_is_the_same_however_the_bytes_are_fed_and_reads_back_from_its_hex() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut h = Xxh3Hasher::default();
        for piece in bytes.chunks(977) {
            h.update(piece);
        }
        let x = h.finish();
        assert_eq!(x, Xxh3::of(&bytes));
        assert_ne!(x, Xxh3::of(&bytes[1..]));
        let hex = x.to_string();
        assert_eq!(hex.len(), 32);
        assert_eq!(hex.parse::<Xxh3>().unwrap(), x);
        assert_eq!(hex.to_uppercase().parse::<Xxh3>().unwrap(), x);
        let json = serde_json::to_string(&x).unwrap();
        assert_eq!(serde_json::from_str::<Xxh3>(&json).unwrap(), x);
        for bad in [
            "",
            "00",
            &hex[1..],
            &format!("{hex}0"),
            &format!("+{}", &hex[1..]),
        ] {
            assert!(bad.parse::<Xxh3>().is_err(), "{bad:?}");
        }
        // The algorithm's own test vector: XXH3-128 of nothing.
        assert_eq!(
            Xxh3::of(b"").to_string(),
            "99aa06d3014798d86001c324468d497f"
        );
    }

    #[test]
    fn the_check_uses_xxh3_when_admission_recorded_it_and_sha256_otherwise() {
        let (good, bad) = (b"the report".as_slice(), b"the rep0rt".as_slice());
        let new = Expected::new(Some(Xxh3::of(good)), Sha256::of(good));
        let old = Expected::new(None, Sha256::of(good));
        assert_eq!(new.check(good), None);
        assert_eq!(old.check(good), None);
        let why = new.check(bad).unwrap();
        assert!(
            why.contains("xxh3 is") && why.contains(&Xxh3::of(good).to_string()),
            "{why}"
        );
        let why = old.check(bad).unwrap();
        assert!(
            why.contains("sha256 is") && why.contains(&Sha256::of(good).to_string()),
            "{why}"
        );
        // A wrong checksum recorded is a mismatch too, not a pass.
        let wrong = Expected::new(Some(Xxh3::of(bad)), Sha256::of(good));
        assert!(wrong.check(good).is_some());
    }
}
