-- Who did what (issue 22): every audit entry names its actor, `admin:<upn>`, `cli` (the server's
-- command line), `user:<upn>`, `device:<account id>`, `application:<client id>` or `system`.
-- Entries from before this column have none. Portable SQL (SQLite and PostgreSQL).
ALTER TABLE audit_log ADD COLUMN actor TEXT;
