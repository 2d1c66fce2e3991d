//! Web Push delivery (RFC 8030, RFC 8291 encryption, RFC 8292 VAPID) against a local push
//! service that checks the VAPID token and decrypts every message with the subscription's
//! private key and auth secret (`signin_server::webpush_local`).
mod endpoints;
mod support;

use std::sync::Arc;

use authenticator_protocol::push::PushEnvelope;
use authenticator_protocol::UnixMillis;
use axum::http::StatusCode;
use endpoints::{audit_outcomes, fast_retry, stale_reason};
use serde_json::json;
use signin_domain::delivery::push::{RetryPolicy, WebPushClient, WebPushConfig};
use signin_domain::delivery::webpush::VapidKey;
use signin_domain::outbound::OutboundPolicy;
use signin_domain::store;
use signin_server::webpush_local::LocalPushService;

use support::*;

const SUBJECT: &str = "mailto:signin-ops@contoso.test";

/// The outbound policy with the development setting the local push service (plain http on
/// 127.0.0.1) needs, or without it.
fn outbound(allow_http_loopback: bool) -> OutboundPolicy {
    OutboundPolicy {
        allow_http_loopback,
        ..Default::default()
    }
}

/// A harness whose server pushes through Web Push; returns the server's VAPID public key.
/// Enrollment checks endpoints under `registration`, pushes go out under `sending`.
async fn webpush_harness_with(
    registration: OutboundPolicy,
    sending: OutboundPolicy,
    retry: RetryPolicy,
) -> (Harness, String) {
    let mut h = harness_with_ttl(90).await;
    let client = WebPushClient::open(
        &h.state.pool,
        &WebPushConfig {
            subject: SUBJECT.into(),
        },
        &sending,
    )
    .await
    .unwrap();
    let key = client.vapid_public_key().to_owned();
    let state = h
        .state
        .clone()
        .with_outbound(registration)
        .with_push(vec![Arc::new(client)], retry);
    h.app = signin_server::app(state.clone());
    h.state = state;
    (h, key)
}

/// The same policy for enrolling and pushing.
async fn webpush_harness(allow_http_loopback: bool, retry: RetryPolicy) -> (Harness, String) {
    let policy = outbound(allow_http_loopback);
    webpush_harness_with(policy.clone(), policy, retry).await
}

fn now_secs() -> u64 {
    UnixMillis::now().millis() / 1000
}

#[tokio::test]
async fn webpush_messages_are_encrypted_vapid_signed_and_carry_only_ids() {
    let service = LocalPushService::start().await.unwrap();
    let (h, vapid_key) = webpush_harness(true, fast_retry(3)).await;
    let sub = service.subscribe();
    let phone = h
        .ready_phone_with_push("alice@contoso.com", "webpush", &sub.token)
        .await;

    let started = h.start_signin("alice@contoso.com").await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    let rid = started.body["id"].as_str().unwrap().to_owned();
    let number = started.body["number"].as_str().unwrap().to_owned();
    h.state.dispatcher.wait_idle().await;

    let received = service.received();
    assert_eq!(received.len(), 1);
    let hit = &received[0];
    assert_eq!(hit.subscription, sub.id);
    assert_eq!(hit.status, 201);
    // VAPID: verified under k, which is the key stored in the database.
    let vapid = hit.vapid.as_ref().expect("a valid VAPID header");
    assert_eq!(vapid.key, vapid_key);
    let stored = store::webpush::vapid_key(&h.state.pool)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.public_key, vapid_key);
    assert_eq!(vapid.header, json!({"typ": "JWT", "alg": "ES256"}));
    assert_eq!(vapid.claims["aud"], service.origin());
    assert_eq!(vapid.claims["sub"], SUBJECT);
    let exp = vapid.claims["exp"].as_u64().unwrap();
    assert!(
        exp > now_secs() + 3600 && exp <= now_secs() + 24 * 3600,
        "{exp}"
    );
    assert_eq!(vapid.claims.as_object().unwrap().len(), 3);
    // Headers: aes128gcm, TTL = the request's remaining lifetime, high urgency.
    let header = |n: &str| hit.headers.get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-encoding"), "aes128gcm");
    assert_eq!(header("urgency"), "high");
    let ttl: u64 = header("ttl").parse().unwrap();
    assert!((80..=90).contains(&ttl), "TTL {ttl}");
    // The plaintext is the envelope, only the ids; the body on the wire is not the plaintext.
    let plaintext = hit.plaintext.as_ref().expect("decrypts");
    let envelope = PushEnvelope::from_json(plaintext).unwrap();
    assert_eq!(envelope.account_id, *phone.account());
    assert_eq!(envelope.request_id.as_str(), rid);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(plaintext).unwrap(),
        json!({"v": 1, "aid": phone.account().as_str(), "rid": rid})
    );
    assert!(!plaintext.contains("alice") && !plaintext.contains(&format!("\"{number}\"")));
    assert!(!hit.body.windows(rid.len()).any(|w| w == rid.as_bytes()));
    assert_eq!(
        audit_outcomes(&h, "push_delivery").await,
        vec!["longpoll:queued", "webpush:sent"]
    );

    // Another phone's keys do not decrypt it.
    let other = service.subscribe();
    assert!(service.decrypt_as(&other.id, &hit.body).is_err());
    assert_eq!(
        service.decrypt_as(&sub.id, &hit.body).as_deref(),
        Ok(plaintext.as_str())
    );
    // Each message is encrypted afresh (new salt and sender key).
    h.start_signin("alice@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    let received = service.received();
    assert_eq!(received.len(), 2);
    assert_ne!(received[0].body[..16], received[1].body[..16]);
}

#[tokio::test]
async fn the_vapid_key_is_created_once_and_restricted_subscriptions_check_it() {
    let service = LocalPushService::start().await.unwrap();
    let (h, vapid_key) = webpush_harness(true, fast_retry(3)).await;
    // Opening the client again (a restart, another instance) keeps the stored key.
    let again = VapidKey::load_or_create(&h.state.pool).await.unwrap();
    assert_eq!(again.public_key(), vapid_key);
    assert_eq!(vapid_key.len(), 87);

    // A subscription restricted to the server's key is served.
    let mine = service.subscribe_restricted(&vapid_key);
    h.ready_phone_with_push("bob@contoso.com", "webpush", &mine.token)
        .await;
    h.start_signin("bob@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(service.received()[0].status, 201);

    // One restricted to another key is refused (403): rejected, not retried, not stale.
    let other_key = authenticator_protocol::EcdsaSigner::generate()
        .unwrap()
        .0
        .public_key()
        .to_b64();
    let theirs = service.subscribe_restricted(&other_key);
    let carol = h
        .ready_phone_with_push("carol@contoso.com", "webpush", &theirs.token)
        .await;
    h.start_signin("carol@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    let received = service.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].status, 403);
    assert_eq!(
        audit_outcomes(&h, "push_delivery").await.last().unwrap(),
        "webpush:rejected:http_403"
    );
    assert_eq!(stale_reason(&h, &carol).await, None);
}

#[tokio::test]
async fn a_gone_subscription_is_marked_stale_and_not_used_again() {
    let service = LocalPushService::start().await.unwrap();
    let (h, _) = webpush_harness(true, fast_retry(3)).await;

    // 410 Gone: the phone unsubscribed.
    let sub = service.subscribe();
    let gone = h
        .ready_phone_with_push("gone@contoso.com", "webpush", &sub.token)
        .await;
    service.unsubscribe(&sub.id);
    h.start_signin("gone@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(
        service.received().len(),
        1,
        "a gone subscription is not retried"
    );
    assert_eq!(service.received()[0].status, 410);
    assert_eq!(
        stale_reason(&h, &gone).await.as_deref(),
        Some("webpush:http_410")
    );
    assert_eq!(
        audit_outcomes(&h, "push_token_stale").await,
        vec!["webpush:http_410"]
    );
    // No more pushes to it; long-poll still delivers.
    let again = h.start_signin("gone@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(service.received().len(), 1);
    assert!(audit_outcomes(&h, "push_delivery")
        .await
        .contains(&"webpush:skipped_stale".to_owned()));
    let polled = gone.poll(&h, 0).await;
    assert_eq!(polled.body["pushes"][1]["rid"], again.body["id"]);

    // 404: the push service does not know the subscription.
    let unknown = service.subscribe();
    let token = unknown.token.replace(&unknown.id, "nosuchsubscription");
    let lost = h
        .ready_phone_with_push("lost@contoso.com", "webpush", &token)
        .await;
    h.start_signin("lost@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(service.received().last().unwrap().status, 404);
    assert_eq!(
        stale_reason(&h, &lost).await.as_deref(),
        Some("webpush:http_404")
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_with_a_bound_and_redirects_not_followed() {
    let service = LocalPushService::start().await.unwrap();
    let (h, _) = webpush_harness(true, fast_retry(3)).await;
    let sub = service.subscribe();
    let phone = h
        .ready_phone_with_push("retry@contoso.com", "webpush", &sub.token)
        .await;

    service.script(&[429, 503]);
    h.start_signin("retry@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    let statuses: Vec<u16> = service.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 503, 201]);
    assert_eq!(
        audit_outcomes(&h, "push_delivery").await.last().unwrap(),
        "webpush:sent"
    );

    // A redirect is not followed (the push service answers; it does not send the server
    // elsewhere), and not retried.
    service.script(&[307]);
    h.start_signin("retry@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(service.received().len(), 4);
    assert_eq!(
        audit_outcomes(&h, "push_delivery").await.last().unwrap(),
        "webpush:rejected:http_307"
    );

    service.script(&[500, 500, 500]);
    h.start_signin("retry@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(service.received().len(), 7);
    assert_eq!(
        audit_outcomes(&h, "push_delivery").await.last().unwrap(),
        "webpush:failed:http_500"
    );
    assert_eq!(stale_reason(&h, &phone).await, None);
}

#[tokio::test]
async fn plain_http_endpoints_are_refused_unless_allowed_for_tests() {
    let service = LocalPushService::start().await.unwrap();
    // Without the development setting a plain-http endpoint is refused at enrollment…
    let (h, _) = webpush_harness(false, fast_retry(3)).await;
    h.add_user("local@contoso.com", &[]).await;
    let r = try_enroll(&h, "local@contoso.com", &service.subscribe().token).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{:?}",
        r.body
    );
    assert!(
        r.body["message"].as_str().unwrap().contains("https"),
        "{:?}",
        r.body
    );
    // …and one registered while it was on (the server since restarted without it) is never
    // pushed to: the channel goes stale.
    let (h, _) = webpush_harness_with(outbound(true), outbound(false), fast_retry(3)).await;
    let sub = service.subscribe();
    let phone = h
        .ready_phone_with_push("local@contoso.com", "webpush", &sub.token)
        .await;
    h.start_signin("local@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert!(service.received().is_empty());
    assert_eq!(
        stale_reason(&h, &phone).await.as_deref(),
        Some("webpush:insecure_endpoint")
    );
}

#[tokio::test]
async fn enrollment_refuses_malformed_webpush_tokens() {
    let service = LocalPushService::start().await.unwrap();
    let (h, _) = webpush_harness(true, fast_retry(1)).await;
    h.add_user("dave@contoso.com", &[]).await;
    let good = service.subscribe().token;
    let (p256dh, rest) = good.split_once('.').unwrap();
    let (auth, endpoint) = rest.split_once('.').unwrap();
    for bad in [
        String::new(),
        "token".into(),
        endpoint.to_owned(),
        format!(
            "{p256dh}.{auth}.{}",
            endpoint.replace("127.0.0.1", "push.example.net")
        ),
        format!("{p256dh}.{auth}.{}", endpoint.replace("http://", "ftp://")),
        format!("{auth}.{p256dh}.{endpoint}"),
        format!("{p256dh}.{}.{endpoint}", &auth[..20]),
        format!("{p256dh}.{auth}. {endpoint}"),
    ] {
        let link = h.link("dave@contoso.com", 600).await;
        let mut phone = Phone::new();
        phone.push_kind = "webpush".into();
        phone.push_token = bad.clone();
        let challenge = phone.challenge(&h, &link).await.unwrap();
        let r = h
            .post(
                "/api/v1/enroll/complete",
                phone.complete_body(&link.code, challenge),
            )
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad:?}"
        );
    }
    // The well-formed one enrolls (another user: this helper adds its own).
    let phone = h
        .ready_phone_with_push("erin@contoso.com", "webpush", &good)
        .await;
    assert!(phone.account_id.is_some());
    assert!(service.received().is_empty());
}

/// The VAPID private key, the subscriptions' auth secrets and endpoint URLs (capabilities), the
/// VAPID tokens and the numbers never reach the logs (the operator's level, plus all of our
/// own crate) or the audit log, also when a subscription goes stale.
#[tokio::test(flavor = "current_thread")]
async fn no_vapid_key_auth_secret_or_endpoint_in_logs_or_audit() {
    use support::scan::{audit_leaks, audit_texts, leaks, Captured, Secrets};
    // Thread-local capture: on the current-thread runtime the push tasks and the local push
    // service run on this thread, under this subscriber.
    let (captured, _guard) = Captured::install();

    let service = LocalPushService::start().await.unwrap();
    let (h, vapid_key) = webpush_harness(true, fast_retry(2)).await;
    let sub = service.subscribe();
    h.ready_phone_with_push("sec@contoso.com", "webpush", &sub.token)
        .await;
    let first = h.start_signin("sec@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    service.unsubscribe(&sub.id);
    let second = h.start_signin("sec@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    let received = service.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].status, 410);

    let stored = store::webpush::vapid_key(&h.state.pool)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.public_key, vapid_key);
    let (p256dh, rest) = sub.token.split_once('.').unwrap();
    let (auth, endpoint) = rest.split_once('.').unwrap();
    let vapid_header = received[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let jwt = vapid_header
        .trim_start_matches("vapid t=")
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let mut secrets = Secrets::default();
    for (name, value) in [
        ("VAPID private key (PKCS#8)", stored.private_key.clone()),
        ("VAPID token", jwt),
        ("auth secret", auth.to_owned()),
        ("subscription key", p256dh.to_owned()),
        ("endpoint", endpoint.to_owned()),
        ("subscription id", sub.id.clone()),
    ] {
        secrets.text(name, &value);
    }
    for r in [&first, &second] {
        secrets.number("number", r.body["number"].as_str().unwrap());
    }
    let rows = signin_domain::audit::list(&h.state.pool).await.unwrap();
    let (_, audit) = audit_texts(&rows);
    let logs = captured.text();
    assert!(logs.contains("push sent"), "logs were captured: {logs}");
    assert!(audit.contains("webpush:http_410"), "{audit}");
    let hits = leaks(&logs, &secrets.0);
    assert!(hits.is_empty(), "in the logs: {hits:#?}");
    let hits = audit_leaks(&rows, &secrets.0);
    assert!(hits.is_empty(), "{hits:#?}");
}

/// `admin webpush-key show` prints the stored public key (creating the key once);
/// `admin webpush-key rotate` replaces it (audited), and a server started afterwards signs with
/// the new key: a subscription restricted to the old one is refused by its push service.
#[tokio::test]
async fn the_admin_shows_and_rotates_the_vapid_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("signin.db").display());
    let admin = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signin-server"))
            .args(["--database", &db, "admin", "webpush-key"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let first = admin(&["show"]);
    assert_eq!(first.len(), 87, "{first}");
    assert_eq!(admin(&["show"]), first, "created once");
    let rotated = admin(&["rotate"]);
    assert_eq!(rotated.len(), 87);
    assert_ne!(rotated, first);
    assert_eq!(admin(&["show"]), rotated);

    // The same through the library, on a harness: the old key's subscriptions stop working.
    let service = LocalPushService::start().await.unwrap();
    let (h, old_key) = webpush_harness(true, fast_retry(1)).await;
    let sub = service.subscribe_restricted(&old_key);
    h.ready_phone_with_push("rot@contoso.com", "webpush", &sub.token)
        .await;
    signin_domain::delivery::webpush::run_admin(
        &h.state.pool,
        signin_domain::delivery::webpush::AdminCommand::Rotate,
    )
    .await
    .unwrap();
    assert!(audit_outcomes(&h, "policy_changed")
        .await
        .contains(&"webpush_vapid_key=rotated".to_owned()));
    let client = WebPushClient::open(
        &h.state.pool,
        &WebPushConfig {
            subject: SUBJECT.into(),
        },
        &outbound(true),
    )
    .await
    .unwrap();
    let new_key = client.vapid_public_key().to_owned();
    assert_ne!(new_key, old_key);
    let state = h
        .state
        .clone()
        .with_push(vec![Arc::new(client)], fast_retry(1));
    let h = Harness {
        app: signin_server::app(state.clone()),
        state,
        ..h
    };
    h.start_signin("rot@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    let received = service.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].vapid.as_ref().unwrap().key, new_key);
    assert_eq!(received[0].status, 403);
}

/// Posts an enrollment of a fresh phone for `upn` (a user already added) with a Web Push
/// `token`; the raw answer.
async fn try_enroll(h: &Harness, upn: &str, token: &str) -> Reply {
    try_enroll_kind(h, upn, "webpush", token).await
}

async fn try_enroll_kind(h: &Harness, upn: &str, kind: &str, token: &str) -> Reply {
    let link = h.link(upn, 600).await;
    let mut phone = Phone::new();
    phone.push_kind = kind.into();
    phone.push_token = token.into();
    let challenge = phone.challenge(h, &link).await.unwrap();
    h.post(
        "/api/v1/enroll/complete",
        phone.complete_body(&link.code, challenge),
    )
    .await
}

/// `<p256dh>.<auth>.` of a well-formed subscription, for tokens with another endpoint.
fn keys_of(token: &str) -> String {
    let (p256dh, rest) = token.split_once('.').unwrap();
    let (auth, _) = rest.split_once('.').unwrap();
    format!("{p256dh}.{auth}.")
}

/// Issue 20, finding 3: a Web Push endpoint is a URL the server POSTs to, chosen by whoever
/// enrolls. One at an internal address (the review's 0.0.0.0, ::ffff:127.0.0.1 and the cloud
/// metadata address among them) is refused at enrollment with the rule that refused it, and
/// nothing is stored; an allowed network lets its addresses through.
#[tokio::test]
async fn enrollment_refuses_webpush_endpoints_at_internal_addresses() {
    let service = LocalPushService::start().await.unwrap();
    let (h, _) = webpush_harness(false, fast_retry(1)).await;
    h.add_user("mallory@contoso.com", &[]).await;
    let keys = keys_of(&service.subscribe().token);
    for (endpoint, rule) in [
        ("https://0.0.0.0:8443/push/1", "unspecified"),
        ("https://[::ffff:127.0.0.1]:8443/push/1", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[::ffff:a9fe:a9fe]/latest/meta-data/", "link-local"),
        ("https://127.0.0.1:8443/push/1", "loopback"),
        ("https://[::1]:8443/push/1", "loopback"),
        ("https://localhost:8443/push/1", "loopback"),
        ("https://10.1.2.3/push/1", "private"),
        ("https://192.168.1.1/push/1", "private"),
        ("https://100.64.0.1/push/1", "carrier-grade NAT"),
        ("https://[fd00::1]/push/1", "unique-local"),
        ("https://[fe80::1]/push/1", "link-local"),
        ("https://224.0.0.1/push/1", "multicast"),
        ("https://255.255.255.255/push/1", "broadcast"),
        ("http://127.0.0.1:8080/push/1", "https"),
    ] {
        let r = try_enroll(&h, "mallory@contoso.com", &format!("{keys}{endpoint}")).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{endpoint}: {:?}",
            r.body
        );
        let message = r.body["message"].as_str().unwrap();
        assert!(
            message.starts_with("the push endpoint is refused") && message.contains(rule),
            "{endpoint}: {message}"
        );
        assert!(
            !message.contains(endpoint),
            "the endpoint is not echoed: {message}"
        );
    }
    let devices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE upn = $1")
        .bind("mallory@contoso.com")
        .fetch_one(&h.state.pool)
        .await
        .unwrap();
    assert_eq!(devices, 0);

    // A public host enrolls; so does an internal push service in an allowed network.
    let r = try_enroll(
        &h,
        "mallory@contoso.com",
        &format!("{keys}https://push.example.net/push/1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let allowing = OutboundPolicy {
        allow_networks: vec!["10.1.0.0/16".parse().unwrap()],
        ..Default::default()
    };
    let (h, _) = webpush_harness_with(allowing.clone(), allowing, fast_retry(1)).await;
    h.add_user("ops@contoso.com", &[]).await;
    let r = try_enroll(
        &h,
        "ops@contoso.com",
        &format!("{keys}https://10.1.2.3/push/1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = try_enroll(
        &h,
        "ops@contoso.com",
        &format!("{keys}https://10.2.0.1/push/1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
}

/// Issue 20, finding 3, at send time: an endpoint stored before the policy, or whose name
/// resolves to an internal address now (`localhost`: DNS can change after enrollment), is not
/// contacted. The push is rejected with the rule's name (audited), the channel is not stale
/// (allowing the network in the configuration makes it work again), and a listener on the
/// loopback port the endpoints name sees no connection.
#[tokio::test]
async fn pushes_to_internal_addresses_are_refused_at_send_time() {
    let service = LocalPushService::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let (h, _) = webpush_harness(false, fast_retry(2)).await;
    let keys = keys_of(&service.subscribe().token);
    for (i, (endpoint, reason)) in [
        (
            format!("https://0.0.0.0:{port}/push/1"),
            "address_unspecified",
        ),
        (
            format!("https://[::ffff:127.0.0.1]:{port}/push/1"),
            "address_loopback",
        ),
        (
            format!("https://localhost:{port}/push/1"),
            "address_loopback",
        ),
        (
            "https://169.254.169.254/latest/meta-data/".to_owned(),
            "address_link_local",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let upn = format!("stored{i}@contoso.com");
        let phone = h
            .ready_phone_with_push(
                &upn,
                "webpush",
                &format!("{keys}https://push.example.net/push/{i}"),
            )
            .await;
        // Stored as it was before the policy (or as its name now resolves).
        sqlx::query("UPDATE devices SET push_token = $1 WHERE account_id = $2")
            .bind(format!("{keys}{endpoint}"))
            .bind(phone.account().as_str())
            .execute(&h.state.pool)
            .await
            .unwrap();
        h.start_signin(&upn).await;
        h.state.dispatcher.wait_idle().await;
        assert_eq!(
            audit_outcomes(&h, "push_delivery").await.last().unwrap(),
            &format!("webpush:rejected:{reason}"),
            "{endpoint}"
        );
        assert_eq!(stale_reason(&h, &phone).await, None, "{endpoint}");
    }
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no connection to the loopback port"
    );
    assert!(service.received().is_empty());
}

/// Issue 20, finding 3: each push channel is one more request (up to four attempts) per
/// sign-in, so a user may have at most `max_push_channels_per_user` devices with a live one.
/// The next enrollment with a channel is refused with 409 `too_many_push_channels` and its code
/// stays usable; long-poll devices do not count, nor do stale channels; other users are not
/// affected.
#[tokio::test]
async fn push_channels_per_user_are_capped() {
    let service = LocalPushService::start().await.unwrap();
    let policy = OutboundPolicy {
        max_push_channels_per_user: 2,
        ..outbound(true)
    };
    let (h, _) = webpush_harness_with(policy.clone(), policy, fast_retry(1)).await;
    let upn = "many@contoso.com";
    let first = h
        .ready_phone_with_push(upn, "webpush", &service.subscribe().token)
        .await;
    let r = try_enroll_kind(&h, upn, "apns", &"ab".repeat(32)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // The third channel: refused, nothing stored, the code still usable.
    let link = h.link(upn, 600).await;
    let mut phone = Phone::new();
    phone.push_kind = "webpush".into();
    phone.push_token = service.subscribe().token;
    let challenge = phone.challenge(&h, &link).await.unwrap();
    let r = h
        .post(
            "/api/v1/enroll/complete",
            phone.complete_body(&link.code, challenge),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "too_many_push_channels"),
        "{:?}",
        r.body
    );
    let message = r.body["message"].as_str().unwrap();
    assert!(
        message.contains("already has 2 devices with a push channel"),
        "{message}"
    );
    let count = |upn: &'static str| {
        let pool = h.state.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM devices WHERE upn = $1")
                .bind(upn)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(count(upn).await, 2);
    // The same code enrolls the phone with long-poll, which is not counted.
    phone.push_kind = "longpoll".into();
    phone.push_token = String::new();
    let r = h
        .post(
            "/api/v1/enroll/complete",
            phone.complete_body(&link.code, challenge),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(count(upn).await, 3);
    let r = try_enroll_kind(&h, upn, "fcm", "fcm-token").await;
    assert_eq!(r.error(), "too_many_push_channels", "{:?}", r.body);

    // Another user has their own allowance.
    h.ready_phone_with_push("other@contoso.com", "webpush", &service.subscribe().token)
        .await;

    // A stale channel is never pushed to, so it does not count.
    sqlx::query("UPDATE devices SET push_stale_at = 1 WHERE account_id = $1")
        .bind(first.account().as_str())
        .execute(&h.state.pool)
        .await
        .unwrap();
    let r = try_enroll(&h, upn, &service.subscribe().token).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(count(upn).await, 4);
}
