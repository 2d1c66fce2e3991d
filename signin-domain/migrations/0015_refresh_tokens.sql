-- Refresh tokens (issue 21; docs/INTEGRATION.md "Refresh tokens", SECURITY.md). Issued for the
-- `offline_access` scope (to a public client only when the code came with PKCE), stored as
-- SHA-256 only, like every other secret. Rotated on every use: the token presented is spent
-- (`used_at`) and a new one of the same family is issued; a spent token presented again revokes
-- the whole family, every refresh token and access token of it. A family is the grant it came
-- from: `family` is the hash of the authorization code or auth_req_id, which is also the
-- `grant_hash` of every access token issued from that grant or refreshed from it (so a reused
-- code revokes them too). Each token is bound to its client, its user and the sign-in that made
-- it (`method`, `device`): removing that device, pausing, disabling or signing the user out
-- everywhere deletes them with the user's other sessions and tokens (`store::trust`).
CREATE TABLE oidc_refresh_tokens (
    token_hash      TEXT PRIMARY KEY,
    family          TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    upn             TEXT NOT NULL,
    scope           TEXT NOT NULL,
    -- The sign-in the family comes from (for the ID tokens a refresh gives).
    auth_time       BIGINT NOT NULL,
    amr             TEXT NOT NULL,
    method          TEXT NOT NULL,
    device          TEXT,
    created_at      BIGINT NOT NULL,
    -- The family's absolute end (set by its first token, kept by every rotation) and this
    -- token's idle end (NULL: the client has no idle limit).
    expires_at      BIGINT NOT NULL,
    idle_expires_at BIGINT,
    -- When it was rotated (spent). Spent tokens stay until the family ends, to recognize reuse.
    used_at         BIGINT
);
CREATE INDEX oidc_refresh_tokens_family ON oidc_refresh_tokens (family);
CREATE INDEX oidc_refresh_tokens_upn ON oidc_refresh_tokens (upn);
CREATE INDEX oidc_refresh_tokens_device ON oidc_refresh_tokens (device);
CREATE INDEX oidc_refresh_tokens_client ON oidc_refresh_tokens (client_id);
CREATE INDEX oidc_refresh_tokens_expires ON oidc_refresh_tokens (expires_at);

-- Refresh token lifetimes per OpenID Connect client (`admin app add --refresh-lifetime
-- --refresh-idle`): a family lives `refresh_lifetime_secs` from its sign-in (0: the client gets
-- no refresh tokens), and a token unused for `refresh_idle_secs` ends (NULL: no idle limit).
ALTER TABLE applications ADD COLUMN refresh_lifetime_secs BIGINT NOT NULL DEFAULT 2592000;
ALTER TABLE applications ADD COLUMN refresh_idle_secs BIGINT;
