-- Per-member defaults chosen in /settings; NULL means "the server's default".
CREATE TABLE preferences (
    user_id    INTEGER PRIMARY KEY REFERENCES users (user_id),
    model      TEXT,
    aspect     TEXT,
    steps      INTEGER CHECK (steps IS NULL OR steps >= 1),
    sampler    TEXT,
    lane       TEXT CHECK (lane IS NULL OR lane IN ('turbo', 'fast', 'relax')),
    updated_at REAL NOT NULL
);
