//! The `authenticator` binary against a real sign-in server on a loopback port: the commands a
//! person or a script types, their output and exit codes.
mod support;

use std::process::Command;

use serde_json::Value;
use support::{json_out, setup, BIN, UPN};

#[tokio::test(flavor = "multi_thread")]
async fn enroll_enable_pending_and_approve_from_the_command_line() {
    let s = setup().await;
    let link = s.link().await;
    let account = json_out(&s.phone(&["enroll", &link]).await);
    assert_eq!(account["upn"], UPN);
    assert_eq!(account["phone_sign_in_enabled"], false);
    let id = account["account_id"].as_str().unwrap().to_owned();

    // The account can be named by UPN.
    let enabled = json_out(&s.phone(&["enable-phone-sign-in", UPN]).await);
    assert_eq!(enabled["phone_sign_in_enabled"], true);
    let accounts = json_out(&s.phone(&["accounts"]).await);
    assert_eq!(accounts.as_array().unwrap().len(), 1);
    assert_eq!(accounts[0]["account_id"], id.as_str());

    let started = s.start_sign_in().await;
    let number = started["number"].as_str().unwrap().to_owned();
    let page = started["id"].as_str().unwrap().to_owned();

    let pending_out = s.phone(&["pending", "--wait", "10"]).await;
    let pending = json_out(&pending_out);
    assert_eq!(pending.as_array().unwrap().len(), 1);
    let request = pending[0]["request_id"].as_str().unwrap().to_owned();
    assert_eq!(pending[0]["app_name"], "My Apps");
    assert_eq!(pending[0]["location"], "Unknown location");
    // The phone never learns or prints the number.
    assert!(pending[0].get("number").is_none());

    let wrong = format!("{:02}", (number.parse::<u32>().unwrap() + 1) % 100);
    let out = s.phone(&["approve", &request, "--number", &wrong]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "wrong number exits 3; stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"], "wrong_number");
    assert_eq!(err["attempts_left"], 2);
    assert_eq!(s.status(&page).await, "pending");

    let out = s.phone(&["approve", &request, "--number", "4"]).await;
    assert!(!out.status.success(), "a malformed number is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("as many digits as the sign-in screen shows"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let approved = json_out(&s.phone(&["approve", &request, "--number", &number]).await);
    assert_eq!(approved["status"], "approved");
    assert_eq!(s.status(&page).await, "approved");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_passcode_does_not_approve() {
    let s = setup().await;
    let link = s.link().await;
    json_out(&s.phone(&["enroll", &link]).await);
    json_out(&s.phone(&["enable-phone-sign-in", UPN]).await);
    let started = s.start_sign_in().await;
    let number = started["number"].as_str().unwrap().to_owned();
    let pending = json_out(&s.phone(&["pending", "--wait", "10"]).await);
    let request = pending[0]["request_id"].as_str().unwrap().to_owned();

    let mut cmd = Command::new(BIN);
    cmd.arg("--home")
        .arg(s.home.path())
        .args(["approve", &request, "--number", &number])
        .env("AUTHENTICATOR_PASSCODE", "not-the-passcode");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(s.status(started["id"].as_str().unwrap()).await, "pending");
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_and_report_from_the_command_line() {
    let s = setup().await;
    json_out(&s.phone(&["enroll", &s.link().await]).await);
    json_out(&s.phone(&["enable-phone-sign-in", UPN]).await);
    for (command, status) in [("deny", "denied"), ("report", "reported")] {
        let started = s.start_sign_in().await;
        // Without `pending` first: the phone fetches what it missed.
        let pending = json_out(&s.phone(&["pending"]).await);
        let request = pending[0]["request_id"].as_str().unwrap().to_owned();
        let out = json_out(&s.phone(&[command, &request]).await);
        assert_eq!(out["status"], status);
        assert_eq!(s.status(started["id"].as_str().unwrap()).await, status);
    }
}

#[test]
fn malformed_registration_links_are_refused_with_a_clear_message() {
    let home = tempfile::tempdir().unwrap();
    for link in [
        "",
        "https://example.com",
        "phonesignin://enroll?v=1",
        "phonesignin://enroll?v=9&server=x&code=y&fp=z",
    ] {
        let out = Command::new(BIN)
            .arg("--home")
            .arg(home.path())
            .args(["enroll", link])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{link}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("error:") && !err.contains("panicked"),
            "{link}: {err}"
        );
    }
}

#[test]
fn the_demo_runs_the_whole_ceremony_by_itself() {
    let out = Command::new(BIN).args(["demo", "--auto"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("phonesignin://enroll?v=1"),
        "prints the registration link"
    );
    assert!(
        text.contains("That number doesn't match"),
        "shows the wrong-number refusal"
    );
    assert!(text.contains("Signed in as Bobby Smith"), "ends signed in");

    // The sample application signs in through OpenID Connect: the phone names the
    // registered client, and the app validated the ID token and read userinfo.
    let oidc = text
        .split_once("Admin registers Contoso Notes")
        .map(|(_, rest)| rest)
        .expect("the OpenID Connect section runs");
    assert!(oidc.contains("   App: Contoso Notes\n"), "{oidc}");
    assert!(
        oidc.contains("The phone shows Contoso Notes, the name the admin registered"),
        "{oidc}"
    );
    assert!(
        oidc.contains("✔ ID token valid: signature (RS256, against the JWKS), issuer, audience, expiry, nonce, at_hash"),
        "{oidc}"
    );
    assert!(
        oidc.contains("✔ Contoso Notes signed in Bobby Smith <bobby@contoso.test>:"),
        "{oidc}"
    );
    let claim = |name: &str| {
        oidc.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} line: {oidc}"))
    };
    let sub = claim("sub");
    assert!(
        sub.len() >= 22
            && sub
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "sub is opaque, never the user name: {sub:?}"
    );
    assert_eq!(claim("amr"), "mfa, swk, user");
    assert_eq!(claim("acr"), "urn:phonesignin:acr:mfa");
    assert!(claim("auth_time").starts_with("20"), "{oidc}");
    // Never a token, an authorization code or the client secret (the registration link,
    // earlier, is meant to be shown: it is the QR code's text).
    for secret in ["eyJ", "code=", "client_secret:", "access_token"] {
        assert!(!oidc.contains(secret), "prints {secret:?}: {oidc}");
    }
}

/// The offline fallback from the command line (issue 11): the enrollment's TOTP secret shows a
/// code that signs in on the server's fallback, once; an `otpauth://` import shows RFC 6238
/// codes; `totp list` / `totp remove`.
#[tokio::test(flavor = "multi_thread")]
async fn totp_add_list_code_and_remove_from_the_command_line() {
    use signin_domain::accounts::fallback::{self, Method, Outcome};
    use signin_domain::accounts::totp::Totp;

    let s = setup().await;
    let link = s.link().await;
    let account = json_out(&s.phone(&["enroll", &link]).await);
    let id = account["account_id"].as_str().unwrap().to_owned();
    let list = json_out(&s.phone(&["totp", "list"]).await);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["account_id"], id.as_str());
    assert_eq!(list[0]["account_name"], UPN);

    // The code of the enrollment's secret, named by UPN, signs in on the server once.
    let code = json_out(&s.phone(&["code", UPN]).await);
    let text = code["code"].as_str().unwrap().to_owned();
    assert_eq!(text.len(), 6);
    let left = code["seconds_remaining"].as_u64().unwrap();
    assert!((1..=30).contains(&left), "{code}");
    let pool = s.server.pool();
    fallback::set_enabled(pool, true).await.unwrap();
    assert_eq!(
        fallback::sign_in_with_code(pool, &s.server.state().passwords, UPN, &text, None)
            .await
            .unwrap(),
        Outcome::SignedIn {
            method: Method::Totp,
            device: Some(id.clone()),
        }
    );
    assert_eq!(
        fallback::sign_in_with_code(pool, &s.server.state().passwords, UPN, &text, None)
            .await
            .unwrap(),
        Outcome::Replayed
    );
    // Without --json only the code is on stdout.
    let mut cmd = Command::new(BIN);
    cmd.arg("--home")
        .arg(s.home.path())
        .args(["code", &id])
        .env("AUTHENTICATOR_PASSCODE", "2468-pass");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        printed.len() == 6 && printed.bytes().all(|b| b.is_ascii_digit()),
        "{printed}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("valid for"));

    // An import: "12345678901234567890" in base32, SHA1, 6 digits, 30 s.
    let uri = "otpauth://totp/GitHub:bobby?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=GitHub";
    let added = json_out(&s.phone(&["totp", "add", uri]).await);
    assert_eq!(added["issuer"], "GitHub");
    assert_eq!(added["account_id"], Value::Null);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = json_out(&s.phone(&["code", "GitHub:bobby"]).await);
    let reference = Totp::new(b"12345678901234567890".to_vec(), "GitHub", "bobby");
    let expected = [reference.code_at(now), reference.code_at(now + 30)];
    assert!(
        expected.contains(&code["code"].as_str().unwrap().to_owned()),
        "{code}"
    );

    // Bad URIs are errors that do not echo the secret; unknown accounts too.
    let out = s
        .phone(&["totp", "add", "otpauth://totp/x?secret=GEZDGNBV&digits=12"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TOTP") && !err.contains("GEZDGNBV"), "{err}");
    assert_eq!(s.phone(&["code", "nobody"]).await.status.code(), Some(1));

    let totp_id = added["totp_id"].as_str().unwrap();
    json_out(&s.phone(&["totp", "remove", totp_id]).await);
    assert_eq!(
        json_out(&s.phone(&["totp", "list"]).await)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Removing the sign-in account removes its TOTP account too.
    json_out(&s.phone(&["remove", &id]).await);
    assert!(json_out(&s.phone(&["totp", "list"]).await)
        .as_array()
        .unwrap()
        .is_empty());
}
