-- The API Keys page's "Add key" form carries a one-time nonce: a second POST of the same form
-- (a double click, a resubmission) finds the key the first one made instead of making another.
-- Unique per team; keys made elsewhere (CLI, older forms) have none (NULLs never collide).
ALTER TABLE api_keys ADD COLUMN form_nonce TEXT;
CREATE UNIQUE INDEX api_keys_form_nonce_uq ON api_keys (team_id, form_nonce);
