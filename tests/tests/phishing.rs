//! The phishing-resistant option (issue 10, PROTOCOL.md §5.9) against a relaying proxy on
//! loopback, in a real headless Chromium, with the Authenticator (authenticator-core) on the
//! same computer running its browser listener.
//!
//! The relay (`e2e::relay`) serves the real pages at `http://localhost:B`, passes everything on
//! to the server at `http://127.0.0.1:A` as if it were the browser, and shows the user the real
//! number. The user types it on the phone — and the phone refuses, because the page it saw was
//! at the relay's origin; the relay's session never signs in. The same user on the real page
//! signs in. Without the listener, the phone cannot approve at all.
use anyhow::Result;
use authenticator_core::{AuthenticatorError, Decision};
use e2e::chromium::Chromium;
use e2e::relay::RelayingProxy;
use e2e::{TestPhone, TestServer};
use signin_domain::rules::policy::PolicyUpdate;
use signin_domain::{accounts, store};

const BOBBY: &str = "bobby@contoso.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relaying_proxy_gets_no_session_while_the_browser_on_the_real_page_signs_in() -> Result<()>
{
    // The Authenticator on this computer, listening for its sign-in pages.
    let phone = TestPhone::new()?;
    let listener_port = phone.core.start_browser_listener(0).await?;
    let server = TestServer::start_configured("Contoso", |c| signin_server::ServeConfig {
        browser_listener_port: listener_port,
        ..c
    })
    .await?;
    let pool = server.running.pool();
    store::set_setting(pool, store::PUBLIC_URL_SETTING, &server.base_url).await?;
    let update = PolicyUpdate {
        phishing_resistant: Some(true),
        ..Default::default()
    };
    accounts::set_policy(pool, &update).await?;
    let real_origin = server.base_url.trim_end_matches('/').to_owned();
    let link = server.user_with_link(BOBBY, "Bobby Smith").await?;
    let account = phone.enroll_passwordless(&link).await?;

    // 1. The user follows a phishing link: the relay's copy of the sign-in page.
    let relay = RelayingProxy::start(&server.base_url).await?;
    let mut victim = Chromium::start("phishing-relay").await?;
    victim.enter_upn(&relay.base_url, BOBBY).await?;
    let number = victim.text("#number").await?;
    // The page reached the Authenticator on this computer, which read the relay's origin.
    victim
        .wait_for_text("#browser-status", "has seen this page")
        .await?;
    victim.shot("relayed-number-page").await?;
    let request = phone.request_on_page(&victim).await?;
    assert_eq!(
        request.browser_origin.as_deref(),
        Some(real_origin.as_str())
    );
    // The user types the right number: refused, naming the page's real whereabouts; nothing
    // was signed or sent.
    let refused = phone
        .core
        .approve(
            account.account_id.clone(),
            request.request_id.clone(),
            number.clone(),
        )
        .await;
    assert_eq!(
        refused,
        Err(AuthenticatorError::BrowserOriginMismatch {
            seen_origin: relay.origin.clone(),
            expected_origin: real_origin.clone(),
        })
    );
    assert_eq!(server.status(&request.request_id).await?, "pending");
    // The relay's browser session is not signed in.
    victim.goto(&format!("{}me", relay.base_url)).await?;
    victim.wait_for("#upn").await?;
    assert_ne!(victim.path().await?, "/me");
    // The user refuses it (deny: a report would pause their own sign-ins for a while).
    assert_eq!(
        phone
            .core
            .deny(account.account_id.clone(), request.request_id.clone())
            .await?,
        Decision::Denied
    );

    // 2. The same user on the real page, same computer: signs in.
    let mut user = Chromium::start("phishing-direct").await?;
    user.enter_upn(&server.base_url, BOBBY).await?;
    let number = user.text("#number").await?;
    user.wait_for_text("#browser-status", "has seen this page")
        .await?;
    user.shot("real-number-page").await?;
    let request = phone.request_on_page(&user).await?;
    assert_eq!(
        phone
            .core
            .approve(
                account.account_id.clone(),
                request.request_id.clone(),
                number
            )
            .await?,
        Decision::Approved
    );
    user.wait_for_path("/me").await?;
    assert!(user.text("main").await?.contains(BOBBY));
    user.shot("signed-in").await?;

    // 3. The listener stopped (or the page open on another computer): the phone cannot
    // approve, whatever the number.
    phone.core.stop_browser_listener();
    user.sign_out().await?;
    user.enter_upn(&server.base_url, BOBBY).await?;
    let number = user.text("#number").await?;
    user.wait_for_text("#browser-status", "has not seen this page")
        .await?;
    let request = phone.request_on_page(&user).await?;
    assert_eq!(
        phone
            .core
            .approve(account.account_id.clone(), request.request_id, number)
            .await,
        Err(AuthenticatorError::BrowserNotSeen)
    );
    Ok(())
}
