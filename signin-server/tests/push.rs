//! APNs and FCM delivery against local endpoints that speak the documented APIs; stale
//! tokens; retries; push bombing; secrets kept out of the audit log and the logs.
mod endpoints;
mod support;

use authenticator_protocol::sign_in::Decision;
use axum::http::{StatusCode, Version};
use endpoints::*;
use serde_json::json;
use signin_domain::rules::risk::RiskConfig;

use support::*;

fn unix_secs(rfc3339: &str) -> u64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp() as u64
}

#[tokio::test]
async fn apns_pushes_have_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let apns = Apns::start(dir.path()).await;
    let h = push_harness(Some(&apns), None, fast_retry(3), generous()).await;
    let phone = h
        .ready_phone_with_push("alice@contoso.com", "apns", APNS_TOKEN)
        .await;

    let started = h.start_signin("alice@contoso.com").await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    let rid = started.body["id"].as_str().unwrap().to_owned();
    let number = started.body["number"].as_str().unwrap().to_owned();
    h.state.dispatcher.wait_idle().await;

    let hits = apns.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.version, Version::HTTP_2);
    assert_eq!(hit.token, APNS_TOKEN);
    let header = |n: &str| hit.headers.get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("apns-push-type"), "alert");
    assert_eq!(header("apns-topic"), APNS_TOPIC);
    assert_eq!(header("apns-priority"), "10");
    let expires = unix_secs(started.body["expires_at"].as_str().unwrap());
    assert_eq!(header("apns-expiration"), expires.to_string());
    // Provider token: ES256 JWT with kid and iss, signed by the .p8 key.
    assert!(header("authorization").starts_with("bearer "));
    assert!(
        hit.jwt_verified,
        "ES256 signature verifies under the key's public key"
    );
    assert_eq!(hit.jwt.header, json!({"alg": "ES256", "kid": APNS_KEY_ID}));
    assert_eq!(hit.jwt.claims["iss"], APNS_TEAM_ID);
    let iat = hit.jwt.claims["iat"].as_u64().unwrap();
    let now = authenticator_protocol::UnixMillis::now().millis() / 1000;
    assert!(
        iat <= now && now - iat < 600,
        "iat {iat} is the signing time"
    );
    assert_eq!(hit.jwt.claims.as_object().unwrap().len(), 2);
    // Payload: generic alert, mutable-content, and only the opaque ids outside `aps`.
    assert_eq!(hit.body["aps"]["mutable-content"], 1);
    assert!(hit.body["aps"]["alert"].is_object());
    assert_eq!(
        hit.body["psi"],
        json!({"v": 1, "aid": phone.account().as_str(), "rid": rid})
    );
    assert_eq!(hit.body.as_object().unwrap().len(), 2);
    assert!(!hit.body.to_string().contains("alice"));
    assert!(!hit.body.to_string().contains(&format!("\"{number}\"")));

    // The provider token is reused, not re-signed for every push.
    h.start_signin("alice@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    let hits = apns.hits();
    assert_eq!(hits.len(), 2);
    assert_eq!(
        hits[0].headers.get("authorization"),
        hits[1].headers.get("authorization")
    );
    assert_eq!(
        audit_outcomes(&h, "push_delivery")
            .await
            .iter()
            .filter(|o| *o == "apns:sent")
            .count(),
        2
    );
    // Long-poll works too, for the same device (both sign-ins: neither supersedes the other).
    let polled = phone.poll(&h, 0).await;
    assert_eq!(polled.body["pushes"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn apns_invalid_tokens_mark_the_channel_stale() {
    let dir = tempfile::tempdir().unwrap();
    let apns = Apns::start(dir.path()).await;
    let h = push_harness(Some(&apns), None, fast_retry(3), generous()).await;

    // 410 Unregistered.
    let gone = h
        .ready_phone_with_push("gone@contoso.com", "apns", APNS_TOKEN)
        .await;
    apns.unregister(APNS_TOKEN);
    h.start_signin("gone@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(apns.hits().len(), 1, "an invalid token is not retried");
    assert_eq!(
        stale_reason(&h, &gone).await.as_deref(),
        Some("apns:Unregistered")
    );
    assert_eq!(
        audit_outcomes(&h, "push_token_stale").await,
        vec!["apns:Unregistered"]
    );
    // No more pushes to it; long-poll still delivers.
    let again = h.start_signin("gone@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(apns.hits().len(), 1);
    assert!(audit_outcomes(&h, "push_delivery")
        .await
        .contains(&"apns:skipped_stale".to_owned()));
    let polled = gone.poll(&h, 0).await;
    assert_eq!(polled.body["pushes"][1]["rid"], again.body["id"]);

    // 400 BadDeviceToken.
    let other = "ab".repeat(32);
    let bad = h
        .ready_phone_with_push("bad@contoso.com", "apns", &other)
        .await;
    apns.script(&[(400, "BadDeviceToken")]);
    h.start_signin("bad@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(
        stale_reason(&h, &bad).await.as_deref(),
        Some("apns:BadDeviceToken")
    );
    // A token that is not even hex never reaches the URL.
    let weird = h
        .ready_phone_with_push("weird@contoso.com", "apns", "../../x?y")
        .await;
    let before = apns.hits().len();
    h.start_signin("weird@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(apns.hits().len(), before);
    assert!(stale_reason(&h, &weird).await.is_some());
}

#[tokio::test]
async fn apns_temporary_errors_are_retried_with_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let apns = Apns::start(dir.path()).await;
    let h = push_harness(Some(&apns), None, fast_retry(3), generous()).await;
    let phone = h
        .ready_phone_with_push("retry@contoso.com", "apns", APNS_TOKEN)
        .await;

    // 503, 429 (Retry-After: 0), then 200.
    apns.script(&[(503, "ServiceUnavailable"), (429, "TooManyRequests")]);
    let r = h.start_signin("retry@contoso.com").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the sign-in does not wait for APNs"
    );
    h.state.dispatcher.wait_idle().await;
    assert_eq!(apns.hits().len(), 3);
    assert_eq!(
        audit_outcomes(&h, "push_delivery").await.last().unwrap(),
        "apns:sent"
    );

    // Always failing: three attempts, then given up (the channel is not stale).
    apns.script(&[(500, "InternalServerError"); 3]);
    h.start_signin("retry@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(apns.hits().len(), 6);
    assert_eq!(
        audit_outcomes(&h, "push_delivery").await.last().unwrap(),
        "apns:failed:InternalServerError"
    );
    assert_eq!(stale_reason(&h, &phone).await, None);

    // An expired provider token is renewed and the push retried.
    apns.script(&[(403, "ExpiredProviderToken")]);
    h.start_signin("retry@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(apns.hits().len(), 8);
    assert_eq!(
        audit_outcomes(&h, "push_delivery").await.last().unwrap(),
        "apns:sent"
    );

    // A configuration error is not retried.
    apns.script(&[(400, "BadTopic")]);
    h.start_signin("retry@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(apns.hits().len(), 9);
    assert_eq!(
        audit_outcomes(&h, "push_delivery").await.last().unwrap(),
        "apns:rejected:BadTopic"
    );
}

#[tokio::test]
async fn fcm_pushes_use_oauth_and_data_only_messages() {
    let dir = tempfile::tempdir().unwrap();
    let fcm = Fcm::start(dir.path()).await;
    let h = push_harness(None, Some(&fcm), fast_retry(3), generous()).await;
    let token = "fcm-registration-token:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx";
    let phone = h
        .ready_phone_with_push("ann@contoso.com", "fcm", token)
        .await;

    let started = h.start_signin("ann@contoso.com").await;
    assert_eq!(started.status, StatusCode::OK);
    let rid = started.body["id"].as_str().unwrap().to_owned();
    h.state.dispatcher.wait_idle().await;

    // OAuth2 JWT-bearer grant, RS256, verified with the service account's public key.
    let grants = fcm.token_requests();
    assert_eq!(grants.len(), 1);
    let g = &grants[0];
    assert_eq!(g.grant_type, "urn:ietf:params:oauth:grant-type:jwt-bearer");
    assert!(
        g.jwt_verified,
        "RS256 signature verifies under the public key"
    );
    assert_eq!(
        g.jwt.header,
        json!({"alg": "RS256", "typ": "JWT", "kid": "test-key-1"})
    );
    assert_eq!(g.jwt.claims["iss"], FCM_CLIENT_EMAIL);
    assert_eq!(
        g.jwt.claims["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );
    assert_eq!(g.jwt.claims["aud"], fcm.token_url.as_str());
    let (iat, exp) = (
        g.jwt.claims["iat"].as_u64().unwrap(),
        g.jwt.claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);

    let sends = fcm.sends();
    assert_eq!(sends.len(), 1);
    let s = &sends[0];
    assert_eq!(s.project, FCM_PROJECT);
    assert_eq!(s.authorization, format!("Bearer {}", fcm.issued()[0]));
    let m = &s.body["message"];
    assert_eq!(m["token"], token);
    assert_eq!(
        m["data"],
        json!({"psi_v": "1", "psi_aid": phone.account().as_str(), "psi_rid": rid})
    );
    assert!(m.get("notification").is_none(), "data-only message");
    assert_eq!(m["android"]["priority"], "HIGH");
    let ttl = m["android"]["ttl"].as_str().unwrap();
    let secs: u64 = ttl.strip_suffix('s').unwrap().parse().unwrap();
    assert!(
        (1..=90).contains(&secs),
        "ttl {ttl} is the request's remaining life"
    );
    assert_eq!(s.body.as_object().unwrap().len(), 1);

    // The access token is cached.
    h.start_signin("ann@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(fcm.sends().len(), 2);
    assert_eq!(fcm.token_requests().len(), 1);

    // A rejected access token is renewed once and the push retried.
    fcm.script(vec![(
        401,
        json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
    )]);
    h.start_signin("ann@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(fcm.token_requests().len(), 2);
    assert_eq!(fcm.sends().len(), 4);
    assert_eq!(
        audit_outcomes(&h, "push_delivery").await.last().unwrap(),
        "fcm:sent"
    );
}

#[tokio::test]
async fn fcm_invalid_tokens_mark_the_channel_stale() {
    let dir = tempfile::tempdir().unwrap();
    let fcm = Fcm::start(dir.path()).await;
    let h = push_harness(None, Some(&fcm), fast_retry(3), generous()).await;

    let unreg = h
        .ready_phone_with_push("u1@contoso.com", "fcm", "token-unregistered")
        .await;
    fcm.unregister("token-unregistered");
    h.start_signin("u1@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(
        stale_reason(&h, &unreg).await.as_deref(),
        Some("fcm:UNREGISTERED")
    );
    let sends = fcm.sends().len();
    h.start_signin("u1@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(fcm.sends().len(), sends, "no pushes to a stale channel");

    let invalid = h
        .ready_phone_with_push("u2@contoso.com", "fcm", "token-invalid")
        .await;
    fcm.script(vec![(
        400,
        endpoints::fcm_invalid_argument("message.token"),
    )]);
    h.start_signin("u2@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(
        stale_reason(&h, &invalid).await.as_deref(),
        Some("fcm:INVALID_ARGUMENT")
    );

    // INVALID_ARGUMENT about something else: rejected, the channel stays.
    let fine = h
        .ready_phone_with_push("u3@contoso.com", "fcm", "token-fine")
        .await;
    fcm.script(vec![(
        400,
        endpoints::fcm_invalid_argument("message.android.ttl"),
    )]);
    h.start_signin("u3@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(stale_reason(&h, &fine).await, None);
    assert_eq!(
        audit_outcomes(&h, "push_delivery").await.last().unwrap(),
        "fcm:rejected:INVALID_ARGUMENT"
    );
    assert_eq!(
        audit_outcomes(&h, "push_token_stale").await,
        vec!["fcm:UNREGISTERED", "fcm:INVALID_ARGUMENT"]
    );
}

#[tokio::test]
async fn push_bombing_is_bounded_and_a_report_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let apns = Apns::start(dir.path()).await;
    let policy = RiskConfig {
        burst: 3,
        refill_secs: 600,
        cooldown_secs: 600,
        max_cooldown_secs: 3600,
        report_pause_secs: 3600,
        user_burst: 10,
    };
    let h = push_harness(Some(&apns), None, fast_retry(2), policy).await;
    let victim = h
        .ready_phone_with_push("victim@contoso.com", "apns", APNS_TOKEN)
        .await;

    // An attacker who knows the UPN hammers the sign-in page.
    let mut accepted = Vec::new();
    let mut limited = 0;
    let mut polled = std::collections::HashSet::new();
    for _ in 0..40 {
        let r = h.start_signin("victim@contoso.com").await;
        match r.status {
            StatusCode::OK => {
                accepted.push(r.body["id"].as_str().unwrap().to_owned());
                // Let the push go out before the next attempt supersedes the request.
                h.state.dispatcher.wait_idle().await;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(r.error(), "rate_limited");
                let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=600).contains(&retry), "Retry-After {retry}");
                limited += 1;
            }
            other => panic!("unexpected {other}: {:?}", r.body),
        }
        for p in victim.poll(&h, 0).await.body["pushes"].as_array().unwrap() {
            polled.insert(p["rid"].as_str().unwrap().to_owned());
        }
    }
    h.state.dispatcher.wait_idle().await;
    assert_eq!(accepted.len(), 3, "the burst allows three sign-ins");
    assert_eq!(limited, 37);
    assert_eq!(
        apns.hits().len(),
        3,
        "APNs received no more than the policy allows"
    );
    assert!(polled.len() <= 3, "long-poll saw {} requests", polled.len());
    assert_eq!(
        audit_count(&h, "rate_limited").await,
        37,
        "every refusal is audited"
    );
    assert_eq!(
        audit_outcomes(&h, "rate_limited").await.len(),
        2,
        "collapsed: the cool-down's start, then one line of repeated refusals"
    );
    // Each accepted start is its own sign-in: none superseded another.
    for old in &accepted {
        let s = h.get(&format!("/api/v1/signin/{old}"), None).await;
        assert_eq!(s.body["status"], "pending");
    }

    // The user answers the newest one with "this wasn't me".
    let newest = accepted.last().unwrap();
    let f = victim
        .fetch(&h, newest)
        .await
        .unwrap_or_else(|r| panic!("{:?}", r.body));
    let r = h
        .post(
            &respond_uri(newest),
            victim.answer(&f, Decision::Report, None),
        )
        .await;
    assert_eq!(r.body["status"], "reported");
    // The waiting page ends with `reported`, and the report ends the user's other pending
    // sign-ins (the attacker's) with it.
    let s = h
        .get(&format!("/api/v1/signin/{newest}?wait=5"), None)
        .await;
    assert_eq!(s.body["status"], "reported");
    for old in &accepted[..2] {
        let s = h.get(&format!("/api/v1/signin/{old}"), None).await;
        assert_eq!(s.body["status"], "expired", "ended by the report");
    }

    // Paused: whatever the rate limit says, no more sign-ins and no more pushes.
    let pushes_before = apns.hits().len();
    for _ in 0..20 {
        let r = h.start_signin("victim@contoso.com").await;
        assert_eq!((r.status, r.error()), (StatusCode::FORBIDDEN, "paused"));
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((3000..=3600).contains(&retry), "Retry-After {retry}");
        assert!(victim.poll(&h, 0).await.body["pushes"]
            .as_array()
            .unwrap()
            .is_empty());
    }
    h.state.dispatcher.wait_idle().await;
    assert_eq!(apns.hits().len(), pushes_before, "no push after the report");
    assert_eq!(audit_count(&h, "signin_paused").await, 20);
    let paused = audit_outcomes(&h, "user_paused").await;
    assert_eq!(paused.len(), 1);
    assert!(paused[0].contains("risk=elevated"), "{paused:?}");

    // Risk is stored and shown to admins.
    let shown = signin_domain::accounts::describe_user(&h.state.pool, "victim@contoso.com")
        .await
        .unwrap();
    assert!(
        shown.contains("risk: elevated (score 1, reports 1"),
        "{shown}"
    );
    assert!(shown.contains("paused: until "), "{shown}");
    assert!(!shown.contains(APNS_TOKEN));

    // An admin may end the pause; the rate limit still applies afterwards.
    assert!(
        signin_domain::rules::risk::resume(&h.state.pool, "victim@contoso.com")
            .await
            .unwrap()
    );
    let r = h.start_signin("victim@contoso.com").await;
    assert_eq!(r.error(), "rate_limited");
    let shown = signin_domain::accounts::describe_user(&h.state.pool, "victim@contoso.com")
        .await
        .unwrap();
    assert!(
        shown.contains("paused: no") && shown.contains("risk: elevated"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_pause_only_hits_the_reporting_user() {
    let h = harness_with_state(90, |s| {
        s.with_risk(RiskConfig {
            burst: 10,
            ..RiskConfig::default()
        })
    })
    .await;
    let a = h.ready_phone("a@contoso.com").await;
    let _b = h.ready_phone("b@contoso.com").await;
    let r = h.start_signin("a@contoso.com").await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let f = a
        .fetch(&h, &id)
        .await
        .unwrap_or_else(|r| panic!("{:?}", r.body));
    h.post(&respond_uri(&id), a.answer(&f, Decision::Report, None))
        .await;
    assert_eq!(h.start_signin("a@contoso.com").await.error(), "paused");
    assert_eq!(h.start_signin("b@contoso.com").await.status, StatusCode::OK);
    // A plain deny neither pauses nor raises the risk.
    let r = h.start_signin("b@contoso.com").await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let f = _b
        .fetch(&h, &id)
        .await
        .unwrap_or_else(|r| panic!("{:?}", r.body));
    h.post(&respond_uri(&id), _b.answer(&f, Decision::Deny, None))
        .await;
    assert_eq!(h.start_signin("b@contoso.com").await.status, StatusCode::OK);
}
