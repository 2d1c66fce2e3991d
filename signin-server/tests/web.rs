//! The sign-in pages under load and attack (review issue 8): bounded password hashing and
//! throttled password attempts, no stored rows for cookie-less visits, and a session id that
//! changes when the UPN is submitted.
mod support;

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use signin_domain::accounts::passwords::{self, PasswordCheck, PasswordGuard, PasswordLimits};
use signin_domain::audit;
use support::*;

const HOST: &str = "127.0.0.1:8080";

/// A browser: one cookie, one client address.
struct Browser<'h> {
    h: &'h Harness,
    cookie: Option<String>,
    ip: Option<IpAddr>,
}

impl<'h> Browser<'h> {
    fn new(h: &'h Harness) -> Self {
        Browser {
            h,
            cookie: None,
            ip: None,
        }
    }

    fn from_ip(h: &'h Harness, ip: &str) -> Self {
        Browser {
            ip: Some(ip.parse().unwrap()),
            ..Browser::new(h)
        }
    }

    async fn send(&mut self, mut req: Request<Body>) -> Reply {
        req.headers_mut().insert("host", HOST.parse().unwrap());
        if let Some(c) = &self.cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        if let Some(ip) = self.ip {
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(ip, 40000)));
        }
        let r = self.h.send(req).await;
        if let Some(set) = r.headers.get("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = if set.contains("Max-Age=0") {
                None
            } else {
                Some(pair)
            };
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

    /// `GET /signin`, then the UPN: the CSRF token of the session that results.
    async fn submit_upn(&mut self, upn: &str) -> (Reply, String) {
        let r = self.get("/signin").await;
        assert_eq!(r.status, StatusCode::OK);
        let csrf = csrf_of(&r);
        let r = self.post("/signin", &[("csrf", &csrf), ("upn", upn)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
        let next = r.headers["location"].to_str().unwrap().to_owned();
        let page = self.get(&next).await;
        assert_eq!(page.status, StatusCode::OK, "{next}");
        let csrf = csrf_of(&page);
        (r, csrf)
    }

    async fn password(&mut self, csrf: &str, password: &str) -> Reply {
        self.post(
            "/signin/password",
            &[("csrf", csrf), ("password", password)],
        )
        .await
    }
}

fn csrf_of(r: &Reply) -> String {
    let html = r.body.as_str().expect("an HTML page");
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("a CSRF field") + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

fn text(r: &Reply) -> &str {
    r.body.as_str().unwrap_or_default()
}

async fn harness_with_password_limits(limits: PasswordLimits) -> Harness {
    harness_with_state(90, |s| s.with_password_limits(limits)).await
}

fn hashes(h: &Harness) -> u64 {
    h.state.passwords.stats().hashes
}

const WRONG: &str = "Your username or password is incorrect.";
const THROTTLED: &str = "Too many password attempts.";

// ---- item 1: password checks cost bounded memory and are throttled ----

#[test]
fn the_argon2_bound_defaults_to_the_number_of_cores() {
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(PasswordLimits::default().concurrency, cores);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_password_checks_never_run_more_argon2_hashes_at_once_than_the_bound() {
    let h = harness().await;
    h.add_user("bobby@contoso.test", &[]).await;
    passwords::set_password(&h.state.pool, "bobby@contoso.test", "bobby password 1")
        .await
        .unwrap();
    let guard = std::sync::Arc::new(PasswordGuard::new(PasswordLimits {
        concurrency: 2,
        user_burst: 1000,
        ip_burst: 1000,
        ..Default::default()
    }));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (pool, guard) = (h.state.pool.clone(), guard.clone());
        tasks.push(tokio::spawn(async move {
            let password = if i % 2 == 0 {
                "bobby password 1"
            } else {
                "wrong guess"
            };
            passwords::verify_password(&pool, &guard, "bobby@contoso.test", None, password).await
        }));
    }
    let mut correct = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == PasswordCheck::Correct {
            correct += 1;
        }
    }
    let stats = guard.stats();
    assert_eq!((correct, stats.hashes), (6, 12));
    assert!(
        stats.max_in_flight <= 2,
        "{} Argon2 hashes ran at once",
        stats.max_in_flight
    );
}

#[tokio::test]
async fn the_attempt_after_the_burst_for_one_user_is_refused_without_hashing() {
    let h = harness_with_password_limits(PasswordLimits {
        user_burst: 3,
        ip_burst: 1000,
        ..Default::default()
    })
    .await;
    h.add_user("bobby@contoso.test", &[]).await;
    h.add_user("ada@contoso.test", &[]).await;
    let mut b = Browser::from_ip(&h, "198.51.100.7");
    let (_, csrf) = b.submit_upn("bobby@contoso.test").await;
    for n in 1..=3 {
        let r = b.password(&csrf, "a wrong guess").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(text(&r).contains(WRONG));
        assert_eq!(hashes(&h), n);
    }
    let r = b.password(&csrf, "a wrong guess").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(text(&r).contains(THROTTLED), "{}", text(&r));
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(hashes(&h), 3, "a throttled attempt runs no Argon2");
    // Per user, not per browser or address: another browser elsewhere is refused too…
    let mut other = Browser::from_ip(&h, "203.0.113.9");
    let (_, csrf2) = other.submit_upn("bobby@contoso.test").await;
    let r = other.password(&csrf2, "another guess").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(hashes(&h), 3);
    // …and another user from the first address is not.
    let mut b2 = Browser::from_ip(&h, "198.51.100.7");
    let (_, csrf3) = b2.submit_upn("ada@contoso.test").await;
    let r = b2.password(&csrf3, "a wrong guess").await;
    assert!(text(&r).contains(WRONG));
    assert_eq!(hashes(&h), 4);
    // Audited, without the password.
    let rows = audit::list(&h.state.pool).await.unwrap();
    let limited: Vec<_> = rows
        .iter()
        .filter(|r| r.event == "rate_limited" && r.outcome.starts_with("password_attempts"))
        .collect();
    // Two refusals, one line: the second is counted on the first (audit collapse).
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].repeats, 1);
    assert!(limited
        .iter()
        .all(|r| r.upn.as_deref() == Some("bobby@contoso.test") && r.outcome.contains("by=user")));
    assert!(!rows.iter().any(|r| r.outcome.contains("guess")));
}

#[tokio::test]
async fn the_attempt_after_the_burst_from_one_address_is_refused_without_hashing() {
    let h = harness_with_password_limits(PasswordLimits {
        user_burst: 1000,
        ip_burst: 3,
        ..Default::default()
    })
    .await;
    let mut csrfs = Vec::new();
    let mut browsers = Vec::new();
    for i in 0..4 {
        let upn = format!("user{i}@contoso.test");
        h.add_user(&upn, &[]).await;
        // One IPv6 /64: the same address as far as throttling goes.
        let mut b = Browser::from_ip(&h, &format!("2001:db8:1:2::{}", i + 1));
        let (_, csrf) = b.submit_upn(&upn).await;
        csrfs.push(csrf);
        browsers.push(b);
    }
    for (i, b) in browsers.iter_mut().enumerate().take(3) {
        let r = b.password(&csrfs[i], "a wrong guess").await;
        assert!(text(&r).contains(WRONG));
    }
    assert_eq!(hashes(&h), 3);
    let r = browsers[3].password(&csrfs[3], "a wrong guess").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(text(&r).contains(THROTTLED));
    assert_eq!(hashes(&h), 3, "a throttled attempt runs no Argon2");
    // The same user from another address is checked.
    let mut elsewhere = Browser::from_ip(&h, "2001:db8:1:3::1");
    let (_, csrf) = elsewhere.submit_upn("user3@contoso.test").await;
    let r = elsewhere.password(&csrf, "a wrong guess").await;
    assert!(text(&r).contains(WRONG));
    assert_eq!(hashes(&h), 4);
    let rows = audit::list(&h.state.pool).await.unwrap();
    assert!(rows.iter().any(|r| r.event == "rate_limited"
        && r.upn.as_deref() == Some("user3@contoso.test")
        && r.outcome.contains("by=client_address")));
}

// ---- item 5: the pre-sign-in session id does not follow the sign-in ----

/// The number on a wait page.
fn number_of(r: &Reply) -> String {
    let html = text(r);
    let at = html.find("id=\"number\"").expect("the number");
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    rest[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

#[tokio::test]
async fn the_session_id_from_before_the_upn_post_cannot_complete_the_sign_in() {
    let h = harness().await;
    let phone = h.ready_phone("bobby@contoso.test").await;
    let mut browser = Browser::new(&h);
    let r = browser.get("/signin").await;
    let before = browser.cookie.clone().expect("a cookie before the UPN");
    let before_csrf = csrf_of(&r);
    let r = browser
        .post(
            "/signin",
            &[("csrf", &before_csrf), ("upn", "bobby@contoso.test")],
        )
        .await;
    assert_eq!(r.headers["location"], "/signin/wait");
    let after = browser.cookie.clone().unwrap();
    assert_ne!(before, after, "a new session id once the UPN is submitted");
    let wait = browser.get("/signin/wait").await;
    let number = number_of(&wait);
    let csrf = csrf_of(&wait);
    // Someone holding the earlier id (a shared computer, a planted or logged cookie)…
    let mut other = Browser::new(&h);
    other.cookie = Some(before.clone());
    let r = other.get("/signin/wait").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "no number for the old id");
    // …waits for the user to approve on the phone…
    let p = phone.poll(&h, 0).await;
    let id = p.body["pushes"][0]["rid"].as_str().unwrap().to_owned();
    let f = phone.fetch(&h, &id).await.unwrap();
    let ok = phone.answer(
        &f,
        authenticator_protocol::sign_in::Decision::Approve,
        Some(&number),
    );
    assert_eq!(h.post(&respond_uri(&id), ok).await.status, StatusCode::OK);
    // …and cannot complete it, whichever CSRF token it sends.
    for token in [&before_csrf, &csrf] {
        other.cookie = Some(before.clone());
        let r = other.post("/signin/complete", &[("csrf", token)]).await;
        assert_ne!(
            r.headers.get("location").map(|l| l.to_str().unwrap()),
            Some("/me")
        );
        assert!(
            other.get("/me").await.status != StatusCode::OK,
            "not signed in"
        );
    }
    // The browser that submitted the UPN completes it.
    let r = browser.post("/signin/complete", &[("csrf", &csrf)]).await;
    assert_eq!(r.headers["location"], "/me");
    assert_eq!(browser.get("/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_session_id_from_before_the_password_post_cannot_complete_a_push_sign_in() {
    use signin_domain::rules::policy::{Mode, PolicyUpdate};
    let h = harness().await;
    let phone = h.ready_phone("bobby@contoso.test").await;
    passwords::set_password(&h.state.pool, "bobby@contoso.test", "bobby password 1")
        .await
        .unwrap();
    let push = PolicyUpdate {
        mode: Some(Mode::Push),
        ..Default::default()
    };
    signin_domain::accounts::set_policy(&h.state.pool, &push)
        .await
        .unwrap();
    let mut browser = Browser::new(&h);
    let r = browser.get("/signin").await;
    let first = browser.cookie.clone().unwrap();
    let first_csrf = csrf_of(&r);
    let (r, csrf) = browser.submit_upn("bobby@contoso.test").await;
    assert_eq!(r.headers["location"], "/signin/password");
    let before = browser.cookie.clone().unwrap();
    let r = browser.password(&csrf, "bobby password 1").await;
    assert_eq!(r.headers["location"], "/signin/wait");
    assert_ne!(
        browser.cookie.as_ref(),
        Some(&before),
        "a new id for the push"
    );
    let wait = browser.get("/signin/wait").await;
    let (number, wait_csrf) = (number_of(&wait), csrf_of(&wait));
    let p = phone.poll(&h, 0).await;
    let id = p.body["pushes"][0]["rid"].as_str().unwrap().to_owned();
    let f = phone.fetch(&h, &id).await.unwrap();
    let ok = phone.answer(
        &f,
        authenticator_protocol::sign_in::Decision::Approve,
        Some(&number),
    );
    assert_eq!(h.post(&respond_uri(&id), ok).await.status, StatusCode::OK);
    // Neither id from before the UPN nor from before the password completes it.
    let mut other = Browser::new(&h);
    for (cookie, token) in [
        (&first, &first_csrf),
        (&before, &csrf),
        (&first, &wait_csrf),
        (&before, &wait_csrf),
    ] {
        other.cookie = Some(cookie.clone());
        let r = other.post("/signin/complete", &[("csrf", token)]).await;
        assert_ne!(
            r.headers.get("location").map(|l| l.to_str().unwrap()),
            Some("/me")
        );
    }
    let r = browser
        .post("/signin/complete", &[("csrf", &wait_csrf)])
        .await;
    assert_eq!(r.headers["location"], "/me");
}

// ---- shared helpers for the review items below ----

use serde_json::json;
use signin_domain::accounts;
use signin_domain::rules::policy::{Mode, PolicyUpdate, Target};
use signin_domain::store;

const PASSWORD: &str = "a long password 1";

async fn set_policy(h: &Harness, mode: Mode, target: Target) {
    accounts::set_policy(
        &h.state.pool,
        &PolicyUpdate {
            mode: Some(mode),
            target: Some(target),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

/// A user without any phone, with a password.
async fn user_with_password(h: &Harness, upn: &str, groups: &[&str]) {
    h.add_user(upn, groups).await;
    passwords::set_password(&h.state.pool, upn, PASSWORD)
        .await
        .unwrap();
}

/// How many stored sessions are signed in (have a user).
async fn signed_in_sessions(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM web_sessions WHERE upn IS NOT NULL")
        .fetch_one(&h.state.pool)
        .await
        .unwrap()
}

fn location(r: &Reply) -> Option<&str> {
    r.headers.get("location").map(|l| l.to_str().unwrap())
}

impl Browser<'_> {
    /// UPN, then the password: the reply to the password post.
    async fn sign_in_with_password(&mut self, upn: &str, password: &str) -> Reply {
        let (r, csrf) = self.submit_upn(upn).await;
        assert_eq!(location(&r), Some("/signin/password"));
        self.password(&csrf, password).await
    }

    /// Whether this browser is signed in: `/me` answers, and security info (where a phone is
    /// registered) too.
    async fn is_signed_in(&mut self) -> bool {
        let me = self.get("/me").await;
        let info = self.get("/me/security-info").await;
        assert_eq!(me.status, info.status);
        match me.status {
            StatusCode::OK => true,
            StatusCode::SEE_OTHER => {
                assert_eq!(location(&me), Some("/signin"));
                assert_eq!(location(&info), Some("/signin"));
                false
            }
            other => panic!("/me answered {other}"),
        }
    }
}

async fn audit_rows(h: &Harness, event: &str, upn: &str) -> Vec<signin_domain::audit::Row> {
    audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == event && r.upn.as_deref() == Some(upn))
        .collect()
}

// ---- review item 4: MFA fails closed ----

const REQUIRES_APP: &str = "requires the Authenticator app";

#[tokio::test]
async fn in_modes_push_and_passwordless_a_correct_password_alone_never_signs_in_a_user_without_a_phone(
) {
    for mode in [Mode::Push, Mode::Passwordless] {
        let h = harness().await;
        user_with_password(&h, "nophone@contoso.test", &["pilot"]).await;
        user_with_password(&h, "outside@contoso.test", &[]).await;
        // The policy targets the user (through their group).
        set_policy(&h, mode, Target::Group("pilot".into())).await;

        let mut b = Browser::new(&h);
        let r = b
            .sign_in_with_password("nophone@contoso.test", PASSWORD)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{mode:?}");
        assert_eq!(location(&r), None, "{mode:?}: no redirect to /me");
        assert!(text(&r).contains(REQUIRES_APP), "{mode:?}: {}", text(&r));
        assert_eq!(signed_in_sessions(&h).await, 0, "{mode:?}: no session");
        assert!(!b.is_signed_in().await, "{mode:?}");
        // And so no registration link: the stolen password does not become a phone.
        let page = b.get("/signin/password").await;
        let csrf = csrf_of(&page);
        let r = b
            .post("/me/security-info/authenticator", &[("csrf", &csrf)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{mode:?}");
        assert_eq!(location(&r), Some("/signin"));
        assert!(!text(&r).contains("phonesignin://"));
        assert!(
            audit_rows(&h, "registration_link_issued", "nophone@contoso.test")
                .await
                .is_empty(),
            "{mode:?}"
        );
        let refused = audit_rows(&h, "web_signin", "nophone@contoso.test").await;
        assert_eq!(refused.len(), 1, "{mode:?}");
        assert_eq!(refused[0].outcome, "password_alone_refused");

        // The same password flow signs in a user the policy does not target: the refusal
        // above is the policy's, not a broken password check.
        let mut other = Browser::new(&h);
        let r = other
            .sign_in_with_password("outside@contoso.test", PASSWORD)
            .await;
        assert_eq!(location(&r), Some("/me"), "{mode:?}");
        assert!(other.is_signed_in().await);
        assert_eq!(signed_in_sessions(&h).await, 1);
    }
}

#[tokio::test]
async fn in_mode_any_a_user_without_phone_sign_in_signs_in_with_the_password_and_can_register_a_phone(
) {
    let h = harness().await;
    user_with_password(&h, "newbie@contoso.test", &[]).await;
    set_policy(&h, Mode::Any, Target::All).await;
    let mut b = Browser::new(&h);
    let r = b
        .sign_in_with_password("newbie@contoso.test", PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), Some("/me"));
    assert!(b.is_signed_in().await);
    let info = b.get("/me/security-info").await;
    let r = b
        .post(
            "/me/security-info/authenticator",
            &[("csrf", &csrf_of(&info))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        text(&r).contains("id=\"registration-link\""),
        "{}",
        text(&r)
    );
    assert!(text(&r).contains("phonesignin://enroll"));
    assert_eq!(
        audit_rows(&h, "web_signin", "newbie@contoso.test").await[0].outcome,
        "password"
    );
}

// ---- review item 4: temporary access passes ----

/// `GET /signin/pass` after the UPN: the pass page's CSRF token.
async fn open_pass_page(b: &mut Browser<'_>, upn: &str) -> String {
    let (r, _) = b.submit_upn(upn).await;
    assert_eq!(location(&r), Some("/signin/password"));
    let page = b.get("/signin/pass").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(text(&page).contains("Temporary access pass"));
    csrf_of(&page)
}

async fn submit_pass(b: &mut Browser<'_>, upn: &str, pass: &str) -> Reply {
    let csrf = open_pass_page(b, upn).await;
    b.post("/signin/pass", &[("csrf", &csrf), ("pass", pass)])
        .await
}

const PASS_REFUSED: &str = "This pass is not valid";

#[tokio::test]
async fn a_temporary_access_pass_signs_in_once_to_register_a_phone_and_is_audited_without_its_text()
{
    let h = harness().await;
    // Mode push: a password alone is refused (see above), the pass is the way in.
    user_with_password(&h, "newbie@contoso.test", &[]).await;
    set_policy(&h, Mode::Push, Target::All).await;
    let pass = accounts::temporary_pass::issue(&h.state.pool, "newbie@contoso.test", 600)
        .await
        .unwrap();

    // Without a UPN first, the pass page sends the browser to the sign-in page.
    let mut nobody = Browser::new(&h);
    let r = nobody.get("/signin/pass").await;
    assert_eq!(location(&r), Some("/signin"));

    let mut b = Browser::new(&h);
    let r = submit_pass(&mut b, "newbie@contoso.test", &pass).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", text(&r));
    assert_eq!(location(&r), Some("/me/security-info"));
    assert!(b.is_signed_in().await);
    let info = b.get("/me/security-info").await;
    let r = b
        .post(
            "/me/security-info/authenticator",
            &[("csrf", &csrf_of(&info))],
        )
        .await;
    assert!(text(&r).contains("phonesignin://enroll"), "{}", text(&r));

    // The same pass again, from another browser: refused, not signed in.
    let mut again = Browser::new(&h);
    let r = submit_pass(&mut again, "newbie@contoso.test", &pass).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(text(&r).contains(PASS_REFUSED), "{}", text(&r));
    assert!(!again.is_signed_in().await);
    assert_eq!(signed_in_sessions(&h).await, 1);

    // Issue and both uses are audited; the pass itself is nowhere in the audit log.
    let issued = audit_rows(&h, "temporary_pass_issued", "newbie@contoso.test").await;
    assert_eq!(issued.len(), 1);
    let used: Vec<String> = audit_rows(&h, "temporary_pass_used", "newbie@contoso.test")
        .await
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(used, ["ok", "refused"]);
    assert!(audit_rows(&h, "web_signin", "newbie@contoso.test")
        .await
        .iter()
        .any(|r| r.outcome == "temporary_pass"));
    for row in audit::list(&h.state.pool).await.unwrap() {
        let line = format!("{row} {row:?}");
        assert!(!line.contains(&pass), "{line}");
    }
    // Only its hash is stored.
    let stored: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM temporary_passes")
        .fetch_all(&h.state.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], pass);
}

#[tokio::test]
async fn an_expired_pass_and_another_users_pass_are_refused() {
    let h = harness().await;
    user_with_password(&h, "newbie@contoso.test", &[]).await;
    user_with_password(&h, "other@contoso.test", &[]).await;
    set_policy(&h, Mode::Push, Target::All).await;

    // An expired pass (stored as `issue` stores one, with its expiry passed).
    let expired = "AAECAwQFBgcICQoLDA0ODw";
    let now = store::now_ms();
    store::passes::insert(
        &h.state.pool,
        &accounts::code_hash(expired),
        "newbie@contoso.test",
        now - 60_000,
        now - 1,
    )
    .await
    .unwrap();
    let mut b = Browser::new(&h);
    let r = submit_pass(&mut b, "newbie@contoso.test", expired).await;
    assert!(text(&r).contains(PASS_REFUSED), "{}", text(&r));
    assert!(!b.is_signed_in().await);

    // The other user's pass does not sign this user in…
    let theirs = accounts::temporary_pass::issue(&h.state.pool, "other@contoso.test", 600)
        .await
        .unwrap();
    let mut b = Browser::new(&h);
    let r = submit_pass(&mut b, "newbie@contoso.test", &theirs).await;
    assert!(text(&r).contains(PASS_REFUSED), "{}", text(&r));
    assert!(!b.is_signed_in().await);
    assert_eq!(signed_in_sessions(&h).await, 0);
    // …and was not used up by the attempt: its user still signs in with it.
    let mut owner = Browser::new(&h);
    let r = submit_pass(&mut owner, "other@contoso.test", &theirs).await;
    assert_eq!(location(&r), Some("/me/security-info"));
    assert!(owner.is_signed_in().await);
    let used: Vec<String> = audit_rows(&h, "temporary_pass_used", "newbie@contoso.test")
        .await
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(used, ["refused"], "two refusals, collapsed into one line");
    assert_eq!(
        audit_rows(&h, "temporary_pass_used", "newbie@contoso.test").await[0].repeats,
        1
    );
}

// ---- review (Low): no stored session before the first post; the table is capped ----

#[tokio::test]
async fn cookieless_visits_to_the_sign_in_page_store_no_session_and_the_first_post_stores_one() {
    let h = harness().await;
    let pool = &h.state.pool;
    let before = store::sessions::count(pool).await.unwrap();
    for _ in 0..50 {
        let mut b = Browser::new(&h);
        let r = b.get("/signin").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(b.cookie.is_some(), "a cookie for the CSRF token");
    }
    assert_eq!(store::sessions::count(pool).await.unwrap(), before);
    // A browser that comes back with its cookie does not store one either…
    let mut b = Browser::new(&h);
    let first = b.get("/signin").await;
    let again = b.get("/signin").await;
    assert_eq!(csrf_of(&first), csrf_of(&again), "the same session");
    assert_eq!(store::sessions::count(pool).await.unwrap(), before);
    // …until its first form post, which stores exactly one.
    let r = b
        .post(
            "/signin",
            &[("csrf", &csrf_of(&again)), ("upn", "nobody@contoso.test")],
        )
        .await;
    assert_eq!(location(&r), Some("/signin/password"));
    assert_eq!(store::sessions::count(pool).await.unwrap(), before + 1);
    // The password page is then served from the stored session.
    assert_eq!(b.get("/signin/password").await.status, StatusCode::OK);
    assert_eq!(store::sessions::count(pool).await.unwrap(), before + 1);
}

fn session_row(upn: Option<&str>) -> store::sessions::SessionRow {
    store::sessions::SessionRow {
        upn: upn.map(str::to_owned),
        pending_upn: Some("someone@contoso.test".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn capping_anonymous_sessions_drops_the_oldest_anonymous_ones_and_never_a_signed_in_one() {
    let h = harness().await;
    let pool = &h.state.pool;
    let start = store::now_ms();
    let hour = 3_600_000;
    // Signed-in sessions first (the oldest of all), then ten anonymous ones.
    for i in 0..3 {
        let at = start + i;
        store::sessions::insert(
            pool,
            &format!("signed-in-{i}"),
            &session_row(Some("ada@contoso.test")),
            at,
            at + hour,
        )
        .await
        .unwrap();
    }
    for i in 0..10 {
        let at = start + 10 + i;
        store::sessions::insert(
            pool,
            &format!("anonymous-{i}"),
            &session_row(None),
            at,
            at + hour,
        )
        .await
        .unwrap();
    }
    assert_eq!(store::sessions::count(pool).await.unwrap(), 13);
    store::sessions::cap_anonymous(pool, 4).await.unwrap();
    assert_eq!(store::sessions::count(pool).await.unwrap(), 3 + 4);
    let found = |id: String| async move {
        store::sessions::find(pool, &id, start)
            .await
            .unwrap()
            .is_some()
    };
    for i in 0..10 {
        assert_eq!(
            found(format!("anonymous-{i}")).await,
            i >= 6,
            "anonymous-{i}: only the newest four stay"
        );
    }
    for i in 0..3 {
        assert!(found(format!("signed-in-{i}")).await);
    }
    // Even with room for none, signed-in sessions stay.
    store::sessions::cap_anonymous(pool, 0).await.unwrap();
    assert_eq!(store::sessions::count(pool).await.unwrap(), 3);
    // Under the cap, nothing is dropped.
    store::sessions::cap_anonymous(pool, 10).await.unwrap();
    assert_eq!(store::sessions::count(pool).await.unwrap(), 3);
}

#[tokio::test]
async fn the_first_post_of_a_new_browser_keeps_the_anonymous_sessions_at_the_cap() {
    let h = harness().await;
    let pool = &h.state.pool;
    let max = store::sessions::MAX_ANONYMOUS_SESSIONS;
    let now = store::now_ms();
    // The table full of anonymous sessions (the oldest is `anon-1`), and one signed-in
    // session older than all of them.
    sqlx::query(
        "INSERT INTO web_sessions (id_hash, upn, pending_upn, pending_request, pending_kind, \
         resends, created_at, expires_at) \
         VALUES ('signed-in', 'ada@contoso.test', NULL, NULL, NULL, 0, $1, $2)",
    )
    .bind(now - 10 * max)
    .bind(now + 3_600_000)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "INSERT INTO web_sessions (id_hash, upn, pending_upn, pending_request, pending_kind, \
         resends, created_at, expires_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {max}) \
         SELECT 'anon-' || i, NULL, NULL, NULL, NULL, 0, $1 + i, $2 FROM n"
    ))
    .bind(now - 2 * max)
    .bind(now + 3_600_000)
    .execute(pool)
    .await
    .unwrap();
    let anonymous = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM web_sessions WHERE upn IS NULL")
            .fetch_one(pool)
            .await
            .unwrap()
    };
    assert_eq!(anonymous().await, max);
    let mut b = Browser::new(&h);
    let r = b.get("/signin").await;
    let r = b
        .post(
            "/signin",
            &[("csrf", &csrf_of(&r)), ("upn", "nobody@contoso.test")],
        )
        .await;
    assert_eq!(location(&r), Some("/signin/password"));
    assert_eq!(b.get("/signin/password").await.status, StatusCode::OK);
    assert_eq!(anonymous().await, max, "bounded");
    assert_eq!(store::sessions::count(pool).await.unwrap(), max + 1);
    assert!(store::sessions::find(pool, "anon-1", now)
        .await
        .unwrap()
        .is_none());
    assert!(store::sessions::find(pool, "signed-in", now)
        .await
        .unwrap()
        .is_some());
}

// ---- review (Low): the audit page filters and pages ----

/// The cells of each row of the audit table (`#`, time, event, actor, user, device,
/// request, outcome), as HTML text; none when the page says there are no entries.
fn audit_table(r: &Reply) -> Vec<Vec<String>> {
    let html = text(r);
    let Some(at) = html.find(" id=\"audit\"") else {
        return Vec::new();
    };
    let body = &html[at..];
    let body = &body[body.find("<tbody>").unwrap() + 7..body.find("</tbody>").unwrap()];
    body.split("<tr>")
        .filter(|row| !row.trim().is_empty())
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let cell = &cell[cell.find('>').unwrap() + 1..];
                    cell.split("</td>").next().unwrap().to_owned()
                })
                .collect()
        })
        .collect()
}

/// The href of the link `id` ("older" or "newer" entries), if the page has one.
fn page_link(r: &Reply, id: &str) -> Option<String> {
    let html = text(r);
    let marker = format!("id=\"{id}\" href=\"");
    let at = html.find(&marker)? + marker.len();
    Some(html[at..].split('"').next().unwrap().replace("&amp;", "&"))
}

fn older_link(r: &Reply) -> Option<String> {
    page_link(r, "older")
}

fn seqs(rows: &[Vec<String>]) -> Vec<i64> {
    rows.iter().map(|r| r[0].parse().unwrap()).collect()
}

async fn append_at(h: &Harness, at: i64, event: &str, upn: &str, outcome: &str) {
    store::audit::append(
        &h.state.pool,
        store::audit::NewAuditRow {
            at,
            event,
            upn: Some(upn),
            account_id: None,
            request_id: None,
            outcome,
            actor: "system",
        },
    )
    .await
    .unwrap();
}

fn day(d: &str) -> i64 {
    signin_server::web::admin::parse_time(d).unwrap()
}

/// An administrator signed in with a temporary access pass (mode `any`, no phone): the
/// console refuses a password alone.
async fn admin_browser(h: &Harness) -> Browser<'_> {
    user_with_password(h, "ada@contoso.test", &["admins"]).await;
    pass_browser(h, "ada@contoso.test").await
}

/// `upn` signed in with a temporary access pass issued for them.
async fn pass_browser<'h>(h: &'h Harness, upn: &str) -> Browser<'h> {
    let pass = accounts::temporary_pass::issue(&h.state.pool, upn, 600)
        .await
        .unwrap();
    let mut b = Browser::new(h);
    let r = submit_pass(&mut b, upn, &pass).await;
    assert_eq!(location(&r), Some("/me/security-info"), "{}", text(&r));
    b
}

const ADMIN_PAGES: [&str; 6] = [
    "/admin/policy",
    "/admin/users",
    "/admin/groups",
    "/admin/audit",
    "/admin/apps",
    "/admin/devices",
];

#[tokio::test]
async fn an_admin_signed_in_with_a_password_alone_reaches_only_security_info_not_the_console() {
    let h = harness().await;
    user_with_password(&h, "ada@contoso.test", &["admins"]).await;
    let mut ada = Browser::new(&h);
    let r = ada
        .sign_in_with_password("ada@contoso.test", PASSWORD)
        .await;
    assert_eq!(location(&r), Some("/me"));
    for path in ADMIN_PAGES {
        let r = ada.get(path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(text(&r).contains("id=\"console-needs-phone\""), "{path}");
        assert!(text(&r).contains("href=\"/me/security-info\""), "{path}");
    }
    // Nor may it post to one: the user list stays as it was.
    let info = ada.get("/me/security-info").await;
    assert_eq!(info.status, StatusCode::OK);
    let csrf = csrf_of(&info);
    let r = ada
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("upn", "mallory@contoso.test"),
                ("name", "M"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!store::users::exists(&h.state.pool, "mallory@contoso.test")
        .await
        .unwrap());
    // The same administrator with a temporary access pass (or a phone) gets the console.
    let mut strong = pass_browser(&h, "ada@contoso.test").await;
    for path in ADMIN_PAGES {
        assert_eq!(strong.get(path).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn an_admin_signed_in_with_the_phone_gets_the_console() {
    let h = harness().await;
    let phone = h.ready_phone("ada@contoso.test").await;
    accounts::add_group_member(&h.state.pool, "admins", "ada@contoso.test")
        .await
        .unwrap();
    let mut ada = Browser::new(&h);
    phone_sign_in(&mut ada, &h, &phone, "ada@contoso.test").await;
    for path in ADMIN_PAGES {
        assert_eq!(ada.get(path).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn the_audit_page_exports_what_its_filters_select_as_csv_or_json_for_admins_only() {
    let h = harness().await;
    let mut admin = admin_browser(&h).await;
    append_at(
        &h,
        day("2026-01-02"),
        "rate_limited",
        "bobby@contoso.test",
        "one",
    )
    .await;
    append_at(
        &h,
        day("2026-01-03"),
        "rate_limited",
        "=x@contoso.test",
        "two",
    )
    .await;
    append_at(
        &h,
        day("2026-01-04"),
        "web_signin",
        "bobby@contoso.test",
        "password",
    )
    .await;

    let r = admin
        .get("/admin/audit/export?format=csv&upn=bobby&event=rate_limited")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type.as_deref(), Some("text/csv; charset=utf-8"));
    assert_eq!(
        r.headers["content-disposition"],
        "attachment; filename=\"audit.csv\""
    );
    let csv = r.body.as_str().unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "seq,at,event,actor,upn,account_id,request_id,outcome,repeats,last_at"
    );
    assert_eq!(lines.len(), 2, "only Bobby's rate_limited entry: {csv}");
    assert!(lines[1].contains(",rate_limited,system,bobby@contoso.test,,,one,0,"));
    // A name that would start a spreadsheet formula is defused.
    let r = admin
        .get("/admin/audit/export?format=csv&event=rate_limited")
        .await;
    assert!(r.body.as_str().unwrap().contains(",'=x@contoso.test,"));

    let r = admin.get("/admin/audit/export?format=json&upn=bobby").await;
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let outcomes: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["password", "one"], "newest first");

    assert_eq!(
        admin.get("/admin/audit/export?format=xml").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        admin
            .get("/admin/audit/export?format=csv&event=nope")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let mut eve = Browser::new(&h);
    user_with_password(&h, "eve@contoso.test", &[]).await;
    eve.sign_in_with_password("eve@contoso.test", PASSWORD)
        .await;
    assert_eq!(
        eve.get("/admin/audit/export?format=csv").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_audit_page_filters_by_user_event_and_time() {
    let h = harness().await;
    let mut admin = admin_browser(&h).await;
    let (jan1, jan2, jan3) = (day("2026-01-01"), day("2026-01-02"), day("2026-01-03"));
    for (at, event, upn, outcome) in [
        (
            jan1 + 1000,
            "rate_limited",
            "bobby@contoso.test",
            "blocked one",
        ),
        (
            jan2 + 1000,
            "rate_limited",
            "bobby@contoso.test",
            "blocked two",
        ),
        (jan2 + 2000, "web_signin", "bobby@contoso.test", "password"),
        (
            jan2 + 3000,
            "rate_limited",
            "eve@contoso.test",
            "blocked three",
        ),
        (
            jan3 + 1000,
            "rate_limited",
            "bobby@contoso.test",
            "blocked four",
        ),
    ] {
        append_at(&h, at, event, upn, outcome).await;
    }
    let outcomes =
        |r: &Reply| -> Vec<String> { audit_table(r).iter().map(|c| c[7].clone()).collect() };

    // A part of the name, in any case.
    let r = admin.get("/admin/audit?upn=BOBBY").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        outcomes(&r),
        ["blocked four", "password", "blocked two", "blocked one"],
        "the user's entries, newest first"
    );
    assert!(audit_table(&r).iter().all(|c| c[4] == "bobby@contoso.test"));

    let r = admin.get("/admin/audit?event=rate_limited").await;
    let rows = audit_table(&r);
    assert!(rows.iter().all(|c| c[2] == "rate_limited"));
    assert_eq!(rows.len(), 4);

    let r = admin
        .get("/admin/audit?upn=bobby%40contoso.test&event=rate_limited&since=2026-01-02&until=2026-01-03")
        .await;
    assert_eq!(outcomes(&r), ["blocked two"]);
    // RFC 3339 times work too (`since` inclusive, `until` exclusive).
    let r = admin
        .get("/admin/audit?since=2026-01-02T00%3A00%3A02Z&until=2026-01-02T00%3A00%3A03Z")
        .await;
    assert_eq!(outcomes(&r), ["password"]);
    // The form shows the filters it applied.
    assert!(text(&r).contains("value=\"2026-01-02T00:00:02Z\""));
    // The event comes from a list; a name not on it is said so.
    let r = admin.get("/admin/audit").await;
    assert!(text(&r).contains("<option value=\"rate_limited\">rate_limited</option>"));
    let r = admin.get("/admin/audit?event=rate_limit").await;
    assert!(text(&r).contains("Choose an event from the list."));
    assert!(audit_table(&r).is_empty());
    // Nothing matches: said so, not an empty table.
    let r = admin.get("/admin/audit?upn=nobody-here").await;
    assert!(text(&r).contains("id=\"no-entries\""), "{}", text(&r));
    assert!(!text(&r).contains("id=\"audit\""));
    // The outcome text, and the actor, by a part.
    let r = admin.get("/admin/audit?text=THREE").await;
    assert_eq!(outcomes(&r), ["blocked three"]);
    let r = admin.get("/admin/audit?actor=system&upn=eve").await;
    assert_eq!(outcomes(&r), ["blocked three"]);

    // A time that does not parse is said so, and lists nothing.
    let r = admin.get("/admin/audit?since=yesterday").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        text(&r).contains("Times are YYYY-MM-DD or RFC 3339"),
        "{}",
        text(&r)
    );
    assert!(audit_table(&r).is_empty());

    // Not for non-admins.
    user_with_password(&h, "bobby@contoso.test", &[]).await;
    let mut bobby = Browser::new(&h);
    bobby
        .sign_in_with_password("bobby@contoso.test", PASSWORD)
        .await;
    assert_eq!(
        bobby
            .get("/admin/audit?upn=eve%40contoso.test")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_audit_page_shows_50_entries_and_links_to_older_and_newer_ones_with_the_same_filters() {
    let h = harness().await;
    let mut admin = admin_browser(&h).await;
    let page_rows = usize::try_from(signin_server::web::admin::AUDIT_PAGE_ROWS).unwrap();
    let noisy = "noisy@contoso.test";
    let start = store::now_ms() - 3_600_000;
    // More than a page of one user's entries (distinct, so none collapse), with another
    // user's entries in between.
    for i in 0..(page_rows + 20) {
        let at = start + i64::try_from(i).unwrap();
        append_at(&h, at, "rate_limited", noisy, &format!("refusal {i}")).await;
        if i % 100 == 0 {
            append_at(
                &h,
                at,
                "web_signin",
                "quiet@contoso.test",
                &format!("ok {i}"),
            )
            .await;
        }
    }
    assert_eq!(page_rows, 50);
    let first = admin.get("/admin/audit?upn=noisy%40contoso.test").await;
    assert_eq!(page_link(&first, "newer"), None, "the newest page");
    let rows = audit_table(&first);
    assert_eq!(rows.len(), page_rows);
    assert!(rows.iter().all(|c| c[4] == noisy));
    assert_eq!(
        rows[0][7],
        format!("refusal {}", page_rows + 19),
        "newest first"
    );
    let next = older_link(&first).expect("a link to older entries");
    assert!(next.contains("upn=noisy%40contoso.test"), "{next}");
    assert!(next.contains(&format!("before={}", seqs(&rows).last().unwrap())));

    let second = admin.get(&next).await;
    let older = audit_table(&second);
    assert_eq!(older.len(), 20);
    assert!(older.iter().all(|c| c[4] == noisy), "the filter is kept");
    assert_eq!(older.last().unwrap()[7], "refusal 0");
    assert_eq!(older_link(&second), None, "the last page");
    // Together: every entry of the user once, in order.
    let mut all = seqs(&rows);
    all.extend(seqs(&older));
    assert!(all.windows(2).all(|w| w[0] > w[1]));
    assert_eq!(all.len(), page_rows + 20);
    // "Newer entries" from the last page is the first page again, with the filter.
    let back = page_link(&second, "newer").expect("a link to newer entries");
    assert!(back.contains("upn=noisy%40contoso.test"), "{back}");
    let again = admin.get(&back).await;
    assert_eq!(seqs(&audit_table(&again)), seqs(&rows));
    assert_eq!(page_link(&again, "newer"), None);
    assert_eq!(older_link(&again), Some(next));

    // Unfiltered, the first page is the newest 50 of everything.
    let r = admin.get("/admin/audit").await;
    assert_eq!(audit_table(&r).len(), page_rows);
    assert!(older_link(&r).unwrap().starts_with("/admin/audit?before="));
}

// ---- review item 7: enumeration and targeted lock-out on the pages ----

/// `r`'s page with the UPN and the CSRF token taken out.
fn normalized(r: &Reply, upn: &str, csrf: &str) -> String {
    text(r).replace(upn, "<UPN>").replace(csrf, "<CSRF>")
}

#[tokio::test]
async fn an_unknown_upn_and_a_known_upn_without_a_phone_get_the_same_pages_in_every_mode() {
    let h = harness().await;
    user_with_password(&h, "known@contoso.test", &[]).await;
    for mode in [Mode::Any, Mode::Push, Mode::Passwordless] {
        set_policy(&h, mode, Target::All).await;
        let mut seen = Vec::new();
        for upn in ["known@contoso.test", "unknown@contoso.test"] {
            let mut b = Browser::new(&h);
            let form = b.get("/signin").await;
            let csrf = csrf_of(&form);
            let submitted = b.post("/signin", &[("csrf", &csrf), ("upn", upn)]).await;
            let page = b.get("/signin/password").await;
            let csrf = csrf_of(&page);
            let hashes_before = hashes(&h);
            let wrong = b.password(&csrf, "a wrong guess").await;
            let hashed = hashes(&h) - hashes_before;
            assert!(text(&wrong).contains(WRONG), "{mode:?} {upn}");
            seen.push((
                submitted.status,
                location(&submitted).map(str::to_owned),
                submitted.headers.contains_key("set-cookie"),
                page.status,
                normalized(&page, upn, &csrf),
                wrong.status,
                normalized(&wrong, upn, &csrf),
                // The same work (one Argon2 hash each), so no timing difference either.
                hashed,
            ));
        }
        assert_eq!(seen[0], seen[1], "{mode:?}");
        assert_eq!(seen[0].1.as_deref(), Some("/signin/password"));
        assert_eq!(seen[0].7, 1);
    }
}

const START_LIMITED: &str = "Too many sign-in attempts";

/// `POST /signin` with `upn` from a new browser at `ip`: where it leads.
async fn portal_start(h: &Harness, ip: &str, upn: &str) -> Reply {
    let mut b = Browser::from_ip(h, ip);
    let r = b.get("/signin").await;
    b.post("/signin", &[("csrf", &csrf_of(&r)), ("upn", upn)])
        .await
}

#[tokio::test]
async fn a_rate_limited_portal_start_from_one_address_limits_neither_another_address_nor_a_registered_application(
) {
    let h = harness_with_state(90, |s| {
        s.with_risk(signin_domain::rules::risk::RiskConfig {
            burst: 2,
            ..Default::default()
        })
    })
    .await;
    let phone = h.ready_phone("bobby@contoso.test").await;
    let upn = "bobby@contoso.test";
    // Someone at address A who knows the UPN uses up the allowance of (user, portal, A).
    for _ in 0..2 {
        let r = portal_start(&h, "198.51.100.7", upn).await;
        assert_eq!(location(&r), Some("/signin/wait"));
    }
    let r = portal_start(&h, "198.51.100.7", upn).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(location(&r), None);
    assert!(text(&r).contains(START_LIMITED), "{}", text(&r));
    assert!(audit_rows(&h, "rate_limited", upn)
        .await
        .iter()
        .any(|r| r.outcome.starts_with("cooldown_started")));

    // The user, at address B, still signs in from the pages…
    let mut user = Browser::from_ip(&h, "203.0.113.9");
    let (r, _) = user.submit_upn(upn).await;
    assert_eq!(location(&r), Some("/signin/wait"));
    let wait = user.get("/signin/wait").await;
    let (number, csrf) = (number_of(&wait), csrf_of(&wait));
    let signin = text(&wait)
        .split("data-request-id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    // …and a registered application can start one for the same user.
    let api = h.start_signin(upn).await;
    assert_eq!(api.status, StatusCode::OK, "{:?}", api.body);

    // The user's own sign-in was not cancelled by any of that: it completes.
    let f = phone.fetch(&h, &signin).await.unwrap();
    let ok = phone.answer(
        &f,
        authenticator_protocol::sign_in::Decision::Approve,
        Some(&number),
    );
    assert_eq!(
        h.post(&respond_uri(&signin), ok).await.status,
        StatusCode::OK
    );
    let r = user.post("/signin/complete", &[("csrf", &csrf)]).await;
    assert_eq!(location(&r), Some("/me"));

    // Address A stays limited for this user; the same address for another user does not.
    let r = portal_start(&h, "198.51.100.7", upn).await;
    assert!(text(&r).contains(START_LIMITED));
    h.ready_phone("ada@contoso.test").await;
    let r = portal_start(&h, "198.51.100.7", "ada@contoso.test").await;
    assert_eq!(location(&r), Some("/signin/wait"));
}

#[tokio::test]
async fn a_rate_limited_registered_application_does_not_limit_the_portal_or_another_application() {
    let h = harness_with_state(90, |s| {
        s.with_risk(signin_domain::rules::risk::RiskConfig {
            burst: 2,
            ..Default::default()
        })
    })
    .await;
    let _phone = h.ready_phone("bobby@contoso.test").await;
    let upn = "bobby@contoso.test";
    for _ in 0..2 {
        assert_eq!(h.start_signin(upn).await.status, StatusCode::OK);
    }
    let r = h.start_signin(upn).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let r = portal_start(&h, "203.0.113.9", upn).await;
    assert_eq!(location(&r), Some("/signin/wait"));
    let other = accounts::applications::add(&h.state.pool, "Other app")
        .await
        .unwrap();
    let r = h
        .send(
            Request::post("/api/v1/signin")
                .header("content-type", "application/json")
                .header(
                    "authorization",
                    basic_auth(&other.client_id, &other.client_secret),
                )
                .body(Body::from(json!({ "upn": upn }).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

// ---- review item 5: a sign-in reaches every phone; any one of them completes it ----

/// The request id the wait page polls (`data-request-id`).
fn waited_id(r: &Reply) -> String {
    text(r)
        .split("data-request-id=\"")
        .nth(1)
        .expect("a wait page")
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// A second phone for `upn`, with phone sign-in, enrolled after the first.
async fn second_phone(h: &Harness, upn: &str) -> Phone {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut b = Phone::new();
    b.enroll(h, &h.link(upn, 600).await).await;
    assert_eq!(
        b.enable_passwordless(h).await.status,
        StatusCode::NO_CONTENT
    );
    b
}

/// `phone`'s one pending request.
async fn pending_on(h: &Harness, phone: &Phone) -> String {
    let p = phone.poll(h, 0).await;
    let pushes = p.body["pushes"].as_array().unwrap();
    assert_eq!(pushes.len(), 1, "{:?}", p.body);
    pushes[0]["rid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_sign_in_approved_on_the_users_second_phone_signs_the_browser_in() {
    let h = harness().await;
    let upn = "bobby@contoso.test";
    let _a = h.ready_phone(upn).await;
    let b = second_phone(&h, upn).await;
    let mut browser = Browser::new(&h);
    let (r, _) = browser.submit_upn(upn).await;
    assert_eq!(location(&r), Some("/signin/wait"));
    let wait = browser.get("/signin/wait").await;
    let (number, csrf, signin) = (number_of(&wait), csrf_of(&wait), waited_id(&wait));
    // The second phone (not the one whose request names the sign-in) approves.
    let on_b = pending_on(&h, &b).await;
    assert_ne!(on_b, signin);
    let f = b.fetch(&h, &on_b).await.unwrap();
    let ok = b.answer(
        &f,
        authenticator_protocol::sign_in::Decision::Approve,
        Some(&number),
    );
    assert_eq!(h.post(&respond_uri(&on_b), ok).await.status, StatusCode::OK);
    // What the page's script polls says approved…
    let wait = browser.get("/signin/wait").await;
    let polled = h
        .get(&format!("/api/v1/signin/{}", waited_id(&wait)), None)
        .await;
    assert_eq!(polled.body["status"], "approved", "{:?}", polled.body);
    // …and the browser is signed in, once.
    let r = browser.post("/signin/complete", &[("csrf", &csrf)]).await;
    assert_eq!(location(&r), Some("/me"), "{}", text(&r));
    assert!(browser.is_signed_in().await);
}

#[tokio::test]
async fn a_sign_in_completes_on_the_remaining_phone_after_the_first_phone_is_removed() {
    let h = harness().await;
    let upn = "bobby@contoso.test";
    let a = h.ready_phone(upn).await;
    let b = second_phone(&h, upn).await;
    let mut browser = Browser::new(&h);
    browser.submit_upn(upn).await;
    let wait = browser.get("/signin/wait").await;
    let (number, csrf, signin) = (number_of(&wait), csrf_of(&wait), waited_id(&wait));
    assert_eq!(
        pending_on(&h, &a).await,
        signin,
        "the first phone's request names it"
    );
    accounts::devices::remove(&h.state.pool, a.account().as_str())
        .await
        .unwrap();
    let on_b = pending_on(&h, &b).await;
    let f = b.fetch(&h, &on_b).await.unwrap();
    let ok = b.answer(
        &f,
        authenticator_protocol::sign_in::Decision::Approve,
        Some(&number),
    );
    assert_eq!(h.post(&respond_uri(&on_b), ok).await.status, StatusCode::OK);
    let wait = browser.get("/signin/wait").await;
    let polled = h
        .get(&format!("/api/v1/signin/{}", waited_id(&wait)), None)
        .await;
    assert_eq!(polled.body["status"], "approved", "{:?}", polled.body);
    let r = browser.post("/signin/complete", &[("csrf", &csrf)]).await;
    assert_eq!(location(&r), Some("/me"), "{}", text(&r));
}

#[tokio::test]
async fn portal_starts_from_one_ipv6_64_share_one_start_limit() {
    let h = harness_with_state(90, |s| {
        s.with_risk(signin_domain::rules::risk::RiskConfig {
            burst: 2,
            ..Default::default()
        })
    })
    .await;
    let _phone = h.ready_phone("bobby@contoso.test").await;
    let upn = "bobby@contoso.test";
    // One subscriber's /64 holds 2^64 addresses: as far as the limit goes, one address (as
    // for password attempts); otherwise every new address would bring a fresh allowance of
    // pushes to the user's phone.
    for ip in ["2001:db8:1:2::1", "2001:db8:1:2::2"] {
        assert_eq!(
            location(&portal_start(&h, ip, upn).await),
            Some("/signin/wait")
        );
    }
    let r = portal_start(&h, "2001:db8:1:2:ffff::3", upn).await;
    assert!(text(&r).contains(START_LIMITED), "{}", text(&r));
    // Another /64 is another client.
    let r = portal_start(&h, "2001:db8:1:3::1", upn).await;
    assert_eq!(location(&r), Some("/signin/wait"));
}

// ---- issue 11: devices on the pages ----

impl Browser<'_> {
    /// Removes a device on the security-info page, as its form does.
    async fn remove_device(&mut self, account_id: &str) -> Reply {
        let info = self.get("/me/security-info").await;
        self.post(
            "/me/security-info/devices/remove",
            &[("csrf", &csrf_of(&info)), ("account_id", account_id)],
        )
        .await
    }
}

/// A phone enrolled for `upn` without phone sign-in (so the password still signs in, mode any).
async fn push_only_phone(h: &Harness, upn: &str) -> Phone {
    let mut phone = Phone::new();
    phone.enroll(h, &h.link(upn, 600).await).await;
    phone
}

#[tokio::test]
async fn a_user_sees_their_devices_and_removes_one_which_is_refused_at_once() {
    let h = harness().await;
    set_policy(&h, Mode::Any, Target::All).await;
    user_with_password(&h, "bob@contoso.test", &[]).await;
    user_with_password(&h, "eve@contoso.test", &[]).await;
    // Signed in before the phones exist (mode any: the password alone, then), so no push.
    let mut bob = Browser::new(&h);
    assert_eq!(
        location(
            &bob.sign_in_with_password("bob@contoso.test", PASSWORD)
                .await
        ),
        Some("/me")
    );
    let (a, b) = (
        push_only_phone(&h, "bob@contoso.test").await,
        push_only_phone(&h, "bob@contoso.test").await,
    );
    let info = bob.get("/me/security-info").await;
    for phone in [&a, &b] {
        assert!(text(&info).contains(phone.account().as_str()));
    }
    assert!(text(&info).contains("Last used"));
    // Another signed-in user cannot remove Bob's phone: the same answer as no such device.
    let mut eve = Browser::new(&h);
    eve.sign_in_with_password("eve@contoso.test", PASSWORD)
        .await;
    let r = eve.remove_device(b.account().as_str()).await;
    assert!(text(&r).contains("No such device"), "{}", text(&r));
    // Without the session's CSRF token nothing happens.
    let r = bob
        .post(
            "/me/security-info/devices/remove",
            &[("csrf", "forged"), ("account_id", a.account().as_str())],
        )
        .await;
    assert_ne!(r.status, StatusCode::OK);
    assert_eq!(
        a.poll(&h, 0).await.status,
        StatusCode::OK,
        "a still enrolled"
    );

    // A session from a password alone may not remove a phone (SECURITY.md, "Methods,
    // strengths and what a session may do"): a relayed password is not the phone.
    let r = bob.remove_device(a.account().as_str()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(text(&r).contains("To remove a phone"), "{}", text(&r));
    assert_eq!(a.poll(&h, 0).await.status, StatusCode::OK);
    // Signed in with a temporary access pass from the admin, Bob removes it.
    let pass =
        signin_domain::accounts::temporary_pass::issue(&h.state.pool, "bob@contoso.test", 600)
            .await
            .unwrap();
    let mut bob = Browser::new(&h);
    let (r, _) = bob.submit_upn("bob@contoso.test").await;
    assert_eq!(location(&r), Some("/signin/password"));
    let page = bob.get("/signin/pass").await;
    let r = bob
        .post(
            "/signin/pass",
            &[("csrf", &csrf_of(&page)), ("pass", &pass)],
        )
        .await;
    assert_eq!(location(&r), Some("/me/security-info"), "{}", text(&r));
    let r = bob.remove_device(a.account().as_str()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(text(&r).contains("Device removed"), "{}", text(&r));
    assert!(!text(&r).contains(a.account().as_str()));
    assert!(text(&r).contains(b.account().as_str()));
    // The removed phone is refused at once; the other still works.
    assert_ne!(a.poll(&h, 0).await.status, StatusCode::OK);
    assert_eq!(b.poll(&h, 0).await.status, StatusCode::OK);
    let removed = audit_rows(&h, "device_removed", "bob@contoso.test").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].outcome, "by_user");
}

#[tokio::test]
async fn an_admin_lists_every_device_filters_by_user_and_removes_one() {
    let h = harness().await;
    set_policy(&h, Mode::Any, Target::All).await;
    user_with_password(&h, "ada@contoso.test", &["admins"]).await;
    h.add_user("cy@contoso.test", &[]).await;
    let bob = h.ready_phone("bob@contoso.test").await;
    let cy = push_only_phone(&h, "cy@contoso.test").await;
    // Bob's phone answers a sign-in: its "last used" is set.
    let started = h.start_signin("bob@contoso.test").await;
    let id = started.body["id"].as_str().unwrap().to_owned();
    let f = bob.fetch(&h, &id).await.unwrap();
    let deny = bob.answer(&f, authenticator_protocol::sign_in::Decision::Deny, None);
    assert_eq!(h.post(&respond_uri(&id), deny).await.status, StatusCode::OK);

    let mut ada = pass_browser(&h, "ada@contoso.test").await;
    let page = ada.get("/admin/devices").await;
    assert_eq!(page.status, StatusCode::OK);
    for (upn, phone) in [("bob@contoso.test", &bob), ("cy@contoso.test", &cy)] {
        assert!(text(&page).contains(upn));
        assert!(text(&page).contains(phone.account().as_str()));
    }
    assert!(text(&page).contains("Never"), "cy's phone never answered");
    let devices = store::devices::of_user(&h.state.pool, "bob@contoso.test")
        .await
        .unwrap();
    assert!(devices[0].last_used_at.is_some());
    let only_cy = ada.get("/admin/devices?upn=cy%40contoso.test").await;
    assert!(!text(&only_cy).contains(bob.account().as_str()));
    assert!(text(&only_cy).contains(cy.account().as_str()));

    // Asked first (issue 22), then removed and reported by name.
    let r = ada
        .post(
            "/admin/devices/remove",
            &[
                ("csrf", &csrf_of(&page)),
                ("account_id", cy.account().as_str()),
                ("confirmed", "yes"),
            ],
        )
        .await;
    assert!(
        text(&r).contains("Removed \u{201c}Test Phone\u{201d} of cy@contoso.test."),
        "{}",
        text(&r)
    );
    assert_ne!(cy.poll(&h, 0).await.status, StatusCode::OK);
    let removed = audit_rows(&h, "device_removed", "cy@contoso.test").await;
    assert_eq!(removed[0].outcome, "by_admin");
    // Not an admin: no devices page.
    let mut bob_browser = Browser::new(&h);
    user_with_password(&h, "dee@contoso.test", &[]).await;
    bob_browser
        .sign_in_with_password("dee@contoso.test", PASSWORD)
        .await;
    assert_ne!(
        bob_browser.get("/admin/devices").await.status,
        StatusCode::OK
    );
}

// ---- issue 11: a new phone after losing the old one ----

/// Phone sign-in on the pages: UPN, the number on the wait page typed on `phone`, complete.
async fn phone_sign_in(b: &mut Browser<'_>, h: &Harness, phone: &Phone, upn: &str) {
    let (r, _) = b.submit_upn(upn).await;
    assert_eq!(location(&r), Some("/signin/wait"));
    let wait = b.get("/signin/wait").await;
    let (number, csrf) = (number_of(&wait), csrf_of(&wait));
    let rid = pending_on(h, phone).await;
    let f = phone.fetch(h, &rid).await.unwrap();
    let ok = phone.answer(
        &f,
        authenticator_protocol::sign_in::Decision::Approve,
        Some(&number),
    );
    assert_eq!(h.post(&respond_uri(&rid), ok).await.status, StatusCode::OK);
    let r = b.post("/signin/complete", &[("csrf", &csrf)]).await;
    assert_eq!(location(&r), Some("/me"), "{}", text(&r));
}

/// The walkthrough of OPERATIONS.md "A new phone": a user whose phone is lost signs in with a
/// backup code and registers the new phone, which waits (the old phone is asked; nobody
/// answers) for the recovery waiting period; a backup-code session may not remove the old
/// phone. Once the waiting period ends, the new phone signs in and removes the old one; the
/// old one is refused and the new one signs in.
#[tokio::test]
async fn a_user_who_lost_their_phone_signs_in_with_a_backup_code_registers_a_new_one_and_removes_the_old(
) {
    let h = harness().await;
    let upn = "bob@contoso.test";
    set_policy(&h, Mode::Passwordless, Target::All).await;
    signin_domain::accounts::fallback::set_enabled(&h.state.pool, true)
        .await
        .unwrap();
    let old = h.ready_phone(upn).await;
    // Beforehand, signed in with the phone, Bob created backup codes and kept them.
    let mut before = Browser::new(&h);
    phone_sign_in(&mut before, &h, &old, upn).await;
    let info = before.get("/me/security-info").await;
    let r = before
        .post(
            "/me/security-info/backup-codes",
            &[("csrf", &csrf_of(&info))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let code = text(&r)
        .split("<code>")
        .nth(1)
        .and_then(|s| s.split("</code>").next())
        .expect("a backup code on the page")
        .to_owned();

    // The phone is lost. On another computer: the UPN, then "Can't use your phone?".
    let mut b = Browser::new(&h);
    let (r, _) = b.submit_upn(upn).await;
    assert_eq!(location(&r), Some("/signin/wait"));
    let page = b.get("/signin/fallback").await;
    assert_eq!(page.status, StatusCode::OK);
    let r = b
        .post(
            "/signin/fallback",
            &[("csrf", &csrf_of(&page)), ("code", &code)],
        )
        .await;
    assert_eq!(location(&r), Some("/me/security-info"), "{}", text(&r));

    // A registration link for the new phone, which enrolls and enables phone sign-in.
    let info = b.get("/me/security-info").await;
    let r = b
        .post(
            "/me/security-info/authenticator",
            &[("csrf", &csrf_of(&info))],
        )
        .await;
    let link = text(&r)
        .split("phonesignin://enroll")
        .nth(1)
        .map(|rest| {
            let end = rest.find(['"', '<', ' ']).unwrap();
            format!("phonesignin://enroll{}", &rest[..end]).replace("&amp;", "&")
        })
        .expect("a registration link");
    let mut new = Phone::new();
    new.enroll(
        &h,
        &authenticator_protocol::enroll::EnrollmentUrl::parse(&link).unwrap(),
    )
    .await;
    assert_eq!(
        new.enable_passwordless(&h).await.status,
        StatusCode::NO_CONTENT
    );

    assert!(text(&r).contains("held-notice"), "{}", text(&r));
    // The new phone waits: the backup code is one relayable secret, not the phone.
    let devices = signin_domain::store::devices::of_user(&h.state.pool, upn)
        .await
        .unwrap();
    assert!(devices[1].awaiting_approval, "{devices:?}");
    // Nor may the backup-code session remove the old phone.
    let r = b.remove_device(old.account().as_str()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", text(&r));
    assert_eq!(old.poll(&h, 0).await.status, StatusCode::OK);

    // Nobody denies it: the waiting period ends (moved back in the database), the new phone
    // signs Bob in, and that session removes the old phone.
    sqlx::query("UPDATE devices SET held_until = $1 WHERE account_id = $2")
        .bind(signin_domain::store::now_ms() - 1)
        .bind(new.account().as_str())
        .execute(&h.state.pool)
        .await
        .unwrap();
    let mut later = Browser::new(&h);
    phone_sign_in(&mut later, &h, &new, upn).await;
    let r = later.remove_device(old.account().as_str()).await;
    assert!(text(&r).contains("Device removed"), "{}", text(&r));
    assert_ne!(old.poll(&h, 0).await.status, StatusCode::OK);
    // The backup-code session was not made by the old phone: it lives on.
    assert_eq!(b.get("/me").await.status, StatusCode::OK);

    // From now on the new phone signs Bob in; the used backup code does not.
    let mut later = Browser::new(&h);
    phone_sign_in(&mut later, &h, &new, upn).await;
    let mut again = Browser::new(&h);
    again.submit_upn(upn).await;
    let page = again.get("/signin/fallback").await;
    let r = again
        .post(
            "/signin/fallback",
            &[("csrf", &csrf_of(&page)), ("code", &code)],
        )
        .await;
    assert!(text(&r).contains("not valid"), "{}", text(&r));
    for (event, outcome) in [
        ("fallback_used", "backup_code:ok"),
        ("device_removed", "by_user"),
        ("device_approved", "by=waiting_period"),
    ] {
        assert!(
            audit_rows(&h, event, upn)
                .await
                .iter()
                .any(|r| r.outcome == outcome),
            "{event} {outcome}"
        );
    }
}

// ---- the phishing-resistant option (issue 10, PROTOCOL.md §5.9) ----

use authenticator_protocol::sign_in::Decision;
use authenticator_protocol::UnixMillis;

async fn phishing_resistant(h: &Harness, public_url: Option<&str>) {
    let update = PolicyUpdate {
        phishing_resistant: Some(true),
        ..Default::default()
    };
    signin_domain::accounts::set_policy(&h.state.pool, &update)
        .await
        .unwrap();
    if let Some(url) = public_url {
        signin_domain::store::set_setting(
            &h.state.pool,
            signin_domain::store::PUBLIC_URL_SETTING,
            url,
        )
        .await
        .unwrap();
    }
}

/// The attribute `name` of the wait page's card.
fn attribute(r: &Reply, name: &str) -> Option<String> {
    let html = text(r);
    let marker = format!("{name}=\"");
    let at = html.find(&marker)? + marker.len();
    Some(html[at..].split('"').next().unwrap().to_owned())
}

#[tokio::test]
async fn phishing_resistant_sign_ins_need_the_configured_public_url_not_the_request_host() {
    let h = harness().await;
    h.ready_phone("bobby@contoso.test").await;
    phishing_resistant(&h, None).await;
    let mut browser = Browser::new(&h);
    let r = browser.get("/signin").await;
    let csrf = csrf_of(&r);
    let r = browser
        .post("/signin", &[("csrf", &csrf), ("upn", "bobby@contoso.test")])
        .await;
    // No sign-in was started: the origin would have come from the request's Host, which a
    // relaying proxy chooses.
    assert!(
        text(&r).contains("needs the server's public URL"),
        "{:?}",
        r.body
    );
    let started = audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "signin_started")
        .count();
    assert_eq!(started, 0);
}

#[tokio::test]
async fn a_browser_bound_sign_in_counts_only_an_approval_for_the_page_origin() {
    let h = harness().await;
    let phone = h.ready_phone("bobby@contoso.test").await;
    phishing_resistant(&h, Some("http://127.0.0.1:8080/")).await;
    let origin = "http://127.0.0.1:8080";

    let mut browser = Browser::new(&h);
    let (_, _) = browser.submit_upn("bobby@contoso.test").await;
    let wait = browser.get("/signin/wait").await;
    let number = number_of(&wait);
    let challenge = attribute(&wait, "data-browser-challenge").expect("a challenge on the page");
    assert_eq!(
        attribute(&wait, "data-browser-listener").as_deref(),
        Some("http://127.0.0.1:47813/v1/browser-binding")
    );
    let csp = wait.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("connect-src 'self' http://127.0.0.1:47813;"),
        "{csp}"
    );
    assert!(text(&wait).contains("phishing-resistant"));

    // The signed details carry the page's challenge and the configured origin.
    let p = phone.poll(&h, 0).await;
    let id = p.body["pushes"][0]["rid"].as_str().unwrap().to_owned();
    let f = phone.fetch(&h, &id).await.unwrap();
    let details = f.signed.verify(phone.server_key.as_ref().unwrap()).unwrap();
    let binding = details.browser.expect("browser-bound details");
    assert_eq!(binding.challenge, challenge);
    assert_eq!(binding.origin, origin);

    let approve = |seen: Option<&str>| {
        phone.response_seen_at(
            &f,
            Decision::Approve,
            Some(&number),
            &phone.passwordless,
            UnixMillis::now(),
            seen,
        )
    };
    // A phone that did not see the page: refused, the sign-in goes on.
    let r = h.post(&respond_uri(&id), approve(None)).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "browser_not_bound")
    );
    let status = h
        .get(&format!("/api/v1/signin/{id}"), Some(h.app_auth.clone()))
        .await;
    assert_eq!(status.body["status"], "pending");
    // An approval signed for a relay's origin: refused, and the sign-in is over.
    let r = h
        .post(&respond_uri(&id), approve(Some("http://localhost:9999")))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "browser_not_bound")
    );
    let status = h
        .get(&format!("/api/v1/signin/{id}"), Some(h.app_auth.clone()))
        .await;
    assert_eq!(status.body["status"], "failed");
    let r = h.post(&respond_uri(&id), approve(Some(origin))).await;
    assert_eq!(
        r.error(),
        "request_not_pending",
        "nothing more for that sign-in"
    );
    let csrf = csrf_of(&wait);
    browser.post("/signin/complete", &[("csrf", &csrf)]).await;
    assert_ne!(browser.get("/me").await.status, StatusCode::OK);
    let outcomes: Vec<String> = audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.outcome)
        .collect();
    assert!(outcomes.iter().any(|o| o == "browser_not_seen"));
    assert!(outcomes.iter().any(|o| o == "browser_other_origin"));

    // The next sign-in, approved for the page's own origin: signed in.
    let mut browser = Browser::new(&h);
    browser.submit_upn("bobby@contoso.test").await;
    let wait = browser.get("/signin/wait").await;
    let number = number_of(&wait);
    let p = phone.poll(&h, 0).await;
    let id = p.body["pushes"][0]["rid"].as_str().unwrap().to_owned();
    let f = phone.fetch(&h, &id).await.unwrap();
    let ok = phone.response_seen_at(
        &f,
        Decision::Approve,
        Some(&number),
        &phone.passwordless,
        UnixMillis::now(),
        Some(origin),
    );
    let r = h.post(&respond_uri(&id), ok).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let csrf = csrf_of(&wait);
    let r = browser.post("/signin/complete", &[("csrf", &csrf)]).await;
    assert_eq!(r.headers["location"], "/me");
    assert_eq!(browser.get("/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn api_sign_ins_are_not_browser_bound_and_refuse_a_browser_origin() {
    let h = harness().await;
    let phone = h.ready_phone("bobby@contoso.test").await;
    phishing_resistant(&h, Some("http://127.0.0.1:8080/")).await;
    let started = h.start_signin("bobby@contoso.test").await;
    let number = started.body["number"].as_str().unwrap().to_owned();
    let p = phone.poll(&h, 0).await;
    let id = p.body["pushes"][0]["rid"].as_str().unwrap().to_owned();
    let f = phone.fetch(&h, &id).await.unwrap();
    let details = f.signed.verify(phone.server_key.as_ref().unwrap()).unwrap();
    assert_eq!(details.browser, None, "no page of ours: nothing to bind to");
    let stray = phone.response_seen_at(
        &f,
        Decision::Approve,
        Some(&number),
        &phone.passwordless,
        UnixMillis::now(),
        Some("http://127.0.0.1:8080"),
    );
    let r = h.post(&respond_uri(&id), stray).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let ok = phone.answer(&f, Decision::Approve, Some(&number));
    assert_eq!(h.post(&respond_uri(&id), ok).await.status, StatusCode::OK);
}

// ---- issue 22: the helpdesk works from the web console, and the audit log names who acted ----

const ADA: &str = "ada@contoso.test";

/// The actors of the `event` entries about `upn`, oldest first.
async fn actors(h: &Harness, event: &str, upn: &str) -> Vec<String> {
    audit_rows(h, event, upn)
        .await
        .into_iter()
        .map(|r| r.actor.unwrap_or_default())
        .collect()
}

/// The text of the element with `id` (up to its first closing tag).
fn element(r: &Reply, id: &str) -> Option<String> {
    let html = text(r);
    let at = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[at..];
    let rest = &rest[rest.find('>')? + 1..];
    Some(rest.split("</").next()?.to_owned())
}

/// Posts one helpdesk action on `upn`'s page (the CSRF token from `page`).
async fn act(
    b: &mut Browser<'_>,
    page: &Reply,
    upn: &str,
    action: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let csrf = csrf_of(page);
    let mut pairs = vec![("csrf", csrf.as_str()), ("upn", upn), ("action", action)];
    pairs.extend_from_slice(extra);
    b.post("/admin/user", &pairs).await
}

#[tokio::test]
async fn a_helpdesk_agent_finds_a_user_sees_their_methods_and_acts_from_the_web_each_confirmed_and_audited_by_name(
) {
    let h = harness().await;
    let bob = h.ready_phone("bob@contoso.test").await;
    user_with_password(&h, "dee@contoso.test", &[]).await;
    let mut ada = admin_browser(&h).await;

    // Search: a part of the name, any case.
    let found = ada.get("/admin/users?q=BOB").await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(text(&found).contains("href=\"/admin/user?upn=bob%40contoso.test\""));
    assert!(!text(&found).contains("dee@contoso.test"));
    let none = ada.get("/admin/users?q=zebra").await;
    assert!(text(&none).contains("id=\"no-users\""));
    // LIKE's wildcards are plain characters here: no name holds `%` or `_`.
    for wildcard in ["%25", "_"] {
        let none = ada.get(&format!("/admin/users?q={wildcard}")).await;
        assert!(text(&none).contains("id=\"no-users\""), "{wildcard}");
    }

    // A sign-in started on the pages is the user's own in the audit log.
    let (started, _) = Browser::new(&h).submit_upn("bob@contoso.test").await;
    assert!(started.status.is_success() || started.status.is_redirection());
    assert_eq!(
        actors(&h, "signin_started", "bob@contoso.test").await,
        ["user:bob@contoso.test"]
    );

    // Bob reports a sign-in he did not start: paused, risk raised.
    signin_domain::rules::risk::record_report(
        &h.state.pool,
        &signin_domain::rules::risk::RiskConfig::default(),
        "bob@contoso.test",
        bob.account().as_str(),
        "req-reported",
    )
    .await
    .unwrap();
    let page = ada.get("/admin/user?upn=bob%40contoso.test").await;
    assert_eq!(page.status, StatusCode::OK);
    let devices = element(&page, "user-devices")
        .map(|_| text(&page).to_owned())
        .unwrap();
    assert!(devices.contains("Test Phone"), "the device by name");
    assert!(devices.contains("No notifications: the app checks when opened"));
    assert!(devices.contains(">Never<"), "not used yet");
    assert!(element(&page, "pause").unwrap().contains("Paused until"));
    assert!(text(&page).contains("1 \u{201c}this wasn\u{2019}t me\u{201d} reports"));
    assert!(element(&page, "fallback").is_some());
    assert!(text(&page).contains("id=\"no-passes\""));

    // Resume (not destructive: at once).
    let r = act(&mut ada, &page, "bob@contoso.test", "resume", &[]).await;
    assert!(
        text(&r).contains("Resumed sign-ins for bob@contoso.test."),
        "{}",
        text(&r)
    );
    assert!(element(&r, "pause").unwrap().contains("Not paused"));
    // Unlock the offline fallback.
    let r = act(&mut ada, &page, "bob@contoso.test", "unlock_fallback", &[]).await;
    assert!(
        text(&r).contains("offline fallback of bob@contoso.test"),
        "{}",
        text(&r)
    );

    // Remove a device: a confirmation page naming it first; nothing is removed yet.
    let account = bob.account().as_str().to_owned();
    let r = act(
        &mut ada,
        &page,
        "bob@contoso.test",
        "remove_device",
        &[("account_id", &account)],
    )
    .await;
    assert!(element(&r, "confirm").is_some(), "{}", text(&r));
    assert!(text(&r).contains("\u{201c}Test Phone\u{201d}"));
    assert!(text(&r).contains("name=\"confirmed\" value=\"yes\""));
    assert_eq!(
        store::devices::of_user(&h.state.pool, "bob@contoso.test")
            .await
            .unwrap()
            .len(),
        1
    );
    let r = act(
        &mut ada,
        &page,
        "bob@contoso.test",
        "remove_device",
        &[("account_id", &account), ("confirmed", "yes")],
    )
    .await;
    assert!(
        text(&r).contains("Removed \u{201c}Test Phone\u{201d} of bob@contoso.test."),
        "{}",
        text(&r)
    );
    assert!(!text(&r).contains(&format!("Removed device {account}")));
    assert!(store::devices::of_user(&h.state.pool, "bob@contoso.test")
        .await
        .unwrap()
        .is_empty());
    assert_ne!(bob.poll(&h, 0).await.status, StatusCode::OK);

    // Issue a temporary access pass: asked first, then shown once.
    let page = ada.get("/admin/user?upn=dee%40contoso.test").await;
    let r = act(&mut ada, &page, "dee@contoso.test", "issue_pass", &[]).await;
    assert!(element(&r, "confirm").is_some());
    assert!(element(&r, "temporary-pass").is_none());
    assert!(
        store::passes::of_user(&h.state.pool, "dee@contoso.test", store::now_ms())
            .await
            .unwrap()
            .is_empty()
    );
    // A lifetime the form does not offer (beyond 8 hours) is refused in words: no pass.
    let r = act(
        &mut ada,
        &page,
        "dee@contoso.test",
        "issue_pass",
        &[("confirmed", "yes"), ("ttl_secs", "999999")],
    )
    .await;
    assert!(
        text(&r).contains("Not issued: a pass is valid for 1 second to 8 hours"),
        "{}",
        text(&r)
    );
    assert!(element(&r, "temporary-pass").is_none());
    let r = act(
        &mut ada,
        &page,
        "dee@contoso.test",
        "issue_pass",
        &[("confirmed", "yes"), ("ttl_secs", "3600")],
    )
    .await;
    let pass = element(&r, "temporary-pass")
        .and_then(|p| p.strip_prefix("<code>").map(str::to_owned))
        .expect("the pass, shown once");
    assert!(text(&r).contains("Issued a temporary access pass for dee@contoso.test"));
    // It signs Dee in; the user page never shows it again, but lists it as used.
    let mut dee = Browser::new(&h);
    let signed = submit_pass(&mut dee, "dee@contoso.test", &pass).await;
    assert_eq!(
        location(&signed),
        Some("/me/security-info"),
        "{}",
        text(&signed)
    );
    let page = ada.get("/admin/user?upn=dee%40contoso.test").await;
    assert!(!text(&page).contains(&pass));
    assert!(element(&page, "user-passes").is_some());
    assert!(text(&page).contains("Used "));
    assert!(
        text(&page).contains("<td data-label=\"How\">Temporary access pass</td>"),
        "Dee's session, by how it was made: {}",
        text(&page)
    );

    // Set a password: asked first; then the new one signs Dee in.
    let r = act(&mut ada, &page, "dee@contoso.test", "set_password", &[]).await;
    assert!(element(&r, "confirm").is_some());
    assert!(text(&r).contains("id=\"new-password\""));
    let r = act(
        &mut ada,
        &page,
        "dee@contoso.test",
        "set_password",
        &[("confirmed", "yes"), ("password", "a brand new password 2")],
    )
    .await;
    assert!(
        text(&r).contains("Set a new password for dee@contoso.test."),
        "{}",
        text(&r)
    );
    let mut dee2 = Browser::new(&h);
    let r = dee2
        .sign_in_with_password("dee@contoso.test", "a brand new password 2")
        .await;
    assert_eq!(location(&r), Some("/me"), "{}", text(&r));
    assert!(dee.is_signed_in().await);

    // Sign out everywhere: asked first; then both of Dee's browsers are signed out.
    let r = act(
        &mut ada,
        &page,
        "dee@contoso.test",
        "sign_out_everywhere",
        &[],
    )
    .await;
    assert!(element(&r, "confirm").is_some());
    assert!(dee.is_signed_in().await, "not before the confirmation");
    let r = act(
        &mut ada,
        &page,
        "dee@contoso.test",
        "sign_out_everywhere",
        &[("confirmed", "yes")],
    )
    .await;
    assert!(
        text(&r).contains("Signed dee@contoso.test out everywhere"),
        "{}",
        text(&r)
    );
    assert!(!dee.is_signed_in().await);
    assert!(!dee2.is_signed_in().await);

    // Attributes: saved, and what applications receive.
    let r = act(
        &mut ada,
        &page,
        "dee@contoso.test",
        "set_attributes",
        &[
            ("email", "dee@contoso.test"),
            ("email_verified", "on"),
            ("given_name", "Dee"),
            ("family_name", "Dale"),
        ],
    )
    .await;
    assert!(
        text(&r).contains("Saved the attributes of dee@contoso.test."),
        "{}",
        text(&r)
    );
    assert!(element(&r, "user-facts")
        .map(|_| text(&r).contains("dee@contoso.test (verified)"))
        .unwrap());

    // Every action is in the audit log with the agent's name.
    let admin = format!("admin:{ADA}");
    for (event, upn) in [
        ("user_resumed", "bob@contoso.test"),
        ("fallback_unlocked", "bob@contoso.test"),
        ("device_removed", "bob@contoso.test"),
        ("temporary_pass_issued", "dee@contoso.test"),
        ("password_set", "dee@contoso.test"),
        ("sessions_ended", "dee@contoso.test"),
        ("user_attributes_set", "dee@contoso.test"),
    ] {
        assert!(
            actors(&h, event, upn).await.contains(&admin),
            "{event}: {:?}",
            actors(&h, event, upn).await
        );
    }
    // Dee's own sign-in is hers; the audit page shows the actor column and filters by it.
    assert_eq!(
        actors(&h, "temporary_pass_used", "dee@contoso.test").await,
        ["user:dee@contoso.test"]
    );
    let r = ada.get("/admin/audit?actor=admin%3Aada&upn=dee").await;
    let rows = audit_table(&r);
    assert!(rows.len() >= 3, "{rows:?}");
    assert!(rows
        .iter()
        .all(|c| c[3] == admin && c[4] == "dee@contoso.test"));

    // Not for someone outside `admins`.
    let mut dee3 = Browser::new(&h);
    dee3.sign_in_with_password("dee@contoso.test", "a brand new password 2")
        .await;
    assert_eq!(
        dee3.get("/admin/user?upn=bob%40contoso.test").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn removing_a_device_or_an_application_from_the_admin_pages_asks_first_and_names_it() {
    let h = harness().await;
    let cy = h.ready_phone("cy@contoso.test").await;
    let mut ada = admin_browser(&h).await;
    let page = ada.get("/admin/devices").await;
    let csrf = csrf_of(&page);
    let account = cy.account().as_str().to_owned();
    let r = ada
        .post(
            "/admin/devices/remove",
            &[("csrf", &csrf), ("account_id", &account)],
        )
        .await;
    assert!(
        element(&r, "confirm").unwrap().contains("Test Phone"),
        "{}",
        text(&r)
    );
    assert_eq!(
        store::devices::of_user(&h.state.pool, "cy@contoso.test")
            .await
            .unwrap()
            .len(),
        1
    );
    let r = ada
        .post(
            "/admin/devices/remove",
            &[
                ("csrf", &csrf),
                ("account_id", &account),
                ("confirmed", "yes"),
            ],
        )
        .await;
    assert!(
        text(&r).contains("Removed \u{201c}Test Phone\u{201d} of cy@contoso.test."),
        "{}",
        text(&r)
    );
    assert!(store::devices::of_user(&h.state.pool, "cy@contoso.test")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        actors(&h, "device_removed", "cy@contoso.test").await,
        [format!("admin:{ADA}")]
    );

    // An application: added from the web, its secret shown once and working.
    let page = ada.get("/admin/apps").await;
    let csrf = csrf_of(&page);
    let r = ada
        .post(
            "/admin/apps/add",
            &[
                ("csrf", &csrf),
                ("name", "Payroll"),
                ("redirect_uris", "https://payroll.contoso.test/cb\r\n"),
            ],
        )
        .await;
    assert!(
        text(&r).contains("Added the application \u{201c}Payroll\u{201d}."),
        "{}",
        text(&r)
    );
    assert_eq!(r.headers["cache-control"], "no-store");
    let client_id = element(&r, "client-id").expect("the client id");
    let secret = element(&r, "client-secret").expect("the secret, shown once");
    assert!(signin_domain::accounts::applications::authenticate(
        &h.state.pool,
        &client_id,
        &secret
    )
    .await
    .is_ok());
    let listed = ada.get("/admin/apps").await;
    assert!(text(&listed).contains(&client_id));
    assert!(!text(&listed).contains(&secret), "never shown again");
    // A bad redirect URI is refused by name, nothing is added.
    let r = ada
        .post(
            "/admin/apps/add",
            &[
                ("csrf", &csrf),
                ("name", "Bad"),
                ("redirect_uris", "not a uri"),
            ],
        )
        .await;
    assert!(text(&r).contains("Not added:"), "{}", text(&r));
    // One entry by Ada (the harness's own application is the server's): Payroll's.
    let added: Vec<_> = audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "application_added" && r.actor.as_deref() != Some("system"))
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(
        added[0].actor.as_deref(),
        Some(format!("admin:{ADA}").as_str())
    );
    assert!(added[0].outcome.contains(&client_id), "{added:?}");
    // Removing it asks first, then names it.
    let r = ada
        .post(
            "/admin/apps/remove",
            &[("csrf", &csrf), ("client_id", &client_id)],
        )
        .await;
    assert!(element(&r, "confirm").is_some());
    assert!(text(&r).contains("\u{201c}Payroll\u{201d}"));
    assert!(signin_domain::accounts::applications::authenticate(
        &h.state.pool,
        &client_id,
        &secret
    )
    .await
    .is_ok());
    let r = ada
        .post(
            "/admin/apps/remove",
            &[
                ("csrf", &csrf),
                ("client_id", &client_id),
                ("confirmed", "yes"),
            ],
        )
        .await;
    assert!(
        text(&r).contains("Removed the application \u{201c}Payroll\u{201d}."),
        "{}",
        text(&r)
    );
    assert!(signin_domain::accounts::applications::authenticate(
        &h.state.pool,
        &client_id,
        &secret
    )
    .await
    .is_err());
}

#[tokio::test]
async fn creating_new_backup_codes_asks_first_while_unused_codes_would_stop_working() {
    let h = harness().await;
    signin_domain::accounts::fallback::set_enabled(&h.state.pool, true)
        .await
        .unwrap();
    let mut ada = admin_browser(&h).await;
    let info = ada.get("/me/security-info").await;
    let csrf = csrf_of(&info);
    // The first set: nothing to lose, no question.
    let r = ada
        .post("/me/security-info/backup-codes", &[("csrf", &csrf)])
        .await;
    assert!(text(&r).contains("id=\"backup-codes\""), "{}", text(&r));
    let first = text(&r)
        .split("<code>")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .to_owned();
    // Again: a confirmation page; the old codes still work until confirmed.
    let r = ada
        .post("/me/security-info/backup-codes", &[("csrf", &csrf)])
        .await;
    assert!(
        element(&r, "confirm")
            .unwrap()
            .contains("10 unused backup codes"),
        "{}",
        text(&r)
    );
    assert!(!text(&r).contains("id=\"backup-codes\""));
    assert_eq!(
        signin_domain::accounts::backup_codes::counts(&h.state.pool, ADA)
            .await
            .unwrap(),
        (10, 10)
    );
    let r = ada
        .post(
            "/me/security-info/backup-codes",
            &[("csrf", &csrf), ("confirmed", "yes")],
        )
        .await;
    assert!(text(&r).contains("id=\"backup-codes\""));
    assert!(!text(&r).contains(&first));
}

async fn policy_post(b: &mut Browser<'_>, fields: &[(&str, &str)]) -> Reply {
    let page = b.get("/admin/policy").await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.headers);
    let csrf = csrf_of(&page);
    let mut pairs = vec![("csrf", csrf.as_str())];
    pairs.extend_from_slice(fields);
    b.post("/admin/policy", &pairs).await
}

#[tokio::test]
async fn the_policy_page_refuses_an_unknown_group_and_phishing_resistance_without_a_public_url_keeping_the_edits(
) {
    let h = harness().await;
    h.add_user("pat@contoso.test", &["pilots"]).await;
    h.add_user("kiosk-1@contoso.test", &["kiosks"]).await;
    let mut ada = admin_browser(&h).await;
    let before = signin_domain::rules::policy::load(&h.state.pool)
        .await
        .unwrap();
    let typo = [
        ("enabled", "on"),
        ("target", "group"),
        ("group", "pilots-typo"),
        ("mode", "push"),
        ("number_matching", "on"),
        ("show_location", "on"),
        ("number_length", "5"),
    ];
    // An excluded group nobody is in is refused too, naming it.
    let mut excluded_typo = typo.to_vec();
    excluded_typo[2] = ("group", "pilots");
    excluded_typo.push(("exclude", "pilots, contractors-typo"));
    let r = policy_post(&mut ada, &excluded_typo).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(&r).contains("there is no group \u{201c}contractors-typo\u{201d}"),
        "{}",
        text(&r)
    );
    assert!(text(&r).contains("value=\"pilots, contractors-typo\""));
    // So is a feature's group nobody is in.
    let mut feature_typo = typo.to_vec();
    feature_typo[2] = ("group", "pilots");
    feature_typo.push(("app_name_group", "pilotz"));
    let r = policy_post(&mut ada, &feature_typo).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(&r).contains("there is no group \u{201c}pilotz\u{201d}"),
        "{}",
        text(&r)
    );
    assert!(text(&r).contains("id=\"app_name_group\" name=\"app_name_group\" value=\"pilotz\""));
    let r = policy_post(&mut ada, &typo).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(&r).contains("there is no group \u{201c}pilots-typo\u{201d}"),
        "{}",
        text(&r)
    );
    assert!(
        text(&r).contains("Groups: admins, kiosks, pilots."),
        "the groups there are"
    );
    assert_eq!(
        signin_domain::rules::policy::load(&h.state.pool)
            .await
            .unwrap(),
        before
    );
    // The admin's edits are on the page again.
    assert!(text(&r).contains("value=\"pilots-typo\""));
    assert!(text(&r).contains("id=\"mode-push\" name=\"mode\" value=\"push\" checked"));
    assert!(text(&r).contains("value=\"5\""));
    assert!(text(&r).contains("id=\"show_location\" name=\"show_location\" value=\"on\" checked"));

    // Phishing-resistant sign-in without the public URL would refuse every sign-in.
    let r = policy_post(
        &mut ada,
        &[
            ("enabled", "on"),
            ("target", "all"),
            ("mode", "any"),
            ("number_matching", "on"),
            ("number_length", "2"),
            ("phishing_resistant", "on"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(&r).contains("needs the server\u{2019}s public URL"),
        "{}",
        text(&r)
    );
    assert!(text(&r)
        .contains("id=\"phishing_resistant\" name=\"phishing_resistant\" value=\"on\" checked"));
    assert!(
        !signin_domain::rules::policy::load(&h.state.pool)
            .await
            .unwrap()
            .phishing_resistant
    );
    signin_domain::store::set_setting(
        &h.state.pool,
        signin_domain::store::PUBLIC_URL_SETTING,
        "https://id.contoso.test",
    )
    .await
    .unwrap();
    // The session cookie is named for the public URL now (`__Host-`): sign in again.
    let mut ada = pass_browser(&h, ADA).await;
    // The right group, phishing resistance with the URL: saved.
    let r = policy_post(
        &mut ada,
        &[
            ("enabled", "on"),
            ("target", "group"),
            ("group", "pilots"),
            ("mode", "any"),
            ("number_matching", "on"),
            ("number_length", "4"),
            ("phishing_resistant", "on"),
            ("exclude", " kiosks ,"),
            ("show_location", "on"),
            ("location_group", ""),
            ("location_except", "pilots"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(text(&r).contains("Policy saved"), "{}", text(&r));
    let saved = signin_domain::rules::policy::load(&h.state.pool)
        .await
        .unwrap();
    assert_eq!(saved.target, Target::Group("pilots".into()));
    assert!(saved.phishing_resistant);
    assert_eq!(saved.exclude, ["kiosks"]);
    assert_eq!(
        saved.location_scope,
        signin_domain::rules::policy::Scope {
            include: Target::All,
            exclude: vec!["pilots".into()],
        }
    );
    assert!(text(&r).contains("id=\"exclude\" name=\"exclude\" value=\"kiosks\""));
}

#[tokio::test]
async fn a_policy_change_is_audited_with_the_admin_and_every_setting_before_and_after() {
    let h = harness().await;
    h.add_user("pat@contoso.test", &["pilots"]).await;
    signin_domain::store::set_setting(
        &h.state.pool,
        signin_domain::store::PUBLIC_URL_SETTING,
        "https://id.contoso.test",
    )
    .await
    .unwrap();
    let mut ada = admin_browser(&h).await;
    let before = signin_domain::rules::policy::load(&h.state.pool)
        .await
        .unwrap();
    assert!(!before.phishing_resistant && before.number_length == 2);
    let base = |pr: Option<&'static str>| {
        let mut f = vec![
            ("enabled", "on"),
            ("target", "all"),
            ("mode", before.mode.as_str()),
            ("number_matching", "on"),
            ("number_length", "4"),
        ];
        if before.show_app_name {
            f.push(("show_app_name", "on"));
        }
        if before.show_location {
            f.push(("show_location", "on"));
        }
        if !before.new_device_approval {
            f.push(("new_device_approval", "on"));
        }
        if let Some(v) = pr {
            f.push(("phishing_resistant", v));
        }
        f
    };
    let on = policy_post(&mut ada, &base(Some("on"))).await;
    assert!(text(&on).contains("Policy saved"), "{}", text(&on));
    let _off = policy_post(&mut ada, &base(None)).await;
    let rows: Vec<_> = audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "policy_changed")
        .collect();
    let admin = format!("admin:{ADA}");
    let (turned_on, turned_off) = (&rows[rows.len() - 2], &rows[rows.len() - 1]);
    assert_eq!(turned_on.actor.as_deref(), Some(admin.as_str()));
    assert_eq!(turned_off.actor.as_deref(), Some(admin.as_str()));
    let dev_before = if before.new_device_approval {
        "on"
    } else {
        "off"
    };
    let dev_after = if before.new_device_approval {
        "off"
    } else {
        "on"
    };
    assert_eq!(
        turned_on.outcome,
        format!(
            "number-length: 2 \u{2192} 4; new-device-approval: {dev_before} \u{2192} {dev_after}; phishing-resistant: off \u{2192} on"
        )
    );
    assert_eq!(turned_off.outcome, "phishing-resistant: on \u{2192} off");
    assert_ne!(turned_on.seq, turned_off.seq, "two entries, not one merged");
}
