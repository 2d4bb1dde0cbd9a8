-- The staff desk: both sides of each conversation, and one-time sign-in
-- links (stored as the SHA-256 of the token, never the token).
CREATE TABLE transcript (
    id      bigserial PRIMARY KEY,
    patient text COLLATE "C" NOT NULL,
    body    bytea NOT NULL
);
CREATE INDEX transcript_patient ON transcript (patient, id);

CREATE TABLE desk_logins (
    hash bytea PRIMARY KEY,
    body bytea NOT NULL
);
