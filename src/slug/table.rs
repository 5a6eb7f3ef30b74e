//! What each character becomes in a slug.
//!
//! Slugs must come out as werf's do (a tag in a registry or a value in a Helm chart is
//! shared between the two tools), so the coverage follows werf's: ASCII letters and
//! digits, a fixed set of separators, the Latin letters with diacritics of Latin-1,
//! Latin Extended-A/B/Additional, a few letterlike and enclosed forms, fullwidth ASCII,
//! and Russian Cyrillic. A character outside it is dropped, as werf drops it, even where
//! a better spelling exists (Ukrainian `і`, Vietnamese `ỉ`, Greek). werf's few odd
//! choices are kept on purpose and listed in the tests: `ß`→`b`, `İ`/`ı`→`l`, `ð`→`o`,
//! `Ⱦ`→`l`, Cyrillic `е`→`ye`.
//!
//! The table is grouped by what a character becomes; ranges are runs of consecutive code
//! points that all map to the same letters.

const LETTERS: &str = "abcdefghijklmnopqrstuvwxyz";
const DIGITS: &str = "0123456789";

/// Russian Cyrillic `а`..=`я` (U+0430..=U+044F) in order; `""` for the hard and soft
/// signs, which werf drops.
const CYRILLIC: [&str; 32] = [
    "a", "b", "v", "g", "d", "ye", "zh", "z", "i", "j", "k", "l", "m", "n", "o", "p", //
    "r", "s", "t", "u", "f", "h", "c", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya",
];

/// `⒑`..=`⒛` (U+2491..=U+249B), "number N full stop".
const FULL_STOP_NUMBERS: [&str; 11] = ["10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20"];

/// The slug text for `c`: `"-"` for a separator, lowercase ASCII letters and digits for
/// anything else that is kept, `None` when `c` is dropped.
pub(super) fn transliterate(c: char) -> Option<&'static str> {
    // The blocks whose output is computed from the code point.
    let from = |first: char| c as usize - first as usize;
    let s = match c {
        'a'..='z' => letter(from('a')),
        'A'..='Z' => letter(from('A')),
        '0'..='9' => &DIGITS[from('0')..=from('0')],
        'ａ'..='ｚ' => letter(from('ａ')),
        'Ａ'..='Ｚ' => letter(from('Ａ')),
        '⒜'..='⒵' => letter(from('⒜')),
        'Ⓐ'..='Ⓩ' => letter(from('Ⓐ')),
        'ⓐ'..='ⓩ' => letter(from('ⓐ')),
        '⒑'..='⒛' => FULL_STOP_NUMBERS[from('⒑')],
        'а'..='я' => CYRILLIC[from('а')],
        'А'..='Я' => CYRILLIC[from('А')],
        _ => fixed(c)?,
    };
    (!s.is_empty()).then_some(s)
}

fn letter(index: usize) -> &'static str {
    &LETTERS[index..=index]
}

// One line per output keeps the table reviewable; rustfmt would put each pattern on its
// own line.
#[rustfmt::skip]
fn fixed(c: char) -> Option<&'static str> {
    Some(match c {
        ' ' | '&' | '(' | ')' | '+' | ',' | '-' | '.' | '/' | ':' | ';' | '<' | '=' | '>' | '[' | ']' | '_' | '{'
        | '}' | '~' | '＿' | '～' => "-",
        '⓪' => "0",
        '²' => "2",
        '³' => "3",
        '⒐' => "9",
        'Ё' | 'ё' => "yo",

        'À'..='Å' | 'à'..='å' | 'Ā'..='ą' | 'Ǎ' | 'ǎ' | 'Ǟ'..='ǡ' | 'Ǻ' | 'ǻ' | 'Ȁ'..='ȃ' | 'Ȧ' | 'ȧ' | 'Ⱥ' | 'ɑ'
        | 'ᴀ' | 'Ḁ' | 'ḁ' | 'ẚ' | 'Ạ'..='ặ' | 'ₐ' | '\u{212B}' => "a",
        'Æ' | 'æ' | 'Ǣ' | 'ǣ' | 'Ǽ' | 'ǽ' | 'ᴁ' | 'ᴂ' => "ae",
        'ß' | 'ƀ' | 'Ɓ' | 'Ƅ' | 'ƅ' | 'Ƀ' | 'ᴃ' | 'Ḃ'..='ḇ' | 'ℬ' => "b",
        'Ç' | 'ç' | 'Ć'..='č' | 'Ƈ' | 'ƈ' | 'Ȼ' | 'ȼ' | 'ᴄ' | 'Ḉ' | 'ḉ' | 'ℂ' | '℃' | '℄' => "c",
        'Ð' | 'Ď'..='đ' | 'Ɖ' | 'Ɗ' | 'ɗ' | 'ᴅ' | 'ᴆ' | 'Ḋ'..='ḓ' => "d",
        'È'..='Ë' | 'è'..='ë' | 'Ē'..='ě' | 'Ɛ' | 'ǝ' | 'Ȅ'..='ȇ' | 'Ȩ' | 'ȩ' | 'Ɇ' | 'ɇ' | 'ᴇ' | 'Ḕ'..='ḝ'
        | 'Ẹ'..='ệ' | 'ₑ' | '℮' | 'ℯ' => "e",
        'Ƒ' | 'ƒ' | 'Ḟ' | 'ḟ' | '℉' | 'ꜰ' => "f",
        'Ĝ'..='ģ' | 'Ɠ' | 'Ǥ'..='ǧ' | 'Ǵ' | 'ǵ' | 'ɠ'..='ɢ' | 'Ḡ' | 'ḡ' | 'ℊ' => "g",
        'Ĥ'..='ħ' | 'Ȟ' | 'ȟ' | 'Ḣ'..='ḫ' | 'ẖ' | 'ℋ'..='ℏ' => "h",
        'Ì'..='Ï' | 'ì'..='ï' | 'Ĩ'..='į' | 'Ɩ' | 'Ɨ' | 'Ǐ' | 'ǐ' | 'Ȉ'..='ȋ' | 'Ḭ'..='ḯ' => "i",
        'Ĳ' | 'ĳ' => "ij",
        'Ĵ' | 'ĵ' | 'ǰ' | 'ȷ' | 'Ɉ' | 'ɉ' | 'ᴊ' => "j",
        'Ķ'..='ĸ' | 'Ƙ' | 'ƙ' | 'Ǩ' | 'ǩ' | 'ᴋ' | 'Ḱ'..='ḵ' | '\u{212A}' => "k",
        'İ' | 'ı' | 'Ĺ'..='ł' | 'Ƚ' | 'Ⱦ' | 'ᴌ' | 'Ḷ'..='ḽ' => "l",
        'Ǉ'..='ǉ' => "lj",
        'ɱ' | 'ᴍ' | 'Ḿ'..='ṃ' => "m",
        'Ñ' | 'ñ' | 'Ń'..='ŋ' | 'Ɲ' | 'ƞ' | 'Ǹ' | 'ǹ' | 'Ƞ' | 'ᴎ' | 'Ṅ'..='ṋ' | 'ℕ' => "n",
        'Ƌ' | 'ƌ' => "nd",
        'Ǌ'..='ǌ' => "nj",
        'Ò'..='Ö' | 'Ø' | 'ð' | 'ò'..='ö' | 'ø' | 'Ō'..='ő' | 'Ɵ' | 'Ơ' | 'ơ' | 'Ǒ' | 'ǒ' | 'Ǫ'..='ǭ' | 'Ǿ' | 'ǿ'
        | 'Ȍ'..='ȏ' | 'Ȫ'..='ȱ' | 'ɵ' | 'ᴏ' | 'Ṍ'..='ṓ' | 'Ọ'..='ợ' | 'ₒ' => "o",
        'Œ' | 'œ' | 'ɶ' => "oe",
        'Ƥ' | 'ƥ' | 'Ṕ'..='ṗ' | '℗' | 'ℙ' => "p",
        'Ƽ' | 'ƽ' | 'Ɋ' | 'ɋ' | 'ℚ' => "q",
        'Ŕ'..='ř' | 'Ʀ' | 'Ȑ'..='ȓ' | 'Ɍ' | 'ɍ' | 'Ṙ'..='ṟ' | 'ℛ'..='ℝ' | '℟' => "r",
        'Ś'..='š' | 'ſ' | 'Ƨ'..='Ʃ' | 'Ș' | 'ș' | 'ȿ' | 'Ṡ'..='ṩ' | 'ꜱ' => "s",
        'Ţ'..='ŧ' | 'ƪ'..='Ʈ' | 'Ț' | 'ț' | 'Ṫ'..='ṱ' | 'ẗ' => "t",
        'Þ' | 'þ' => "th",
        'µ' | 'Ù'..='Ü' | 'ù'..='ü' | 'Ũ'..='ų' | 'Ư'..='Ʋ' | 'Ǔ'..='ǜ' | 'Ȕ'..='ȗ' | 'Ʉ' | 'Ṳ'..='ṻ' | 'Ụ'..='ự' => "u",
        'Ʌ' | 'Ṽ'..='ṿ' => "v",
        'Ŵ' | 'ŵ' | 'Ɯ' | 'ɯ' | 'Ẁ'..='ẉ' | 'ẘ' => "w",
        '×' | 'Ẋ'..='ẍ' | 'ₓ' => "x",
        'Ý' | 'ý' | 'ÿ' | 'Ŷ'..='Ÿ' | 'Ȳ' | 'ȳ' | 'Ɏ' | 'ɏ' | 'Ẏ' | 'ẏ' | 'ẙ' | 'Ỳ'..='ỹ' => "y",
        'Ź'..='ž' | 'Ƶ'..='Ʒ' | 'Ȥ' | 'ȥ' | 'ɀ' | 'Ẑ'..='ẕ' | 'ℤ' => "z",

        // Ligatures and symbols that spell more than one letter.
        'ȸ' => "db",
        'Ǆ'..='ǆ' | 'Ǳ'..='ǳ' => "dz",
        'ȹ' => "qp",
        '℀' => "ac",
        '℁' => "as",
        '℅' => "co",
        '℆' => "cu",
        '℞' => "px",
        '℠' => "sm",
        '℡' => "tel",
        '™' => "tm",
        'Ꜳ' | 'ꜳ' => "aa",
        'Ꜵ' | 'ꜵ' => "ao",
        'Ꜷ' | 'ꜷ' => "aj",
        'Ꜹ' | 'ꜹ' => "av",
        'Ꜻ'..='ꜽ' => "af",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::transliterate;

    #[test]
    fn maps_characters() {
        let cases: &[(char, Option<&str>)] = &[
            ('a', Some("a")),
            ('Q', Some("q")),
            ('7', Some("7")),
            ('_', Some("-")),
            ('/', Some("-")),
            ('~', Some("-")),
            ('!', None),
            ('@', None),
            ('%', None),
            ('\t', None),
            ('é', Some("e")),
            ('Å', Some("a")),
            ('\u{212B}', Some("a")), // ANGSTROM SIGN
            ('\u{212A}', Some("k")), // KELVIN SIGN
            ('Æ', Some("ae")),
            ('Œ', Some("oe")),
            ('Þ', Some("th")),
            ('ǅ', Some("dz")),
            ('ằ', Some("a")),
            ('™', Some("tm")),
            ('Ｚ', Some("z")),
            ('⒛', Some("20")),
            ('ⓩ', Some("z")),
            ('Ж', Some("zh")),
            ('щ', Some("shch")),
            ('Я', Some("ya")),
            ('ё', Some("yo")),
            ('ъ', None),
            ('Ь', None),
            // werf's spelling, kept for identical slugs.
            ('ß', Some("b")),
            ('İ', Some("l")),
            ('ı', Some("l")),
            ('ð', Some("o")),
            ('Ⱦ', Some("l")),
            ('е', Some("ye")),
            // Outside werf's table, so dropped as werf drops them.
            ('і', None),
            ('ỉ', None),
            ('λ', None),
            ('¹', None),
            ('０', None),
            ('⒈', None),
            ('中', None),
        ];
        for (c, want) in cases {
            assert_eq!(transliterate(*c), *want, "{c:?} (U+{:04X})", *c as u32);
        }
    }

    #[test]
    fn output_is_a_separator_or_lowercase_ascii() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            if let Some(s) = transliterate(c) {
                let ok = s == "-" || s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
                assert!(ok && !s.is_empty(), "{c:?} (U+{:04X}) maps to {s:?}", c as u32);
            }
        }
    }
}
