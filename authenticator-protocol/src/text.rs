//! Text that a person reads as trusted context (user, group, application, device and server
//! names, user names, locations, audit lines): the one gate every name passes where it comes
//! in ([`check_plain`]), and how a reader shows text it did not write itself ([`escape`]).
//!
//! Refused, by Unicode general category (`unicode-properties`, generated from the Unicode data
//! files — never a hand-written table):
//! - `Cc` control characters (C0, DEL, C1: newline and ESC among them): one line shown as two;
//! - `Cf` format characters: the invisible ones (U+200B–U+200D zero-width space, non-joiner and
//!   joiner, U+2060 word joiner, U+FEFF, U+00AD soft hyphen, U+FFF9–U+FFFB interlinear
//!   annotation, U+1D173–U+1D17A musical formatting, the tag characters U+E0001–U+E007F), which
//!   make two names that look identical, and the bidirectional controls (U+061C, U+200E/F,
//!   U+202A–U+202E, U+2066–U+2069), which show text in another order;
//! - `Co` private-use characters (U+E000–U+F8FF, planes 15 and 16): any font draws them as it
//!   likes;
//! - `Cn` unassigned code points and noncharacters (U+0378, U+FFFE, U+10FFFF…): no glyph today,
//!   any glyph once a later Unicode version assigns one;
//! - `Zl` and `Zp` (U+2028, U+2029): line breaks;
//! - `Cs` surrogates cannot occur in a Rust string (nor in the UTF-8 of the wire); they are
//!   named for completeness.
//!
//! The price: emoji written as ZWJ sequences (👨‍👩‍👧) and words that need U+200C/U+200D (some
//! Persian and Indic spellings) are refused in names; a one-code-point emoji (👪) is not.
//!
//! Servers refuse such text where it is written and phones refuse it where it arrives (the same
//! function on both sides); readers that show text written before this rule (terminals, stored
//! data) never trust it and show it with [`escape`].
use std::borrow::Cow;
use std::fmt::{self, Write};

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Why a character may not appear in a name: its Unicode general category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnsafeKind {
    /// `Cc`: C0 and C1 controls and DEL.
    Control,
    /// `Cf`: invisible and bidirectional formatting characters.
    Format,
    /// `Co`: private use.
    PrivateUse,
    /// `Cn`: unassigned code points and noncharacters.
    Unassigned,
    /// `Cs`: surrogates (unreachable from a `char`; kept so every `C*` category is named).
    Surrogate,
    /// `Zl`, `Zp`: the line and paragraph separators.
    LineBreak,
}

impl UnsafeKind {
    /// The kind of `c`, or `None` when `c` may appear in a name.
    pub fn of(c: char) -> Option<UnsafeKind> {
        match c.general_category() {
            GeneralCategory::Control => Some(UnsafeKind::Control),
            GeneralCategory::Format => Some(UnsafeKind::Format),
            GeneralCategory::PrivateUse => Some(UnsafeKind::PrivateUse),
            GeneralCategory::Unassigned => Some(UnsafeKind::Unassigned),
            GeneralCategory::Surrogate => Some(UnsafeKind::Surrogate),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
                Some(UnsafeKind::LineBreak)
            }
            _ => None,
        }
    }

    /// The Unicode general category, as UAX #44 abbreviates it (`Zl`/`Zp` as `Zl/Zp`).
    pub fn category(self) -> &'static str {
        match self {
            UnsafeKind::Control => "Cc",
            UnsafeKind::Format => "Cf",
            UnsafeKind::PrivateUse => "Co",
            UnsafeKind::Unassigned => "Cn",
            UnsafeKind::Surrogate => "Cs",
            UnsafeKind::LineBreak => "Zl/Zp",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            UnsafeKind::Control => "a control character",
            UnsafeKind::Format => "an invisible or formatting character",
            UnsafeKind::PrivateUse => "a private-use character",
            UnsafeKind::Unassigned => "an unassigned code point",
            UnsafeKind::Surrogate => "a surrogate",
            UnsafeKind::LineBreak => "a line or paragraph separator",
        }
    }
}

/// A name that holds a character names may not hold: the first one, and its kind. The message
/// names the code point (`U+200B`), never the character itself, so it is safe to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnsafeText {
    pub character: char,
    pub kind: UnsafeKind,
}

impl UnsafeText {
    /// The code point (`0x200B` for a zero-width space).
    pub fn code_point(&self) -> u32 {
        u32::from(self.character)
    }
}

impl fmt::Display for UnsafeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "holds U+{:04X}, {} ({}): a name may hold no control, format, private-use or \
             unassigned character",
            self.code_point(),
            self.kind.describe(),
            self.kind.category()
        )
    }
}

impl std::error::Error for UnsafeText {}

/// Whether `c` may not appear in a name ([`UnsafeKind::of`]).
pub fn is_unsafe_char(c: char) -> bool {
    UnsafeKind::of(c).is_some()
}

/// The gate for every name a phone or a page shows: `Ok` when `text` holds no
/// [`is_unsafe_char`]; otherwise the first offending character and why.
pub fn check_plain(text: &str) -> Result<(), UnsafeText> {
    for character in text.chars() {
        if let Some(kind) = UnsafeKind::of(character) {
            return Err(UnsafeText { character, kind });
        }
    }
    Ok(())
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
            assert_eq!(
                check_plain(&format!("My{c}App")).map_err(|e| e.character),
                Err(c)
            );
        }
        assert_eq!(check_plain("Contoso Intranet — Zürich, CH"), Ok(()));
    }

    /// Issue 20, finding 5: every code point the review listed, and one of each other refused
    /// category, with the kind the gate gives it.
    #[test]
    fn look_alike_and_invisible_code_points_are_refused_with_their_kind() {
        use UnsafeKind::*;
        let table = [
            // The review's list.
            ('\u{200B}', Format),     // ZERO WIDTH SPACE
            ('\u{200C}', Format),     // ZERO WIDTH NON-JOINER
            ('\u{200D}', Format),     // ZERO WIDTH JOINER
            ('\u{FEFF}', Format),     // ZERO WIDTH NO-BREAK SPACE (BOM)
            ('\u{00AD}', Format),     // SOFT HYPHEN
            ('\u{FFF9}', Format),     // INTERLINEAR ANNOTATION ANCHOR
            ('\u{1D173}', Format),    // MUSICAL SYMBOL BEGIN BEAM
            ('\u{E000}', PrivateUse), // first private-use character
            // The rest of each refused category.
            ('\u{2060}', Format),       // WORD JOINER
            ('\u{E0041}', Format),      // TAG LATIN CAPITAL LETTER A
            ('\u{202E}', Format),       // RIGHT-TO-LEFT OVERRIDE
            ('\u{061C}', Format),       // ARABIC LETTER MARK
            ('\u{F8FF}', PrivateUse),   // last BMP private-use character
            ('\u{F0000}', PrivateUse),  // plane 15
            ('\u{10FFFD}', PrivateUse), // plane 16
            ('\u{0378}', Unassigned),   // unassigned in Greek
            ('\u{FFFE}', Unassigned),   // noncharacter
            ('\u{FDD0}', Unassigned),   // noncharacter
            ('\u{10FFFF}', Unassigned), // noncharacter, the last code point
            ('\u{0000}', Control),
            ('\u{0009}', Control),
            ('\u{001B}', Control),
            ('\u{007F}', Control),
            ('\u{0085}', Control),
            ('\u{009B}', Control),
            ('\u{2028}', LineBreak),
            ('\u{2029}', LineBreak),
        ];
        for (c, kind) in table {
            assert_eq!(UnsafeKind::of(c), Some(kind), "U+{:04X}", u32::from(c));
            let name = format!("Bob{c}by Smith");
            assert_eq!(
                check_plain(&name),
                Err(UnsafeText { character: c, kind }),
                "U+{:04X}",
                u32::from(c)
            );
            // Shown escaped wherever old text is read.
            assert_eq!(
                escape(&name),
                format!("Bob\\u{{{:x}}}by Smith", u32::from(c))
            );
        }
    }

    #[test]
    fn names_in_every_script_and_plain_emoji_pass() {
        for name in [
            "Bobby Smith",
            "O'Brien-Smith, Jr.",
            "Zoë Łukasiewicz",
            "Ελένη Παπαδοπούλου",
            "Иван Петров",
            "東京 本社",
            "김민준",
            "محمد العلي",
            "דוד כהן",
            "नमस्ते",
            "São Paulo, BR",
            "Pixel 9 📱",
            "👪 Family iPad",
            "🇺🇳",
            "☎\u{FE0F}",
            "e\u{301}",
            "A\u{a0}B",
        ] {
            assert_eq!(check_plain(name), Ok(()), "{name}");
            assert!(matches!(escape(name), Cow::Borrowed(_)), "{name}");
        }
    }

    #[test]
    fn the_message_names_the_code_point_and_never_the_character() {
        let e = check_plain("Contoso\u{200B}").unwrap_err();
        assert_eq!(e.code_point(), 0x200B);
        let message = e.to_string();
        assert!(message.contains("U+200B"), "{message}");
        assert!(message.contains("(Cf)"), "{message}");
        assert!(!message.contains('\u{200B}'));
        let e = check_plain("\u{E000}").unwrap_err();
        assert!(e
            .to_string()
            .contains("U+E000, a private-use character (Co)"));
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
