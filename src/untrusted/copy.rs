//! Copying an already-open file, for the moves that cross file systems: from its descriptor (the
//! file that was checked, not whatever its name leads to now), no further than the size that was
//! checked (a file that grows, or a device swapped in, cannot make the copy endless), and with
//! its holes kept (`truncate -s 512M` costs 512 MiB of nobody's disk here either).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use rustix::fs::SeekFrom;

use super::root::libc_errno;

const CHUNK: usize = 256 * 1024;

/// The next stretch of data in `src` at or after `pos` and before `end`: `None` when only a hole
/// is left. A file system that cannot say (`EINVAL`) has data everywhere.
fn next_data(src: &File, pos: u64, end: u64) -> io::Result<Option<(u64, u64)>> {
    let start = match rustix::fs::seek(src, SeekFrom::Data(pos)) {
        Ok(p) => p,
        // ENXIO: nothing but a hole from `pos` to the end of the file.
        Err(e) if e == rustix::io::Errno::NXIO => return Ok(None),
        Err(e) if e.raw_os_error() == libc_errno::EINVAL => return Ok(Some((pos, end))),
        Err(e) => return Err(e.into()),
    };
    // Whatever the file claims, the answer moves forward and stays within `[pos, end)`.
    let start = start.max(pos);
    if start >= end {
        return Ok(None);
    }
    let stop = match rustix::fs::seek(src, SeekFrom::Hole(start)) {
        Ok(p) if p > start => p.min(end),
        _ => end,
    };
    Ok(Some((start, stop)))
}

/// Copy the bytes `[from, to)` of `src` to the same offsets of `dst`, skipping holes, and make
/// `dst` exactly `to` long. Returns how many bytes of data were read: fewer than the data in
/// that range when `src` shrank meanwhile (the caller's check of the file notices).
pub fn sparse(src: &File, dst: &File, from: u64, to: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(to.saturating_sub(from)).unwrap_or(CHUNK))];
    let mut pos = from;
    let mut copied = 0u64;
    while pos < to {
        let Some((start, stop)) = next_data(src, pos, to)? else {
            break;
        };
        let mut at = start;
        while at < stop {
            let want = usize::try_from(stop - at).unwrap_or(CHUNK).min(buf.len());
            let n = src.read_at(&mut buf[..want], at)?;
            if n == 0 {
                // Shorter than it was: stop here; the size check after the copy says so.
                dst.set_len(to)?;
                return Ok(copied);
            }
            dst.write_all_at(&buf[..n], at)?;
            at += n as u64;
            copied += n as u64;
        }
        pos = stop;
    }
    dst.set_len(to)?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_sparse_file_stays_sparse_and_whole() {
        let d = tempfile::tempdir().unwrap();
        let src_path = d.path().join("sparse.xml");
        let src = File::create(&src_path).unwrap();
        src.write_all_at(b"<head/>", 0).unwrap();
        src.write_all_at(b"<tail/>", 64 << 20).unwrap();
        src.set_len(128 << 20).unwrap();
        drop(src);
        let src = File::open(&src_path).unwrap();
        let dst_path = d.path().join("copy");
        let dst = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&dst_path)
            .unwrap();
        let copied = sparse(&src, &dst, 0, 128 << 20).unwrap();
        let m = std::fs::metadata(&dst_path).unwrap();
        assert_eq!(m.len(), 128 << 20, "kept whole");
        assert!(
            m.blocks() * 512 < 4 << 20,
            "holes kept: {} bytes allocated",
            m.blocks() * 512
        );
        assert!(copied < 4 << 20);
        let mut head = [0u8; 7];
        dst.read_at(&mut head, 0).unwrap();
        assert_eq!(&head, b"<head/>");
        dst.read_at(&mut head, 64 << 20).unwrap();
        assert_eq!(&head, b"<tail/>");
    }

    #[test]
    fn the_copy_stops_at_the_checked_size() {
        let d = tempfile::tempdir().unwrap();
        let src = File::open("/dev/zero").unwrap();
        let dst = File::create(d.path().join("copy")).unwrap();
        // /dev/zero never ends; the copy ends at the size it was given.
        sparse(&src, &dst, 0, 1 << 20).unwrap();
        assert_eq!(dst.metadata().unwrap().len(), 1 << 20);
        let grown = d.path().join("grown");
        std::fs::write(&grown, vec![b'x'; 3000]).unwrap();
        let src = File::open(&grown).unwrap();
        let dst = File::create(d.path().join("copy2")).unwrap();
        assert_eq!(sparse(&src, &dst, 1000, 2000).unwrap(), 1000);
        assert_eq!(dst.metadata().unwrap().len(), 2000);
    }
}
