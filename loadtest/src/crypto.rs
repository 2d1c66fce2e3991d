//! The crypto bound, measured in the same run: what the server's signatures and verifications
//! for one ceremony cost on one core, with the server's own code paths (`ring` through
//! `authenticator-protocol`).
use std::time::Instant;

use authenticator_protocol::encoding::b64;
use authenticator_protocol::sign_in::{
    Decision, DeviceAuth, RequestDetails, RequestKind, SignInResponse, SignedRequestDetails,
};
use authenticator_protocol::{AccountId, EcdsaSigner, RequestId, TypedNumber, UnixMillis};

use crate::Delivery;

pub struct Bound {
    /// Signing one request's details (JSON, canonical bytes, ECDSA P-256).
    pub sign_us: f64,
    /// One verification: the mean of a device-auth header and an approval (canonical bytes +
    /// ECDSA verify), as the server does them.
    pub verify_us: f64,
}

impl Bound {
    /// One signature, plus three verifications with long-poll (poll, details, response) or
    /// two when a push carried the ids (details, response).
    pub fn per_ceremony_us(&self, delivery: Delivery) -> f64 {
        let verifications = match delivery {
            Delivery::Longpoll => 3.0,
            Delivery::Push => 2.0,
        };
        self.sign_us + verifications * self.verify_us
    }
}

const ROUNDS: u32 = 2000;

pub fn measure() -> Bound {
    let (server, _) = EcdsaSigner::generate().expect("key");
    let (device, _) = EcdsaSigner::generate().expect("key");
    let account_id = AccountId::random();
    let now = UnixMillis::now();
    let details = RequestDetails {
        v: 1,
        request_id: RequestId::random(),
        account_id: account_id.clone(),
        kind: RequestKind::Passwordless,
        upn: "load0@contoso.test".into(),
        server_name: "Contoso".into(),
        app_name: Some("Load test".into()),
        location: Some("Unknown location".into()),
        device_name: None,
        number_matching: true,
        number_length: 2,
        nonce: b64(&[7u8; 32]),
        created_at: now,
        expires_at: UnixMillis(now.0 + 90_000),
        browser: None,
    };
    // Warm up, then time.
    let mut signed = SignedRequestDetails::sign(&details, &server);
    let started = Instant::now();
    for _ in 0..ROUNDS {
        signed = SignedRequestDetails::sign(&details, &server);
    }
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);

    let path = format!("/api/v1/device/requests/{}", details.request_id);
    let auth_bytes = DeviceAuth::signed_bytes("GET", &path, &account_id, now);
    let auth_sig = device.sign(&auth_bytes);
    let response = SignInResponse {
        request_id: details.request_id.clone(),
        account_id: account_id.clone(),
        nonce: [7u8; 32],
        decision: Decision::Approve,
        typed_number: Some(TypedNumber::parse("42").expect("number")),
        context_sha256: signed.context_sha256(),
        timestamp: now,
        browser_origin: None,
    };
    let response_sig = device.sign(&response.signed_bytes());
    let key = device.public_key();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        key.verify(
            &DeviceAuth::signed_bytes("GET", &path, &account_id, now),
            &auth_sig,
        )
        .expect("verifies");
        key.verify(&response.signed_bytes(), &response_sig)
            .expect("verifies");
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(2 * ROUNDS);
    Bound { sign_us, verify_us }
}
