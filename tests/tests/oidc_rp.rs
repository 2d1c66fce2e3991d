//! The OpenID Provider and CIBA with a relying-party library from another ecosystem: the npm
//! package `openid-client` (tests/oidc-rp/rp.mjs) as the application, a real headless Chromium
//! (through chromedriver) as the user's browser, and a phone on authenticator-core approving.
//!
//! - Code flow: discovery → authorization with PKCE (S256), state and nonce → the server's
//!   sign-in page (UPN, the number) → the phone, which names the client, approves with the
//!   number → the library exchanges the code, validates the ID token against the JWKS and
//!   reads userinfo.
//! - CIBA: poll mode approved, denied and timed out (the server's `expired_token`), and ping
//!   mode approved; the number the phone types is the `binding_message` the library received.
//! - Refresh tokens (`offline_access`): the library refreshes (a new refresh token each time),
//!   presents the spent one again (refused, and the family ends), revokes one (RFC 7009) and
//!   introspects access tokens (RFC 7662).
//! - Sign-out: the library builds the end-session URL (`id_token_hint`,
//!   `post_logout_redirect_uri`, `state`); the provider ends the session and returns with the
//!   state, and the next sign-in needs the phone again. A sign-in the phone denies comes back
//!   to the library's callback as `access_denied` (with `state` and `iss`, which it checks).
//!
//! Needs node, `/usr/bin/chromium`, `/usr/bin/chromedriver`, and `openid-client` installed in
//! `target/oidc-rp/` (`cargo xtask install-toolchains`, which `cargo xtask test` runs). Without
//! them the test fails: it never skips.
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use e2e::chromium::{free_port, Chromium};
use e2e::{TestPhone, TestServer};
use fantoccini::Locator;
use serde_json::{json, Value};
use signin_domain::outbound::OutboundPolicy;
use signin_server::oidc::clients;
use signin_server::ServeConfig;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const BOBBY: &str = "bobby@contoso.test";
const WAIT: Duration = Duration::from_secs(30);

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// `target/oidc-rp/` with `openid-client` installed and the current rp.mjs copied in.
fn rp_dir() -> Result<PathBuf> {
    let dir = target_dir().join("oidc-rp");
    if !dir.join("node_modules/openid-client/package.json").exists() {
        bail!(
            "openid-client is not installed in {}: run `cargo xtask install-toolchains`",
            dir.display()
        );
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-rp/rp.mjs");
    std::fs::copy(&script, dir.join("rp.mjs")).context("copying rp.mjs")?;
    Ok(dir)
}

/// The relying party process, its stdout line by line, and its stderr (for failures).
struct Rp {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Rp {
    fn spawn(secret: &str, args: &[&str]) -> Result<Self> {
        let dir = rp_dir()?;
        let mut child = Command::new("node")
            .current_dir(&dir)
            .arg("rp.mjs")
            .args(args)
            .env("OIDC_CLIENT_SECRET", secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting node (is it installed?)")?;
        let stdout = child.stdout.take().context("node stdout")?;
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err_lines = BufReader::new(child.stderr.take().context("node stderr")?).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(l)) = err_lines.next_line().await {
                let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                s.push_str(&l);
                s.push('\n');
            }
        });
        Ok(Rp {
            _child: child,
            lines: BufReader::new(stdout).lines(),
            stderr,
        })
    }

    /// The next line the script prints.
    async fn line(&mut self, within: Duration) -> Result<String> {
        let line = tokio::time::timeout(within, self.lines.next_line()).await;
        let said = |what: &str| {
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(200)));
            let err = self
                .stderr
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            anyhow::anyhow!("the relying party {what}; its stderr:\n{err}")
        };
        match line {
            Err(_) => Err(said("said nothing in time")),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(None)) => Err(said("exited")),
            Ok(Ok(Some(l))) => Ok(l),
        }
    }
}

async fn ready() -> Result<(TestServer, TestPhone, String)> {
    // The CIBA ping receiver (the openid-client script) listens on plain http on 127.0.0.1:
    // the outbound policy's development setting.
    let server = TestServer::start_configured("Contoso", |c| ServeConfig {
        outbound: OutboundPolicy {
            allow_http_loopback: true,
            ..Default::default()
        },
        ..c
    })
    .await?;
    let link = server.user_with_link(BOBBY, "Bobby Smith").await?;
    let phone = TestPhone::new()?;
    phone.enroll_passwordless(&link).await?;
    let issuer = server.base_url.trim_end_matches('/').to_owned();
    Ok((server, phone, issuer))
}

/// The relying party's page at `path` in the browser: the JSON it shows as its result (an
/// error page fails, with what it said).
async fn rp_result(b: &mut Chromium, rp_port: u16, path: &str) -> Result<Value> {
    b.client
        .goto(&format!("http://127.0.0.1:{rp_port}{path}"))
        .await?;
    let shown = b
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#result, #error"))
        .await?;
    let text = shown.text().await?;
    if shown.attr("id").await?.as_deref() != Some("result") {
        bail!("{path}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// From the relying party's `/login?...` through the provider's sign-in page, the phone
/// approving with the number, back to the relying party: what its callback shows.
async fn sign_in_in_chromium(
    b: &mut Chromium,
    phone: &TestPhone,
    app: &str,
    rp_port: u16,
    login: &str,
) -> Result<Value> {
    b.client
        .goto(&format!("http://127.0.0.1:{rp_port}{login}"))
        .await?;
    let upn = b.wait_for("#upn").await?;
    upn.send_keys(BOBBY).await?;
    b.click("#next").await?;
    let number = b.text("#number").await?;
    let request = phone.request_from(app).await?;
    phone
        .core
        .approve(request.account_id.clone(), request.request_id, number)
        .await?;
    let shown = b
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#result, #error"))
        .await?;
    let text = shown.text().await?;
    if shown.attr("id").await?.as_deref() != Some("result") {
        bail!("the sign-in ended in an error: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_signs_in_with_code_and_pkce_in_chromium_with_the_phone_approving(
) -> Result<()> {
    let (server, phone, issuer) = ready().await?;
    let rp_port = free_port()?;
    let app = clients::add(
        server.running.pool(),
        "Contoso Mail",
        &[format!("http://127.0.0.1:{rp_port}/callback")],
        false,
        None,
    )
    .await?;
    let mut rp = Rp::spawn(
        &app.client_secret,
        &["web", &issuer, &app.client_id, &rp_port.to_string()],
    )?;
    assert_eq!(rp.line(WAIT).await?, "listening");

    let mut b = Chromium::start("oidc").await?;
    b.client
        .goto(&format!("http://127.0.0.1:{rp_port}/login"))
        .await?;
    // The application sent the browser to the provider's own sign-in page.
    b.wait_for("#upn").await?;
    assert_eq!(b.client.current_url().await?.path(), "/signin");
    b.shot("signin").await?;
    let upn = b.wait_for("#upn").await?;
    upn.send_keys(BOBBY).await?;
    b.click("#next").await?;
    let number = b.text("#number").await?;
    b.shot("number").await?;
    let request = phone.request_from("Contoso Mail").await?;
    phone
        .core
        .approve(request.account_id.clone(), request.request_id, number)
        .await?;
    // The page continues by itself: back to the application, which shows what it verified.
    let shown = b
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#result, #error"))
        .await?;
    let text = shown.text().await?;
    b.shot("relying-party").await?;
    assert_eq!(shown.attr("id").await?.as_deref(), Some("result"), "{text}");
    let result: Value = serde_json::from_str(&text)?;
    let claims = &result["claims"];
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["aud"], app.client_id);
    assert_eq!(claims["amr"], json!(["mfa", "swk", "user"]));
    assert_eq!(claims["acr"], signin_server::oidc::ACR_MFA);
    assert!(claims["auth_time"].as_i64().is_some());
    assert!(claims["nonce"].as_str().is_some_and(|n| !n.is_empty()));
    assert_eq!(result["userinfo"]["sub"], claims["sub"]);
    assert_eq!(result["userinfo"]["preferred_username"], BOBBY);
    assert_eq!(result["userinfo"]["name"], "Bobby Smith");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_signs_out_through_the_end_session_endpoint_and_gets_access_denied_when_the_phone_denies(
) -> Result<()> {
    let (server, phone, issuer) = ready().await?;
    let rp_port = free_port()?;
    let rp = format!("http://127.0.0.1:{rp_port}");
    let app = clients::add_with_logout(
        server.running.pool(),
        "Contoso Mail",
        &[format!("{rp}/callback")],
        false,
        None,
        &clients::Logout {
            post_logout_redirect_uris: vec![format!("{rp}/logged-out")],
            backchannel_logout_uri: None,
        },
    )
    .await?;
    let mut node = Rp::spawn(
        &app.client_secret,
        &["web", &issuer, &app.client_id, &rp_port.to_string()],
    )?;
    assert_eq!(node.line(WAIT).await?, "listening");
    let mut b = Chromium::start("oidc-logout").await?;

    // Signed in through the provider's pages with the phone.
    b.client.goto(&format!("{rp}/login")).await?;
    b.wait_for("#upn").await?.send_keys(BOBBY).await?;
    b.click("#next").await?;
    let number = b.text("#number").await?;
    let request = phone.request_from("Contoso Mail").await?;
    phone
        .core
        .approve(request.account_id.clone(), request.request_id, number)
        .await?;
    let text = b.wait_for_text("#result, #error", "").await?;
    assert!(
        b.client.find(Locator::Css("#result")).await.is_ok(),
        "{text}"
    );

    // Sign-out: the library's end-session URL; the provider returns to the application with
    // its state (which the application checks).
    b.client.goto(&format!("{rp}/logout")).await?;
    let shown = b
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#logged-out, #error, #outcome, h1"))
        .await?;
    let said = shown.text().await?;
    b.shot("logged-out").await?;
    assert_eq!(
        shown.attr("id").await?.as_deref(),
        Some("logged-out"),
        "{said}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&said)?,
        json!({"state_ok": true})
    );
    assert!(b
        .client
        .current_url()
        .await?
        .as_str()
        .starts_with(&format!("{rp}/logged-out?")));

    // The session ended: the next sign-in shows the provider's page again, and this time the
    // phone denies. The page says so, then the browser returns to the application, whose
    // library reports the provider's access_denied.
    b.client.goto(&format!("{rp}/login")).await?;
    b.wait_for("#upn").await?;
    assert_eq!(b.client.current_url().await?.path(), "/signin");
    b.wait_for("#upn").await?.send_keys(BOBBY).await?;
    b.click("#next").await?;
    b.wait_for("#number").await?;
    let request = phone.request_from("Contoso Mail").await?;
    phone
        .core
        .deny(request.account_id.clone(), request.request_id)
        .await?;
    b.wait_for_text("#outcome", "denied").await?;
    b.shot("denied").await?;
    let shown = b
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#error, #result"))
        .await?;
    let said = shown.text().await?;
    b.shot("access-denied").await?;
    assert_eq!(shown.attr("id").await?.as_deref(), Some("error"), "{said}");
    let error: Value = serde_json::from_str(&said)?;
    assert_eq!(error["error"], "access_denied", "{said}");
    Ok(())
}

/// What the phone does with a CIBA request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Types the binding message and approves.
    Approve,
    Deny,
    /// Nothing: the request times out.
    Nothing,
}

/// Runs one CIBA request through the library while the phone does `answer`; returns the
/// script's last line.
async fn ciba_once(
    secret: &str,
    args: &[&str],
    phone: &TestPhone,
    app: &str,
    answer: Answer,
) -> Result<String> {
    let mut rp = Rp::spawn(secret, args)?;
    let first = rp.line(WAIT).await?;
    let binding = first
        .strip_prefix("binding_message ")
        .with_context(|| format!("expected the binding message, got {first}"))?
        .to_owned();
    assert!(binding.parse::<u32>().is_ok(), "{binding}");
    match answer {
        Answer::Approve => {
            let r = phone.request_from(app).await?;
            phone
                .core
                .approve(r.account_id.clone(), r.request_id, binding)
                .await?;
        }
        Answer::Deny => {
            let r = phone.request_from(app).await?;
            phone.core.deny(r.account_id.clone(), r.request_id).await?;
        }
        Answer::Nothing => {}
    }
    let mut last = rp.line(Duration::from_secs(60)).await?;
    if last == "pinged" {
        last = rp.line(WAIT).await?;
    }
    Ok(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_ciba_poll_approves_denies_and_times_out_and_ping_approves() -> Result<()> {
    let (server, phone, issuer) = ready().await?;
    let pool = server.running.pool();
    let poll = clients::add(
        pool,
        "Branch Kiosk",
        &["https://kiosk.contoso.test/cb".to_owned()],
        false,
        None,
    )
    .await?;
    let args = ["ciba", &issuer, &poll.client_id, BOBBY, "poll"];

    let approved = ciba_once(
        &poll.client_secret,
        &args,
        &phone,
        "Branch Kiosk",
        Answer::Approve,
    )
    .await?;
    let result: Value = serde_json::from_str(
        approved
            .strip_prefix("result ")
            .with_context(|| format!("expected tokens, got {approved}"))?,
    )?;
    assert_eq!(result["claims"]["aud"], poll.client_id);
    assert_eq!(result["claims"]["amr"], json!(["mfa", "swk", "user"]));
    assert_eq!(result["userinfo"]["preferred_username"], BOBBY);

    let denied = ciba_once(
        &poll.client_secret,
        &args,
        &phone,
        "Branch Kiosk",
        Answer::Deny,
    )
    .await?;
    assert_eq!(denied, "error access_denied");

    let ping_port = free_port()?;
    let endpoint = clients::PingEndpoint::parse(
        &format!("http://127.0.0.1:{ping_port}/ping"),
        &server.running.state().outbound,
    )?;
    let ping = clients::add(
        pool,
        "Call Centre",
        &["https://callcentre.contoso.test/cb".to_owned()],
        false,
        Some(&endpoint),
    )
    .await?;
    let ping_args = [
        "ciba",
        &issuer,
        &ping.client_id,
        BOBBY,
        "ping",
        &ping_port.to_string(),
    ];
    let pinged = ciba_once(
        &ping.client_secret,
        &ping_args,
        &phone,
        "Call Centre",
        Answer::Approve,
    )
    .await?;
    assert!(pinged.starts_with("result "), "{pinged}");

    // Nobody answers: the server's expired_token ends the polling (requested_expiry 6 s).
    let timeout_args = ["ciba", &issuer, &poll.client_id, BOBBY, "poll", "6"];
    let timed_out = ciba_once(
        &poll.client_secret,
        &timeout_args,
        &phone,
        "Branch Kiosk",
        Answer::Nothing,
    )
    .await?;
    assert_eq!(timed_out, "error expired_token");
    Ok(())
}

/// Issue 21: refresh tokens, revocation and introspection through openid-client, after a code
/// flow with `offline_access` in Chromium with the phone approving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_refreshes_rotates_revokes_and_introspects_tokens() -> Result<()> {
    let (server, phone, issuer) = ready().await?;
    let rp_port = free_port()?;
    let app = clients::add(
        server.running.pool(),
        "Contoso Notes",
        &[format!("http://127.0.0.1:{rp_port}/callback")],
        false,
        None,
    )
    .await?;
    let mut rp = Rp::spawn(
        &app.client_secret,
        &["web", &issuer, &app.client_id, &rp_port.to_string()],
    )?;
    assert_eq!(rp.line(WAIT).await?, "listening");
    let mut b = Chromium::start("oidc-refresh").await?;

    let signed_in =
        sign_in_in_chromium(&mut b, &phone, "Contoso Notes", rp_port, "/login?offline=1").await?;
    assert_eq!(signed_in["scope"], "openid profile offline_access");
    assert_eq!(signed_in["refresh_token"], true, "{signed_in}");
    let sub = signed_in["claims"]["sub"].clone();

    let r = rp_result(&mut b, rp_port, "/refresh").await?;
    b.shot("refresh").await?;
    // The access token, as a resource server sees it.
    let seen = &r["introspected"];
    assert_eq!(seen["active"], true, "{r}");
    assert_eq!(seen["client_id"], app.client_id);
    assert_eq!(seen["sub"], sub);
    assert_eq!(seen["scope"], "openid profile offline_access");
    assert_eq!(seen["token_type"], "Bearer");
    assert!(seen["exp"].as_i64().unwrap_or(0) > seen["iat"].as_i64().unwrap_or(i64::MAX));
    // A refresh: new tokens, a new refresh token, a refreshed ID token the library validated.
    let refreshed = &r["refreshed"];
    assert_eq!(refreshed["rotated"], true, "{r}");
    assert_eq!(refreshed["scope"], "openid profile offline_access");
    assert_eq!(refreshed["claims"]["sub"], sub);
    assert_eq!(refreshed["claims"]["aud"], app.client_id);
    assert_eq!(refreshed["userinfo"]["preferred_username"], BOBBY);
    // The spent token again: refused, and the newer one and its access token end with it.
    assert_eq!(r["reuse"], "invalid_grant", "{r}");
    assert_eq!(r["after_reuse"], "invalid_grant", "{r}");
    assert_eq!(r["new_access"], json!({"active": false}));

    // A new family (the browser is still signed in at the provider: no phone this time),
    // revoked by the application.
    let again = rp_result(&mut b, rp_port, "/login?offline=1").await?;
    assert_eq!(again["refresh_token"], true, "{again}");
    let r = rp_result(&mut b, rp_port, "/revoke").await?;
    assert_eq!(r["before"]["active"], true, "{r}");
    assert_eq!(r["unknown"], "ok", "{r}");
    assert_eq!(r["after"], json!({"active": false}), "{r}");
    assert_eq!(r["refresh"], "invalid_grant", "{r}");
    assert_eq!(r["userinfo"], "invalid_token", "{r}");
    Ok(())
}
