//! A test harness: the router over a SQLite file in a temp dir, and a software phone built from
//! `authenticator-protocol`.
#![allow(dead_code)]

use authenticator_protocol::encoding::{b64, unb64_fixed};
use authenticator_protocol::enroll::{
    EnrollChallenge, EnrollProof, EnrollmentUrl, PasswordlessKeyRegistration,
};
use authenticator_protocol::sign_in::{Decision, DeviceAuth, SignInResponse, SignedRequestDetails};
use authenticator_protocol::{
    AccountId, EcdsaSigner, PublicKey, RequestId, Signature, TypedNumber, UnixMillis,
};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use signin_domain::store::testing::TestDatabase;
use signin_domain::{accounts, store, AppState};
use signin_server::{app, Settings};
use tower::ServiceExt;

pub struct Harness {
    /// SQLite in a temporary directory, or a fresh PostgreSQL database (`TEST_DATABASE_URL`).
    pub db: TestDatabase,
    pub state: AppState,
    pub app: Router,
    /// `Authorization` of the registered application "My Apps" (HTTP Basic).
    pub app_auth: String,
    /// When set (`http://host:port`), requests go over HTTP to a `signin-server` process on
    /// this database instead of to `app` in this process (`crash.rs`).
    pub remote: Option<String>,
    /// Keep the "was this you?" requests a new phone's enrollment sends the user's other
    /// phones (`new_device.rs`). Off: `Phone::enroll` closes them, so that the tests of other
    /// things see only their own sign-ins.
    pub new_device_notices: bool,
}

/// `Authorization: Basic` for a registered application's credential.
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"))
    )
}

pub async fn harness_with_ttl(request_ttl_secs: u64) -> Harness {
    harness_with_state(request_ttl_secs, |s| s).await
}

/// A harness whose state `configure` adjusts (push clients, limits, locator…).
pub async fn harness_with_state(
    request_ttl_secs: u64,
    configure: impl FnOnce(AppState) -> AppState,
) -> Harness {
    let test_db = TestDatabase::create().await.unwrap();
    let pool = store::connect(&test_db.url).await.unwrap();
    let state = AppState::new(
        pool,
        Settings {
            server_name: "Contoso".into(),
            request_ttl_secs,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Tests start many sign-ins per user: a generous limit unless a test sets its own.
    let state = configure(state.with_risk(signin_domain::rules::risk::RiskConfig {
        burst: 1000,
        ..Default::default()
    }));
    let registered = accounts::applications::add(&state.pool, "My Apps")
        .await
        .unwrap();
    Harness {
        db: test_db,
        app: app(state.clone()),
        state,
        app_auth: basic_auth(&registered.client_id, &registered.client_secret),
        remote: None,
        new_device_notices: false,
    }
}

pub async fn harness() -> Harness {
    harness_with_ttl(90).await
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub content_type: Option<String>,
}

impl Reply {
    fn new(status: StatusCode, headers: axum::http::HeaderMap, bytes: &[u8]) -> Reply {
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
            content_type,
        }
    }

    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("<none>")
    }
}

impl Harness {
    pub async fn send(&self, req: Request<Body>) -> Reply {
        self.try_send(req).await.unwrap()
    }

    /// Like `send`; over HTTP (`remote`) a server that is gone is an error, not a panic.
    pub async fn try_send(&self, req: Request<Body>) -> Result<Reply, reqwest::Error> {
        if let Some(base) = &self.remote {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let resp = reqwest::Client::new()
                .request(parts.method, format!("{base}{path}"))
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let (status, headers) = (resp.status(), resp.headers().clone());
            return Ok(Reply::new(status, headers, &resp.bytes().await?));
        }
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Ok(Reply::new(status, headers, &bytes))
    }

    pub async fn post(&self, uri: &str, body: Value) -> Reply {
        self.send(
            Request::post(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// POST as the registered application "My Apps".
    pub async fn post_as_app(&self, uri: &str, body: Value) -> Reply {
        self.send(
            Request::post(uri)
                .header("content-type", "application/json")
                .header("authorization", &self.app_auth)
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, uri: &str, auth: Option<String>) -> Reply {
        let mut b = Request::get(uri);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    pub async fn add_user(&self, upn: &str, groups: &[&str]) {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        accounts::add_user(&self.state.pool, upn, "Test User", &groups)
            .await
            .unwrap();
    }

    pub async fn link(&self, upn: &str, ttl: u64) -> EnrollmentUrl {
        let text = accounts::registration_link(
            &self.state.pool,
            upn,
            &url::Url::parse("http://127.0.0.1:8080/").unwrap(),
            ttl,
        )
        .await
        .unwrap();
        EnrollmentUrl::parse(&text).unwrap()
    }

    /// A user with an enrolled phone that has phone sign-in enabled.
    pub async fn ready_phone(&self, upn: &str) -> Phone {
        self.ready_phone_with_push(upn, "longpoll", "").await
    }

    /// The same, with the phone registering a push channel (`apns`/`fcm` and its token).
    pub async fn ready_phone_with_push(&self, upn: &str, kind: &str, token: &str) -> Phone {
        self.add_user(upn, &[]).await;
        let mut phone = Phone::new();
        phone.push_kind = kind.into();
        phone.push_token = token.into();
        phone.enroll(self, &self.link(upn, 600).await).await;
        let r = phone.enable_passwordless(self).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        phone
    }

    /// Closes the pending `new_device` requests of `upn` (see `new_device_notices`).
    pub async fn close_new_device_notices(&self, upn: &str) {
        sqlx::query(
            "UPDATE signin_requests SET status = 'closed' \
             WHERE upn = $1 AND kind = 'new_device' AND status = 'pending'",
        )
        .bind(upn)
        .execute(&self.state.pool)
        .await
        .unwrap();
    }

    pub async fn start_signin(&self, upn: &str) -> Reply {
        self.post_as_app("/api/v1/signin", json!({ "upn": upn }))
            .await
    }
}

pub struct Phone {
    pub device: EcdsaSigner,
    pub passwordless: EcdsaSigner,
    pub account_id: Option<AccountId>,
    pub server_key: Option<PublicKey>,
    /// The push channel registered at enrollment (`longpoll` by default).
    pub push_kind: String,
    pub push_token: String,
}

/// A fetched request as the phone holds it.
pub struct Fetched {
    pub request_id: RequestId,
    pub signed: SignedRequestDetails,
    pub nonce: [u8; 32],
}

impl Phone {
    pub fn new() -> Self {
        Phone {
            device: EcdsaSigner::generate().unwrap().0,
            passwordless: EcdsaSigner::generate().unwrap().0,
            account_id: None,
            server_key: None,
            push_kind: "longpoll".into(),
            push_token: String::new(),
        }
    }

    pub fn account(&self) -> &AccountId {
        self.account_id.as_ref().expect("enrolled")
    }

    /// §5.1: fetches and checks the challenge (pinned fingerprint, server signature).
    pub async fn challenge(
        &mut self,
        h: &Harness,
        link: &EnrollmentUrl,
    ) -> Result<[u8; 32], Reply> {
        let r = h
            .post("/api/v1/enroll/challenge", json!({"code": link.code}))
            .await;
        if r.status != StatusCode::OK {
            return Err(r);
        }
        let key = PublicKey::from_b64("k", r.body["server_public_key"].as_str().unwrap()).unwrap();
        assert_eq!(
            key.fingerprint(),
            link.server_fingerprint,
            "pinned fingerprint"
        );
        let challenge = unb64_fixed::<32>("c", r.body["challenge"].as_str().unwrap()).unwrap();
        let signed = EnrollChallenge {
            challenge,
            upn: r.body["upn"].as_str().unwrap().into(),
            display_name: r.body["display_name"].as_str().unwrap().into(),
            server_name: r.body["server_name"].as_str().unwrap().into(),
            expires_at: UnixMillis(r.body["expires_at"].as_u64().unwrap()),
        };
        let sig = Signature::from_b64("s", r.body["signature"].as_str().unwrap()).unwrap();
        key.verify(&signed.signed_bytes(&link.code), &sig)
            .expect("challenge signed by the pinned key");
        self.server_key = Some(key);
        Ok(challenge)
    }

    pub fn complete_body(&self, code: &str, challenge: [u8; 32]) -> Value {
        let proof = EnrollProof {
            challenge,
            device_public_key: self.device.public_key(),
            push_kind: self.push_kind.clone(),
            push_token: self.push_token.clone(),
            device_name: "Test Phone".into(),
            timestamp: UnixMillis::now(),
        };
        let sig = self.device.sign(&proof.signed_bytes());
        json!({
            "code": code, "challenge": b64(&challenge),
            "device_public_key": proof.device_public_key.to_b64(),
            "push": {"kind": proof.push_kind, "token": proof.push_token},
            "device_name": proof.device_name, "timestamp": proof.timestamp,
            "signature": sig.to_b64(),
        })
    }

    pub async fn enroll(&mut self, h: &Harness, link: &EnrollmentUrl) {
        let challenge = self
            .challenge(h, link)
            .await
            .unwrap_or_else(|r| panic!("{:?}", r.body));
        let r = h
            .post(
                "/api/v1/enroll/complete",
                self.complete_body(&link.code, challenge),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        self.account_id = Some(AccountId::parse(r.body["account_id"].as_str().unwrap()).unwrap());
        if !h.new_device_notices {
            let upn =
                signin_domain::store::devices::owner_of(&h.state.pool, self.account().as_str())
                    .await
                    .unwrap()
                    .expect("enrolled");
            h.close_new_device_notices(&upn).await;
        }
    }

    pub fn passwordless_body(&self, timestamp: UnixMillis) -> Value {
        let reg = PasswordlessKeyRegistration {
            account_id: self.account().clone(),
            passwordless_public_key: self.passwordless.public_key(),
            timestamp,
        };
        let bytes = reg.signed_bytes();
        json!({
            "account_id": reg.account_id, "passwordless_public_key": reg.passwordless_public_key.to_b64(),
            "timestamp": timestamp,
            "device_signature": self.device.sign(&bytes).to_b64(),
            "key_signature": self.passwordless.sign(&bytes).to_b64(),
        })
    }

    pub async fn enable_passwordless(&self, h: &Harness) -> Reply {
        h.post(
            "/api/v1/device/passwordless",
            self.passwordless_body(UnixMillis::now()),
        )
        .await
    }

    pub fn auth(&self, method: &str, path_and_query: &str) -> String {
        self.auth_at(method, path_and_query, UnixMillis::now())
    }

    /// A device-auth header dated `ts`.
    pub fn auth_at(&self, method: &str, path_and_query: &str, ts: UnixMillis) -> String {
        let sig = self.device.sign(&DeviceAuth::signed_bytes(
            method,
            path_and_query,
            self.account(),
            ts,
        ));
        DeviceAuth {
            account_id: self.account().clone(),
            timestamp: ts,
            signature: sig,
        }
        .to_header()
    }

    pub async fn poll(&self, h: &Harness, wait: u64) -> Reply {
        let pq = format!("/api/v1/device/poll?wait={wait}");
        h.get(&pq, Some(self.auth("GET", &pq))).await
    }

    /// §5.5 and the phone's checks: signature under the pinned key, ids as asked.
    pub async fn fetch(&self, h: &Harness, request_id: &str) -> Result<Fetched, Reply> {
        let pq = format!("/api/v1/device/requests/{request_id}");
        let r = h.get(&pq, Some(self.auth("GET", &pq))).await;
        if r.status != StatusCode::OK {
            return Err(r);
        }
        let signed: SignedRequestDetails = serde_json::from_value(r.body).unwrap();
        let details = signed.verify(self.server_key.as_ref().unwrap()).unwrap();
        assert_eq!(details.request_id.as_str(), request_id);
        assert_eq!(&details.account_id, self.account());
        Ok(Fetched {
            request_id: details.request_id.clone(),
            nonce: details.nonce_bytes().unwrap(),
            signed,
        })
    }

    pub fn response(
        &self,
        f: &Fetched,
        decision: Decision,
        typed: Option<&str>,
        key: &EcdsaSigner,
        timestamp: UnixMillis,
    ) -> Value {
        self.response_seen_at(f, decision, typed, key, timestamp, None)
    }

    /// Like `response`, carrying `browser_origin` (§5.9: the origin the phone saw the
    /// sign-in page at), signed in the `response-bound` layout when present.
    pub fn response_seen_at(
        &self,
        f: &Fetched,
        decision: Decision,
        typed: Option<&str>,
        key: &EcdsaSigner,
        timestamp: UnixMillis,
        browser_origin: Option<&str>,
    ) -> Value {
        let r = SignInResponse {
            request_id: f.request_id.clone(),
            account_id: self.account().clone(),
            nonce: f.nonce,
            decision,
            typed_number: typed.map(|t| TypedNumber::parse(t).unwrap()),
            context_sha256: f.signed.context_sha256(),
            timestamp,
            browser_origin: browser_origin.map(str::to_owned),
        };
        serde_json::to_value(r.to_wire(&key.sign(&r.signed_bytes()))).unwrap()
    }

    /// A response body whose `typed_number` is `sent`, signed over the `response` layout with
    /// `signed` framed in its place, byte for byte — text `TypedNumber` refuses included
    /// (PROTOCOL.md §5.6 step 3: the server must refuse it before the signature).
    pub fn response_with_typed_text(
        &self,
        f: &Fetched,
        sent: &str,
        signed: &str,
        key: &EcdsaSigner,
        timestamp: UnixMillis,
    ) -> Value {
        use authenticator_protocol::canonical::{Canonical, RESPONSE_TAG};
        let bytes = Canonical::new(RESPONSE_TAG)
            .str(f.request_id.as_str())
            .str(self.account().as_str())
            .field(&f.nonce)
            .field(&[Decision::Approve.wire_byte()])
            .str(signed)
            .field(&f.signed.context_sha256())
            .u64(timestamp.millis())
            .finish();
        json!({
            "account_id": self.account(), "decision": "approve", "typed_number": sent,
            "nonce": b64(&f.nonce), "context_sha256": b64(&f.signed.context_sha256()),
            "timestamp": timestamp, "signature": key.sign(&bytes).to_b64(),
        })
    }

    /// Approve (passwordless key), deny/report (device key), now.
    pub fn answer(&self, f: &Fetched, decision: Decision, typed: Option<&str>) -> Value {
        let key = match decision {
            Decision::Approve => &self.passwordless,
            _ => &self.device,
        };
        self.response(f, decision, typed, key, UnixMillis::now())
    }
}

pub fn respond_uri(request_id: &str) -> String {
    format!("/api/v1/device/requests/{request_id}/response")
}

/// A two-digit number different from `n`.
pub fn other_number(n: &str, k: u8) -> String {
    let v: u8 = n.parse().unwrap();
    let w = 10 + (v - 10 + k) % 90;
    w.to_string()
}

/// A `signin-server serve` process on `database` (`crash.rs`, `cli.rs`): a free loopback port,
/// its address read from the first line it prints. Killed when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    /// Kept open: the server's stdout (its address line) is a pipe.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
    /// `host:port`
    pub addr: String,
}

impl ServerProcess {
    pub fn start(database: &str, extra_args: &[&str]) -> ServerProcess {
        Self::start_command(
            std::process::Command::new(env!("CARGO_BIN_EXE_signin-server")),
            database,
            extra_args,
        )
    }

    /// `start` with extra environment variables.
    pub fn start_with_env(
        database: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_signin-server"));
        command.envs(env.iter().copied());
        Self::start_command(command, database, extra_args)
    }

    /// `start` with at most `limit` open files (soft and hard: the server cannot raise it).
    pub fn start_with_open_file_limit(
        database: &str,
        extra_args: &[&str],
        limit: u32,
    ) -> ServerProcess {
        let mut sh = std::process::Command::new("sh");
        sh.args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\"")])
            .arg(env!("CARGO_BIN_EXE_signin-server"));
        Self::start_command(sh, database, extra_args)
    }

    fn start_command(
        mut command: std::process::Command,
        database: &str,
        extra_args: &[&str],
    ) -> ServerProcess {
        use std::io::BufRead as _;
        use std::process::Stdio;
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("signin-server listening on http://")
            .unwrap_or_else(|| panic!("the server did not start cleanly: {line:?}"))
            .to_owned();
        ServerProcess {
            child,
            _stdout: stdout,
            addr,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Looking for a run's secrets in captured logs and audit text (`secrets.rs`, `log_scan.rs`).
pub mod scan {
    use std::sync::{Arc, Mutex};

    /// The audit log as two texts: every field of every row (scanned for text secrets), and
    /// only the fields that carry data — event, user, ids, outcome — (scanned for two-digit
    /// numbers, which the sequence numbers and times hold by chance).
    pub fn audit_texts(rows: &[signin_domain::audit::Row]) -> (String, String) {
        let all = rows.iter().map(|r| format!("{r}\n{r:?}\n")).collect();
        let data = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {}\n",
                    r.event,
                    r.upn.as_deref().unwrap_or("-"),
                    r.account_id.as_deref().unwrap_or("-"),
                    r.request_id.as_deref().unwrap_or("-"),
                    r.outcome
                )
            })
            .collect();
        (all, data)
    }

    /// Where each secret was found in the audit log ([`audit_texts`]), one line each.
    pub fn audit_leaks(rows: &[signin_domain::audit::Row], secrets: &[Secret]) -> Vec<String> {
        let (all, data) = audit_texts(rows);
        let (numbers, texts): (Vec<Secret>, Vec<Secret>) =
            secrets.iter().cloned().partition(|s| s.number);
        let mut found = Vec::new();
        for (text, secrets) in [(&all, &texts), (&data, &numbers)] {
            found.extend(
                leaks(text, secrets)
                    .into_iter()
                    .map(|(s, line)| format!("{} ({}) in the audit log: {line}", s.what, s.value)),
            );
        }
        found
    }

    /// Log output captured from `tracing` (a `MakeWriter` for `tracing_subscriber::fmt`).
    #[derive(Clone, Default)]
    pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// Captures this thread's logs at what an operator runs with plus everything of our own
        /// crate (`info,signin_server=trace`; library internals at TRACE print byte counts and
        /// window sizes, which are noise here), until the guard is dropped. Thread-local: use a
        /// current-thread runtime, so that spawned tasks run under it too.
        pub fn install() -> (Captured, tracing::subscriber::DefaultGuard) {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "info,signin_server=trace,signin_domain=trace",
                ))
                .with_ansi(false)
                .without_time()
                .with_writer(move || writer.clone())
                .finish();
            (captured, tracing::subscriber::set_default(subscriber))
        }

        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Fields whose values are counters or durations, never data: their values are skipped.
    const COUNTERS: [&str; 14] = [
        "http_seq",
        "devices",
        "ms",
        "status",
        "attempt",
        "retry_after_secs",
        "seq",
        "rows_affected",
        "rows_returned",
        "elapsed",
        "elapsed_secs",
        "new_strike",
        "request_ttl_secs",
        "trusted_proxies",
    ];

    /// `text` without the value of sqlx's `summary="…"` field: the start of the logged
    /// statement's fixed SQL (a migration's summary is its first comment line, `-- Sign-out
    /// (issue 21): …`), which cannot carry a run's data; its numbers matched a sign-in number
    /// by chance.
    fn without_statement_summary(text: &str) -> String {
        const FIELD: &str = " summary=\"";
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(FIELD) {
            out.push_str(&rest[..at + FIELD.len()]);
            rest = &rest[at + FIELD.len()..];
            match rest.find('"') {
                Some(end) => rest = &rest[end..],
                None => rest = "",
            }
        }
        out.push_str(rest);
        out
    }

    /// Words of a log or audit text: split on spaces, punctuation and escaped line breaks
    /// (`\n` in a `Debug`-printed field), but not inside timestamps, addresses or ids, so that
    /// a two-digit number matches only as a whole word. Counter values are skipped, and so are
    /// SQL comments in a logged statement (`\n-- …` up to the next line: the migrations' own
    /// prose, fixed text that cannot carry a run's data; a number in it matched a sign-in
    /// number by chance about once in 90 runs).
    pub fn words(text: &str) -> Vec<String> {
        let text = without_statement_summary(text);
        let text = text
            .split("\\n")
            .filter(|line| !line.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join(" ")
            .replace("\\t", " ")
            .replace("\\\"", " ");
        let mut out = Vec::new();
        let mut skip_next = false;
        for w in text.split(|c: char| c.is_whitespace() || "=,;\"'(){}[]".contains(c)) {
            if w.is_empty() {
                continue;
            }
            // A counter name always starts a skip, even right after another one
            // (`… ORDER BY seq\n" rows_affected=36`): only its value is skipped.
            if COUNTERS.contains(&w) {
                skip_next = true;
                out.push(w.to_owned());
                continue;
            }
            if skip_next {
                skip_next = false;
                continue;
            }
            out.push(w.to_owned());
        }
        out
    }

    /// One secret a run handed out or took in, by name.
    #[derive(Debug, Clone)]
    pub struct Secret {
        pub what: String,
        pub value: String,
        /// A two-digit number: found only as a whole word ([`words`]).
        pub number: bool,
    }

    /// The secrets of a run.
    #[derive(Debug, Default)]
    pub struct Secrets(pub Vec<Secret>);

    impl Secrets {
        /// A secret found wherever its text (raw, or URL- or form-encoded) appears. Long
        /// enough that it cannot appear by chance.
        pub fn text(&mut self, what: &str, value: &str) {
            assert!(
                value.len() >= 12,
                "{what}: {value:?} is too short to scan for"
            );
            self.add(what, value, false);
        }

        /// A sign-in number (2 to 6 digits).
        pub fn number(&mut self, what: &str, value: &str) {
            assert!(
                (2..=6).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()),
                "{what}: {value:?}"
            );
            self.add(what, value, true);
        }

        /// Once per kind and value: the same random number drawn for two kinds (a sign-in's
        /// and the page's, 1 in 90) is collected under both, so that each kind is checked.
        fn add(&mut self, what: &str, value: &str, number: bool) {
            if !self.0.iter().any(|s| s.what == what && s.value == value) {
                self.0.push(Secret {
                    what: what.to_owned(),
                    value: value.to_owned(),
                    number,
                });
            }
        }

        pub fn count(&self, what: &str) -> usize {
            self.0.iter().filter(|s| s.what == what).count()
        }
    }

    /// Every `(secret, line)` of `text` where one of `secrets` appears.
    pub fn leaks<'a>(text: &'a str, secrets: &'a [Secret]) -> Vec<(&'a Secret, &'a str)> {
        let mut out = Vec::new();
        for line in text.lines() {
            let mut line_words = None;
            for s in secrets {
                let found = if s.number {
                    line_words
                        .get_or_insert_with(|| words(line))
                        .contains(&s.value)
                } else {
                    let form: String =
                        url::form_urlencoded::byte_serialize(s.value.as_bytes()).collect();
                    line.contains(&s.value)
                        || line.contains(&form)
                        || line.contains(&form.replace('+', "%20"))
                };
                if found {
                    out.push((s, line));
                }
            }
        }
        out
    }
}
