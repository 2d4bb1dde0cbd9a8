-- The retention purge reads only the patients that expire. Last activity
-- is the later of the last message and the visit (see
-- store.LastActivity); greatest() ignores a NULL, and a patient with
-- neither has no entry. The single-column index on last_active_ns served
-- nothing that this one does not. Written to be safe to apply under
-- another number, or twice.
CREATE INDEX IF NOT EXISTS patients_last_activity ON patients ((greatest(last_active_ns, visit_ns)), id);
DROP INDEX IF EXISTS patients_last_active;
