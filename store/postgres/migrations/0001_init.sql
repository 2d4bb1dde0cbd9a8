-- Aftercare schema 1: the same records as the bbolt store's buckets.
-- Text keys use the "C" collation so they sort bytewise, as bbolt keys do.
-- Times the engine compares exactly (timer due times, dedupe stamps, visit
-- dates, last activity) are unix nanoseconds, as in bbolt: timestamptz
-- keeps only microseconds.

-- One row per patient; the row is what a step locks (SELECT ... FOR UPDATE).
-- state holds the engine.State JSON exactly as written, so a step prepared
-- from those bytes can be checked against them.
CREATE TABLE patients (
    id             text COLLATE "C" PRIMARY KEY,
    state          bytea,
    last_active_ns bigint,
    visit_ns       bigint
);
CREATE INDEX patients_last_active ON patients (last_active_ns);
CREATE INDEX patients_visit ON patients (visit_ns);

-- Timers of patients and of escalation ladders ("escalation:<id>").
-- claimed_by/lease_until: the instance that took the timer to fire it.
CREATE TABLE timers (
    owner       text COLLATE "C" NOT NULL,
    key         text COLLATE "C" NOT NULL,
    due_ns      bigint NOT NULL,
    claimed_by  text,
    lease_until timestamptz,
    PRIMARY KEY (owner, key)
);
CREATE INDEX timers_due ON timers (due_ns, owner, key);

-- Messages to send, taken in (platform, priority, id) order and claimed
-- with a lease so a killed instance's claims go to another.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    platform    text COLLATE "C" NOT NULL,
    priority    smallint NOT NULL,
    dest        text COLLATE "C" NOT NULL,
    to_id       text COLLATE "C" NOT NULL,
    about       text COLLATE "C" NOT NULL,
    body        bytea NOT NULL,
    claimed_by  text,
    lease_until timestamptz
);
CREATE INDEX outbox_order ON outbox (platform, priority, id);
CREATE INDEX outbox_dest ON outbox (dest) WHERE claimed_by IS NOT NULL;
CREATE INDEX outbox_to ON outbox (to_id);
CREATE INDEX outbox_about ON outbox (about) WHERE about <> '';

CREATE TABLE escalations (
    id      bigint PRIMARY KEY,
    patient text COLLATE "C" NOT NULL,
    body    bytea NOT NULL
);
CREATE SEQUENCE escalations_seq;
CREATE INDEX escalations_patient ON escalations (patient);

CREATE TABLE visits (
    id      bigserial PRIMARY KEY,
    patient text COLLATE "C" NOT NULL,
    at_ns   bigint NOT NULL,
    body    bytea NOT NULL
);
CREATE INDEX visits_patient ON visits (patient, id);
CREATE INDEX visits_at ON visits (at_ns);

CREATE TABLE audit (
    id      bigserial PRIMARY KEY,
    patient text COLLATE "C" NOT NULL,
    body    bytea NOT NULL
);
CREATE INDEX audit_patient ON audit (patient) WHERE patient <> '';

CREATE TABLE dedupe (
    key   text COLLATE "C" PRIMARY KEY,
    at_ns bigint NOT NULL
);
CREATE INDEX dedupe_at ON dedupe (at_ns);

CREATE TABLE invites (
    token   text COLLATE "C" PRIMARY KEY,
    used_by text COLLATE "C" NOT NULL DEFAULT '',
    body    bytea NOT NULL
);
CREATE INDEX invites_used_by ON invites (used_by) WHERE used_by <> '';

CREATE TABLE read_marks (
    patient text COLLATE "C" PRIMARY KEY,
    mark    text NOT NULL
);

-- Records set aside because they could not be decoded (see store.Quarantined).
CREATE TABLE quarantine (
    id      bigserial PRIMARY KEY,
    patient text COLLATE "C" NOT NULL,
    kind    text NOT NULL,
    key     bytea NOT NULL,
    value   bytea,
    at      timestamptz NOT NULL,
    reason  text NOT NULL
);
CREATE INDEX quarantine_patient ON quarantine (patient);
