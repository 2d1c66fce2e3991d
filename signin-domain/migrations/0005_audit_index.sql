-- The audit collapse looks up the newest entry of one event and user: one index serves it on
-- both databases (and the event filter of the audit page, through its first column).
DROP INDEX audit_log_event;
CREATE INDEX audit_log_event_upn ON audit_log (event, upn, seq);
