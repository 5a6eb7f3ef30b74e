//! Stage digests: werf's shape (SHA3-224 over `:::`-joined parts, 56 hex characters),
//! slipway's own inputs. Not interchangeable with werf's stages.

use sha3::{Digest as _, Sha3_224};

/// Bumped when the meaning of a digest changes, so old stages stop matching.
pub const CACHE_VERSION: &str = "slipway-1";

pub fn sha3_224(parts: &[&str]) -> String {
    hex::encode(Sha3_224::digest(parts.join(":::").as_bytes()))
}

/// werf's content digest of a newly built stage.
pub fn content_digest(stage_digest: &str, name: &str) -> String {
    sha3_224(&[CACHE_VERSION, &format!("{name}-content"), "", stage_digest])
}

#[cfg(test)]
mod tests {
    use super::sha3_224;

    #[test]
    fn shape() {
        let d = sha3_224(&["a", "b"]);
        assert_eq!(d.len(), 56);
        assert_eq!(d, sha3_224(&["a", "b"]));
        assert_ne!(d, sha3_224(&["a:::b"][..1].iter().copied().chain(["x"]).collect::<Vec<_>>()));
    }
}
