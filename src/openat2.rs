//! `openat2` asked again when the kernel answers EAGAIN: with `RESOLVE_IN_ROOT` or
//! `RESOLVE_BENEATH`, a rename or mount anywhere on the system while a `..` is resolved
//! makes it give up rather than risk an escape. Asking again is safe; a few tries are
//! enough in practice, and after them EAGAIN is returned as any error.

use nix::fcntl::OpenHow;
use std::os::fd::{AsFd, OwnedFd};

const TRIES: usize = 8;

pub fn openat2(dirfd: impl AsFd, path: &str, how: OpenHow) -> nix::Result<OwnedFd> {
    let mut left = TRIES;
    loop {
        match nix::fcntl::openat2(dirfd.as_fd(), path, how) {
            Err(nix::errno::Errno::EAGAIN) if left > 1 => left -= 1,
            other => return other,
        }
    }
}
