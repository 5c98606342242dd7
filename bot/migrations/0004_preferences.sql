-- Per-member defaults chosen in /settings; NULL means "the server's default" (the lane is users.default_lane).
CREATE TABLE preferences (
    user_id    INTEGER PRIMARY KEY REFERENCES users (user_id),
    model      TEXT,
    aspect     TEXT,
    steps      INTEGER CHECK (steps IS NULL OR steps >= 1),
    sampler    TEXT,
    updated_at REAL NOT NULL
);
