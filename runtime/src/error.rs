//! The crate's error type.

use std::path::PathBuf;

/// Errors from entering namespaces, mounting and running sandboxed steps.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{action}: {source}")]
    Sys {
        action: String,
        #[source]
        source: nix::Error,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot create a user namespace: {source}; rootless builds need unprivileged user \
         namespaces: on a host, sysctl user.max_user_namespaces > 0 (and \
         kernel.unprivileged_userns_clone=1 where it exists); in a pod or container, a seccomp \
         profile and AppArmor that allow them (Kubernetes `securityContext.seccompProfile.type: \
         Unconfined`, podman/docker `--security-opt seccomp=unconfined`)"
    )]
    UserNamespace {
        #[source]
        source: nix::Error,
    },
    #[error(
        "{tool} failed for pid {pid}: {message}; check /etc/subuid and /etc/subgid and that {tool} is installed (Debian package uidmap)"
    )]
    IdMap { tool: &'static str, pid: i32, message: String },
    #[error(
        "mounting overlayfs at {target}: {source}; native rootless overlayfs needs Linux >= 5.11 \
         (with userxattr); or use WERF_BUILDAH_STORAGE_DRIVER=vfs (plain copies)"
    )]
    Overlay {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("mounting fuse-overlayfs at {target}: {message}")]
    FuseOverlay { target: PathBuf, message: String },
    #[error("invalid ulimit {spec:?}: {reason}")]
    Ulimit { spec: String, reason: String },
    #[error("{0}")]
    Other(String),
}

impl RuntimeError {
    /// Whether this is a mount of a rootfs that the kernel or the mount program refused
    /// (so another way of assembling the rootfs may still work).
    pub fn is_mount_refused(&self) -> bool {
        matches!(self, RuntimeError::Overlay { .. } | RuntimeError::FuseOverlay { .. })
    }

    pub(crate) fn sys(action: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let action = action.into();
        move |source| RuntimeError::Sys { action, source }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Io { action, path, source }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
