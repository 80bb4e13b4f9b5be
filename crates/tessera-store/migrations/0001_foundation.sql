-- Tessera foundation: teams, people, sessions, invitations, mail outbox, audit log, rate limits.
--
-- One schema for SQLite and PostgreSQL: ids and JSON as TEXT, times as BIGINT epoch
-- milliseconds, flags as BIGINT 0/1. Lines "-- @dialect NAME" start a section that runs only on
-- that database ("all" returns to shared SQL); used only where the two truly differ.
--
-- Invariants held by the schema itself, not only by code:
--   * a user is in at most one team           (users.team_id is a single column)
--   * exactly one Admin per team               (teams.admin_user_id NOT NULL + composite FK onto
--                                               users(id, team_id, role='admin'), and a partial
--                                               unique index allowing one admin row per team)
--   * at most one pending invitation per (team, email)   (partial unique index)
--   * invitation links are stored only as SHA-256 digests and are used at most once

-- @dialect sqlite
-- SQLite accepts a foreign key onto a table created later in the same migration.
CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    default_callback_url TEXT,
    admin_user_id TEXT NOT NULL,
    admin_role TEXT NOT NULL DEFAULT 'admin' CHECK (admin_role = 'admin'),
    created_at BIGINT NOT NULL,
    FOREIGN KEY (admin_user_id, id, admin_role) REFERENCES users (id, team_id, role)
        DEFERRABLE INITIALLY DEFERRED
);

-- @dialect postgres
CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    default_callback_url TEXT,
    admin_user_id TEXT NOT NULL,
    admin_role TEXT NOT NULL DEFAULT 'admin' CHECK (admin_role = 'admin'),
    created_at BIGINT NOT NULL
);

-- @dialect all
CREATE UNIQUE INDEX teams_name_key_uq ON teams (name_key);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    company TEXT NOT NULL DEFAULT '',
    job_title TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    team_id TEXT REFERENCES teams (id) DEFERRABLE INITIALLY DEFERRED,
    role TEXT CHECK (role IN ('member', 'manager', 'admin', 'labeler')),
    is_staff BIGINT NOT NULL DEFAULT 0 CHECK (is_staff IN (0, 1)),
    created_at BIGINT NOT NULL,
    joined_team_at BIGINT,
    CHECK ((team_id IS NULL AND role IS NULL) OR (team_id IS NOT NULL AND role IS NOT NULL)),
    CHECK (is_staff = 0 OR team_id IS NULL)
);
CREATE UNIQUE INDEX users_email_key_uq ON users (email_key);
CREATE UNIQUE INDEX users_id_team_role_uq ON users (id, team_id, role);
CREATE UNIQUE INDEX users_one_admin_per_team_uq ON users (team_id) WHERE role = 'admin';
CREATE INDEX users_team_idx ON users (team_id);

-- @dialect postgres
ALTER TABLE teams ADD CONSTRAINT teams_admin_fk
    FOREIGN KEY (admin_user_id, id, admin_role) REFERENCES users (id, team_id, role)
    DEFERRABLE INITIALLY DEFERRED;

-- @dialect all
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ip TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expiry_idx ON sessions (expires_at);

CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('member', 'manager', 'labeler')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked')),
    invited_by TEXT REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_sent_at BIGINT NOT NULL,
    send_count BIGINT NOT NULL DEFAULT 1,
    accepted_at BIGINT,
    accepted_user_id TEXT REFERENCES users (id),
    revoked_at BIGINT,
    CHECK (status <> 'accepted' OR (accepted_at IS NOT NULL AND accepted_user_id IS NOT NULL))
);
CREATE UNIQUE INDEX invitations_one_pending_uq ON invitations (team_id, email_key) WHERE status = 'pending';
CREATE INDEX invitations_team_idx ON invitations (team_id, status);

-- Every link ever sent for an invitation. Only the SHA-256 digest of the token is kept.
-- A resend supersedes the previous link; at most one live and at most one used link each.
CREATE TABLE invitation_tokens (
    token_hash TEXT PRIMARY KEY,
    invitation_id TEXT NOT NULL REFERENCES invitations (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    superseded_at BIGINT,
    used_at BIGINT,
    CHECK (superseded_at IS NULL OR used_at IS NULL)
);
CREATE UNIQUE INDEX invitation_tokens_one_live_uq ON invitation_tokens (invitation_id) WHERE superseded_at IS NULL;
CREATE UNIQUE INDEX invitation_tokens_one_used_uq ON invitation_tokens (invitation_id) WHERE used_at IS NOT NULL;

-- Durable mail: written in the transaction that causes it, sent (and retried) by a worker.
-- Bodies are AES-256-GCM ciphertext under the master key: they carry invitation links.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    team_id TEXT REFERENCES teams (id),
    to_addr TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_sealed TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'held', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (status, next_attempt_at);
CREATE INDEX mail_outbox_created_idx ON mail_outbox (created_at);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    team_id TEXT REFERENCES teams (id),
    actor_user_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_events_team_idx ON audit_events (team_id, created_at, id);

-- Sliding-window counters for rate limits (login failures, invitations). Kept in the
-- database so every replica sees the same counts.
CREATE TABLE rate_events (
    bucket TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX rate_events_bucket_idx ON rate_events (bucket, at);
