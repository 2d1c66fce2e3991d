//! `authenticator demo`: the whole ceremony in one terminal. A sign-in server runs in this
//! process on a loopback port with a fresh SQLite file; the "browser" is its sign-in page API;
//! the "phone" is `authenticator-core` with a software key store and a passcode.
use std::io::{BufRead, Write};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use authenticator_core::{
    Authenticator, AuthenticatorError, PushKind, PushRegistration, SoftwareKeyStore,
    WrappingKeySource,
};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

use crate::passcode::PasscodeVerifier;

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
    let verifier = Arc::new(PasscodeVerifier::new(&home, passcode));
    let keys = Arc::new(SoftwareKeyStore::open(
        home.join("keys"),
        WrappingKeySource::File(home.join("wrapping.key")),
        verifier.clone(),
    )?);
    let phone = Authenticator::new(home.to_string_lossy().into_owned(), keys)?;
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
    let started = server.start_sign_in(UPN).await?;
    let number = started["number"]
        .as_str()
        .context("the sign-in page gave no number")?
        .to_owned();
    let id = started["id"]
        .as_str()
        .context("the sign-in page gave no id")?
        .to_owned();
    println!("   ┌──────────────────────────────────────────┐");
    println!("   │  Approve sign-in request                 │");
    println!("   │  Open your Authenticator app, and enter  │");
    println!("   │  the number shown to sign in.            │");
    println!("   │                   {number:<2}                     │");
    println!("   └──────────────────────────────────────────┘");

    section(7, "Phone: the push arrives (opaque IDs only); details are fetched and their signature checked");
    let pending = phone.poll(30).await?;
    let request = pending
        .into_iter()
        .find(|r| r.account_id == account.account_id)
        .context("no request reached the phone")?;
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

    let mut wrong_tried = false;
    loop {
        let typed = if auto {
            if wrong_tried {
                number.clone()
            } else {
                wrong_tried = true;
                // The same length, the last digit off by one.
                let mut wrong = number.clone().into_bytes();
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
                break;
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

    section(8, "Browser: the sign-in page learns the result");
    let status = server.wait_sign_in(&id).await?;
    match status.as_str() {
        "approved" => println!("✔ Signed in as {NAME} <{UPN}> — no password was used."),
        other => bail!("the sign-in ended as {other:?}"),
    }
    server.shutdown().await;
    Ok(())
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
