//! Crash safety of the server, with a real process: `signin-server serve` is killed with SIGKILL
//! at random points of a sign-in ceremony (start, the phone's long-poll, fetch, approval) and
//! started again on the same database. Each time it must start cleanly, and what it answered
//! before the kill must hold after it: an approval it acknowledged is still approved, a sign-in
//! it started is still there and can be finished. On SQLite, and on PostgreSQL in the
//! PostgreSQL pass (`TEST_DATABASE_URL`).
//!
//! Kill points are uniformly random over a ceremony's measured length. The seed is printed
//! (`CRASH_SEED` replays a run).
//!
//! Under load (issue 24, "no loss"): many users' ceremonies run at once, so that concurrent
//! writes share the store's transactions (group commit), and the server is killed amid them.
//! Every answer it acknowledged, and the audit entries of each, must be in the database after
//! the restart.
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authenticator_protocol::sign_in::{Decision, SignedRequestDetails};
use authenticator_protocol::wire::MAX_WRONG_NUMBERS;
use authenticator_protocol::UnixMillis;
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
    let mut outcomes = BTreeMap::<&str, usize>::new();
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

// Under load: SIGKILL amid many concurrent ceremonies (issue 24, "no loss").

/// Users signing in at once, one phone each; one worker per user runs ceremonies back to back.
const LOAD_USERS: usize = 16;
/// Kills of the server under load, each followed by a restart and the check of everything
/// acknowledged so far.
const LOAD_ROUNDS: usize = 3;
/// Answers a round's server must acknowledge before its kill may come: the least each round
/// checks, so that the test cannot pass on an idle server.
const LOAD_MIN_ANSWERS: usize = 60;
/// After those, the kill comes at a seeded random moment within this long.
const LOAD_KILL_SPREAD_MS: u64 = 3000;
/// A round whose server has not acknowledged `LOAD_MIN_ANSWERS` by then is killed anyway, and
/// fails its count (a liveness bound, not a timing check).
const LOAD_GUARD: Duration = Duration::from_secs(30);

/// How a worker answers one ceremony.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Approve,
    Deny,
    /// A wrong number, then the right one.
    WrongThenApprove,
    /// Wrong numbers until the sign-in fails (`MAX_WRONG_NUMBERS`).
    ThreeWrong,
    /// The same approval sent twice at once (a phone retrying): one is stored, the other is
    /// refused — a unit of the same group of writes that stores nothing.
    ApproveTwice,
}

impl Plan {
    fn pick(rng: &mut StdRng) -> Plan {
        match rng.gen_range(0..20) {
            0..=6 => Plan::Approve,
            7..=11 => Plan::Deny,
            12..=14 => Plan::WrongThenApprove,
            15..=16 => Plan::ThreeWrong,
            _ => Plan::ApproveTwice,
        }
    }
}

/// What the server acknowledged about one sign-in (its one request: one phone per user).
#[derive(Debug)]
struct AckedSignIn {
    upn: String,
    /// Wrong numbers it answered `wrong_number` (or, the last allowed, `request_failed`) to.
    wrong_numbers: usize,
    /// The end it answered: `approved` or `denied` (200 with that status), `failed` (the
    /// last allowed wrong number's `request_failed`).
    outcome: Option<&'static str>,
}

/// Everything the server acknowledged, over all rounds.
#[derive(Debug, Default)]
struct Ledger {
    /// Every sign-in whose start was answered 200, by id.
    sign_ins: BTreeMap<String, AckedSignIn>,
    /// Starts and answers (decisions and wrong numbers) acknowledged in the current round.
    round_starts: usize,
    round_answers: usize,
}

/// The ledger, also after a worker panicked holding it (the test then fails with that
/// worker's panic, not with the poisoned lock's).
fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Ledger {
    fn acked(&mut self, id: &str) -> &mut AckedSignIn {
        self.sign_ins.get_mut(id).expect("a started sign-in")
    }

    /// A 200 to a decision: the status it returned is the one asked for.
    fn decided(&mut self, id: &str, asked: &'static str, reply: &(StatusCode, Value)) {
        assert_eq!(reply.0, StatusCode::OK, "{id}: {asked}: {:?}", reply.1);
        assert_eq!(reply.1["status"], asked, "{id}");
        let acked = self.acked(id);
        assert_eq!(acked.outcome, None, "{id}: answered twice: {acked:?}");
        acked.outcome = Some(asked);
        self.round_answers += 1;
    }

    /// The answer to a wrong number: `wrong_number`, or `request_failed` for the last allowed.
    fn wrong_number(&mut self, id: &str, reply: &(StatusCode, Value)) {
        assert_eq!(reply.0, StatusCode::BAD_REQUEST, "{id}: {:?}", reply.1);
        let acked = self.acked(id);
        acked.wrong_numbers += 1;
        let last = acked.wrong_numbers == MAX_WRONG_NUMBERS as usize;
        let error = if last {
            "request_failed"
        } else {
            "wrong_number"
        };
        assert_eq!(reply.1["error"], error, "{id}: {acked:?}: {:?}", reply.1);
        if last {
            acked.outcome = Some("failed");
        }
        self.round_answers += 1;
    }
}

/// A worker's HTTP client to the server process (connections kept alive, as a proxy's are).
struct LoadClient {
    base: String,
    app_auth: String,
    http: reqwest::Client,
}

impl LoadClient {
    /// The status and JSON body of a request; an error unless the whole reply arrived.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<String>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        let mut b = self.http.request(method, format!("{}{path}", self.base));
        if let Some(auth) = auth {
            b = b.header("authorization", auth);
        }
        if let Some(body) = body {
            b = b
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = b.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

/// A request of a ceremony that did not get its whole reply: the step, and why.
type Interrupted = (&'static str, reqwest::Error);

/// One user with its phone, running ceremonies.
struct LoadWorker {
    upn: String,
    phone: Arc<Phone>,
    rng: StdRng,
    /// This phone's last response time: each answer is dated after it (the server refuses an
    /// answer not newer than the request's last one as a replay).
    last_ts: u64,
}

/// Counts the workers that ended (returned or panicked), so that the killer does not wait for
/// answers from a worker that failed.
struct Ended(Arc<AtomicUsize>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl LoadWorker {
    /// Ceremonies back to back until a request is cut off: by the kill only (else it fails).
    /// Returns the worker and the step the kill cut off.
    async fn run(
        mut self,
        c: LoadClient,
        ledger: Arc<Mutex<Ledger>>,
        killed: Arc<AtomicBool>,
        ended: Arc<AtomicUsize>,
    ) -> (LoadWorker, &'static str) {
        let _ended = Ended(ended);
        loop {
            let plan = Plan::pick(&mut self.rng);
            if let Err((step, e)) = self.ceremony(&c, plan, &ledger).await {
                assert!(
                    killed.load(Ordering::SeqCst),
                    "{}: {step} ({plan:?}) failed before the kill: {e}",
                    self.upn
                );
                // Refused at connect: the request never reached the server.
                let step = if e.is_connect() { "not sent" } else { step };
                return (self, step);
            }
        }
    }

    async fn ceremony(
        &mut self,
        c: &LoadClient,
        plan: Plan,
        ledger: &Mutex<Ledger>,
    ) -> Result<(), Interrupted> {
        use reqwest::Method;
        let started = c
            .send(
                Method::POST,
                "/api/v1/signin",
                Some(c.app_auth.clone()),
                Some(&json!({ "upn": self.upn })),
            )
            .await
            .map_err(|e| ("start", e))?;
        assert_eq!(started.0, StatusCode::OK, "{}: {:?}", self.upn, started.1);
        let id = started.1["id"].as_str().unwrap().to_owned();
        let number = started.1["number"].as_str().unwrap().to_owned();
        {
            let mut ledger = lock(ledger);
            let upn = self.upn.clone();
            let before = ledger.sign_ins.insert(
                id.clone(),
                AckedSignIn {
                    upn,
                    wrong_numbers: 0,
                    outcome: None,
                },
            );
            assert!(before.is_none(), "sign-in id {id} handed out twice");
            ledger.round_starts += 1;
        }

        // The phone's long-poll: this sign-in's request is waiting (among any a kill left).
        let pq = "/api/v1/device/poll?wait=10";
        let polled = c
            .send(Method::GET, pq, Some(self.phone.auth("GET", pq)), None)
            .await
            .map_err(|e| ("long-poll", e))?;
        assert_eq!(polled.0, StatusCode::OK, "{}: {:?}", self.upn, polled.1);
        assert!(
            polled.1["pushes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["rid"] == id.as_str()),
            "{}: the started {id} is not waiting: {:?}",
            self.upn,
            polled.1
        );
        let fetched = self.fetch(c, &id).await.map_err(|e| ("fetch", e))?;

        let wrong = wrong_number(&number);
        match plan {
            Plan::Approve | Plan::Deny => {
                let (decision, asked, typed) = match plan {
                    Plan::Approve => (Decision::Approve, "approved", Some(number.as_str())),
                    _ => (Decision::Deny, "denied", None),
                };
                let reply = self.respond(c, &fetched, decision, typed).await?;
                lock(ledger).decided(&id, asked, &reply);
            }
            Plan::WrongThenApprove => {
                let reply = self
                    .respond(c, &fetched, Decision::Approve, Some(&wrong))
                    .await?;
                lock(ledger).wrong_number(&id, &reply);
                let reply = self
                    .respond(c, &fetched, Decision::Approve, Some(&number))
                    .await?;
                lock(ledger).decided(&id, "approved", &reply);
            }
            Plan::ThreeWrong => {
                for _ in 0..MAX_WRONG_NUMBERS {
                    let reply = self
                        .respond(c, &fetched, Decision::Approve, Some(&wrong))
                        .await?;
                    lock(ledger).wrong_number(&id, &reply);
                }
            }
            Plan::ApproveTwice => {
                let body = self.body(&fetched, Decision::Approve, Some(&number));
                let uri = respond_uri(&id);
                let (a, b) = tokio::join!(
                    c.send(Method::POST, &uri, None, Some(&body)),
                    c.send(Method::POST, &uri, None, Some(&body)),
                );
                let replies: Vec<_> = [&a, &b].into_iter().flatten().collect();
                let won = replies.iter().filter(|r| r.0 == StatusCode::OK).count();
                assert!(won <= 1, "{id}: one approval stored twice: {replies:?}");
                for r in &replies {
                    if r.0 == StatusCode::OK {
                        lock(ledger).decided(&id, "approved", r);
                    } else {
                        assert_eq!(r.0, StatusCode::CONFLICT, "{id}: {replies:?}");
                        assert!(
                            r.1["error"] == "request_not_pending" || r.1["error"] == "replay",
                            "{id}: {replies:?}"
                        );
                    }
                }
                a.map_err(|e| ("answer", e))?;
                b.map_err(|e| ("answer", e))?;
                assert_eq!(won, 1, "{id}: neither approval was stored");
            }
        }
        Ok(())
    }

    async fn fetch(&self, c: &LoadClient, rid: &str) -> Result<Fetched, reqwest::Error> {
        let pq = format!("/api/v1/device/requests/{rid}");
        let (status, body) = c
            .send(
                reqwest::Method::GET,
                &pq,
                Some(self.phone.auth("GET", &pq)),
                None,
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{}: {body:?}", self.upn);
        let signed: SignedRequestDetails = serde_json::from_value(body).unwrap();
        let details = signed
            .verify(self.phone.server_key.as_ref().unwrap())
            .unwrap();
        assert_eq!(details.request_id.as_str(), rid);
        Ok(Fetched {
            request_id: details.request_id.clone(),
            nonce: details.nonce_bytes().unwrap(),
            signed,
        })
    }

    /// The phone's signed answer, dated after its previous one.
    fn body(&mut self, f: &Fetched, decision: Decision, typed: Option<&str>) -> Value {
        let ts = UnixMillis::now().millis().max(self.last_ts + 1);
        self.last_ts = ts;
        let key = match decision {
            Decision::Approve => &self.phone.passwordless,
            _ => &self.phone.device,
        };
        self.phone.response(f, decision, typed, key, UnixMillis(ts))
    }

    async fn respond(
        &mut self,
        c: &LoadClient,
        f: &Fetched,
        decision: Decision,
        typed: Option<&str>,
    ) -> Result<(StatusCode, Value), Interrupted> {
        let body = self.body(f, decision, typed);
        c.send(
            reqwest::Method::POST,
            &respond_uri(f.request_id.as_str()),
            None,
            Some(&body),
        )
        .await
        .map_err(|e| ("answer", e))
    }
}

/// `number` with its last digit changed: a wrong number of the same length.
fn wrong_number(number: &str) -> String {
    let (head, last) = number.split_at(number.len() - 1);
    let digit = last.parse::<u8>().unwrap();
    format!("{head}{}", (digit + 1) % 10)
}

/// Audit entries naming a request, by (event, request id, outcome), counting collapsed repeats.
async fn audited_by_request(h: &Harness) -> HashMap<(String, String, String), i64> {
    let mut audited = HashMap::new();
    for row in signin_domain::audit::list(&h.state.pool).await.unwrap() {
        if let Some(rid) = row.request_id {
            *audited.entry((row.event, rid, row.outcome)).or_default() += 1 + row.repeats;
        }
    }
    audited
}

/// Everything `ledger` holds, read from the database: every acknowledged start is stored and
/// audited (`signin_started`), every acknowledged wrong number is counted and audited
/// (`wrong_number`), every acknowledged decision is stored with its status and audited once
/// (`signin_decision`, or `signin_failed` for the third wrong number). Returns the
/// acknowledged answers checked.
async fn check_acknowledged(h: &Harness, ledger: &Ledger, context: &str) -> usize {
    use signin_domain::audit::Event;
    let audited = audited_by_request(h).await;
    let count = |event: Event, id: &str, outcome: &str| {
        audited
            .get(&(event.as_str().to_owned(), id.to_owned(), outcome.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    let mut answers = 0;
    for (id, acked) in &ledger.sign_ins {
        let stored = signin_domain::store::requests::load_request(&h.state.pool, id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{context}: the acknowledged start of {id} is lost"));
        assert_eq!(stored.upn, acked.upn, "{context}: {id}");
        assert_eq!(
            count(Event::SignInStarted, id, "pending"),
            1,
            "{context}: the audit entry of the acknowledged start of {id} ({acked:?})"
        );
        assert!(
            stored.wrong_attempts as usize >= acked.wrong_numbers,
            "{context}: {id}: acknowledged wrong numbers lost: {acked:?}, stored {}",
            stored.wrong_attempts
        );
        assert!(
            count(Event::WrongNumber, id, "wrong_number") >= acked.wrong_numbers as i64,
            "{context}: {id}: audit entries of acknowledged wrong numbers lost: {acked:?}"
        );
        answers += acked.wrong_numbers;
        if let Some(outcome) = acked.outcome {
            assert_eq!(
                stored.status.as_str(),
                outcome,
                "{context}: {id}: the acknowledged {outcome} is lost ({acked:?})"
            );
            let event = if outcome == "failed" {
                Event::SignInFailed
            } else {
                answers += 1;
                Event::SignInDecision
            };
            assert_eq!(
                count(event, id, outcome),
                1,
                "{context}: {id}: the audit entry of the acknowledged {outcome} ({acked:?})"
            );
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_under_load_loses_no_answered_sign_in_and_no_audit_entry() {
    let mut h = harness().await;
    let mut rng = rng();
    let mut workers = Vec::new();
    for i in 0..LOAD_USERS {
        let upn = format!("load{i}@contoso.test");
        let phone = h.ready_phone(&upn).await;
        workers.push(LoadWorker {
            upn,
            phone: Arc::new(phone),
            rng: StdRng::seed_from_u64(rng.gen()),
            last_ts: 0,
        });
    }
    let database = h.db.url.clone();
    let mut server = ServerProcess::start(&database, &SERVE_ARGS);
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    for round in 1..=LOAD_ROUNDS {
        {
            let mut ledger = lock(&ledger);
            ledger.round_starts = 0;
            ledger.round_answers = 0;
        }
        let killed = Arc::new(AtomicBool::new(false));
        let ended = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for worker in workers.drain(..) {
            let client = LoadClient {
                base: server.base(),
                app_auth: h.app_auth.clone(),
                http: reqwest::Client::new(),
            };
            tasks.spawn(worker.run(client, ledger.clone(), killed.clone(), ended.clone()));
        }

        // The kill: once the round has its answers, at a seeded random moment after.
        let spread = Duration::from_millis(rng.gen_range(0..LOAD_KILL_SPREAD_MS));
        let t = Instant::now();
        while lock(&ledger).round_answers < LOAD_MIN_ANSWERS
            && ended.load(Ordering::SeqCst) == 0
            && t.elapsed() < LOAD_GUARD
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if ended.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(spread).await;
        }
        let load_time = t.elapsed();
        killed.store(true, Ordering::SeqCst);
        server.kill();

        let mut cut = BTreeMap::<&str, usize>::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((worker, step)) => {
                    *cut.entry(step).or_default() += 1;
                    workers.push(worker);
                }
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("a worker: {e}"),
            }
        }
        let in_flight: usize = cut
            .iter()
            .filter(|(step, _)| **step != "not sent")
            .map(|(_, n)| n)
            .sum();

        server = ServerProcess::start(&database, &SERVE_ARGS);
        h.remote = Some(server.base());
        let health = h
            .send(Request::get("/healthz").body(Body::empty()).unwrap())
            .await;
        assert_eq!(health.status, StatusCode::OK, "round {round}: not healthy");

        // Every worker has ended: the ledger is complete for this round.
        let acked = std::mem::take(&mut *lock(&ledger));
        let context = format!("round {round} (killed {load_time:?} into the round)");
        let answers = check_acknowledged(&h, &acked, &context).await;
        println!(
            "{context}: acknowledged this round: {} starts, {} answers; in flight at the kill: \
             {in_flight} of {LOAD_USERS} workers, cut at {cut:?}; checked so far: {} sign-ins, \
             {answers} answers",
            acked.round_starts,
            acked.round_answers,
            acked.sign_ins.len()
        );
        assert!(
            acked.round_answers >= LOAD_MIN_ANSWERS,
            "{context}: only {} answers acknowledged before the kill",
            acked.round_answers
        );
        *lock(&ledger) = acked;
    }
}
