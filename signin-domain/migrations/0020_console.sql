-- The admin and helpdesk console (issue 22). Portable SQL (SQLite and PostgreSQL).
-- Who did what: every audit entry names its actor, `admin:<upn>`, `cli` (the server's command
-- line), `user:<upn>`, `device:<account id>`, `application:<client id>` or `system`. Entries
-- from before this column have none.
ALTER TABLE audit_log ADD COLUMN actor TEXT;
-- Groups the Authenticator policy leaves out even when its target includes them (as Entra's
-- exclude): one group name a line (a group name holds no line break), none by default.
ALTER TABLE policy ADD COLUMN exclude_groups TEXT NOT NULL DEFAULT '';
-- Whom each additional-context feature is for, among the users the policy targets (as Entra
-- targets each feature): `all` or `group:<name>`, less the excluded groups (one a line).
ALTER TABLE policy ADD COLUMN app_name_target TEXT NOT NULL DEFAULT 'all';
ALTER TABLE policy ADD COLUMN app_name_exclude TEXT NOT NULL DEFAULT '';
ALTER TABLE policy ADD COLUMN location_target TEXT NOT NULL DEFAULT 'all';
ALTER TABLE policy ADD COLUMN location_exclude TEXT NOT NULL DEFAULT '';
