//! The watch directories as hostile ground. Whoever can write a watch directory can put
//! anything there at any moment: symbolic links (to `/`, to the agent's own `queue/`), FIFOs,
//! devices, hard links, sparse giants, and a different file under the same name between two
//! system calls. This module is the only way the agent touches what lies below a watch root,
//! and it holds to three rules:
//!
//! 1. **Resolved from a handle, never followed** ([`root`]): a path below a root is opened from
//!    a descriptor of the root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, or the
//!    same checks one component at a time where `openat2` is missing. No symbolic link is
//!    followed at any depth; `..` is never accepted. The walk ([`walk`]) lists directories the
//!    same way.
//! 2. **Only regular files are opened**, and never blocking: a FIFO, socket or device is skipped
//!    on its type before any `open`, and the descriptor is checked again after it.
//! 3. **What was checked is what is moved** ([`checked`]): a file is renamed, removed or copied
//!    through the descriptors it was checked with (its directory and itself), with its device
//!    and inode compared, never by opening its path again. A copy reads the open descriptor,
//!    stops at the size that was checked, and keeps holes ([`copy`]).

pub mod checked;
pub mod copy;
pub mod root;
pub mod walk;

pub use checked::{CheckedFile, Removal};
pub use root::{FileId, OpenError, RelPath, Root};
