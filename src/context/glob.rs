//! Go `filepath.Match` patterns, which Docker uses for COPY/ADD sources: `*` and `?`
//! never match `/`, `[...]` classes with ranges and `^`/`!` negation, `\` escapes.

use anyhow::bail;

pub fn has_meta(p: &str) -> bool {
    p.contains(['*', '?', '[', '\\'])
}

pub fn matches(pattern: &str, name: &str) -> anyhow::Result<bool> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

fn m(p: &[char], n: &[char]) -> anyhow::Result<bool> {
    let Some(&c) = p.first() else { return Ok(n.is_empty()) };
    match c {
        '*' => {
            for i in 0..=n.len() {
                if i > 0 && n[i - 1] == '/' {
                    break;
                }
                if m(&p[1..], &n[i..])? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        '?' => Ok(!n.is_empty() && n[0] != '/' && m(&p[1..], &n[1..])?),
        '[' => {
            let Some(close) = p.iter().skip(1).position(|&c| c == ']').map(|i| i + 1) else {
                bail!("syntax error in pattern: unclosed [");
            };
            if n.is_empty() || n[0] == '/' {
                return Ok(false);
            }
            let mut class = &p[1..close];
            let negate = matches!(class.first(), Some('^' | '!'));
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= n[0] && n[0] <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == n[0];
                    i += 1;
                }
            }
            Ok(hit != negate && m(&p[close + 1..], &n[1..])?)
        }
        '\\' if p.len() > 1 => Ok(!n.is_empty() && n[0] == p[1] && m(&p[2..], &n[1..])?),
        c => Ok(!n.is_empty() && n[0] == c && m(&p[1..], &n[1..])?),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn go_filepath_match_cases() {
        for (p, n, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "dir/a.txt", false),
            ("dir/*", "dir/a", true),
            ("dir/*", "dir/a/b", false),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[!a-c]x", "dx", true),
            ("\\*", "*", true),
            ("*", "", true),
        ] {
            assert_eq!(matches(p, n).unwrap(), want, "{p} vs {n}");
        }
        assert!(matches("[abc", "a").is_err());
    }
}
