//! Every protocol JSON body (PROTOCOL.md §5) read as each side reads it, and the canonical
//! bytes built from what was read: any input is a value or a typed error, never a panic; what
//! parses verifies (or fails to verify) with a typed error under a fixed key.
#![no_main]
use std::sync::OnceLock;

use authenticator_protocol::encoding::unb64_fixed;
use authenticator_protocol::enroll::{EnrollChallenge, EnrollProof, PasswordlessKeyRegistration};
use authenticator_protocol::sign_in::{RequestDetails, SignInResponse, SignedRequestDetails};
use authenticator_protocol::wire::{
    EnrollChallengeResponse, EnrollCompleteRequest, EnrollCompleteResponse, ErrorBody,
    PasswordlessRequest, PollResponse, ResponseAccepted, ResponseBody,
};
use authenticator_protocol::{EcdsaSigner, PublicKey, RequestId, Signature, TypedNumber};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| EcdsaSigner::generate().expect("key").0.public_key())
}

fn parse<T: serde::de::DeserializeOwned>(data: &[u8]) -> Option<T> {
    serde_json::from_slice(data).ok()
}

fuzz_target!(|data: &[u8]| {
    // The phone: request details, checked under the pinned key; then what it would sign.
    if let Some(signed) = parse::<SignedRequestDetails>(data) {
        let _ = signed.context_sha256();
        if let Ok(details) = signed.verify(key()) {
            let _ = details.nonce_bytes();
        }
    }
    if let Some(details) = parse::<RequestDetails>(data) {
        // What serializes parses back (deny_unknown_fields).
        let text = serde_json::to_string(&details).expect("serializes");
        let again: RequestDetails = serde_json::from_str(&text).expect("round trip");
        assert_eq!(again, details);
    }
    if let Some(c) = parse::<EnrollChallengeResponse>(data) {
        if let (Ok(challenge), Ok(server)) = (
            unb64_fixed::<32>("challenge", &c.challenge),
            PublicKey::from_b64("server_public_key", &c.server_public_key),
        ) {
            let signed = EnrollChallenge {
                challenge,
                upn: c.upn,
                display_name: c.display_name,
                server_name: c.server_name,
                expires_at: c.expires_at,
            };
            if let Ok(sig) = Signature::from_b64("signature", &c.signature) {
                let _ = server.verify(&signed.signed_bytes("code"), &sig);
            }
        }
    }
    let _ = parse::<PollResponse>(data);
    let _ = parse::<ResponseAccepted>(data);
    let _ = parse::<ErrorBody>(data);
    let _ = parse::<EnrollCompleteResponse>(data);

    // The server: enrollment, phone sign-in registration and answers, decoded as it decodes
    // them and verified under a key that did not sign them.
    if let Some(e) = parse::<EnrollCompleteRequest>(data) {
        if let (Ok(challenge), Ok(device)) = (
            unb64_fixed::<32>("challenge", &e.challenge),
            PublicKey::from_b64("device_public_key", &e.device_public_key),
        ) {
            let _ = e.push.parsed_kind();
            let proof = EnrollProof {
                challenge,
                device_public_key: device.clone(),
                push_kind: e.push.kind.clone(),
                push_token: e.push.token,
                device_name: e.device_name,
                timestamp: e.timestamp,
            };
            if let Ok(sig) = Signature::from_b64("signature", &e.signature) {
                let _ = device.verify(&proof.signed_bytes(), &sig);
            }
        }
    }
    if let Some(p) = parse::<PasswordlessRequest>(data) {
        if let Ok(new_key) =
            PublicKey::from_b64("passwordless_public_key", &p.passwordless_public_key)
        {
            let registration = PasswordlessKeyRegistration {
                account_id: p.account_id,
                passwordless_public_key: new_key.clone(),
                timestamp: p.timestamp,
            };
            for sig in [&p.device_signature, &p.key_signature] {
                if let Ok(sig) = Signature::from_b64("signature", sig) {
                    let _ = key().verify(&registration.signed_bytes(), &sig);
                    let _ = new_key.verify(&registration.signed_bytes(), &sig);
                }
            }
        }
    }
    if let Some(body) = parse::<ResponseBody>(data) {
        let typed = body.typed_number.as_deref().map(TypedNumber::parse);
        // A number is its text, byte for byte (PROTOCOL.md §5.6 step 3): what is signed is
        // exactly what the body carries.
        if let (Some(Ok(t)), Some(text)) = (&typed, body.typed_number.as_deref()) {
            assert_eq!(t.as_str(), text);
        }
        if let (Ok(nonce), Ok(context)) = (
            unb64_fixed::<32>("nonce", &body.nonce),
            unb64_fixed::<32>("context_sha256", &body.context_sha256),
        ) {
            if let Some(Err(_)) = typed {
                return;
            }
            let response = SignInResponse {
                request_id: RequestId::random(),
                account_id: body.account_id,
                nonce,
                decision: body.decision,
                typed_number: typed.map(|t| t.expect("checked above")),
                context_sha256: context,
                timestamp: body.timestamp,
                browser_origin: body.browser_origin,
            };
            if let Ok(sig) = Signature::from_b64("signature", &body.signature) {
                assert!(key().verify(&response.signed_bytes(), &sig).is_err());
            }
        }
    }
});
