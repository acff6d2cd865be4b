//! What a pass is doing right now, for a person waiting at a terminal: files admitted and
//! settled so far, the uploads in flight with the bytes each has sent, and the job runs going
//! on. The stages tell it through [`crate::report::RunReport`] (which holds one only when a
//! display will read it: `--once` on a terminal); the display at the edge (`commands`) reads a
//! [`Snapshot`] a few times a second. Plain counters and a short list under a mutex: nothing
//! here draws, blocks or allocates per byte, and the daemon has none of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The live state of one pass. Shared by the stages (writers) and the display (reader).
#[derive(Debug, Default)]
pub struct Progress {
    admitted: AtomicU64,
    uploaded: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    next_id: AtomicU64,
    uploads: Mutex<Vec<Arc<Upload>>>,
    jobs: Mutex<Vec<Arc<JobRun>>>,
}

/// One upload attempt in flight.
#[derive(Debug)]
pub struct Upload {
    /// Stable for the attempt: the display keeps one bar per id.
    pub id: u64,
    /// The file's name as it came (not escaped: the display escapes what it shows).
    pub file: String,
    pub total: u64,
    pub started: Instant,
    sent: Arc<AtomicU64>,
}

impl Upload {
    /// Bytes of the file handed to the connection so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed).min(self.total)
    }
}

/// One job run going on (from the moment it has a slot until its output is admitted).
#[derive(Debug)]
pub struct JobRun {
    pub id: u64,
    pub job: String,
    pub started: Instant,
}

/// What the display reads.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub admitted: u64,
    pub uploaded: u64,
    pub rejected: u64,
    pub failed: u64,
    pub uploads: Vec<Arc<Upload>>,
    pub jobs: Vec<Arc<JobRun>>,
}

/// Kind of file outcome counted by [`Progress::settled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Uploaded,
    Rejected,
    Failed,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress::default())
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A file passed validation and was queued.
    pub fn admitted(&self) {
        self.admitted.fetch_add(1, Ordering::Relaxed);
    }

    /// A file reached its outcome.
    pub fn settled(&self, kind: Done) {
        let c = match kind {
            Done::Uploaded => &self.uploaded,
            Done::Rejected => &self.rejected,
            Done::Failed => &self.failed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// An upload attempt of `file` (`total` bytes) starts; shown until the guard is dropped.
    pub fn upload(self: &Arc<Self>, file: &str, total: u64) -> Sending {
        let upload = Arc::new(Upload {
            id: self.id(),
            file: file.to_string(),
            total,
            started: Instant::now(),
            sent: Arc::new(AtomicU64::new(0)),
        });
        lock(&self.uploads).push(upload.clone());
        Sending {
            progress: self.clone(),
            upload,
        }
    }

    /// A run of `job` starts; shown until the guard is dropped.
    pub fn job(self: &Arc<Self>, job: &str) -> Running {
        let run = Arc::new(JobRun {
            id: self.id(),
            job: job.to_string(),
            started: Instant::now(),
        });
        lock(&self.jobs).push(run.clone());
        Running {
            progress: self.clone(),
            id: run.id,
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            admitted: self.admitted.load(Ordering::Relaxed),
            uploaded: self.uploaded.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            uploads: lock(&self.uploads).clone(),
            jobs: lock(&self.jobs).clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An upload in flight, shown while this lives (however the attempt ends).
#[derive(Debug)]
pub struct Sending {
    progress: Arc<Progress>,
    upload: Arc<Upload>,
}

impl Sending {
    /// The counter the upload body adds the bytes it hands over to (relaxed: only shown).
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.upload.sent.clone()
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        lock(&self.progress.uploads).retain(|u| u.id != self.upload.id);
    }
}

/// A job run, shown while this lives.
#[derive(Debug)]
pub struct Running {
    progress: Arc<Progress>,
    id: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.progress.jobs).retain(|j| j.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_and_runs_are_shown_while_their_guards_live() {
        let p = Progress::new();
        p.admitted();
        p.admitted();
        let a = p.upload("a.xml", 100);
        let b = p.upload("b.xml", 10);
        let run = p.job("nightly");
        a.counter().fetch_add(40, Ordering::Relaxed);
        // More than the size (a file that grew, then fails its check) is never shown.
        b.counter().fetch_add(25, Ordering::Relaxed);
        let s = p.snapshot();
        assert_eq!(s.admitted, 2);
        let sent: Vec<(&str, u64, u64)> = s
            .uploads
            .iter()
            .map(|u| (u.file.as_str(), u.sent(), u.total))
            .collect();
        assert_eq!(sent, [("a.xml", 40, 100), ("b.xml", 10, 10)]);
        assert_eq!(s.jobs.len(), 1);
        assert_eq!(s.jobs[0].job, "nightly");
        drop(a);
        drop(run);
        p.settled(Done::Uploaded);
        let s = p.snapshot();
        assert_eq!(s.uploads.len(), 1);
        assert_eq!(s.uploads[0].file, "b.xml");
        assert!(s.jobs.is_empty());
        assert_eq!((s.uploaded, s.rejected, s.failed), (1, 0, 0));
    }
}
