//! Stage digests: werf's shape (SHA3-224, 56 hex characters), slipway's own inputs. Not
//! interchangeable with werf's stages.
//!
//! Every digest is a [`DigestInput`]: a list of named parts written by hand, hashed as
//! one byte string. Nothing derived (`Debug`, serde output) goes in, so renaming a field
//! or a variant never changes a digest; changing what a digest covers means bumping
//! [`CACHE_VERSION`] and the golden tests (`src/frontend/digest_tests.rs`).
//!
//! The byte string:
//!
//! ```text
//! input = part("cache-version", CACHE_VERSION) part("kind", KIND) part*
//! part  = KEY ":::" value "\n"             KEY: [a-z0-9-]+, fixed in the code
//! value = "=" str                          one string
//!       | "[" COUNT "]" str*               a list of COUNT strings
//!       | "{" COUNT "}" (str str)*         COUNT key/value pairs
//! str   = LEN ":" BYTES                    LEN: the decimal byte length of BYTES
//! ```
//!
//! A key has no `:`, every string is length-prefixed and every value says its shape, so
//! the string reads back into exactly one list of parts: no two different inputs hash
//! the same bytes, whatever the values hold (`:::`, newlines, digits). A part may repeat
//! (one group of parts per COPY source, per mount); an absent optional value is an
//! absent part, so `None` and `Some("")` differ.

use sha3::{Digest as _, Sha3_224};

/// Bumped when the meaning of a digest changes, so old stages stop matching.
pub const CACHE_VERSION: &str = "slipway-2";

/// A digest being written part by part (see the module doc for the encoding).
#[must_use = "a digest input does nothing until `finish`"]
pub struct DigestInput {
    hash: Sha3_224,
}

impl DigestInput {
    /// A digest of `kind` (`dockerfile-step`, `image-spec`, ...) under the cache version.
    pub fn new(kind: &'static str) -> DigestInput {
        let mut input = DigestInput { hash: Sha3_224::new() };
        input.str("cache-version", CACHE_VERSION);
        input.str("kind", kind);
        input
    }

    /// One string.
    pub fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        self.key(key);
        self.hash.update(b"=");
        self.string(value);
        self.end()
    }

    /// One string, or no part at all for `None`.
    pub fn opt(&mut self, key: &'static str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.str(key, v);
        }
        self
    }

    /// `true` or `false`.
    pub fn bool(&mut self, key: &'static str, value: bool) -> &mut Self {
        self.str(key, if value { "true" } else { "false" })
    }

    /// A number, in decimal.
    pub fn num(&mut self, key: &'static str, value: u64) -> &mut Self {
        self.str(key, &value.to_string())
    }

    /// A list of strings, in the order given.
    pub fn list<'a>(&mut self, key: &'static str, items: impl IntoIterator<Item = &'a str>) -> &mut Self {
        let items: Vec<&str> = items.into_iter().collect();
        self.key(key);
        self.hash.update(format!("[{}]", items.len()).as_bytes());
        for item in items {
            self.string(item);
        }
        self.end()
    }

    /// Key/value pairs, in the order given (a `BTreeMap` gives them sorted).
    pub fn map<'a>(&mut self, key: &'static str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> &mut Self {
        let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
        self.key(key);
        self.hash.update(format!("{{{}}}", pairs.len()).as_bytes());
        for (k, v) in pairs {
            self.string(k);
            self.string(v);
        }
        self.end()
    }

    /// The digest: 56 lowercase hex characters.
    pub fn finish(&mut self) -> String {
        hex::encode(std::mem::take(&mut self.hash).finalize())
    }

    fn key(&mut self, key: &'static str) {
        debug_assert!(
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "digest key {key}"
        );
        self.hash.update(key.as_bytes());
        self.hash.update(b":::");
    }

    fn string(&mut self, value: &str) {
        self.hash.update(format!("{}:", value.len()).as_bytes());
        self.hash.update(value.as_bytes());
    }

    fn end(&mut self) -> &mut Self {
        self.hash.update(b"\n");
        self
    }
}

/// werf's content digest of a newly built stage (the `werf-stage-content-digest` label).
pub fn content_digest(stage_digest: &str, name: &str) -> String {
    DigestInput::new("content").str("stage", stage_digest).str("name", name).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha3(bytes: &str) -> String {
        hex::encode(Sha3_224::digest(bytes.as_bytes()))
    }

    /// The encoding, byte for byte, as the module doc draws it.
    #[test]
    fn encodes_parts_as_documented() {
        let got = DigestInput::new("test")
            .str("a", "x:::y\n")
            .opt("b", None)
            .opt("c", Some(""))
            .bool("d", true)
            .num("e", 42)
            .list("f", ["1", "", "22"])
            .map("g", [("k", "v=w")])
            .finish();
        let want = "cache-version:::=9:slipway-2\nkind:::=4:test\na:::=6:x:::y\n\nc:::=0:\nd:::=4:true\n\
                    e:::=2:42\nf:::[3]1:10:2:22\ng:::{1}1:k3:v=w\n";
        assert_eq!(got, sha3(want));
    }

    /// Values that joining with `:::` could not tell apart hash differently.
    #[test]
    fn values_never_run_into_each_other() {
        let two = |a: &str, b: &str| DigestInput::new("t").str("a", a).str("a", b).finish();
        assert_ne!(two("x:::", "y"), two("x", ":::y"));
        assert_ne!(two("x\na:::=1:y", ""), two("x", "y"));
        let list = |items: &[&str]| DigestInput::new("t").list("l", items.iter().copied()).finish();
        assert_ne!(list(&["ab", "c"]), list(&["a", "bc"]));
        assert_ne!(list(&[]), list(&[""]));
        assert_ne!(DigestInput::new("t").opt("o", None).finish(), DigestInput::new("t").opt("o", Some("")).finish());
    }

    #[test]
    fn content_digest_is_pinned() {
        let d = content_digest("0123", "3-RUN");
        assert_eq!(d.len(), 56);
        assert_eq!(d, sha3("cache-version:::=9:slipway-2\nkind:::=7:content\nstage:::=4:0123\nname:::=5:3-RUN\n"));
    }
}
