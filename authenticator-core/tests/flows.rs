//! End-to-end flows of the public API against in-process fake servers that verify every
//! signature with the protocol crate.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use authenticator_core::testing::{
    CountingVerifier, FakeNetwork, FakeServer, Forgery, KeyCall, MemoryKeyStore, PollWaits,
    RecordingKeyStore,
};
use authenticator_core::{
    Authenticator, AuthenticatorError, Decision, PushKind, PushOutcome, PushRegistration,
    RequestKind, VerificationOutcome,
};
use authenticator_protocol::encoding::{b64, sha256};
use authenticator_protocol::sign_in::RequestKind as WireKind;

const TTL: u64 = 90_000;

struct Phone {
    auth: Arc<Authenticator>,
    keys: Arc<RecordingKeyStore>,
    memory: Arc<MemoryKeyStore>,
    verifier: Arc<CountingVerifier>,
    network: Arc<FakeNetwork>,
    dir: tempfile::TempDir,
}

fn phone(servers: &[Arc<FakeServer>]) -> Phone {
    let dir = tempfile::tempdir().unwrap();
    let verifier = CountingVerifier::new(VerificationOutcome::Verified);
    // The key store verifies the user for the signatures that carry a prompt, as a phone's does.
    let memory = Arc::new(MemoryKeyStore::with_verifier(verifier.clone()));
    let keys = RecordingKeyStore::new(memory.clone());
    let network = FakeNetwork::new(servers);
    let auth = Authenticator::with_transport(
        dir.path().join("data").to_string_lossy().into_owned(),
        keys.clone(),
        network.clone(),
    )
    .unwrap();
    Phone {
        auth,
        keys,
        memory,
        verifier,
        network,
        dir,
    }
}

fn server(name: &str, port: u16) -> Arc<FakeServer> {
    FakeServer::new(name, &format!("http://127.0.0.1:{port}/{name}/"))
}

fn longpoll() -> PushRegistration {
    PushRegistration {
        kind: PushKind::LongPoll,
        token: String::new(),
    }
}

async fn enroll(p: &Phone, s: &FakeServer, upn: &str) -> String {
    p.auth
        .enroll(s.enrollment_url(upn, "User"), "Pixel 9".into(), longpoll())
        .await
        .unwrap()
        .account_id
}

/// The typed error of an enrollment that must fail.
async fn enrollment_error(p: &Phone, link: String) -> AuthenticatorError {
    p.auth
        .enroll(link, "Pixel".into(), longpoll())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn two_accounts_from_two_servers_on_one_core() {
    let (a, b) = (server("contoso", 7001), server("fabrikam", 7002));
    let p = phone(&[a.clone(), b.clone()]);
    let id_a = enroll(&p, &a, "bobby@contoso.test").await;
    let id_b = p
        .auth
        .enroll(
            b.enrollment_url("bob@fabrikam.test", "Bob"),
            "Pixel 9".into(),
            PushRegistration {
                kind: PushKind::Fcm,
                token: "fcm-token".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(id_b.server_name, "fabrikam");
    assert_eq!(id_b.upn, "bob@fabrikam.test");
    assert!(!id_b.phone_sign_in_enabled);
    let accounts = p.auth.accounts().await.unwrap();
    assert_eq!(accounts.len(), 2);
    assert_ne!(id_a, id_b.account_id);
    assert_eq!((a.enrolled_accounts(), b.enrolled_accounts()), (1, 1));
    let generated = p.keys.generated();
    assert_eq!(generated.len(), 2);
    assert_ne!(generated[0], generated[1]);
    assert!(generated
        .iter()
        .all(|g| g.starts_with("psi.") && g.ends_with(".device")));
    // The same server twice (a second user) also works.
    enroll(&p, &a, "alice@contoso.test").await;
    assert_eq!(p.auth.accounts().await.unwrap().len(), 3);
}

#[tokio::test]
async fn server_key_not_matching_the_pinned_fingerprint_is_rejected() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    s.set_forgery(Forgery::OtherServerKey);
    let err = enrollment_error(&p, s.enrollment_url("u@x.test", "U")).await;
    assert_eq!(err, AuthenticatorError::ServerKeyMismatch);

    // A link pinning another fingerprint.
    s.set_forgery(Forgery::None);
    let other = server("other", 7009);
    let link = s.enrollment_url("u@x.test", "U").replace(
        &s.public_key().fingerprint(),
        &other.public_key().fingerprint(),
    );
    let err = enrollment_error(&p, link).await;
    assert_eq!(err, AuthenticatorError::ServerKeyMismatch);
    assert!(p.auth.accounts().await.unwrap().is_empty());
    assert!(
        p.keys.generated().is_empty(),
        "no key before the server is pinned"
    );
    assert!(p.memory.is_empty());
    assert_eq!(s.enrolled_accounts(), 0);
}

#[tokio::test]
async fn bad_challenge_signature_is_rejected() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    s.set_forgery(Forgery::BadChallengeSignature);
    let err = enrollment_error(&p, s.enrollment_url("u@x.test", "U")).await;
    assert_eq!(err, AuthenticatorError::BadServerSignature);
    assert!(p.auth.accounts().await.unwrap().is_empty());
    assert!(p.memory.is_empty());
}

#[tokio::test]
async fn failure_after_key_generation_deletes_the_key_and_stores_nothing() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    s.set_forgery(Forgery::GarbageEnrollComplete);
    let err = enrollment_error(&p, s.enrollment_url("u@x.test", "U")).await;
    assert!(
        matches!(&err, AuthenticatorError::ServerRejected { code, .. } if code == "invalid_response"),
        "{err:?}"
    );
    let generated = p.keys.generated();
    assert_eq!(generated.len(), 1);
    assert_eq!(p.keys.deleted(), generated);
    assert!(p.memory.is_empty());
    assert!(p.auth.accounts().await.unwrap().is_empty());

    // A used code is refused by the server: typed error, key cleaned up.
    s.set_forgery(Forgery::None);
    let link = s.enrollment_url("u@x.test", "U");
    p.auth
        .enroll(link.clone(), "Pixel".into(), longpoll())
        .await
        .unwrap();
    let err = enrollment_error(&p, link).await;
    assert!(
        matches!(&err, AuthenticatorError::ServerRejected { code, status: 400, .. } if code == "invalid_code"),
        "{err:?}"
    );
    assert_eq!(p.memory.len(), 1);
}

#[tokio::test]
async fn the_same_account_twice_is_already_enrolled() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    s.set_fixed_account_id(Some(&id));
    s.set_forgery(Forgery::FixedAccountId);
    let err = enrollment_error(&p, s.enrollment_url("u@x.test", "U")).await;
    assert_eq!(err, AuthenticatorError::AlreadyEnrolled);
    assert_eq!(p.auth.accounts().await.unwrap().len(), 1);
    assert_eq!(p.memory.len(), 1, "the second key was deleted");
}

#[tokio::test]
async fn malformed_enrollment_input_is_a_typed_error_without_network() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let good = s.enrollment_url("u@x.test", "U");
    for bad in [
        String::new(),
        "hello".into(),
        "https://example.com/enroll?v=1".into(),
        good.replace("v=1", "v=7"),
        good.replace("http%3A%2F%2F127.0.0.1", "http%3A%2F%2Fexample.com"),
        good.replace("&fp=", "&nofp="),
        format!("{good}&v=1"),
    ] {
        let err = enrollment_error(&p, bad.clone()).await;
        assert!(
            matches!(err, AuthenticatorError::InvalidEnrollmentUrl { .. }),
            "{bad}: {err:?}"
        );
        // The code never appears in a message.
        assert!(!err
            .to_string()
            .contains(&good[good.find("code=").unwrap() + 5..][..22]));
    }
    for (name, push) in [
        ("", longpoll()),
        ("x".repeat(65).as_str(), longpoll()),
        ("Pixel\nLocation: Seattle", longpoll()),
        ("Pixel\u{202e}", longpoll()),
        // Issue 20, finding 5: the one gate for names, as the server applies it.
        ("Pixel\u{200b}", longpoll()),
        ("Pi\u{ad}xel", longpoll()),
        ("Pixel \u{e000}", longpoll()),
        ("👨\u{200d}👩\u{200d}👧", longpoll()),
        (
            "Pixel",
            PushRegistration {
                kind: PushKind::Apns,
                token: String::new(),
            },
        ),
        (
            "Pixel",
            PushRegistration {
                kind: PushKind::LongPoll,
                token: "t".into(),
            },
        ),
    ] {
        let err = p
            .auth
            .enroll(good.clone(), name.into(), push)
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthenticatorError::InvalidInput { .. }),
            "{err:?}"
        );
    }
    assert_eq!(p.network.request_count(), 0);
}

#[tokio::test]
async fn push_payloads_parse_and_malformed_ones_are_typed_errors() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let (rid, _) = s.create_request(&id, WireKind::Push, true, TTL);
    let env = s.envelope(&id, &rid);

    let apns = env.to_apns_json().to_string();
    let target = p.auth.parse_push_json(apns.clone()).unwrap();
    assert_eq!(
        (target.account_id.as_str(), target.request_id.as_str()),
        (id.as_str(), rid.as_str())
    );
    assert_eq!(p.auth.parse_push_data(env.to_fcm_data()).unwrap(), target);
    assert_eq!(
        p.auth
            .parse_push_json(serde_json::to_string(&env).unwrap())
            .unwrap(),
        target
    );

    for bad in [
        "",
        "null",
        "[]",
        "{}",
        r#"{"aps":{}}"#,
        r#"{"psi":{"v":2,"aid":"x","rid":"y"}}"#,
        "{\"psi\":",
    ] {
        let err = p.auth.parse_push_json(bad.into()).unwrap_err();
        assert!(
            matches!(err, AuthenticatorError::InvalidPushPayload { .. }),
            "{bad}"
        );
        let err = p.auth.handle_push_json(bad.into()).await.unwrap_err();
        assert!(
            matches!(err, AuthenticatorError::InvalidPushPayload { .. }),
            "{bad}"
        );
    }
    let mut missing = env.to_fcm_data();
    missing.remove("psi_rid");
    let mut bad_version = env.to_fcm_data();
    bad_version.insert("psi_v".into(), "x".into());
    for bad in [HashMap::new(), missing, bad_version] {
        let err = p.auth.handle_push_data(bad).await.unwrap_err();
        assert!(matches!(err, AuthenticatorError::InvalidPushPayload { .. }));
    }

    // A well-formed push for an account not on this phone.
    let stranger = s.envelope(&b64(&[1u8; 16]), &rid);
    assert_eq!(
        p.auth
            .handle_push_data(stranger.to_fcm_data())
            .await
            .unwrap(),
        PushOutcome::UnknownAccount
    );

    // The real one shows the verified details.
    match p.auth.handle_push_json(apns).await.unwrap() {
        PushOutcome::ShowRequest { request } => {
            assert_eq!(request.request_id, rid);
            assert_eq!(request.kind, RequestKind::Push);
            assert_eq!(request.app_name.as_deref(), Some("My Apps"));
            assert!(request.number_matching);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn forged_or_malformed_details_are_typed_errors_and_not_stored() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let (rid, _) = s.create_request(&id, WireKind::Push, true, TTL);
    for (forgery, check) in [
        (Forgery::BadDetailsSignature, "bad"),
        (Forgery::DetailsOfOtherRequest, "bad"),
        (Forgery::SignedGarbageDetails, "invalid"),
        (Forgery::GarbageBody, "invalid"),
    ] {
        s.set_forgery(forgery);
        let err = p
            .auth
            .fetch_request(id.clone(), rid.clone())
            .await
            .unwrap_err();
        match check {
            "bad" => assert_eq!(err, AuthenticatorError::BadServerSignature, "{forgery:?}"),
            _ => assert!(
                matches!(&err, AuthenticatorError::ServerRejected { code, .. } if code == "invalid_response"),
                "{forgery:?}: {err:?}"
            ),
        }
        let err = p.auth.poll(0).await.unwrap_err();
        assert!(
            matches!(
                err,
                AuthenticatorError::BadServerSignature | AuthenticatorError::ServerRejected { .. }
            ),
            "{forgery:?}: {err:?}"
        );
        assert!(p.auth.pending_requests().await.unwrap().is_empty());
        let err = p
            .auth
            .approve(id.clone(), rid.clone(), "42".into())
            .await
            .unwrap_err();
        assert_eq!(err, AuthenticatorError::UnknownRequest);
    }
    s.set_forgery(Forgery::None);
    let bad_ids = [("nope", rid.as_str()), (id.as_str(), "nope")];
    for (a, r) in bad_ids {
        let err = p.auth.fetch_request(a.into(), r.into()).await.unwrap_err();
        assert!(matches!(err, AuthenticatorError::InvalidInput { .. }));
    }
    let err = p
        .auth
        .fetch_request(b64(&[9u8; 16]), rid.clone())
        .await
        .unwrap_err();
    assert_eq!(err, AuthenticatorError::NotEnrolled);
    assert_eq!(
        p.auth.fetch_request(id, rid).await.unwrap().upn,
        "user@fake.test"
    );
}

#[tokio::test]
async fn approve_sends_the_typed_number_and_the_hash_of_the_shown_details() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let (rid, number) = s.create_request(&id, WireKind::Push, true, TTL);
    let pending = p.auth.poll(5).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].request_id, rid);
    p.keys.clear();

    assert_eq!(
        p.auth
            .approve(id.clone(), rid.clone(), number.clone())
            .await
            .unwrap(),
        Decision::Approved
    );
    let responses = s.responses();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].typed_number.as_deref(), Some(number.as_str()));
    assert_eq!(
        responses[0].context_sha256,
        b64(&sha256(s.details_text(&rid).as_bytes()))
    );
    assert_eq!(s.status(&rid), "approved");
    assert_eq!(
        p.verifier.reasons(),
        vec!["Approve sign-in to contoso as user@fake.test".to_string()]
    );
    // Push request without phone sign-in: the device key signs.
    let signs = p.keys.signs();
    assert_eq!(signs.len(), 1);
    assert!(signs[0].0.ends_with(".device"));
    assert!(p.auth.pending_requests().await.unwrap().is_empty());
    assert_eq!(
        p.auth.approve(id.clone(), rid, number).await.unwrap_err(),
        AuthenticatorError::AlreadyAnswered
    );
}

#[tokio::test]
async fn wrong_number_keeps_the_request_pending_until_it_fails() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let (rid, number) = s.create_request(&id, WireKind::Push, true, TTL);
    p.auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    let wrong = if number == "10" { "11" } else { "10" };
    assert_eq!(
        p.auth
            .approve(id.clone(), rid.clone(), wrong.into())
            .await
            .unwrap_err(),
        AuthenticatorError::WrongNumber { attempts_left: 2 }
    );
    assert_eq!(p.auth.pending_requests().await.unwrap().len(), 1);
    assert_eq!(
        p.auth
            .approve(id.clone(), rid.clone(), number)
            .await
            .unwrap(),
        Decision::Approved
    );

    let (rid, _) = s.create_request(&id, WireKind::Push, true, TTL);
    p.auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    let wrong = "00";
    assert!(matches!(
        p.auth
            .approve(id.clone(), rid.clone(), wrong.into())
            .await
            .unwrap_err(),
        AuthenticatorError::WrongNumber { attempts_left: 2 }
    ));
    assert!(matches!(
        p.auth
            .approve(id.clone(), rid.clone(), wrong.into())
            .await
            .unwrap_err(),
        AuthenticatorError::WrongNumber { attempts_left: 1 }
    ));
    assert_eq!(
        p.auth
            .approve(id.clone(), rid.clone(), wrong.into())
            .await
            .unwrap_err(),
        AuthenticatorError::RequestFailed
    );
    assert!(p.auth.pending_requests().await.unwrap().is_empty());
    assert_eq!(s.status(&rid), "failed");
}

#[tokio::test]
async fn refused_or_cancelled_verification_signs_nothing() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let (rid, number) = s.create_request(&id, WireKind::Push, true, TTL);
    p.auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    let cases = [
        (
            Ok(VerificationOutcome::Denied),
            AuthenticatorError::VerificationFailed,
        ),
        (
            Ok(VerificationOutcome::Cancelled),
            AuthenticatorError::UserCancelled,
        ),
        (
            Err(authenticator_core::PlatformError::Cancelled),
            AuthenticatorError::UserCancelled,
        ),
        (
            Err(authenticator_core::PlatformError::NotAvailable),
            AuthenticatorError::VerificationUnavailable,
        ),
    ];
    for (i, (answer, expected)) in cases.into_iter().enumerate() {
        p.keys.clear();
        p.verifier.set_answer(answer);
        let err = p
            .auth
            .approve(id.clone(), rid.clone(), number.clone())
            .await
            .unwrap_err();
        assert_eq!(err, expected);
        assert_eq!(p.verifier.calls(), i + 1, "the verifier was asked");
        assert!(p.keys.signs().is_empty(), "nothing was signed");
    }
    assert!(s.responses().is_empty());
    assert_eq!(s.status(&rid), "pending");
    assert_eq!(p.auth.pending_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_number_shape_is_refused_before_verification() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let (rid, _) = s.create_request(&id, WireKind::Push, true, TTL);
    p.auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    p.keys.clear();
    for bad in ["", "4", "123", "ab", "4 2"] {
        assert_eq!(
            p.auth
                .approve(id.clone(), rid.clone(), bad.into())
                .await
                .unwrap_err(),
            AuthenticatorError::InvalidNumber
        );
    }
    assert_eq!(p.verifier.calls(), 0);
    assert!(p.keys.calls().is_empty());
    // Without number matching the typed text is not needed.
    let (rid, _) = s.create_request(&id, WireKind::Push, false, TTL);
    p.auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    assert_eq!(
        p.auth
            .approve(id.clone(), rid, String::new())
            .await
            .unwrap(),
        Decision::Approved
    );
    assert_eq!(s.responses()[0].typed_number, None);
    // Malformed request ids.
    assert!(matches!(
        p.auth
            .approve(id.clone(), "../etc".into(), "42".into())
            .await
            .unwrap_err(),
        AuthenticatorError::InvalidInput { .. }
    ));
}

/// Issue 20, finding 4, the phone's side: ids and numbers are taken exactly as given, as the
/// server takes them. The refusal vectors of PROTOCOL.md §9 and the padded forms of the real
/// ids and number are refused with typed errors before anything is asked or signed; they used
/// to be trimmed into the real ones (`"42\n"` was 42).
#[tokio::test]
async fn padded_ids_and_numbers_are_refused_not_trimmed() {
    const V1: &str = include_str!("../../authenticator-protocol/tests/vectors/v1.json");
    let vectors: serde_json::Value = serde_json::from_str(V1).unwrap();
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let (rid, number) = s.create_request(&id, WireKind::Push, true, TTL);
    p.auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    p.keys.clear();

    let mut numbers: Vec<String> = vectors["refusals"]["typed_number"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["typed_number"].as_str().unwrap().to_owned())
        .collect();
    numbers.extend([
        format!(" {number}"),
        format!("{number}\n"),
        format!("\t{number}"),
        format!("{number}\u{a0}"),
        format!(" {number}\n"),
    ]);
    for typed in &numbers {
        assert_eq!(
            p.auth
                .approve(id.clone(), rid.clone(), typed.clone())
                .await
                .unwrap_err(),
            AuthenticatorError::InvalidNumber,
            "{typed:?}"
        );
    }
    let padded_ids = [
        (format!(" {id}"), rid.clone()),
        (format!("{id}\n"), rid.clone()),
        (id.clone(), format!("{rid}\t")),
        (id.clone(), format!("\u{a0}{rid}")),
    ];
    for (a, r) in &padded_ids {
        for result in [
            p.auth.approve(a.clone(), r.clone(), number.clone()).await,
            p.auth.deny(a.clone(), r.clone()).await,
            p.auth.report_fraud(a.clone(), r.clone()).await,
        ] {
            assert!(
                matches!(result, Err(AuthenticatorError::InvalidInput { .. })),
                "{a:?} {r:?}: {result:?}"
            );
        }
        let fetched = p.auth.fetch_request(a.clone(), r.clone()).await;
        assert!(
            matches!(fetched, Err(AuthenticatorError::InvalidInput { .. })),
            "{a:?} {r:?}"
        );
        // In a push, too.
        let push = serde_json::json!({"v": 1, "aid": a, "rid": r}).to_string();
        assert!(matches!(
            p.auth.handle_push_json(push).await,
            Err(AuthenticatorError::InvalidPushPayload { .. })
        ));
    }
    for v in vectors["refusals"]["ids"].as_array().unwrap() {
        let text = v["text"].as_str().unwrap().to_owned();
        let result = match v["field"].as_str().unwrap() {
            "account_id" => p.auth.deny(text.clone(), rid.clone()).await,
            _ => p.auth.deny(id.clone(), text.clone()).await,
        };
        assert!(
            matches!(result, Err(AuthenticatorError::InvalidInput { .. })),
            "{text:?}"
        );
    }
    assert_eq!(p.verifier.calls(), 0, "nobody was asked");
    assert!(p.keys.calls().is_empty(), "nothing was signed");
    assert!(s.responses().is_empty(), "nothing was sent");
    assert_eq!(s.status(&rid), "pending");
    // The exact ids and digits approve.
    assert_eq!(
        p.auth.approve(id, rid, number.clone()).await.unwrap(),
        Decision::Approved
    );
    assert_eq!(
        s.responses()[0].typed_number.as_deref(),
        Some(number.as_str())
    );
}

#[tokio::test]
async fn a_longer_number_must_be_typed_whole_before_anything_is_signed() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    s.set_number_length(6);
    let (rid, number) = s.create_request(&id, WireKind::Push, true, TTL);
    assert_eq!(number.len(), 6);
    let shown = p.auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    assert_eq!(
        shown.number_length, 6,
        "the app knows how many digits to ask"
    );
    p.keys.clear();
    // Two digits (the old length), the first digits, one digit too many: refused here.
    for bad in [&number[..2], &number[..5], &format!("{number}0")[..]] {
        assert_eq!(
            p.auth
                .approve(id.clone(), rid.clone(), bad.into())
                .await
                .unwrap_err(),
            AuthenticatorError::InvalidNumber,
            "{bad}"
        );
    }
    assert_eq!(p.verifier.calls(), 0);
    assert!(p.keys.calls().is_empty());
    assert!(s.responses().is_empty());
    assert_eq!(
        p.auth.approve(id, rid, number.clone()).await.unwrap(),
        Decision::Approved
    );
    assert_eq!(
        s.responses()[0].typed_number.as_deref(),
        Some(number.as_str())
    );
}

#[tokio::test]
async fn expired_request_is_refused_without_asking_anything() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let (rid, number) = s.create_request(&id, WireKind::Push, true, 400);
    p.auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(p.auth.pending_requests().await.unwrap().is_empty());
    p.keys.clear();
    let before = p.network.request_count();
    assert_eq!(
        p.auth
            .approve(id.clone(), rid.clone(), number)
            .await
            .unwrap_err(),
        AuthenticatorError::RequestExpired
    );
    assert_eq!(
        p.auth.deny(id.clone(), rid.clone()).await.unwrap_err(),
        AuthenticatorError::RequestExpired,
        "closed locally after expiry, and still said to be expired (not answered)"
    );
    assert_eq!(p.verifier.calls(), 0);
    assert!(p.keys.calls().is_empty());
    assert_eq!(p.network.request_count(), before);
    // A push for an expired request: the server says so.
    let env = s.envelope(&p.auth.accounts().await.unwrap()[0].account_id, &rid);
    let (id2, _) = (env.account_id.to_string(), ());
    let (rid2, _) = s.create_request(&id2, WireKind::Push, true, 1);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        p.auth
            .handle_push_data(s.envelope(&id2, &rid2).to_fcm_data())
            .await
            .unwrap(),
        PushOutcome::Expired
    );
}

#[tokio::test]
async fn deny_and_report_need_no_verification_and_use_the_device_key() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let (r1, _) = s.create_request(&id, WireKind::Push, true, TTL);
    let (r2, _) = s.create_request(&id, WireKind::Passwordless, true, TTL);
    assert_eq!(p.auth.poll(0).await.unwrap().len(), 2);
    p.verifier.set_answer(Ok(VerificationOutcome::Denied));
    assert_eq!(
        p.auth.deny(id.clone(), r1.clone()).await.unwrap(),
        Decision::Denied
    );
    assert_eq!(
        p.auth.report_fraud(id.clone(), r2.clone()).await.unwrap(),
        Decision::Reported
    );
    assert_eq!(p.verifier.calls(), 0);
    assert_eq!(
        (s.status(&r1), s.status(&r2)),
        ("denied".into(), "reported".into())
    );
    assert_eq!(
        p.auth
            .handle_push_data(s.envelope(&id, &r1).to_fcm_data())
            .await
            .unwrap(),
        PushOutcome::AlreadyAnswered
    );
    let responses = s.responses();
    assert!(responses.iter().all(|r| r.typed_number.is_none()));
}

#[tokio::test]
async fn phone_sign_in_needs_verification_and_then_signs_with_the_passwordless_key() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let (rid, number) = s.create_request(&id, WireKind::Passwordless, true, TTL);
    p.auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    assert_eq!(
        p.auth
            .approve(id.clone(), rid.clone(), number.clone())
            .await
            .unwrap_err(),
        AuthenticatorError::PhoneSignInNotEnabled
    );

    p.keys.clear();
    let keys_before = p.memory.len();
    p.verifier.set_answer(Ok(VerificationOutcome::Denied));
    assert_eq!(
        p.auth.enable_phone_sign_in(id.clone()).await.unwrap_err(),
        AuthenticatorError::VerificationFailed
    );
    // The new key's first signature carried the prompt and was refused: nothing was signed
    // (not even by the device key), and the new key is gone.
    assert!(p.keys.signs().is_empty(), "{:?}", p.keys.calls());
    let refused = p.keys.sign_requests();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].0.ends_with(".passwordless"));
    assert_eq!(
        refused[0].2.as_deref(),
        Some("Enable phone sign-in for u@x.test")
    );
    assert_eq!(p.keys.deleted(), vec![refused[0].0.clone()]);
    assert_eq!(p.memory.len(), keys_before);
    assert!(!s.has_passwordless_key(&id));
    assert!(!p.auth.accounts().await.unwrap()[0].phone_sign_in_enabled);

    p.keys.clear();
    p.verifier.set_answer(Ok(VerificationOutcome::Verified));
    let summary = p.auth.enable_phone_sign_in(id.clone()).await.unwrap();
    assert!(summary.phone_sign_in_enabled);
    assert!(s.has_passwordless_key(&id));
    assert_eq!(
        p.verifier.reasons().last().unwrap(),
        "Enable phone sign-in for u@x.test"
    );
    let generated = p.keys.calls().into_iter().find_map(|c| match c {
        KeyCall::Generate {
            alias,
            require_user_verification,
        } => Some((alias, require_user_verification)),
        _ => None,
    });
    let (alias, uv) = generated.unwrap();
    assert!(uv && alias.ends_with(".passwordless"));

    p.keys.clear();
    assert_eq!(
        p.auth.approve(id.clone(), rid, number).await.unwrap(),
        Decision::Approved
    );
    assert_eq!(p.keys.signs()[0].0, alias);
}

#[tokio::test]
async fn enabling_phone_sign_in_cleans_up_when_the_server_refuses() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let keys_before = p.memory.len();
    // Make the device signature fail: the server never sees the key, the new key is deleted.
    p.keys
        .fail_signing(Some(authenticator_core::PlatformError::Failed {
            reason: "boom".into(),
        }));
    let err = p.auth.enable_phone_sign_in(id.clone()).await.unwrap_err();
    assert!(
        matches!(err, AuthenticatorError::KeyStore { .. }),
        "{err:?}"
    );
    assert_eq!(p.memory.len(), keys_before);
    assert!(!p.auth.accounts().await.unwrap()[0].phone_sign_in_enabled);
    assert_eq!(
        p.auth
            .enable_phone_sign_in(b64(&[3u8; 16]))
            .await
            .unwrap_err(),
        AuthenticatorError::NotEnrolled
    );
}

#[tokio::test]
async fn poll_covers_every_account_and_survives_one_unreachable_server() {
    let (a, b) = (server("contoso", 7001), server("fabrikam", 7002));
    let p = phone(&[a.clone(), b.clone()]);
    let ia = enroll(&p, &a, "u@contoso.test").await;
    let ib = enroll(&p, &b, "u@fabrikam.test").await;
    let (ra, _) = a.create_request(&ia, WireKind::Push, false, TTL);
    let (rb, _) = b.create_request(&ib, WireKind::Push, false, TTL);
    let mut ids: Vec<String> = p
        .auth
        .poll(1)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    ids.sort();
    let mut expected = vec![ra, rb];
    expected.sort();
    assert_eq!(ids, expected);

    // Server b becomes unreachable: a's requests still arrive.
    let p2 = {
        let network = FakeNetwork::new(std::slice::from_ref(&a));
        Authenticator::with_transport(
            p.dir.path().join("data").to_string_lossy().into_owned(),
            p.keys.clone(),
            network,
        )
        .unwrap()
    };
    let (ra2, _) = a.create_request(&ia, WireKind::Push, false, TTL);
    let pending = p2.poll(0).await.unwrap();
    assert!(pending.iter().any(|r| r.request_id == ra2));
}

/// Yields (paused time does not advance while tasks run) until `done`; fails instead of spinning.
async fn until(done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition never became true");
}

/// Issue 8 (A): with two accounts, a request pending on one must not wait for the other
/// account's long-poll to end. Paused time: the fake server's 20 s wait is virtual, so the
/// elapsed time measures the behaviour exactly (without the fix it is the full 20 s).
#[tokio::test(start_paused = true)]
async fn poll_returns_as_soon_as_one_account_has_a_request() {
    let (a, b) = (server("contoso", 7001), server("fabrikam", 7002));
    a.hold_long_polls(true);
    b.hold_long_polls(true);
    let p = phone(&[a.clone(), b.clone()]);
    let ia = enroll(&p, &a, "u@contoso.test").await;
    enroll(&p, &b, "u@fabrikam.test").await;

    // Pending before the poll starts: a's server answers at once, b's would wait 20 s.
    let (ra, _) = a.create_request(&ia, WireKind::Push, false, TTL);
    let started = tokio::time::Instant::now();
    let pending = p.auth.poll(20).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        pending.iter().map(|r| &r.request_id).collect::<Vec<_>>(),
        vec![&ra]
    );
    assert_eq!(
        b.poll_waits(),
        PollWaits {
            started: 1,
            cancelled: 1,
            ..PollWaits::default()
        },
        "b's wait must be cancelled, not waited out"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");

    // Arriving during the wait: a's wait wakes, b's is cancelled again. Answer ra first, so
    // a's server has nothing pending and holds the poll too.
    assert_eq!(p.auth.deny(ia.clone(), ra).await.unwrap(), Decision::Denied);
    let auth = p.auth.clone();
    let waiting = tokio::spawn(async move { auth.poll(20).await });
    until(|| a.poll_waits().started == 1 && b.poll_waits().started == 2).await;
    let started = tokio::time::Instant::now();
    let (ra2, _) = a.create_request(&ia, WireKind::Push, false, TTL);
    let pending = waiting.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        pending.iter().map(|r| &r.request_id).collect::<Vec<_>>(),
        vec![&ra2]
    );
    assert_eq!(a.poll_waits().woken, 1);
    assert_eq!(b.poll_waits().cancelled, 2);
    assert_eq!(b.poll_waits().timed_out, 0);
}

/// `cancel_poll` still ends every account's wait at once with the concurrent polls.
#[tokio::test(start_paused = true)]
async fn cancel_poll_ends_every_accounts_wait() {
    let (a, b) = (server("contoso", 7001), server("fabrikam", 7002));
    a.hold_long_polls(true);
    b.hold_long_polls(true);
    let p = phone(&[a.clone(), b.clone()]);
    enroll(&p, &a, "u@contoso.test").await;
    enroll(&p, &b, "u@fabrikam.test").await;
    let auth = p.auth.clone();
    let waiting = tokio::spawn(async move { auth.poll(20).await });
    until(|| a.poll_waits().started == 1 && b.poll_waits().started == 1).await;
    let started = tokio::time::Instant::now();
    p.auth.cancel_poll();
    assert!(waiting.await.unwrap().unwrap().is_empty());
    assert!(started.elapsed() < Duration::from_secs(10));
    for s in [&a, &b] {
        assert_eq!(
            s.poll_waits(),
            PollWaits {
                started: 1,
                cancelled: 1,
                ..PollWaits::default()
            }
        );
    }
    // Without requests and without cancel, a poll waits its time out on both accounts.
    assert!(p.auth.poll(20).await.unwrap().is_empty());
    assert_eq!(a.poll_waits().timed_out, 1);
    assert_eq!(b.poll_waits().timed_out, 1);
}

#[tokio::test]
async fn data_persists_across_instances_on_the_same_directory() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let (rid, number) = s.create_request(&id, WireKind::Push, true, TTL);
    p.auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    let data_dir = p.dir.path().join("data").to_string_lossy().into_owned();
    let accounts = p.auth.accounts().await.unwrap();
    drop(p.auth);

    let again = Authenticator::with_transport(
        data_dir,
        p.keys.clone(),
        FakeNetwork::new(std::slice::from_ref(&s)),
    )
    .unwrap();
    assert_eq!(again.accounts().await.unwrap(), accounts);
    assert_eq!(again.pending_requests().await.unwrap()[0].request_id, rid);
    assert_eq!(
        again.approve(id.clone(), rid, number).await.unwrap(),
        Decision::Approved
    );
}

#[tokio::test]
async fn remove_account_deletes_its_keys_and_requests() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    p.auth.enable_phone_sign_in(id.clone()).await.unwrap();
    let (rid, _) = s.create_request(&id, WireKind::Push, true, TTL);
    p.auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    assert_eq!(p.memory.len(), 2);
    p.auth.remove_account(id.clone()).await.unwrap();
    assert!(p.memory.is_empty());
    assert!(p.auth.accounts().await.unwrap().is_empty());
    assert!(p.auth.pending_requests().await.unwrap().is_empty());
    assert_eq!(
        p.auth
            .handle_push_data(s.envelope(&id, &rid).to_fcm_data())
            .await
            .unwrap(),
        PushOutcome::UnknownAccount
    );
    assert_eq!(
        p.auth.remove_account(id).await.unwrap_err(),
        AuthenticatorError::NotEnrolled
    );
}

#[tokio::test]
async fn removing_an_account_tells_its_server_now_or_at_a_later_poll() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    p.auth.enable_phone_sign_in(id.clone()).await.unwrap();
    // Reachable: the server forgets the device at once; both keys go.
    p.auth.remove_account(id).await.unwrap();
    assert_eq!(s.enrolled_accounts(), 0);
    assert!(p.memory.is_empty());

    // Unreachable: the account goes at once; the device key stays to sign the notice later.
    let id = enroll(&p, &s, "v@x.test").await;
    let data_dir = p.dir.path().join("data").to_string_lossy().into_owned();
    let offline =
        Authenticator::with_transport(data_dir.clone(), p.keys.clone(), FakeNetwork::new(&[]))
            .unwrap();
    offline.remove_account(id).await.unwrap();
    assert!(offline.accounts().await.unwrap().is_empty());
    assert_eq!(s.enrolled_accounts(), 1, "not told yet");
    assert_eq!(p.memory.len(), 1, "the device key waits for the notice");
    // Still offline: a poll tries again and keeps it.
    offline.poll(0).await.unwrap();
    assert_eq!(p.memory.len(), 1);
    drop(offline);
    // Online again: the next poll tells the server, then deletes the key.
    let online = Authenticator::with_transport(
        data_dir,
        p.keys.clone(),
        FakeNetwork::new(std::slice::from_ref(&s)),
    )
    .unwrap();
    online.poll(0).await.unwrap();
    assert_eq!(s.enrolled_accounts(), 0);
    assert!(p.memory.is_empty());
    // Told once: later polls send nothing more.
    p.keys.clear();
    online.poll(0).await.unwrap();
    assert!(p.keys.signs().is_empty());
}

#[tokio::test]
async fn keys_the_key_store_fails_to_delete_are_deleted_by_the_next_instance() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    p.auth.enable_phone_sign_in(id.clone()).await.unwrap();
    let device_and_passwordless = p.keys.generated();
    assert_eq!(device_and_passwordless.len(), 2);
    // Re-enabling replaces the phone-sign-in key; the old one cannot be deleted now.
    p.keys
        .fail_deleting(Some(authenticator_core::PlatformError::Failed {
            reason: "keystore busy".into(),
        }));
    p.auth.enable_phone_sign_in(id.clone()).await.unwrap();
    // Removal succeeds (the account is gone at once) although its keys cannot be deleted yet.
    p.auth.remove_account(id.clone()).await.unwrap();
    assert!(p.auth.accounts().await.unwrap().is_empty());
    assert_eq!(p.memory.len(), 3);
    // This instance does not retry its own (it could be racing an operation in flight)...
    p.keys.fail_deleting(None);
    p.auth.accounts().await.unwrap();
    assert_eq!(p.memory.len(), 3);
    // ...the next instance on the directory deletes every journaled key, once.
    let data_dir = p.dir.path().join("data").to_string_lossy().into_owned();
    drop(p.auth);
    let again = Authenticator::with_transport(
        data_dir,
        p.keys.clone(),
        FakeNetwork::new(std::slice::from_ref(&s)),
    )
    .unwrap();
    p.keys.clear();
    assert!(again.accounts().await.unwrap().is_empty());
    assert!(p.memory.is_empty());
    assert_eq!(p.keys.deleted().len(), 3);
    again.accounts().await.unwrap();
    assert_eq!(p.keys.deleted().len(), 3, "the journal is empty afterwards");
}

#[tokio::test]
async fn unreachable_server_is_a_network_error_through_the_real_transport() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authenticator::new(
        dir.path().to_string_lossy().into_owned(),
        Arc::new(MemoryKeyStore::default()),
    )
    .unwrap();
    // Bind then drop a listener: the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = FakeServer::new("x", &format!("http://127.0.0.1:{port}/"));
    let err = auth
        .enroll(
            s.enrollment_url("u@x.test", "U"),
            "Pixel".into(),
            longpoll(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AuthenticatorError::Network { .. }), "{err:?}");
    assert!(Authenticator::new(String::new(), Arc::new(MemoryKeyStore::default())).is_err());
}

/// A one-route HTTP server on loopback that answers every request with `body_len` bytes,
/// with a `Content-Length`, or without one and then stalling until the phone hangs up.
async fn oversized_server(body_len: usize, declare_length: bool) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = if declare_length {
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n")
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                        .to_owned()
                };
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                // A JSON string that never ends: valid-looking, and too big.
                let chunk = [b'a'; 8192];
                let mut sent = 0;
                while sent < body_len {
                    let n = chunk.len().min(body_len - sent);
                    if conn.write_all(&chunk[..n]).await.is_err() {
                        return; // the phone hung up: what we want
                    }
                    sent += n;
                }
                if !declare_length {
                    // Stall with the connection open: only a reader that stops at the limit
                    // returns (one that buffers to the end would wait until its timeout).
                    while !matches!(conn.read(&mut buf).await, Ok(0) | Err(_)) {}
                }
            });
        }
    });
    port
}

/// Issue 8 (B): an enrolled (or enrolling) server's oversized answer is refused at the
/// 64 KiB limit with a typed error, through the real reqwest transport, and nothing is stored.
#[tokio::test]
async fn oversized_response_bodies_are_a_typed_error_and_nothing_is_stored() {
    for (body_len, declare_length) in [(4 * 1024 * 1024, true), (128 * 1024, false)] {
        let port = oversized_server(body_len, declare_length).await;
        let dir = tempfile::tempdir().unwrap();
        let memory = Arc::new(MemoryKeyStore::default());
        let auth =
            Authenticator::new(dir.path().to_string_lossy().into_owned(), memory.clone()).unwrap();
        let s = FakeServer::new("x", &format!("http://127.0.0.1:{port}/"));
        let err = auth
            .enroll(
                s.enrollment_url("u@x.test", "U"),
                "Pixel".into(),
                longpoll(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err,
            AuthenticatorError::ServerRejected {
                status: 200,
                code: authenticator_core::RESPONSE_TOO_LARGE.into(),
                detail: "the server's answer is larger than 64 KiB".into(),
            },
            "declare_length = {declare_length}"
        );
        assert!(auth.accounts().await.unwrap().is_empty());
        assert!(memory.is_empty());
    }
}

/// A key store whose `sign` never answers for aliases ending in `hang_suffix` (a foreign
/// callback that threw a `java.lang.Error`, or a buggy one) and waits `delay` for the others.
struct StuckSigner {
    inner: MemoryKeyStore,
    hang_suffix: std::sync::Mutex<Option<&'static str>>,
    delay: std::sync::Mutex<Duration>,
}

impl StuckSigner {
    fn new() -> Arc<Self> {
        Arc::new(StuckSigner {
            inner: MemoryKeyStore::default(),
            hang_suffix: std::sync::Mutex::new(None),
            delay: std::sync::Mutex::new(Duration::ZERO),
        })
    }
}

#[async_trait::async_trait]
impl authenticator_core::DeviceKeyStore for StuckSigner {
    async fn generate(
        &self,
        alias: String,
        uv: bool,
    ) -> Result<Vec<u8>, authenticator_core::PlatformError> {
        self.inner.generate(alias, uv).await
    }
    async fn sign(
        &self,
        alias: String,
        message: Vec<u8>,
        prompt: Option<String>,
    ) -> Result<Vec<u8>, authenticator_core::PlatformError> {
        let hang = *self.hang_suffix.lock().unwrap();
        if hang.is_some_and(|suffix| alias.ends_with(suffix)) {
            std::future::pending::<()>().await;
        }
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        self.inner.sign(alias, message, prompt).await
    }
    async fn delete(&self, alias: String) -> Result<(), authenticator_core::PlatformError> {
        self.inner.delete(alias).await
    }
}

fn phone_with(
    keys: Arc<StuckSigner>,
    s: &Arc<FakeServer>,
) -> (Arc<Authenticator>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authenticator::with_transport(
        dir.path().to_string_lossy().into_owned(),
        keys,
        FakeNetwork::new(std::slice::from_ref(s)),
    )
    .unwrap();
    (auth, dir)
}

/// Issue 8 (C): a device-key signature that never completes fails after `KEY_STORE_TIMEOUT`
/// with a typed `KeyStore` error instead of hanging the call; nothing is stored and the new
/// key is deleted. Paused time: the 30 s are virtual.
#[tokio::test(start_paused = true)]
async fn a_device_key_call_that_never_answers_fails_after_the_bound() {
    let s = server("contoso", 7001);
    let keys = StuckSigner::new();
    *keys.hang_suffix.lock().unwrap() = Some(".device");
    let (auth, _dir) = phone_with(keys.clone(), &s);
    let started = tokio::time::Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(3600),
        auth.enroll(
            s.enrollment_url("u@x.test", "U"),
            "Pixel".into(),
            longpoll(),
        ),
    )
    .await
    .expect("the enrollment hung on a key store that never answers");
    let err = outcome.unwrap_err();
    assert!(
        matches!(&err, AuthenticatorError::KeyStore { reason } if reason.contains("did not sign")),
        "{err:?}"
    );
    assert!(started.elapsed() >= authenticator_core::KEY_STORE_TIMEOUT);
    assert!(auth.accounts().await.unwrap().is_empty());
    assert_eq!(s.enrolled_accounts(), 0);
    assert!(keys.inner.is_empty(), "the unused key is deleted");
}

/// The bound does not apply to the phone-sign-in key's signature: the platform shows the
/// biometric prompt for it, and a user may take minutes.
#[tokio::test(start_paused = true)]
async fn a_prompting_signature_is_not_timed_out() {
    let s = server("contoso", 7001);
    let keys = StuckSigner::new();
    let (auth, _dir) = phone_with(keys.clone(), &s);
    let id = auth
        .enroll(
            s.enrollment_url("u@x.test", "U"),
            "Pixel".into(),
            longpoll(),
        )
        .await
        .unwrap()
        .account_id;
    auth.enable_phone_sign_in(id.clone()).await.unwrap();
    let (rid, number) = s.create_request(&id, WireKind::Passwordless, true, TTL);
    auth.fetch_request(id.clone(), rid.clone()).await.unwrap();
    // The user looks at the prompt for 5 minutes (virtual; the request's expiry is wall time).
    *keys.delay.lock().unwrap() = Duration::from_secs(300);
    assert_eq!(
        auth.approve(id.clone(), rid, number).await.unwrap(),
        Decision::Approved
    );
}

/// Review issue 8, High 1: a second server the phone is enrolled with names the request id of
/// the first server's real request. A request is identified by (account, request), so the
/// hostile server can neither hide the real request (whichever arrives first), nor show its
/// own text for it, nor have the real request signed with its account's key (cross-sign);
/// and an account that does not hold a request cannot answer it.
#[tokio::test]
async fn a_request_id_reused_by_another_server_cannot_hide_shadow_or_cross_sign() {
    let (real, evil) = (server("contoso", 7001), server("evil", 7002));
    let p = phone(&[real.clone(), evil.clone()]);
    let ia = enroll(&p, &real, "u@contoso.test").await;
    let ie = enroll(&p, &evil, "u@evil.test").await;

    for evil_first in [true, false] {
        let (rid, number) = real.create_request(&ia, WireKind::Push, true, TTL);
        let shadow = || evil.create_request_with(&ie, &rid, "Shadow", WireKind::Push, true, TTL);
        // The hostile server's push for the same id arrives before or after the real one.
        let mut evil_number = None;
        if evil_first {
            evil_number = Some(shadow().1);
            let shown = p
                .auth
                .handle_push_data(evil.envelope(&ie, &rid).to_fcm_data())
                .await
                .unwrap();
            assert!(matches!(shown, PushOutcome::ShowRequest { .. }));
        }
        // Hide: the real request is still shown, with the real server's text.
        let real_push = p
            .auth
            .handle_push_data(real.envelope(&ia, &rid).to_fcm_data())
            .await
            .unwrap();
        let PushOutcome::ShowRequest { request } = real_push else {
            panic!("the real request was hidden: {real_push:?}");
        };
        assert_eq!(
            (request.account_id.as_str(), request.server_name.as_str()),
            (ia.as_str(), "contoso")
        );
        assert_eq!(request.app_name.as_deref(), Some("My Apps"));
        if !evil_first {
            evil_number = Some(shadow().1);
            p.auth.poll(0).await.unwrap();
        }
        // Shadow: both are pending, each under its own account with its own server's text.
        let pending = p.auth.pending_requests().await.unwrap();
        let of = |account: &str| {
            pending
                .iter()
                .find(|r| r.request_id == rid && r.account_id == account)
                .unwrap_or_else(|| panic!("no request under {account}: {pending:?}"))
        };
        assert_eq!(of(&ia).app_name.as_deref(), Some("My Apps"));
        assert_eq!(of(&ie).app_name.as_deref(), Some("Shadow"));
        assert_eq!(of(&ie).server_name, "evil");

        // Cross-sign: answering the hostile server's request signs with its account's key
        // and goes to it; the real request stays pending and untouched.
        let real_answers = real.responses().len();
        p.auth
            .approve(ie.clone(), rid.clone(), evil_number.unwrap())
            .await
            .unwrap();
        assert_eq!(real.responses().len(), real_answers);
        assert_eq!(real.status(&rid), "pending");
        assert!(p
            .auth
            .pending_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| r.request_id == rid && r.account_id == ia));
        // The real request is answered under its own account only.
        assert_eq!(
            p.auth
                .approve(ia.clone(), rid.clone(), number)
                .await
                .unwrap(),
            Decision::Approved
        );
        assert_eq!(real.status(&rid), "approved");
    }

    // An account that does not hold the request cannot answer it, and nothing is signed.
    let (rid, number) = real.create_request(&ia, WireKind::Push, true, TTL);
    p.auth.poll(0).await.unwrap();
    p.keys.clear();
    assert_eq!(
        p.auth
            .approve(ie.clone(), rid.clone(), number.clone())
            .await
            .unwrap_err(),
        AuthenticatorError::UnknownRequest
    );
    assert_eq!(
        p.auth.deny(ie.clone(), rid.clone()).await.unwrap_err(),
        AuthenticatorError::UnknownRequest
    );
    assert!(p.keys.calls().is_empty());
    assert_eq!(real.status(&rid), "pending");
}

/// Review issue 8, High 2: user verification is part of the signature call. Every approval
/// signature, whichever key makes it, carries the prompt (so every platform verifies the
/// user for it); enabling phone sign-in prompts once, through the new key; enrollment,
/// device authentication, deny and report carry none.
#[tokio::test]
async fn every_approval_signature_carries_the_prompt_and_no_other_signature_does() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let id = enroll(&p, &s, "u@x.test").await;
    let enrollment = p.keys.sign_requests();
    assert!(!enrollment.is_empty());
    assert!(enrollment.iter().all(|(_, _, prompt)| prompt.is_none()));

    // A push approval with the device key (phone sign-in not enabled): a prompt.
    let (rid, number) = s.create_request(&id, WireKind::Push, true, TTL);
    p.auth.poll(0).await.unwrap();
    p.keys.clear();
    p.auth
        .approve(id.clone(), rid.clone(), number)
        .await
        .unwrap();
    let signed = p.keys.sign_requests();
    assert_eq!(signed.len(), 1, "{signed:?}");
    assert!(signed[0].0.ends_with(".device"));
    assert_eq!(
        signed[0].2.as_deref(),
        Some("Approve sign-in to contoso as user@fake.test")
    );
    assert_eq!(p.verifier.calls(), 1, "asked once");

    // Enabling phone sign-in: one prompt, through the new key.
    p.keys.clear();
    p.auth.enable_phone_sign_in(id.clone()).await.unwrap();
    let prompts: Vec<_> = p
        .keys
        .sign_requests()
        .into_iter()
        .filter_map(|(alias, _, prompt)| prompt.map(|p| (alias, p)))
        .collect();
    assert_eq!(prompts.len(), 1, "{prompts:?}");
    assert!(prompts[0].0.ends_with(".passwordless"));
    assert_eq!(p.verifier.calls(), 2);

    // A phone sign-in approval with that key: a prompt; deny and report: none.
    let (rid, number) = s.create_request(&id, WireKind::Passwordless, true, TTL);
    let (r_deny, _) = s.create_request(&id, WireKind::Push, true, TTL);
    let (r_report, _) = s.create_request(&id, WireKind::Passwordless, true, TTL);
    p.auth.poll(0).await.unwrap();
    p.keys.clear();
    p.auth
        .approve(id.clone(), rid.clone(), number)
        .await
        .unwrap();
    p.auth.deny(id.clone(), r_deny).await.unwrap();
    p.auth.report_fraud(id.clone(), r_report).await.unwrap();
    let signed = p.keys.sign_requests();
    assert_eq!(signed.len(), 3, "{signed:?}");
    assert!(signed[0].0.ends_with(".passwordless") && signed[0].2.is_some());
    assert!(signed[1..]
        .iter()
        .all(|(alias, _, prompt)| { alias.ends_with(".device") && prompt.is_none() }));
    assert_eq!(p.verifier.calls(), 3, "deny and report asked nothing");
}

/// Review issue 8, Medium 3, then issue 20, finding 5: text the server signed is still only
/// text. A name that holds a control, newline, bidirectional, invisible, private-use or
/// unassigned character could fake a `Location:` line, reorder what the user reads, or pass for
/// another name: it is refused with a typed error naming the field and the code point — at
/// enrollment (nothing stored, no key made) and in sign-in details (not stored, not shown, not
/// answerable), whether fetched, pushed or polled.
#[tokio::test]
async fn server_names_with_invisible_control_or_private_use_characters_are_refused_not_shown() {
    let s = server("contoso", 7001);
    let p = phone(std::slice::from_ref(&s));
    let refused = |err: &AuthenticatorError, field: &str, c: char| match err {
        AuthenticatorError::UnsafeServerText {
            field: f,
            code_point,
            detail,
        } => {
            assert_eq!((f.as_str(), *code_point), (field, u32::from(c)), "{err:?}");
            assert!(
                detail.contains(&format!("U+{:04X}", u32::from(c))),
                "{detail}"
            );
        }
        other => panic!("{field} U+{:04X}: {other:?}", u32::from(c)),
    };

    // Enrollment: the names the account would be stored and shown under.
    for (upn, name, field, c) in [
        (
            "u@x.test",
            "Bobby\u{200B} Smith",
            "display_name",
            '\u{200B}',
        ),
        ("u@x.test", "Bo\u{E000}bby", "display_name", '\u{E000}'),
        ("u\u{FEFF}@x.test", "Bobby", "upn", '\u{FEFF}'),
        ("u@x.test", "Bobby\nSmith", "display_name", '\n'),
    ] {
        let err = enrollment_error(&p, s.enrollment_url(upn, name)).await;
        refused(&err, field, c);
    }
    assert!(p.auth.accounts().await.unwrap().is_empty());
    assert!(p.keys.generated().is_empty(), "no key was made");
    assert_eq!(s.enrolled_accounts(), 0);

    // Sign-in details: the application name with each code point of the review, and others.
    let id = enroll(&p, &s, "u@x.test").await;
    for c in [
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{FFF9}',
        '\u{1D173}',
        '\u{E000}',
        '\u{0378}',
        '\n',
        '\u{1b}',
        '\u{202E}',
    ] {
        let hostile = format!("My{c}Apps");
        let (rid, _) = s.create_request_with(
            &id,
            authenticator_protocol::RequestId::random().as_str(),
            &hostile,
            WireKind::Push,
            true,
            TTL,
        );
        let err = p
            .auth
            .fetch_request(id.clone(), rid.clone())
            .await
            .unwrap_err();
        refused(&err, "app_name", c);
        let push = s.envelope(&id, &rid).to_apns_json().to_string();
        refused(
            &p.auth.handle_push_json(push).await.unwrap_err(),
            "app_name",
            c,
        );
        assert!(p.auth.pending_requests().await.unwrap().is_empty());
        assert_eq!(
            p.auth
                .approve(id.clone(), rid.clone(), "42".into())
                .await
                .unwrap_err(),
            AuthenticatorError::UnknownRequest
        );
        assert_eq!(s.status(&rid), "pending");
    }
    assert!(s.responses().is_empty());
    // A plain name is shown as it is.
    let (rid, _) = s.create_request_with(
        &id,
        authenticator_protocol::RequestId::random().as_str(),
        "Intranet — Zürich 👪",
        WireKind::Push,
        true,
        TTL,
    );
    let request = p.auth.fetch_request(id, rid).await.unwrap();
    assert_eq!(request.app_name.as_deref(), Some("Intranet — Zürich 👪"));
}

/// A sign-in page announcing itself to the listener at `port` as a browser at `origin` would.
async fn announce(port: u16, origin: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/browser-binding"))
        .header("origin", origin)
        .header("content-type", "text/plain")
        .body(b64(&[7u8; 16]))
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(reqwest::StatusCode::SERVICE_UNAVAILABLE)
}

/// What an app does each time it comes back to the foreground: stop, then start on the same
/// port at once — the stopped listener's socket is closed before the new one binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_listener_restarts_on_its_own_port_at_once() {
    let p = phone(&[]);
    let port = p.auth.start_browser_listener(0).await.unwrap();
    assert_eq!(announce(port, "https://id.contoso.test").await, 204);
    for round in 0..20 {
        // Start again while running (replaces it), and stop-then-start.
        let again = p.auth.start_browser_listener(port).await;
        assert_eq!(again, Ok(port), "restart while running, round {round}");
        p.auth.stop_browser_listener().await;
        let again = p.auth.start_browser_listener(port).await;
        assert_eq!(again, Ok(port), "start after stop, round {round}");
    }
    assert_eq!(announce(port, "https://id.contoso.test").await, 204);
    p.auth.stop_browser_listener().await;
    assert_ne!(
        announce(port, "https://id.contoso.test").await,
        204,
        "a stopped listener sees no page"
    );
}

/// Connections that send nothing are closed by the listener (it does not keep them open for a
/// local program that hoards connections): only a few may wait long for their first request
/// (a browser asking its user first), any further one is closed after the header timeout;
/// a page's request on another connection is served all the while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_listener_closes_connections_that_send_nothing() {
    use authenticator_core::testing::{
        BROWSER_LISTENER_HEADER_READ_TIMEOUT, BROWSER_LISTENER_PROMPT_WAITS,
    };
    use tokio::io::AsyncReadExt;
    let p = phone(&[]);
    let port = p.auth.start_browser_listener(0).await.unwrap();
    // These take every long wait (handed out in the order connections arrive)…
    let mut hoarded = Vec::new();
    for _ in 0..BROWSER_LISTENER_PROMPT_WAITS {
        hoarded.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    // …so this one gets the header timeout.
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    assert_eq!(announce(port, "https://id.contoso.test").await, 204);
    // Bounded wait (a generous multiple of the header timeout): end of stream, not a hang.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(
        BROWSER_LISTENER_HEADER_READ_TIMEOUT * 12,
        idle.read(&mut buf),
    )
    .await
    .expect("the listener closed the idle connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(announce(port, "https://id.contoso.test").await, 204);
    drop(hoarded);
}
