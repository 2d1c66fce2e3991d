//! The OpenID Provider with Apache httpd and mod_auth_openidc (Debian's `apache2` and
//! `libapache2-mod-auth-openidc`, 2.4.12 on Debian 12) as the relying party: Apache protects
//! `/protected` on a loopback port, a CGI script there shows the environment the module gives
//! the application (`OIDC_CLAIM_*`, the tokens, `REMOTE_USER`), a real headless Chromium is the
//! user's browser and a phone on authenticator-core approves with the number the page shows.
//!
//! - A phone sign-in through the module, and the claims an administrator set (email and
//!   `email_verified`, given and family name, groups) in the application's environment, and
//!   as `OIDC_CLAIM_*` headers (which a browser cannot forge) to an application behind
//!   Apache's reverse proxy.
//! - Logout: the module's `<redirect_uri>?logout=<url>` revokes its tokens at the revocation
//!   endpoint and goes through the end-session endpoint; the server's session ends (the next
//!   visit needs the phone again) and the refresh token stops working.
//! - Back-channel logout: signing out on the provider's pages sends a logout token to the
//!   module of an application that registered `<redirect_uri>?logout=backchannel`, which ends
//!   its session; an application that registered none keeps its own session.
//! - An API behind Apache as an OAuth 2.0 resource server (`AuthType oauth20`): a bearer token
//!   is accepted while the introspection endpoint calls it active, and refused once revoked.
//! - `acr_values` asking for a phishing-resistant sign-in the policy cannot give: the
//!   provider's `unmet_authentication_requirements`, shown by the module.
//! - Refresh: the module refreshes the access token with the refresh token
//!   (`OIDCRefreshAccessTokenBeforeExpiry`), gets a new refresh token each time, and once the
//!   device is removed the refresh fails and the module ends its session.
//! - An OP error: the phone denies, the provider answers `access_denied` (with `state` and
//!   `iss`), and the module shows the provider's error. With `OIDCResponseMode form_post`
//!   (docs/INTEGRATION.md); with the default query response mode, mod_auth_openidc takes any
//!   request to its redirect URI that has `iss` and no `code` for a third-party-initiated
//!   login (its discovery response, `OIDC_DISC_OP_PARAM` is `iss`) and shows a confusing error
//!   instead. The test shows both, and that the same response without `iss` would be shown
//!   as the provider's error.
//!
//! Apache runs from a temporary directory under the test's guard (`e2e::apache`): never the
//! system service. Needs `/usr/sbin/apache2`, mod_auth_openidc, `/usr/bin/chromium` and
//! `/usr/bin/chromedriver` (`cargo xtask test` installs them). Without them the test fails:
//! it never skips.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use e2e::apache::{Apache, SiteFile};
use e2e::chromium::{free_port, Chromium};
use e2e::{TestPhone, TestServer};
use fantoccini::Locator;
use serde_json::Value;
use signin_domain::accounts;
use signin_domain::accounts::applications::Registered;
use signin_domain::oidc::clients::BackchannelLogoutUri;
use signin_domain::outbound::OutboundPolicy;
use signin_server::oidc::{clients, INTROSPECTION_PATH, REVOCATION_PATH, TOKEN_PATH};
use signin_server::ServeConfig;

const BOBBY: &str = "bobby@contoso.test";
const APP: &str = "Contoso Intranet";
const WAIT: Duration = Duration::from_secs(30);

/// The application: prints the environment mod_auth_openidc set (HTML-escaped).
const ENV_CGI: &str = r#"#!/bin/sh
printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
printf '<!DOCTYPE html><html><head><title>Contoso Intranet</title></head><body><pre id="env">'
env | grep -E '^(OIDC_|REMOTE_USER=)' | LC_ALL=C sort | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'
printf '</pre></body></html>\n'
"#;

/// Where the module's logout sends the browser in the end (not protected).
const LOGGED_OUT_CGI: &str = r#"#!/bin/sh
printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
printf '<!DOCTYPE html><html><head><title>Signed out</title></head><body><p id="logged-out">Signed out of Contoso Intranet</p></body></html>\n'
"#;

/// The OpenID Connect settings of one Apache.
struct Rp<'a> {
    issuer: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
    /// `form_post` (what docs/INTEGRATION.md configures) or `query` (the module's default).
    response_mode: &'a str,
    /// More `OIDC*` directives.
    extra: &'a str,
}

/// The httpd.conf of docs/INTEGRATION.md's mod_auth_openidc section, on a loopback port of a
/// private server root.
fn httpd_conf(root: &Path, port: u16, rp: &Rp<'_>) -> String {
    let mut conf = Apache::preamble(
        root,
        port,
        &[
            ("authn_core_module", "mod_authn_core.so"),
            ("authz_core_module", "mod_authz_core.so"),
            ("authz_user_module", "mod_authz_user.so"),
            ("cgi_module", "mod_cgi.so"),
            ("auth_openidc_module", "mod_auth_openidc.so"),
        ],
    );
    let passphrase = random_hex();
    let Rp {
        issuer,
        client_id,
        client_secret,
        response_mode,
        extra,
    } = rp;
    let root = root.display();
    conf.push_str(&format!(
        r#"
DocumentRoot "{root}/htdocs"
<Directory "{root}/htdocs">
    Options +ExecCGI
    SetHandler cgi-script
    Require all granted
</Directory>

OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID {client_id}
OIDCClientSecret {client_secret}
OIDCRedirectURI http://127.0.0.1:{port}/protected/redirect_uri
OIDCCryptoPassphrase {passphrase}
OIDCScope "openid profile email groups offline_access"
OIDCResponseMode {response_mode}
OIDCPKCEMethod S256
OIDCRemoteUserClaim preferred_username
OIDCPassRefreshToken On
{extra}

<Location /protected>
    AuthType openid-connect
    Require valid-user
</Location>
<Location /protected/finance>
    Require claim groups:finance
</Location>
<Location /protected/admins>
    Require claim groups:admins
</Location>
"#
    ));
    conf
}

/// The httpd.conf of an API that Apache protects as an OAuth 2.0 resource server
/// (`AuthType oauth20`): a bearer token is accepted when the provider's introspection
/// endpoint (RFC 7662), asked as the API's own client, says it is active.
fn api_conf(root: &Path, port: u16, issuer: &str, api: &Registered, extra: &str) -> String {
    let mut conf = Apache::preamble(
        root,
        port,
        &[
            ("authn_core_module", "mod_authn_core.so"),
            ("authz_core_module", "mod_authz_core.so"),
            ("authz_user_module", "mod_authz_user.so"),
            ("cgi_module", "mod_cgi.so"),
            ("auth_openidc_module", "mod_auth_openidc.so"),
        ],
    );
    let root = root.display();
    conf.push_str(&format!(
        r#"
DocumentRoot "{root}/htdocs"
<Directory "{root}/htdocs">
    Options +ExecCGI
    SetHandler cgi-script
    Require all granted
</Directory>

OIDCOAuthServerMetadataURL {issuer}/.well-known/openid-configuration
OIDCOAuthIntrospectionEndpointAuth client_secret_basic
OIDCOAuthClientID {client_id}
OIDCOAuthClientSecret {client_secret}
{extra}

<Location /api>
    AuthType oauth20
    Require valid-user
</Location>
"#,
        client_id = api.client_id,
        client_secret = api.client_secret,
    ));
    conf
}

fn site() -> [SiteFile<'static>; 4] {
    [
        SiteFile {
            path: "htdocs/protected/env",
            contents: ENV_CGI,
            executable: true,
        },
        SiteFile {
            path: "htdocs/protected/finance/env",
            contents: ENV_CGI,
            executable: true,
        },
        SiteFile {
            path: "htdocs/protected/admins/env",
            contents: ENV_CGI,
            executable: true,
        },
        SiteFile {
            path: "htdocs/logged-out",
            contents: LOGGED_OUT_CGI,
            executable: true,
        },
    ]
}

/// The application behind Apache's reverse proxy (`mod_proxy_http`), on a loopback port: it
/// answers every request with a page listing the `OIDC_CLAIM_*` request headers Apache sent it, as
/// `name=value` lines (HTML-escaped) in `<pre id="env">`. Ends with the test's runtime.
async fn header_echo() -> Result<u16> {
    async fn echo(headers: axum::http::HeaderMap) -> axum::response::Html<String> {
        let mut lines: Vec<String> = headers
            .iter()
            // HTTP names are case-insensitive and arrive lower-cased; print them the way
            // the module names them (`OIDC_CLAIM_email`).
            .filter_map(|(name, value)| {
                let claim = name.as_str().strip_prefix("oidc_claim_")?;
                Some(format!(
                    "OIDC_CLAIM_{claim}={}",
                    String::from_utf8_lossy(value.as_bytes())
                ))
            })
            .collect();
        lines.sort();
        let escaped = lines
            .join("\n")
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        axum::response::Html(format!(
            "<!DOCTYPE html><html><head><title>Contoso Backend</title></head>\
             <body><pre id=\"env\">{escaped}</pre></body></html>"
        ))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

/// 16 random bytes in hex (the module's cookie and state encryption passphrase).
fn random_hex() -> String {
    use std::io::Read;
    let mut buf = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A server whose user Bobby has a phone (phone sign-in), and the issuer.
async fn ready() -> Result<(TestServer, TestPhone, String)> {
    // Apache's back-channel logout URI is plain http on 127.0.0.1: the outbound policy's
    // development setting.
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

/// Registers the application `name` for the Apache on `port` (its redirect URI, where its
/// logout returns and, with `backchannel`, the module's back-channel logout URI) and starts
/// that Apache.
async fn apache_named(
    server: &TestServer,
    issuer: &str,
    name: &str,
    response_mode: &str,
    backchannel: bool,
    extra: &str,
) -> Result<(Apache, Registered)> {
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let backchannel_logout_uri = backchannel
        .then(|| {
            // The module answers back-channel logout at its redirect URI.
            BackchannelLogoutUri::parse(
                &format!("{base}/protected/redirect_uri?logout=backchannel"),
                &server.running.state().outbound,
            )
        })
        .transpose()?;
    let app = clients::add_with_logout(
        server.running.pool(),
        name,
        &[format!("{base}/protected/redirect_uri")],
        false,
        None,
        &clients::Logout {
            post_logout_redirect_uris: vec![format!("{base}/logged-out")],
            backchannel_logout_uri,
        },
    )
    .await?;
    let rp = Rp {
        issuer,
        client_id: &app.client_id,
        client_secret: &app.client_secret,
        response_mode,
        extra,
    };
    let apache = Apache::start(port, |root| httpd_conf(root, port, &rp), &site())?;
    Ok((apache, app))
}

/// [`apache_named`] for the application `"{APP} ({response_mode})"`, without back-channel
/// logout.
async fn apache_for(
    server: &TestServer,
    issuer: &str,
    response_mode: &str,
    extra: &str,
) -> Result<(Apache, Registered)> {
    let name = format!("{APP} ({response_mode})");
    apache_named(server, issuer, &name, response_mode, false, extra).await
}

/// On the provider's sign-in page: types the UPN, and the phone approves with the number
/// the page shows. Returns the request the phone answered.
async fn approve_on_phone(b: &Chromium, phone: &TestPhone, app: &str) -> Result<()> {
    b.fill("#upn", BOBBY).await?;
    b.click("#next").await?;
    let number = b.text("#number").await?;
    let request = phone.request_from(app).await?;
    phone
        .core
        .approve(request.account_id.clone(), request.request_id, number)
        .await?;
    Ok(())
}

/// The environment the application printed, once its page shows; a page of the module (an
/// error) or of the provider fails with what it says and Apache's error log.
async fn environment(b: &Chromium, apache: &Apache) -> Result<BTreeMap<String, String>> {
    let shown = b
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#env, pre, #upn"))
        .await
        .with_context(|| format!("waiting for the application:\n{}", apache.error_log()))?;
    if shown.attr("id").await?.as_deref() != Some("env") {
        let text = b.client.find(Locator::Css("body")).await?.text().await?;
        bail!(
            "not the application's page ({}): {text}\nApache:\n{}",
            b.client.current_url().await?,
            apache.error_log()
        );
    }
    Ok(shown
        .text()
        .await?
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn var<'a>(env: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str> {
    env.get(name)
        .map(String::as_str)
        .with_context(|| format!("{name} is not in the application's environment: {env:?}"))
}

/// The visible text of the page at hand.
async fn page_text(b: &Chromium) -> Result<String> {
    Ok(b.client.find(Locator::Css("body")).await?.text().await?)
}

/// Waits until the page's title is `title`; returns its text.
async fn wait_for_title(b: &Chromium, title: &str, apache: &Apache) -> Result<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if b.client.title().await? == title {
            return page_text(b).await;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the browser never showed {title:?}; it is at {} showing {:?}\nApache:\n{}",
                b.client.current_url().await?,
                page_text(b).await.unwrap_or_default(),
                apache.error_log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `grant_type=refresh_token` at the token endpoint as the application: the response body.
async fn refresh_grant(issuer: &str, app: &Registered, token: &str) -> Result<Value> {
    let r = reqwest::Client::new()
        .post(format!("{issuer}{TOKEN_PATH}"))
        .basic_auth(&app.client_id, Some(&app.client_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await?;
    Ok(r.json().await?)
}

/// RFC 7662 introspection as the application.
async fn introspect(issuer: &str, app: &Registered, token: &str) -> Result<Value> {
    let r = reqwest::Client::new()
        .post(format!("{issuer}{INTROSPECTION_PATH}"))
        .basic_auth(&app.client_id, Some(&app.client_secret))
        .form(&[("token", token)])
        .send()
        .await?;
    Ok(r.json().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_auth_openidc_signs_in_with_the_phone_and_passes_the_claims_an_administrator_set(
) -> Result<()> {
    let (server, phone, issuer) = ready().await?;
    let pool = server.running.pool();
    // What `admin user set` and `admin user add-to-group` do.
    accounts::attributes::set_attributes(
        pool,
        BOBBY,
        accounts::attributes::AttributesUpdate {
            email: Some("Bobby.Smith@Contoso.test".into()),
            email_verified: Some(true),
            given_name: Some("Bobby".into()),
            family_name: Some("Smith".into()),
        },
    )
    .await?;
    accounts::add_group_member(pool, "staff", BOBBY).await?;
    accounts::add_group_member(pool, "finance", BOBBY).await?;
    // Beside the CGI script, an application behind Apache's reverse proxy, which gets the
    // claims as `OIDC_CLAIM_*` request headers.
    let backend = header_echo().await?;
    let proxy = format!(
        "LoadModule proxy_module {dir}/mod_proxy.so\n\
         LoadModule proxy_http_module {dir}/mod_proxy_http.so\n\
         <Location /protected/backend/>\n    ProxyPass http://127.0.0.1:{backend}/\n</Location>",
        dir = e2e::apache::MODULE_DIR
    );
    let (apache, app) = apache_for(&server, &issuer, "form_post", &proxy).await?;
    let mut b = Chromium::start("mod-auth-openidc").await?;

    // The protected page sends the browser through the module to the provider's sign-in page.
    b.goto(&format!("{}/protected/env", apache.base)).await?;
    b.wait_for("#upn").await?;
    assert_eq!(b.path().await?, "/signin");
    assert!(b
        .client
        .current_url()
        .await?
        .as_str()
        .starts_with(&server.base_url));
    b.shot("signin").await?;
    approve_on_phone(&b, &phone, &format!("{APP} (form_post)")).await?;

    let env = environment(&b, &apache).await?;
    b.shot("application").await?;
    assert_eq!(b.path().await?, "/protected/env");
    // Who signed in, from the ID token the module validated against our JWKS.
    assert_eq!(var(&env, "REMOTE_USER")?, BOBBY, "{env:?}");
    assert_eq!(var(&env, "OIDC_CLAIM_iss")?, issuer);
    assert_eq!(var(&env, "OIDC_CLAIM_aud")?, app.client_id);
    assert_eq!(var(&env, "OIDC_CLAIM_preferred_username")?, BOBBY);
    assert_eq!(var(&env, "OIDC_CLAIM_name")?, "Bobby Smith");
    assert_eq!(var(&env, "OIDC_CLAIM_acr")?, signin_server::oidc::ACR_MFA);
    // The claims the administrator set (the email in lower case, as stored).
    assert_eq!(var(&env, "OIDC_CLAIM_email")?, "bobby.smith@contoso.test");
    assert_eq!(var(&env, "OIDC_CLAIM_email_verified")?, "1");
    assert_eq!(var(&env, "OIDC_CLAIM_given_name")?, "Bobby");
    assert_eq!(var(&env, "OIDC_CLAIM_family_name")?, "Smith");
    let mut groups: Vec<&str> = var(&env, "OIDC_CLAIM_groups")?.split(',').collect();
    groups.sort();
    assert_eq!(groups, ["finance", "staff"]);
    // The tokens the module holds for the application: an access token a resource server
    // accepts, and a refresh token (offline_access).
    let access = var(&env, "OIDC_access_token")?;
    let seen = introspect(&issuer, &app, access).await?;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(
        seen["scope"], "openid profile email groups offline_access",
        "{seen}"
    );
    assert!(!var(&env, "OIDC_refresh_token")?.is_empty());

    // The application behind the reverse proxy gets the same claims as request headers.
    b.goto(&format!("{}/protected/backend/", apache.base))
        .await?;
    let headers = environment(&b, &apache).await?;
    assert_eq!(b.client.title().await?, "Contoso Backend");
    assert_eq!(var(&headers, "OIDC_CLAIM_preferred_username")?, BOBBY);
    assert_eq!(
        var(&headers, "OIDC_CLAIM_email")?,
        "bobby.smith@contoso.test"
    );
    assert_eq!(var(&headers, "OIDC_CLAIM_email_verified")?, "1");
    assert_eq!(var(&headers, "OIDC_CLAIM_given_name")?, "Bobby");
    assert_eq!(var(&headers, "OIDC_CLAIM_family_name")?, "Smith");
    assert_eq!(
        var(&headers, "OIDC_CLAIM_sub")?,
        var(&env, "OIDC_CLAIM_sub")?
    );
    let mut groups: Vec<&str> = var(&headers, "OIDC_CLAIM_groups")?.split(',').collect();
    groups.sort();
    assert_eq!(groups, ["finance", "staff"]);
    // A browser cannot forge them: the module removes `OIDC_*` headers it did not set.
    b.cdp("Network.enable", serde_json::json!({})).await?;
    b.cdp(
        "Network.setExtraHTTPHeaders",
        serde_json::json!({"headers": {
            "OIDC_CLAIM_groups": "admins",
            "OIDC_CLAIM_email": "mallory@contoso.test",
            "OIDC_CLAIM_forged": "yes",
        }}),
    )
    .await?;
    b.goto(&format!("{}/protected/backend/", apache.base))
        .await?;
    let forged = environment(&b, &apache).await?;
    assert_eq!(
        var(&forged, "OIDC_CLAIM_email")?,
        "bobby.smith@contoso.test"
    );
    assert_eq!(
        var(&forged, "OIDC_CLAIM_groups")?,
        var(&headers, "OIDC_CLAIM_groups")?
    );
    assert!(!forged.contains_key("OIDC_CLAIM_forged"), "{forged:?}");
    b.cdp(
        "Network.setExtraHTTPHeaders",
        serde_json::json!({"headers": {}}),
    )
    .await?;

    // Apache authorises on the groups claim: finance yes, admins no.
    b.goto(&format!("{}/protected/finance/env", apache.base))
        .await?;
    let finance = environment(&b, &apache).await?;
    assert_eq!(var(&finance, "REMOTE_USER")?, BOBBY);
    b.goto(&format!("{}/protected/admins/env", apache.base))
        .await?;
    // (Apache answers an authenticated user's authorization failure with 401.)
    wait_for_title(&b, "401 Unauthorized", &apache).await?;
    let log = apache.error_log();
    assert!(
        log.contains(
            "user bobby@contoso.test: authorization failure for \"/protected/admins/env\""
        ),
        "{log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_auth_openidc_logout_goes_through_the_end_session_endpoint_and_ends_the_session(
) -> Result<()> {
    let (server, phone, issuer) = ready().await?;
    let (apache, app) = apache_for(&server, &issuer, "form_post", "").await?;
    let mut b = Chromium::start("mod-auth-openidc-logout").await?;

    b.goto(&format!("{}/protected/env", apache.base)).await?;
    approve_on_phone(&b, &phone, &format!("{APP} (form_post)")).await?;
    let env = environment(&b, &apache).await?;
    let refresh = var(&env, "OIDC_refresh_token")?.to_owned();
    let access = var(&env, "OIDC_access_token")?.to_owned();
    // The browser is signed in at the provider too (its own pages say so).
    b.goto(&format!("{}me", server.base_url)).await?;
    b.wait_for("main").await?;
    assert_eq!(b.path().await?, "/me");

    // The module's logout: its session ends, and it sends the browser to the provider's
    // end-session endpoint, which ends the server's session and returns to the application.
    let back_to = format!("{}/logged-out", apache.base);
    let logout = format!(
        "{}/protected/redirect_uri?logout={}",
        apache.base,
        url::form_urlencoded::byte_serialize(back_to.as_bytes()).collect::<String>()
    );
    b.goto(&logout).await?;
    let said = wait_for_title(&b, "Signed out", &apache).await?;
    b.shot("logged-out").await?;
    assert!(said.contains("Signed out of Contoso Intranet"), "{said}");
    assert_eq!(b.path().await?, "/logged-out");
    // The provider's session ended on the way (the end-session endpoint ends it; the
    // module's own logout only forgets its session and revokes its tokens).
    b.goto(&format!("{}me", server.base_url)).await?;
    b.wait_for("#upn").await?;
    assert_eq!(b.path().await?, "/signin");
    // On its way out the module revoked its tokens at the revocation endpoint (RFC 7009):
    // the refresh token, with its family.
    let revoked: Vec<String> = signin_domain::audit::list(server.running.pool())
        .await?
        .into_iter()
        .filter(|r| r.event == "tokens_revoked")
        .map(|r| r.outcome)
        .collect();
    let by_module = format!("revoked_by_client client_id={} ", app.client_id);
    assert!(
        revoked.iter().any(|o| o.starts_with(&by_module)),
        "{revoked:?}"
    );
    // The tokens the session gave the module end with it.
    assert_eq!(introspect(&issuer, &app, &access).await?["active"], false);
    let refused = refresh_grant(&issuer, &app, &refresh).await?;
    assert_eq!(refused["error"], "invalid_grant", "{refused}");

    // Not signed back in silently: the protected page needs the sign-in page and the phone.
    b.goto(&format!("{}/protected/env", apache.base)).await?;
    b.wait_for("#upn").await?;
    assert_eq!(b.path().await?, "/signin");
    b.shot("signin-again").await?;
    approve_on_phone(&b, &phone, &format!("{APP} (form_post)")).await?;
    let again = environment(&b, &apache).await?;
    assert_eq!(var(&again, "REMOTE_USER")?, BOBBY);
    assert_ne!(var(&again, "OIDC_access_token")?, access);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_auth_openidc_ends_its_session_when_the_provider_signs_out_through_the_back_channel(
) -> Result<()> {
    let (server, phone, issuer) = ready().await?;
    // Two applications in one browser: the intranet registered the module's back-channel
    // logout URI, the wiki did not.
    let intranet_name = format!("{APP} (back-channel)");
    let (intranet, _) =
        apache_named(&server, &issuer, &intranet_name, "form_post", true, "").await?;
    // Cookies do not tell ports apart: two modules on one host need their own cookie names.
    let wiki_cookies = "OIDCCookie contoso_wiki_session\nOIDCStateCookiePrefix contoso_wiki_state_";
    let wiki_name = "Contoso Wiki";
    let (wiki, _) = apache_named(
        &server,
        &issuer,
        wiki_name,
        "form_post",
        false,
        wiki_cookies,
    )
    .await?;
    let mut b = Chromium::start("mod-auth-openidc-backchannel").await?;

    b.goto(&format!("{}/protected/env", intranet.base)).await?;
    approve_on_phone(&b, &phone, &intranet_name).await?;
    let env = environment(&b, &intranet).await?;
    assert_eq!(var(&env, "REMOTE_USER")?, BOBBY);
    // The ID token names the provider's session (`sid`): the logout token will name it too.
    assert!(!var(&env, "OIDC_CLAIM_sid")?.is_empty(), "{env:?}");
    // The wiki signs in on the provider's session (single sign-on: no page, no phone).
    b.goto(&format!("{}/protected/env", wiki.base)).await?;
    let env = environment(&b, &wiki).await?;
    assert_eq!(var(&env, "REMOTE_USER")?, BOBBY);

    // The user signs out on the provider's own pages: its session ends, and the provider
    // POSTs a logout token to the intranet's module.
    b.goto(&format!("{}me", server.base_url)).await?;
    b.wait_for("main").await?;
    b.sign_out().await?;
    b.shot("signed-out-at-provider").await?;

    // Delivery runs in the background: the intranet's page shows, until the module has
    // ended the session the logout token names, after which the page needs a sign-in again.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        b.goto(&format!("{}/protected/env", intranet.base)).await?;
        let shown = b
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#env, #upn, pre"))
            .await?;
        if shown.attr("id").await?.as_deref() == Some("upn") {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the intranet's module never ended its session (the browser is at {})\nApache:\n{}",
                b.client.current_url().await?,
                intranet.error_log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(b.path().await?, "/signin");
    b.shot("intranet-signs-in-again").await?;

    // The wiki registered no back-channel logout URI: nobody told it, and its module's own
    // session goes on (the provider's sign-out reaches only the applications that listen).
    b.goto(&format!("{}/protected/env", wiki.base)).await?;
    let env = environment(&b, &wiki).await?;
    assert_eq!(var(&env, "REMOTE_USER")?, BOBBY);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_auth_openidc_as_a_resource_server_accepts_only_tokens_the_introspection_endpoint_calls_active(
) -> Result<()> {
    let (server, phone, issuer) = ready().await?;
    let (intranet, app) = apache_for(&server, &issuer, "form_post", "").await?;
    // The API is its own confidential client: it authenticates at the introspection endpoint.
    // (Its redirect URI is never used: an API only introspects.)
    let api_client = clients::add(
        server.running.pool(),
        "Contoso API",
        &["http://127.0.0.1:9/unused".to_owned()],
        false,
        None,
    )
    .await?;
    let port = free_port()?;
    let api = Apache::start(
        port,
        |root| {
            api_conf(
                root,
                port,
                &issuer,
                &api_client,
                // Introspect every request (by default the module caches an active answer
                // until the token's exp, and would let the revoked token in below).
                "OIDCOAuthTokenIntrospectionInterval -1",
            )
        },
        &[SiteFile {
            path: "htdocs/api/env",
            contents: ENV_CGI,
            executable: true,
        }],
    )?;
    let b = Chromium::start("mod-auth-openidc-api").await?;

    // The intranet's sign-in gives it an access token for the API.
    b.goto(&format!("{}/protected/env", intranet.base)).await?;
    approve_on_phone(&b, &phone, &format!("{APP} (form_post)")).await?;
    let env = environment(&b, &intranet).await?;
    let access = var(&env, "OIDC_access_token")?.to_owned();
    let sub = var(&env, "OIDC_CLAIM_sub")?.to_owned();

    let http = reqwest::Client::new();
    let call = |token: Option<&str>| {
        let mut r = http.get(format!("{}/api/env", api.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    // The token is accepted: the module asked the introspection endpoint, and the API runs
    // for the user the answer names.
    let r = call(Some(&access)).await?;
    assert_eq!(r.status(), 200, "Apache:\n{}", api.error_log());
    let body = r.text().await?;
    assert!(body.contains(&format!("REMOTE_USER={sub}")), "{body}");
    // No token, and a token the provider never issued: 401 with a bearer challenge.
    let r = call(None).await?;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()?
        .starts_with("Bearer"));
    let r = call(Some("not-a-token-of-this-provider")).await?;
    assert_eq!(r.status(), 401);

    // The intranet revokes its access token (RFC 7009): the API refuses it from then on.
    let revoked = http
        .post(format!("{issuer}{REVOCATION_PATH}"))
        .basic_auth(&app.client_id, Some(&app.client_secret))
        .form(&[
            ("token", access.as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await?;
    assert_eq!(revoked.status(), 200);
    let r = call(Some(&access)).await?;
    assert_eq!(r.status(), 401, "Apache:\n{}", api.error_log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_auth_openidc_refreshes_the_access_token_until_the_device_is_removed() -> Result<()> {
    let (server, phone, issuer) = ready().await?;
    // Access tokens live 600 s: refreshing when fewer than 599 s are left refreshes on the
    // first request a second after the last token; `logout_on_error` ends the module's
    // session when a refresh fails.
    let (apache, app) = apache_for(
        &server,
        &issuer,
        "form_post",
        "OIDCRefreshAccessTokenBeforeExpiry 599 logout_on_error",
    )
    .await?;
    let mut b = Chromium::start("mod-auth-openidc-refresh").await?;

    b.goto(&format!("{}/protected/env", apache.base)).await?;
    approve_on_phone(&b, &phone, &format!("{APP} (form_post)")).await?;
    let first = environment(&b, &apache).await?;
    let (access, refresh) = (
        var(&first, "OIDC_access_token")?.to_owned(),
        var(&first, "OIDC_refresh_token")?.to_owned(),
    );

    // The module refreshes: a new access token, and a new refresh token (rotation).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    b.client.refresh().await?;
    let second = environment(&b, &apache).await?;
    b.shot("refreshed").await?;
    let new_access = var(&second, "OIDC_access_token")?.to_owned();
    let new_refresh = var(&second, "OIDC_refresh_token")?.to_owned();
    assert_ne!(new_access, access, "the access token was not refreshed");
    assert_ne!(new_refresh, refresh, "the refresh token was not rotated");
    let expires = |env: &BTreeMap<String, String>| -> Result<i64> {
        Ok(var(env, "OIDC_access_token_expires")?.parse()?)
    };
    assert!(expires(&second)? > expires(&first)?);
    let seen = introspect(&issuer, &app, &new_access).await?;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(var(&second, "REMOTE_USER")?, BOBBY);

    // The device goes (`admin device remove`): the next refresh fails, and the module ends
    // its session instead of going on with the tokens it has.
    let account = phone.core.accounts().await?[0].account_id.clone();
    accounts::devices::remove(server.running.pool(), &account).await?;
    assert_eq!(
        introspect(&issuer, &app, &new_access).await?["active"],
        false
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.client.refresh().await?;
    let said = wait_for_title(&b, "Logged Out", &apache).await?;
    b.shot("refresh-failed").await?;
    assert!(said.contains("Logged Out"), "{said}");
    let log = apache.error_log();
    assert!(
        log.contains("access_token could not be refreshed"),
        "the module did not say the refresh failed:\n{log}"
    );
    let refused = refresh_grant(&issuer, &app, &new_refresh).await?;
    assert_eq!(refused["error"], "invalid_grant", "{refused}");

    // The protected page asks for a sign-in again.
    b.goto(&format!("{}/protected/env", apache.base)).await?;
    b.wait_for("#upn").await?;
    assert_eq!(b.path().await?, "/signin");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_auth_openidc_shows_the_providers_access_denied_when_the_phone_denies() -> Result<()> {
    let (server, phone, issuer) = ready().await?;

    // form_post (docs/INTEGRATION.md): the module shows the provider's error.
    let (apache, _) = apache_for(&server, &issuer, "form_post", "").await?;
    let mut b = Chromium::start("mod-auth-openidc-denied").await?;
    b.goto(&format!("{}/protected/env", apache.base)).await?;
    deny_on_phone(&mut b, &phone, &format!("{APP} (form_post)")).await?;
    let said = wait_for_title(&b, "Error", &apache).await?;
    b.shot("access-denied").await?;
    assert_eq!(b.path().await?, "/protected/redirect_uri");
    assert!(
        said.contains("OpenID Connect Provider error: access_denied"),
        "{said}\nApache:\n{}",
        apache.error_log()
    );
    drop(b);
    drop(apache);

    // The module's default response mode (query): the same answer, with `iss` in the query,
    // is taken for a third-party-initiated login (`iss` is the module's discovery parameter)
    // and never read as an error response.
    let (apache, _) = apache_for(&server, &issuer, "query", "").await?;
    let mut b = Chromium::start("mod-auth-openidc-denied-query").await?;
    b.goto(&format!("{}/protected/env", apache.base)).await?;
    deny_on_phone(&mut b, &phone, &format!("{APP} (query)")).await?;
    let said = wait_for_title(&b, "Error", &apache).await?;
    b.shot("query-iss").await?;
    let answered = b.client.current_url().await?;
    let params: BTreeMap<String, String> = answered.query_pairs().into_owned().collect();
    assert_eq!(answered.path(), "/protected/redirect_uri");
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(params.get("iss"), Some(&issuer));
    assert!(params.contains_key("state"));
    assert!(!said.contains("access_denied"), "{said}");
    assert!(said.contains("target_link_uri"), "{said}");
    // The same answer without `iss` is read as the error response it is.
    let mut without_iss = answered.clone();
    without_iss
        .query_pairs_mut()
        .clear()
        .extend_pairs(params.iter().filter(|(k, _)| k.as_str() != "iss"));
    b.goto(without_iss.as_str()).await?;
    let said = wait_for_title(&b, "Error", &apache).await?;
    assert!(
        said.contains("OpenID Connect Provider error: access_denied"),
        "{said}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_auth_openidc_asking_for_a_phishing_resistant_acr_gets_the_providers_unmet_authentication_requirements(
) -> Result<()> {
    let (server, _phone, issuer) = ready().await?;
    // The application asks for a phishing-resistant sign-in; the policy does not bind
    // sign-ins to the browser, so the provider cannot give one: no sign-in page, no phone,
    // no code, but the error, which the module shows.
    let acr = url::form_urlencoded::byte_serialize(
        signin_domain::oidc::ACR_PHISHING_RESISTANT.as_bytes(),
    )
    .collect::<String>();
    let (apache, _) = apache_for(
        &server,
        &issuer,
        "form_post",
        &format!("OIDCAuthRequestParams acr_values={acr}"),
    )
    .await?;
    let mut b = Chromium::start("mod-auth-openidc-acr").await?;
    b.goto(&format!("{}/protected/env", apache.base)).await?;
    let said = wait_for_title(&b, "Error", &apache).await?;
    b.shot("unmet").await?;
    assert_eq!(b.path().await?, "/protected/redirect_uri");
    assert!(
        said.contains("OpenID Connect Provider error: unmet_authentication_requirements"),
        "{said}\nApache:\n{}",
        apache.error_log()
    );
    Ok(())
}

/// On the provider's sign-in page: types the UPN and the phone denies; the page says so and
/// the browser goes back to the application.
async fn deny_on_phone(b: &mut Chromium, phone: &TestPhone, app: &str) -> Result<()> {
    b.fill("#upn", BOBBY).await?;
    b.click("#next").await?;
    b.wait_for("#number").await?;
    let request = phone.request_from(app).await?;
    phone
        .core
        .deny(request.account_id.clone(), request.request_id)
        .await?;
    b.wait_for_text("#outcome", "denied").await?;
    b.shot("denied").await?;
    Ok(())
}
