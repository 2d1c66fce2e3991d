-- Portable SQL (SQLite now, PostgreSQL later): TEXT/BIGINT/INTEGER only, times are Unix
-- milliseconds, booleans are INTEGER 0/1, identifiers are random TEXT (no autoincrement).

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    upn          TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE user_groups (
    upn        TEXT NOT NULL REFERENCES users (upn),
    group_name TEXT NOT NULL,
    PRIMARY KEY (upn, group_name)
);

-- Exactly one row (id = 1): the Authenticator policy.
CREATE TABLE policy (
    id              INTEGER PRIMARY KEY,
    enabled         INTEGER NOT NULL,
    target          TEXT NOT NULL,
    mode            TEXT NOT NULL,
    number_matching INTEGER NOT NULL,
    show_app_name   INTEGER NOT NULL,
    show_location   INTEGER NOT NULL,
    updated_at      BIGINT NOT NULL
);
INSERT INTO policy (id, enabled, target, mode, number_matching, show_app_name, show_location, updated_at)
VALUES (1, 1, 'all', 'any', 1, 1, 1, 0);

-- Only SHA-256(code) is stored; the code itself never is.
CREATE TABLE enrollment_codes (
    code_hash  TEXT PRIMARY KEY,
    upn        TEXT NOT NULL REFERENCES users (upn),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    challenge  TEXT,
    used_at    BIGINT
);

CREATE TABLE devices (
    account_id              TEXT PRIMARY KEY,
    upn                     TEXT NOT NULL REFERENCES users (upn),
    device_public_key       TEXT NOT NULL,
    push_kind               TEXT NOT NULL,
    push_token              TEXT NOT NULL,
    device_name             TEXT NOT NULL,
    enrolled_at             BIGINT NOT NULL,
    passwordless_public_key TEXT,
    passwordless_enabled_at BIGINT,
    passwordless_timestamp  BIGINT
);
CREATE INDEX devices_upn ON devices (upn);

CREATE TABLE signin_requests (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES devices (account_id),
    upn              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    details          TEXT NOT NULL,
    signature        TEXT NOT NULL,
    number           TEXT NOT NULL,
    nonce            TEXT NOT NULL,
    number_matching  INTEGER NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    status           TEXT NOT NULL,
    wrong_attempts   INTEGER NOT NULL,
    last_response_ts BIGINT,
    decided_at       BIGINT
);
CREATE INDEX signin_requests_account_status ON signin_requests (account_id, status);
CREATE INDEX signin_requests_upn_status ON signin_requests (upn, status);

-- Append-only. Never holds numbers, codes, keys, signatures or nonces.
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    event      TEXT NOT NULL,
    upn        TEXT,
    account_id TEXT,
    request_id TEXT,
    outcome    TEXT NOT NULL
);
