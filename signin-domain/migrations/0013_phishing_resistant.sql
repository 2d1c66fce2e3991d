-- The phishing-resistant option (PROTOCOL.md §5.9): a sign-in started on the sign-in pages is
-- bound to the browser that shows them; its approval counts only when the Authenticator on the
-- same device saw that page at the server's own origin. Off by default (what every sign-in was).
ALTER TABLE policy ADD COLUMN phishing_resistant INTEGER NOT NULL DEFAULT 0;
