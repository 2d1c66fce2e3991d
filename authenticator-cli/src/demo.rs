//! `authenticator demo`: the whole ceremony in one terminal. A sign-in server runs in this
//! process on a loopback port with a fresh SQLite file; the "browser" is its sign-in page API;
//! the "phone" is `authenticator-core` with a software key store and a passcode. The last part
//! is an application signing in through OpenID Connect: the sample app of `demo/app.rs`, driven
//! by the small browser of `demo/browser.rs` through the server's own sign-in pages.
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use authenticator_core::{
    AccountSummary, Authenticator, AuthenticatorError, PendingRequest, PushKind, PushRegistration,
    SoftwareKeyStore, WrappingKeySource,
};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

use crate::passcode::PasscodeVerifier;

mod app;
mod browser;

const UPN: &str = "bobby@contoso.test";
const NAME: &str = "Bobby Smith";
const APP: &str = "My Apps";
const DEMO_PASSCODE: &str = "demo-passcode-2468";

fn section(n: u32, title: &str) {
    println!("\n━━ {n}. {title}");
}

pub async fn run(auto: bool) -> Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    println!(
        "Phone sign-in demo — everything runs locally in {}",
        dir.path().display()
    );

    let mut server = crate::demo_server::start(dir.path()).await?;
    println!("Sign-in server listening on {}", server.base_url);

    section(1, "Admin enables the Authenticator method (all users, mode any, number matching, app name, location)");
    server.enable_policy().await?;
    section(
        2,
        &format!("Admin adds the user {NAME} <{UPN}> and registers the application {APP}"),
    );
    server.add_user(UPN, NAME).await?;
    server.register_application(APP).await?;

    section(
        3,
        "User opens Security info → Add method → Authenticator app, and sees this QR code",
    );
    let link = server.registration_link(UPN).await?;
    let qr = QrCode::new(link.as_bytes()).context("the link does not fit a QR code")?;
    println!("{}", qr.render::<Dense1x2>().quiet_zone(true).build());
    println!("Can't scan it? The same link as text:\n{link}");

    section(
        4,
        "Phone scans the code: a fresh P-256 key, proof of possession, server key pinned",
    );
    let home = dir.path().join("phone");
    std::fs::create_dir_all(&home)?;
    let passcode = if auto {
        Some(DEMO_PASSCODE.to_owned())
    } else {
        std::env::var("AUTHENTICATOR_PASSCODE").ok()
    };
    // --auto answers every prompt itself: it never asks the terminal, not even to confirm the
    // demo passcode.
    let terminal = if auto {
        crate::passcode::no_terminal()
    } else {
        crate::passcode::real_terminal()
    };
    let verifier = Arc::new(PasscodeVerifier::with_terminal(&home, passcode, terminal));
    let keys = Arc::new(SoftwareKeyStore::open(
        home.join("keys"),
        WrappingKeySource::File(home.join("wrapping.key")),
        verifier.clone(),
    )?);
    // The same wrapping key seals the enrollment's TOTP secret (offline fallback) at rest, as
    // on the desktop phone.
    let phone =
        Authenticator::with_secret_store(home.to_string_lossy().into_owned(), keys.clone(), keys)?;
    let account = phone
        .enroll(
            link,
            "Demo phone".into(),
            PushRegistration {
                kind: PushKind::LongPoll,
                token: String::new(),
            },
        )
        .await?;
    println!(
        "Phone: added {} <{}> from {}",
        account.display_name, account.upn, account.server_name
    );

    section(
        5,
        "Phone: Enable phone sign-in (a key that signs only after user verification)",
    );
    if !verifier.is_set() {
        if auto {
            println!("(--auto: the demo passcode is set for you)");
        }
        tokio::task::block_in_place(|| verifier.ensure_set())?;
    }
    phone
        .enable_phone_sign_in(account.account_id.clone())
        .await?;
    println!("Phone: phone sign-in enabled for {}", account.upn);

    section(
        6,
        &format!("Browser: sign in to {APP} — the user types only {UPN}"),
    );
    println!(
        "   (the browser comes from {}, a documentation address the demo's GeoIP database places in {}; \
         the server believes X-Forwarded-For from its proxy, here loopback)",
        crate::demo_server::geoip::BROWSER_ADDRESS,
        crate::demo_server::geoip::BROWSER_LOCATION
    );
    let started = server.start_sign_in(UPN).await?;
    let number = started["number"]
        .as_str()
        .context("the sign-in page gave no number")?
        .to_owned();
    let id = started["id"]
        .as_str()
        .context("the sign-in page gave no id")?
        .to_owned();
    number_box(&number);

    section(7, "Phone: the push arrives (opaque IDs only); details are fetched and their signature checked");
    let pending = phone.poll(30).await?;
    let request = pending
        .into_iter()
        .find(|r| r.account_id == account.account_id)
        .context("no request reached the phone")?;
    show_on_phone(&request);
    approve_on_phone(&phone, &request, Some(&number), auto, true).await?;

    section(8, "Browser: the sign-in page learns the result");
    let status = server.wait_sign_in(&id).await?;
    match status.as_str() {
        "approved" => println!("✔ Signed in as {NAME} <{UPN}> — no password was used."),
        other => bail!("the sign-in ended as {other:?}"),
    }

    sign_in_to_sample_app(&server, &phone, &account, auto).await?;
    server.shutdown().await;
    Ok(())
}

/// The sign-in page's number, as the page shows it.
fn number_box(number: &str) {
    println!("   ┌──────────────────────────────────────────┐");
    println!("   │  Approve sign-in request                 │");
    println!("   │  Open your Authenticator app, and enter  │");
    println!("   │  the number shown to sign in.            │");
    println!("   │                   {number:<6}                 │");
    println!("   └──────────────────────────────────────────┘");
}

/// What the phone's notification shows.
fn show_on_phone(request: &PendingRequest) {
    let left = request
        .expires_at_ms
        .saturating_sub(authenticator_protocol::UnixMillis::now().millis())
        / 1000;
    println!(
        "📱 Are you trying to sign in?   (request {}, expires in {left} s)",
        request.request_id
    );
    println!(
        "   Account: {}   Server: {}",
        request.upn, request.server_name
    );
    println!(
        "   App: {}",
        request.app_name.as_deref().unwrap_or("(hidden by policy)")
    );
    println!(
        "   Location: {}",
        request.location.as_deref().unwrap_or("(hidden by policy)")
    );
}

/// The user types the number on the phone until it is accepted. `--auto` types it (after a
/// wrong one first, with `wrong_first`); `number` is what the page shows (None: a page the
/// demo does not see, in the user's own browser).
async fn approve_on_phone(
    phone: &Authenticator,
    request: &PendingRequest,
    number: Option<&str>,
    auto: bool,
    wrong_first: bool,
) -> Result<()> {
    let mut wrong_tried = !wrong_first;
    loop {
        let typed = if auto {
            let number = number.context("--auto needs the number the page shows")?;
            if wrong_tried {
                number.to_owned()
            } else {
                wrong_tried = true;
                // The same length, the last digit off by one.
                let mut wrong = number.to_owned().into_bytes();
                if let Some(last) = wrong.last_mut() {
                    *last = b'0' + (*last - b'0' + 1) % 10;
                }
                let wrong = String::from_utf8(wrong).unwrap_or_default();
                println!("   (--auto types a wrong number first: {wrong})");
                wrong
            }
        } else {
            prompt("   Enter the number shown to sign in: ")?
        };
        if auto {
            println!("   Enter the number shown to sign in: {typed}");
        }
        match phone
            .approve(
                request.account_id.clone(),
                request.request_id.clone(),
                typed,
            )
            .await
        {
            Ok(_) => {
                println!("📱 Approved.");
                return Ok(());
            }
            Err(AuthenticatorError::WrongNumber { attempts_left }) => {
                println!("   ✗ That number doesn't match the sign-in screen. {attempts_left} attempt(s) left — try again.");
            }
            Err(AuthenticatorError::InvalidNumber) => {
                println!(
                    "   ✗ Type the {} digits shown on the sign-in screen.",
                    request.number_length
                )
            }
            Err(AuthenticatorError::VerificationFailed) => {
                println!("   ✗ Wrong passcode — try again.")
            }
            Err(e) => bail!("the phone could not answer: {e}"),
        }
    }
}

/// The last part: an application signs in through OpenID Connect. The admin registers the
/// sample app (`demo/app.rs`, the template for connecting an app) as a client; a browser
/// opens it, goes through the server's sign-in pages, the phone approves with the number,
/// and the app validates what it gets back.
async fn sign_in_to_sample_app(
    server: &crate::demo_server::DemoServer,
    phone: &Authenticator,
    account: &AccountSummary,
    auto: bool,
) -> Result<()> {
    let app_name = app::NAME;
    let bound = app::bind().await?;
    let redirect_uri = bound.redirect_uri();
    section(
        9,
        &format!("Admin registers {app_name}, a web app that signs in with OpenID Connect"),
    );
    let registered = server
        .register_oidc_client(app_name, &redirect_uri)
        .await
        .context("registering the OpenID Connect client")?;
    println!("   (as with: signin-server admin app add --name {app_name:?} --redirect-uri {redirect_uri})");
    println!(
        "   client_id: {}   (its client secret goes to the app, and is never shown)",
        registered.client_id
    );

    section(
        10,
        &format!("{app_name} starts: OpenID Connect discovery (a relying party on the openidconnect crate)"),
    );
    let mut notes = app::start(
        bound,
        app::Registration {
            issuer: server.issuer(),
            client_id: registered.client_id.clone(),
            client_secret: openidconnect::ClientSecret::new(registered.client_secret),
        },
    )
    .await?;
    let d = &notes.discovered;
    println!("   issuer:        {}", d.issuer);
    println!("   authorization: {}", d.authorization_endpoint);
    println!("   token:         {}", d.token_endpoint);
    println!("   userinfo:      {}", d.userinfo_endpoint);
    println!("   JWKS:          {} ({} key(s))", d.jwks_uri, d.jwks_keys);
    println!("   {app_name} is running at {}/", notes.url);

    section(
        11,
        &format!("Browser: open {app_name} and sign in — the sign-in server's page, the user types only {UPN}"),
    );
    let own_browser = !auto
        && prompt(&format!(
            "   Press Enter to let the demo's browser do it, or type b to sign in yourself\n   with a browser on this computer at {}/ : ",
            notes.url
        ))?
        .eq_ignore_ascii_case("b");
    let browser = browser::Browser::new()?;
    let waiting = if own_browser {
        println!(
            "   Open {}/ and sign in as {UPN}; the phone answers here.",
            notes.url
        );
        None
    } else {
        let home = browser.open(&format!("{}/", notes.url)).await?;
        if home.doc.text_by_id("sign-in").is_none() {
            bail!("{app_name}'s home page has no sign-in link");
        }
        println!("   (the user clicks Sign in)");
        let signin = browser.open(&format!("{}/login", notes.url)).await?;
        println!("   (the user types {UPN} and presses Next)");
        let wait = browser
            .submit(&signin, "/signin", &[("upn", UPN)])
            .await
            .context("the sign-in page's form")?;
        let number = wait
            .doc
            .text_by_id("number")
            .with_context(|| format!("the page {:?} shows no number", wait.doc.title))?;
        number_box(&number);
        Some((wait, number))
    };

    section(
        12,
        &format!("Phone: the request names the registered application, {app_name}"),
    );
    let request = next_request(phone, account, own_browser).await?;
    show_on_phone(&request);
    match request.app_name.as_deref() {
        Some(shown) if shown == app_name => {
            println!("   ✔ The phone shows {shown}, the name the admin registered.")
        }
        other => bail!("the phone shows the application {other:?}, not {app_name:?}"),
    }
    let number = waiting.as_ref().map(|(_, n)| n.as_str());
    approve_on_phone(phone, &request, number, auto, false).await?;

    section(
        13,
        &format!("Browser: back to {app_name}, which exchanges the code, validates the ID token and reads userinfo"),
    );
    if let Some((wait, _)) = waiting {
        // What the page's script does: wait for the phone's answer, then submit the page.
        let id = wait
            .doc
            .attr("data-request-id")
            .context("the number page names no sign-in")?
            .to_owned();
        let mut answered = false;
        for _ in 0..10 {
            let status = browser
                .fetch_json(&wait, &format!("/api/v1/signin/{id}?wait=25"))
                .await
                .context("waiting for the phone's answer")?;
            if status["status"] != "pending" {
                answered = true;
                break;
            }
        }
        if !answered {
            bail!("the sign-in page got no answer from the phone");
        }
        let home = browser.submit(&wait, "complete-form", &[]).await?;
        if !home.status.is_success() || home.doc.text_by_id("signed-in").is_none() {
            bail!(
                "{app_name} did not sign the browser in ({:?})",
                home.doc.title
            );
        }
    }
    let user = notes
        .next_sign_in(Duration::from_secs(if own_browser { 300 } else { 30 }))
        .await?;
    let mut checked =
        "signature (RS256, against the JWKS), issuer, audience, expiry, nonce".to_owned();
    if user.at_hash_checked {
        checked.push_str(", at_hash");
    }
    println!("   ✔ ID token valid: {checked}");
    println!(
        "✔ {app_name} signed in {} <{}>:",
        user.name.as_deref().unwrap_or("?"),
        user.preferred_username.as_deref().unwrap_or("?")
    );
    println!("   sub:       {}", user.sub);
    println!("   amr:       {}", user.amr.join(", "));
    println!("   acr:       {}", user.acr.as_deref().unwrap_or("(none)"));
    println!(
        "   auth_time: {}",
        user.auth_time.as_deref().unwrap_or("(none)")
    );
    println!("   The app's code is authenticator-cli/src/demo/app.rs: the template for connecting an app.");
    notes.shutdown().await;
    Ok(())
}

/// The phone's next request for `account` (a user signing in in their own browser may take
/// a while).
async fn next_request(
    phone: &Authenticator,
    account: &AccountSummary,
    patient: bool,
) -> Result<PendingRequest> {
    let rounds = if patient { 20 } else { 1 };
    for _ in 0..rounds {
        let pending = phone.poll(30).await?;
        if let Some(r) = pending
            .into_iter()
            .find(|r| r.account_id == account.account_id)
        {
            return Ok(r);
        }
    }
    bail!("no request reached the phone")
}

fn prompt(text: &str) -> Result<String> {
    print!("{text}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        bail!("no input (use `demo --auto` to run without a terminal)");
    }
    Ok(line.trim().to_owned())
}
