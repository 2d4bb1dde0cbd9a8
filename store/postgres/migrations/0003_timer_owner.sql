-- Timers get a typed owner (store.Owner): owner_kind says whose a timer is,
-- 'patient' (owner is the patient ID) or 'escalation' (owner is the
-- escalation ID in decimal). Schema 1 and 2 kept an escalation's ladder
-- under the pseudo patient 'escalation:<id>'; those rows are rewritten.
ALTER TABLE timers ADD COLUMN owner_kind text COLLATE "C" NOT NULL DEFAULT 'patient';
UPDATE timers SET owner_kind = 'escalation', owner = substr(owner, length('escalation:') + 1)
    WHERE owner LIKE 'escalation:%';
ALTER TABLE timers ALTER COLUMN owner_kind DROP DEFAULT;
ALTER TABLE timers ADD CONSTRAINT timers_owner_kind CHECK (owner_kind IN ('patient', 'escalation'));
ALTER TABLE timers DROP CONSTRAINT timers_pkey;
ALTER TABLE timers ADD PRIMARY KEY (owner_kind, owner, key);
DROP INDEX timers_due;
CREATE INDEX timers_due ON timers (due_ns, owner_kind, owner, key);
