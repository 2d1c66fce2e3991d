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
/// A device's new push channel (§5.10, push-token rotation).
pub const PUSH_REGISTRATION_TAG: &[u8] = b"phonesignin/v1/push-registration";
/// A device vouching for a move of its account to a new phone (§5.11).
pub const MOVE_VOUCH_TAG: &[u8] = b"phonesignin/v1/move-vouch";

/// Builder for a canonical message.
#[derive(Debug, Clone)]
pub struct Canonical(Vec<u8>);

impl Canonical {
    pub fn new(tag: &[u8]) -> Self {
        Canonical(Vec::with_capacity(256)).field(tag)
    }
    pub fn field(mut self, bytes: &[u8]) -> Self {
        push_len(&mut self.0, bytes.len());
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

/// The length prefix of a frame: `u32_be(len)`. A length that does not fit below `ffffffff`
/// (no v1 field comes near: they are identifiers, keys, hashes and bounded text) is written
/// `ffffffff || u64_be(len)`, so every input has exactly one encoding and no two inputs share
/// one (PROTOCOL.md §2); a 4-byte prefix never starts with `ffffffff`.
fn push_len(out: &mut Vec<u8>, len: usize) {
    match u32::try_from(len) {
        Ok(short) if short != u32::MAX => out.extend_from_slice(&short.to_be_bytes()),
        _ => {
            out.extend_from_slice(&u32::MAX.to_be_bytes());
            // Lossless: `usize` is at most 64 bits (checked at compile time below).
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

const _: () = assert!(
    usize::BITS <= u64::BITS,
    "a length must fit the 8-byte prefix"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_below_ffffffff_are_four_bytes_and_longer_ones_escape_to_eight() {
        let prefix = |len: usize| {
            let mut out = Vec::new();
            push_len(&mut out, len);
            out
        };
        assert_eq!(prefix(0), [0, 0, 0, 0]);
        assert_eq!(prefix(22), [0, 0, 0, 22]);
        assert_eq!(prefix(0xffff_fffe), [0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(
            prefix(0xffff_ffff),
            [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(
                prefix(0x1_0000_0000),
                [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0]
            );
        }
    }

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
