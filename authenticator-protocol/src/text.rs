//! Text that a person reads as trusted context (application names, locations, account
//! names, audit lines): which characters are refused where it is written, and how a reader
//! shows text it did not write itself.
//!
//! A control character (C0, DEL, C1 — newline and ESC among them) or a bidirectional
//! formatting character can make one line look like two, or reorder what is shown, so a
//! caller could print `Location: Seattle, US` above the real location. Servers refuse such
//! text ([`check_plain`]); readers (the phone, terminals) never trust that and show it with
//! [`escape`].
use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is a control or bidirectional formatting character.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'                  // ARABIC LETTER MARK
            | '\u{200E}' | '\u{200F}'   // LRM, RLM
            | '\u{202A}'..='\u{202E}'   // LRE, RLE, PDF, LRO, RLO
            | '\u{2066}'..='\u{2069}'   // LRI, RLI, FSI, PDI
            | '\u{2028}' | '\u{2029}'   // LINE / PARAGRAPH SEPARATOR
        )
}

/// `Ok` when `text` holds no [`is_unsafe_char`]; otherwise the first offending character.
pub fn check_plain(text: &str) -> Result<(), char> {
    match text.chars().find(|&c| is_unsafe_char(c)) {
        Some(c) => Err(c),
        None => Ok(()),
    }
}

/// `text` with every [`is_unsafe_char`] written as a visible `\u{…}` escape (and `\` as
/// `\\`, so an escape cannot be faked). Plain text is returned as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || is_unsafe_char(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe_char(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_escapes_and_bidi_controls_are_unsafe() {
        for c in [
            '\n', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{202e}', '\u{2066}', '\u{200f}',
        ] {
            assert!(is_unsafe_char(c), "{c:?}");
            assert_eq!(check_plain(&format!("My{c}App")), Err(c));
        }
        assert_eq!(check_plain("Contoso Intranet — Zürich, CH"), Ok(()));
    }

    #[test]
    fn escape_makes_a_fake_line_visible_and_keeps_plain_text() {
        let hostile = "Mail\nLocation: Seattle, US\u{1b}[2K\u{202e}";
        let shown = escape(hostile);
        assert_eq!(shown, "Mail\\u{a}Location: Seattle, US\\u{1b}[2K\\u{202e}");
        assert!(!shown.chars().any(is_unsafe_char));
        assert!(matches!(escape("Zürich"), Cow::Borrowed("Zürich")));
    }

    #[test]
    fn a_backslash_cannot_fake_an_escape() {
        assert_eq!(escape("a\\u{a}b"), "a\\\\u{a}b");
    }
}
