-- Moving to a new phone (issue 23, PROTOCOL.md §5.11). A move code is an enrollment code of a
-- new kind: the device that vouched for it (`vouched_by`, an account id) and the timestamp it
-- signed (`vouched_at`: unique per device, so a replayed vouch is refused), and the encrypted
-- TOTP blob the old phone left with it (`move_blob`: opaque base64url, handed out once, then
-- cleared). Portable SQL (SQLite and PostgreSQL).
ALTER TABLE enrollment_codes ADD COLUMN vouched_by TEXT;
ALTER TABLE enrollment_codes ADD COLUMN vouched_at BIGINT;
ALTER TABLE enrollment_codes ADD COLUMN move_blob TEXT;
CREATE UNIQUE INDEX enrollment_codes_vouch ON enrollment_codes (vouched_by, vouched_at);
