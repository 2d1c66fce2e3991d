-- Push channels can go stale (the push service said the token is invalid); per-user
-- anti-fatigue state: the rate-limit bucket, pauses after "this wasn't me", and a risk score.
-- Portable SQL (SQLite and PostgreSQL).

ALTER TABLE devices ADD COLUMN push_stale_at BIGINT;
ALTER TABLE devices ADD COLUMN push_stale_reason TEXT;

CREATE TABLE user_risk (
    upn              TEXT PRIMARY KEY REFERENCES users (upn),
    -- Rate limit: tokens in thousandths, as of `bucket_at`.
    bucket_millitokens BIGINT NOT NULL,
    bucket_at        BIGINT NOT NULL,
    -- Consecutive limit hits without a quiet period: each one doubles the cool-down.
    strikes          BIGINT NOT NULL,
    blocked_until    BIGINT NOT NULL,
    -- "This wasn't me": no sign-ins (so no pushes) until then.
    paused_until     BIGINT NOT NULL,
    -- Raised by every report; shown to admins.
    risk             BIGINT NOT NULL,
    reports          BIGINT NOT NULL,
    last_report_at   BIGINT,
    -- Optimistic concurrency: every update checks and bumps it.
    version          BIGINT NOT NULL
);
