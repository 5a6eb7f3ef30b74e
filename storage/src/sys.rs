//! The crate's only `unsafe`: extended attributes, which `nix` does not wrap.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstring(b: &[u8]) -> nix::Result<CString> {
    CString::new(b).map_err(|_| nix::errno::Errno::EINVAL)
}

/// `fsetxattr(2)`.
pub(crate) fn fsetxattr(fd: impl AsFd, name: &str, value: &[u8]) -> nix::Result<()> {
    let n = cstring(name.as_bytes())?;
    // SAFETY: `n` is NUL-terminated and `value` is a valid slice for the call's duration.
    let rc = unsafe { libc::fsetxattr(fd.as_fd().as_raw_fd(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    nix::errno::Errno::result(rc).map(drop)
}

/// `llistxattr(2)`: attribute names of `path` (not following a final symlink).
pub(crate) fn llistxattr(path: &Path) -> nix::Result<Vec<Vec<u8>>> {
    let p = cstring(path.as_os_str().as_bytes())?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `p` is NUL-terminated; `buf` is writable for `buf.len()` bytes.
        let rc = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        match nix::errno::Errno::result(rc) {
            Ok(n) => {
                buf.truncate(n as usize);
                return Ok(buf.split(|b| *b == 0).filter(|s| !s.is_empty()).map(<[u8]>::to_vec).collect());
            }
            Err(nix::errno::Errno::ERANGE) => buf.resize(buf.len() * 4, 0),
            Err(nix::errno::Errno::ENOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
}

/// `lgetxattr(2)`.
pub(crate) fn lgetxattr(path: &Path, name: &[u8]) -> nix::Result<Vec<u8>> {
    let p = cstring(path.as_os_str().as_bytes())?;
    let n = cstring(name)?;
    // SAFETY: `p`, `n` are NUL-terminated; `buf` is writable for its length.
    grow_read(|buf| unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// `lsetxattr(2)`.
pub(crate) fn lsetxattr(path: &Path, name: &[u8], value: &[u8]) -> nix::Result<()> {
    let p = cstring(path.as_os_str().as_bytes())?;
    let n = cstring(name)?;
    // SAFETY: `p`, `n` are NUL-terminated and `value` is a valid slice for the call.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    nix::errno::Errno::result(rc).map(drop)
}

/// `getxattr(2)`, following symlinks (for `/proc/self/fd/N` of an `O_PATH` fd).
pub(crate) fn getxattr(path: &Path, name: &[u8]) -> nix::Result<Vec<u8>> {
    let p = cstring(path.as_os_str().as_bytes())?;
    let n = cstring(name)?;
    // SAFETY: `p`, `n` are NUL-terminated; `buf` is writable for its length.
    grow_read(|buf| unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// `fgetxattr(2)`.
pub(crate) fn fgetxattr(fd: impl AsFd, name: &str) -> nix::Result<Vec<u8>> {
    let n = cstring(name.as_bytes())?;
    let fd = fd.as_fd().as_raw_fd();
    // SAFETY: `n` is NUL-terminated; `buf` is writable for its length.
    grow_read(|buf| unsafe { libc::fgetxattr(fd, n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// A value read by `call` into a buffer it fills (an xattr call's return value: the
/// length, or -1 with errno), grown fourfold while the call answers ERANGE.
fn grow_read(mut call: impl FnMut(&mut [u8]) -> isize) -> nix::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match nix::errno::Errno::result(call(&mut buf)) {
            Ok(len) => {
                buf.truncate(len as usize);
                return Ok(buf);
            }
            Err(nix::errno::Errno::ERANGE) => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e),
        }
    }
}

/// `fremovexattr(2)`.
pub(crate) fn fremovexattr(fd: impl AsFd, name: &str) -> nix::Result<()> {
    let n = cstring(name.as_bytes())?;
    // SAFETY: `n` is NUL-terminated; the fd is valid for the call.
    let rc = unsafe { libc::fremovexattr(fd.as_fd().as_raw_fd(), n.as_ptr()) };
    nix::errno::Errno::result(rc).map(drop)
}

/// `lremovexattr(2)`.
pub(crate) fn lremovexattr(path: &Path, name: &[u8]) -> nix::Result<()> {
    let p = cstring(path.as_os_str().as_bytes())?;
    let n = cstring(name)?;
    // SAFETY: `p`, `n` are NUL-terminated.
    let rc = unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) };
    nix::errno::Errno::result(rc).map(drop)
}
