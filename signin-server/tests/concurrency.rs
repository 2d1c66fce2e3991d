//! Races (issue 9): many answers to one sign-in request, many phones completing one enrollment
//! code. The store's conditional updates must let exactly one through, and every loser must get
//! a typed refusal. SQLite by default, PostgreSQL when `TEST_DATABASE_URL` is set.
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use authenticator_protocol::sign_in::Decision;
use authenticator_protocol::UnixMillis;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use support::*;

const BOB: &str = "bobby@contoso.test";
const RACERS: usize = 1000;

/// Posts every `(uri, body)` from its own task; the tasks wait at a barrier so that all of
/// them are in flight together. Replies in the order of `posts`.
async fn race(h: &Harness, posts: Vec<(String, Value)>) -> Vec<(StatusCode, Value)> {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let started = Instant::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(posts.len()));
    let mut tasks = Vec::new();
    for (uri, body) in posts {
        let (app, barrier) = (h.app.clone(), barrier.clone());
        let req = Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, body)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    eprintln!(
        "{} racing posts answered in {:?}",
        out.len(),
        started.elapsed()
    );
    out
}

/// How many replies had each `(status, error)`; `"ok"` for a reply without an error.
fn tally(replies: &[(StatusCode, Value)]) -> BTreeMap<(u16, String), usize> {
    let mut t = BTreeMap::new();
    for (status, body) in replies {
        let error = body["error"].as_str().unwrap_or("ok").to_owned();
        *t.entry((status.as_u16(), error)).or_insert(0) += 1;
    }
    t
}

/// Audit entries of `event` naming request `id`, counting collapsed repeats.
async fn audited(h: &Harness, event: &str, id: &str) -> i64 {
    signin_domain::audit::list(&h.state.pool)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.event == event && r.request_id.as_deref() == Some(id))
        .map(|r| 1 + r.repeats)
        .sum()
}

async fn stored_request(h: &Harness, id: &str) -> (String, i64) {
    sqlx::query_as("SELECT status, wrong_attempts FROM signin_requests WHERE id = $1")
        .bind(id)
        .fetch_one(&h.state.pool)
        .await
        .unwrap()
}

/// A pending sign-in of a ready phone: (request id, number, fetched details).
async fn pending(h: &Harness, phone: &Phone) -> (String, String, Fetched) {
    let r = h.start_signin(BOB).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let number = r.body["number"].as_str().unwrap().to_owned();
    let f = phone
        .fetch(h, &id)
        .await
        .unwrap_or_else(|r| panic!("{r:?}"));
    (id, number, f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_correct_approvals_of_one_request_approve_it_exactly_once() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let (id, number, f) = pending(&h, &phone).await;
    // 1,000 distinct approvals, each validly signed with the right number and a later
    // timestamp than the one before, as a phone retrying (or an attacker replaying) would send.
    let now = UnixMillis::now().0;
    let posts = (0..RACERS as u64)
        .map(|i| {
            let body = phone.response(
                &f,
                Decision::Approve,
                Some(&number),
                &phone.passwordless,
                UnixMillis(now + i),
            );
            (respond_uri(&id), body)
        })
        .collect();
    let replies = race(&h, posts).await;
    let t = tally(&replies);
    let approved: Vec<_> = replies
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(approved.len(), 1, "exactly one winner: {t:?}");
    assert_eq!(approved[0].1["status"], "approved");
    for ((status, error), n) in &t {
        assert!(
            (*status, error.as_str()) == (200, "ok")
                || (*status == 409 && (error == "request_not_pending" || error == "replay")),
            "{n} replies were {status} {error}: {t:?}"
        );
    }
    eprintln!("{t:?}");
    assert_eq!(
        h.get(&format!("/api/v1/signin/{id}"), None).await.body["status"],
        "approved"
    );
    assert_eq!(stored_request(&h, &id).await.0, "approved");
    assert_eq!(audited(&h, "signin_decision", &id).await, 1);
}

/// `n` wrong numbers for `f`, each validly signed by `phone` with a later timestamp than the
/// one before (`first_ts + i`).
fn wrong_numbers(phone: &Phone, f: &Fetched, number: &str, first_ts: u64, n: usize) -> Vec<Value> {
    (0..n as u64)
        .map(|i| {
            let wrong = other_number(number, 1 + (i % 89) as u8);
            phone.response(
                f,
                Decision::Approve,
                Some(&wrong),
                &phone.passwordless,
                UnixMillis(first_ts + i),
            )
        })
        .collect()
}

/// Checks the replies to a flood of wrong numbers; returns how many were evaluated (counted).
/// Counted replies are `wrong_number` with 2, then 1 attempts left, then `request_failed`;
/// every other reply is a typed refusal: not pending (the request failed or another answer
/// is being counted), or a replay (older than a response already counted).
fn evaluated(replies: &[(StatusCode, Value)]) -> usize {
    let t = tally(replies);
    eprintln!("{t:?}");
    for ((status, error), n) in &t {
        assert!(
            (*status == 400 && (error == "wrong_number" || error == "request_failed"))
                || (*status == 409 && (error == "request_not_pending" || error == "replay")),
            "{n} replies were {status} {error}: {t:?}"
        );
    }
    let mut left: Vec<u64> = replies
        .iter()
        .filter(|(_, b)| b["error"] == "wrong_number")
        .map(|(_, b)| b["attempts_left"].as_u64().unwrap())
        .collect();
    left.sort();
    left.reverse();
    let failed = t
        .get(&(400, "request_failed".to_owned()))
        .copied()
        .unwrap_or(0);
    assert!(
        failed <= 1 && left.len() <= 2,
        "at most three counted: {t:?}"
    );
    assert_eq!(
        left,
        [2, 1][..left.len()],
        "each counted wrong number has one attempt fewer left: {t:?}"
    );
    assert!(failed == 0 || left.len() == 2, "{t:?}");
    left.len() + failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_wrong_numbers_on_one_sign_in_are_evaluated_exactly_three_times_then_it_fails(
) {
    let h = harness().await;
    // The sign-in goes to each of the user's three phones as its own request; wrong numbers
    // count on the sign-in. Each phone's first answer to arrive is newer than any earlier one
    // of that phone, so at least three are evaluated whatever order the flood lands in.
    let mut phones = vec![h.ready_phone(BOB).await];
    for _ in 0..2 {
        let mut p = Phone::new();
        p.enroll(&h, &h.link(BOB, 600).await).await;
        assert_eq!(
            p.enable_passwordless(&h).await.status,
            StatusCode::NO_CONTENT
        );
        phones.push(p);
    }
    let r = h.start_signin(BOB).await;
    let signin = r.body["id"].as_str().unwrap().to_owned();
    let number = r.body["number"].as_str().unwrap().to_owned();
    let mut requests = Vec::new();
    for p in &phones {
        let polled = p.poll(&h, 0).await;
        let rid = polled.body["pushes"][0]["rid"].as_str().unwrap().to_owned();
        let f = p.fetch(&h, &rid).await.unwrap_or_else(|r| panic!("{r:?}"));
        requests.push((rid, f));
    }
    // The phones' answers interleaved: 334, 333 and 333 of them.
    let now = UnixMillis::now().0;
    let mut floods: Vec<_> = phones
        .iter()
        .zip(&requests)
        .enumerate()
        .map(|(i, (p, (rid, f)))| {
            let n = RACERS / 3 + usize::from(i < RACERS % 3);
            wrong_numbers(p, f, &number, now, n)
                .into_iter()
                .map(|body| (respond_uri(rid), body))
        })
        .collect();
    let mut posts = Vec::new();
    while posts.len() < RACERS {
        posts.extend(floods.iter_mut().filter_map(|f| f.next()));
    }
    assert_eq!(posts.len(), RACERS);
    let replies = race(&h, posts).await;
    assert_eq!(evaluated(&replies), 3, "exactly three evaluated");
    for (rid, _) in &requests {
        assert_eq!(stored_request(&h, rid).await, ("failed".to_owned(), 3));
    }
    let mut wrong = 0;
    let mut failed = 0;
    for (rid, _) in &requests {
        wrong += audited(&h, "wrong_number", rid).await;
        failed += audited(&h, "signin_failed", rid).await;
        assert_eq!(audited(&h, "signin_decision", rid).await, 0);
    }
    assert_eq!((wrong, failed), (3, 1));
    assert_eq!(
        h.get(&format!("/api/v1/signin/{signin}"), None).await.body["status"],
        "failed"
    );
    // The right number now is refused on every phone.
    for (p, (rid, f)) in phones.iter().zip(&requests) {
        let late = p.response(
            f,
            Decision::Approve,
            Some(&number),
            &p.passwordless,
            UnixMillis(now + RACERS as u64),
        );
        let r = h.post(&respond_uri(rid), late).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::CONFLICT, "request_not_pending")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_wrong_numbers_on_one_phones_request_count_at_most_three_and_the_third_fails_it(
) {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let (id, number, f) = pending(&h, &phone).await;
    let now = UnixMillis::now().0;
    let posts = wrong_numbers(&phone, &f, &number, now, RACERS)
        .into_iter()
        .map(|b| (respond_uri(&id), b))
        .collect();
    let replies = race(&h, posts).await;
    // Usually three; fewer only when one of the latest responses happened to be counted early
    // (the older ones are then replays). Never more, and the store agrees with the replies.
    let k = evaluated(&replies);
    assert!((1..=3).contains(&k), "{k} evaluated");
    let (status, attempts) = stored_request(&h, &id).await;
    assert_eq!(attempts, k as i64);
    assert_eq!(status, if k == 3 { "failed" } else { "pending" });
    assert_eq!(audited(&h, "wrong_number", &id).await, k as i64);
    // The count carries on from there: the sign-in fails at exactly the third.
    for (i, ts) in (k..3).zip(now + RACERS as u64..) {
        let r = h
            .post(
                &respond_uri(&id),
                wrong_numbers(&phone, &f, &number, ts, 1).remove(0),
            )
            .await;
        let expected = if i == 2 {
            "request_failed"
        } else {
            "wrong_number"
        };
        assert_eq!(r.error(), expected, "{:?}", r.body);
    }
    assert_eq!(stored_request(&h, &id).await, ("failed".to_owned(), 3));
    assert_eq!(audited(&h, "wrong_number", &id).await, 3);
    assert_eq!(audited(&h, "signin_failed", &id).await, 1);
    let late = phone.response(
        &f,
        Decision::Approve,
        Some(&number),
        &phone.passwordless,
        UnixMillis(now + RACERS as u64 + 10),
    );
    let r = h.post(&respond_uri(&id), late).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "request_not_pending")
    );
    assert_eq!(
        h.get(&format!("/api/v1/signin/{id}"), None).await.body["status"],
        "failed"
    );
}

const ENROLLERS: usize = 100;

/// What the race left: accounts (devices) of `upn`, and whether its code is used.
async fn enrolled_devices(h: &Harness, upn: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE upn = $1")
        .bind(upn)
        .fetch_one(&h.state.pool)
        .await
        .unwrap()
}

async fn code_is_used(h: &Harness, code: &str) -> bool {
    let used: Option<i64> =
        sqlx::query_scalar("SELECT used_at FROM enrollment_codes WHERE code_hash = $1")
            .bind(signin_domain::accounts::code_hash(code))
            .fetch_one(&h.state.pool)
            .await
            .unwrap();
    used.is_some()
}

/// One winner among `replies`: its account works (it enables phone sign-in); the others were
/// refused as `invalid_code`.
async fn one_enrollment_won(h: &Harness, phones: &mut [Phone], replies: &[(StatusCode, Value)]) {
    let t = tally(replies);
    eprintln!("{t:?}");
    let winners: Vec<usize> = (0..replies.len())
        .filter(|&i| replies[i].0 == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one account: {t:?}");
    for ((status, error), n) in &t {
        assert!(
            (*status, error.as_str()) == (200, "ok")
                || (*status, error.as_str()) == (400, "invalid_code"),
            "{n} replies were {status} {error}: {t:?}"
        );
    }
    let winner = &mut phones[winners[0]];
    let account = replies[winners[0]].1["account_id"].as_str().unwrap();
    winner.account_id = Some(authenticator_protocol::AccountId::parse(account).unwrap());
    assert_eq!(
        winner.enable_passwordless(h).await.status,
        StatusCode::NO_CONTENT
    );
    let enrolled: Vec<_> = signin_domain::audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "enrolled" && r.upn.as_deref() == Some(BOB))
        .collect();
    assert_eq!(enrolled.len(), 1);
    assert_eq!(enrolled[0].account_id.as_deref(), Some(account));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_phones_completing_one_code_with_its_challenge_create_exactly_one_account() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let link = h.link(BOB, 600).await;
    // One challenge (a new one voids the previous), and every phone completes with it: each
    // with its own device key and a valid proof of possession over that challenge.
    let mut phones: Vec<Phone> = (0..ENROLLERS).map(|_| Phone::new()).collect();
    let challenge = phones[0].challenge(&h, &link).await.unwrap();
    let posts = phones
        .iter()
        .map(|p| {
            (
                "/api/v1/enroll/complete".to_owned(),
                p.complete_body(&link.code, challenge),
            )
        })
        .collect();
    let replies = race(&h, posts).await;
    one_enrollment_won(&h, &mut phones, &replies).await;
    assert_eq!(enrolled_devices(&h, BOB).await, 1);
    assert!(code_is_used(&h, &link.code).await);
    let again = h
        .post("/api/v1/enroll/challenge", json!({"code": link.code}))
        .await;
    assert_eq!(
        (again.status, again.error()),
        (StatusCode::BAD_REQUEST, "invalid_code")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_phones_each_fetching_a_challenge_and_completing_one_code_create_exactly_one_account(
) {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let link = h.link(BOB, 600).await;
    // Every phone runs the whole ceremony at once: each new challenge voids the one before,
    // so only a phone whose challenge is still the current one can complete, and only once.
    let barrier = Arc::new(tokio::sync::Barrier::new(ENROLLERS));
    let h = Arc::new(h);
    let mut tasks = Vec::new();
    for _ in 0..ENROLLERS {
        let (h, barrier, link) = (h.clone(), barrier.clone(), link.clone());
        tasks.push(tokio::spawn(async move {
            let mut phone = Phone::new();
            barrier.wait().await;
            let reply = match phone.challenge(&h, &link).await {
                Ok(challenge) => {
                    let r = h
                        .post(
                            "/api/v1/enroll/complete",
                            phone.complete_body(&link.code, challenge),
                        )
                        .await;
                    (r.status, r.body)
                }
                Err(r) => (r.status, r.body),
            };
            (phone, reply)
        }));
    }
    let (mut phones, mut replies) = (Vec::new(), Vec::new());
    for t in tasks {
        let (phone, reply) = t.await.unwrap();
        phones.push(phone);
        replies.push(reply);
    }
    one_enrollment_won(&h, &mut phones, &replies).await;
    assert_eq!(enrolled_devices(&h, BOB).await, 1);
    assert!(code_is_used(&h, &link.code).await);
}

/// A start begins from the rate-limit rows its first statement read (issue 24); a row that
/// another start changed meanwhile fails the versioned write and is read again, so concurrent
/// starts spend the allowance exactly.
#[tokio::test]
async fn concurrent_starts_of_one_user_are_admitted_exactly_up_to_the_burst() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    const STARTS: usize = 12;
    let h = harness_with_state(90, |s| {
        s.with_risk(signin_domain::rules::risk::RiskConfig {
            burst: 3,
            // No refill within any test run.
            refill_secs: 24 * 3600,
            ..Default::default()
        })
    })
    .await;
    let _phone = h.ready_phone(BOB).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(STARTS));
    let mut tasks = Vec::new();
    for _ in 0..STARTS {
        let (app, barrier) = (h.app.clone(), barrier.clone());
        let req = Request::post("/api/v1/signin")
            .header("content-type", "application/json")
            .header("authorization", &h.app_auth)
            .body(Body::from(json!({ "upn": BOB }).to_string()))
            .unwrap();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, body)
        }));
    }
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    let expected = BTreeMap::from([
        ((200, "ok".to_owned()), 3),
        ((429, "rate_limited".to_owned()), STARTS - 3),
    ]);
    assert_eq!(tally(&replies), expected);
}
