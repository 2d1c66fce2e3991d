//! OpenID Connect below HTTP: client registration ([`clients`]), how stored secrets are
//! hashed, and the `amr`/`acr` each way of signing in earns. The endpoints are
//! `signin-server`'s `oidc` module.
pub mod clients;

use authenticator_protocol::encoding::{b64, sha256};

/// `acr` of a sign-in with more than one factor (phone sign-in, password + phone).
pub const ACR_MFA: &str = "urn:phonesignin:acr:mfa";
/// `acr` of a sign-in with one factor (a password alone, a temporary access pass).
pub const ACR_SINGLE_FACTOR: &str = "urn:phonesignin:acr:single-factor";
/// `acr` of a phishing-resistant sign-in: more than one factor, and the approval bound to the
/// browser that showed the page (PROTOCOL.md §5.9).
pub const ACR_PHISHING_RESISTANT: &str = "urn:phonesignin:acr:phr";
/// The `amr` value of a phishing-resistant sign-in. Not one of RFC 8176's; the name other
/// identity providers (Okta) use for the same property.
pub const AMR_PHISHING_RESISTANT: &str = "phr";

/// SHA-256 (base64url) of a secret handed out (codes, tokens, handles): what is stored.
pub fn secret_hash(secret: &str) -> String {
    b64(&sha256(secret.as_bytes()))
}

// The `amr` values of each way to sign in are `trust::Method::amr`.

/// `acr` for a list of `amr` values.
pub fn acr_for(amr: &[String]) -> &'static str {
    let has = |value: &str| amr.iter().any(|m| m == value);
    if has("mfa") && has(AMR_PHISHING_RESISTANT) {
        ACR_PHISHING_RESISTANT
    } else if has("mfa") {
        ACR_MFA
    } else {
        ACR_SINGLE_FACTOR
    }
}
