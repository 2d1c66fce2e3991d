//! Resource limits (issue 20, findings 1, 2 and 6): connections that never send a request, send
//! it slowly or stop sending a body are closed; one address cannot hold the server's descriptors;
//! parked long-polls are bounded per device, per sign-in and in total; Argon2 checks stay within
//! their memory budget under a flood of backup-code tries; fallback tries are bounded per address
//! and collapse in the audit.
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::http::StatusCode;
use signin_domain::delivery::parking::ParkingLimits;
use signin_domain::store::testing::TestDatabase;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection from `from` (any 127.0.0.0/8 address is this machine).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    tokio::time::timeout(Duration::from_secs(2), socket.connect(to))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// What the server sent before closing, if it closed within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn raise_own_open_file_limit() {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        limit >= 4500,
        "this test needs 4,500 descriptors; the hard limit is {limit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_within_a_second_while_one_address_holds_2000_idle_connections() {
    raise_own_open_file_limit();
    let db = TestDatabase::create().await.unwrap();
    // 1,024 descriptors: a server that accepts whatever comes runs out of them below 2,000.
    let server = ServerProcess::start_with_open_file_limit(&db.url, &[], 1024);
    let addr: SocketAddr = server.addr.parse().unwrap();

    let mut held = Vec::new();
    for _ in 0..2000 {
        if let Ok(s) = connect_from(Ipv4Addr::new(127, 0, 0, 1), addr).await {
            held.push(s);
        }
    }
    let health = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let answered = tokio::time::timeout(
        Duration::from_secs(1),
        health.get(format!("{}/healthz", server.base())).send(),
    )
    .await;
    let answered = answered
        .expect("healthz answered within a second")
        .expect("healthz answered");
    assert_eq!(answered.status(), StatusCode::OK);

    // Beyond the per-address cap (256 by default), the flood was told why and closed.
    let mut refused = 0;
    for s in held.iter_mut() {
        if let Some(text) = closed_within(s, Duration::from_millis(20)).await {
            assert!(text.starts_with("HTTP/1.1 429"), "{text:?}");
            assert!(
                text.to_ascii_lowercase().contains("retry-after: 1"),
                "{text}"
            );
            assert!(text.contains("\"rate_limited\""), "{text}");
            refused += 1;
        }
    }
    assert!(refused >= 2000 - 256, "only {refused} of 2000 were refused");
}

#[tokio::test]
async fn silent_and_slowloris_connections_are_closed_after_the_header_read_timeout() {
    let db = TestDatabase::create().await.unwrap();
    let server = ServerProcess::start(&db.url, &["--header-read-timeout-secs", "1"]);
    let addr: SocketAddr = server.addr.parse().unwrap();

    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(15))
            .await
            .is_some(),
        "a connection that sends nothing is closed"
    );

    // One header line every 200 ms: always making progress, never finishing.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut closed = false;
    for i in 0..75 {
        if slow
            .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        if closed_within(&mut slow, Duration::from_millis(200))
            .await
            .is_some()
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a request head that never ends is cut off");
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_ends_the_request() {
    let db = TestDatabase::create().await.unwrap();
    let server = ServerProcess::start(&db.url, &["--idle-timeout-secs", "1"]);
    let addr: SocketAddr = server.addr.parse().unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /api/v1/signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"upn\":",
    )
    .await
    .unwrap();
    let text = closed_within(&mut s, Duration::from_secs(15))
        .await
        .expect("the server ends a request whose body stalls");
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
}

#[tokio::test]
async fn connection_limits_are_configuration_and_zero_is_refused() {
    let db = TestDatabase::create().await.unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signin-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &db.url])
        .args(["--max-connections-per-address", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--max-connections-per-address (SIGNIN_MAX_CONNECTIONS_PER_ADDRESS, [limits] \
             `max_connections_per_address`) must be at least 1"
        ),
        "{err}"
    );
}

/// Runs `parked` (long-polls) and, once `n` of them wait, `then`; the outputs of both.
async fn while_parked<T>(
    h: &Harness,
    parked: impl std::future::Future<Output = Vec<Reply>>,
    n: usize,
    then: impl std::future::Future<Output = T>,
) -> (Vec<Reply>, T) {
    let later = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while h.state.parking.parked() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} long-polls parked, expected {n}",
                h.state.parking.parked()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        then.await
    };
    tokio::join!(parked, later)
}

#[tokio::test]
async fn a_device_and_a_sign_in_may_park_only_a_few_long_polls_and_the_server_a_bounded_total() {
    let h = harness_with_state(90, |s| {
        s.with_parking_limits(ParkingLimits {
            per_device: 2,
            per_sign_in: 2,
            total: 3,
        })
    })
    .await;
    let phone = h.ready_phone("parker@contoso.test").await;

    // Two polls of one device wait; its third is refused at once, 429 with Retry-After.
    let two = async {
        let (a, b) = tokio::join!(phone.poll(&h, 2), phone.poll(&h, 2));
        vec![a, b]
    };
    let (waited, third) = while_parked(&h, two, 2, phone.poll(&h, 2)).await;
    assert!(waited.iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        third.body
    );
    assert_eq!(third.error(), "rate_limited");
    assert_eq!(third.headers["retry-after"], "5");

    // One sign-in's outcome: two waiting readers, the third refused.
    let started = h.start_signin("parker@contoso.test").await;
    let id = started.body["id"].as_str().unwrap().to_owned();
    let status = format!("/api/v1/signin/{id}?wait=2");
    let two = async {
        let (a, b) = tokio::join!(h.get(&status, None), h.get(&status, None));
        vec![a, b]
    };
    let (waited, third) = while_parked(&h, two, 2, h.get(&status, None)).await;
    assert!(waited.iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.error(), "rate_limited");

    // The total: three parked in all (two on one sign-in, one on another), and a fourth, within
    // its sign-in's share, is 503 server_busy.
    let other = h.start_signin("parker@contoso.test").await;
    let other = format!(
        "/api/v1/signin/{}?wait=2",
        other.body["id"].as_str().unwrap()
    );
    let three = async {
        let (a, b, c) = tokio::join!(
            h.get(&status, None),
            h.get(&status, None),
            h.get(&other, None)
        );
        vec![a, b, c]
    };
    let (_, fourth) = while_parked(&h, three, 3, h.get(&other, None)).await;
    assert_eq!(fourth.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fourth.error(), "server_busy");
    assert_eq!(h.state.parking.parked(), 0, "every place was given back");
}

/// One browser on the sign-in pages from its own address: the session cookie and CSRF tokens.
struct PageClient {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
}

impl PageClient {
    fn new(base: &str, from: IpAddr) -> Self {
        PageClient {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .local_address(from)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> (StatusCode, String) {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", c),
            None => req,
        };
        let r = req.send().await.unwrap();
        if let Some(set) = r.headers().get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            self.cookie = Some(pair.to_owned());
        }
        (r.status(), r.text().await.unwrap())
    }

    async fn csrf(&mut self, path: &str) -> String {
        let (_, body) = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await;
        let at = body.find("name=\"csrf\" value=\"").expect("a form") + 19;
        body[at..at + body[at..].find('"').unwrap()].to_owned()
    }

    /// Types `upn` on /signin, then `code` on /signin/fallback; the status of the last page.
    async fn try_code(&mut self, upn: &str, code: &str) -> StatusCode {
        let csrf = self.csrf("/signin").await;
        let form = [("csrf", csrf.as_str()), ("upn", upn)];
        let post = self.http.post(format!("{}/signin", self.base)).form(&form);
        let (status, _) = self.send(post).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let csrf = self.csrf("/signin/fallback").await;
        let form = [("csrf", csrf.as_str()), ("code", code)];
        let post = self
            .http
            .post(format!("{}/signin/fallback", self.base))
            .form(&form);
        self.send(post).await.0
    }
}

/// Resident and peak resident memory of a process, in KiB (`/proc/<pid>/status`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_under_128_concurrent_backup_code_tries_grows_less_than_the_argon2_budget() {
    const BUDGET_MIB: u64 = 57; // three Argon2 hashes at once
    let db = TestDatabase::create().await.unwrap();
    {
        let pool = signin_domain::store::connect(&db.url).await.unwrap();
        signin_domain::accounts::fallback::set_enabled(&pool, true)
            .await
            .unwrap();
        pool.close().await;
    }
    let server = ServerProcess::start(&db.url, &["--argon2-memory-mib", &BUDGET_MIB.to_string()]);
    let base = server.base();
    let code = "abcd-efgh-jkmn";

    // Warm up: every Argon2 thread has hashed, the pages have been served.
    let warm = (0..6u8).map(|i| {
        let base = base.clone();
        async move {
            let mut c = PageClient::new(&base, IpAddr::from([127, 0, 2, i + 1]));
            c.try_code(&format!("warm{i}@contoso.test"), code).await
        }
    });
    for status in join_all(warm).await {
        assert_eq!(status, StatusCode::OK);
    }
    let (before, _) = memory_kib(server.child.id());

    // 128 tries at once, each from its own address with its own made-up user, so that no
    // per-address or per-user limit stops them before Argon2.
    let flood = (0..128u8).map(|i| {
        let base = base.clone();
        async move {
            let mut c = PageClient::new(&base, IpAddr::from([127, 0, 1, i + 1]));
            c.try_code(&format!("nobody{i}@contoso.test"), code).await
        }
    });
    let statuses = join_all(flood).await;
    let checked = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let busy = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(checked + busy, 128, "{statuses:?}");
    assert!(checked >= 3, "{statuses:?}");

    let (_, peak) = memory_kib(server.child.id());
    let growth_mib = peak.saturating_sub(before) / 1024;
    assert!(
        growth_mib < BUDGET_MIB,
        "memory grew by {growth_mib} MiB under 128 tries ({checked} checked, {busy} refused as \
         busy); the Argon2 budget is {BUDGET_MIB} MiB"
    );
}

/// Runs the futures as tasks, all at once; their outputs in order.
async fn join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in futures.enumerate() {
        set.spawn(async move { (i, f.await) });
    }
    let mut out = set.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, v)| v).collect()
}
