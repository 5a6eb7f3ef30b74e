//! Extended attributes for copies made outside this crate (Stapel `import`): the
//! attributes of a path a layer may carry ([`crate::unpack::keep_xattr`]), and setting
//! one on an open file.

use std::os::fd::AsFd;
use std::path::Path;

/// The xattrs of `path` (a final symlink not followed) that a layer may carry, sorted by
/// name. A filesystem without xattrs has none.
pub fn kept(path: &Path) -> nix::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in crate::sys::llistxattr(path)? {
        let n = String::from_utf8_lossy(&name).into_owned();
        if !crate::unpack::keep_xattr(&n) {
            continue;
        }
        match crate::sys::lgetxattr(path, &name) {
            Ok(v) => out.push((n, v)),
            // Removed between the listing and the read.
            Err(nix::errno::Errno::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// `fsetxattr(2)` of one attribute on an open file or directory.
pub fn set(fd: impl AsFd, name: &str, value: &[u8]) -> nix::Result<()> {
    crate::sys::fsetxattr(fd, name, value)
}
