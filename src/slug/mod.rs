//! werf's slugs and its legacy murmur hash: how an image name becomes something that may
//! stand in a Docker tag or repository path (`%image_slug%`, `%image_safe_slug%`), and
//! the export tag templates that use them.
//!
//! Everything here must give werf's exact output: a werf user's tags, and the names a
//! werf project already pushed, must not change when the project moves to slipway.
//!
//! ```text
//! slugify("Hello, World!")   → hello-world                   per-character table, runs of '-' collapsed
//! slug("Привет мир")         → privyet-mir                   %image_slug%: slugify, no limit
//! docker_tag_slug("da/ta")   → da-ta-afa96f8                 %image_safe_slug%: kept if already a
//! docker_tag_slug("backend") → backend                         valid tag, else slug + "-" + hash
//! limited_slug("A", 42)      → a-54dcf7ce                    the hash is of the raw name, so names
//!                                                            that slugify alike still differ
//! ```

mod custom_tag;
mod table;
mod template;

pub use custom_tag::CustomTag;
pub use template::{TagTemplate, render_all, validate_all};

/// Longest Docker tag, the cap of [`docker_tag_slug`].
pub const DOCKER_TAG_MAX_LEN: usize = 128;
/// werf's legacy default cap for [`limited_slug`].
#[allow(dead_code)] // werf's LimitedSlug, for helm values and mount dirs (later issues)
pub const DEFAULT_SLUG_MAX_LEN: usize = 42;

/// MurmurHash3, x86 32-bit variant.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let scramble = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);

    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h = (h ^ scramble(k)).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail.iter().rev().fold(0u32, |k, &b| (k << 8) | u32::from(b));
        h ^= scramble(k);
    }
    // The reference implementation mixes in the length as a 32-bit value.
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// werf's `LegacyMurmurHash`: murmur3-32 (seed 0) of the parts joined with `:::`, in
/// lowercase hex *without* zero padding, so 1 to 8 characters.
pub fn legacy_murmur_hash(parts: &[&str]) -> String {
    format!("{:x}", murmur3_32(parts.join(":::").as_bytes(), 0))
}

/// Each character through the transliteration table (unknown ones dropped), then runs of
/// `-` collapsed and `-` trimmed from both ends. The result is lowercase ASCII letters,
/// digits and single inner dashes.
pub fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for piece in s.chars().filter_map(table::transliterate) {
        if piece != "-" {
            out.push_str(piece);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    if out.ends_with('-') {
        out.pop();
    }
    out
}

/// `%image_slug%` (werf's `Slug`): [`slugify`] with no length limit and no hash.
pub fn slug(s: &str) -> String {
    slugify(s)
}

/// `%image_safe_slug%` (werf's `DockerTag`): `s` itself when it already is a valid Docker
/// tag (`[\w][\w.-]*`, at most 128 bytes) or empty, else a hashed slug of at most 128
/// bytes.
pub fn docker_tag_slug(s: &str) -> String {
    if s.is_empty() || slipway_storage::reference::is_valid_tag(s) {
        s.to_owned()
    } else {
        hashed_slug(s, DOCKER_TAG_MAX_LEN)
    }
}

/// werf's `LimitedSlug`: `s` itself when it is empty or already a slug of at most `max`
/// bytes, else a hashed slug of at most `max` bytes.
///
/// `max` must leave room for `-` and the hash (up to 9 bytes); werf panics when it does
/// not, this returns `-` + hash, longer than `max`.
///
/// A legacy rule keeps the function idempotent on its own output: [`hashed_slug`] can crop
/// right after a `-`, giving `…delivery--852739dc`, which is not a slug. So a string of at
/// most `max` bytes with exactly one `--` that becomes a slug when that `--` is made `-` is
/// also returned unchanged. (`--` is counted without overlap: `a---b` has one, but turns
/// into `a--b`, which is no slug, so it is hashed.)
#[allow(dead_code)] // see DEFAULT_SLUG_MAX_LEN
pub fn limited_slug(s: &str, max: usize) -> String {
    if is_limited_slug(s, max) { s.to_owned() } else { hashed_slug(s, max) }
}

#[allow(dead_code)] // see DEFAULT_SLUG_MAX_LEN
fn is_limited_slug(s: &str, max: usize) -> bool {
    if s.is_empty() {
        return true;
    }
    if s.len() > max {
        return false;
    }
    if slugify(s) == s {
        return true;
    }
    if s.matches("--").count() != 1 {
        return false;
    }
    let single = s.replacen("--", "-", 1);
    slugify(&single) == single
}

/// werf's `slug(data, maxSize)`: the slug cropped to leave room for `-` and the hash of
/// the raw input, then `-` and that hash.
///
/// The crop is not trimmed, so it may end in `-` and give `--` before the hash; werf's
/// code meant to drop such a dash but tests the start of the cropped part instead of its
/// end, which after [`slugify`] is never a dash. The output is kept as werf's (see
/// [`limited_slug`] for the rule that makes it idempotent).
fn hashed_slug(s: &str, max: usize) -> String {
    let slugged = slugify(s);
    let hash = legacy_murmur_hash(&[s]);
    if slugged.is_empty() {
        return hash;
    }
    // Byte slicing is safe: slugify's output is ASCII.
    let keep = max.saturating_sub(hash.len() + 1).min(slugged.len());
    format!("{}-{hash}", &slugged[..keep])
}

/// Longest Kubernetes namespace (a DNS-1123 label).
pub const KUBERNETES_NAMESPACE_MAX_LEN: usize = 63;
/// Longest Helm release name werf accepts.
pub const HELM_RELEASE_MAX_LEN: usize = 53;

/// werf's `KubernetesNamespace` (`slugify -f kubernetes-namespace`): `s` itself when
/// empty or a DNS-1123 label of at most 63 bytes, else a hashed slug of at most 63.
pub fn kubernetes_namespace(s: &str) -> String {
    if s.is_empty() || (s.len() <= KUBERNETES_NAMESPACE_MAX_LEN && is_dns1123_label(s)) {
        s.to_owned()
    } else {
        hashed_slug(s, KUBERNETES_NAMESPACE_MAX_LEN)
    }
}

/// werf's `HelmRelease` (`slugify -f helm-release`): `s` itself when empty or a DNS-1123
/// subdomain of at most 53 bytes, else a hashed slug of at most 53.
pub fn helm_release(s: &str) -> String {
    if s.is_empty() || (s.len() <= HELM_RELEASE_MAX_LEN && is_dns1123_subdomain(s)) {
        s.to_owned()
    } else {
        hashed_slug(s, HELM_RELEASE_MAX_LEN)
    }
}

/// Kubernetes' `IsDNS1123Label`: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 bytes.
fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && b.len() <= 63 && alnum(&b[0]) && alnum(&b[b.len() - 1]) && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// Kubernetes' `IsDNS1123Subdomain`: labels joined by `.`, at most 253 bytes.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
            !b.is_empty() && alnum(&b[0]) && alnum(&b[b.len() - 1]) && b.iter().all(|c| alnum(c) || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// werf's own examples (`werf slugify --help`) and edge cases of the two validators.
    #[test]
    fn slugify_formats() {
        type Case = (&'static str, fn(&str) -> String, &'static str);
        let cases: &[Case] = &[
            ("feature-fix-2", kubernetes_namespace, "feature-fix-2"),
            ("branch/one/!@#4.4-3", kubernetes_namespace, "branch-one-4-4-3-4fe08955"),
            ("My_branch", kubernetes_namespace, "my-branch-8ebf2d1d"),
            ("", kubernetes_namespace, ""),
            ("a.b", kubernetes_namespace, "a-b-"),
            (
                "looooooooooooooooooooooooooooooooooooooooooong_string",
                helm_release,
                "looooooooooooooooooooooooooooooooooooooooooo-b150a895",
            ),
            ("my.release-1", helm_release, "my.release-1"),
            ("helo/ehlo", docker_tag_slug, "helo-ehlo-b6f6ab1f"),
            ("16.04", docker_tag_slug, "16.04"),
        ];
        for (input, f, want) in cases {
            let got = f(input);
            if want.ends_with('-') {
                assert!(got.starts_with(want) && got != *input, "{input:?}: {got}");
            } else {
                assert_eq!(&got, want, "{input:?}");
            }
        }
    }

    #[test]
    fn murmur3_known_vectors() {
        let cases: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514e_28b7),
            (b"", 0xffff_ffff, 0x81f1_6f39),
            (b"\0\0\0\0", 0, 0x2362_f9de),
            (b"a", 0, 0x3c25_69b2),
            (b"ab", 0, 0x9bbf_d75f),
            (b"abc", 0, 0xb3dd_93fa),
            (b"abcd", 0, 0x43ed_676a),
            (b"hello", 0, 0x248b_fa47),
            (b"Hello, world!", 0x9747_b28c, 0x2488_4cba),
            (b"The quick brown fox jumps over the lazy dog", 0, 0x2e4f_f723),
        ];
        for (data, seed, want) in cases {
            assert_eq!(murmur3_32(data, *seed), *want, "{:?} seed {seed:#x}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn legacy_murmur_hash_joins_and_does_not_pad() {
        let cases: &[(&[&str], &str)] = &[
            (&["hello"], "248bfa47"),
            (&[""], "0"),
            (&["da/ta"], "afa96f8"), // 7 digits: no zero padding
            (&["a", "b"], &format!("{:x}", murmur3_32(b"a:::b", 0))),
        ];
        for (parts, want) in cases {
            assert_eq!(legacy_murmur_hash(parts), *want, "{parts:?}");
        }
    }

    #[test]
    fn slugifies() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("backend", "backend"),
            ("Hello World", "hello-world"),
            ("Hello, World!", "hello-world"),
            ("my_app.v2", "my-app-v2"),
            ("a / b", "a-b"),
            ("a+-+b", "a-b"),
            ("--lead", "lead"),
            ("trail__", "trail"),
            ("  both  ", "both"),
            ("!@#$%^*", ""),
            ("a!b", "ab"),
            ("a-!-b", "a-b"),
            ("Привет мир", "privyet-mir"),
            ("Жёлтый щит", "zhyoltyj-shchit"),
            ("объект", "obyekt"),
            ("Straße", "strabe"),
            ("Ørsted", "orsted"),
            ("café", "cafe"),
            ("Ærø Ĳssel", "aero-ijssel"),
            ("Tiếng Việt", "tieng-viet"),
            ("ｗｅｒｆ", "werf"),
            ("日本-app", "app"),
        ];
        for (input, want) in cases {
            assert_eq!(slugify(input), *want, "{input:?}");
            assert_eq!(slug(input), *want, "slug({input:?})");
        }
    }

    #[test]
    fn docker_tag_slugs() {
        let x = |n: usize| "x".repeat(n);
        let cases: &[(&str, String)] = &[
            // werf's own vectors
            ("", String::new()),
            ("-data", "data-a871d86e".into()),
            ("da/ta", "da-ta-afa96f8".into()),
            (&x(129), format!("{}-8cca70eb", x(128 - 9))),
            // valid tags stay as they are, case and all
            ("backend", "backend".into()),
            ("Backend_1.2-rc", "Backend_1.2-rc".into()),
            ("_x", "_x".into()),
            (&x(128), x(128)),
            (".hidden", format!("hidden-{}", legacy_murmur_hash(&[".hidden"]))),
            ("Привет", format!("privyet-{}", legacy_murmur_hash(&["Привет"]))),
            ("!!!", legacy_murmur_hash(&["!!!"])),
        ];
        for (input, want) in cases {
            let got = docker_tag_slug(input);
            assert_eq!(&got, want, "{input:?}");
            assert!(got.len() <= DOCKER_TAG_MAX_LEN, "{input:?} gives {} bytes", got.len());
            assert_eq!(docker_tag_slug(&got), got, "not idempotent on {input:?}");
        }
    }

    #[test]
    fn long_names_are_cropped_to_fit_the_hash() {
        let names = ["a/".repeat(100), "Ж".repeat(200), format!("{}/x", "y".repeat(130)), "ab-".repeat(60)];
        for name in &names {
            let got = docker_tag_slug(name);
            let hash = legacy_murmur_hash(&[name]);
            assert!(got.len() <= DOCKER_TAG_MAX_LEN, "{name:?} gives {} bytes", got.len());
            assert!(got.ends_with(&format!("-{hash}")), "{got:?} lacks the hash {hash}");
            assert!(got.len() >= DOCKER_TAG_MAX_LEN - 1, "{got:?} is cropped too short");
            assert!(slipway_storage::reference::is_valid_tag(&got), "{got:?}");
        }
    }

    #[test]
    fn limited_slugs() {
        let x = |n: usize| "x".repeat(n);
        let cases: &[(&str, usize, String)] = &[
            // werf's own vectors
            ("", 42, String::new()),
            ("data", 42, "data".into()),
            ("A", 42, "a-54dcf7ce".into()),
            (&x(43), 42, format!("{}-27e2f02f", x(42 - 9))),
            (
                "postgres-feature-31981-change-delivery-date-del-result",
                48,
                "postgres-feature-31981-change-delivery--852739dc".into(),
            ),
            (
                "php_fpm_exporter-monitoring-dev-encrypt-1",
                48,
                "php-fpm-exporter-monitoring-dev-encrypt--83286e5".into(),
            ),
            // werf's namespace and release limits
            ("da_ta", 63, "da-ta-3b339d14".into()),
            ("kubernetes.namespace", 63, "kubernetes-namespace-1507f75c".into()),
            (&x(64), 63, format!("{}-afd4efcd", x(63 - 9))),
            (&x(54), 53, format!("{}-18c5dfb9", x(53 - 9))),
            // the legacy "--" rule keeps a single "--" only when the rest is a slug
            ("a--b", 42, "a--b".into()),
            ("a---b", 42, format!("a-b-{}", legacy_murmur_hash(&["a---b"]))),
            ("a--b--c", 42, format!("a-b-c-{}", legacy_murmur_hash(&["a--b--c"]))),
            ("A--b", 42, format!("a-b-{}", legacy_murmur_hash(&["A--b"]))),
            ("a--", 42, format!("a-{}", legacy_murmur_hash(&["a--"]))),
            // too small a limit to hold more than the hash
            ("abc", 2, format!("-{}", legacy_murmur_hash(&["abc"]))),
        ];
        for (input, max, want) in cases {
            let got = limited_slug(input, *max);
            assert_eq!(&got, want, "limited_slug({input:?}, {max})");
            if *max >= 10 {
                assert!(got.len() <= *max, "limited_slug({input:?}, {max}) gives {} bytes", got.len());
                assert_eq!(limited_slug(&got, *max), got, "not idempotent on {input:?}");
            }
        }
    }
}
