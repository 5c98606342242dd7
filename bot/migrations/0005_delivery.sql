-- Durable delivery: whether a finished job's result (or its failure/cancel notice) reached the member.
--   pending   : not posted yet (queued and running jobs, and ended jobs whose post Discord has not accepted)
--   delivered : Discord accepted the post (recorded at most once, right after it did)
--   abandoned : given up (the channel is gone or forbidden, the post cannot be made, or too many attempts)
--   elsewhere : not a Discord job; the surface that asked shows the result (the CLI prints it)
ALTER TABLE jobs ADD COLUMN delivery TEXT NOT NULL DEFAULT 'pending'
    CHECK (delivery IN ('pending', 'delivered', 'abandoned', 'elsewhere'));
ALTER TABLE jobs ADD COLUMN delivery_attempts INTEGER NOT NULL DEFAULT 0 CHECK (delivery_attempts >= 0);
ALTER TABLE jobs ADD COLUMN delivery_error TEXT;
ALTER TABLE jobs ADD COLUMN delivered_at REAL;

-- An origin without a source is a Discord origin (the Origin dataclass's default).
UPDATE jobs SET delivery = 'elsewhere' WHERE COALESCE(json_extract(origin, '$.source'), 'discord') != 'discord';

-- Jobs that ended before this version were presented by the bot of their time: never post history again.
UPDATE jobs SET delivery = 'delivered', delivered_at = COALESCE(finished_at, created_at)
    WHERE delivery = 'pending' AND status IN ('completed', 'failed', 'cancelled');

-- A job from another surface never waits for a Discord post, decided in the transaction that queues it.
CREATE TRIGGER jobs_delivered_elsewhere AFTER INSERT ON jobs
    WHEN COALESCE(json_extract(NEW.origin, '$.source'), 'discord') != 'discord'
BEGIN
    UPDATE jobs SET delivery = 'elsewhere' WHERE id = NEW.id;
END;

-- The retry sweep reads only the few rows still pending.
CREATE INDEX jobs_pending_delivery ON jobs (status, id) WHERE delivery = 'pending';
