-- Claims applications key on (issue 21): a user's email address (lower case; whether it is
-- verified is what the administrator says) and given and family names, set with
-- `admin user set`. Groups are in `user_groups` already. Portable SQL (SQLite and PostgreSQL).
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN given_name TEXT;
ALTER TABLE users ADD COLUMN family_name TEXT;
