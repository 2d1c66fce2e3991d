//! Moving to a new phone with the `authenticator` binary (issue 23, PROTOCOL.md §5.11): two
//! desktop phones (two home folders) and two real sign-in servers with new-device approval on.
//! `move-out` on the old phone prints one link; `move-in` on the new phone carries both
//! accounts (phone sign-in on, active at once) and three TOTP accounts; the link does not work
//! twice; `move-done --remove` clears the old phone. `totp export` / `totp import` move the
//! TOTP accounts through a passphrase-encrypted file.
mod support;

use serde_json::Value;
use signin_domain::accounts;
use signin_domain::rules::policy::PolicyUpdate;
use support::{json_out, setup, Setup, UPN};

const TOTP_URIS: [&str; 3] = [
    "otpauth://totp/GitHub:bobby?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=GitHub",
    "otpauth://totp/Bank:bobby?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Bank&digits=8",
    "otpauth://totp/Mail:bobby?secret=MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U&issuer=Mail&period=60",
];

async fn approval_on(s: &Setup) {
    accounts::set_policy(
        s.server.pool(),
        &PolicyUpdate {
            new_device_approval: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

/// The added TOTP accounts' labels and settings, sorted.
fn totp_labels(list: &Value) -> Vec<(String, u64, u64)> {
    let mut labels: Vec<(String, u64, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["account_id"].is_null())
        .map(|t| {
            (
                format!("{}:{}", t["issuer"].as_str().unwrap(), t["account_name"]),
                t["digits"].as_u64().unwrap(),
                t["period"].as_u64().unwrap(),
            )
        })
        .collect();
    labels.sort();
    labels
}

/// The old phone (`old`'s home): Bobby on both servers with phone sign-in, three TOTP
/// accounts added. `new`'s home is the new phone.
async fn two_phones() -> (Setup, Setup) {
    let old = setup().await;
    let new = setup().await;
    approval_on(&old).await;
    approval_on(&new).await;
    for server in [&old, &new] {
        let link = server.link().await;
        let account = json_out(&old.phone(&["enroll", &link]).await);
        let id = account["account_id"].as_str().unwrap().to_owned();
        json_out(&old.phone(&["enable-phone-sign-in", &id]).await);
    }
    for uri in TOTP_URIS {
        json_out(&old.phone(&["totp", "add", uri]).await);
    }
    (old, new)
}

#[tokio::test(flavor = "multi_thread")]
async fn move_out_and_move_in_carry_both_accounts_and_the_totp_accounts_in_one_link() {
    let (old, new) = two_phones().await;
    let started = json_out(&old.phone(&["move-out"]).await);
    assert_eq!(started["accounts"], 2);
    assert_eq!(started["totp_accounts"], 3);
    let link = started["link"].as_str().unwrap().to_owned();
    assert!(link.starts_with("phonesignin://move?"), "{link}");

    let moved = json_out(&new.phone(&["move-in", &link, "--device-name", "New"]).await);
    let accounts = moved["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    for a in accounts {
        assert_eq!(a["upn"], UPN);
        assert_eq!(a["phone_sign_in_enabled"], true, "{a}");
    }
    assert_eq!(moved["totp_accounts"].as_array().unwrap().len(), 3);
    assert_eq!(
        totp_labels(&json_out(&new.phone(&["totp", "list"]).await)),
        totp_labels(&json_out(&old.phone(&["totp", "list"]).await))
    );

    // Active at once on each server (approval on): a phone sign-in reaches the new phone,
    // which approves it.
    for server in [&old, &new] {
        let started = server.start_sign_in().await;
        let number = started["number"].as_str().unwrap().to_owned();
        let page = started["id"].as_str().unwrap().to_owned();
        let account = accounts
            .iter()
            .find(|a| a["server_url"] == server.base.as_str())
            .unwrap_or_else(|| panic!("an account on {}: {moved}", server.base));
        let pending = json_out(&new.phone(&["pending", "--wait", "10"]).await);
        let request = pending
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "passwordless" && r["account_id"] == account["account_id"])
            .cloned()
            .unwrap_or_else(|| panic!("the sign-in reached the new phone: {pending}"));
        let approved = json_out(
            &new.phone(&[
                "approve",
                request["request_id"].as_str().unwrap(),
                "--number",
                &number,
                "--account",
                request["account_id"].as_str().unwrap(),
            ])
            .await,
        );
        assert_eq!(approved["status"], "approved");
        assert_eq!(server.status(&page).await, "approved");
    }

    // The same link a second time: refused, nothing added.
    let third = setup().await;
    let out = third.phone(&["move-in", &link]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already used"), "{err}");
    assert_eq!(
        json_out(&third.phone(&["accounts"]).await)
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // The user removes the old phone's accounts: the servers forget it.
    assert_eq!(
        json_out(&old.phone(&["move-done", "--remove"]).await)["removed"],
        true
    );
    assert!(json_out(&old.phone(&["accounts"]).await)
        .as_array()
        .unwrap()
        .is_empty());
    for server in [&old, &new] {
        let devices = signin_domain::store::devices::of_user(server.server.pool(), UPN)
            .await
            .unwrap();
        assert_eq!(devices.len(), 1, "only the new phone is left");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn move_done_keep_leaves_the_old_phone_as_it_was() {
    let (old, _new) = two_phones().await;
    json_out(&old.phone(&["move-out"]).await);
    assert_eq!(
        json_out(&old.phone(&["move-done", "--keep"]).await)["removed"],
        false
    );
    assert_eq!(
        json_out(&old.phone(&["accounts"]).await)
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // One of --keep and --remove is required.
    assert!(!old.phone(&["move-done"]).await.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_export_and_import_through_a_passphrase_file() {
    let (old, new) = two_phones().await;
    let file = old.home.path().join("totp-export.json");
    let file = file.to_str().unwrap();
    json_out(
        &old.phone(&[
            "totp",
            "export",
            file,
            "--passphrase",
            "correct horse battery",
        ])
        .await,
    );
    let contents = std::fs::read_to_string(file).unwrap();
    assert!(!contents.contains("JBSWY3DP") && !contents.contains("GitHub"));

    let out = new
        .phone(&[
            "totp",
            "import",
            file,
            "--passphrase",
            "wrong horse battery",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));

    let imported = json_out(
        &new.phone(&[
            "totp",
            "import",
            file,
            "--passphrase",
            "correct horse battery",
        ])
        .await,
    );
    assert_eq!(imported["totp_accounts"].as_array().unwrap().len(), 3);
    assert_eq!(
        totp_labels(&json_out(&new.phone(&["totp", "list"]).await)),
        totp_labels(&json_out(&old.phone(&["totp", "list"]).await))
    );
}
