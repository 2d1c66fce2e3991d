-- RS256 ID tokens beside ES256 (docs/INTEGRATION.md, "ID-token signing"). OpenID Connect
-- Discovery §3 requires RS256, and it is the default of a client that names no algorithm
-- (Dynamic Client Registration §2, `id_token_signed_response_alg`).

-- Which algorithm each signing key is for; the keys stored before were all P-256.
ALTER TABLE oidc_signing_keys ADD COLUMN alg TEXT NOT NULL DEFAULT 'ES256';

-- The algorithm of each client's ID tokens (and logout tokens). Clients registered before
-- keep ES256, which they were configured for; new ones are registered with the spec's
-- default, RS256, unless the administrator picks ES256.
ALTER TABLE applications ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'ES256';
