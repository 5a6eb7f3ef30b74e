//! slipway's integration tests: one binary, a module per topic, a fresh directory per test.
//!
//! The tests that enter namespaces run the real `slipway` binary as the current user, who
//! must be unprivileged with subordinate id ranges (scripts/test.sh runs the suite as
//! such a user). Registry tests use the real local registry named by
//! `SLIPWAY_TEST_REGISTRY`. With `SLIPWAY_REQUIRE_PRIVILEGED_TESTS=1` (CI) a test that
//! cannot run fails instead of skipping.

mod architecture;
mod build;
mod cli;
mod common;
mod config;
mod conformance;
mod dev;
mod dockerfile;
mod export;
mod fds;
mod giterminism;
mod host;
mod host_cleanup;
mod matrix;
mod pod;
mod proxy;
mod registry;
mod repo;
mod report;
mod rootfs;
mod sandbox;
mod security;
mod single_id;
mod stapel;
mod stapel_import;
mod stapel_remote;
mod werf_fixtures;
