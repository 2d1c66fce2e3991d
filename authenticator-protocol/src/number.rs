use std::fmt;

use crate::ProtocolError;

/// How many digits a sign-in number may have (the policy's setting, raised with the user's
/// risk; PROTOCOL.md §5.5).
pub const NUMBER_DIGITS: std::ops::RangeInclusive<u8> = 2..=6;

/// The digits of a number unless the details say otherwise (the v1 default).
pub const DEFAULT_NUMBER_DIGITS: u8 = 2;

/// What the user typed for number matching: 2 to 6 ASCII digits (as many as the request's
/// `number_length`, which the phone checks). The phone never learns the right answer; the
/// server compares in constant time.
///
/// The text is taken exactly as given (PROTOCOL.md §2, §5.6): nothing is trimmed or
/// converted, so the digits a signature covers are the digits the body carries. `" 42"`,
/// `"42\n"` or `"４２"` are refused, never read as `42`.
#[derive(Clone, PartialEq, Eq)]
pub struct TypedNumber(String);

impl TypedNumber {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let digits = u8::try_from(text.len()).unwrap_or(u8::MAX);
        if NUMBER_DIGITS.contains(&digits) && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(TypedNumber(text.to_owned()))
        } else {
            Err(ProtocolError::InvalidNumber)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// How many digits were typed.
    pub fn digits(&self) -> u8 {
        // At most 6 (checked by `parse`).
        self.0.len() as u8
    }
}

impl fmt::Debug for TypedNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Numbers are kept out of logs.
        f.write_str("TypedNumber(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_two_to_six_ascii_digits_are_accepted() {
        assert_eq!(TypedNumber::parse("07").unwrap().as_str(), "07");
        assert_eq!(TypedNumber::parse("4821").unwrap().digits(), 4);
        assert_eq!(TypedNumber::parse("000123").unwrap().digits(), 6);
        for bad in [
            "", "4", "1234567", "ab", "4a", "４２", "٤٢", "-1", "12 34", "+123",
        ] {
            assert_eq!(
                TypedNumber::parse(bad),
                Err(ProtocolError::InvalidNumber),
                "{bad:?}"
            );
        }
    }

    /// Issue 20, finding 4: the text is the number, byte for byte. White space around the
    /// digits (a space, a newline, a tab, a no-break space, a zero-width space) is refused,
    /// never trimmed: otherwise a signature over `"27"` would approve a body saying `" 27"`.
    #[test]
    fn white_space_around_the_digits_is_refused_not_trimmed() {
        for bad in [
            " 27",
            "27 ",
            "27\n",
            "\t27",
            "27\u{a0}",
            "\u{a0}27",
            "\u{200b}27",
            "\r\n42",
            " 42\n",
        ] {
            assert_eq!(
                TypedNumber::parse(bad),
                Err(ProtocolError::InvalidNumber),
                "{bad:?}"
            );
        }
        assert_eq!(TypedNumber::parse("27").unwrap().as_str(), "27");
    }
}
