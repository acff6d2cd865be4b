//! Room in the state file system for admission's copies: the free space above
//! `agent.min_free_space`, less what the copies being made at this moment have still to write.
//!
//! Up to 32 files are admitted at once. Each one checks room and reserves its size in one step
//! ([`Reservations::reserve`]); its writer gives the reservation back as the bytes land (from
//! then on the file system counts them: ext4, XFS and tmpfs count written data in their free
//! space at once), and the rest goes back once the copy is whole (or given up).
//! Without this, files checked at the same moment each saw the whole free space, and together
//! ran the disk out of space, below the floor that the ledger, `status.json` and the uploads'
//! records need.
//!
//! Pausing admission (below the floor) and resuming it look at the file system alone: the
//! reservations decide which copy may start, not whether admission as a whole waits.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Free space in the state file system, and the least admission leaves there.
#[derive(Clone, Copy, Debug)]
pub struct Room {
    pub free: u64,
    pub min: u64,
}

/// How much room the file system of `dir` has, and `min_free_space` for it (`None`: 1 GiB or
/// 5% of its size, whichever is less).
pub fn room(dir: &Path, min_free_space: Option<u64>) -> io::Result<Room> {
    let s = rustix::fs::statvfs(dir)?;
    let free = s.f_bavail.saturating_mul(s.f_frsize);
    let size = s.f_blocks.saturating_mul(s.f_frsize);
    Ok(Room {
        free,
        min: min_free_space.unwrap_or_else(|| (1u64 << 30).min(size / 20)),
    })
}

/// Why a copy of a file does not fit.
#[derive(Debug, PartialEq, Eq)]
pub enum Unfit {
    /// The file system itself is below the floor: admission as a whole waits.
    BelowFloor,
    /// It would fit alone, but not beside the copies being made: it waits until they are
    /// written (soon).
    WaitsForCopies,
    /// It does not fit above the floor even alone: it waits until room is made.
    WaitsForRoom,
}

/// Whether a copy of `size` bytes fits in `room`, with `reserved` bytes still to be written by
/// the copies being made.
pub fn fit(room: &Room, reserved: u64, size: u64) -> Result<(), Unfit> {
    if room.free < room.min {
        return Err(Unfit::BelowFloor);
    }
    let above = room.free - room.min;
    if above < size {
        Err(Unfit::WaitsForRoom)
    } else if above - size < reserved {
        Err(Unfit::WaitsForCopies)
    } else {
        Ok(())
    }
}

/// The bytes reserved by the copies being made.
#[derive(Default)]
pub struct Reservations {
    bytes: Mutex<u64>,
}

impl Reservations {
    /// Reserves `size` bytes when `check`, given what is reserved already, says the copy fits:
    /// the check and the reservation are one step, so no two copies count the same room.
    pub fn reserve<E>(
        &self,
        size: u64,
        check: impl FnOnce(u64) -> Result<(), E>,
    ) -> Result<Reserved<'_>, E> {
        let mut bytes = self.lock();
        check(*bytes)?;
        *bytes = bytes.saturating_add(size);
        Ok(Reserved {
            of: self,
            left: AtomicU64::new(size),
        })
    }

    /// The bytes reserved now (tests).
    #[cfg(test)]
    pub fn reserved(&self) -> u64 {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A copy's reservation: given back as its bytes are written, and whatever is left when it is
/// dropped.
pub struct Reserved<'a> {
    of: &'a Reservations,
    left: AtomicU64,
}

impl Reserved<'_> {
    /// `n` more bytes of the copy are written (or were a hole): the file system counts them now.
    pub fn written(&self, n: u64) {
        let mut bytes = self.of.lock();
        // Changed only under the lock: the total and each reservation's part stay equal.
        let left = self.left.load(Ordering::Relaxed);
        let done = n.min(left);
        self.left.store(left - done, Ordering::Relaxed);
        *bytes = bytes.saturating_sub(done);
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let left = *self.left.get_mut();
        let mut bytes = self.of.lock();
        *bytes = bytes.saturating_sub(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn at(free: u64, min: u64) -> Room {
        Room { free, min }
    }

    #[test]
    fn a_copy_fits_only_above_the_floor_with_the_copies_being_made() {
        let room = at(10 * MIB, MIB);
        assert_eq!(fit(&room, 0, 9 * MIB), Ok(()));
        assert_eq!(fit(&room, 0, 9 * MIB + 1), Err(Unfit::WaitsForRoom));
        // Room for it alone, not beside what the others have still to write: not for long.
        assert_eq!(fit(&room, 5 * MIB, 5 * MIB), Err(Unfit::WaitsForCopies));
        assert_eq!(fit(&room, 4 * MIB, 5 * MIB), Ok(()));
        // More reserved than is free above the floor is no underflow.
        assert_eq!(fit(&room, 20 * MIB, 1), Err(Unfit::WaitsForCopies));
        // Too large even alone: it waits for room, however much the others hold.
        assert_eq!(fit(&room, 20 * MIB, 10 * MIB), Err(Unfit::WaitsForRoom));
        // Below the floor is said as such, whatever the size.
        assert_eq!(fit(&at(MIB - 1, MIB), 0, 0), Err(Unfit::BelowFloor));
        assert_eq!(fit(&at(MIB, MIB), 0, 0), Ok(()));
    }

    #[test]
    fn copies_checked_at_once_share_the_room_and_give_it_back_as_they_write() {
        let r = Reservations::default();
        let room = at(10 * MIB, MIB);
        let check = |size| move |reserved| fit(&room, reserved, size);
        let a = r.reserve(4 * MIB, check(4 * MIB)).unwrap();
        let b = r.reserve(4 * MIB, check(4 * MIB)).unwrap();
        // The third would have fitted alone: with the two being made, it waits.
        assert_eq!(
            r.reserve(4 * MIB, check(4 * MIB)).err(),
            Some(Unfit::WaitsForCopies)
        );
        assert_eq!(r.reserved(), 8 * MIB, "a refused check reserves nothing");
        // What a copy has written is counted by the file system, no longer by its reservation
        // (more than it reserved gives back only what it reserved).
        a.written(MIB);
        assert_eq!(r.reserved(), 7 * MIB);
        a.written(5 * MIB);
        assert_eq!(r.reserved(), 4 * MIB);
        drop(a);
        assert_eq!(
            r.reserved(),
            4 * MIB,
            "a written copy gives back nothing more"
        );
        let c = r.reserve(4 * MIB, check(4 * MIB)).unwrap();
        b.written(MIB);
        drop(b);
        assert_eq!(
            r.reserved(),
            4 * MIB,
            "the rest of b went back when it ended"
        );
        drop(c);
        assert_eq!(r.reserved(), 0);
    }

    #[test]
    fn threads_checking_at_once_never_hold_more_than_the_room() {
        let r = Reservations::default();
        let room = at(3 * MIB, 0);
        let held = std::sync::atomic::AtomicU64::new(0);
        let most = std::sync::atomic::AtomicU64::new(0);
        use std::sync::atomic::Ordering::SeqCst;
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..500 {
                        let got = r.reserve(MIB, |reserved| fit(&room, reserved, MIB));
                        if let Ok(g) = got {
                            most.fetch_max(held.fetch_add(MIB, SeqCst) + MIB, SeqCst);
                            std::thread::yield_now();
                            held.fetch_sub(MIB, SeqCst);
                            drop(g);
                        }
                    }
                });
            }
        });
        let most = most.load(SeqCst);
        assert!(most <= 3 * MIB, "{most} bytes held at once in 3 MiB");
        assert!(most >= MIB, "no reservation was ever taken");
        assert_eq!(r.reserved(), 0);
    }
}
