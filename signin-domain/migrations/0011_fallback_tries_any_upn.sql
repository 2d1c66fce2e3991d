-- Fallback tries are counted for whatever UPN is typed, existing or not, so that the sign-in
-- pages answer an unknown UPN exactly as a known one (the same refusals, the same throttling):
-- `fallback_tries.upn` no longer references `users`. A table rebuild, portable to SQLite and
-- PostgreSQL.
CREATE TABLE fallback_tries_v2 (
    upn          TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    window_tries BIGINT NOT NULL,
    consecutive  BIGINT NOT NULL
);
INSERT INTO fallback_tries_v2 (upn, window_start, window_tries, consecutive)
SELECT upn, window_start, window_tries, consecutive FROM fallback_tries;
DROP TABLE fallback_tries;
ALTER TABLE fallback_tries_v2 RENAME TO fallback_tries;
CREATE INDEX fallback_tries_window ON fallback_tries (window_start);
