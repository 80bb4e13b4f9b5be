-- Admin hand-over (issue 13): the Admin offers the role to a Manager of the team, who accepts
-- by a single-use link mailed to them; then the two roles swap in one transaction (the
-- one-Admin-per-team index and the deferred teams → users foreign key of 0001 hold
-- throughout). Only the token's digest is stored.
--
-- Invariants held here:
--   * at most one pending hand-over per team            (partial unique index)
--   * a hand-over is from one person to another         (CHECK)
--   * a pending hand-over has no end; an ended one has  (CHECK)
CREATE TABLE admin_handovers (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    from_user_id TEXT NOT NULL REFERENCES users (id),
    to_user_id TEXT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'accepted', 'cancelled', 'lapsed')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL CHECK (expires_at > created_at),
    ended_at BIGINT,
    CHECK (from_user_id <> to_user_id),
    CHECK ((status = 'pending' AND ended_at IS NULL)
        OR (status <> 'pending' AND ended_at IS NOT NULL AND ended_at >= created_at))
);
CREATE UNIQUE INDEX admin_handovers_one_pending_uq ON admin_handovers (team_id)
    WHERE status = 'pending';
CREATE INDEX admin_handovers_team_idx ON admin_handovers (team_id, created_at);
