//! Front ends: each turns one kind of werf.yaml image into the stages the engine
//! (`crate::engine`) looks up, builds and stores.
//!
//! - `dockerfile`: Dockerfile images (werf's `dockerfile:` images), BuildKit's language.
//! - `stapel`: Stapel images (werf's `from:`/`shell:`/`docker:` images; `git:`, `import:`
//!   and the rest are refused so far).
//! - `image_spec`: werf's `imageSpec` stage, which every front end ends with.

pub mod dockerfile;
pub mod image_spec;
pub mod stapel;

#[cfg(test)]
mod digest_tests;
