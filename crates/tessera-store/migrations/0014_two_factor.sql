-- Two-factor sign-in (issue 13): a TOTP secret per user, sealed under the master key (bound
-- to the user), on once confirmed with a code; the last time step used, so no code works
-- twice; single-use recovery codes kept as digests; the half-done sign-ins waiting for their
-- second factor (a token's digest, a few minutes, never a session); and the team setting
-- that requires two-factor sign-in of every member.
CREATE TABLE user_two_factor (
    user_id TEXT PRIMARY KEY REFERENCES users (id),
    secret_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- NULL while the set-up is not confirmed with a code: the secret does not count yet.
    enabled_at BIGINT CHECK (enabled_at IS NULL OR enabled_at >= created_at),
    last_used_step BIGINT NOT NULL DEFAULT 0 CHECK (last_used_step >= 0)
);

CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id),
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT CHECK (used_at IS NULL OR used_at >= created_at),
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE sign_in_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    next_path TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL CHECK (expires_at > created_at)
);
CREATE INDEX sign_in_challenges_expiry_idx ON sign_in_challenges (expires_at);

ALTER TABLE teams ADD COLUMN require_two_factor BIGINT NOT NULL DEFAULT 0
    CHECK (require_two_factor IN (0, 1));
