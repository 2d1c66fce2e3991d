-- OpenID Connect provider and CIBA (docs/INTEGRATION.md). Portable SQL (SQLite and PostgreSQL).
-- Every secret (authorization code, access token, browser handle, auth_req_id) is stored as
-- SHA-256 (base64url) only; the values themselves are random (see src/oidc/).

-- A registered application is an OpenID Connect client when it has redirect URIs (one per
-- line, matched exactly). A public client has no secret and must use PKCE (S256). A client
-- with a notification endpoint uses CIBA ping mode; without one, poll mode.
ALTER TABLE applications ADD COLUMN redirect_uris TEXT;
ALTER TABLE applications ADD COLUMN public_client INTEGER NOT NULL DEFAULT 0;
ALTER TABLE applications ADD COLUMN ciba_notification_endpoint TEXT;

-- ID-token signing keys (ES256). The newest is the one that signs; every row is published in
-- the JWKS, so that tokens signed by a rotated-out key still verify until it is removed.
CREATE TABLE oidc_signing_keys (
    kid        TEXT PRIMARY KEY,
    -- PKCS#8 DER, base64url.
    pkcs8      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The stable, opaque `sub` of each user (random, never derived from the UPN).
CREATE TABLE oidc_subjects (
    upn TEXT PRIMARY KEY REFERENCES users (upn),
    sub TEXT NOT NULL
);
CREATE UNIQUE INDEX oidc_subjects_sub ON oidc_subjects (sub);

-- Authorization requests in progress in a browser, found by the hash of the handle in the
-- browser's `psi_oidc` cookie. Single use, short-lived (src/oidc/authorize.rs).
CREATE TABLE oidc_authorizations (
    handle_hash    TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    state          TEXT,
    nonce          TEXT,
    code_challenge TEXT,
    login_hint     TEXT,
    prompt_login   INTEGER NOT NULL,
    max_age        BIGINT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX oidc_authorizations_expires ON oidc_authorizations (expires_at);

-- How and when a signed-in web session signed in (for `auth_time`, `amr`, `acr`, `max_age`),
-- by the web session's id hash.
CREATE TABLE oidc_session_auth (
    session_hash TEXT PRIMARY KEY,
    upn          TEXT NOT NULL,
    auth_time    BIGINT NOT NULL,
    amr          TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX oidc_session_auth_expires ON oidc_session_auth (expires_at);

-- Authorization codes: single use (`used_at`), short-lived (src/oidc/authorize.rs).
CREATE TABLE oidc_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    upn            TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    code_challenge TEXT,
    auth_time      BIGINT NOT NULL,
    amr            TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX oidc_codes_expires ON oidc_codes (expires_at);

-- Access tokens (for the userinfo endpoint). `grant_hash` is the code (or auth_req_id) hash
-- they came from: a second redemption of a code revokes them.
CREATE TABLE oidc_access_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_hash TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    upn        TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_access_tokens_grant ON oidc_access_tokens (grant_hash);
CREATE INDEX oidc_access_tokens_expires ON oidc_access_tokens (expires_at);

-- CIBA authentication requests: the phone sign-in `signin_id` they started, the polling
-- interval and the last poll (for `slow_down`), and `redeemed_at` (tokens are issued once).
CREATE TABLE ciba_requests (
    req_hash                  TEXT PRIMARY KEY,
    client_id                 TEXT NOT NULL,
    upn                       TEXT NOT NULL,
    scope                     TEXT NOT NULL,
    signin_id                 TEXT NOT NULL,
    notification_token        TEXT,
    interval_secs             BIGINT NOT NULL,
    last_poll_at              BIGINT,
    created_at                BIGINT NOT NULL,
    expires_at                BIGINT NOT NULL,
    redeemed_at               BIGINT
);
CREATE INDEX ciba_requests_expires ON ciba_requests (expires_at);
