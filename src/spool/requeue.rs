//! `requeue`: give files another chance. From `failed/` a file goes straight back into `queue/`
//! (it was valid; the API refused it, perhaps for a reason since fixed). From `rejected/` it goes
//! back to the watch directory it came from, to be validated again: nothing skips validation.
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

pub fn failed(layout: &Layout, names: &[String]) -> io::Result<Vec<Result<Moved, RequeueError>>> {
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
        let Some(dir) = record.file.parent().filter(|d| d.is_dir() && watched(d)) else {
            out.push(Err(RequeueError::Other {
                name,
                message: format!(
                    "it came from {}, which is not a watch directory now: move it into one by hand",
                    record.file.display()
                ),
            }));
            continue;
        };
        let wanted = record
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(name.clone());
        match fsutil::place_unique(&data, dir, &wanted) {
            Ok(dest) => {
                let _ = fsutil::remove_durably(&sidecar);
                out.push(Ok(Moved { name, to: dest }));
            }
            Err(e) => out.push(Err(RequeueError::Other {
                name,
                message: e.to_string(),
            })),
        }
    }
    Ok(out)
}
