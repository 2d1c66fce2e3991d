//! The web pages in a real headless Chromium (driven through chromedriver): the admin sets the
//! Authenticator policy and adds a user; the user signs in with a password, opens security info
//! and the QR code decodes to a working registration link; a phone (authenticator-core) enrolls
//! and enables phone sign-in; the user types only the UPN, sees the number, the phone approves
//! with it and the page lands signed in; password + push; deny and "this wasn't me" show their
//! messages. A screenshot of each page goes to `target/screenshots/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian `chromium`, `chromium-driver`;
//! `.ci/run` installs them). Without them the test fails: it never skips.
use anyhow::{Context, Result};
use e2e::chromium::Chromium as Browser;
use e2e::{TestPhone, TestServer};
use signin_domain::accounts;
use signin_domain::accounts::passwords::set_password;
use signin_domain::rules::policy::{self, Mode, Policy, PolicyUpdate, Target};
use signin_server::web;

const ADMIN: &str = "ada@contoso.test";
const ADMIN_PASSWORD: &str = "admin password 1";
const BOBBY: &str = "bobby@contoso.test";
const BOBBY_PASSWORD: &str = "bobby password 1";

fn decode_qr(png: &[u8]) -> Result<String> {
    let img = image::load_from_memory(png)?.to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    let grid = grids.first().context("no QR code in the screenshot")?;
    let (_, content) = grid.decode().context("QR code does not decode")?;
    Ok(content)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_policy_registration_and_phone_sign_in_in_chromium() -> Result<()> {
    let server = TestServer::start("Contoso").await?;
    let base = server.base_url.clone();
    let pool = server.running.pool().clone();
    accounts::add_user(&pool, ADMIN, "Ada Admin", &[web::ADMIN_GROUP.to_owned()]).await?;
    set_password(&pool, ADMIN, ADMIN_PASSWORD).await?;
    // The pilot group the policy targets below exists (the policy page refuses a group
    // nobody is in, issue 22 item 2).
    accounts::add_user(
        &pool,
        "pilot-lead@contoso.test",
        "Pilot Lead",
        &["pilot".to_owned()],
    )
    .await?;
    let mut b = Browser::start("browser").await?;

    // --- The admin signs in with a password (no phone yet) and sets the policy.
    b.goto(&format!("{base}signin")).await?;
    b.wait_for("#upn").await?;
    b.shot("signin-upn").await?;
    b.fill("#upn", ADMIN).await?;
    b.click("#next").await?;
    b.wait_for("#password").await?;
    assert_eq!(b.path().await?, "/signin/password");
    b.fill("#password", "wrong password!").await?;
    b.click("#sign-in").await?;
    assert!(b.text("[role=alert]").await?.contains("incorrect"));
    b.shot("signin-password-wrong").await?;
    b.fill("#password", ADMIN_PASSWORD).await?;
    b.click("#sign-in").await?;
    assert!(b.text("#signed-in").await?.contains("signed in"));
    b.shot("landing-admin").await?;

    // A password alone does not open the console (issue 22, item 7): security info does.
    b.goto(&format!("{base}admin/policy")).await?;
    b.wait_for("#console-needs-phone").await?;
    b.shot("admin-needs-phone").await?;
    b.click("a[href='/me/security-info']").await?;
    b.wait_for("#add-authenticator").await?;
    b.sign_out().await?;
    // With a temporary access pass (the documented bootstrap, `admin user temporary-pass`).
    let pass = accounts::temporary_pass::issue(&pool, ADMIN, 600).await?;
    b.enter_upn(&base, ADMIN).await?;
    b.wait_for("#password").await?;
    b.goto(&format!("{base}signin/pass")).await?;
    b.fill("#pass", &pass).await?;
    b.click("#sign-in-pass").await?;
    b.wait_for("#add-authenticator").await?;

    b.goto(&format!("{base}admin/policy")).await?;
    b.wait_for("#save").await?;
    b.shot("admin-policy").await?;
    // Step 1 of the lab (enable, all users, any) was set by TestServer; now target a group and
    // change the additional context.
    b.set_checkbox("#enabled", true).await?;
    b.click("#target-group").await?;
    b.fill("#group", "pilot").await?;
    b.click("#mode-any").await?;
    b.set_checkbox("#number_matching", true).await?;
    b.set_checkbox("#show_app_name", true).await?;
    b.set_checkbox("#show_location", false).await?;
    b.fill("#number_length", "4").await?;
    // The phishing-resistant option has its own end-to-end test (phishing.rs).
    b.set_checkbox("#phishing_resistant", false).await?;
    b.click("#save").await?;
    assert!(b.text("[role=status]").await?.contains("Policy saved"));
    let expected = Policy {
        enabled: true,
        target: Target::Group("pilot".into()),
        mode: Mode::Any,
        number_matching: true,
        show_app_name: true,
        show_location: false,
        number_length: 4,
        new_device_approval: false,
        phishing_resistant: false,
        exclude: Vec::new(),
        app_name_scope: Default::default(),
        location_scope: Default::default(),
    };
    assert_eq!(policy::load(&pool).await?, expected);
    b.shot("admin-policy-saved").await?;
    // Number matching cannot be off for passwordless: refused, nothing changes.
    b.click("#mode-passwordless").await?;
    b.set_checkbox("#number_matching", false).await?;
    b.click("#save").await?;
    assert!(b
        .text("[role=alert]")
        .await?
        .contains("cannot be switched off"));
    assert_eq!(policy::load(&pool).await?, expected);
    b.shot("admin-policy-refused").await?;
    // Back on: show location too (step 4 of the lab).
    b.click("#mode-any").await?;
    b.set_checkbox("#number_matching", true).await?;
    b.set_checkbox("#show_location", true).await?;
    b.fill("#number_length", "2").await?;
    b.click("#save").await?;
    b.wait_for("[role=status]").await?;
    let saved = policy::load(&pool).await?;
    assert!(saved.show_location);
    assert_eq!(saved.number_length, 2);

    // Users and groups: the admin adds Bobby to the pilot group, with a password.
    b.goto(&format!("{base}admin/users")).await?;
    b.fill("#new-upn", BOBBY).await?;
    b.fill("#new-name", "Bobby Smith").await?;
    b.fill("#new-groups", "pilot").await?;
    b.fill("#new-password", BOBBY_PASSWORD).await?;
    b.click("#add-user").await?;
    assert!(b.text("[role=status]").await?.contains(BOBBY));
    assert!(b.text("#users").await?.contains("Bobby Smith"));
    b.shot("admin-users").await?;
    b.goto(&format!("{base}admin/groups")).await?;
    assert!(b.text("#groups").await?.contains(BOBBY));
    b.shot("admin-groups").await?;
    b.sign_out().await?;

    // A signed-out browser cannot open the admin pages.
    b.goto(&format!("{base}admin/policy")).await?;
    b.wait_for("#upn").await?;

    // --- Bobby signs in with his password (no phone yet) and adds the Authenticator app.
    b.enter_upn(&base, BOBBY).await?;
    b.fill("#password", BOBBY_PASSWORD).await?;
    b.click("#sign-in").await?;
    b.wait_for("#signed-in").await?;
    b.goto(&format!("{base}admin/policy")).await?;
    assert!(b.text("h1").await?.contains("Not allowed"));
    b.goto(&format!("{base}me/security-info")).await?;
    b.wait_for("#no-methods").await?;
    b.click("#add-authenticator").await?;
    let qr = b.wait_for("#qr").await?;
    let link_text = b.text("#registration-link").await?;
    b.shot("security-info-qr").await?;
    let decoded = decode_qr(&qr.screenshot().await?)?;
    assert_eq!(
        decoded,
        link_text.trim(),
        "the QR code holds the link shown"
    );
    assert!(decoded.starts_with("phonesignin://enroll?"));
    assert!(
        decoded.contains(&url_encoded(&base)),
        "the link names this server"
    );

    // The phone scans it, enrolls and enables phone sign-in.
    let phone = TestPhone::new()?;
    let account = phone.enroll_passwordless(&decoded).await?;
    assert!(account.phone_sign_in_enabled);
    b.click("#done").await?;
    assert!(b.text("#methods").await?.contains("Enabled"));
    b.shot("security-info-enrolled").await?;
    b.sign_out().await?;

    // --- Phone sign-in: UPN only → the number → the phone approves with it → signed in.
    b.enter_upn(&base, BOBBY).await?;
    let number = b.text("#number").await?;
    assert_eq!(number.len(), 2, "a two-digit number");
    b.shot("signin-number").await?;
    let request = phone.request_on_page(&b).await?;
    // The server's own pages are the built-in registered application.
    assert_eq!(request.app_name.as_deref(), Some("Sign-in portal"));
    assert_eq!(request.location.as_deref(), Some("Unknown location"));
    phone
        .core
        .approve(request.account_id.clone(), request.request_id, number)
        .await?;
    assert!(b.text("#signed-in").await?.contains("signed in"));
    assert!(b.text("main").await?.contains("Bobby Smith"));
    b.shot("landing-phone-sign-in").await?;
    b.sign_out().await?;

    // --- Mode push: password, then the phone approves as the second factor.
    accounts::set_policy(
        &pool,
        &PolicyUpdate {
            mode: Some(Mode::Push),
            ..Default::default()
        },
    )
    .await?;
    b.enter_upn(&base, BOBBY).await?;
    b.fill("#password", BOBBY_PASSWORD).await?;
    b.click("#sign-in").await?;
    let number = b.text("#number").await?;
    b.shot("signin-push-number").await?;
    let request = phone.request_on_page(&b).await?;
    assert_eq!(request.kind, authenticator_core::RequestKind::Push);
    phone
        .core
        .approve(request.account_id.clone(), request.request_id, number)
        .await?;
    b.wait_for("#signed-in").await?;
    b.sign_out().await?;
    accounts::set_policy(
        &pool,
        &PolicyUpdate {
            mode: Some(Mode::Any),
            ..Default::default()
        },
    )
    .await?;

    // --- Resend gives a new request; the phone denies it: the page says so.
    b.enter_upn(&base, BOBBY).await?;
    b.wait_for("#number").await?;
    let first = phone.request_on_page(&b).await?;
    b.click("#resend").await?;
    // The new page, with the new request.
    b.wait_for(&format!(
        "[data-request-id]:not([data-request-id='{}'])",
        first.request_id
    ))
    .await?;
    let second = phone.request_on_page(&b).await?;
    assert_ne!(
        first.request_id, second.request_id,
        "resend makes a new request"
    );
    phone
        .core
        .deny(second.account_id.clone(), second.request_id)
        .await?;
    let outcome = b.wait_for("#outcome[data-outcome=denied]").await?;
    assert_eq!(outcome.text().await?, "Sign-in denied");
    assert!(b
        .text("[role=alert]")
        .await?
        .contains("denied on your phone"));
    b.shot("signin-denied").await?;

    // --- "This wasn't me": the page says it was reported.
    b.enter_upn(&base, BOBBY).await?;
    b.wait_for("#number").await?;
    let request = phone.request_on_page(&b).await?;
    phone
        .core
        .report_fraud(request.account_id.clone(), request.request_id)
        .await?;
    let outcome = b.wait_for("#outcome[data-outcome=reported]").await?;
    assert_eq!(outcome.text().await?, "Sign-in reported");
    assert!(b.text("[role=alert]").await?.contains("wasn't me"));
    b.shot("signin-reported").await?;

    // --- The admin's audit view shows the story (a new pass: each signs in once).
    let pass = accounts::temporary_pass::issue(&pool, ADMIN, 600).await?;
    b.enter_upn(&base, ADMIN).await?;
    b.wait_for("#password").await?;
    b.goto(&format!("{base}signin/pass")).await?;
    b.fill("#pass", &pass).await?;
    b.click("#sign-in-pass").await?;
    b.wait_for("#add-authenticator").await?;
    b.goto(&format!("{base}admin/audit")).await?;
    let audit = b.text("#audit").await?;
    for event in [
        "policy_changed",
        "enrolled",
        "signin_decision",
        "web_signin",
        "reported",
    ] {
        assert!(audit.contains(event), "audit view shows {event}");
    }
    b.shot("admin-audit").await?;

    b.client.clone().close().await?;
    server.running.shutdown().await;
    Ok(())
}

fn url_encoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The single-page application's page: on load it reads the provider's metadata and keys and
/// calls the token endpoint (an error answer, but one the script can read), then writes what it
/// got into `#result`.
fn spa_page(issuer: &str) -> String {
    format!(
        r#"<!doctype html><title>SPA</title><pre id="result"></pre><script>
const out = {{}};
const note = (k, v) => {{ out[k] = v; }};
(async () => {{
  try {{ note("issuer", (await (await fetch("{issuer}/.well-known/openid-configuration")).json()).issuer); }}
  catch (e) {{ note("issuer", "blocked"); }}
  try {{ note("keys", (await (await fetch("{issuer}/oauth2/jwks")).json()).keys.length); }}
  catch (e) {{ note("keys", "blocked"); }}
  try {{
    const r = await fetch("{issuer}/oauth2/token", {{ method: "POST",
      headers: {{ "Content-Type": "application/x-www-form-urlencoded" }},
      body: "grant_type=authorization_code&code=nope&client_id=" + location.hash.slice(1) }});
    note("token", (await r.json()).error);
  }} catch (e) {{ note("token", "blocked"); }}
  document.getElementById("result").textContent = JSON.stringify(out);
  document.getElementById("result").id = "done";
}})();
</script>"#
    )
}

/// Serves `page` at `/` on a free loopback port: another origin than the server's.
async fn serve_page(page: String) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((origin, task))
}

/// Issue 21, item 3, in a real browser: a page on another origin reads discovery and the JWKS
/// and, when it is a registered public client's origin, the token endpoint's answer; a page on
/// an unregistered origin is blocked by the browser at the token endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_page_app_on_another_origin_calls_the_provider_from_chromium() -> Result<()> {
    let server = TestServer::start("Contoso").await?;
    let issuer = server.base_url.trim_end_matches('/').to_owned();
    let (spa, spa_task) = serve_page(spa_page(&issuer)).await?;
    let (stranger, stranger_task) = serve_page(spa_page(&issuer)).await?;
    let client = signin_domain::oidc::clients::add(
        server.running.pool(),
        "Single Page",
        &[format!("{spa}/cb")],
        true,
        None,
    )
    .await?;
    let mut b = Browser::start("spa").await?;
    let mut results = Vec::new();
    for origin in [&spa, &stranger] {
        b.goto(&format!("{origin}/#{}", client.client_id)).await?;
        let text = b.text("#done").await?;
        let got: serde_json::Value = serde_json::from_str(&text)?;
        results.push(got);
    }
    b.shot("cors").await?;
    spa_task.abort();
    stranger_task.abort();
    let (registered, unregistered) = (&results[0], &results[1]);
    assert_eq!(registered["issuer"], issuer.as_str(), "{registered}");
    assert!(
        registered["keys"].as_u64().unwrap_or(0) >= 1,
        "{registered}"
    );
    // An OAuth error the script could read (the code is made up), not a browser block.
    let error = registered["token"].as_str().unwrap_or("blocked");
    assert!(error.starts_with("invalid_"), "{registered}");
    assert_eq!(
        unregistered["issuer"],
        issuer.as_str(),
        "metadata is for anyone"
    );
    assert_eq!(unregistered["token"], "blocked", "{unregistered}");
    Ok(())
}
