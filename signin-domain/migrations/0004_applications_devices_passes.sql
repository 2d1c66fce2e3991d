-- Registered applications (who may start a sign-in, and the name the phone shows); sign-ins
-- that reach every device of the user; temporary access passes; rate limits per user and
-- requesting client; audit repeats collapsed. Portable SQL (SQLite and PostgreSQL).

CREATE TABLE applications (
    client_id   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- SHA-256 (base64url) of the client secret; NULL for the server's own pages, which
    -- cannot call the API.
    secret_hash TEXT,
    builtin     INTEGER NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX applications_name ON applications (name);
INSERT INTO applications (client_id, name, secret_hash, builtin, created_at)
VALUES ('signin-portal', 'Sign-in portal', NULL, 1, 0);

-- One sign-in is one request per device; they share `signin_id` (the id of the first), the
-- number and the expiry. `client_id` is the application that started it.
ALTER TABLE signin_requests ADD COLUMN signin_id TEXT;
ALTER TABLE signin_requests ADD COLUMN client_id TEXT;
UPDATE signin_requests SET signin_id = id, client_id = 'signin-portal';
CREATE INDEX signin_requests_signin ON signin_requests (signin_id);

CREATE TABLE temporary_passes (
    code_hash  TEXT PRIMARY KEY,
    upn        TEXT NOT NULL REFERENCES users (upn),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX temporary_passes_upn ON temporary_passes (upn);

-- The sign-in start rate limit, per user and requesting client (`subject`), with the columns
-- of `user_risk` (only the bucket and the cool-down are used here). Pauses and the risk score
-- stay per user in `user_risk`.
CREATE TABLE start_limits (
    subject            TEXT PRIMARY KEY,
    bucket_millitokens BIGINT NOT NULL,
    bucket_at          BIGINT NOT NULL,
    strikes            BIGINT NOT NULL,
    blocked_until      BIGINT NOT NULL,
    paused_until       BIGINT NOT NULL,
    risk               BIGINT NOT NULL,
    reports            BIGINT NOT NULL,
    last_report_at     BIGINT,
    version            BIGINT NOT NULL
);

-- A repeat of the newest entry (same event, user, outcome) within a minute bumps `repeats`
-- and `last_at` instead of adding a row.
ALTER TABLE audit_log ADD COLUMN repeats BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_log ADD COLUMN last_at BIGINT;
CREATE INDEX audit_log_upn ON audit_log (upn);
CREATE INDEX audit_log_event ON audit_log (event);
