-- Push-token rotation and delivery health (issue 23). Portable SQL (SQLite and PostgreSQL).
-- The signed timestamp of the device's last push registration (PROTOCOL.md §5.10): a newer one
-- replaces the channel, a replayed or older one is refused. NULL: none since enrollment.
ALTER TABLE devices ADD COLUMN push_registered_at BIGINT;
-- When a push service (APNs, FCM, Web Push) last accepted a push for the device.
ALTER TABLE devices ADD COLUMN last_push_at BIGINT;
-- When the phone last proved its device key to the server (poll, fetch, answer, rotation).
ALTER TABLE devices ADD COLUMN last_seen_at BIGINT;
