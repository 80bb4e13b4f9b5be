-- Email verification at sign-up (issue 13). An account owns the address it signed up with
-- only once a link mailed to that address was opened: users.email_verified_at. Accounts made
-- before this migration, staff and workforce accounts, people who joined through an
-- invitation (its link proved the address) and accounts the operator made count as verified.
--
-- An unverified sign-up does not own its address: accepting an invitation to that address
-- closes the account (users.closed_at; its address key becomes 'closed:<id>', which frees the
-- address and keeps every row that refers to the account) and closes its team
-- (teams.closed_at), which only it could belong to, since it could not invite.
--
-- Invariants held by the schema:
--   * staff and workforce accounts are verified; nobody is verified before they exist
--   * only an unverified account is closed, and a closed account holds no address
--   * verification links are stored only as digests, work once, and an account has at most
--     one unused link (a new one replaces it)
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
ALTER TABLE users ADD COLUMN closed_at BIGINT;
ALTER TABLE teams ADD COLUMN closed_at BIGINT;
UPDATE users SET email_verified_at = created_at;

-- @dialect postgres
ALTER TABLE users ADD CONSTRAINT users_email_verified
    CHECK ((email_verified_at IS NULL OR email_verified_at >= created_at)
        AND ((is_staff = 0 AND is_workforce = 0) OR email_verified_at IS NOT NULL));
ALTER TABLE users ADD CONSTRAINT users_closed_unverified
    CHECK (closed_at IS NULL OR (email_verified_at IS NULL AND email_key = 'closed:' || id));

-- @dialect sqlite
-- SQLite cannot add a table constraint to an existing table: triggers hold the same rules.
CREATE TRIGGER users_email_verified_ins BEFORE INSERT ON users
WHEN NOT ((NEW.email_verified_at IS NULL OR NEW.email_verified_at >= NEW.created_at)
    AND ((NEW.is_staff = 0 AND NEW.is_workforce = 0) OR NEW.email_verified_at IS NOT NULL))
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: users_email_verified'); END;
CREATE TRIGGER users_email_verified_upd BEFORE UPDATE ON users
WHEN NOT ((NEW.email_verified_at IS NULL OR NEW.email_verified_at >= NEW.created_at)
    AND ((NEW.is_staff = 0 AND NEW.is_workforce = 0) OR NEW.email_verified_at IS NOT NULL))
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: users_email_verified'); END;
CREATE TRIGGER users_closed_unverified_ins BEFORE INSERT ON users
WHEN NOT (NEW.closed_at IS NULL OR (NEW.email_verified_at IS NULL AND NEW.email_key = 'closed:' || NEW.id))
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: users_closed_unverified'); END;
CREATE TRIGGER users_closed_unverified_upd BEFORE UPDATE ON users
WHEN NOT (NEW.closed_at IS NULL OR (NEW.email_verified_at IS NULL AND NEW.email_key = 'closed:' || NEW.id))
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: users_closed_unverified'); END;

-- @dialect all
CREATE TABLE email_verifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    -- The address the link proves, as the account had it when the link was sent.
    email_key TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL CHECK (expires_at > created_at),
    used_at BIGINT CHECK (used_at IS NULL OR used_at >= created_at)
);
CREATE UNIQUE INDEX email_verifications_one_open_uq ON email_verifications (user_id) WHERE used_at IS NULL;
