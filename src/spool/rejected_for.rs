//! `RejectedFor`: why a file is in `rejected/`, the `kind` of its reason file. Mostly the
//! validator's verdict; also what admission or the spool decided without one (too large, a
//! failed job run's output, an unusable queue entry). Written as one snake_case word.

use std::fmt;
use std::str::FromStr;

use crate::validate::RejectKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedFor {
    /// The validator said why.
    Invalid(RejectKind),
    /// Larger than `agent.max_file_size` (not read).
    TooLarge,
    /// A job run failed (timed out, stopped, or a scanner's failed run): its output is kept.
    JobFailed,
    /// An entry of `queue/` that could not be used (damaged, or its record unreadable).
    QueueEntry,
    /// A word this version does not know (a reason file written by another version, or by
    /// hand): read as this rather than making the file impossible to requeue.
    Unknown,
}

impl RejectedFor {
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectedFor::Invalid(k) => k.as_str(),
            RejectedFor::TooLarge => "too_large",
            RejectedFor::JobFailed => "job_failed",
            RejectedFor::QueueEntry => "queue_entry",
            RejectedFor::Unknown => "unknown",
        }
    }
}

impl fmt::Display for RejectedFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of the kinds a reason file can have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rejection kind {0:?}")]
pub struct UnknownRejectedFor(pub String);

impl FromStr for RejectedFor {
    type Err = UnknownRejectedFor;

    fn from_str(s: &str) -> Result<RejectedFor, UnknownRejectedFor> {
        Ok(match s {
            "too_large" => RejectedFor::TooLarge,
            "job_failed" => RejectedFor::JobFailed,
            "queue_entry" => RejectedFor::QueueEntry,
            other => RejectedFor::Invalid(
                other
                    .parse()
                    .map_err(|_| UnknownRejectedFor(other.chars().take(80).collect()))?,
            ),
        })
    }
}

impl serde::Serialize for RejectedFor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for RejectedFor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RejectedFor, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Ok(s.parse().unwrap_or(RejectedFor::Unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_written_as_one_word_and_read_back() {
        let mut all: Vec<RejectedFor> = RejectKind::ALL
            .iter()
            .map(|k| RejectedFor::Invalid(*k))
            .collect();
        all.extend([
            RejectedFor::TooLarge,
            RejectedFor::JobFailed,
            RejectedFor::QueueEntry,
        ]);
        for k in all {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<RejectedFor>(&json).unwrap(), k);
        }
        assert_eq!(
            RejectedFor::Invalid(RejectKind::ScanFailed).as_str(),
            "scan_failed"
        );
        // A word of another version's: still readable, so its file can still be requeued.
        assert_eq!(
            serde_json::from_str::<RejectedFor>("\"oversized\"").unwrap(),
            RejectedFor::Unknown
        );
        assert!("oversized".parse::<RejectedFor>().is_err());
    }
}
