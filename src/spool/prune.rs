//! Keeping `rejected/` and `failed/` from growing without end: entries (a file and its sidecar)
//! older than their retention are removed, and `rejected/`, which anyone who can write a watch
//! directory can feed, is held under a size counted in allocated blocks (a sparse file costs
//! what it really uses), its oldest entries dropped first. An entry's age is its sidecar's
//! modification time: when it was set aside, not when its writer last touched it.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::fsutil::{remove_durably, TMP_PREFIX};

/// How long rejected/ and failed/ keep entries, and how much rejected/ may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub retention: Duration,
    pub rejected_max_size: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            retention: Duration::from_secs(30 * 24 * 3600),
            rejected_max_size: 2 << 30,
        }
    }
}

/// Bytes a file takes on disk (0 if it is gone).
pub fn allocated_file(p: &Path) -> u64 {
    fs::symlink_metadata(p).map_or(0, |m| m.blocks() * 512)
}

/// Bytes the files directly in `dir` take on disk.
fn allocated(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for e in fs::read_dir(dir)? {
        let Ok(e) = e else { continue };
        if let Ok(m) = e.metadata() {
            total += m.blocks() * 512;
        }
    }
    Ok(total)
}

/// One entry: a payload and its sidecar.
struct Entry {
    name: String,
    at: SystemTime,
    bytes: u64,
}

fn entries(dir: &Path, sidecar: &str) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let Ok(e) = e else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(TMP_PREFIX) || name.ends_with(sidecar) {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        let side = fs::symlink_metadata(dir.join(format!("{name}{sidecar}"))).ok();
        out.push(Entry {
            at: side
                .as_ref()
                .and_then(|s| s.modified().ok())
                .or_else(|| m.modified().ok())
                .unwrap_or(SystemTime::UNIX_EPOCH),
            bytes: m.blocks() * 512 + side.map_or(0, |s| s.blocks() * 512),
            name,
        });
    }
    Ok(out)
}

/// Remove an entry's sidecar last, so that it is never there without one.
fn remove_entry(dir: &Path, name: &str, sidecar: &str) -> io::Result<()> {
    remove_durably(&dir.join(name))?;
    remove_durably(&dir.join(format!("{name}{sidecar}")))
}

/// What [`hold`] did.
#[derive(Debug, Default)]
pub struct Held {
    /// Entries removed for being older than the retention.
    pub expired: usize,
    /// Entries dropped for size, oldest first, with the bytes each freed.
    pub dropped: Vec<(String, u64)>,
    /// Allocated bytes left in the directory.
    pub remaining: u64,
}

/// Remove the entries of `dir` older than `retention`; returns how many.
pub fn expire(dir: &Path, sidecar: &str, retention: Duration) -> io::Result<usize> {
    let Some(cutoff) = SystemTime::now().checked_sub(retention) else {
        return Ok(0);
    };
    let mut n = 0;
    for e in entries(dir, sidecar)? {
        if e.at < cutoff {
            remove_entry(dir, &e.name, sidecar)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Apply `limits` to `dir`: entries past the retention go, then the oldest until what is left
/// takes at most nine tenths of `rejected_max_size` (so that a flood does not make every new
/// entry list the whole directory again). `newest`, the entry just added, is never dropped by
/// its own arrival (admission keeps out what is larger than the limit by itself).
pub fn hold(dir: &Path, sidecar: &str, limits: Limits, newest: Option<&str>) -> io::Result<Held> {
    let cutoff = SystemTime::now().checked_sub(limits.retention);
    let mut held = Held::default();
    let mut kept = Vec::new();
    for e in entries(dir, sidecar)? {
        if cutoff.is_some_and(|c| e.at < c) {
            remove_entry(dir, &e.name, sidecar)?;
            held.expired += 1;
        } else {
            kept.push(e);
        }
    }
    // Orphan sidecars and temporaries count too: they use the same disk.
    let mut total = allocated(dir)?;
    if total > limits.rejected_max_size {
        let goal = limits.rejected_max_size / 10 * 9;
        kept.sort_by(|a, b| (a.at, &a.name).cmp(&(b.at, &b.name)));
        for e in kept {
            if total <= goal {
                break;
            }
            if Some(e.name.as_str()) == newest {
                continue;
            }
            remove_entry(dir, &e.name, sidecar)?;
            total = total.saturating_sub(e.bytes);
            held.dropped.push((e.name, e.bytes));
        }
    }
    held.remaining = total;
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path, name: &str, size: usize, age_secs: u64) {
        fs::write(dir.join(name), vec![b'x'; size]).unwrap();
        let side = dir.join(format!("{name}.reason.json"));
        fs::write(&side, b"{}").unwrap();
        let f = fs::File::options().write(true).open(&side).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
            .unwrap();
    }

    #[test]
    fn the_oldest_entries_go_first_and_what_is_left_fits() {
        let d = tempfile::tempdir().unwrap();
        for (i, age) in [50, 40, 30, 20, 10].iter().enumerate() {
            entry(d.path(), &format!("r{i}.xml"), 100_000, *age);
        }
        let limits = Limits {
            retention: Duration::from_secs(3600),
            rejected_max_size: 300_000,
        };
        let held = hold(d.path(), ".reason.json", limits, None).unwrap();
        let dropped: Vec<&str> = held.dropped.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(dropped, ["r0.xml", "r1.xml", "r2.xml"]);
        assert!(held.remaining <= 270_000, "{}", held.remaining);
        assert!(d.path().join("r4.xml").exists());
        assert!(
            !d.path().join("r0.xml.reason.json").exists(),
            "sidecar gone too"
        );
    }

    #[test]
    fn the_entry_just_added_is_never_dropped_by_its_own_arrival() {
        let d = tempfile::tempdir().unwrap();
        entry(d.path(), "old.xml", 100_000, 50);
        entry(d.path(), "new.xml", 280_000, 100);
        let limits = Limits {
            retention: Duration::from_secs(3600),
            rejected_max_size: 300_000,
        };
        let held = hold(d.path(), ".reason.json", limits, Some("new.xml")).unwrap();
        let dropped: Vec<&str> = held.dropped.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(dropped, ["old.xml"]);
        assert!(d.path().join("new.xml").exists());
    }

    #[test]
    fn entries_past_the_retention_go() {
        let d = tempfile::tempdir().unwrap();
        entry(d.path(), "old.xml", 10, 7200);
        entry(d.path(), "new.xml", 10, 10);
        assert_eq!(
            expire(d.path(), ".reason.json", Duration::from_secs(3600)).unwrap(),
            1
        );
        assert!(!d.path().join("old.xml").exists());
        assert!(d.path().join("new.xml").exists());
    }
}
