-- Addresses a team may send email callbacks to, besides its members' own: each is verified by
-- a link mailed to it (only the link token's SHA-256 digest is kept), so a team cannot make
-- Tessera mail strangers. A row is pending (a live link) or verified (no link), never neither.
CREATE TABLE callback_emails (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    token_hash TEXT UNIQUE,
    token_expires_at BIGINT,
    verified_at BIGINT,
    added_by TEXT REFERENCES users (id),
    created_at BIGINT NOT NULL,
    CHECK ((token_hash IS NULL) = (token_expires_at IS NULL)),
    CHECK (verified_at IS NOT NULL OR token_hash IS NOT NULL),
    CHECK (verified_at IS NULL OR token_hash IS NULL)
);
CREATE UNIQUE INDEX callback_emails_team_email_uq ON callback_emails (team_id, email_key);
