//! Crash safety of the server, with a real process: `signin-server serve` is killed with SIGKILL
//! at random points of a sign-in ceremony (start, the phone's long-poll, fetch, approval) and
//! started again on the same database. Each time it must start cleanly, and what it answered
//! before the kill must hold after it: an approval it acknowledged is still approved, a sign-in
//! it started is still there and can be finished. On SQLite, and on PostgreSQL in the
//! PostgreSQL pass (`TEST_DATABASE_URL`).
//!
//! Kill points are uniformly random over a ceremony's measured length. The seed is printed
//! (`CRASH_SEED` replays a run).
mod support;

use std::time::{Duration, Instant};

use authenticator_protocol::sign_in::{Decision, SignedRequestDetails};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use support::{harness, respond_uri, Fetched, Harness, Phone, Reply, ServerProcess};

/// Hundreds of sign-ins by one user: no start limit in the way.
const SERVE_ARGS: [&str; 4] = ["--rate-burst", "100000", "--server-name", "Contoso"];
const UPN: &str = "bobby@contoso.test";
/// Kills of the server, each at a random point of one ceremony.
const KILLS: usize = 40;

/// What the server acknowledged before the kill.
#[derive(Debug, Default)]
struct Acknowledged {
    /// The sign-in it started: (id, number).
    sign_in: Option<(String, String)>,
    approved: bool,
}

fn get(uri: &str, auth: String) -> Request<Body> {
    Request::get(uri)
        .header("authorization", auth)
        .body(Body::empty())
        .unwrap()
}

fn post(uri: &str, auth: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post(uri).header("content-type", "application/json");
    if let Some(auth) = auth {
        b = b.header("authorization", auth);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// The request ids waiting for the phone (long-poll up to `wait` seconds).
async fn pushes(h: &Harness, phone: &Phone, wait: u64) -> Result<Vec<String>, reqwest::Error> {
    let pq = format!("/api/v1/device/poll?wait={wait}");
    let r = h.try_send(get(&pq, phone.auth("GET", &pq))).await?;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    Ok(r.body["pushes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rid"].as_str().unwrap().to_owned())
        .collect())
}

async fn fetch(h: &Harness, phone: &Phone, rid: &str) -> Result<Fetched, reqwest::Error> {
    let pq = format!("/api/v1/device/requests/{rid}");
    let r = h.try_send(get(&pq, phone.auth("GET", &pq))).await?;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let signed: SignedRequestDetails = serde_json::from_value(r.body).unwrap();
    let details = signed.verify(phone.server_key.as_ref().unwrap()).unwrap();
    Ok(Fetched {
        request_id: details.request_id.clone(),
        nonce: details.nonce_bytes().unwrap(),
        signed,
    })
}

async fn answer(
    h: &Harness,
    phone: &Phone,
    rid: &str,
    decision: Decision,
    number: Option<&str>,
) -> Result<Reply, reqwest::Error> {
    let fetched = fetch(h, phone, rid).await?;
    let body = phone.answer(&fetched, decision, number);
    h.try_send(post(&respond_uri(rid), None, body)).await
}

/// One whole ceremony; `ack` records each step the server acknowledged. Ends with an error
/// when the server is killed under it.
async fn ceremony(
    h: &Harness,
    phone: &Phone,
    ack: &mut Acknowledged,
) -> Result<(), reqwest::Error> {
    let started = h
        .try_send(post(
            "/api/v1/signin",
            Some(&h.app_auth),
            json!({ "upn": UPN }),
        ))
        .await?;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    let id = started.body["id"].as_str().unwrap().to_owned();
    let number = started.body["number"].as_str().unwrap().to_owned();
    ack.sign_in = Some((id, number.clone()));
    let rids = pushes(h, phone, 10).await?;
    assert_eq!(rids.len(), 1, "one request per ceremony: {rids:?}");
    let r = answer(h, phone, &rids[0], Decision::Approve, Some(&number)).await?;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    ack.approved = true;
    Ok(())
}

async fn status(h: &Harness, id: &str) -> String {
    let r = h
        .send(get(&format!("/api/v1/signin/{id}"), h.app_auth.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["status"].as_str().unwrap().to_owned()
}

/// After a restart: what was acknowledged holds, and the ceremony can be finished. Requests
/// of sign-ins whose start was never acknowledged are denied, so each round starts clean.
async fn settle(h: &Harness, phone: &Phone, ack: &Acknowledged, context: &str) -> &'static str {
    let health = h
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(health.status, StatusCode::OK, "{context}: not healthy");
    let waiting = pushes(h, phone, 0).await.unwrap();
    let Some((id, number)) = &ack.sign_in else {
        // Killed before the start was answered: it may or may not have been stored.
        assert!(waiting.len() <= 1, "{context}: {waiting:?}");
        for rid in &waiting {
            let r = answer(h, phone, rid, Decision::Deny, None).await.unwrap();
            assert_eq!(r.status, StatusCode::OK, "{context}: {:?}", r.body);
        }
        return "before the start was answered";
    };
    let before = status(h, id).await;
    if ack.approved {
        assert_eq!(
            before, "approved",
            "{context}: an acknowledged approval was lost"
        );
        assert!(waiting.is_empty(), "{context}: {waiting:?}");
        return "after the approval was answered";
    }
    if before == "approved" {
        // Stored, but killed before the answer reached the phone.
        assert!(waiting.is_empty(), "{context}: {waiting:?}");
        return "after the approval was stored, before it was answered";
    }
    assert_eq!(
        before, "pending",
        "{context}: the started sign-in is {before}"
    );
    assert_eq!(waiting.len(), 1, "{context}: the request is still waiting");
    let r = answer(h, phone, &waiting[0], Decision::Approve, Some(number))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{context}: {:?}", r.body);
    assert_eq!(status(h, id).await, "approved", "{context}");
    "after the start, before the approval was stored"
}

fn rng() -> StdRng {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("CRASH_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_ceremony_restarts_cleanly_and_loses_no_approval() {
    let mut h = harness().await;
    h.add_user(UPN, &[]).await;
    let database = h.db.url.clone();
    let mut server = ServerProcess::start(&database, &SERVE_ARGS);
    h.remote = Some(server.base());
    let mut phone = Phone::new();
    phone.enroll(&h, &h.link(UPN, 600).await).await;
    assert_eq!(
        phone.enable_passwordless(&h).await.status,
        StatusCode::NO_CONTENT
    );

    let t = Instant::now();
    let mut ack = Acknowledged::default();
    ceremony(&h, &phone, &mut ack).await.unwrap();
    let run = t.elapsed();

    let mut rng = rng();
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for kill in 1..=KILLS {
        let delay = Duration::from_micros(rng.gen_range(0..run.as_micros().max(1) as u64));
        let mut ack = Acknowledged::default();
        let killer = async {
            tokio::time::sleep(delay).await;
            server.kill();
        };
        let (result, ()) = tokio::join!(ceremony(&h, &phone, &mut ack), killer);
        let context = format!("kill {kill} after {delay:?} ({ack:?}, ceremony {result:?})");
        server = ServerProcess::start(&database, &SERVE_ARGS);
        h.remote = Some(server.base());
        *outcomes
            .entry(settle(&h, &phone, &ack, &context).await)
            .or_default() += 1;
    }
    println!("{KILLS} kills: {outcomes:?}");
    // The kills landed inside the ceremony, not only before or after it.
    assert!(
        outcomes.len() >= 2,
        "every kill landed at the same point: {outcomes:?}"
    );
}
