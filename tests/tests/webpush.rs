//! End to end, push without Google or Apple: a phone built on authenticator-core enrolls with a
//! Web Push (UnifiedPush) subscription of a local push service; the server's message reaches the
//! service VAPID-signed and RFC 8291-encrypted; the service decrypts it with the subscription's
//! keys (as the phone's UnifiedPush connector does) and the plaintext goes to
//! `handle_push_json`, which fetches the signed details; the user approves with the number.
use std::time::Duration;

use authenticator_core::{
    web_push_token, AuthenticatorError, Decision, PushKind, PushOutcome, PushRegistration,
};
use e2e::proxy::RecordingProxy;
use e2e::{TestPhone, TestServer};
use signin_domain::delivery::push::{PushConfig, WebPushConfig};
use signin_domain::outbound::OutboundPolicy;
use signin_server::webpush_local::LocalPushService;
use signin_server::ServeConfig;

const BOBBY: &str = "bobby@contoso.test";

#[tokio::test]
async fn a_webpush_phone_is_woken_through_its_push_service_and_approves() {
    let service = LocalPushService::start().await.unwrap();
    // The local push service is plain http on 127.0.0.1: the development setting.
    let server = TestServer::start_configured("Contoso", |c| ServeConfig {
        push: PushConfig {
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
    let link = server.user_with_link(BOBBY, "Bobby Smith").await.unwrap();

    // The app gets endpoint, p256dh and auth from its UnifiedPush distributor and builds the
    // token with the core's helper.
    let sub = service.subscribe();
    let mut parts = sub.token.splitn(3, '.');
    let (p256dh, auth, endpoint) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let token = web_push_token(endpoint.into(), p256dh.into(), auth.into()).unwrap();
    assert_eq!(token, sub.token);
    let phone = TestPhone::new().unwrap();
    let account = phone
        .core
        .enroll(
            link,
            "Fairphone".into(),
            PushRegistration {
                kind: PushKind::WebPush,
                token,
            },
        )
        .await
        .unwrap();
    phone
        .core
        .enable_phone_sign_in(account.account_id.clone())
        .await
        .unwrap();

    let (request_id, number) = server.start_sign_in(BOBBY).await.unwrap();
    let message = service
        .next_after(0, Duration::from_secs(10))
        .await
        .expect("the push service received the message");
    assert_eq!(message.subscription, sub.id);
    assert_eq!(message.status, 201);
    let vapid = message.vapid.as_ref().expect("VAPID verified");
    assert_eq!(vapid.claims["aud"], service.origin());
    let plaintext = message.plaintext.clone().expect("decrypted");
    // Only the ids: no number, no UPN.
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&plaintext).unwrap(),
        serde_json::json!({"v": 1, "aid": account.account_id, "rid": request_id})
    );

    let outcome = phone.core.handle_push_json(plaintext).await.unwrap();
    let PushOutcome::ShowRequest { request } = outcome else {
        panic!("expected a request to show, got {outcome:?}");
    };
    assert_eq!(request.request_id, request_id);
    assert_eq!(request.account_id, account.account_id);

    let decision = phone.approve(request_id.clone(), number).await.unwrap();
    assert_eq!(decision, Decision::Approved);
    assert_eq!(server.status(&request_id).await.unwrap(), "approved");

    // Another subscription's keys cannot read the message.
    let stranger = service.subscribe();
    assert!(service.decrypt_as(&stranger.id, &message.body).is_err());
}

#[tokio::test]
async fn the_core_refuses_a_malformed_webpush_registration_before_any_network() {
    let server = TestServer::start("Contoso").await.unwrap();
    // The link names a recording proxy in front of the server: it sees every request.
    let proxy = RecordingProxy::start(&server.base_url).await.unwrap();
    let link = server
        .user_with_link_naming(BOBBY, "Bobby Smith", &proxy.base_url)
        .await
        .unwrap();
    let phone = TestPhone::new().unwrap();
    let sub_key = authenticator_protocol::EcdsaSigner::generate()
        .unwrap()
        .0
        .public_key()
        .to_b64();
    for token in [
        String::new(),
        "https://push.example.net/up/1".to_owned(),
        format!("{sub_key}.AAAAAAAAAAAAAAAAAAAAAA.http://push.example.net/up/1"),
        format!("{sub_key}.AAAA.https://push.example.net/up/1"),
    ] {
        let err = phone
            .core
            .enroll(
                link.clone(),
                "Fairphone".into(),
                PushRegistration {
                    kind: PushKind::WebPush,
                    token: token.clone(),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthenticatorError::InvalidInput { .. }),
            "{token:?}: {err:?}"
        );
    }
    assert!(proxy.exchanges().is_empty(), "nothing was sent");
    // The code still enrolls the phone.
    let token = format!("{sub_key}.AAAAAAAAAAAAAAAAAAAAAA.https://push.example.net/up/1");
    let account = phone
        .core
        .enroll(
            link,
            "Fairphone".into(),
            PushRegistration {
                kind: PushKind::WebPush,
                token,
            },
        )
        .await
        .unwrap();
    assert_eq!(account.upn, BOBBY);
}
