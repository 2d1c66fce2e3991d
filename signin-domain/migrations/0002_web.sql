-- Web pages: optional passwords (Argon2id PHC strings) and browser sessions.
-- Portable SQL (SQLite and PostgreSQL).

CREATE TABLE user_passwords (
    upn        TEXT PRIMARY KEY REFERENCES users (upn),
    phc        TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Only SHA-256(session id) is stored; the id itself lives in the browser's cookie only.
-- `upn` is set once the session is signed in. Before that, `pending_*` track a sign-in in
-- progress: the UPN typed, the request this browser started and its kind
-- (`passwordless`, or `push` after a correct password).
CREATE TABLE web_sessions (
    id_hash         TEXT PRIMARY KEY,
    upn             TEXT,
    pending_upn     TEXT,
    pending_request TEXT,
    pending_kind    TEXT,
    resends         INTEGER NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
