-- Staff desk sessions, shared by every instance so a browser stays signed
-- in whichever instance the load balancer sends it to, and across
-- restarts. hash is the SHA-256 of the session ID in the browser's
-- cookie, never the ID. Times are unix nanoseconds, as elsewhere; seen_ns
-- is written at most once a minute per session (the desk's idle check
-- allows for that). The table stays small: the desk prunes expired rows
-- at every sign-in.
CREATE TABLE desk_sessions (
    hash       bytea PRIMARY KEY,
    staff      text COLLATE "C" NOT NULL,
    name       text NOT NULL,
    csrf       text NOT NULL,
    created_ns bigint NOT NULL,
    seen_ns    bigint NOT NULL
);
CREATE INDEX desk_sessions_staff ON desk_sessions (staff);
