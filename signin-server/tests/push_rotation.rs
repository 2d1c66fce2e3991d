//! Push-token rotation (PROTOCOL.md §5.10) against the local APNs and FCM endpoints: the next
//! push goes to the new token only, the stale mark goes, and rotations signed by another
//! device, replayed, expired or to a refused channel change nothing. Delivery health: "last
//! push delivered" and "last seen".
mod endpoints;
mod support;

use authenticator_protocol::push_registration::{PushRegistrationUpdate, PUSH_REGISTRATION_PATH};
use authenticator_protocol::{EcdsaSigner, UnixMillis};
use axum::http::StatusCode;
use endpoints::*;
use serde_json::Value;

use support::*;

const NEW_APNS_TOKEN: &str = "0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a5a1f0c9e7b3d2a4f6e8c";

/// The body of a rotation of `phone`'s account to `kind`/`token` at `timestamp`, signed by
/// `signer` (the phone's own device key, or another's).
fn rotation(
    phone: &Phone,
    signer: &EcdsaSigner,
    kind: &str,
    token: &str,
    timestamp: UnixMillis,
) -> Value {
    let update = PushRegistrationUpdate {
        account_id: phone.account().clone(),
        push_kind: kind.into(),
        push_token: token.into(),
        timestamp,
    };
    serde_json::to_value(update.to_wire(&signer.sign(&update.signed_bytes()))).unwrap()
}

async fn rotate(h: &Harness, phone: &Phone, kind: &str, token: &str) -> Reply {
    h.post(
        PUSH_REGISTRATION_PATH,
        rotation(phone, &phone.device, kind, token, UnixMillis::now()),
    )
    .await
}

async fn channel(h: &Harness, phone: &Phone) -> (String, String) {
    sqlx::query_as("SELECT push_kind, push_token FROM devices WHERE account_id = $1")
        .bind(phone.account().as_str())
        .fetch_one(&h.state.pool)
        .await
        .unwrap()
}

async fn health(h: &Harness, phone: &Phone) -> (Option<i64>, Option<i64>) {
    sqlx::query_as("SELECT last_push_at, last_seen_at FROM devices WHERE account_id = $1")
        .bind(phone.account().as_str())
        .fetch_one(&h.state.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn after_an_apns_rotation_the_next_push_goes_to_the_new_token_and_the_stale_mark_goes() {
    let dir = tempfile::tempdir().unwrap();
    let apns = Apns::start(dir.path()).await;
    let h = push_harness(Some(&apns), None, fast_retry(3), generous()).await;
    let phone = h
        .ready_phone_with_push("alice@contoso.com", "apns", APNS_TOKEN)
        .await;
    // The old token dies (a restore): the channel goes stale.
    apns.unregister(APNS_TOKEN);
    h.start_signin("alice@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert!(stale_reason(&h, &phone).await.is_some());

    let r = rotate(&h, &phone, "apns", NEW_APNS_TOKEN).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(
        stale_reason(&h, &phone).await,
        None,
        "the stale mark is gone"
    );
    assert_eq!(
        audit_outcomes(&h, "push_registration_updated").await,
        vec!["apns"]
    );

    let before = apns.hits().len();
    let started = h.start_signin("alice@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    let hits = apns.hits();
    assert_eq!(hits.len(), before + 1, "one push for the next sign-in");
    assert_eq!(hits.last().unwrap().token, NEW_APNS_TOKEN);
    assert!(hits[before..].iter().all(|hit| hit.token != APNS_TOKEN));
    assert_eq!(
        hits.last().unwrap().body["psi"]["rid"],
        started.body["id"],
        "the push names the new sign-in"
    );
    let (last_push, _) = health(&h, &phone).await;
    assert!(last_push.is_some(), "the delivered push is recorded");
}

#[tokio::test]
async fn after_an_fcm_rotation_the_next_push_goes_to_the_new_token_only() {
    let dir = tempfile::tempdir().unwrap();
    let fcm = Fcm::start(dir.path()).await;
    let h = push_harness(None, Some(&fcm), fast_retry(3), generous()).await;
    let phone = h
        .ready_phone_with_push("bob@contoso.com", "fcm", "fcm-token-old")
        .await;

    let r = rotate(&h, &phone, "fcm", "fcm-token-new").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    h.start_signin("bob@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    let tokens: Vec<String> = fcm
        .sends()
        .iter()
        .map(|s| s.body["message"]["token"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tokens, vec!["fcm-token-new"]);
}

#[tokio::test]
async fn a_rotation_signed_by_another_devices_key_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fcm = Fcm::start(dir.path()).await;
    let h = push_harness(None, Some(&fcm), fast_retry(3), generous()).await;
    let victim = h
        .ready_phone_with_push("carol@contoso.com", "fcm", "carol-token")
        .await;
    let attacker = h
        .ready_phone_with_push("mallory@contoso.com", "fcm", "mallory-token")
        .await;

    let r = h
        .post(
            PUSH_REGISTRATION_PATH,
            rotation(
                &victim,
                &attacker.device,
                "fcm",
                "mallory-token",
                UnixMillis::now(),
            ),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );
    // A body whose token was changed after signing is refused the same way.
    let mut changed = rotation(
        &victim,
        &victim.device,
        "fcm",
        "carol-new-token",
        UnixMillis::now(),
    );
    changed["push"]["token"] = "mallory-token".into();
    let r = h.post(PUSH_REGISTRATION_PATH, changed).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );
    assert_eq!(
        channel(&h, &victim).await,
        ("fcm".to_owned(), "carol-token".to_owned())
    );
    assert!(audit_outcomes(&h, "push_registration_updated")
        .await
        .is_empty());
}

#[tokio::test]
async fn replayed_older_and_expired_rotations_are_refused() {
    let h = harness().await;
    let phone = h.ready_phone("dave@contoso.com").await;
    let now = UnixMillis::now();
    let first = rotation(&phone, &phone.device, "fcm", "token-1", now);
    let r = h.post(PUSH_REGISTRATION_PATH, first.clone()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let second = rotation(&phone, &phone.device, "fcm", "token-2", now.plus_secs(1));
    assert_eq!(
        h.post(PUSH_REGISTRATION_PATH, second).await.status,
        StatusCode::NO_CONTENT
    );

    // The first again (a replay), and one signed before the one in force: no way back.
    for body in [
        first,
        rotation(
            &phone,
            &phone.device,
            "fcm",
            "token-0",
            UnixMillis(now.millis() - 1),
        ),
    ] {
        let r = h.post(PUSH_REGISTRATION_PATH, body).await;
        assert_eq!((r.status, r.error()), (StatusCode::CONFLICT, "replay"));
    }
    // Expired: signed ten minutes ago.
    let old = rotation(
        &phone,
        &phone.device,
        "fcm",
        "token-old",
        UnixMillis(now.millis() - 600_000),
    );
    let r = h.post(PUSH_REGISTRATION_PATH, old).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "stale_timestamp")
    );
    assert_eq!(
        channel(&h, &phone).await,
        ("fcm".to_owned(), "token-2".to_owned())
    );
}

#[tokio::test]
async fn rotations_to_a_channel_enrollment_would_refuse_are_refused() {
    let h = harness().await;
    let phone = h.ready_phone("erin@contoso.com").await;
    for (kind, token, code) in [
        ("gcm", "t", "invalid_request"),
        ("fcm", &"x".repeat(4097)[..], "invalid_request"),
        ("webpush", "not-a-subscription", "invalid_request"),
    ] {
        let r = rotate(&h, &phone, kind, token).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, code),
            "{kind}"
        );
    }
    // An account the server does not know.
    let mut stranger = Phone::new();
    stranger.account_id = Some(authenticator_protocol::AccountId::random());
    let r = rotate(&h, &stranger, "fcm", "t").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "unknown_account")
    );
    assert_eq!(
        channel(&h, &phone).await,
        ("longpoll".to_owned(), String::new())
    );
}

#[tokio::test]
async fn a_device_authenticated_poll_records_when_the_phone_was_last_seen() {
    let h = harness().await;
    let phone = h.ready_phone("frank@contoso.com").await;
    assert_eq!(health(&h, &phone).await, (None, None));
    let before = UnixMillis::now().millis() as i64;
    assert_eq!(phone.poll(&h, 0).await.status, StatusCode::OK);
    let (_, seen) = health(&h, &phone).await;
    assert!(seen.is_some_and(|t| t >= before), "{seen:?}");
    // A request that fails device authentication is no contact.
    let mut other = Phone::new();
    other.account_id = phone.account_id.clone();
    sqlx::query("UPDATE devices SET last_seen_at = NULL WHERE account_id = $1")
        .bind(phone.account().as_str())
        .execute(&h.state.pool)
        .await
        .unwrap();
    assert_eq!(other.poll(&h, 0).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(health(&h, &phone).await.1, None);
}
