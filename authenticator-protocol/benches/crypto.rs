//! The protocol's hot path on each side: what the server does per ceremony (sign the details,
//! verify the approval) and what the phone core does (verify details, normalize platform
//! formats). `cargo bench -p authenticator-protocol --bench crypto`; figures in docs/PERFORMANCE.md.
use authenticator_protocol::encoding::b64;
use authenticator_protocol::sign_in::{
    Decision, RequestDetails, RequestKind, SignInResponse, SignedRequestDetails,
};
use authenticator_protocol::{
    AccountId, EcdsaSigner, PublicKey, RequestId, Signature, TypedNumber, UnixMillis,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use p256::pkcs8::EncodePublicKey;

fn details() -> RequestDetails {
    RequestDetails {
        v: 1,
        request_id: RequestId::random(),
        account_id: AccountId::random(),
        kind: RequestKind::Passwordless,
        upn: "bobby@contoso.test".into(),
        server_name: "Contoso".into(),
        app_name: Some("My Apps".into()),
        location: Some("Seattle, US".into()),
        device_name: None,
        number_matching: true,
        number_length: 2,
        nonce: b64(&[7u8; 32]),
        created_at: UnixMillis::now(),
        expires_at: UnixMillis::now().plus_secs(90),
        browser: None,
    }
}

fn bench(c: &mut Criterion) {
    let (server, _) = EcdsaSigner::generate().unwrap();
    let (device, _) = EcdsaSigner::generate().unwrap();
    let d = details();
    let signed = SignedRequestDetails::sign(&d, &server);
    let response = SignInResponse {
        request_id: d.request_id.clone(),
        account_id: d.account_id.clone(),
        nonce: [7u8; 32],
        decision: Decision::Approve,
        typed_number: Some(TypedNumber::parse("42").unwrap()),
        context_sha256: signed.context_sha256(),
        timestamp: UnixMillis::now(),
        browser_origin: None,
    };
    let bytes = response.signed_bytes();
    let sig = device.sign(&bytes);
    let device_pk = device.public_key();

    c.bench_function("server: sign request details", |b| {
        b.iter(|| SignedRequestDetails::sign(black_box(&d), &server))
    });
    c.bench_function("server: verify approval (canonical bytes + ECDSA)", |b| {
        b.iter(|| {
            device_pk
                .verify(&black_box(&response).signed_bytes(), black_box(&sig))
                .unwrap()
        })
    });
    c.bench_function("phone: verify request details", |b| {
        b.iter(|| black_box(&signed).verify(&server.public_key()).unwrap())
    });
    c.bench_function("phone: sign approval (software key)", |b| {
        b.iter(|| device.sign(black_box(&bytes)))
    });

    let spki = p256::PublicKey::from_sec1_bytes(device_pk.as_bytes())
        .unwrap()
        .to_public_key_der()
        .unwrap();
    let der = sig.to_der();
    c.bench_function("phone: normalize SPKI DER public key", |b| {
        b.iter(|| PublicKey::from_platform_bytes(black_box(spki.as_bytes())).unwrap())
    });
    c.bench_function("phone: normalize DER signature", |b| {
        b.iter(|| Signature::from_platform_bytes(black_box(&der)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
