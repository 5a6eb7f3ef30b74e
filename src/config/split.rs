//! Splitting werf.yaml into YAML documents the way werf does, before any YAML parsing.
//!
//! werf does not use the YAML stream parser for this: a line that is exactly `---`,
//! optionally followed by blanks and a `# comment`, ends a document (`----` or
//! `--- foo` do not). Documents holding only blanks and comments are dropped. Each
//! document keeps the line it starts on, so errors can name lines of the whole file.

/// One non-empty YAML document of werf.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Doc<'a> {
    /// 1-based line in the file of the document's first line.
    pub start_line: usize,
    /// The document's text, separator lines excluded.
    pub text: &'a str,
}

impl Doc<'_> {
    /// Converts a 1-based line inside the document to a line of the file.
    pub fn file_line(&self, local: u64) -> usize {
        let local = usize::try_from(local).unwrap_or(usize::MAX).max(1);
        self.start_line.saturating_add(local - 1)
    }

    /// The file line of the first top-level `key:` among `keys`, if written in block style.
    pub fn key_line(&self, keys: &[&str]) -> Option<usize> {
        self.text.lines().enumerate().find_map(|(i, line)| {
            keys.iter()
                .any(|key| {
                    line.strip_prefix(key).is_some_and(|rest| rest.trim_start_matches([' ', '\t']).starts_with(':'))
                })
                .then_some(self.start_line + i)
        })
    }

    /// The file line of the first line holding something other than blanks and comments.
    pub fn first_content_line(&self) -> usize {
        self.text.lines().position(|l| !is_blank_or_comment(l)).map_or(self.start_line, |i| self.start_line + i)
    }
}

/// Splits `text` at werf's document separators, dropping empty documents.
pub(crate) fn split_docs(text: &str) -> Vec<Doc<'_>> {
    let mut docs = Vec::new();
    let mut doc_start_offset = 0;
    let mut doc_start_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        if is_separator(line.trim_end_matches('\n')) {
            push_doc(&mut docs, &text[doc_start_offset..offset], doc_start_line);
            doc_start_offset = offset + line.len();
            doc_start_line = line_no + 1;
        }
        offset += line.len();
    }
    push_doc(&mut docs, &text[doc_start_offset..], doc_start_line);
    docs
}

fn push_doc<'a>(docs: &mut Vec<Doc<'a>>, text: &'a str, start_line: usize) {
    if !text.lines().all(is_blank_or_comment) {
        docs.push(Doc { start_line, text });
    }
}

/// `---`, then only blanks (space, tab, CR), then optionally `#` and anything.
fn is_separator(line: &str) -> bool {
    line.strip_prefix("---").is_some_and(|rest| {
        let rest = rest.trim_start_matches([' ', '\t', '\r']);
        rest.is_empty() || rest.starts_with('#')
    })
}

fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim_start_matches([' ', '\t', '\r']);
    line.is_empty() || line.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_werf() {
        // (input, [(start_line, text)])
        let cases: &[(&str, &[(usize, &str)])] = &[
            ("a: 1\n", &[(1, "a: 1\n")]),
            ("a: 1", &[(1, "a: 1")]),
            ("a: 1\n---\nb: 2\n", &[(1, "a: 1\n"), (3, "b: 2\n")]),
            ("---\na: 1\n", &[(2, "a: 1\n")]),
            ("a: 1\n--- # next\nb: 2\n", &[(1, "a: 1\n"), (3, "b: 2\n")]),
            ("a: 1\n---#x\nb: 2\n", &[(1, "a: 1\n"), (3, "b: 2\n")]),
            ("a: 1\n---  \t\r\nb: 2\n", &[(1, "a: 1\n"), (3, "b: 2\n")]),
            ("a: 1\r\n---\r\nb: 2\r\n", &[(1, "a: 1\r\n"), (3, "b: 2\r\n")]),
            ("a: 1\n----\nb: 2\n", &[(1, "a: 1\n----\nb: 2\n")]),
            ("a: 1\n--- b\n", &[(1, "a: 1\n--- b\n")]),
            ("a: |\n  ---\n", &[(1, "a: |\n  ---\n")]),
            ("a: 1\n---", &[(1, "a: 1\n")]),
            ("---\n---\n# only a comment\n\n---\nb: 2\n", &[(6, "b: 2\n")]),
            ("", &[]),
            ("# nothing\n   \n", &[]),
        ];
        for (input, want) in cases {
            let got: Vec<(usize, &str)> = split_docs(input).iter().map(|d| (d.start_line, d.text)).collect();
            assert_eq!(&got, want, "input {input:?}");
        }
    }

    #[test]
    fn finds_key_lines() {
        let doc = Doc { start_line: 10, text: "# c\n\nfinal: false\nimage : x\n" };
        assert_eq!(doc.key_line(&["image", "artifact"]), Some(13));
        assert_eq!(doc.key_line(&["imageSpec"]), None);
        assert_eq!(doc.first_content_line(), 12);
        assert_eq!(doc.file_line(3), 12);
    }
}
