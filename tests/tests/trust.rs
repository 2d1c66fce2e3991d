//! The one trust model end to end (issue 19): the attacks an outside review chained on loopback
//! against a real server and desktop phones, each ending in a refusal now, and the sessions
//! that end with the credential or standing that made them, on every server instance.
use anyhow::{Context, Result};
use e2e::browser::{Browser, Page};
use e2e::{TestPhone, TestServer};
use reqwest::StatusCode;
use signin_domain::accounts::{self, fallback};
use signin_domain::rules::policy::PolicyUpdate;
use signin_domain::rules::risk::{self, RiskConfig};
use signin_domain::store::devices;
use signin_domain::{store, trust};
use signin_server::ServeConfig;

const UPN: &str = "bobby@contoso.test";

async fn set_policy(server: &TestServer, update: PolicyUpdate) -> Result<()> {
    accounts::set_policy(server.running.pool(), &update).await?;
    Ok(())
}

/// Bobby with his own phone (phone sign-in enabled); returns the phone and its account id.
async fn victim(server: &TestServer) -> Result<(TestPhone, String)> {
    let link = server.user_with_link(UPN, "Bobby Smith").await?;
    let phone = TestPhone::with_totp()?;
    let account = phone.enroll_passwordless(&link).await?;
    Ok((phone, account.account_id))
}

/// Whether `account_id` is one of Bobby's devices, and whether it is held.
async fn device_state(server: &TestServer, account_id: &str) -> Result<Option<bool>> {
    Ok(devices::of_user(server.running.pool(), UPN)
        .await?
        .into_iter()
        .find(|d| d.account_id == account_id)
        .map(|d| d.awaiting_approval))
}

async fn remove_device(b: &mut Browser, account_id: &str) -> Result<Page> {
    let csrf = b.csrf("/me/security-info").await?;
    b.post(
        "/me/security-info/devices/remove",
        &[("csrf", &csrf), ("account_id", account_id)],
    )
    .await
}

/// "Add sign-in method: Authenticator app" on the security-info page.
async fn ask_for_link(b: &mut Browser) -> Result<Page> {
    let csrf = b.csrf("/me/security-info").await?;
    b.post("/me/security-info/authenticator", &[("csrf", &csrf)])
        .await
}

/// The registration link a security-info page shows, if any.
fn link_on(page: &Page) -> Option<String> {
    let rest = page.body.split("phonesignin://enroll").nth(1)?;
    let end = rest.find(['"', '<', ' '])?;
    Some(format!("phonesignin://enroll{}", &rest[..end]).replace("&amp;", "&"))
}

async fn audit(server: &TestServer, event: &str) -> Result<Vec<String>> {
    Ok(signin_domain::audit::list(server.running.pool())
        .await?
        .into_iter()
        .filter(|r| r.event == event)
        .map(|r| r.outcome)
        .collect())
}

/// Chain 1 of the review: a phone enrolled with a stolen registration link, its TOTP code on
/// "Use a verification code", from that session the real phone removed and an unheld phone
/// added. Run with the offline fallback off and on, new-device approval off and on: every
/// variant ends in a refusal and the real phone stays.
#[tokio::test(flavor = "multi_thread")]
async fn takeover_with_a_stolen_registration_link_and_the_phones_totp_code_is_refused() -> Result<()>
{
    for fallback_on in [false, true] {
        for approval_on in [false, true] {
            let case = format!("fallback {fallback_on}, new-device approval {approval_on}");
            let server = TestServer::start("Contoso").await?;
            let pool = server.running.pool();
            let (_real, real_id) = victim(&server).await?;
            set_policy(
                &server,
                PolicyUpdate {
                    new_device_approval: Some(approval_on),
                    ..Default::default()
                },
            )
            .await?;
            fallback::set_enabled(pool, fallback_on).await?;

            // The attacker's phone, enrolled with the stolen link.
            let attacker = TestPhone::with_totp()?;
            let attacker_id = attacker.enroll(&server.link(UPN).await?, "Mallory").await?;
            assert_eq!(
                device_state(&server, &attacker_id).await?,
                Some(approval_on),
                "{case}: held exactly when the policy holds new devices"
            );

            // Its TOTP code on the sign-in page.
            let code = attacker.totp_code_for(&attacker_id).await?;
            let mut b = Browser::new(&server);
            let r = b.sign_in_with_code(UPN, &code).await?;
            match (fallback_on, approval_on) {
                (false, _) => {
                    assert_eq!(r.status, StatusCode::FORBIDDEN, "{case}");
                    assert!(r.body.contains("does not allow"), "{case}: {}", r.body);
                    assert!(!b.is_signed_in().await?, "{case}");
                }
                (true, true) => {
                    // A held device has no power at all: not even its TOTP code.
                    assert_eq!(r.status, StatusCode::FORBIDDEN, "{case}: {}", r.body);
                    assert!(
                        r.body.contains("waiting for approval"),
                        "{case}: {}",
                        r.body
                    );
                    assert!(!b.is_signed_in().await?, "{case}");
                    assert!(audit(&server, "access_refused")
                        .await?
                        .iter()
                        .any(|o| o == "device_held method=totp"));
                }
                (true, false) => {
                    // The code signs in (the device is active), but the session is a code's.
                    assert_eq!(r.location.as_deref(), Some("/me/security-info"), "{case}");
                    let r = remove_device(&mut b, &real_id).await?;
                    assert_eq!(r.status, StatusCode::FORBIDDEN, "{case}: {}", r.body);
                    assert!(r.body.contains("To remove a phone"), "{case}");
                    // A phone added from this session is held.
                    let page = ask_for_link(&mut b).await?;
                    let link = link_on(&page).context("a registration link")?;
                    assert!(page.body.contains("held-notice"), "{case}");
                    let second = TestPhone::with_totp()?;
                    let second_id = second.enroll(&link, "Mallory 2").await?;
                    assert_eq!(
                        device_state(&server, &second_id).await?,
                        Some(true),
                        "{case}: held"
                    );
                    let code = second.totp_code_for(&second_id).await?;
                    let r = Browser::new(&server).sign_in_with_code(UPN, &code).await?;
                    assert_eq!(r.status, StatusCode::FORBIDDEN, "{case}: {}", r.body);
                    assert!(audit(&server, "device_held")
                        .await?
                        .iter()
                        .any(|o| o.starts_with("until_approved_or=") && o.ends_with("totp")));
                }
            }
            assert_eq!(
                device_state(&server, &real_id).await?,
                Some(false),
                "{case}: the real phone stays, active"
            );
        }
    }
    Ok(())
}

/// Chain 2 of the review: the attacker's sessions (one from their phone's approval, one from
/// its TOTP code) outlived "this wasn't me" and made backup codes that signed them in again
/// after the pause. Now the report ends every session, and the codes a session of the reported
/// device made go with it.
#[tokio::test(flavor = "multi_thread")]
async fn this_wasnt_me_on_a_new_device_ends_its_sessions_and_the_backup_codes_they_made(
) -> Result<()> {
    let server = TestServer::start("Contoso").await?;
    let pool = server.running.pool();
    let (real, _) = victim(&server).await?;
    fallback::set_enabled(pool, true).await?;
    let attacker = TestPhone::with_totp()?;
    let link = server.link(UPN).await?;
    let attacker_account = attacker.enroll_passwordless(&link).await?;
    let attacker_id = attacker_account.account_id;

    // New-device approval is off: the attacker's phone approves their own phone sign-in…
    let mut strong = Browser::new(&server);
    let r = strong.sign_in_with_phone(UPN, &attacker).await?;
    assert_eq!(r.location.as_deref(), Some("/me"), "{}", r.body);
    // …and that session, made by the attacker's phone, creates backup codes.
    let csrf = strong.csrf("/me/security-info").await?;
    let r = strong
        .post("/me/security-info/backup-codes", &[("csrf", &csrf)])
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    let codes: Vec<String> = r
        .body
        .split("<code>")
        .skip(1)
        .map(|c| c.split("</code>").next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    // A second session from the attacker phone's TOTP code may not make backup codes.
    let mut weak = Browser::new(&server);
    let code = attacker.totp_code_for(&attacker_id).await?;
    let r = weak.sign_in_with_code(UPN, &code).await?;
    assert_eq!(r.location.as_deref(), Some("/me/security-info"));
    let csrf = weak.csrf("/me/security-info").await?;
    let r = weak
        .post("/me/security-info/backup-codes", &[("csrf", &csrf)])
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // Bobby answers the new-device notice on his phone: "This wasn't me".
    let notice = real
        .core
        .poll(5)
        .await?
        .into_iter()
        .find(|r| r.kind == authenticator_core::RequestKind::NewDevice)
        .context("the new-device notice")?;
    real.report_fraud(notice.request_id).await?;

    // Both attacker sessions end at once, on their next request.
    assert!(!strong.is_signed_in().await?);
    assert!(!weak.is_signed_in().await?);
    let csrf = strong.csrf("/signin").await?;
    let r = strong
        .post("/me/security-info/backup-codes", &[("csrf", &csrf)])
        .await?;
    assert_eq!(r.location.as_deref(), Some("/signin"));
    assert_eq!(device_state(&server, &attacker_id).await?, None);
    // The pause ends (an admin resumes Bobby): none of the attacker's backup codes works.
    assert!(risk::resume(pool, UPN).await?);
    for code in &codes[..2] {
        let r = Browser::new(&server).sign_in_with_code(UPN, code).await?;
        assert!(r.body.contains("not valid"), "{}", r.body);
    }
    assert_eq!(
        audit(&server, "backup_codes_revoked").await?,
        ["made_by_reported_device"]
    );
    assert!(audit(&server, "sessions_ended")
        .await?
        .iter()
        .any(|o| o.starts_with("user_paused web_sessions=")));
    Ok(())
}

/// A server whose anti-fatigue limits are the defaults' shape: `burst` per client, a ceiling
/// of `user_burst` over all of them; page starts counted by the `X-Forwarded-For` address.
async fn limited_server(burst: u32, user_burst: u32) -> Result<TestServer> {
    TestServer::start_configured("Contoso", |c| ServeConfig {
        risk: RiskConfig {
            burst,
            user_burst,
            ..Default::default()
        },
        trusted_proxies: vec!["127.0.0.1/32".parse().expect("a network")],
        ..c
    })
    .await
}

/// The sign-in page's start of a phone sign-in for `upn` from client address `ip`: whether a
/// push went out (the page moved on to the number).
async fn page_start(server: &TestServer, ip: &str) -> Result<bool> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = server.base_url.trim_end_matches('/');
    let page = http
        .get(format!("{base}/signin"))
        .header("x-forwarded-for", ip)
        .send()
        .await?;
    let cookie = page
        .headers()
        .get("set-cookie")
        .context("a session cookie")?
        .to_str()?
        .split(';')
        .next()
        .context("cookie")?
        .to_owned();
    let body = page.text().await?;
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context("csrf")?
        .to_owned();
    let r = http
        .post(format!("{base}/signin"))
        .header("x-forwarded-for", ip)
        .header("cookie", cookie)
        .form(&[("csrf", csrf.as_str()), ("upn", UPN)])
        .send()
        .await?;
    Ok(r.headers().get("location").and_then(|l| l.to_str().ok()) == Some("/signin/wait"))
}

/// Chain 3 of the review: the page's start limit was keyed by user + client + address, so one
/// address sent 30 pushes through 10 clients and 40 addresses about 150. Now one ceiling per
/// user holds across every client, address and entry point.
#[tokio::test(flavor = "multi_thread")]
async fn push_bombing_through_ten_clients_and_forty_addresses_stops_at_the_users_ceiling(
) -> Result<()> {
    let server = limited_server(3, 10).await?;
    let pool = server.running.pool();
    victim(&server).await?;
    let mut pushed = 0;
    for i in 0..10 {
        let app = accounts::applications::add(pool, &format!("Client {i}")).await?;
        for _ in 0..3 {
            let r = reqwest::Client::new()
                .post(format!("{}api/v1/signin", server.base_url))
                .basic_auth(&app.client_id, Some(&app.client_secret))
                .json(&serde_json::json!({ "upn": UPN }))
                .send()
                .await?;
            if r.status() == StatusCode::OK {
                pushed += 1;
            } else {
                assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
            }
        }
    }
    for i in 0..40 {
        if page_start(&server, &format!("198.51.100.{}", i + 1)).await? {
            pushed += 1;
        }
    }
    let started = audit(&server, "signin_started").await?.len();
    // One refill may land while the test runs (one per minute).
    assert!((10..=11).contains(&pushed), "{pushed} pushes");
    assert_eq!(started, pushed, "one push per admitted start");
    assert!(audit(&server, "rate_limited")
        .await?
        .iter()
        .any(|o| o.starts_with("cooldown_started") && o.ends_with("by=user")));
    Ok(())
}

/// The raised number length after a burst followed the client that burst; now it follows the
/// user: after one client's burst, another client's and the pages' numbers have 4 digits.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_from_one_client_raises_the_number_length_for_every_client() -> Result<()> {
    let server = limited_server(2, 10).await?;
    let pool = server.running.pool();
    victim(&server).await?;
    let a = accounts::applications::add(pool, "Client A").await?;
    let b = accounts::applications::add(pool, "Client B").await?;
    let start = |app: &accounts::applications::Registered| {
        let req = reqwest::Client::new()
            .post(format!("{}api/v1/signin", server.base_url))
            .basic_auth(app.client_id.clone(), Some(app.client_secret.clone()))
            .json(&serde_json::json!({ "upn": UPN }));
        async move {
            let r = req.send().await?;
            let status = r.status();
            let body: serde_json::Value = r.json().await?;
            anyhow::Ok((status, body["number"].as_str().unwrap_or_default().len()))
        }
    };
    for _ in 0..2 {
        assert_eq!(start(&a).await?, (StatusCode::OK, 2));
    }
    assert_eq!(start(&a).await?.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(start(&b).await?, (StatusCode::OK, 4));
    Ok(())
}

/// Chain 4 of the review: under the phishing-resistant policy a relaying site asked for the
/// TOTP code, got a session, enrolled its own phone from it, and that phone approved the
/// relay's bound sign-ins. Now a session from a code cannot add a phone under that policy,
/// and a link such a session got before the policy came cannot enroll one after.
#[tokio::test(flavor = "multi_thread")]
async fn a_relayed_totp_code_cannot_add_a_phone_under_the_phishing_resistant_policy() -> Result<()>
{
    let server = TestServer::start("Contoso").await?;
    let pool = server.running.pool();
    store::set_setting(pool, store::PUBLIC_URL_SETTING, &server.base_url).await?;
    let (real, real_id) = victim(&server).await?;
    fallback::set_enabled(pool, true).await?;

    // Before the policy: a backup-code session gets a link (for a phone that would be held).
    let backup = fallback::create_backup_codes(pool, UPN, None).await?;
    let mut early = Browser::new(&server);
    let r = early.sign_in_with_code(UPN, &backup[0]).await?;
    assert_eq!(r.location.as_deref(), Some("/me/security-info"));
    let early_link = link_on(&ask_for_link(&mut early).await?).context("a link")?;

    set_policy(
        &server,
        PolicyUpdate {
            phishing_resistant: Some(true),
            ..Default::default()
        },
    )
    .await?;
    // The relay types the code Bobby gave it.
    let code = real.totp_code_for(&real_id).await?;
    let mut relay = Browser::new(&server);
    let r = relay.sign_in_with_code(UPN, &code).await?;
    assert_eq!(
        r.location.as_deref(),
        Some("/me/security-info"),
        "{}",
        r.body
    );
    let r = ask_for_link(&mut relay).await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("phishing-resistant"), "{}", r.body);
    assert!(link_on(&r).is_none(), "no registration link");
    // The link from before the policy enrolls nothing now.
    let relay_phone = TestPhone::with_totp()?;
    let refused = relay_phone.enroll(&early_link, "Relay").await;
    assert!(refused.is_err(), "enrolled: {refused:?}");
    assert_eq!(devices::of_user(pool, UPN).await?.len(), 1, "only Bobby's");
    Ok(())
}

/// A browser signed in with `phone` on `server`.
async fn signed_in_with(server: &TestServer, phone: &TestPhone) -> Result<Browser> {
    let mut b = Browser::new(server);
    let r = b.sign_in_with_phone(UPN, phone).await?;
    anyhow::ensure!(
        r.location.as_deref() == Some("/me"),
        "not signed in: {}",
        r.body
    );
    Ok(b)
}

/// Sessions belong to their credential: removing a device ends the sessions it made, and only
/// those, on every server instance at once (two instances on one database; on PostgreSQL in
/// the PostgreSQL pass).
#[tokio::test(flavor = "multi_thread")]
async fn removing_a_device_ends_the_sessions_it_made_on_every_instance() -> Result<()> {
    let a = TestServer::start("Contoso").await?;
    let b = TestServer::start_on(a.db.clone(), "Contoso", 120).await?;
    let (first, first_id) = victim(&a).await?;
    let second = TestPhone::new()?;
    second.enroll_passwordless(&a.link(UPN).await?).await?;
    // Close the new-device notice so that the first phone's pending list holds sign-ins only.
    for r in first.core.poll(1).await? {
        first
            .core
            .approve(r.account_id, r.request_id, String::new())
            .await
            .ok();
    }
    let by_first = signed_in_with(&a, &first).await?;
    let by_second = signed_in_with(&b, &second).await?;
    let mut by_first_on_b = by_first.on(&b);
    let mut by_second_on_a = by_second.on(&a);
    assert!(
        by_first_on_b.is_signed_in().await?,
        "one database, one session"
    );

    accounts::devices::remove(a.running.pool(), &first_id).await?;
    assert!(!by_first_on_b.is_signed_in().await?);
    assert!(!by_first.on(&a).is_signed_in().await?);
    assert!(
        by_second_on_a.is_signed_in().await?,
        "another device's session stays"
    );
    Ok(())
}

/// Pausing ("this wasn't me" on a sign-in), disabling and "sign out everywhere" end every
/// session of the user on every instance; a disabled user gets no sign-in at all.
#[tokio::test(flavor = "multi_thread")]
async fn pausing_disabling_and_signing_out_everywhere_end_every_session_on_every_instance(
) -> Result<()> {
    let a = TestServer::start("Contoso").await?;
    let b = TestServer::start_on(a.db.clone(), "Contoso", 120).await?;
    let pool = a.running.pool();
    let (phone, _) = victim(&a).await?;

    // "This wasn't me" on a sign-in someone else started: the user is paused.
    let one = signed_in_with(&a, &phone).await?;
    let (id, _) = a.start_sign_in(UPN).await?;
    let pending = phone.core.poll(5).await?;
    let request = pending
        .into_iter()
        .find(|r| r.request_id == id)
        .context("the sign-in reached the phone")?;
    phone.report_fraud(request.request_id).await?;
    assert!(!one.on(&b).is_signed_in().await?);
    assert!(risk::resume(pool, UPN).await?);

    // An admin disables Bobby: his session ends, and the phone signs him in no more.
    let two = signed_in_with(&b, &phone).await?;
    assert!(trust::set_disabled(pool, UPN, true).await?);
    assert!(!two.on(&a).is_signed_in().await?);
    let refused = a.start_sign_in_raw(UPN).await?;
    assert_eq!(
        refused["error"], "policy_disabled",
        "no push for a disabled user"
    );
    let mut again = Browser::new(&a);
    assert!(again.sign_in_with_phone(UPN, &phone).await.is_err());
    assert!(!again.is_signed_in().await?);
    assert!(trust::set_disabled(pool, UPN, false).await?);

    // "Sign out everywhere" on one instance ends the other browser's session on the other.
    let mut three = signed_in_with(&a, &phone).await?;
    let four = signed_in_with(&b, &phone).await?;
    let csrf = three.csrf("/me/security-info").await?;
    let r = three
        .post("/me/security-info/sign-out-everywhere", &[("csrf", &csrf)])
        .await?;
    assert_eq!(r.location.as_deref(), Some("/signin"));
    assert!(!three.is_signed_in().await?);
    assert!(!four.on(&a).is_signed_in().await?);
    let ended = audit(&a, "sessions_ended").await?;
    for why in ["user_paused", "user_disabled", "sign_out_everywhere"] {
        assert!(
            ended.iter().any(|o| o.starts_with(why)),
            "{why} in {ended:?}"
        );
    }
    Ok(())
}

/// User names compare ignoring case (`Upn`, Unicode lower case), everywhere: a user added as
/// `Dana@Fabrikam.test` signs in as `dana@fabrikam.test` on the pages, through the JSON API in
/// any case, and a second user differing only by case is refused.
#[tokio::test(flavor = "multi_thread")]
async fn upns_are_case_insensitive_everywhere() -> Result<()> {
    let server = TestServer::start("Fabrikam").await?;
    let link = server
        .user_with_link("Dana@Fabrikam.test", "Dana Scully")
        .await?;
    let phone = TestPhone::new()?;
    let account = phone.enroll_passwordless(&link).await?;
    assert_eq!(account.upn, "dana@fabrikam.test", "the stored form");
    let mut b = Browser::new(&server);
    let r = b.sign_in_with_phone("dana@fabrikam.test", &phone).await?;
    assert_eq!(r.location.as_deref(), Some("/me"), "{}", r.body);
    let me = b.get("/me").await?;
    assert!(me.body.contains("dana@fabrikam.test"), "{}", me.body);
    for typed in ["DANA@FABRIKAM.TEST", " Dana@fabrikam.Test "] {
        let (id, _) = server.start_sign_in(typed).await?;
        assert_eq!(server.status(&id).await?, "pending", "{typed}");
    }
    let again =
        accounts::add_user(server.running.pool(), "dana@FABRIKAM.test", "Dana 2", &[]).await;
    let refused = again.expect_err("a second Dana");
    assert!(refused.to_string().contains("already exists"), "{refused}");
    Ok(())
}
