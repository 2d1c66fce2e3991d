//! The HTTP API driven end to end with a software phone (no sockets: `oneshot`).
mod support;

use std::time::Duration;

use authenticator_protocol::encoding::{b64, sha256};
use authenticator_protocol::sign_in::Decision;
use authenticator_protocol::UnixMillis;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use signin_domain::accounts;
use signin_domain::rules::policy::{Mode, PolicyUpdate, Target};
use support::*;

const BOB: &str = "bobby@contoso.test";

#[tokio::test]
async fn enroll_sign_in_and_approve() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;

    let r = h.start_signin(BOB).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let number = r.body["number"].as_str().unwrap().to_owned();
    let n: u8 = number.parse().unwrap();
    assert!((10..=99).contains(&n) && number.len() == 2);
    time::OffsetDateTime::parse(
        r.body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339 expiry");

    // The poll answers at once with the envelope (ids only).
    let p = phone.poll(&h, 30).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(
        p.body,
        json!({"pushes": [{"v": 1, "aid": phone.account().as_str(), "rid": id}]})
    );

    let f = phone
        .fetch(&h, &id)
        .await
        .unwrap_or_else(|r| panic!("{:?}", r.body));
    let details: serde_json::Value = serde_json::from_str(&f.signed.details).unwrap();
    assert_eq!(details["kind"], "passwordless");
    assert_eq!(details["upn"], BOB);
    assert_eq!(details["app_name"], "My Apps");
    assert_eq!(details["location"], "Unknown location");
    assert_eq!(details["number_matching"], true);
    assert!(!f.signed.details.contains(&format!("\"{number}\"")));
    // The same signed text twice.
    let again = phone.fetch(&h, &id).await.unwrap();
    assert_eq!(again.signed, f.signed);

    let body = phone.answer(&f, Decision::Approve, Some(&number));
    let r = h.post(&respond_uri(&id), body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"status": "approved"}));

    let s = h.get(&format!("/api/v1/signin/{id}"), None).await;
    assert_eq!(s.body["status"], "approved");

    // A replayed approval, and the details of an answered request.
    let r = h.post(&respond_uri(&id), body).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "request_not_pending")
    );
    let e = phone.fetch(&h, &id).await.err().unwrap();
    assert_eq!(e.error(), "request_not_pending");
    // Nothing pending any more.
    assert_eq!(phone.poll(&h, 0).await.body, json!({"pushes": []}));

    // The audit log names events, never secrets.
    let rows = signin_domain::audit::list(&h.state.pool).await.unwrap();
    let events: Vec<_> = rows.iter().map(|r| r.event.as_str()).collect();
    for e in [
        "user_added",
        "registration_link_issued",
        "enrolled",
        "passwordless_enabled",
        "signin_started",
        "signin_decision",
    ] {
        assert!(events.contains(&e), "{e} in {events:?}");
    }
    // Each names who acted (issue 22): the application started it, the phone answered.
    let app_id = rows
        .iter()
        .find(|r| r.event == "application_added")
        .and_then(|r| r.outcome.strip_prefix("client_id="))
        .unwrap();
    let actor_of = |event: &str| {
        rows.iter()
            .find(|r| r.event == event)
            .and_then(|r| r.actor.clone())
    };
    assert_eq!(
        actor_of("signin_started"),
        Some(format!("application:{app_id}"))
    );
    assert_eq!(
        actor_of("signin_decision"),
        Some(format!("device:{}", phone.account().as_str()))
    );
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    assert!(!text.contains(&b64(&f.nonce)));
    assert!(!text.contains(&f.signed.signature));
}

#[tokio::test]
async fn enrollment_code_is_single_use_and_expires() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let link = h.link(BOB, 600).await;
    let mut phone = Phone::new();
    let c1 = phone.challenge(&h, &link).await.unwrap();
    // A fresh challenge voids the previous one.
    let c2 = phone.challenge(&h, &link).await.unwrap();
    assert_ne!(c1, c2);
    let r = h
        .post(
            "/api/v1/enroll/complete",
            phone.complete_body(&link.code, c1),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "invalid_code")
    );

    let body = phone.complete_body(&link.code, c2);
    let r = h.post("/api/v1/enroll/complete", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = h.post("/api/v1/enroll/complete", body).await;
    assert_eq!(r.error(), "invalid_code");
    assert_eq!(
        phone.challenge(&h, &link).await.err().unwrap().error(),
        "invalid_code"
    );

    // Unknown and expired codes.
    let r = h
        .post(
            "/api/v1/enroll/challenge",
            json!({"code": "AAECAwQFBgcICQoLDA0ODw"}),
        )
        .await;
    assert_eq!(r.error(), "invalid_code");
    let expired = h.link(BOB, 0).await;
    assert_eq!(
        phone.challenge(&h, &expired).await.err().unwrap().error(),
        "invalid_code"
    );

    // Only the hash of the code is stored.
    let codes: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM enrollment_codes")
        .fetch_all(&h.state.pool)
        .await
        .unwrap();
    assert!(codes.contains(&b64(&sha256(link.code.as_bytes()))));
    assert!(!codes.contains(&link.code));
}

#[tokio::test]
async fn enroll_proof_must_verify() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let link = h.link(BOB, 600).await;
    let mut phone = Phone::new();
    let c = phone.challenge(&h, &link).await.unwrap();
    let mut body = phone.complete_body(&link.code, c);
    body["device_name"] = json!("Evil Phone");
    let r = h.post("/api/v1/enroll/complete", body).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );
    // The code was not consumed by the failed attempt.
    let r = h
        .post(
            "/api/v1/enroll/complete",
            phone.complete_body(&link.code, c),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// Admins read the device name (`admin device list`): a name that could fake a line or reorder
/// text is refused before anything else, and the code stays usable.
#[tokio::test]
async fn a_device_name_with_control_or_bidi_characters_is_refused_at_enrollment() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let link = h.link(BOB, 600).await;
    let mut phone = Phone::new();
    let c = phone.challenge(&h, &link).await.unwrap();
    for name in ["Pixel\nremoved: yes", "Pixel\u{1b}[2K", "Pixel\u{202e}"] {
        let mut body = phone.complete_body(&link.code, c);
        body["device_name"] = json!(name);
        let r = h.post("/api/v1/enroll/complete", body).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{name:?}"
        );
    }
    let r = h
        .post(
            "/api/v1/enroll/complete",
            phone.complete_body(&link.code, c),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn passwordless_registration_checks_both_signatures_and_replay() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let mut phone = Phone::new();
    phone.enroll(&h, &h.link(BOB, 600).await).await;
    let old = phone.passwordless_body(UnixMillis::now());
    let mut bad = old.clone();
    bad["key_signature"] = bad["device_signature"].clone();
    let r = h.post("/api/v1/device/passwordless", bad).await;
    assert_eq!(r.error(), "bad_signature");
    let mut bad = old.clone();
    bad["device_signature"] = bad["key_signature"].clone();
    assert_eq!(
        h.post("/api/v1/device/passwordless", bad).await.error(),
        "bad_signature"
    );

    // Before passwordless: no phone sign-in.
    assert_eq!(
        h.start_signin(BOB).await.error(),
        "not_passwordless_capable"
    );

    let newer = phone.passwordless_body(UnixMillis(UnixMillis::now().0 + 1000));
    assert_eq!(
        h.post("/api/v1/device/passwordless", newer).await.status,
        StatusCode::NO_CONTENT
    );
    let r = h.post("/api/v1/device/passwordless", old).await;
    assert_eq!((r.status, r.error()), (StatusCode::CONFLICT, "replay"));
    let stale = phone.passwordless_body(UnixMillis(UnixMillis::now().0 - 10 * 60 * 1000));
    assert_eq!(
        h.post("/api/v1/device/passwordless", stale).await.error(),
        "stale_timestamp"
    );
}

#[tokio::test]
async fn three_wrong_numbers_fail_the_request() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let r = h.start_signin(BOB).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let number = r.body["number"].as_str().unwrap().to_owned();
    let f = phone.fetch(&h, &id).await.unwrap();
    for (k, left) in [(1u8, 2u64), (2, 1)] {
        let wrong = other_number(&number, k);
        let r = h
            .post(
                &respond_uri(&id),
                phone.answer(&f, Decision::Approve, Some(&wrong)),
            )
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "wrong_number")
        );
        assert_eq!(r.body["attempts_left"], left);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let wrong = other_number(&number, 3);
    let r = h
        .post(
            &respond_uri(&id),
            phone.answer(&f, Decision::Approve, Some(&wrong)),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "request_failed")
    );
    assert_eq!(
        h.get(&format!("/api/v1/signin/{id}"), None).await.body["status"],
        "failed"
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    let r = h
        .post(
            &respond_uri(&id),
            phone.answer(&f, Decision::Approve, Some(&number)),
        )
        .await;
    assert_eq!(r.error(), "request_not_pending");
}

#[tokio::test]
async fn deny_and_report() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    for (decision, status) in [(Decision::Deny, "denied"), (Decision::Report, "reported")] {
        let id = h.start_signin(BOB).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let f = phone.fetch(&h, &id).await.unwrap();
        // Deny/report must be signed by the device key, not the passwordless key.
        let wrong_key = phone.response(&f, decision, None, &phone.passwordless, UnixMillis::now());
        assert_eq!(
            h.post(&respond_uri(&id), wrong_key).await.error(),
            "bad_signature"
        );
        let r = h
            .post(&respond_uri(&id), phone.answer(&f, decision, None))
            .await;
        assert_eq!(r.body, json!({"status": status}));
        assert_eq!(
            h.get(&format!("/api/v1/signin/{id}"), None).await.body["status"],
            status
        );
    }
}

#[tokio::test]
async fn forged_and_tampered_responses_are_rejected() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let mallory = h.ready_phone("mallory@contoso.test").await;
    let r = h.start_signin(BOB).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let number = r.body["number"].as_str().unwrap().to_owned();
    let f = phone.fetch(&h, &id).await.unwrap();

    // Another account's passwordless key signing for Bob's account.
    let forged = phone.response(
        &f,
        Decision::Approve,
        Some(&number),
        &mallory.passwordless,
        UnixMillis::now(),
    );
    let r = h.post(&respond_uri(&id), forged).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );
    // Mallory's own account cannot answer Bob's request.
    let mut theirs = mallory.answer(&f, Decision::Approve, Some(&number));
    theirs["account_id"] = json!(mallory.account().as_str());
    assert_eq!(
        h.post(&respond_uri(&id), theirs).await.error(),
        "unknown_request"
    );
    // The device key cannot approve a passwordless request.
    let dev = phone.response(
        &f,
        Decision::Approve,
        Some(&number),
        &phone.device,
        UnixMillis::now(),
    );
    assert_eq!(
        h.post(&respond_uri(&id), dev).await.error(),
        "bad_signature"
    );

    // Correctly signed, but over another context hash / nonce.
    let mut other = phone.fetch(&h, &id).await.unwrap();
    other.signed.details.push(' ');
    let body = phone.answer(&other, Decision::Approve, Some(&number));
    assert_eq!(
        h.post(&respond_uri(&id), body).await.error(),
        "bad_signature"
    );
    let mut other = phone.fetch(&h, &id).await.unwrap();
    other.nonce[0] ^= 1;
    let body = phone.answer(&other, Decision::Approve, Some(&number));
    assert_eq!(
        h.post(&respond_uri(&id), body).await.error(),
        "bad_signature"
    );
    // A body changed after signing.
    let mut body = phone.answer(&f, Decision::Approve, Some(&number));
    body["context_sha256"] = json!(b64(&[0u8; 32]));
    assert_eq!(
        h.post(&respond_uri(&id), body).await.error(),
        "bad_signature"
    );
    // Stale timestamps.
    let old = UnixMillis(UnixMillis::now().0 - 6 * 60 * 1000);
    let body = phone.response(
        &f,
        Decision::Approve,
        Some(&number),
        &phone.passwordless,
        old,
    );
    assert_eq!(
        h.post(&respond_uri(&id), body).await.error(),
        "stale_timestamp"
    );

    // None of that consumed attempts or answered the request.
    let ok = phone.answer(&f, Decision::Approve, Some(&number));
    assert_eq!(
        h.post(&respond_uri(&id), ok).await.body,
        json!({"status": "approved"})
    );
}

#[tokio::test]
async fn an_earlier_timestamp_is_a_replay() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let r = h.start_signin(BOB).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let number = r.body["number"].as_str().unwrap().to_owned();
    let f = phone.fetch(&h, &id).await.unwrap();
    let now = UnixMillis::now();
    let wrong = other_number(&number, 1);
    let later = phone.response(
        &f,
        Decision::Approve,
        Some(&wrong),
        &phone.passwordless,
        UnixMillis(now.0 + 10),
    );
    assert_eq!(
        h.post(&respond_uri(&id), later.clone()).await.error(),
        "wrong_number"
    );
    let earlier = phone.response(
        &f,
        Decision::Approve,
        Some(&number),
        &phone.passwordless,
        now,
    );
    let r = h.post(&respond_uri(&id), earlier).await;
    assert_eq!((r.status, r.error()), (StatusCode::CONFLICT, "replay"));
    // Replaying the wrong answer does not burn another attempt.
    assert_eq!(h.post(&respond_uri(&id), later).await.error(), "replay");
}

#[tokio::test]
async fn expired_requests() {
    let h = harness_with_ttl(1).await;
    let phone = h.ready_phone(BOB).await;
    let r = h.start_signin(BOB).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let number = r.body["number"].as_str().unwrap().to_owned();
    let f = phone.fetch(&h, &id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = h
        .post(
            &respond_uri(&id),
            phone.answer(&f, Decision::Approve, Some(&number)),
        )
        .await;
    assert_eq!((r.status, r.error()), (StatusCode::GONE, "request_expired"));
    assert_eq!(
        phone.fetch(&h, &id).await.err().unwrap().error(),
        "request_expired"
    );
    assert_eq!(
        h.get(&format!("/api/v1/signin/{id}"), None).await.body["status"],
        "expired"
    );
    assert_eq!(phone.poll(&h, 0).await.body, json!({"pushes": []}));
}

#[tokio::test]
async fn another_applications_start_never_cancels_the_users_pending_sign_in() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let first = h.start_signin(BOB).await;
    let id1 = first.body["id"].as_str().unwrap().to_owned();
    let f1 = phone.fetch(&h, &id1).await.unwrap();
    // Someone else who knows the UPN, through another registered application.
    let other = accounts::applications::add(&h.state.pool, "Other app")
        .await
        .unwrap();
    let r = h
        .send(
            Request::post("/api/v1/signin")
                .header("content-type", "application/json")
                .header(
                    "authorization",
                    support::basic_auth(&other.client_id, &other.client_secret),
                )
                .body(Body::from(json!({ "upn": BOB }).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let id2 = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.get(&format!("/api/v1/signin/{id1}"), None).await.body["status"],
        "pending",
        "the user's own sign-in is not superseded"
    );
    let p = phone.poll(&h, 0).await;
    let rids: Vec<&str> = p.body["pushes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rid"].as_str().unwrap())
        .collect();
    assert_eq!(rids, [id1.as_str(), id2.as_str()]);
    let n1 = first.body["number"].as_str().unwrap();
    let r = h
        .post(
            &respond_uri(&id1),
            phone.answer(&f1, Decision::Approve, Some(n1)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        h.get(&format!("/api/v1/signin/{id1}"), None).await.body["status"],
        "approved"
    );
}

#[tokio::test]
async fn concurrent_correct_approvals_have_one_winner() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let r = h.start_signin(BOB).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let number = r.body["number"].as_str().unwrap().to_owned();
    let f = phone.fetch(&h, &id).await.unwrap();
    let now = UnixMillis::now().0;
    let bodies: Vec<_> = (0..4)
        .map(|i| {
            phone.response(
                &f,
                Decision::Approve,
                Some(&number),
                &phone.passwordless,
                UnixMillis(now + i),
            )
        })
        .collect();
    let replies = futures_join(&h, &id, bodies).await;
    let ok = replies.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{replies:?}");
    for (s, e) in &replies {
        assert!(
            *s == StatusCode::OK || e == "request_not_pending" || e == "replay",
            "{s} {e}"
        );
    }
}

async fn futures_join(
    h: &Harness,
    id: &str,
    bodies: Vec<serde_json::Value>,
) -> Vec<(StatusCode, String)> {
    let mut tasks = Vec::new();
    for body in bodies {
        let app = h.app.clone();
        let uri = respond_uri(id);
        tasks.push(tokio::spawn(async move {
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            let resp = app
                .oneshot(
                    Request::post(uri)
                        .header("content-type", "application/json")
                        .body(Body::from(body.to_string()))
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            (status, v["error"].as_str().unwrap_or("").to_owned())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn long_polls_wake_up() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let (app, auth) = (
        h.app.clone(),
        phone.auth("GET", "/api/v1/device/poll?wait=20"),
    );
    let started = std::time::Instant::now();
    let poll = tokio::spawn(async move {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let resp = app
            .oneshot(
                Request::get("/api/v1/device/poll?wait=20")
                    .header("authorization", auth)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = h.start_signin(BOB).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let got = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["pushes"][0]["rid"], id.as_str());
    assert!(started.elapsed() < Duration::from_secs(10));

    // The sign-in page's wait ends on the decision.
    let (app, uri) = (h.app.clone(), format!("/api/v1/signin/{id}?wait=20"));
    let waiting = tokio::spawn(async move {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let resp = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let f = phone.fetch(&h, &id).await.unwrap();
    let number = r.body["number"].as_str().unwrap();
    h.post(&respond_uri(&id), phone.answer(&f, Decision::Deny, None))
        .await;
    let _ = number;
    let got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["status"], "denied");

    // An empty poll waits, then answers empty.
    let t = std::time::Instant::now();
    assert_eq!(phone.poll(&h, 1).await.body, json!({"pushes": []}));
    assert!(t.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn sign_in_policy_and_capability() {
    let h = harness().await;
    let _phone = h.ready_phone(BOB).await;
    h.add_user("nophone@contoso.test", &["pilot"]).await;
    let pool = &h.state.pool;

    let r = h.start_signin("nobody@contoso.test").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "unknown_account")
    );
    let r = h.start_signin("nophone@contoso.test").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "not_passwordless_capable")
    );

    let set = |u: PolicyUpdate| async move { accounts::set_policy(pool, &u).await.unwrap() };
    set(PolicyUpdate {
        enabled: Some(false),
        ..Default::default()
    })
    .await;
    let r = h.start_signin(BOB).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "policy_disabled")
    );

    set(PolicyUpdate {
        enabled: Some(true),
        target: Some(Target::Group("pilot".into())),
        ..Default::default()
    })
    .await;
    assert_eq!(h.start_signin(BOB).await.error(), "policy_disabled");
    assert_eq!(
        h.start_signin("nophone@contoso.test").await.error(),
        "not_passwordless_capable"
    );

    // An excluded group is left out even when the target is everyone (issue 22).
    accounts::add_group_member(pool, "contractors", BOB)
        .await
        .unwrap();
    set(PolicyUpdate {
        target: Some(Target::All),
        exclude: Some(vec!["contractors".into()]),
        ..Default::default()
    })
    .await;
    assert_eq!(h.start_signin(BOB).await.error(), "policy_disabled");
    set(PolicyUpdate {
        exclude: Some(Vec::new()),
        ..Default::default()
    })
    .await;
    assert_eq!(h.start_signin(BOB).await.status, StatusCode::OK);

    set(PolicyUpdate {
        target: Some(Target::All),
        mode: Some(Mode::Push),
        ..Default::default()
    })
    .await;
    assert_eq!(h.start_signin(BOB).await.error(), "policy_disabled");

    // Passwordless mode; app and location hidden.
    set(PolicyUpdate {
        mode: Some(Mode::Passwordless),
        show_app_name: Some(false),
        show_location: Some(false),
        ..Default::default()
    })
    .await;
    let r = h.start_signin(BOB).await;
    assert_eq!(r.status, StatusCode::OK);
    let id = r.body["id"].as_str().unwrap();
    let details: String = sqlx::query_scalar("SELECT details FROM signin_requests WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert_eq!(v["app_name"], serde_json::Value::Null);
    assert_eq!(v["location"], serde_json::Value::Null);
    assert_eq!(v["number_matching"], true);

    // Each feature by groups (issue 22): Bob, in `contractors` and not in `pilot`, is shown
    // the application's name only when it is for everyone, never the location while
    // `contractors` is excepted from it.
    async fn shown(h: &Harness) -> serde_json::Value {
        let r = h.start_signin(BOB).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let details: String =
            sqlx::query_scalar("SELECT details FROM signin_requests WHERE id = $1")
                .bind(r.body["id"].as_str().unwrap())
                .fetch_one(&h.state.pool)
                .await
                .unwrap();
        serde_json::from_str(&details).unwrap()
    }
    set(PolicyUpdate {
        show_app_name: Some(true),
        show_location: Some(true),
        app_name_target: Some(Target::Group("pilot".into())),
        location_exclude: Some(vec!["contractors".into()]),
        ..Default::default()
    })
    .await;
    let v = shown(&h).await;
    assert_eq!(v["app_name"], serde_json::Value::Null, "not in pilot");
    assert_eq!(
        v["location"],
        serde_json::Value::Null,
        "contractors excepted"
    );
    set(PolicyUpdate {
        app_name_target: Some(Target::All),
        location_exclude: Some(Vec::new()),
        ..Default::default()
    })
    .await;
    let v = shown(&h).await;
    assert_eq!(v["app_name"], "My Apps");
    assert_eq!(v["location"], "Unknown location");

    assert!(accounts::set_policy(
        pool,
        &PolicyUpdate {
            number_matching: Some(false),
            ..Default::default()
        }
    )
    .await
    .is_err());
}

#[tokio::test]
async fn device_authentication() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let pq = "/api/v1/device/poll?wait=0";
    assert_eq!(h.get(pq, None).await.error(), "unauthorized");
    assert_eq!(
        h.get(pq, Some("Bearer abc".into())).await.error(),
        "unauthorized"
    );
    // Signed for another path or query.
    let r = h
        .get(pq, Some(phone.auth("GET", "/api/v1/device/poll?wait=60")))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );
    let r = h.get(pq, Some(phone.auth("POST", pq))).await;
    assert_eq!(r.error(), "bad_signature");
    // Unknown account.
    let stranger = {
        let mut p = Phone::new();
        p.account_id = Some(authenticator_protocol::AccountId::random());
        p
    };
    assert_eq!(
        h.get(pq, Some(stranger.auth("GET", pq))).await.error(),
        "unknown_account"
    );
    // Details of a request of another account.
    let mallory = h.ready_phone("mallory@contoso.test").await;
    let id = h.start_signin(BOB).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        mallory.fetch(&h, &id).await.err().unwrap().error(),
        "unknown_request"
    );
    assert_eq!(phone.poll(&h, 0).await.status, StatusCode::OK);
}

#[tokio::test]
async fn starting_a_sign_in_without_a_registered_applications_credential_is_401_with_www_authenticate_basic(
) {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let intranet = accounts::applications::add(&h.state.pool, "Intranet")
        .await
        .unwrap();
    let cases = [
        ("no credential", None),
        (
            "a wrong secret",
            Some(basic_auth(&intranet.client_id, "not-the-secret")),
        ),
        (
            "an unknown client id",
            Some(basic_auth("app-unknown", &intranet.client_secret)),
        ),
        (
            "the portal, which has no secret",
            Some(basic_auth("signin-portal", "anything")),
        ),
        (
            "another scheme",
            Some(format!("Bearer {}", intranet.client_secret)),
        ),
        ("not base64", Some("Basic !!!".to_owned())),
    ];
    for upn in [BOB, "nobody@contoso.test"] {
        for (what, auth) in &cases {
            let mut b = Request::post("/api/v1/signin").header("content-type", "application/json");
            if let Some(a) = auth {
                b = b.header("authorization", a);
            }
            let r = h
                .send(
                    b.body(Body::from(json!({ "upn": upn }).to_string()))
                        .unwrap(),
                )
                .await;
            // The same answer for a known and an unknown user: nothing about who exists.
            assert_eq!(
                (r.status, r.error()),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{what}, {upn}"
            );
            let challenge = r.headers["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Basic "), "{what}: {challenge}");
        }
    }
    // Nothing was started: no request, nothing for the phone.
    let started: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signin_requests")
        .fetch_one(&h.state.pool)
        .await
        .unwrap();
    assert_eq!(started, 0);
    assert_eq!(phone.poll(&h, 0).await.body, json!({"pushes": []}));
    // The application's own credential works.
    let r = h
        .send(
            Request::post("/api/v1/signin")
                .header("content-type", "application/json")
                .header(
                    "authorization",
                    basic_auth(&intranet.client_id, &intranet.client_secret),
                )
                .body(Body::from(json!({ "upn": BOB }).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn malformed_input_gets_json_errors() {
    let h = harness().await;
    let cases = [
        ("/api/v1/signin", "{not json", Some("application/json")),
        ("/api/v1/signin", r#"{"upn": 5}"#, Some("application/json")),
        ("/api/v1/signin", r#"{"upn": "a"}"#, None),
        ("/api/v1/enroll/challenge", "[]", Some("application/json")),
        (
            "/api/v1/device/requests/x/response",
            "{}",
            Some("application/json"),
        ),
    ];
    for (uri, body, ct) in cases {
        let mut b = Request::post(uri).header("authorization", &h.app_auth);
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        let r = h.send(b.body(Body::from(body)).unwrap()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri} {body}");
        assert_eq!(r.error(), "invalid_request", "{uri} {body}");
        assert!(r.body["message"].is_string());
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }
    let r = h.get("/api/v1/signin/abc?wait=x", None).await;
    assert_eq!(r.error(), "invalid_request");
    let r = h.get("/api/v1/signin/abc", None).await;
    assert_eq!(r.error(), "unknown_request");
    let r = h.get("/nope", None).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "invalid_request")
    );
    assert_eq!(h.get("/healthz", None).await.status, StatusCode::OK);
}
