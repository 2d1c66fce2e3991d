//! Moving to a new phone (issue 23, PROTOCOL.md §5.11) end to end: two desktop phones
//! (authenticator-core over the software key store and secret store, as `authenticator`
//! runs it) and two real servers with new-device approval on. One link moves two accounts on
//! two servers and three TOTP accounts; a link used twice, expired, or vouched for by a
//! removed device is refused with its own error, and nothing is created. The passphrase
//! export file of TOTP accounts round-trips; a wrong passphrase and a changed file are typed
//! errors.
use anyhow::{Context, Result};
use authenticator_core::{
    AuthenticatorError, PushKind, PushRegistration, RequestKind, TotpAccount,
};
use e2e::{TestPhone, TestServer};
use signin_domain::accounts;
use signin_domain::rules::policy::PolicyUpdate;
use signin_domain::store::devices;

const ALICE: &str = "alice@contoso.test";
const ALICE_B: &str = "alice@fabrikam.test";

/// Three TOTP accounts of other services: SHA1/6/30, SHA256/8/60 and a Unicode issuer.
const TOTP_URIS: [&str; 3] = [
    "otpauth://totp/GitHub:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=GitHub",
    "otpauth://totp/Bank:alice%40bank.test?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Bank&algorithm=SHA256&digits=8&period=60",
    "otpauth://totp/Caf%C3%A9:al?secret=MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U&issuer=Caf%C3%A9",
];

fn long_poll() -> PushRegistration {
    PushRegistration {
        kind: PushKind::LongPoll,
        token: String::new(),
    }
}

async fn approval_on(server: &TestServer) -> Result<()> {
    accounts::set_policy(
        server.running.pool(),
        &PolicyUpdate {
            new_device_approval: Some(true),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Two servers with new-device approval on, and the old phone: Alice on both with phone
/// sign-in on, three TOTP accounts added.
struct World {
    contoso: TestServer,
    fabrikam: TestServer,
    old: TestPhone,
}

async fn world() -> Result<World> {
    let contoso = TestServer::start("Contoso").await?;
    let fabrikam = TestServer::start("Fabrikam").await?;
    approval_on(&contoso).await?;
    approval_on(&fabrikam).await?;
    let old = TestPhone::with_totp()?;
    for link in [
        contoso.user_with_link(ALICE, "Alice").await?,
        fabrikam.user_with_link(ALICE_B, "Alice").await?,
    ] {
        let account = old.enroll(&link, "Old phone").await?;
        old.core.enable_phone_sign_in(account).await?;
    }
    for uri in TOTP_URIS {
        old.core.add_totp_account(uri.into()).await?;
    }
    Ok(World {
        contoso,
        fabrikam,
        old,
    })
}

async fn audit(server: &TestServer, event: &str) -> Result<Vec<String>> {
    Ok(signin_domain::audit::list(server.running.pool())
        .await?
        .into_iter()
        .filter(|r| r.event == event)
        .map(|r| r.outcome)
        .collect())
}

/// The TOTP accounts the user added (not an enrollment's own secret), by label.
fn added(all: Vec<TotpAccount>) -> Vec<TotpAccount> {
    let mut added: Vec<TotpAccount> = all.into_iter().filter(|t| t.account_id.is_none()).collect();
    added.sort_by(|a, b| (&a.issuer, &a.account_name).cmp(&(&b.issuer, &b.account_name)));
    added
}

/// Both phones show the same code for the same account now (read old, new, old again: when
/// the two old readings agree, the new one was read in the same period).
async fn same_code(old: &TestPhone, old_id: &str, new: &TestPhone, new_id: &str) -> Result<()> {
    loop {
        let before = old.core.totp_code(old_id.into()).await?.code;
        let moved = new.core.totp_code(new_id.into()).await?.code;
        let after = old.core.totp_code(old_id.into()).await?.code;
        if before == after {
            assert_eq!(moved, before, "the moved secret gives the same codes");
            return Ok(());
        }
    }
}

/// A phone sign-in for `upn` reaches `phone` (one request per account that can answer it,
/// PROTOCOL.md §6.2), which approves it: the account is active there, with phone sign-in.
async fn signs_in(server: &TestServer, phone: &TestPhone, upn: &str) -> Result<()> {
    let (id, number) = server.start_sign_in(upn).await?;
    for _ in 0..5 {
        let pending = phone.core.poll(5).await?;
        if let Some(r) = pending
            .into_iter()
            .find(|r| r.upn == upn && r.kind == RequestKind::Passwordless)
        {
            phone
                .core
                .approve(r.account_id, r.request_id, number)
                .await?;
            assert_eq!(server.status(&id).await?, "approved");
            return Ok(());
        }
    }
    anyhow::bail!("the sign-in did not reach the phone")
}

#[tokio::test(flavor = "multi_thread")]
async fn one_scan_moves_two_accounts_on_two_servers_and_three_totp_accounts_with_approval_on(
) -> Result<()> {
    let w = world().await?;
    let started = w.old.core.move_out().await?;
    assert_eq!((started.accounts, started.totp_accounts), (2, 3));

    let new = TestPhone::with_totp()?;
    let moved = new
        .core
        .move_in(started.link.clone(), "New phone".into(), long_poll())
        .await?;
    assert_eq!(moved.accounts.len(), 2);
    assert_eq!(moved.totp_accounts.len(), 3);
    let mut upns: Vec<&str> = moved.accounts.iter().map(|a| a.upn.as_str()).collect();
    upns.sort();
    assert_eq!(upns, [ALICE, ALICE_B]);

    // Active at once on both servers, though new-device approval is on: the old phone
    // vouched. Audited as moved, naming the vouching device.
    for (server, upn) in [(&w.contoso, ALICE), (&w.fabrikam, ALICE_B)] {
        let mine = moved
            .accounts
            .iter()
            .find(|a| a.upn == upn)
            .context("moved account")?;
        let device = devices::of_user(server.running.pool(), upn)
            .await?
            .into_iter()
            .find(|d| d.account_id == mine.account_id)
            .context("the new phone is one of the user's devices")?;
        assert!(!device.awaiting_approval, "{upn}: not held for approval");
        assert!(mine.phone_sign_in_enabled, "{upn}: phone sign-in moved too");
        let old_id = w
            .old
            .core
            .accounts()
            .await?
            .into_iter()
            .find(|a| a.upn == upn)
            .context("old account")?
            .account_id;
        assert_eq!(
            audit(server, "moved").await?,
            [format!("ok vouched_by={old_id}")]
        );
        assert_eq!(audit(server, "move_vouched").await?.len(), 1);
        signs_in(server, &new, upn).await?;
    }

    // The three TOTP accounts arrived, with their settings and secrets.
    let (old_totp, new_totp) = (
        added(w.old.core.totp_accounts().await?),
        added(new.core.totp_accounts().await?),
    );
    assert_eq!(new_totp.len(), 3);
    for (o, n) in old_totp.iter().zip(&new_totp) {
        assert_eq!(
            (&o.issuer, &o.account_name, &o.algorithm, o.digits, o.period),
            (&n.issuer, &n.account_name, &n.algorithm, n.digits, n.period)
        );
        same_code(&w.old, &o.totp_id, &new, &n.totp_id).await?;
    }
    // The new phone has its own enrollments' offline-fallback secrets, not the old phone's.
    assert_eq!(
        new.core
            .totp_accounts()
            .await?
            .iter()
            .filter(|t| t.account_id.is_some())
            .count(),
        2
    );

    // The user chooses to remove the old phone's accounts: both servers forget it; the new
    // phone keeps working.
    w.old.core.remove_all_accounts().await?;
    assert!(w.old.core.accounts().await?.is_empty());
    assert!(w.old.core.totp_accounts().await?.is_empty());
    for (server, upn) in [(&w.contoso, ALICE), (&w.fabrikam, ALICE_B)] {
        assert_eq!(devices::of_user(server.running.pool(), upn).await?.len(), 1);
        signs_in(server, &new, upn).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_link_scanned_twice_is_refused_the_second_time() -> Result<()> {
    let w = world().await?;
    let started = w.old.core.move_out().await?;
    let first = TestPhone::with_totp()?;
    first
        .core
        .move_in(started.link.clone(), "New phone".into(), long_poll())
        .await?;

    let second = TestPhone::with_totp()?;
    let refused = second
        .core
        .move_in(started.link, "Another phone".into(), long_poll())
        .await;
    assert_eq!(refused.unwrap_err(), AuthenticatorError::MoveAlreadyUsed);
    assert!(second.core.accounts().await?.is_empty());
    assert!(second.core.totp_accounts().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_move_link_is_refused() -> Result<()> {
    let w = world().await?;
    let started = w.old.core.move_out().await?;
    // The ten minutes pass (the server decides expiry by the stored time).
    for server in [&w.contoso, &w.fabrikam] {
        sqlx::query("UPDATE enrollment_codes SET expires_at = 1 WHERE vouched_by IS NOT NULL")
            .execute(server.running.pool())
            .await?;
    }
    let new = TestPhone::with_totp()?;
    let refused = new
        .core
        .move_in(started.link, "New phone".into(), long_poll())
        .await;
    assert_eq!(refused.unwrap_err(), AuthenticatorError::MoveExpired);
    assert!(new.core.accounts().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_vouched_for_by_a_removed_device_is_refused() -> Result<()> {
    let w = world().await?;
    let started = w.old.core.move_out().await?;
    // The old phone's Fabrikam account is removed before the new phone scans (the server is
    // told).
    let fabrikam_account = w
        .old
        .core
        .accounts()
        .await?
        .into_iter()
        .find(|a| a.upn == ALICE_B)
        .context("account")?;
    w.old
        .core
        .remove_account(fabrikam_account.account_id)
        .await?;
    assert!(devices::of_user(w.fabrikam.running.pool(), ALICE_B)
        .await?
        .is_empty());

    let new = TestPhone::with_totp()?;
    let refused = new
        .core
        .move_in(started.link, "New phone".into(), long_poll())
        .await;
    assert_eq!(refused.unwrap_err(), AuthenticatorError::MoveVoucherRemoved);
    assert!(new.core.accounts().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_link_with_another_key_does_not_give_the_totp_accounts() -> Result<()> {
    let w = world().await?;
    let started = w.old.core.move_out().await?;
    let link = authenticator_protocol::moving::MoveLink::parse(&started.link)?;
    let forged = authenticator_protocol::moving::MoveLink {
        key: [0x5a; 32],
        ..link
    };
    let new = TestPhone::with_totp()?;
    let refused = new
        .core
        .move_in(forged.to_url_string(), "New phone".into(), long_poll())
        .await;
    assert!(
        matches!(refused, Err(AuthenticatorError::InvalidMoveLink { .. })),
        "{refused:?}"
    );
    assert!(new.core.accounts().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_file_round_trips_the_added_totp_accounts_and_refuses_a_wrong_passphrase_or_a_changed_file(
) -> Result<()> {
    let w = world().await?;
    let file = w
        .old
        .core
        .export_totp_accounts("correct horse battery".into())
        .await?;
    // Only the accounts the user added: never an enrollment's own secret (nor any key).
    for secret in ["JBSWY3DPEHPK3PXP", "GEZDGNBVGY3TQOJQ", "GitHub", "alice"] {
        assert!(!file.contains(secret), "the file is encrypted");
    }

    let new = TestPhone::with_totp()?;
    assert_eq!(
        new.core
            .import_totp_accounts(file.clone(), "wrong horse battery".into())
            .await
            .unwrap_err(),
        AuthenticatorError::WrongPassphrase
    );
    // A changed ciphertext; a foreign file. (A changed salt or parameter derives another
    // key: that cannot be told from a wrong passphrase, and is refused as one.)
    let mut doc: serde_json::Value = serde_json::from_str(&file)?;
    let mut ciphertext: Vec<char> = doc["ciphertext"].as_str().context("ct")?.chars().collect();
    ciphertext[20] = if ciphertext[20] == 'A' { 'B' } else { 'A' };
    doc["ciphertext"] = ciphertext.into_iter().collect::<String>().into();
    let changed_ciphertext = doc.to_string();
    let mut doc: serde_json::Value = serde_json::from_str(&file)?;
    doc["salt"] = "AAAAAAAAAAAAAAAAAAAAAA".into();
    let changed_salt = doc.to_string();
    for (changed, expected) in [
        (
            changed_ciphertext,
            AuthenticatorError::InvalidExportFile {
                reason: "the file was changed".into(),
            },
        ),
        (changed_salt, AuthenticatorError::WrongPassphrase),
        (
            "{\"format\": \"something else\"}".to_owned(),
            AuthenticatorError::InvalidExportFile {
                reason: "not a TOTP export file".into(),
            },
        ),
    ] {
        let refused = new
            .core
            .import_totp_accounts(changed, "correct horse battery".into())
            .await;
        assert_eq!(refused, Err(expected));
    }
    assert!(
        new.core.totp_accounts().await?.is_empty(),
        "nothing imported"
    );

    let imported = new
        .core
        .import_totp_accounts(file, "correct horse battery".into())
        .await?;
    assert_eq!(imported.len(), 3);
    let old_totp = added(w.old.core.totp_accounts().await?);
    let new_totp = added(new.core.totp_accounts().await?);
    for (o, n) in old_totp.iter().zip(&new_totp) {
        assert_eq!(
            (&o.issuer, &o.account_name, &o.algorithm, o.digits, o.period),
            (&n.issuer, &n.account_name, &n.algorithm, n.digits, n.period)
        );
        same_code(&w.old, &o.totp_id, &new, &n.totp_id).await?;
    }
    assert_eq!(
        new.core
            .export_totp_accounts("short".into())
            .await
            .unwrap_err(),
        AuthenticatorError::InvalidInput {
            reason: "the passphrase must have at least 8 characters".into()
        }
    );
    Ok(())
}
