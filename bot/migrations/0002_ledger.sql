-- The credits ledger, job leases, allowance refills and the queue-wide pause.

-- Every balance change, append-only: users.balance always equals the sum of a member's rows.
CREATE TABLE ledger (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users (user_id),
    delta         INTEGER NOT NULL,
    balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
    kind          TEXT    NOT NULL CHECK (kind IN ('debit', 'refund', 'grant', 'take', 'set', 'refill')),
    reason        TEXT    NOT NULL,
    job_id        INTEGER REFERENCES jobs (id),
    actor         TEXT    NOT NULL,
    created_at    REAL    NOT NULL
);

CREATE INDEX ledger_by_user ON ledger (user_id, id);

-- A job is charged at most once and refunded at most once.
CREATE UNIQUE INDEX ledger_one_debit_per_job ON ledger (job_id) WHERE kind = 'debit';
CREATE UNIQUE INDEX ledger_one_refund_per_job ON ledger (job_id) WHERE kind = 'refund';

CREATE TRIGGER ledger_is_append_only_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

CREATE TRIGGER ledger_is_append_only_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

-- When a member's allowance was last topped up (NULL: never).
ALTER TABLE users ADD COLUMN last_refill_at REAL;

-- A running job holds a lease until this time; engine progress renews it.
ALTER TABLE jobs ADD COLUMN lease_expires_at REAL;

CREATE INDEX jobs_running_lease ON jobs (status, lease_expires_at);
CREATE INDEX jobs_finished ON jobs (finished_at);

-- Small named values the scheduler keeps across restarts (the pause flag).
CREATE TABLE scheduler_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
