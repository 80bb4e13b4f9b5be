-- Password resets (issue 13): a single-use link mailed to an account's address. Only the
-- token's digest is stored; a link works once, until it expires; a newer request replaces
-- the older links of that account.
CREATE TABLE password_resets (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL CHECK (expires_at > created_at),
    used_at BIGINT CHECK (used_at IS NULL OR used_at >= created_at),
    requested_ip TEXT NOT NULL
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id, created_at);
