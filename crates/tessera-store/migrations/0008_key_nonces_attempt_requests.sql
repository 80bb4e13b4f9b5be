-- The API Keys page's "Add key" form carries a one-time nonce: a second POST of the same form
-- (a double click, a resubmission) finds the key the first one made instead of making another.
-- Unique per team; keys made elsewhere (CLI, older forms) have none (NULLs never collide).
ALTER TABLE api_keys ADD COLUMN form_nonce TEXT;
CREATE UNIQUE INDEX api_keys_form_nonce_uq ON api_keys (team_id, form_nonce);

-- What each callback attempt sent, exactly: its request headers (secrets masked, as JSON
-- pairs) and its body. A delivery's retries usually send the same body, so bodies are kept
-- once per delivery and digest (SHA-256, hex) and attempts point at theirs. Pruned with the
-- attempts (after 30 days).
CREATE TABLE callback_bodies (
    delivery_id TEXT NOT NULL REFERENCES callback_deliveries (id),
    digest TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, digest)
);
ALTER TABLE callback_attempts ADD COLUMN request_headers TEXT;
ALTER TABLE callback_attempts ADD COLUMN body_digest TEXT;
