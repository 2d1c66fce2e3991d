-- Sign-out (issue 21): RP-initiated logout and Back-Channel Logout 1.0, errors that reach the
-- application, and requests the provider honours (acr_values, id_token_hint, form_post).
-- Portable SQL (SQLite and PostgreSQL).

-- Where a client may send a browser after signing out (exact URIs, one per line, as
-- `redirect_uris`), and where the server POSTs a logout token when a session the client got
-- tokens from ends (held to the outbound policy, like a CIBA ping endpoint).
ALTER TABLE applications ADD COLUMN post_logout_redirect_uris TEXT;
ALTER TABLE applications ADD COLUMN backchannel_logout_uri TEXT;

-- The OpenID Connect session id (`sid`) of a signed-in web session: random, public (it is in ID
-- and logout tokens), never derived from the session's cookie.
ALTER TABLE oidc_session_auth ADD COLUMN sid TEXT;
-- The session a code was issued in: its ID token says `sid`, and ending that session revokes the
-- code and the access tokens it gave.
ALTER TABLE oidc_codes ADD COLUMN sid TEXT;
CREATE INDEX oidc_codes_sid ON oidc_codes (sid);

-- The clients a session issued codes to: the ones told (back-channel) when it ends.
CREATE TABLE oidc_session_clients (
    sid        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (sid, client_id)
);
CREATE INDEX oidc_session_clients_expires ON oidc_session_clients (expires_at);

-- What an authorization in progress must still meet once the browser has signed in:
-- how the response goes back (`query` or `form_post`), the weakest `acr` the client accepts
-- (from `acr_values` or an essential `acr` claim) and the user an `id_token_hint` named.
ALTER TABLE oidc_authorizations ADD COLUMN response_mode TEXT;
ALTER TABLE oidc_authorizations ADD COLUMN acr_min TEXT;
ALTER TABLE oidc_authorizations ADD COLUMN hint_upn TEXT;
