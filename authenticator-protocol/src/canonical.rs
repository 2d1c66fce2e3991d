//! Canonical bytes of every signed message.
//!
//! `message = frame(tag) || frame(field_1) || … || frame(field_n)` where
//! `frame(x) = u32_be(len(x)) || x`. Integers are 8-byte big-endian fields. A tag never
//! changes meaning: a new layout gets a new tag.

pub const ENROLL_CHALLENGE_TAG: &[u8] = b"phonesignin/v1/enroll-challenge";
pub const ENROLL_TAG: &[u8] = b"phonesignin/v1/enroll";
pub const PASSWORDLESS_KEY_TAG: &[u8] = b"phonesignin/v1/passwordless-key";
pub const REQUEST_DETAILS_TAG: &[u8] = b"phonesignin/v1/request-details";
pub const RESPONSE_TAG: &[u8] = b"phonesignin/v1/response";
/// A response to a browser-bound request (§5.9): the `response` fields, then the origin.
pub const BOUND_RESPONSE_TAG: &[u8] = b"phonesignin/v1/response-bound";
pub const DEVICE_AUTH_TAG: &[u8] = b"phonesignin/v1/device-auth";

/// Builder for a canonical message.
#[derive(Debug, Clone)]
pub struct Canonical(Vec<u8>);

impl Canonical {
    pub fn new(tag: &[u8]) -> Self {
        Canonical(Vec::with_capacity(256)).field(tag)
    }
    pub fn field(mut self, bytes: &[u8]) -> Self {
        let len = u32::try_from(bytes.len()).expect("a protocol field is shorter than 4 GiB");
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }
    pub fn str(self, s: &str) -> Self {
        self.field(s.as_bytes())
    }
    pub fn u64(self, v: u64) -> Self {
        self.field(&v.to_be_bytes())
    }
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_length_prefixed_big_endian() {
        let bytes = Canonical::new(b"t").str("ab").u64(1).finish();
        assert_eq!(
            bytes,
            [
                &[0, 0, 0, 1, b't'][..],
                &[0, 0, 0, 2, b'a', b'b'],
                &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]
            ]
            .concat()
        );
    }

    #[test]
    fn moving_a_byte_between_fields_changes_the_message() {
        let a = Canonical::new(b"t").str("ab").str("c").finish();
        let b = Canonical::new(b"t").str("a").str("bc").finish();
        assert_ne!(a, b);
    }
}
