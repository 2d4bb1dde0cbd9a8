-- Named leases: one row per thing only one instance may do at a time (a
-- clinic's Telegram long poll or Discord gateway, the daily housekeeping).
-- epoch grows by one each time the lease changes hands: it is the fencing
-- token a holder renews with, so a holder whose lease was taken over can
-- never renew it again. expires_at is the server's clock (now() + ttl).
CREATE TABLE leases (
    name       text COLLATE "C" PRIMARY KEY,
    holder     text NOT NULL,
    epoch      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
