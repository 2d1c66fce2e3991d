//! The SQLite file holds the server signing key and the password hashes: it is created owner-only
//! and a file others may read is refused (docs/OPERATIONS.md, "Storage").
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use signin_domain::store;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_new_sqlite_database_and_its_wal_and_shm_files_are_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signin.db");
    let pool = store::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    // Write through the pool so the WAL and shared-memory files exist.
    store::server_signer(&pool).await.unwrap();
    assert_eq!(mode(&file), 0o600, "{}", file.display());
    for suffix in ["-wal", "-shm"] {
        let side = dir.path().join(format!("signin.db{suffix}"));
        assert!(side.exists(), "{} exists while open", side.display());
        assert_eq!(mode(&side), 0o600, "{}", side.display());
    }
    pool.close().await;
}

#[tokio::test]
async fn a_group_or_world_readable_sqlite_database_is_refused_naming_the_path_and_the_chmod_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signin.db");
    let url = format!("sqlite://{}", file.display());
    store::connect(&url).await.unwrap().close().await;
    for loose in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(loose)).unwrap();
        let err = format!("{:#}", store::connect(&url).await.unwrap_err());
        let path = file.display().to_string();
        assert!(err.contains(&path), "{err}");
        assert!(err.contains(&format!("chmod 600 {path}")), "{err}");
        assert!(err.contains(&format!("{loose:04o}")), "{err}");
    }
    // Fixed as the error says: it opens again.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    store::connect(&url).await.unwrap().close().await;
    // A loose WAL file is refused the same way.
    let wal = dir.path().join("signin.db-wal");
    std::fs::write(&wal, b"").unwrap();
    std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = format!("{:#}", store::connect(&url).await.unwrap_err());
    assert!(
        err.contains(&format!("chmod 600 {}", wal.display())),
        "{err}"
    );
}

/// Every pooled SQLite connection runs in WAL mode with `synchronous = NORMAL` (1): durable
/// across a killed process, fsync at checkpoints (docs/OPERATIONS.md, "Durability").
#[tokio::test]
async fn every_sqlite_connection_is_wal_with_synchronous_normal() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signin.db");
    let pool = store::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    // Hold several connections at once so that more than one is checked.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = pool.acquire().await.unwrap();
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!((synchronous, journal.as_str()), (1, "wal"));
        held.push(conn);
    }
    drop(held);
    pool.close().await;
}
