//! `authenticator-core`: the phone side of the phone sign-in protocol (docs/PROTOCOL.md),
//! exported to Kotlin and Swift with uniffi. The platform key store (which verifies the user
//! for the signatures that carry a prompt) is a foreign trait; the network, storage and every
//! signature check live here.
// Product code handles every failure as a typed error (issue 19); tests, benches and examples
// are separate targets and allow these at their top.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
uniffi::setup_scaffolding!();

mod authenticator;
mod error;
mod internal;
mod platform;
pub mod software_keys;
mod software_secrets;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod types;
mod webpush;

pub use authenticator::Authenticator;
pub use error::{AuthenticatorError, RESPONSE_TOO_LARGE};
pub use internal::http::{
    HttpMethod, HttpRequest, HttpResponse, HttpTransport, ReqwestTransport, TransportError,
    MAX_RESPONSE_BODY_BYTES,
};
pub use internal::KEY_STORE_TIMEOUT;
pub use platform::{
    verify_for_signature, DeviceKeyStore, PlatformError, SecretStore, UserVerifier,
};
pub use software_keys::{SoftwareKeyStore, WrappingKeySource};
pub use types::{
    AccountSummary, Decision, PendingRequest, PushKind, PushOutcome, PushRegistration, PushTarget,
    PushUpdateOutcome, PushUpdateResult, RequestKind, TotpAccount, TotpCode, VerificationOutcome,
};
pub use webpush::web_push_token;
