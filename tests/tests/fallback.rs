//! The offline fallback end to end (issue 11): a real `signin-server` process and a phone on
//! `authenticator-core`. The phone's TOTP code (the secret came with its enrollment) signs the
//! user in once on the sign-in page; the same code again is refused (one use per time step);
//! wrong codes are bounded per window; backup codes created on the security-info page work
//! once each; each step is audited.
use std::sync::Arc;

use anyhow::Result;
use authenticator_core::{Authenticator, PushKind, PushRegistration};
use e2e::browser::Browser;
use e2e::{TestPhone, TestServer};
use reqwest::StatusCode;
use signin_domain::accounts::fallback;

/// A phone whose software key store also seals its TOTP secrets (`TestPhone::with_totp`).
fn phone() -> Result<(Arc<Authenticator>, TestPhone)> {
    let phone = TestPhone::with_totp()?;
    Ok((phone.core.clone(), phone))
}

fn longpoll() -> PushRegistration {
    PushRegistration {
        kind: PushKind::LongPoll,
        token: String::new(),
    }
}

/// A 6-digit code that is none of `avoid`.
fn other_code(avoid: &[&str]) -> String {
    (0u32..)
        .map(|i| format!("{:06}", (i * 104_729 + 31_337) % 1_000_000))
        .find(|c| !avoid.contains(&c.as_str()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_phones_totp_code_signs_in_once_and_wrong_codes_are_bounded() -> Result<()> {
    let server = TestServer::start("Contoso").await?;
    let pool = server.running.pool();
    let upn = "bobby@contoso.test";
    let link = server.user_with_link(upn, "Bobby Smith").await?;
    let (core, _dir) = phone()?;
    let account = core
        .enroll(link, "Bobby's phone".into(), longpoll())
        .await?;
    let totps = core.totp_accounts().await?;
    assert_eq!(totps.len(), 1);
    assert_eq!(
        totps[0].account_id.as_deref(),
        Some(account.account_id.as_str())
    );
    assert_eq!(
        (totps[0].issuer.as_str(), totps[0].account_name.as_str()),
        ("Contoso", upn)
    );
    let totp_id = totps[0].totp_id.clone();

    // Off by default: the page refuses, and no code is used up.
    let code = core.totp_code(totp_id.clone()).await?;
    let mut b = Browser::new(&server);
    let r = b.sign_in_with_code(upn, &code.code).await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("does not allow"), "{}", r.body);

    fallback::set_enabled(pool, true).await?;
    let code = core.totp_code(totp_id.clone()).await?;
    let mut b = Browser::new(&server);
    let r = b.sign_in_with_code(upn, &code.code).await?;
    assert_eq!(
        r.location.as_deref(),
        Some("/me/security-info"),
        "{}",
        r.body
    );
    let me = b.get("/me/security-info").await?;
    assert_eq!(me.status, StatusCode::OK);
    assert!(
        me.body.contains("Sign out") && me.body.contains("Bobby's phone"),
        "signed in: {}",
        me.body
    );

    // The same code in another browser: refused (one use per time step).
    let mut thief = Browser::new(&server);
    let r = thief.sign_in_with_code(upn, &code.code).await?;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("not valid"), "{}", r.body);
    assert!(thief.get("/me").await?.location.as_deref() == Some("/signin"));

    // Wrong codes: five per window, then refused before any check (429, Retry-After).
    let now = core.totp_code(totp_id.clone()).await?;
    let wrong = other_code(&[&code.code, &now.code]);
    for _ in 0..fallback::TRIES_PER_WINDOW - 1 {
        let r = thief.sign_in_with_code(upn, &wrong).await?;
        assert!(r.body.contains("not valid"), "{}", r.body);
    }
    let r = thief.sign_in_with_code(upn, &wrong).await?;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));

    let audit = signin_domain::audit::list(pool).await?;
    let outcomes: Vec<&str> = audit
        .iter()
        .filter(|r| r.event == "fallback_used")
        .map(|r| r.outcome.as_str())
        .collect();
    for expected in ["disabled", "totp:ok", "totp:replay", "totp:refused"] {
        assert!(outcomes.contains(&expected), "{expected} in {outcomes:?}");
    }
    assert!(outcomes.iter().any(|o| o.starts_with("throttled")));
    assert!(audit
        .iter()
        .any(|r| r.event == "web_signin" && r.outcome == "totp"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_codes_from_the_security_info_page_work_once_each() -> Result<()> {
    let server = TestServer::start("Contoso").await?;
    let pool = server.running.pool();
    let upn = "dave@contoso.test";
    server.user_with_link(upn, "Dave").await?;
    fallback::set_enabled(pool, true).await?;
    // Dave signs in once with a temporary access pass and creates backup codes.
    let pass = signin_domain::accounts::temporary_pass::issue(pool, upn, 600).await?;
    let mut b = Browser::new(&server);
    let csrf = b.csrf("/signin").await?;
    b.post("/signin", &[("csrf", &csrf), ("upn", upn)]).await?;
    let csrf = b.csrf("/signin/pass").await?;
    let r = b
        .post("/signin/pass", &[("csrf", &csrf), ("pass", &pass)])
        .await?;
    assert_eq!(r.location.as_deref(), Some("/me/security-info"));
    let info = b.get("/me/security-info").await?;
    assert!(
        info.body.contains("You have no backup codes."),
        "{}",
        info.body
    );
    let csrf = b.csrf("/me/security-info").await?;
    let r = b
        .post("/me/security-info/backup-codes", &[("csrf", &csrf)])
        .await?;
    let codes: Vec<String> = r
        .body
        .split("<code>")
        .skip(1)
        .map(|c| c.split("</code>").next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{}", r.body);
    let info = b.get("/me/security-info").await?;
    assert!(
        info.body.contains("10 of 10 backup codes unused"),
        "{}",
        info.body
    );
    // Shown once: the security-info page never shows them again.
    assert!(!codes.iter().any(|c| info.body.contains(c.as_str())));

    let mut other = Browser::new(&server);
    let r = other.sign_in_with_code(upn, &codes[4]).await?;
    assert_eq!(
        r.location.as_deref(),
        Some("/me/security-info"),
        "{}",
        r.body
    );
    let mut again = Browser::new(&server);
    let r = again.sign_in_with_code(upn, &codes[4]).await?;
    assert!(r.body.contains("not valid"), "{}", r.body);
    let r = again
        .sign_in_with_code(upn, &codes[7].to_uppercase())
        .await?;
    assert_eq!(
        r.location.as_deref(),
        Some("/me/security-info"),
        "{}",
        r.body
    );
    let info = again.get("/me/security-info").await?;
    assert!(
        info.body.contains("8 of 10 backup codes unused"),
        "{}",
        info.body
    );

    let audit = signin_domain::audit::list(pool).await?;
    assert!(audit
        .iter()
        .any(|r| r.event == "backup_codes_created" && r.outcome == "ok"));
    let used: Vec<&str> = audit
        .iter()
        .filter(|r| r.event == "fallback_used")
        .map(|r| r.outcome.as_str())
        .collect();
    assert_eq!(
        used,
        ["backup_code:ok", "backup_code:refused", "backup_code:ok"]
    );
    Ok(())
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// RFC 6238 Appendix B end to end (SHA-1; the seed is the ASCII "12345678901234567890"): the
/// server's TOTP gives the RFC's codes (six digits: the last six of its eight), and the phone,
/// given that secret through the `otpauth://` link the server makes, shows the server's code.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_and_the_phone_compute_the_rfc_6238_codes() -> Result<()> {
    let seed = b"12345678901234567890".to_vec();
    let server = signin_domain::accounts::totp::Totp::new(seed, "Contoso", "bobby@contoso.test");
    for (secs, rfc) in [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(server.code_at(secs), rfc[2..], "T = {secs}");
    }
    let (phone, _dir) = phone()?;
    let account = phone.add_totp_account(server.uri().to_string()).await?;
    let before = unix_secs();
    let shown = phone.totp_code(account.totp_id).await?;
    let after = unix_secs();
    // The same step as the server's, whichever side of a step boundary the call fell on.
    assert!(
        [server.code_at(before), server.code_at(after)].contains(&shown.code),
        "the phone's code is not the server's"
    );
    assert_eq!(shown.period, 30);
    Ok(())
}
