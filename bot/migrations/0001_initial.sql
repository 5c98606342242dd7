-- Members, jobs and their images. Balances and tiers are filled in by the credits ledger.
CREATE TABLE users (
    user_id      INTEGER PRIMARY KEY,
    created_at   REAL    NOT NULL,
    default_lane TEXT    NOT NULL DEFAULT 'fast' CHECK (default_lane IN ('turbo', 'fast', 'relax')),
    tier         TEXT    NOT NULL DEFAULT 'free',
    banned       INTEGER NOT NULL DEFAULT 0 CHECK (banned IN (0, 1)),
    balance      INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0)
);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (user_id),
    kind         TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    lane         TEXT    NOT NULL CHECK (lane IN ('turbo', 'fast', 'relax')),
    prompt       TEXT    NOT NULL,
    params       TEXT    NOT NULL,
    origin       TEXT    NOT NULL DEFAULT '{}',
    parent_id    INTEGER REFERENCES jobs (id),
    parent_index INTEGER,
    cost         INTEGER NOT NULL DEFAULT 0 CHECK (cost >= 0),
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    grid_path    TEXT,
    created_at   REAL    NOT NULL,
    started_at   REAL,
    finished_at  REAL
);

CREATE INDEX jobs_by_status ON jobs (status, lane, id);
CREATE INDEX jobs_by_user ON jobs (user_id, status);

CREATE TABLE results (
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    idx    INTEGER NOT NULL,
    path   TEXT    NOT NULL,
    seed   INTEGER NOT NULL,
    width  INTEGER NOT NULL,
    height INTEGER NOT NULL,
    PRIMARY KEY (job_id, idx)
);
