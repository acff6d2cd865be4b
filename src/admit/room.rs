//! Room in the state file system for admission's copies: the free space above
//! `agent.min_free_space`, less what the copies being made at this moment still need.
//!
//! Up to 32 files are admitted at once. Each one checks room and reserves its size in one step
//! ([`Reservations::reserve`]), and gives the reservation back once its copy is written (from
//! then on the file system counts it) or removed. Without this, files checked at the same
//! moment each saw the whole free space, and together ran the disk out of space, below the
//! floor that the ledger, `status.json` and the uploads' records need.
//!
//! The count is on the safe side: a copy half written is counted by the file system and by its
//! reservation. A file may then wait for the next look while there was room for it; no copy
//! is started that the floor cannot take.

use std::io;
use std::path::Path;
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

/// Whether a copy of a file fits.
#[derive(Debug, PartialEq, Eq)]
pub enum Fit {
    /// It fits above the floor with every copy being made.
    Fits,
    /// The file system itself is below the floor: admission as a whole waits.
    BelowFloor,
    /// Above the floor, but not with this copy too: it waits. `left` is what is free above the
    /// floor once the copies being made are counted.
    Waits { left: u64 },
}

/// Whether a copy of `size` bytes fits in `free` bytes above `min`, with `reserved` bytes
/// still to be written by the copies being made.
pub fn fit(room: &Room, reserved: u64, size: u64) -> Fit {
    if room.free < room.min {
        return Fit::BelowFloor;
    }
    let left = (room.free - room.min).saturating_sub(reserved);
    if left < size {
        Fit::Waits { left }
    } else {
        Fit::Fits
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
        Ok(Reserved { of: self, size })
    }

    /// The bytes reserved now.
    pub fn reserved(&self) -> u64 {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A copy's reservation, given back when dropped.
pub struct Reserved<'a> {
    of: &'a Reservations,
    size: u64,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let mut bytes = self.of.lock();
        *bytes = bytes.saturating_sub(self.size);
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
        assert_eq!(fit(&at(10 * MIB, MIB), 0, 9 * MIB), Fit::Fits);
        assert_eq!(
            fit(&at(10 * MIB, MIB), 0, 9 * MIB + 1),
            Fit::Waits { left: 9 * MIB }
        );
        assert_eq!(
            fit(&at(10 * MIB, MIB), 5 * MIB, 5 * MIB),
            Fit::Waits { left: 4 * MIB }
        );
        // More reserved than is free above the floor: nothing is left, not an underflow.
        assert_eq!(fit(&at(10 * MIB, MIB), 20 * MIB, 1), Fit::Waits { left: 0 });
        // Below the floor is said as such, whatever the size.
        assert_eq!(fit(&at(MIB - 1, MIB), 0, 0), Fit::BelowFloor);
        assert_eq!(fit(&at(MIB, MIB), 0, 0), Fit::Fits);
    }

    #[test]
    fn copies_checked_at_once_share_the_room_and_give_it_back() {
        let r = Reservations::default();
        let room = at(10 * MIB, MIB);
        let check = |size| {
            move |reserved| match fit(&room, reserved, size) {
                Fit::Fits => Ok(()),
                no => Err(no),
            }
        };
        let a = r.reserve(4 * MIB, check(4 * MIB)).unwrap();
        let b = r.reserve(4 * MIB, check(4 * MIB)).unwrap();
        // The third would have fitted alone: with the two being made, it waits.
        assert_eq!(
            r.reserve(4 * MIB, check(4 * MIB)).err(),
            Some(Fit::Waits { left: MIB })
        );
        assert_eq!(r.reserved(), 8 * MIB, "a refused check reserves nothing");
        drop(a);
        assert_eq!(r.reserved(), 4 * MIB);
        let c = r.reserve(4 * MIB, check(4 * MIB)).unwrap();
        drop((b, c));
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
                        let got = r.reserve(MIB, |reserved| match fit(&room, reserved, MIB) {
                            Fit::Fits => Ok(()),
                            _ => Err(()),
                        });
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
