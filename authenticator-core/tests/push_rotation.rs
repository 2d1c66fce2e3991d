//! `update_push_registration` (PROTOCOL.md §5.10) against in-process fake servers that verify
//! the device key's signature: every account tells its own server, one unreachable server is
//! a `RetryLater` entry, and invalid input signs and sends nothing.
use std::sync::Arc;

use authenticator_core::testing::{FakeNetwork, FakeServer, MemoryKeyStore, RecordingKeyStore};
use authenticator_core::{
    Authenticator, AuthenticatorError, PushKind, PushRegistration, PushUpdateOutcome,
};

fn server(name: &str, port: u16) -> Arc<FakeServer> {
    FakeServer::new(name, &format!("http://127.0.0.1:{port}/{name}/"))
}

fn open(
    dir: &tempfile::TempDir,
    keys: Arc<RecordingKeyStore>,
    servers: &[Arc<FakeServer>],
) -> Arc<Authenticator> {
    Authenticator::with_transport(
        dir.path().join("data").to_string_lossy().into_owned(),
        keys,
        FakeNetwork::new(servers),
    )
    .unwrap()
}

fn fcm(token: &str) -> PushRegistration {
    PushRegistration {
        kind: PushKind::Fcm,
        token: token.into(),
    }
}

#[tokio::test]
async fn every_account_tells_its_own_server_signed_by_its_device_key() {
    let (a, b) = (server("contoso", 7101), server("fabrikam", 7102));
    let dir = tempfile::tempdir().unwrap();
    let keys = RecordingKeyStore::new(Arc::new(MemoryKeyStore::default()));
    let auth = open(&dir, keys.clone(), &[a.clone(), b.clone()]);
    let ia = auth
        .enroll(
            a.enrollment_url("u@contoso.test", "U"),
            "Pixel".into(),
            fcm("old"),
        )
        .await
        .unwrap()
        .account_id;
    let ib = auth
        .enroll(
            b.enrollment_url("u@fabrikam.test", "U"),
            "Pixel".into(),
            fcm("old"),
        )
        .await
        .unwrap()
        .account_id;

    let mut results = auth
        .update_push_registration(fcm("new-token"))
        .await
        .unwrap();
    results.sort_by(|x, y| x.server_name.cmp(&y.server_name));
    assert_eq!(results.len(), 2);
    assert_eq!(
        (results[0].server_name.as_str(), &results[0].account_id),
        ("contoso", &ia)
    );
    assert!(
        results
            .iter()
            .all(|r| r.outcome == PushUpdateOutcome::Updated),
        "{results:?}"
    );
    // Each fake server verified the signature under that account's device key.
    assert_eq!(
        a.rotated_push(&ia),
        Some(("fcm".into(), "new-token".into()))
    );
    assert_eq!(
        b.rotated_push(&ib),
        Some(("fcm".into(), "new-token".into()))
    );

    // Web Push after a UnifiedPush endpoint change: the kind changes too.
    let (p256dh, _) = authenticator_protocol::EcdsaSigner::generate().unwrap();
    let token = authenticator_core::web_push_token(
        "https://push.example.net/wpush/abc".into(),
        p256dh.public_key().to_b64(),
        authenticator_protocol::encoding::b64(&[9u8; 16]),
    )
    .unwrap();
    let results = auth
        .update_push_registration(PushRegistration {
            kind: PushKind::WebPush,
            token: token.clone(),
        })
        .await
        .unwrap();
    assert!(results
        .iter()
        .all(|r| r.outcome == PushUpdateOutcome::Updated));
    assert_eq!(a.rotated_push(&ia), Some(("webpush".into(), token)));
}

#[tokio::test]
async fn an_unreachable_server_is_retry_later_and_the_others_are_updated() {
    let (a, b) = (server("contoso", 7111), server("fabrikam", 7112));
    let dir = tempfile::tempdir().unwrap();
    let keys = RecordingKeyStore::new(Arc::new(MemoryKeyStore::default()));
    let both = open(&dir, keys.clone(), &[a.clone(), b.clone()]);
    let ia = both
        .enroll(
            a.enrollment_url("u@contoso.test", "U"),
            "Pixel".into(),
            fcm("old"),
        )
        .await
        .unwrap()
        .account_id;
    both.enroll(
        b.enrollment_url("u@fabrikam.test", "U"),
        "Pixel".into(),
        fcm("old"),
    )
    .await
    .unwrap();
    drop(both);
    // Only server a is reachable now.
    let auth = open(&dir, keys, std::slice::from_ref(&a));
    let results = auth
        .update_push_registration(fcm("new-token"))
        .await
        .unwrap();
    let outcome = |name: &str| {
        results
            .iter()
            .find(|r| r.server_name == name)
            .unwrap()
            .outcome
            .clone()
    };
    assert_eq!(outcome("contoso"), PushUpdateOutcome::Updated);
    assert!(
        matches!(outcome("fabrikam"), PushUpdateOutcome::RetryLater { .. }),
        "{:?}",
        outcome("fabrikam")
    );
    assert_eq!(
        a.rotated_push(&ia),
        Some(("fcm".into(), "new-token".into()))
    );
}

#[tokio::test]
async fn a_registration_enrollment_would_refuse_is_invalid_input_and_nothing_is_signed() {
    let a = server("contoso", 7121);
    let dir = tempfile::tempdir().unwrap();
    let keys = RecordingKeyStore::new(Arc::new(MemoryKeyStore::default()));
    let auth = open(&dir, keys.clone(), std::slice::from_ref(&a));
    let ia = auth
        .enroll(
            a.enrollment_url("u@contoso.test", "U"),
            "Pixel".into(),
            fcm("old"),
        )
        .await
        .unwrap()
        .account_id;
    let signed_before = keys.calls().len();
    for bad in [
        fcm(""),
        PushRegistration {
            kind: PushKind::LongPoll,
            token: "stray".into(),
        },
        PushRegistration {
            kind: PushKind::WebPush,
            token: "not-a-subscription".into(),
        },
    ] {
        let e = auth.update_push_registration(bad).await.unwrap_err();
        assert!(
            matches!(e, AuthenticatorError::InvalidInput { .. }),
            "{e:?}"
        );
    }
    assert_eq!(keys.calls().len(), signed_before, "nothing was signed");
    assert_eq!(a.rotated_push(&ia), None);
}

#[tokio::test]
async fn rotations_in_quick_succession_reach_the_server_in_order_and_the_last_one_wins() {
    let a = server("contoso", 7131);
    let dir = tempfile::tempdir().unwrap();
    let keys = RecordingKeyStore::new(Arc::new(MemoryKeyStore::default()));
    let auth = open(&dir, keys, std::slice::from_ref(&a));
    let ia = auth
        .enroll(
            a.enrollment_url("u@contoso.test", "U"),
            "Pixel".into(),
            fcm("old"),
        )
        .await
        .unwrap()
        .account_id;
    // Overlapping calls (FCM may call `onNewToken` twice): each is signed later than the one
    // before, so the server takes both, in the order they were made.
    let (first, second) = tokio::join!(
        auth.update_push_registration(fcm("token-1")),
        auth.update_push_registration(fcm("token-2")),
    );
    for results in [first.unwrap(), second.unwrap()] {
        assert_eq!(
            results[0].outcome,
            PushUpdateOutcome::Updated,
            "{results:?}"
        );
    }
    assert_eq!(a.rotated_push(&ia), Some(("fcm".into(), "token-2".into())));
    let results = auth.update_push_registration(fcm("token-3")).await.unwrap();
    assert_eq!(results[0].outcome, PushUpdateOutcome::Updated);
    assert_eq!(a.rotated_push(&ia), Some(("fcm".into(), "token-3".into())));
}

#[tokio::test]
async fn a_server_that_no_longer_knows_the_account_is_refused_with_its_code() {
    let (a, b) = (server("contoso", 7141), server("fabrikam", 7142));
    let dir = tempfile::tempdir().unwrap();
    let keys = RecordingKeyStore::new(Arc::new(MemoryKeyStore::default()));
    let auth = open(&dir, keys, &[a.clone(), b.clone()]);
    let ia = auth
        .enroll(
            a.enrollment_url("u@contoso.test", "U"),
            "Pixel".into(),
            fcm("old"),
        )
        .await
        .unwrap()
        .account_id;
    let ib = auth
        .enroll(
            b.enrollment_url("u@fabrikam.test", "U"),
            "Pixel".into(),
            fcm("old"),
        )
        .await
        .unwrap()
        .account_id;
    a.forget_account(&ia);
    let results = auth.update_push_registration(fcm("new")).await.unwrap();
    let of = |id: &str| results.iter().find(|r| r.account_id == id).unwrap();
    assert!(
        matches!(
            &of(&ia).outcome,
            PushUpdateOutcome::Refused { status: 404, code, .. } if code == "unknown_account"
        ),
        "{:?}",
        of(&ia).outcome
    );
    assert_eq!(of(&ib).outcome, PushUpdateOutcome::Updated);
    assert_eq!(b.rotated_push(&ib), Some(("fcm".into(), "new".into())));
}

#[tokio::test]
async fn a_key_store_that_fails_to_sign_is_retry_later_and_nothing_is_sent() {
    let a = server("contoso", 7151);
    let dir = tempfile::tempdir().unwrap();
    let keys = RecordingKeyStore::new(Arc::new(MemoryKeyStore::default()));
    let auth = open(&dir, keys.clone(), std::slice::from_ref(&a));
    let ia = auth
        .enroll(
            a.enrollment_url("u@contoso.test", "U"),
            "Pixel".into(),
            fcm("old"),
        )
        .await
        .unwrap()
        .account_id;
    keys.fail_signing(Some(authenticator_core::PlatformError::Failed {
        reason: "keystore busy".into(),
    }));
    let results = auth.update_push_registration(fcm("new")).await.unwrap();
    assert!(
        matches!(results[0].outcome, PushUpdateOutcome::RetryLater { .. }),
        "{results:?}"
    );
    assert_eq!(a.rotated_push(&ia), None);
    // Once the key store works again, calling again delivers it.
    keys.fail_signing(None);
    let results = auth.update_push_registration(fcm("new")).await.unwrap();
    assert_eq!(results[0].outcome, PushUpdateOutcome::Updated);
    assert_eq!(a.rotated_push(&ia), Some(("fcm".into(), "new".into())));
}

#[tokio::test]
async fn with_no_accounts_there_is_nothing_to_update() {
    let dir = tempfile::tempdir().unwrap();
    let keys = RecordingKeyStore::new(Arc::new(MemoryKeyStore::default()));
    let auth = open(&dir, keys.clone(), &[]);
    assert_eq!(
        auth.update_push_registration(fcm("new")).await.unwrap(),
        vec![]
    );
    assert!(keys.calls().is_empty());
}
