//! The sign-in pages under load and attack (review issue 8): bounded password hashing and
//! throttled password attempts, no stored rows for cookie-less visits, and a session id that
//! changes when the UPN is submitted.
mod support;

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use signin_server::accounts::passwords::{self, PasswordCheck, PasswordGuard, PasswordLimits};
use signin_server::audit;
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
    rest[start..start + 2].to_owned()
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
    use signin_server::sign_in::policy::{Mode, PolicyUpdate};
    let h = harness().await;
    let phone = h.ready_phone("bobby@contoso.test").await;
    passwords::set_password(&h.state.pool, "bobby@contoso.test", "bobby password 1")
        .await
        .unwrap();
    let push = PolicyUpdate {
        mode: Some(Mode::Push),
        ..Default::default()
    };
    signin_server::accounts::set_policy(&h.state.pool, &push)
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
