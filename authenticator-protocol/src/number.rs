use std::fmt;

use crate::ProtocolError;

/// What the user typed for number matching: exactly two ASCII digits. The phone never learns
/// the right answer; the server compares in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct TypedNumber(String);

impl TypedNumber {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let t = text.trim();
        if t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit()) {
            Ok(TypedNumber(t.to_owned()))
        } else {
            Err(ProtocolError::InvalidNumber)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
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
    fn only_two_digits_are_accepted() {
        assert_eq!(TypedNumber::parse("07").unwrap().as_str(), "07");
        assert_eq!(TypedNumber::parse(" 42\n").unwrap().as_str(), "42");
        for bad in ["", "4", "123", "ab", "4a", "４２", "-1"] {
            assert_eq!(
                TypedNumber::parse(bad),
                Err(ProtocolError::InvalidNumber),
                "{bad:?}"
            );
        }
    }
}
