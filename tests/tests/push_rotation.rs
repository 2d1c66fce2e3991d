//! End to end, push-token rotation (PROTOCOL.md §5.10): a phone built on authenticator-core
//! enrolls with a push channel of a local push service (APNs, FCM, Web Push), its token
//! changes (`onNewToken`, a new APNs device token, a UnifiedPush endpoint change), the app
//! calls `update_push_registration`, and the next sign-in's push goes to the new token only;
//! the phone handles that push and approves. A rotation that names the phone's account but is
//! signed by another device's key is refused and moves nothing.
use std::collections::HashMap;
use std::time::Duration;

use authenticator_core::{Decision, PushKind, PushOutcome, PushRegistration, PushUpdateOutcome};
use e2e::raw_device::RawDevice;
use e2e::{TestPhone, TestServer};
use serde_json::Value;
use signin_domain::delivery::push::{PushConfig, WebPushConfig};
use signin_domain::outbound::OutboundPolicy;
use signin_server::push_local::{Apns, Fcm};
use signin_server::webpush_local::LocalPushService;
use signin_server::ServeConfig;

const BOBBY: &str = "bobby@contoso.test";
const OLD_APNS: &str = "5a1f0c9e7b3d2a4f6e8c0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a";
const NEW_APNS: &str = "0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a5a1f0c9e7b3d2a4f6e8c";

/// The local push services and a server that pushes through all three.
struct Lab {
    apns: Apns,
    fcm: Fcm,
    webpush: LocalPushService,
    server: TestServer,
    _dir: tempfile::TempDir,
}

impl Lab {
    async fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let apns = Apns::start(dir.path()).await;
        let fcm = Fcm::start(dir.path()).await;
        let webpush = LocalPushService::start().await.unwrap();
        let (apns_config, fcm_config) = (apns.config(), fcm.config());
        // The local services are plain http on 127.0.0.1: the development setting.
        let server = TestServer::start_configured("Contoso", |c| ServeConfig {
            push: PushConfig {
                apns: Some(apns_config),
                fcm: Some(fcm_config),
                webpush: Some(WebPushConfig {
                    subject: "mailto:signin-ops@contoso.test".into(),
                }),
                ..Default::default()
            },
            outbound: OutboundPolicy {
                allow_http_loopback: true,
                ..Default::default()
            },
            ..c
        })
        .await
        .unwrap();
        Lab {
            apns,
            fcm,
            webpush,
            server,
            _dir: dir,
        }
    }

    /// A phone enrolled for Bobby with `push`, phone sign-in enabled; its account id.
    async fn phone_with(&self, push: PushRegistration) -> (TestPhone, String) {
        let link = self
            .server
            .user_with_link(BOBBY, "Bobby Smith")
            .await
            .unwrap();
        let phone = TestPhone::new().unwrap();
        let account = phone.core.enroll(link, "Pixel".into(), push).await.unwrap();
        phone
            .core
            .enable_phone_sign_in(account.account_id.clone())
            .await
            .unwrap();
        (phone, account.account_id)
    }
}

/// Waits until `count()` exceeds `seen` (the push of a sign-in just started arrived).
async fn arrived(count: impl Fn() -> usize, seen: usize) {
    for _ in 0..400 {
        if count() > seen {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no push arrived");
}

async fn rotate(phone: &TestPhone, push: PushRegistration) {
    let results = phone.core.update_push_registration(push).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].outcome,
        PushUpdateOutcome::Updated,
        "{results:?}"
    );
}

/// The phone shows the request the push named, and the user approves it with the number.
async fn approve_from(phone: &TestPhone, outcome: PushOutcome, request_id: &str, number: String) {
    let PushOutcome::ShowRequest { request } = outcome else {
        panic!("expected a request to show, got {outcome:?}");
    };
    assert_eq!(request.request_id, request_id);
    let decision = phone.approve(request_id.to_owned(), number).await.unwrap();
    assert_eq!(decision, Decision::Approved);
}

fn apns(token: &str) -> PushRegistration {
    PushRegistration {
        kind: PushKind::Apns,
        token: token.into(),
    }
}

fn fcm(token: &str) -> PushRegistration {
    PushRegistration {
        kind: PushKind::Fcm,
        token: token.into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_an_apns_rotation_the_next_sign_in_is_pushed_to_the_new_device_token_only() {
    let lab = Lab::start().await;
    let (phone, _) = lab.phone_with(apns(OLD_APNS)).await;
    lab.server.start_sign_in(BOBBY).await.unwrap();
    arrived(|| lab.apns.hits().len(), 0).await;
    assert_eq!(lab.apns.hits()[0].token, OLD_APNS);

    // A restore: APNs hands the app a new device token.
    rotate(&phone, apns(NEW_APNS)).await;
    let (request_id, number) = lab.server.start_sign_in(BOBBY).await.unwrap();
    arrived(|| lab.apns.hits().len(), 1).await;
    let hits = lab.apns.hits();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[1].token, NEW_APNS);
    assert_eq!(hits[1].body["psi"]["rid"], request_id.as_str());
    let outcome = phone
        .core
        .handle_push_json(hits[1].body.to_string())
        .await
        .unwrap();
    approve_from(&phone, outcome, &request_id, number).await;
    assert_eq!(lab.server.status(&request_id).await.unwrap(), "approved");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_an_fcm_rotation_the_next_sign_in_is_pushed_to_the_new_token_only() {
    let lab = Lab::start().await;
    let (phone, _) = lab.phone_with(fcm("fcm-token-old")).await;
    lab.server.start_sign_in(BOBBY).await.unwrap();
    arrived(|| lab.fcm.sends().len(), 0).await;

    // FCM calls `onNewToken`.
    rotate(&phone, fcm("fcm-token-new")).await;
    let (request_id, number) = lab.server.start_sign_in(BOBBY).await.unwrap();
    arrived(|| lab.fcm.sends().len(), 1).await;
    let sends = lab.fcm.sends();
    let tokens: Vec<&str> = sends
        .iter()
        .map(|s| s.body["message"]["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, vec!["fcm-token-old", "fcm-token-new"]);
    let data: HashMap<String, String> =
        serde_json::from_value(sends[1].body["message"]["data"].clone()).unwrap();
    let outcome = phone.core.handle_push_data(data).await.unwrap();
    approve_from(&phone, outcome, &request_id, number).await;
    assert_eq!(lab.server.status(&request_id).await.unwrap(), "approved");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_unifiedpush_endpoint_change_the_next_sign_in_goes_to_the_new_subscription_only() {
    let lab = Lab::start().await;
    let old = lab.webpush.subscribe();
    let (phone, _) = lab
        .phone_with(PushRegistration {
            kind: PushKind::WebPush,
            token: old.token.clone(),
        })
        .await;
    lab.server.start_sign_in(BOBBY).await.unwrap();
    let first = lab
        .webpush
        .next_after(0, Duration::from_secs(10))
        .await
        .expect("the first sign-in's push");
    assert_eq!(first.subscription, old.id);

    // The distributor moves the endpoint: a new subscription, new keys.
    let new = lab.webpush.subscribe();
    rotate(
        &phone,
        PushRegistration {
            kind: PushKind::WebPush,
            token: new.token.clone(),
        },
    )
    .await;
    let (request_id, number) = lab.server.start_sign_in(BOBBY).await.unwrap();
    let second = lab
        .webpush
        .next_after(1, Duration::from_secs(10))
        .await
        .expect("the next sign-in's push");
    assert_eq!(second.subscription, new.id);
    assert_eq!(second.status, 201);
    assert!(
        lab.webpush.decrypt_as(&old.id, &second.body).is_err(),
        "the old subscription's keys cannot read it"
    );
    let plaintext = second
        .plaintext
        .clone()
        .expect("decrypted with the new keys");
    let outcome = phone.core.handle_push_json(plaintext).await.unwrap();
    approve_from(&phone, outcome, &request_id, number).await;
    assert_eq!(lab.server.status(&request_id).await.unwrap(), "approved");
    assert!(lab
        .webpush
        .received()
        .iter()
        .skip(1)
        .all(|m| m.subscription == new.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_signed_by_another_device_is_refused_and_pushes_still_go_to_the_phone() {
    let lab = Lab::start().await;
    let (phone, account_id) = lab.phone_with(fcm("fcm-victim")).await;
    // The attacker's own, legitimately enrolled device (another user on the same server).
    let link = lab
        .server
        .user_with_link("mallory@contoso.test", "Mallory")
        .await
        .unwrap();
    let attacker = RawDevice::enroll(&link).await.unwrap();

    let (status, body): (u16, Value) = attacker
        .forge_push_rotation(&account_id, "fcm", "fcm-attacker")
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "bad_signature", "{body}");

    let (request_id, number) = lab.server.start_sign_in(BOBBY).await.unwrap();
    arrived(|| lab.fcm.sends().len(), 0).await;
    let sends = lab.fcm.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].body["message"]["token"], "fcm-victim");
    let data: HashMap<String, String> =
        serde_json::from_value(sends[0].body["message"]["data"].clone()).unwrap();
    let outcome = phone.core.handle_push_data(data).await.unwrap();
    approve_from(&phone, outcome, &request_id, number).await;

    // The phone's own rotation still works afterwards.
    rotate(&phone, fcm("fcm-victim-new")).await;
}
