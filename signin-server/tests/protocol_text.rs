//! Each statement of docs/PROTOCOL.md about server behaviour that an implementer could read
//! two ways, checked over HTTP against the reference server. Test names state the rule.
mod support;

use std::time::{Duration, Instant};

use authenticator_protocol::encoding::b64;
use authenticator_protocol::enroll::EnrollProof;
use authenticator_protocol::push::PushChannelKind;
use authenticator_protocol::sign_in::{response_key_role, Decision, KeyRole, RequestKind};
use authenticator_protocol::wire::MAX_CLOCK_SKEW_MS;
use authenticator_protocol::{EcdsaSigner, RequestId, UnixMillis};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use signin_domain::accounts;
use signin_domain::rules::policy::{Mode, PolicyUpdate};
use support::*;

const BOB: &str = "bobby@contoso.test";
/// A minute outside, and a minute inside, the ±5 minute window (`MAX_CLOCK_SKEW_MS`).
const SIX_MINUTES_MS: u64 = MAX_CLOCK_SKEW_MS + 60_000;
const FOUR_MINUTES_MS: u64 = MAX_CLOCK_SKEW_MS - 60_000;

fn ms(t: u64) -> UnixMillis {
    UnixMillis(t)
}

/// `POST /api/v1/signin` for `upn` (app "My Apps"): the request id and the number.
async fn start(h: &Harness, upn: &str) -> (String, String) {
    let r = h.start_signin(upn).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["number"].as_str().unwrap().to_owned(),
    )
}

fn details(f: &Fetched) -> Value {
    serde_json::from_str(&f.signed.details).unwrap()
}

/// An `enroll/complete` body signed by `phone`'s device key with the given push kind and time.
/// A well-formed Web Push subscription token (PROTOCOL.md §6.1).
fn webpush_token() -> String {
    let (key, _) = authenticator_protocol::EcdsaSigner::generate().unwrap();
    format!(
        "{}.{}.https://push.example.net/wpush/1",
        key.public_key().to_b64(),
        b64(&[9u8; 16])
    )
}

fn complete_body(
    phone: &Phone,
    code: &str,
    challenge: [u8; 32],
    push_kind: &str,
    timestamp: UnixMillis,
) -> Value {
    let proof = EnrollProof {
        challenge,
        device_public_key: phone.device.public_key(),
        push_kind: push_kind.into(),
        push_token: match push_kind {
            "longpoll" => String::new(),
            "webpush" => webpush_token(),
            _ => "token".into(),
        },
        device_name: "Test Phone".into(),
        timestamp,
    };
    let sig = phone.device.sign(&proof.signed_bytes());
    json!({
        "code": code, "challenge": b64(&challenge),
        "device_public_key": proof.device_public_key.to_b64(),
        "push": {"kind": proof.push_kind, "token": proof.push_token},
        "device_name": proof.device_name, "timestamp": proof.timestamp,
        "signature": sig.to_b64(),
    })
}

async fn set_policy(h: &Harness, update: PolicyUpdate) {
    accounts::set_policy(&h.state.pool, &update).await.unwrap();
}

/// The web sign-in with a password (`/signin`, then `/signin/password`), which starts a
/// `push` request when the policy has push for the user and they have a phone.
async fn web_password_sign_in(h: &Harness, upn: &str, password: &str) {
    const HOST: &str = "127.0.0.1:8080";
    let r = h
        .send(
            Request::get("/signin")
                .header("host", HOST)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = r.body.as_str().unwrap();
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("a CSRF field") + marker.len();
    let csrf = html[at..].split('"').next().unwrap().to_owned();
    let form = |uri: &str, pairs: &[(&str, &str)]| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Request::post(uri)
            .header("host", HOST)
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let r = h
        .send(form("/signin", &[("csrf", &csrf), ("upn", upn)]))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/signin/password");
    let r = h
        .send(form(
            "/signin/password",
            &[("csrf", &csrf), ("password", password)],
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    assert_eq!(r.headers["location"], "/signin/wait");
}

/// The one pending request `phone` sees in its long-poll.
async fn pending_request_id(h: &Harness, phone: &Phone) -> String {
    let p = phone.poll(h, 0).await;
    let pushes = p.body["pushes"].as_array().unwrap();
    assert_eq!(pushes.len(), 1, "{:?}", p.body);
    pushes[0]["rid"].as_str().unwrap().to_owned()
}

// ---- §5.2, §5.3: timestamp windows and signatures of the signed writes ----

#[tokio::test]
async fn enroll_complete_refuses_a_timestamp_more_than_5_minutes_off_as_stale_timestamp_and_a_bad_proof_as_bad_signature(
) {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let link = h.link(BOB, 600).await;
    let mut phone = Phone::new();
    let c = phone.challenge(&h, &link).await.unwrap();
    let now = UnixMillis::now().0;
    for ts in [now - SIX_MINUTES_MS, now + SIX_MINUTES_MS] {
        let r = h
            .post(
                "/api/v1/enroll/complete",
                complete_body(&phone, &link.code, c, "longpoll", ms(ts)),
            )
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::UNAUTHORIZED, "stale_timestamp")
        );
    }
    // A body changed after signing, and a proof signed by another key than the one sent.
    let mut changed = complete_body(&phone, &link.code, c, "longpoll", ms(now));
    changed["device_name"] = json!("Other Phone");
    let r = h.post("/api/v1/enroll/complete", changed).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );
    let mut other_key = complete_body(&phone, &link.code, c, "longpoll", ms(now));
    other_key["device_public_key"] =
        json!(EcdsaSigner::generate().unwrap().0.public_key().to_b64());
    let r = h.post("/api/v1/enroll/complete", other_key).await;
    assert_eq!(r.error(), "bad_signature");
    // Four minutes off is inside the window.
    let r = h
        .post(
            "/api/v1/enroll/complete",
            complete_body(&phone, &link.code, c, "longpoll", ms(now - FOUR_MINUTES_MS)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn passwordless_registration_refuses_a_timestamp_more_than_5_minutes_off_a_bad_signature_and_an_older_registration(
) {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let mut phone = Phone::new();
    phone.enroll(&h, &h.link(BOB, 600).await).await;
    let now = UnixMillis::now().0;
    for ts in [now - SIX_MINUTES_MS, now + SIX_MINUTES_MS] {
        let r = h
            .post(
                "/api/v1/device/passwordless",
                phone.passwordless_body(ms(ts)),
            )
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::UNAUTHORIZED, "stale_timestamp")
        );
    }
    let stranger = EcdsaSigner::generate().unwrap().0;
    for field in ["device_signature", "key_signature"] {
        let mut body = phone.passwordless_body(ms(now));
        body[field] = json!(stranger.sign(b"something else").to_b64());
        let r = h.post("/api/v1/device/passwordless", body).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::UNAUTHORIZED, "bad_signature"),
            "{field}"
        );
    }
    let r = h
        .post(
            "/api/v1/device/passwordless",
            phone.passwordless_body(ms(now)),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Not newer than the registration in force: `replay`.
    for ts in [now, now - 1] {
        let r = h
            .post(
                "/api/v1/device/passwordless",
                phone.passwordless_body(ms(ts)),
            )
            .await;
        assert_eq!((r.status, r.error()), (StatusCode::CONFLICT, "replay"));
    }
}

// ---- §5.1, §5.2: challenges ----

#[tokio::test]
async fn a_voided_or_wrong_challenge_is_invalid_code_with_the_message_about_the_code() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let link = h.link(BOB, 600).await;
    let mut phone = Phone::new();
    let now = UnixMillis::now();
    // Before any challenge was issued for the code.
    let r = h
        .post(
            "/api/v1/enroll/complete",
            complete_body(&phone, &link.code, [7; 32], "longpoll", now),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "invalid_code")
    );
    let c1 = phone.challenge(&h, &link).await.unwrap();
    let c2 = phone.challenge(&h, &link).await.unwrap();
    for challenge in [c1, [7; 32]] {
        let r = h
            .post(
                "/api/v1/enroll/complete",
                complete_body(&phone, &link.code, challenge, "longpoll", now),
            )
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_code")
        );
        assert_eq!(
            r.body["message"],
            "enrollment code unknown, used or expired"
        );
    }
    let r = h
        .post(
            "/api/v1/enroll/complete",
            complete_body(&phone, &link.code, c2, "longpoll", now),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn a_failed_complete_neither_voids_the_challenge_nor_uses_the_code() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let link = h.link(BOB, 600).await;
    let mut phone = Phone::new();
    let c = phone.challenge(&h, &link).await.unwrap();
    let now = UnixMillis::now().0;
    let ok = |ts| complete_body(&phone, &link.code, c, "longpoll", ms(ts));
    let mut tampered = ok(now);
    tampered["device_name"] = json!("Evil Phone");
    let mut bad_key = ok(now);
    bad_key["device_public_key"] = json!("AAAA");
    let failures = [
        (tampered, "bad_signature"),
        (ok(now - SIX_MINUTES_MS), "stale_timestamp"),
        (
            complete_body(&phone, &link.code, [9; 32], "longpoll", ms(now)),
            "invalid_code",
        ),
        (
            complete_body(&phone, &link.code, c, "LongPoll", ms(now)),
            "invalid_request",
        ),
        (bad_key, "invalid_request"),
    ];
    for (body, code) in failures {
        assert_eq!(h.post("/api/v1/enroll/complete", body).await.error(), code);
    }
    let r = h.post("/api/v1/enroll/complete", ok(now)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn challenge_expires_at_is_the_enrollment_codes_expiry_and_every_challenge_repeats_it() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let before = UnixMillis::now().0;
    let link = h.link(BOB, 600).await;
    let after = UnixMillis::now().0;
    let mut expiries = Vec::new();
    for _ in 0..2 {
        let r = h
            .post("/api/v1/enroll/challenge", json!({"code": link.code}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        expiries.push(r.body["expires_at"].as_u64().unwrap());
    }
    assert_eq!(expiries[0], expiries[1]);
    assert!((before + 600_000..=after + 600_000).contains(&expiries[0]));

    // Past that time a complete fails with `invalid_code`, even with the current challenge.
    let short = h.link(BOB, 1).await;
    let mut phone = Phone::new();
    let c = phone.challenge(&h, &short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = h
        .post(
            "/api/v1/enroll/complete",
            complete_body(&phone, &short.code, c, "longpoll", UnixMillis::now()),
        )
        .await;
    assert_eq!(r.error(), "invalid_code");
}

#[tokio::test]
async fn enroll_accepts_exactly_the_push_channel_kinds() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    for bad in ["LongPoll", "APNS", "Fcm", "", "WebPush", "web-push", " fcm"] {
        let link = h.link(BOB, 600).await;
        let mut phone = Phone::new();
        let c = phone.challenge(&h, &link).await.unwrap();
        let r = h
            .post(
                "/api/v1/enroll/complete",
                complete_body(&phone, &link.code, c, bad, UnixMillis::now()),
            )
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad:?}"
        );
    }
    for kind in PushChannelKind::ALL {
        let link = h.link(BOB, 600).await;
        let mut phone = Phone::new();
        let c = phone.challenge(&h, &link).await.unwrap();
        let r = h
            .post(
                "/api/v1/enroll/complete",
                complete_body(&phone, &link.code, c, kind.as_str(), UnixMillis::now()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{kind}: {:?}", r.body);
    }
}

// ---- §5.6: the response ----

#[tokio::test]
async fn a_response_timestamp_more_than_5_minutes_off_is_stale_timestamp_and_one_not_newer_is_replay(
) {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let (id, number) = start(&h, BOB).await;
    let f = phone.fetch(&h, &id).await.unwrap();
    let approve = |number: &str, ts: u64| {
        phone.response(
            &f,
            Decision::Approve,
            Some(number),
            &phone.passwordless,
            ms(ts),
        )
    };
    let now = UnixMillis::now().0;
    for ts in [now - SIX_MINUTES_MS, now + SIX_MINUTES_MS] {
        let r = h.post(&respond_uri(&id), approve(&number, ts)).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::UNAUTHORIZED, "stale_timestamp")
        );
    }
    // A wrong number at t1 is the earlier response; t1 again, or earlier, is a replay.
    let t1 = now + 1000;
    let r = h
        .post(&respond_uri(&id), approve(&other_number(&number, 1), t1))
        .await;
    assert_eq!(r.error(), "wrong_number");
    for ts in [t1, now] {
        let r = h.post(&respond_uri(&id), approve(&number, ts)).await;
        assert_eq!((r.status, r.error()), (StatusCode::CONFLICT, "replay"));
    }
    // Out of the window and older than t1: the window is checked first.
    let r = h
        .post(&respond_uri(&id), approve(&number, now - SIX_MINUTES_MS))
        .await;
    assert_eq!(r.error(), "stale_timestamp");
    let r = h.post(&respond_uri(&id), approve(&number, t1 + 1)).await;
    assert_eq!(r.body, json!({"status": "approved"}));

    // Four minutes behind the server clock is inside the window.
    let (id, number) = start(&h, BOB).await;
    let f = phone.fetch(&h, &id).await.unwrap();
    let body = phone.response(
        &f,
        Decision::Approve,
        Some(&number),
        &phone.passwordless,
        ms(UnixMillis::now().0 - FOUR_MINUTES_MS),
    );
    let r = h.post(&respond_uri(&id), body).await;
    assert_eq!(r.body, json!({"status": "approved"}));
}

#[tokio::test]
async fn a_null_typed_number_under_number_matching_counts_as_a_wrong_number() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let (id, number) = start(&h, BOB).await;
    let f = phone.fetch(&h, &id).await.unwrap();
    assert_eq!(details(&f)["number_matching"], true);
    let t0 = UnixMillis::now().0;
    // Not two digits: `invalid_request`, and no attempt is used.
    let mut malformed = phone.response(
        &f,
        Decision::Approve,
        Some(&number),
        &phone.passwordless,
        ms(t0),
    );
    malformed["typed_number"] = json!("4x");
    let r = h.post(&respond_uri(&id), malformed).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    for (k, left) in [(1, 2u64), (2, 1)] {
        let body = phone.response(&f, Decision::Approve, None, &phone.passwordless, ms(t0 + k));
        assert_eq!(body["typed_number"], Value::Null);
        let r = h.post(&respond_uri(&id), body).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "wrong_number")
        );
        assert_eq!(r.body["attempts_left"], left);
    }
    let body = phone.response(&f, Decision::Approve, None, &phone.passwordless, ms(t0 + 3));
    let r = h.post(&respond_uri(&id), body).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "request_failed")
    );
    let s = h.get(&format!("/api/v1/signin/{id}"), None).await;
    assert_eq!(s.body["status"], "failed");
}

/// Issue 20, finding 4: the typed number is checked as received and verified exactly as
/// received. White space around the right digits, with a signature over the bare digits, used
/// to be trimmed away and approved; it is `invalid_request`, uses no attempt, and the request
/// stays pending for the real answer.
#[tokio::test]
async fn a_typed_number_with_white_space_around_the_digits_is_invalid_request_though_the_signature_covers_the_digits(
) {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let (id, number) = start(&h, BOB).await;
    let f = phone.fetch(&h, &id).await.unwrap();
    let t0 = UnixMillis::now().0;
    let padded = [
        format!(" {number}"),
        format!("{number}\n"),
        format!("\t{number}"),
        format!("{number}\u{a0}"),
    ];
    for (k, sent) in (1..).zip(&padded) {
        let body =
            phone.response_with_typed_text(&f, sent, &number, &phone.passwordless, ms(t0 + k));
        let r = h.post(&respond_uri(&id), body).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{sent:?}: {:?}",
            r.body
        );
        let s = h.get(&format!("/api/v1/signin/{id}"), None).await;
        assert_eq!(s.body["status"], "pending", "{sent:?}");
    }
    // No attempt was used and no earlier response recorded: the exact digits approve.
    let body = phone.response_with_typed_text(&f, &number, &number, &phone.passwordless, ms(t0));
    let r = h.post(&respond_uri(&id), body).await;
    assert_eq!(r.body, json!({"status": "approved"}));
}

/// Issue 20, finding 4: a typed number that is not 2 to 6 ASCII digits is `invalid_request`
/// (§5.6 step 3) even when it is signed exactly as sent; it used to be `bad_signature`, the
/// server having verified other bytes than the body's.
#[tokio::test]
async fn a_typed_number_signed_as_sent_that_is_not_ascii_digits_is_invalid_request_not_bad_signature(
) {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let (id, number) = start(&h, BOB).await;
    let f = phone.fetch(&h, &id).await.unwrap();
    let t0 = UnixMillis::now().0;
    let fullwidth: String = number
        .chars()
        .map(|c| char::from_u32(u32::from(c) - u32::from('0') + 0xFF10).unwrap())
        .collect();
    for (k, sent) in (1..).zip([
        format!(" {number}"),
        format!("{number}\n"),
        fullwidth,
        " 42".to_owned(),
    ]) {
        let body =
            phone.response_with_typed_text(&f, &sent, &sent, &phone.passwordless, ms(t0 + k));
        let r = h.post(&respond_uri(&id), body).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{sent:?}: {:?}",
            r.body
        );
    }
    let s = h.get(&format!("/api/v1/signin/{id}"), None).await;
    assert_eq!(s.body["status"], "pending");
}

#[tokio::test]
async fn phone_sign_in_always_uses_number_matching_even_when_the_policy_has_it_off() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    set_policy(
        &h,
        PolicyUpdate {
            mode: Some(Mode::Any),
            number_matching: Some(false),
            ..Default::default()
        },
    )
    .await;
    let (id, _) = start(&h, BOB).await;
    let f = phone.fetch(&h, &id).await.unwrap();
    assert_eq!(details(&f)["kind"], "passwordless");
    assert_eq!(details(&f)["number_matching"], true);
    let r = h
        .post(&respond_uri(&id), phone.answer(&f, Decision::Approve, None))
        .await;
    assert_eq!(r.error(), "wrong_number");
}

#[tokio::test]
async fn push_requests_use_number_matching_as_the_policy_says() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    signin_domain::accounts::passwords::set_password(&h.state.pool, BOB, "bobby password 1")
        .await
        .unwrap();
    // Enrolled, phone sign-in not enabled: the web sign-in asks for the password, then pushes.
    let mut phone = Phone::new();
    phone.enroll(&h, &h.link(BOB, 600).await).await;
    for number_matching in [false, true] {
        set_policy(
            &h,
            PolicyUpdate {
                number_matching: Some(number_matching),
                ..Default::default()
            },
        )
        .await;
        web_password_sign_in(&h, BOB, "bobby password 1").await;
        let id = pending_request_id(&h, &phone).await;
        let f = phone.fetch(&h, &id).await.unwrap();
        assert_eq!(details(&f)["kind"], "push");
        assert_eq!(details(&f)["number_matching"], number_matching);
        // No passwordless key: the device key approves (§6.3), with no number.
        let body = phone.response(
            &f,
            Decision::Approve,
            None,
            &phone.device,
            UnixMillis::now(),
        );
        let r = h.post(&respond_uri(&id), body).await;
        if number_matching {
            assert_eq!(r.error(), "wrong_number");
        } else {
            assert_eq!(r.body, json!({"status": "approved"}));
        }
    }
}

// ---- §6.2, §6.3: which phone, which key ----

#[tokio::test]
async fn response_keys_follow_section_6_3_for_passwordless_requests() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    // `report` last: it pauses the user's sign-ins.
    for decision in [Decision::Approve, Decision::Deny, Decision::Report] {
        let (id, number) = start(&h, BOB).await;
        let f = phone.fetch(&h, &id).await.unwrap();
        let role = response_key_role(RequestKind::Passwordless, decision, true).unwrap();
        let (right, wrong) = match role {
            KeyRole::Passwordless => (&phone.passwordless, &phone.device),
            KeyRole::Device => (&phone.device, &phone.passwordless),
        };
        let typed = (decision == Decision::Approve).then_some(number.as_str());
        let t = UnixMillis::now().0;
        let r = h
            .post(
                &respond_uri(&id),
                phone.response(&f, decision, typed, wrong, ms(t)),
            )
            .await;
        assert_eq!(
            r.error(),
            "bad_signature",
            "{decision:?} under the other key"
        );
        let r = h
            .post(
                &respond_uri(&id),
                phone.response(&f, decision, typed, right, ms(t + 1)),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{decision:?}: {:?}", r.body);
    }
}

#[tokio::test]
async fn push_approvals_use_the_passwordless_key_when_the_account_has_one() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    signin_domain::accounts::passwords::set_password(&h.state.pool, BOB, "bobby password 1")
        .await
        .unwrap();
    set_policy(
        &h,
        PolicyUpdate {
            mode: Some(Mode::Push),
            ..Default::default()
        },
    )
    .await;
    web_password_sign_in(&h, BOB, "bobby password 1").await;
    let id = pending_request_id(&h, &phone).await;
    let f = phone.fetch(&h, &id).await.unwrap();
    assert_eq!(details(&f)["kind"], "push");
    assert_eq!(
        response_key_role(RequestKind::Push, Decision::Approve, true),
        Ok(KeyRole::Passwordless)
    );
    let number: String = sqlx::query_scalar("SELECT number FROM signin_requests WHERE id = $1")
        .bind(&id)
        .fetch_one(&h.state.pool)
        .await
        .unwrap();
    let t = UnixMillis::now().0;
    let by_device = phone.response(&f, Decision::Approve, Some(&number), &phone.device, ms(t));
    assert_eq!(
        h.post(&respond_uri(&id), by_device).await.error(),
        "bad_signature"
    );
    let by_passwordless = phone.response(
        &f,
        Decision::Approve,
        Some(&number),
        &phone.passwordless,
        ms(t + 1),
    );
    let r = h.post(&respond_uri(&id), by_passwordless).await;
    assert_eq!(r.body, json!({"status": "approved"}));
}

#[tokio::test]
async fn phone_sign_in_goes_to_every_phone_with_it_enabled_and_the_first_answer_wins() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let mut a = Phone::new();
    a.enroll(&h, &h.link(BOB, 600).await).await;
    // Enrolled but phone sign-in not enabled: no passwordless request at all.
    let r = h.start_signin(BOB).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "not_passwordless_capable")
    );
    assert_eq!(
        a.enable_passwordless(&h).await.status,
        StatusCode::NO_CONTENT
    );
    // B is enrolled later (a stolen code, say) without phone sign-in: A still gets it.
    let mut b = Phone::new();
    b.enroll(&h, &h.link(BOB, 600).await).await;
    let (id, _) = start(&h, BOB).await;
    assert_eq!(pending_request_id(&h, &a).await, id);
    assert_eq!(b.poll(&h, 0).await.body, json!({"pushes": []}));

    // With phone sign-in on both, both get the sign-in, each its own request.
    assert_eq!(
        b.enable_passwordless(&h).await.status,
        StatusCode::NO_CONTENT
    );
    let (signin, number) = start(&h, BOB).await;
    let on_a = a.poll(&h, 0).await.body["pushes"].clone();
    assert!(
        on_a.as_array()
            .unwrap()
            .iter()
            .any(|p| p["rid"] == signin.as_str()),
        "the older phone is not left out: {on_a}"
    );
    let on_b = b.poll(&h, 0).await.body["pushes"].clone();
    let rid_b = on_b.as_array().unwrap().last().unwrap()["rid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rid_b, signin, "each device has its own request");
    let fa = a.fetch(&h, &signin).await.unwrap();
    let fb = b.fetch(&h, &rid_b).await.unwrap();
    assert_eq!(details(&fa)["account_id"], a.account().as_str());
    assert_eq!(details(&fb)["account_id"], b.account().as_str());
    assert_ne!(details(&fa)["nonce"], details(&fb)["nonce"]);
    // Neither can read or answer the other's request.
    assert_eq!(
        a.fetch(&h, &rid_b).await.err().unwrap().error(),
        "unknown_request"
    );
    let from_a = a.response(
        &fb,
        Decision::Approve,
        Some(&number),
        &a.passwordless,
        UnixMillis::now(),
    );
    assert_eq!(
        h.post(&respond_uri(&rid_b), from_a).await.error(),
        "unknown_request"
    );
    // A denies first: the sign-in is denied, B's request is closed.
    let r = h
        .post(&respond_uri(&signin), a.answer(&fa, Decision::Deny, None))
        .await;
    assert_eq!(r.body, json!({"status": "denied"}), "{:?}", r.body);
    let r = h
        .post(
            &respond_uri(&rid_b),
            b.answer(&fb, Decision::Approve, Some(&number)),
        )
        .await;
    assert_eq!(r.error(), "request_not_pending");
    assert_eq!(
        h.get(&format!("/api/v1/signin/{signin}"), None).await.body["status"],
        "denied"
    );
    assert_eq!(
        b.poll(&h, 0).await.body["pushes"].as_array().unwrap().len(),
        0
    );
}

#[tokio::test]
async fn wrong_numbers_count_across_the_devices_of_one_sign_in() {
    let h = harness().await;
    let a = h.ready_phone(BOB).await;
    let mut b = Phone::new();
    b.enroll(&h, &h.link(BOB, 600).await).await;
    assert_eq!(
        b.enable_passwordless(&h).await.status,
        StatusCode::NO_CONTENT
    );
    let (signin, number) = start(&h, BOB).await;
    let rid_b = pending_request_id(&h, &b).await;
    let fa = a.fetch(&h, &signin).await.unwrap();
    let fb = b.fetch(&h, &rid_b).await.unwrap();
    let wrong = |k| other_number(&number, k);
    let r = h
        .post(
            &respond_uri(&signin),
            a.answer(&fa, Decision::Approve, Some(&wrong(1))),
        )
        .await;
    assert_eq!(r.body["attempts_left"], 2, "{:?}", r.body);
    tokio::time::sleep(Duration::from_millis(2)).await;
    let r = h
        .post(
            &respond_uri(&rid_b),
            b.answer(&fb, Decision::Approve, Some(&wrong(2))),
        )
        .await;
    assert_eq!(
        r.body["attempts_left"], 1,
        "B's guess counts on the same sign-in"
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    let r = h
        .post(
            &respond_uri(&signin),
            a.answer(&fa, Decision::Approve, Some(&wrong(3))),
        )
        .await;
    assert_eq!(r.error(), "request_failed");
    // B's request failed with it: a fourth guess is not evaluated.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let r = h
        .post(
            &respond_uri(&rid_b),
            b.answer(&fb, Decision::Approve, Some(&number)),
        )
        .await;
    assert_eq!(r.error(), "request_not_pending");
    assert_eq!(
        h.get(&format!("/api/v1/signin/{signin}"), None).await.body["status"],
        "failed"
    );
}

#[tokio::test]
async fn push_goes_to_every_enrolled_phone() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    signin_domain::accounts::passwords::set_password(&h.state.pool, BOB, "bobby password 1")
        .await
        .unwrap();
    set_policy(
        &h,
        PolicyUpdate {
            mode: Some(Mode::Push),
            ..Default::default()
        },
    )
    .await;
    let mut a = Phone::new();
    a.enroll(&h, &h.link(BOB, 600).await).await;
    let mut b = Phone::new();
    b.enroll(&h, &h.link(BOB, 600).await).await;
    web_password_sign_in(&h, BOB, "bobby password 1").await;
    let on_a = pending_request_id(&h, &a).await;
    let on_b = pending_request_id(&h, &b).await;
    assert_ne!(on_a, on_b);
    assert!(a.fetch(&h, &on_a).await.is_ok());
    assert!(b.fetch(&h, &on_b).await.is_ok());
}

// ---- §4: device authentication ----

#[tokio::test]
async fn device_auth_covers_the_path_the_phone_sent_so_a_prefix_rewriting_proxy_breaks_it() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let pq = "/api/v1/device/poll?wait=0";
    // The phone's server URL is https://id.example/tenant/: it signs /tenant/api/v1/…, and a
    // proxy that strips /tenant delivers /api/v1/… to the server.
    let r = h
        .get(
            pq,
            Some(phone.auth("GET", "/tenant/api/v1/device/poll?wait=0")),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );
    let r = h.get(pq, Some(phone.auth("GET", pq))).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn device_auth_refuses_a_header_more_than_60_s_old_or_more_than_5_s_ahead_as_stale_timestamp()
{
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let pq = "/api/v1/device/poll?wait=0";
    let now = UnixMillis::now().0;
    // 4 minutes old, 30 s ahead, and 4 min 59 s ahead (all inside the signed bodies' ±5 min).
    for ts in [now - 4 * 60_000, now + 30_000, now + 299_000] {
        let r = h.get(pq, Some(phone.auth_at("GET", pq, ms(ts)))).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::UNAUTHORIZED, "stale_timestamp"),
            "{ts}"
        );
    }
    // Fresh (a little old, a little ahead): accepted.
    for ts in [now - 30_000, now + 2_000, now] {
        let r = h.get(pq, Some(phone.auth_at("GET", pq, ms(ts)))).await;
        assert_eq!(r.status, StatusCode::OK, "{ts} {:?}", r.body);
    }
}

/// Issue 20, finding 4 (§4): the header's time has one spelling. The same signed integer
/// written `+…` or `0…` used to be read as that integer and accepted.
#[tokio::test]
async fn device_auth_refuses_a_time_written_with_a_sign_or_a_leading_zero_as_unauthorized() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let pq = "/api/v1/device/poll?wait=0";
    let now = UnixMillis::now();
    let header = phone.auth_at("GET", pq, now);
    let time = format!(".{}.", now.0);
    assert!(header.contains(&time));
    for spelling in [format!(".+{}.", now.0), format!(".0{}.", now.0)] {
        let r = h.get(pq, Some(header.replacen(&time, &spelling, 1))).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{spelling}"
        );
    }
    let r = h.get(pq, Some(header)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

// ---- §7: the sign-in page API ----

#[tokio::test]
async fn signin_status_of_an_unknown_id_is_unknown_request_and_a_malformed_wait_is_invalid_request()
{
    let h = harness().await;
    let _phone = h.ready_phone(BOB).await;
    for id in [RequestId::random().to_string(), "not-an-id".to_owned()] {
        let r = h.get(&format!("/api/v1/signin/{id}"), None).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "unknown_request")
        );
    }
    let (id, _) = start(&h, BOB).await;
    for wait in ["x", "-1", "1.5", ""] {
        let r = h
            .get(&format!("/api/v1/signin/{id}?wait={wait}"), None)
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "wait={wait:?}"
        );
    }
}

#[tokio::test]
async fn signin_status_without_wait_answers_at_once() {
    let h = harness().await;
    let _phone = h.ready_phone(BOB).await;
    let (id, _) = start(&h, BOB).await;
    for query in ["", "?wait=0"] {
        let t = Instant::now();
        let r = h.get(&format!("/api/v1/signin/{id}{query}"), None).await;
        assert_eq!(r.body["status"], "pending");
        assert!(t.elapsed() < Duration::from_millis(1500), "{query:?}");
    }
    let t = Instant::now();
    let r = h.get(&format!("/api/v1/signin/{id}?wait=1"), None).await;
    assert_eq!(r.body["status"], "pending");
    assert!(t.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn signin_status_wait_ends_when_the_request_expires() {
    let h = harness_with_ttl(1).await;
    let _phone = h.ready_phone(BOB).await;
    let (id, _) = start(&h, BOB).await;
    let t = Instant::now();
    // More than the 60 s cap is accepted (and capped); the request's expiry comes first.
    let r = h.get(&format!("/api/v1/signin/{id}?wait=1000"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "expired");
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn the_phone_shows_the_registered_application_name_and_a_caller_chosen_app_is_refused() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let r = h.start_signin(BOB).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let f = phone
        .fetch(&h, r.body["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(details(&f)["app_name"], "My Apps");
    // The caller cannot name itself, not even with the registered name.
    for app in [
        json!("My Apps"),
        json!("Mail\nLocation: Seattle, US"),
        json!(null),
    ] {
        let r = h
            .post_as_app("/api/v1/signin", json!({"upn": BOB, "app": app}))
            .await;
        if app.is_null() {
            assert_eq!(r.status, StatusCode::OK, "null is the same as absent");
        } else {
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{app}");
            assert_eq!(r.error(), "invalid_request");
        }
    }
}

#[tokio::test]
async fn signin_upn_is_trimmed_then_matched_ignoring_case() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let r = h
        .post_as_app("/api/v1/signin", json!({"upn": "  bobby@contoso.test\t"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let f = phone
        .fetch(&h, r.body["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(details(&f)["upn"], BOB);
    // One user, however the name is typed (Unicode lower case, `Upn`); the phone is shown
    // the stored form.
    for other_case in [
        "Bobby@contoso.test",
        "BOBBY@CONTOSO.TEST",
        "bobby@Contoso.test",
    ] {
        let r = h.start_signin(other_case).await;
        assert_eq!(r.status, StatusCode::OK, "{other_case}: {:?}", r.body);
        let f = phone
            .fetch(&h, r.body["id"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(details(&f)["upn"], BOB, "{other_case}");
    }
    // A user added with capitals is stored in lower case and found in any case.
    let _carol = h.ready_phone("Carol@Contoso.test").await;
    for typed in [
        "carol@contoso.test",
        "Carol@Contoso.test",
        "CAROL@CONTOSO.TEST",
    ] {
        assert_eq!(
            h.start_signin(typed).await.status,
            StatusCode::OK,
            "{typed}"
        );
    }
    assert!(
        signin_domain::accounts::add_user(&h.state.pool, "CAROL@contoso.test", "Carol 2", &[])
            .await
            .is_err()
    );
    // Empty after trimming, or longer than 256 bytes: `invalid_request`.
    for bad in [
        "".to_owned(),
        "   ".to_owned(),
        format!("{}@contoso.test", "b".repeat(250)),
    ] {
        let r = h.start_signin(&bad).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad:?}"
        );
    }
}
