//! Rootless execution.
