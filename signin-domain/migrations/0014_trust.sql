-- One trust model (issue 19; SECURITY.md "Methods, strengths and what a session may do").
-- Every session and token records how it was made (`method`) and, when a device made it, which
-- one (`device`): removing or reporting that device ends them. Users can be disabled. A device
-- enrolled from a single-factor session may be held until a waiting period ends (`held_until`;
-- NULL: until another device or an admin approves). A registration code remembers the method
-- of the session that asked for it (`issued_by`; NULL: an admin).
ALTER TABLE web_sessions ADD COLUMN method TEXT;
ALTER TABLE web_sessions ADD COLUMN device TEXT;
CREATE INDEX web_sessions_upn ON web_sessions (upn);
CREATE INDEX web_sessions_device ON web_sessions (device);
ALTER TABLE oidc_session_auth ADD COLUMN method TEXT;
ALTER TABLE oidc_session_auth ADD COLUMN device TEXT;
ALTER TABLE oidc_codes ADD COLUMN method TEXT;
ALTER TABLE oidc_codes ADD COLUMN device TEXT;
ALTER TABLE oidc_access_tokens ADD COLUMN device TEXT;
CREATE INDEX oidc_access_tokens_upn ON oidc_access_tokens (upn);
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE enrollment_codes ADD COLUMN issued_by TEXT;
ALTER TABLE devices ADD COLUMN held_until BIGINT;
-- The device whose session created the user's backup codes: if another device reports it as
-- not the user's, those codes go with it.
ALTER TABLE backup_code_sets ADD COLUMN created_by_device TEXT;
-- Sessions from before this migration do not say how they were made: they end (sign in again).
DELETE FROM oidc_session_auth;
DELETE FROM web_sessions WHERE upn IS NOT NULL;
