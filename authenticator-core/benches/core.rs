//! The phone core's own hot paths, through its public API (issue 12, targets in
//! docs/PERFORMANCE.md, "Phone core (criterion)"):
//!
//! - push parse: `Authenticator::parse_push_data` (FCM data map) and `parse_push_json` (APNs
//!   `userInfo`);
//! - canonical encode + sign: `SignInResponse::signed_bytes`, `DeviceKeyStore::sign` with the
//!   `SoftwareKeyStore` (reads and decrypts the key file, signs, DER), `Signature::from_platform_bytes`;
//! - verify server details: `SignedRequestDetails::verify` of a realistic details document;
//! - store open with 50 accounts: `Authenticator::with_transport` + `accounts()` on a data
//!   directory holding 50 accounts enrolled (once, in setup) against a `FakeServer`;
//! - enrollment URL parse: `EnrollmentUrl::parse`.
//!
//! ```sh
//! cargo bench -p authenticator-core --bench core -- --warm-up-time 1 --measurement-time 3
//! ```
//! No figure here is asserted anywhere: `cargo test --benches` runs each benchmark once.
use std::hint::black_box;
use std::sync::Arc;

use authenticator_core::testing::{AlwaysVerified, FakeNetwork, FakeServer, MemoryKeyStore};
use authenticator_core::{
    Authenticator, DeviceKeyStore, PushKind, PushRegistration, SoftwareKeyStore, WrappingKeySource,
};
use authenticator_protocol::encoding::b64;
use authenticator_protocol::enroll::EnrollmentUrl;
use authenticator_protocol::push::PushEnvelope;
use authenticator_protocol::sign_in::{
    Decision, RequestDetails, RequestKind, SignInResponse, SignedRequestDetails,
};
use authenticator_protocol::{
    AccountId, EcdsaSigner, RequestId, Signature, TypedNumber, UnixMillis,
};
use criterion::{criterion_group, criterion_main, Criterion};

const ACCOUNTS: usize = 50;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A details document as the server signs it for a passwordless sign-in with number matching.
fn details() -> RequestDetails {
    let now = UnixMillis::now();
    RequestDetails {
        v: 1,
        request_id: RequestId::random(),
        account_id: AccountId::random(),
        kind: RequestKind::Passwordless,
        upn: "bobby.smith@contoso.test".into(),
        server_name: "Contoso".into(),
        app_name: Some("Contoso Mail".into()),
        location: Some("Seattle, Washington, US".into()),
        device_name: None,
        number_matching: true,
        number_length: 2,
        nonce: b64(&[7u8; 32]),
        created_at: now,
        expires_at: now.plus_secs(90),
        browser: None,
    }
}

/// An authenticator without accounts (the push parsers need none) in a throwaway directory.
fn empty_phone(dir: &tempfile::TempDir) -> Arc<Authenticator> {
    Authenticator::with_transport(
        dir.path().join("data").to_string_lossy().into_owned(),
        Arc::new(MemoryKeyStore::default()),
        FakeNetwork::new(&[]),
    )
    .expect("open")
}

fn push_parse(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let phone = empty_phone(&dir);
    let envelope = PushEnvelope::new(AccountId::random(), RequestId::random());
    let fcm = envelope.to_fcm_data();
    let apns = envelope.to_apns_json().to_string();
    let mut group = c.benchmark_group("push parse");
    group.bench_function("FCM data map (parse_push_data)", |b| {
        // The map is moved into the call, as uniffi hands it over: the clone is part of it.
        b.iter(|| phone.parse_push_data(black_box(&fcm).clone()).unwrap())
    });
    group.bench_function("APNs userInfo JSON (parse_push_json)", |b| {
        b.iter(|| phone.parse_push_json(black_box(&apns).clone()).unwrap())
    });
    group.finish();
}

fn encode_and_sign(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let keys = SoftwareKeyStore::open(
        dir.path().join("keys"),
        WrappingKeySource::Memory,
        Arc::new(AlwaysVerified),
    )
    .unwrap();
    let alias = "psi.bench.device".to_owned();
    rt.block_on(keys.generate(alias.clone(), false)).unwrap();
    let (server, _) = EcdsaSigner::generate().unwrap();
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
    let mut group = c.benchmark_group("approval");
    group.bench_function("canonical encode (signed_bytes)", |b| {
        b.iter(|| black_box(&response).signed_bytes())
    });
    group.bench_function("encode + sign (SoftwareKeyStore) + normalize", |b| {
        b.iter(|| {
            let message = black_box(&response).signed_bytes();
            let der = rt
                .block_on(keys.sign(alias.clone(), message, None))
                .unwrap();
            Signature::from_platform_bytes(&der).unwrap()
        })
    });
    group.finish();
}

fn verify_details(c: &mut Criterion) {
    let (server, _) = EcdsaSigner::generate().unwrap();
    let signed = SignedRequestDetails::sign(&details(), &server);
    let server_key = server.public_key();
    c.bench_function(
        "verify server details (SignedRequestDetails::verify)",
        |b| b.iter(|| black_box(&signed).verify(black_box(&server_key)).unwrap()),
    );
}

fn store_open(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let server = FakeServer::new("contoso", "http://127.0.0.1:7001/contoso/");
    let network = FakeNetwork::new(std::slice::from_ref(&server));
    let keys: Arc<dyn DeviceKeyStore> = Arc::new(MemoryKeyStore::default());
    {
        let phone = Authenticator::with_transport(data.clone(), keys.clone(), network.clone())
            .expect("open");
        rt.block_on(async {
            for i in 0..ACCOUNTS {
                let link = server.enrollment_url(&format!("user{i}@contoso.test"), "User");
                let push = PushRegistration {
                    kind: PushKind::LongPoll,
                    token: String::new(),
                };
                phone
                    .enroll(link, "Pixel 9".into(), push)
                    .await
                    .expect("enroll");
            }
            assert_eq!(phone.accounts().await.unwrap().len(), ACCOUNTS);
        });
    }
    c.bench_function("store open (50 accounts) + accounts()", |b| {
        b.iter(|| {
            let phone =
                Authenticator::with_transport(data.clone(), keys.clone(), network.clone()).unwrap();
            let accounts = rt.block_on(phone.accounts()).unwrap();
            debug_assert_eq!(accounts.len(), ACCOUNTS);
            accounts
        })
    });
}

fn enrollment_url_parse(c: &mut Criterion) {
    let server = FakeServer::new("contoso", "https://signin.contoso.example/tenant/");
    let link = server.enrollment_url("bobby@contoso.test", "Bobby Smith");
    c.bench_function("enrollment URL parse (EnrollmentUrl::parse)", |b| {
        b.iter(|| EnrollmentUrl::parse(black_box(&link)).unwrap())
    });
}

criterion_group!(
    benches,
    push_parse,
    encode_and_sign,
    verify_details,
    store_open,
    enrollment_url_parse
);
criterion_main!(benches);
