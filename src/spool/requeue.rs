//! `requeue`: give files another chance. From `failed/` a file goes straight back into `queue/`
//! (it was valid; the API refused it, perhaps for a reason since fixed) unless it was changed
//! since: then, like a file from `rejected/`, it goes back to the watch directory it came from,
//! to be validated again. Nothing skips validation.
//! Safe while the daemon runs: it picks up new queue entries and watch-directory files itself.

use std::io;
use std::path::{Path, PathBuf};

use super::fsutil;
use super::queue::{self, Admission};
use super::{list_payloads, FailRecord, Layout, RejectRecord};

#[derive(Debug)]
pub struct Moved {
    pub name: String,
    pub to: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RequeueError {
    #[error("{name}: no such file in {}", dir.display())]
    NotFound { name: String, dir: PathBuf },
    #[error("{name}: {message}")]
    Other { name: String, message: String },
}

fn select(dir: &Path, sidecar: &str, names: &[String]) -> io::Result<Vec<String>> {
    let all = list_payloads(dir, sidecar)?;
    if names.is_empty() {
        return Ok(all);
    }
    Ok(names.to_vec())
}

/// The sidecar's record, or why it cannot be read.
fn read_record<T: serde::de::DeserializeOwned>(
    name: &str,
    sidecar: &Path,
) -> Result<T, RequeueError> {
    std::fs::read(sidecar)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| RequeueError::Other {
            name: name.to_string(),
            message: format!("cannot read {}: {e}", sidecar.display()),
        })
}

/// Whether `data` is still exactly the content that was validated (size and SHA-256).
fn unchanged(data: &Path, size: u64, sha256: &str) -> io::Result<bool> {
    use std::io::Read;
    if std::fs::metadata(data)?.len() != size {
        return Ok(false);
    }
    let mut f = std::fs::File::open(data)?;
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(crate::admit::hex(hasher.finish().as_ref()).eq_ignore_ascii_case(sha256))
}

/// Send `data` back to the watch directory of `original`, to be validated again.
fn to_watch_dir(
    name: String,
    data: &Path,
    sidecar: &Path,
    original: &Path,
    watched: &impl Fn(&Path) -> bool,
    why: &str,
) -> Result<Moved, RequeueError> {
    let Some(dir) = original.parent().filter(|d| d.is_dir() && watched(d)) else {
        return Err(RequeueError::Other {
            name,
            message: format!(
                "{why}it came from {}, which is not a watch directory now: move it into one by hand",
                original.display()
            ),
        });
    };
    let wanted = original
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(name.clone());
    match fsutil::place_unique(data, dir, &wanted) {
        Ok(dest) => {
            let _ = fsutil::remove_durably(sidecar);
            Ok(Moved { name, to: dest })
        }
        Err(e) => Err(RequeueError::Other {
            name,
            message: e.to_string(),
        }),
    }
}

pub fn failed(
    layout: &Layout,
    names: &[String],
    watched: impl Fn(&Path) -> bool,
) -> io::Result<Vec<Result<Moved, RequeueError>>> {
    let mut out = Vec::new();
    for name in select(&layout.failed, ".error.json", names)? {
        let data = layout.failed.join(&name);
        let sidecar = layout.failed.join(format!("{name}.error.json"));
        if !data.is_file() {
            out.push(Err(RequeueError::NotFound {
                name,
                dir: layout.failed.clone(),
            }));
            continue;
        }
        let record: FailRecord = match read_record(&name, &sidecar) {
            Ok(r) => r,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        match unchanged(&data, record.entry.size, &record.entry.sha256) {
            Ok(true) => {}
            Ok(false) => {
                out.push(to_watch_dir(
                    name,
                    &data,
                    &sidecar,
                    &record.entry.original,
                    &watched,
                    "it was changed since HostedScan refused it, so it must be validated again; ",
                ));
                continue;
            }
            Err(e) => {
                out.push(Err(RequeueError::Other {
                    name,
                    message: format!("cannot read it: {e}"),
                }));
                continue;
            }
        }
        let a = Admission::from(record.entry);
        match queue::commit(&layout.queue, &data, a) {
            Ok(e) => {
                let _ = fsutil::remove_durably(&sidecar);
                out.push(Ok(Moved {
                    name,
                    to: e.data_path,
                }));
            }
            Err(e) => out.push(Err(RequeueError::Other {
                name,
                message: e.to_string(),
            })),
        }
    }
    Ok(out)
}

/// `watched` says whether a directory is (still) read by the agent: a file put back anywhere
/// else would sit there unnoticed.
pub fn rejected(
    layout: &Layout,
    names: &[String],
    watched: impl Fn(&Path) -> bool,
) -> io::Result<Vec<Result<Moved, RequeueError>>> {
    let mut out = Vec::new();
    for name in select(&layout.rejected, ".reason.json", names)? {
        let data = layout.rejected.join(&name);
        let sidecar = layout.rejected.join(format!("{name}.reason.json"));
        if !data.is_file() {
            out.push(Err(RequeueError::NotFound {
                name,
                dir: layout.rejected.clone(),
            }));
            continue;
        }
        let record: RejectRecord = match read_record(&name, &sidecar) {
            Ok(r) => r,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        out.push(to_watch_dir(
            name,
            &data,
            &sidecar,
            &record.file,
            &watched,
            "",
        ));
    }
    Ok(out)
}
