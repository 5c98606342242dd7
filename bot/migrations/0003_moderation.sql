-- Moderation: an audit trail of every admin action, the prompt blocklist, and per-channel rules.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL    NOT NULL,
    guild_id  INTEGER,
    actor_id  INTEGER NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT,
    reason    TEXT    NOT NULL DEFAULT '',
    details   TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_time ON audit (at);

CREATE TABLE blocklist (
    guild_id INTEGER NOT NULL,
    phrase   TEXT    NOT NULL,
    added_by INTEGER NOT NULL,
    added_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, phrase)
);

CREATE TABLE channel_rules (
    guild_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    allowed    INTEGER NOT NULL CHECK (allowed IN (0, 1)),
    set_by     INTEGER NOT NULL,
    set_at     REAL    NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);
