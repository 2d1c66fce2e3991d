-- When the device last proved its key by answering a sign-in ("last used" on the security-info
-- and admin pages); NULL until its first answer.
ALTER TABLE devices ADD COLUMN last_used_at BIGINT;
