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
    assert_eq!(limited.len(), 2);
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
