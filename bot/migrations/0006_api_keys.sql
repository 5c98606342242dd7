-- API keys: how a member signs in to the web UI and the APIs. Only a hash of the secret is kept.
--   key_id      : the public part of the key (shown in lists, names the key in logs)
--   user_id     : the member the key acts as (a Discord user, or a local web user: negative ids)
--   guild_id    : the server whose rules (blocklist) apply to the key's requests
--   moderator   : may use the moderator endpoints for that server (set by the owner only)
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    guild_id INTEGER NOT NULL DEFAULT 0,
    secret_hash BLOB NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    moderator INTEGER NOT NULL DEFAULT 0 CHECK (moderator IN (0, 1)),
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    last_used_at REAL,
    revoked_at REAL,
    revoked_by TEXT
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- Web users the owner made without Discord. Their ids are negative, so they never meet a Discord id.
CREATE TABLE local_users (
    user_id INTEGER PRIMARY KEY CHECK (user_id < 0),
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at REAL NOT NULL
);
