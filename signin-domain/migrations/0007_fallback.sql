-- Offline fallback: a TOTP secret per enrolled device, backup codes, and the
-- bound on fallback tries. Portable SQL (SQLite and PostgreSQL).

-- One TOTP secret per device (account), given to the phone at enrollment (PROTOCOL.md §5.2).
-- `secret_enc` is AES-256-GCM under the server's fallback key (settings table): base64url of
-- nonce || ciphertext || tag, bound to the account id. `last_step` is the newest RFC 6238 time
-- step that signed someone in: a code of that step or an older one is refused (replay).
CREATE TABLE totp_secrets (
    account_id TEXT PRIMARY KEY REFERENCES devices (account_id) ON DELETE CASCADE,
    upn        TEXT NOT NULL REFERENCES users (upn),
    secret_enc TEXT NOT NULL,
    last_step  BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX totp_secrets_upn ON totp_secrets (upn);

-- Backup codes: one set per user (a new set replaces the old one). Every code of a set is
-- hashed with Argon2id under the set's random salt, so a try costs one hash; only the hashes
-- are stored.
CREATE TABLE backup_code_sets (
    upn        TEXT PRIMARY KEY REFERENCES users (upn),
    salt       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE backup_codes (
    upn       TEXT NOT NULL REFERENCES users (upn),
    code_hash TEXT NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (upn, code_hash)
);

-- Fallback tries per user: `window_tries` since `window_start` (a try counts before it is
-- checked, and a success gives it back), and `consecutive` failures since the last success
-- (past the bound the fallback stays locked until an admin unlocks it).
CREATE TABLE fallback_tries (
    upn          TEXT PRIMARY KEY REFERENCES users (upn),
    window_start BIGINT NOT NULL,
    window_tries BIGINT NOT NULL,
    consecutive  BIGINT NOT NULL
);
