-- When a session was last used, so that an unused one ends before its absolute expiry (an
-- idle timeout). Refreshed at most every minute or so, not on every request.
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET last_seen_at = created_at;
