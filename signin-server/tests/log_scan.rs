//! Every ceremony with DEBUG logging of every crate (issue 9): enrollment by an admin's link and
//! by the security-info page, enabling phone sign-in, sign-ins approved (API and web page), a
//! wrong number, a deny, a report, a temporary access pass, password sign-ins and an admin
//! adding a user with a password. Every secret the run handed out or took in is then looked
//! for in every captured log line and every audit entry: none may appear. `secrets.rs` does the
//! same for pushes (APNs, FCM) at the operator's level. This binary installs a process-wide
//! subscriber (DEBUG from every thread, not only the test's), so it holds only this run.
mod support;

use std::sync::OnceLock;

use authenticator_protocol::encoding::b64;
use authenticator_protocol::enroll::EnrollmentUrl;
use authenticator_protocol::sign_in::{Decision, SignedRequestDetails};
use authenticator_protocol::{AccountId, UnixMillis};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use signin_domain::accounts;
use signin_domain::audit::Row;
use support::scan::{audit_leaks, leaks, Captured, Secret, Secrets};
use support::*;

/// The process-wide capture: DEBUG for every target, from every thread.
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        use tracing_subscriber::util::SubscriberInitExt as _;
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
            .try_init()
            .expect("the only subscriber of this test binary");
        captured
    })
}

/// Where each secret was found in the logs and the audit log.
fn scan(logs: &str, rows: &[Row], secrets: &[Secret]) -> Vec<String> {
    let mut found: Vec<String> = leaks(logs, secrets)
        .into_iter()
        .map(|(s, line)| format!("{} ({}) in the logs: {line}", s.what, s.value))
        .collect();
    found.extend(audit_leaks(rows, secrets));
    found
}

const HOST: &str = "127.0.0.1:8080";

/// A browser: its cookie; every session cookie and CSRF token it was given is a secret.
struct Browser<'h> {
    h: &'h Harness,
    cookie: Option<String>,
    seen: Vec<(&'static str, String)>,
}

impl<'h> Browser<'h> {
    fn new(h: &'h Harness) -> Self {
        Browser {
            h,
            cookie: None,
            seen: Vec::new(),
        }
    }

    async fn send(&mut self, mut req: Request<Body>) -> Reply {
        req.headers_mut().insert("host", HOST.parse().unwrap());
        if let Some(c) = &self.cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        let r = self.h.send(req).await;
        if let Some(set) = r.headers.get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            let value = pair.split_once('=').unwrap().1.to_owned();
            if !value.is_empty() {
                self.seen.push(("session cookie", value));
            }
            self.cookie = Some(pair);
        }
        if let Some(html) = r.body.as_str() {
            let marker = "name=\"csrf\" value=\"";
            for part in html.split(marker).skip(1) {
                self.seen
                    .push(("CSRF token", part.split('"').next().unwrap().to_owned()));
            }
        }
        r
    }

    async fn get(&mut self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&mut self, uri: &str, pairs: &[(&str, &str)]) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.send(
            Request::post(uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// The CSRF token of the page at `uri`.
    async fn csrf(&mut self, uri: &str) -> String {
        let r = self.get(uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert!(html(&r).contains("name=\"csrf\""), "{uri} has a form");
        self.last_csrf()
    }

    fn last_csrf(&self) -> String {
        let (_, token) = self
            .seen
            .iter()
            .rev()
            .find(|(what, _)| *what == "CSRF token")
            .expect("a page with a form");
        token.clone()
    }

    /// `/signin` with the UPN: where it sends the browser.
    async fn submit_upn(&mut self, upn: &str) -> String {
        let csrf = self.csrf("/signin").await;
        let r = self.post("/signin", &[("csrf", &csrf), ("upn", upn)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
        location(&r)
    }

    async fn sign_in_with_password(&mut self, upn: &str, password: &str) -> Reply {
        assert_eq!(self.submit_upn(upn).await, "/signin/password");
        let csrf = self.csrf("/signin/password").await;
        self.post(
            "/signin/password",
            &[("csrf", &csrf), ("password", password)],
        )
        .await
    }

    fn secrets_into(&self, s: &mut Secrets) {
        for (what, value) in &self.seen {
            s.text(what, value);
        }
    }
}

fn location(r: &Reply) -> String {
    r.headers["location"].to_str().unwrap().to_owned()
}

fn html(r: &Reply) -> &str {
    r.body.as_str().unwrap_or_default()
}

/// The text of the element with `id` on a page.
fn element(r: &Reply, id: &str) -> String {
    let page = html(r);
    let at = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("#{id} in {page}"));
    let rest = &page[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest.find('<').unwrap();
    rest[start..end].replace("&amp;", "&")
}

/// A phone's device-auth header, its signature a secret.
fn device_auth(phone: &Phone, s: &mut Secrets, method: &str, pq: &str) -> String {
    let header = phone.auth(method, pq);
    s.text("device-auth signature", header.rsplit('.').next().unwrap());
    header
}

/// The phone's one pending request, polled and fetched with recorded device auth.
async fn pending(h: &Harness, phone: &Phone, s: &mut Secrets) -> Fetched {
    let pq = "/api/v1/device/poll?wait=0";
    let polled = h.get(pq, Some(device_auth(phone, s, "GET", pq))).await;
    let pushes = polled.body["pushes"].as_array().unwrap();
    assert_eq!(pushes.len(), 1, "{:?}", polled.body);
    let rid = pushes[0]["rid"].as_str().unwrap();
    let pq = format!("/api/v1/device/requests/{rid}");
    let r = h.get(&pq, Some(device_auth(phone, s, "GET", &pq))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let signed: SignedRequestDetails = serde_json::from_value(r.body).unwrap();
    let details = signed.verify(phone.server_key.as_ref().unwrap()).unwrap();
    let f = Fetched {
        request_id: details.request_id.clone(),
        nonce: details.nonce_bytes().unwrap(),
        signed,
    };
    s.text("nonce", &b64(&f.nonce));
    s.text("nonce (hex)", &hex::encode(f.nonce));
    s.text("request details signature", &f.signed.signature);
    f
}

/// Answers `f`: the reply, the response's signature a secret.
async fn answer(
    h: &Harness,
    phone: &Phone,
    s: &mut Secrets,
    f: &Fetched,
    decision: Decision,
    typed: Option<&str>,
) -> Reply {
    let body = phone.answer(f, decision, typed);
    s.text("response signature", body["signature"].as_str().unwrap());
    h.post(&respond_uri(f.request_id.as_str()), body).await
}

/// Enrolls `phone` with `link` and enables phone sign-in; the challenge and the proofs'
/// signatures are secrets, and so is the offline-fallback TOTP secret the answer carries (its
/// `otpauth://` URI is returned).
async fn enroll(h: &Harness, phone: &mut Phone, s: &mut Secrets, link: &EnrollmentUrl) -> String {
    s.text("enrollment code", &link.code);
    let challenge = phone.challenge(h, link).await.unwrap();
    s.text("enrollment challenge", &b64(&challenge));
    let body = phone.complete_body(&link.code, challenge);
    s.text(
        "enrollment proof signature",
        body["signature"].as_str().unwrap(),
    );
    let r = h.post("/api/v1/enroll/complete", body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    phone.account_id = Some(AccountId::parse(r.body["account_id"].as_str().unwrap()).unwrap());
    let totp_uri = r.body["totp_uri"].as_str().unwrap().to_owned();
    s.text("TOTP URI", &totp_uri);
    let totp = totp_rs::TOTP::from_url(&totp_uri).unwrap();
    s.text("TOTP secret", &totp.get_secret_base32());
    let body = phone.passwordless_body(UnixMillis::now());
    for field in ["device_signature", "key_signature"] {
        s.text(
            "phone sign-in key registration signature",
            body[field].as_str().unwrap(),
        );
    }
    let r = h.post("/api/v1/device/passwordless", body).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    totp_uri
}

const ALICE: &str = "alice@contoso.test";
const CAROL: &str = "carol@contoso.test";
const DAVE: &str = "dave@contoso.test";
const ADA: &str = "ada@contoso.test";
const ADA_PASSWORD: &str = "Ada's admin passphrase #1";
const CAROL_PASSWORD: &str = "carol & co: 7 horses!";
const CAROL_TYPO: &str = "carol & co: 7 horsies!";

#[tokio::test]
async fn no_secret_of_any_ceremony_appears_in_debug_logs_or_the_audit_log() {
    let logs = captured();
    let h = harness().await;
    let mut s = Secrets::default();
    let mut browsers = Vec::new();

    // An application registered with a secret starts the API sign-ins.
    let app = accounts::applications::add(&h.state.pool, "Scan App")
        .await
        .unwrap();
    let app_auth = basic_auth(&app.client_id, &app.client_secret);
    s.text("application client secret", &app.client_secret);
    s.text("application Basic credential", &app_auth["Basic ".len()..]);
    let start = |upn: &'static str| {
        h.send(
            Request::post("/api/v1/signin")
                .header("content-type", "application/json")
                .header("authorization", &app_auth)
                .body(Body::from(json!({ "upn": upn }).to_string()))
                .unwrap(),
        )
    };

    // An admin (password) adds a user with a password on the admin page.
    h.add_user(ADA, &["admins"]).await;
    accounts::passwords::set_password(&h.state.pool, ADA, ADA_PASSWORD)
        .await
        .unwrap();
    s.text("admin password", ADA_PASSWORD);
    let mut admin = Browser::new(&h);
    let r = admin.sign_in_with_password(ADA, ADA_PASSWORD).await;
    assert_eq!(location(&r), "/me");
    // The console needs more than a password: a temporary access pass from the CLI.
    let pass = accounts::temporary_pass::issue(&h.state.pool, ADA, 600)
        .await
        .unwrap();
    s.text("admin temporary pass", &pass);
    let mut admin = Browser::new(&h);
    assert_eq!(admin.submit_upn(ADA).await, "/signin/password");
    let csrf = admin.csrf("/signin/pass").await;
    let r = admin
        .post("/signin/pass", &[("csrf", &csrf), ("pass", &pass)])
        .await;
    assert_eq!(location(&r), "/me/security-info");
    let csrf = admin.csrf("/admin/users").await;
    let r = admin
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("upn", CAROL),
                ("name", "Carol"),
                ("password", CAROL_PASSWORD),
            ],
        )
        .await;
    assert!(
        html(&r).contains("Added carol@contoso.test."),
        "{}",
        html(&r)
    );
    s.text("user password", CAROL_PASSWORD);
    s.text("mistyped password", CAROL_TYPO);
    assert_eq!(admin.get("/admin/audit").await.status, StatusCode::OK);
    browsers.push(admin);

    // Alice enrolls with an admin's registration link.
    h.add_user(ALICE, &[]).await;
    let text = accounts::registration_link(
        &h.state.pool,
        ALICE,
        &url::Url::parse("http://127.0.0.1:8080/").unwrap(),
        600,
    )
    .await
    .unwrap();
    s.text("registration link", &text);
    let mut alice = Phone::new();
    let alice_totp = enroll(
        &h,
        &mut alice,
        &mut s,
        &EnrollmentUrl::parse(&text).unwrap(),
    )
    .await;

    // An application's sign-in: a wrong number, then the right one.
    let r = start(ALICE).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let number = r.body["number"].as_str().unwrap().to_owned();
    s.number("number", &number);
    let f = pending(&h, &alice, &mut s).await;
    let wrong = other_number(&number, 7);
    s.number("wrong number", &wrong);
    let r = answer(&h, &alice, &mut s, &f, Decision::Approve, Some(&wrong)).await;
    assert_eq!(r.error(), "wrong_number");
    let r = answer(&h, &alice, &mut s, &f, Decision::Approve, Some(&number)).await;
    assert_eq!(r.body["status"], "approved", "{:?}", r.body);

    // Another, denied.
    let r = start(ALICE).await;
    s.number("number", r.body["number"].as_str().unwrap());
    let f = pending(&h, &alice, &mut s).await;
    let r = answer(&h, &alice, &mut s, &f, Decision::Deny, None).await;
    assert_eq!(r.body["status"], "denied", "{:?}", r.body);

    // Alice signs in on the sign-in page with her phone.
    let mut b = Browser::new(&h);
    assert_eq!(b.submit_upn(ALICE).await, "/signin/wait");
    let wait = b.get("/signin/wait").await;
    let number = element(&wait, "number");
    s.number("number on the sign-in page", &number);
    let csrf = b.last_csrf();
    let f = pending(&h, &alice, &mut s).await;
    let r = answer(&h, &alice, &mut s, &f, Decision::Approve, Some(&number)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = b.post("/signin/complete", &[("csrf", &csrf)]).await;
    assert_eq!(location(&r), "/me");
    browsers.push(b);

    // Carol (no phone, mode any) mistypes her password, signs in with it, and registers a
    // phone from the security-info page.
    let mut b = Browser::new(&h);
    let r = b.sign_in_with_password(CAROL, CAROL_TYPO).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("incorrect"), "{}", html(&r));
    let r = b.sign_in_with_password(CAROL, CAROL_PASSWORD).await;
    assert_eq!(location(&r), "/me");
    let csrf = b.csrf("/me/security-info").await;
    let r = b
        .post("/me/security-info/authenticator", &[("csrf", &csrf)])
        .await;
    let text = element(&r, "registration-link");
    s.text("registration link", &text);
    let mut carol = Phone::new();
    enroll(
        &h,
        &mut carol,
        &mut s,
        &EnrollmentUrl::parse(&text).unwrap(),
    )
    .await;
    browsers.push(b);

    // Dave signs in once with a temporary access pass.
    h.add_user(DAVE, &[]).await;
    let pass = accounts::temporary_pass::issue(&h.state.pool, DAVE, 600)
        .await
        .unwrap();
    s.text("temporary access pass", &pass);
    let mut b = Browser::new(&h);
    assert_eq!(b.submit_upn(DAVE).await, "/signin/password");
    let csrf = b.csrf("/signin/pass").await;
    let r = b
        .post("/signin/pass", &[("csrf", &csrf), ("pass", &pass)])
        .await;
    assert_eq!(location(&r), "/me/security-info");

    // Dave creates backup codes and signs in with one; Alice with her phone's TOTP code
    // (offline fallback), after a wrong code.
    signin_domain::accounts::fallback::set_enabled(&h.state.pool, true)
        .await
        .unwrap();
    let csrf = b.csrf("/me/security-info").await;
    let r = b
        .post("/me/security-info/backup-codes", &[("csrf", &csrf)])
        .await;
    let codes: Vec<String> = html(&r)
        .split("<code>")
        .skip(1)
        .map(|c| c.split("</code>").next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{}", html(&r));
    for c in &codes {
        s.text("backup code", c);
        s.text("backup code", &c.replace('-', ""));
    }
    let key = signin_domain::store::get_setting(&h.state.pool, "fallback_totp_key")
        .await
        .unwrap()
        .unwrap();
    s.text("fallback sealing key", &key);
    let mut d = Browser::new(&h);
    assert_eq!(d.submit_upn(DAVE).await, "/signin/password");
    let csrf = d.csrf("/signin/fallback").await;
    let r = d
        .post("/signin/fallback", &[("csrf", &csrf), ("code", &codes[3])])
        .await;
    assert_eq!(location(&r), "/me/security-info");
    browsers.push(d);
    let mut a = Browser::new(&h);
    assert_eq!(a.submit_upn(ALICE).await, "/signin/wait");
    let csrf = a.csrf("/signin/fallback").await;
    let totp = totp_rs::TOTP::from_url(&alice_totp).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = totp.generate(now);
    // A code of three steps ago is no longer valid.
    let old = totp.generate(now - 90);
    for (what, value) in [("TOTP code", &code), ("old TOTP code", &old)] {
        s.0.push(Secret {
            what: what.into(),
            value: value.clone(),
            number: true,
        });
    }
    let r = a
        .post("/signin/fallback", &[("csrf", &csrf), ("code", &old)])
        .await;
    assert!(html(&r).contains("not valid"), "{}", html(&r));
    let r = a
        .post("/signin/fallback", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(location(&r), "/me/security-info");
    browsers.push(a);
    browsers.push(b);

    // Carol reports a sign-in she did not start; the next one is refused.
    let r = start(CAROL).await;
    s.number("number", r.body["number"].as_str().unwrap());
    let f = pending(&h, &carol, &mut s).await;
    let r = answer(&h, &carol, &mut s, &f, Decision::Report, None).await;
    assert_eq!(r.body["status"], "reported", "{:?}", r.body);
    assert_eq!(start(CAROL).await.error(), "paused");
    h.state.dispatcher.wait_idle().await;

    for b in &browsers {
        b.secrets_into(&mut s);
    }
    let rows = signin_domain::audit::list(&h.state.pool).await.unwrap();
    let logs = logs.text();

    // The run did what it says, and the capture saw it: our events and sqlx's statements.
    for kind in [
        "application client secret",
        "admin password",
        "user password",
        "registration link",
        "enrollment code",
        "enrollment challenge",
        "enrollment proof signature",
        "phone sign-in key registration signature",
        "device-auth signature",
        "nonce",
        "request details signature",
        "response signature",
        "number",
        "wrong number",
        "number on the sign-in page",
        "temporary access pass",
        "TOTP URI",
        "TOTP secret",
        "TOTP code",
        "backup code",
        "fallback sealing key",
        "session cookie",
        "CSRF token",
    ] {
        assert!(s.count(kind) > 0, "no {kind} collected");
    }
    assert!(s.count("enrollment code") >= 2 && s.count("session cookie") >= 4);
    for event in [
        "application_added",
        "user_added",
        "password_set",
        "registration_link_issued",
        "enrolled",
        "passwordless_enabled",
        "signin_started",
        "wrong_number",
        "signin_decision",
        "web_signin",
        "temporary_pass_issued",
        "temporary_pass_used",
        "backup_codes_created",
        "fallback_used",
        "user_paused",
        "signin_paused",
    ] {
        assert!(rows.iter().any(|r| r.event == event), "{event} audited");
    }
    for expected in [
        " DEBUG ",
        "sqlx::query",
        "UPDATE signin_requests",
        "device enrolled",
        "wrong number",
        "sign-in answered",
        "answered",
    ] {
        assert!(logs.contains(expected), "{expected:?} in the logs:\n{logs}");
    }
    eprintln!(
        "scanned {} log lines and {} audit entries for {} secrets",
        logs.lines().count(),
        rows.len(),
        s.0.len()
    );

    let found = scan(&logs, &rows, &s.0);
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));

    // Not vacuous: each of these very secrets, planted in a log line or in an audit entry's
    // outcome, is found by the same scan.
    let sample = rows
        .iter()
        .find(|r| r.event == "wrong_number")
        .unwrap()
        .clone();
    for secret in &s.0 {
        let v = &secret.value;
        let line = format!(
            "2026-11-25T20:{v}:00.000000Z  INFO http{{http_seq=7 method=POST route=/api/v1/x}}: \
             signin_domain::sign_in: leaked value={v}"
        );
        let planted = format!("{logs}{line}\n");
        let found = scan(&planted, &rows, std::slice::from_ref(secret));
        assert_eq!(
            found.len(),
            1,
            "{} planted in the logs: {found:?}",
            secret.what
        );
        let mut row = sample.clone();
        row.outcome = format!("typed {v}");
        let mut planted_rows = rows.clone();
        planted_rows.push(row);
        let found = scan(&logs, &planted_rows, std::slice::from_ref(secret));
        assert!(
            !found.is_empty() && found.iter().all(|f| f.contains("in the audit log")),
            "{} planted in the audit log: {found:?}",
            secret.what
        );
    }
}

#[test]
fn the_scan_finds_planted_secrets_and_ignores_numbers_inside_times_ports_and_counters() {
    let mut s = Secrets::default();
    s.number("number", "42");
    s.text("enrollment code", "Zq81nA0LxY7-kP2_wQ");
    s.text("password", "carol & co: 7 horses!");
    let clean = "2026-11-25T20:42:42.424242Z DEBUG http{http_seq=42 method=GET route=/signin}: \
                 sqlx::query: summary=\"SELECT …\" db.statement=\"\\n\\nSELECT $42\\n\" \
                 rows_affected=42 rows_returned=42 elapsed=42.1ms elapsed_secs=0.042\n\
                 DEBUG sqlx::query: db.statement=\"\\n\\nSELECT seq FROM audit_log ORDER BY seq\\n\" rows_affected=42\n\
                 DEBUG sqlx::query: summary=\"-- Sign-out (issue 42): …\" db.statement=\"\\n\\n-- Sign-out (issue 42): logout\\nALTER TABLE a ADD COLUMN b TEXT;\\n\" rows_affected=0\n\
                 2026-11-25T20:42:00Z INFO signin_server: listening addr=127.0.0.1:42042 status=42 ms=42";
    assert!(leaks(clean, &s.0).is_empty(), "{:?}", leaks(clean, &s.0));
    for (line, what) in [
        ("INFO signin_server: wrong number typed=42", "number"),
        (
            "DEBUG sqlx::query: db.statement=\"\\nSELECT 42\\n\"",
            "number",
        ),
        ("INFO x: number 42 shown", "number"),
        // A statement's summary hides nothing of the fields after it.
        (
            "DEBUG sqlx::query: summary=\"SELECT …\" db.statement=\"\\nSELECT 42\\n\"",
            "number",
        ),
        ("INFO x: body={\"typed_number\":\"42\"}", "number"),
        ("DEBUG x: code=Zq81nA0LxY7-kP2_wQ", "enrollment code"),
        (
            "DEBUG x: url=/enroll?code=Zq81nA0LxY7-kP2_wQ&v=1",
            "enrollment code",
        ),
        (
            "DEBUG x: form=password=carol+%26+co%3A+7+horses%21",
            "password",
        ),
        ("DEBUG x: password=\"carol & co: 7 horses!\"", "password"),
    ] {
        let found: Vec<&str> = leaks(line, &s.0)
            .iter()
            .map(|(s, _)| s.what.as_str())
            .collect();
        assert_eq!(found, [what], "{line}");
    }
}
