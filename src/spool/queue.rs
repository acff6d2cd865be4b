//! `queue/`: admitted files waiting for upload. Each entry is the file under its own name plus
//! `<name>.meta.json` saying what it is. The metadata is made durable first and the data is
//! renamed in last, so the data's arrival is the commit point: a crash before it leaves only
//! metadata, which recovery removes (the original is still in the watch directory). Entries
//! admitted together are committed together: one directory fsync for all their metadata, one
//! for all their data ([`commit_all`]).

use std::fs;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsutil;
use super::source::{Destination, SourceRef};
use super::{Sha256, Xxh3};
use crate::validate::{Format, ScanType};

pub const META_SUFFIX: &str = ".meta.json";

/// A queued file's record (`<name>.meta.json`): its name in `queue/`, when it was admitted,
/// and what admission found it to be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryMeta {
    /// The name in `queue/`.
    pub name: String,
    pub admitted_at: String,
    #[serde(flatten)]
    pub file: Validated,
    /// The source it goes to and the watch or job it came from.
    #[serde(flatten)]
    pub to: Destination,
}

/// What admission found a valid file to be: enough to upload it without reading it again.
/// Made once, by admission; a requeued file keeps it as it was.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Validated {
    /// Where it came from (escaped: see `crate::escape`).
    #[serde(with = "crate::escape::serde_path")]
    pub original: PathBuf,
    /// The original file name, sent as the multipart file name.
    pub file_name: String,
    #[serde(deserialize_with = "super::format_or_unknown")]
    pub format: Format,
    pub content_type: String,
    pub scan_type: ScanType,
    /// Sent as the `target` field when present.
    pub target: Option<String>,
    pub sha256: Sha256,
    /// What the copy is checked against while it is sent (absent in entries older versions
    /// queued: those are checked against `sha256`). Read leniently: a value that is not an
    /// XXH3 reads as none, and the entry is checked against its SHA-256 (the stronger check)
    /// rather than losing its whole record over a field that only makes the check faster.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "xxh3_or_none"
    )]
    pub xxh3: Option<Xxh3>,
    pub size: u64,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `xxh3` of a record: an XXH3, else none (absent, null, or not 32 hex digits).
fn xxh3_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Xxh3>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(v.as_str().and_then(|s| s.parse().ok()))
}

impl Validated {
    /// What the copy must hash to when it is sent.
    pub fn expected(&self) -> super::digest::Expected {
        super::digest::Expected::new(self.xxh3, self.sha256)
    }
}

/// A file in the queue. Only made by [`commit`] (admission) and [`load_all`] (recovery of what
/// admission committed before), so whatever the uploader holds has passed validation.
#[derive(Debug, Clone)]
pub struct QueuedEntry {
    pub meta: EntryMeta,
    pub data_path: PathBuf,
    pub meta_path: PathBuf,
}

impl QueuedEntry {
    /// Why the file in `queue/` is no longer the one admission validated, when its size says
    /// so (a disk or filesystem fault, or a hand that edited it): it must not be uploaded.
    /// The content itself is checked while it is sent ([`Validated::expected`]: its XXH3, or
    /// the SHA-256 of an entry an older version queued).
    pub fn damage(&self) -> Option<String> {
        match fs::metadata(&self.data_path) {
            Ok(m) if m.len() != self.meta.file.size => Some(damaged(&format!(
                "the queued copy is {} bytes but {} were validated",
                m.len(),
                self.meta.file.size
            ))),
            _ => None,
        }
    }
}

/// The reason kept for a queued copy that is not the file admission validated.
pub fn damaged(why: &str) -> String {
    format!(
        "{why}: it was damaged or changed in queue/ after it was validated, so it was not uploaded"
    )
}

/// Commit `data` (a fully written, fsynced temporary file on the same filesystem) to the queue:
/// [`prepare`], then [`commit_all`] of that one entry.
pub fn commit(
    queue: &Path,
    data: &Path,
    file: Validated,
    to: Destination,
) -> io::Result<QueuedEntry> {
    let (entry, step) = prepare(queue, data, file, to)?;
    match commit_all(queue, &[step]).pop() {
        Some(Ok(())) => Ok(entry),
        Some(Err(e)) => Err(e),
        None => Err(io::Error::other("the queue commit did not run")),
    }
}

/// What [`commit_all`] does for one entry made by [`prepare`]: the rename of its data into
/// `queue/` (and of its metadata, where the file system could not name it at once).
#[derive(Debug)]
pub struct CommitStep {
    /// The metadata's temporary name, when it still has one.
    meta_tmp: Option<PathBuf>,
    meta_path: PathBuf,
    data: PathBuf,
    data_path: PathBuf,
}

/// The part of a commit that is each entry's own: the metadata written and fsynced under a
/// temporary name in `queue/`, then given a name no other entry has, in one atomic step that
/// never replaces a file (so no two entries, even from a concurrent `requeue`, share a name).
/// `data` (a fully written, fsynced temporary file on the same filesystem) is not moved yet:
/// [`commit_all`] does that, for many entries at once. On failure nothing of the entry is left
/// in `queue/`.
pub fn prepare(
    queue: &Path,
    data: &Path,
    file: Validated,
    to: Destination,
) -> io::Result<(QueuedEntry, CommitStep)> {
    // Microseconds, so the queue keeps admission order within a second.
    let admitted_at = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let (mut f, tmp) = fsutil::create_temp(queue)?;
    let named = (|| {
        let mut written = false;
        loop {
            let name = fsutil::unique_name(queue, &file.file_name, |n| {
                n.ends_with(META_SUFFIX) || fs::symlink_metadata(meta_path(queue, n)).is_ok()
            });
            let meta = EntryMeta {
                name: name.clone(),
                admitted_at: admitted_at.clone(),
                file: file.clone(),
                to: to.clone(),
            };
            let json = super::to_json(&meta)?;
            if written {
                // Another entry took the name since it was found free (rare): the record says
                // the next one.
                f.set_len(0)?;
                f.seek(io::SeekFrom::Start(0))?;
            }
            f.write_all(&json)?;
            f.sync_all()?;
            written = true;
            match fsutil::rename_exclusive(&tmp, &meta_path(queue, &name)) {
                Ok(()) => return Ok((meta, None)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    // No atomic rename here: an empty file created exclusively reserves the
                    // name instead, and the record is renamed over it at the commit.
                    let name = fsutil::reserve(queue, &file.file_name, META_SUFFIX)?;
                    let meta = EntryMeta { name, ..meta };
                    let written = f
                        .set_len(0)
                        .and_then(|()| f.seek(io::SeekFrom::Start(0)))
                        .and_then(|_| super::to_json(&meta))
                        .and_then(|json| f.write_all(&json))
                        .and_then(|()| f.sync_all());
                    if let Err(e) = written {
                        let _ = fs::remove_file(meta_path(queue, &meta.name));
                        return Err(e);
                    }
                    return Ok((meta, Some(tmp.clone())));
                }
                Err(e) => return Err(e),
            }
        }
    })();
    let (meta, meta_tmp) = match named {
        Ok(x) => x,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let meta_path = meta_path(queue, &meta.name);
    let data_path = queue.join(&meta.name);
    Ok((
        QueuedEntry {
            meta,
            data_path: data_path.clone(),
            meta_path: meta_path.clone(),
        },
        CommitStep {
            meta_tmp,
            meta_path,
            data: data.to_path_buf(),
            data_path,
        },
    ))
}

/// Where the metadata of the entry named `name` is.
fn meta_path(queue: &Path, name: &str) -> PathBuf {
    queue.join(format!("{name}{META_SUFFIX}"))
}

/// Commit prepared entries to the queue together (group commit): every metadata file (named
/// by [`prepare`], or renamed over its reserved name here) is made durable in place with one
/// fsync of `queue/`; then every data file is
/// renamed in (each one's commit point) and made durable with one more. A crash before a data
/// file's rename leaves only its metadata, which recovery removes (the original is still in
/// the watch directory); after the second fsync every entry of the batch is queued. One result
/// per step, in order; a failed entry leaves nothing in `queue/` (its data stays where it was).
pub fn commit_all(queue: &Path, steps: &[CommitStep]) -> Vec<io::Result<()>> {
    let mut res: Vec<io::Result<()>> = steps
        .iter()
        .map(|s| match &s.meta_tmp {
            Some(tmp) => fs::rename(tmp, &s.meta_path),
            None => Ok(()),
        })
        .collect();
    let fail_all = |res: &mut Vec<io::Result<()>>, e: &io::Error| {
        for r in res.iter_mut().filter(|r| r.is_ok()) {
            *r = Err(io::Error::new(e.kind(), e.to_string()));
        }
    };
    let synced = (|| {
        if res.iter().any(|r| r.is_ok()) {
            fsutil::sync_dir(queue)?;
        }
        crate::failpoint::failpoint!("queue-commit");
        Ok(())
    })();
    if let Err(e) = synced {
        fail_all(&mut res, &e);
    }
    let mut moved = false;
    for (s, r) in steps.iter().zip(res.iter_mut()) {
        if r.is_ok() {
            *r = fsutil::move_in(&s.data, &s.data_path);
            moved |= r.is_ok();
        }
    }
    if moved {
        // The files already have exactly one place each; a failing fsync (EIO) is reported
        // but does not turn the moves into failures the callers would undo.
        if let Err(e) = fsutil::sync_dir(queue) {
            tracing::warn!(dir = %queue.display(), error = %e, "fsync of a directory failed");
        }
    }
    for (s, r) in steps.iter().zip(res.iter()) {
        if r.is_err() {
            if let Some(tmp) = &s.meta_tmp {
                let _ = fs::remove_file(tmp);
            }
            let _ = fs::remove_file(&s.meta_path);
        }
    }
    res
}

/// What `queue/` holds.
pub struct Loaded {
    /// Committed entries, oldest admission first.
    pub entries: Vec<QueuedEntry>,
    /// Files that cannot be uploaded as they are: set aside, never lost.
    pub unreadable: Vec<Unusable>,
}

/// A file in `queue/` that cannot be uploaded as it is, and why.
pub struct Unusable {
    pub data_path: PathBuf,
    /// Its metadata, when that could be read (the copy itself is what is wrong).
    pub meta: Option<EntryMeta>,
    pub reason: String,
}

/// Every committed entry, and the files that cannot be uploaded as they are.
pub fn load_all(queue: &Path) -> io::Result<Loaded> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for name in super::list_payloads(queue, META_SUFFIX)? {
        let data_path = queue.join(&name);
        let meta_path = queue.join(format!("{name}{META_SUFFIX}"));
        match fs::read(&meta_path) {
            Ok(bytes) => match serde_json::from_slice::<EntryMeta>(&bytes) {
                Ok(mut meta) => {
                    meta.name = name;
                    let entry = QueuedEntry {
                        meta,
                        data_path,
                        meta_path,
                    };
                    match entry.damage() {
                        None => good.push(entry),
                        Some(reason) => bad.push(Unusable {
                            data_path: entry.data_path,
                            meta: Some(entry.meta),
                            reason,
                        }),
                    }
                }
                Err(e) => bad.push(Unusable {
                    data_path,
                    meta: None,
                    reason: format!("its metadata {} is unreadable: {e}", meta_path.display()),
                }),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => bad.push(Unusable {
                data_path,
                meta: None,
                reason: "found in queue/ without its metadata (copied in by hand?)".to_string(),
            }),
            Err(e) => bad.push(Unusable {
                data_path,
                meta: None,
                reason: format!("its metadata {} cannot be read: {e}", meta_path.display()),
            }),
        }
    }
    good.sort_by(|a, b| {
        (a.meta.admitted_at.as_str(), a.meta.name.as_str())
            .cmp(&(b.meta.admitted_at.as_str(), b.meta.name.as_str()))
    });
    Ok(Loaded {
        entries: good,
        unreadable: bad,
    })
}

/// Metadata whose data never arrived: an admission interrupted before its commit point.
pub fn remove_orphan_metadata(queue: &Path) -> io::Result<()> {
    for e in fs::read_dir(queue)? {
        let n = e?.file_name().to_string_lossy().into_owned();
        if let Some(data) = n.strip_suffix(META_SUFFIX) {
            if fs::symlink_metadata(queue.join(data)).is_err() {
                fs::remove_file(queue.join(&n))?;
            }
        }
    }
    Ok(())
}

/// The source and SHA-256 of every queued entry (content already in the agent's custody for
/// that source).
pub fn queued_hashes(queue: &Path) -> io::Result<Vec<(SourceRef, Sha256)>> {
    Ok(load_all(queue)?
        .entries
        .into_iter()
        .map(|e| (e.meta.to.source, e.meta.file.sha256))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> EntryMeta {
        EntryMeta {
            name: "a.xml".into(),
            admitted_at: "2026-12-06T00:00:00.000000Z".into(),
            file: Validated {
                original: "/srv/in/a.xml".into(),
                file_name: "a.xml".into(),
                format: Format::NmapXml,
                content_type: "application/xml".into(),
                scan_type: ScanType::Nmap,
                target: None,
                sha256: Sha256::of(b"a"),
                xxh3: None,
                size: 1,
                warnings: vec![],
            },
            to: Destination::default(),
        }
    }

    #[test]
    fn entries_prepared_at_once_under_one_name_each_get_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("queue");
        fs::create_dir(&queue).unwrap();
        let names: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..16)
                .map(|i| {
                    let (queue, root) = (&queue, dir.path());
                    s.spawn(move || {
                        let data = root.join(format!("data{i}"));
                        let content = format!("copy {i:02}");
                        fs::write(&data, &content).unwrap();
                        let file = Validated {
                            size: content.len() as u64,
                            ..meta().file
                        };
                        let (entry, step) =
                            prepare(queue, &data, file, Destination::default()).unwrap();
                        commit_all(queue, &[step]).pop().unwrap().unwrap();
                        entry.meta.name
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 16, "a name was handed out twice: {names:?}");
        let loaded = load_all(&queue).unwrap();
        let reasons: Vec<_> = loaded.unreadable.iter().map(|u| &u.reason).collect();
        assert!(reasons.is_empty(), "{reasons:?}");
        assert_eq!(loaded.entries.len(), 16);
        for e in &loaded.entries {
            // The record names its own entry (a record rewritten after losing a race included).
            let on_disk: EntryMeta =
                serde_json::from_slice(&fs::read(&e.meta_path).unwrap()).unwrap();
            assert_eq!(on_disk.name, e.meta.name);
            let i: String = fs::read_to_string(&e.data_path).unwrap();
            assert!(i.starts_with("copy "), "{i}");
        }
        let left: Vec<_> = fs::read_dir(&queue)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn a_record_whose_xxh3_is_not_one_is_read_without_it() {
        use super::super::digest::Expected;
        let m = EntryMeta {
            file: Validated {
                xxh3: Some(Xxh3::of(b"a")),
                ..meta().file
            },
            ..meta()
        };
        let mut v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["xxh3"].as_str().map(str::len), Some(32));
        let back: EntryMeta = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.file.expected(), Expected::Xxh3(Xxh3::of(b"a")));
        for bad in [
            serde_json::json!("zz"),
            serde_json::json!(12),
            serde_json::json!("0".repeat(33)),
            serde_json::json!(null),
            serde_json::json!({"x": 1}),
        ] {
            v["xxh3"] = bad.clone();
            let back: EntryMeta = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
            assert_eq!(back.file.xxh3, None, "{bad}");
            assert_eq!(
                back.file.expected(),
                Expected::Sha256(m.file.sha256),
                "{bad}"
            );
            assert_eq!(back.file.original, m.file.original, "{bad}");
        }
        v.as_object_mut().unwrap().remove("xxh3");
        let back: EntryMeta = serde_json::from_value(v).unwrap();
        assert_eq!(back.file.xxh3, None);
    }

    #[test]
    fn a_record_is_flat_json_with_the_words_of_before() {
        let v: serde_json::Value = serde_json::to_value(meta()).unwrap();
        assert_eq!(v["name"], "a.xml");
        assert_eq!(v["format"], "nmap-xml");
        assert_eq!(v["scan_type"], "NMAP");
        assert_eq!(v["sha256"], Sha256::of(b"a").to_string());
        assert!(v.get("file").is_none(), "no nested object: {v}");
        assert!(
            v.get("source").is_none() && v.get("origin").is_none(),
            "the default source is not written (records read the same by older versions): {v}"
        );
    }

    #[test]
    fn a_record_keeps_its_source_and_origin_and_old_records_go_to_the_default() {
        let mut m = meta();
        m.to = Destination {
            source: SourceRef::Name("DMZ".into()),
            origin: Some(super::super::source::Origin::Job("nightly".into())),
        };
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["source"]["name"], "DMZ");
        assert_eq!(v["origin"]["job"], "nightly");
        let back: EntryMeta = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
        let old = serde_json::to_string(&meta()).unwrap();
        let back: EntryMeta = serde_json::from_str(&old).unwrap();
        assert_eq!(back.to, Destination::default());
    }

    #[test]
    fn a_format_this_version_does_not_know_reads_as_unknown() {
        let text = serde_json::to_string(&meta())
            .unwrap()
            .replace("\"nmap-xml\"", "\"some-future-format\"");
        let back: EntryMeta = serde_json::from_str(&text).unwrap();
        assert_eq!(back.file.format, Format::Unknown);
        assert_eq!(back.file.sha256, Sha256::of(b"a"));
    }
}
