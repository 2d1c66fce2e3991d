//! The phone sign-in protocol, version 1: identifiers, canonical signed bytes, key and
//! signature formats, enrollment URLs, push envelopes and the JSON bodies of every endpoint.
//!
//! This crate does no I/O. The phone core and the sign-in server both build on it, so the two
//! sides cannot disagree on what a signature covers. `docs/PROTOCOL.md` is the normative text;
//! `tests/vectors/v1.json` holds the test vectors that both sides check.
#![forbid(unsafe_code)]
// Product code handles every failure as a typed error (issue 19); tests, benches and examples
// are separate targets and allow these at their top.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod canonical;
pub mod encoding;
pub mod enroll;
mod error;
pub mod ids;
pub mod keys;
pub mod moving;
pub mod number;
pub mod push;
pub mod push_registration;
pub mod sign_in;
pub mod text;
pub mod time;
pub mod webpush;
pub mod wire;

pub use error::ProtocolError;
pub use ids::{AccountId, RequestId};
pub use keys::{EcdsaSigner, PublicKey, Signature};
pub use number::TypedNumber;
pub use time::UnixMillis;

/// Protocol version carried in enrollment URLs, push envelopes and request details.
pub const PROTOCOL_VERSION: u32 = 1;
