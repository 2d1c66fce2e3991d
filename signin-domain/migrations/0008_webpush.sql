-- Web Push delivery (issue 11): the server's VAPID key (RFC 8292), created once on first start
-- and kept here, so every instance on one database signs with the same key and the
-- subscriptions a push service restricted to it keep working. One row (id = 1).
-- `private_key` is the PKCS#8 document, base64url; `public_key` the uncompressed P-256 point,
-- base64url (the `k=` of the `Authorization: vapid` header). Portable SQL (SQLite and PostgreSQL).
CREATE TABLE webpush_vapid_key (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    private_key TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
