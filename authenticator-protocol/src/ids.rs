//! Opaque identifiers: 16 random bytes, written as 22 characters of base64url.
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::encoding::{b64, unb64_fixed};
use crate::ProtocolError;

macro_rules! opaque_id {
    ($name:ident, $field:literal) => {
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A fresh random identifier, or [`ProtocolError::RandomSource`] when the
            /// operating system's random source fails.
            pub fn try_random() -> Result<Self, ProtocolError> {
                let mut bytes = [0u8; 16];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                    .map_err(|_| ProtocolError::RandomSource)?;
                Ok($name(b64(&bytes)))
            }
            /// [`Self::try_random`] that panics when the random source fails: for tests,
            /// benches and test fakes only. Product code calls `try_random`.
            #[allow(clippy::expect_used)]
            pub fn random() -> Self {
                Self::try_random().expect("the OS random source works")
            }
            pub fn parse(text: &str) -> Result<Self, ProtocolError> {
                unb64_fixed::<16>($field, text)?;
                Ok($name(text.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ProtocolError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

opaque_id!(AccountId, "account_id");
opaque_id!(RequestId, "request_id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_parse_back_and_differ() {
        let a = RequestId::try_random().unwrap();
        assert_eq!(RequestId::parse(a.as_str()).unwrap(), a);
        assert_ne!(RequestId::try_random().unwrap(), a);
        assert_eq!(a.as_str().len(), 22);
        let account = AccountId::try_random().unwrap();
        assert_eq!(AccountId::parse(account.as_str()).unwrap(), account);
    }

    #[test]
    fn wrong_shapes_are_rejected() {
        assert_eq!(
            RequestId::parse("AAAA"),
            Err(ProtocolError::InvalidLength {
                field: "request_id",
                expected: 16,
                actual: 3
            })
        );
        assert_eq!(
            AccountId::parse("not base64url!!!!!!!!!"),
            Err(ProtocolError::InvalidBase64("account_id"))
        );
    }
}
