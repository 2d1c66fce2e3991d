//! `authenticator browser-listener` (phishing-resistant sign-in, PROTOCOL.md §5.9) as a desktop
//! user runs it: one process listens for this computer's sign-in pages while `approve`, another
//! process, signs — the page seen by the one serves the approval of the other (the sightings live
//! in the phone's store). The browser's side is played by hand: the sign-in pages through a
//! cookie-keeping client, and the page script's POST with the `Origin` a browser would write.
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use serde_json::Value;
use signin_domain::rules::policy::PolicyUpdate;
use signin_domain::{accounts, store};
use signin_server::ServeConfig;
use support::{json_out, setup_with, Setup, UPN};

/// The listener process; killed when dropped.
struct Listener(Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of `name="…"` (an attribute) on the page, if any.
fn attribute(html: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let at = html.find(&marker)? + marker.len();
    Some(html[at..].split('"').next()?.to_owned())
}

fn number_on(html: &str) -> String {
    let at = html.find("id=\"number\"").expect("the number on the page");
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    rest[start..].split('<').next().unwrap().trim().to_owned()
}

/// A browser on the sign-in pages: types the UPN, returns the number page's HTML.
async fn sign_in_page(s: &Setup) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let page = browser
        .get(format!("{}signin", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = attribute(&page, "name=\"csrf\" value").expect("a CSRF field");
    let waiting = browser
        .post(format!("{}signin", s.base))
        .form(&[("csrf", csrf.as_str()), ("upn", UPN)])
        .send()
        .await
        .unwrap();
    assert!(
        waiting.url().path().ends_with("/signin/wait"),
        "{}",
        waiting.url()
    );
    waiting.text().await.unwrap()
}

/// What the page's script does: hand the challenge to the listener, as a page at `origin`.
async fn announce(port: u16, challenge: &str, origin: Option<&str>) -> reqwest::Response {
    let mut post = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/browser-binding"))
        .header("content-type", "text/plain")
        .body(challenge.to_owned());
    if let Some(origin) = origin {
        post = post.header("origin", origin);
    }
    post.send().await.unwrap()
}

async fn pending_request(s: &Setup) -> Value {
    let pending = json_out(&s.phone(&["pending", "--wait", "10"]).await);
    pending[0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_listener_process_lets_another_process_approve_only_the_page_seen_at_the_server_origin()
{
    let port = free_port();
    let s = setup_with(ServeConfig {
        browser_listener_port: port,
        ..ServeConfig::default()
    })
    .await;
    store::set_setting(s.server.pool(), store::PUBLIC_URL_SETTING, &s.base)
        .await
        .unwrap();
    let update = PolicyUpdate {
        phishing_resistant: Some(true),
        ..Default::default()
    };
    accounts::set_policy(s.server.pool(), &update)
        .await
        .unwrap();
    let origin = s.base.trim_end_matches('/').to_owned();
    let link = s.link().await;
    json_out(&s.phone(&["enroll", &link]).await);
    json_out(&s.phone(&["enable-phone-sign-in", UPN]).await);

    let mut child = s
        .phone_command(&["browser-listener", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _listener = Listener(child);
    let started: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(started["port"], port);

    // The real page: seen at the server's origin, then approved by `approve`.
    let page = sign_in_page(&s).await;
    let challenge = attribute(&page, "data-browser-challenge").expect("a bound sign-in");
    let number = number_on(&page);
    let seen = announce(port, &challenge, Some(&origin)).await;
    assert_eq!(seen.status(), 204);
    assert_eq!(
        seen.headers()["access-control-allow-origin"],
        origin.as_str()
    );
    // A caller that is not a page (no Origin) is told nothing.
    assert_eq!(announce(port, &challenge, None).await.status(), 403);
    let request = pending_request(&s).await;
    assert_eq!(request["browser_origin"], origin.as_str());
    let id = request["request_id"].as_str().unwrap().to_owned();
    let approved = json_out(&s.phone(&["approve", &id, "--number", &number]).await);
    assert_eq!(approved["status"], "approved");

    // A relayed page: seen at the relay's origin; `approve` refuses, names it, signs nothing.
    let page = sign_in_page(&s).await;
    let challenge = attribute(&page, "data-browser-challenge").unwrap();
    let number = number_on(&page);
    let relay = "http://localhost:1";
    assert_eq!(announce(port, &challenge, Some(relay)).await.status(), 204);
    let request = pending_request(&s).await;
    let id = request["request_id"].as_str().unwrap().to_owned();
    let out = s.phone(&["approve", &id, "--number", &number]).await;
    assert!(!out.status.success());
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(refused["error"], "browser_origin_mismatch");
    assert_eq!(refused["seen_origin"], relay);
    assert_eq!(refused["expected_origin"], origin.as_str());
    assert_eq!(s.status(&id).await, "pending");
}
