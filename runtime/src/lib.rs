//! Rootless execution for slipway.
//!
//! This crate owns everything that talks to the kernel to run a build step without
//! privileges, and knows nothing of werf:
//!
//! - [`userns`]: re-executing the process inside a new user + mount namespace, mapped
//!   with `newuidmap`/`newgidmap` from `/etc/subuid` and `/etc/subgid` ([`subid`]).
//! - [`mount`]: assembling a rootfs from layer directories (native overlayfs), and
//!   [`fuse`] the same with fuse-overlayfs.
//! - [`sandbox`]: the per-step child in new pid/uts/ipc/mount namespaces, with `/proc`,
//!   a minimal `/dev`, `pivot_root`, rlimits ([`rlimit`]), user, env and working dir.
//!
//! - [`idmap`]: the id mapping this process runs under, and the identity a step can
//!   have in it (a single-id namespace denies setgroups and maps only root).
//! - [`fds`]: no inherited file descriptor reaches a child process or a step.
//! - [`hostfacts`]: what the host offers (sysctls, id-map tools, seccomp, fuse, cgroups)
//!   for `slipway host check`.
//!
//! All `unsafe` lives in [`sys`].

pub mod chown_notify;
pub mod error;
pub mod fds;
pub mod fuse;
pub mod hostfacts;
pub mod idmap;
pub mod mount;
pub mod oci;
mod oci_chown;
pub mod rlimit;
pub mod sandbox;
pub mod subid;
mod sys;
pub mod userns;

pub use error::RuntimeError;
