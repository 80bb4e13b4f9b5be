-- API key expiry and roll (issue 13). A key may have an expiry, set when it is made, at most
-- a year after its creation. Rolling a key makes its replacement and keeps the old key
-- working until `rolled_until`, at most 7 days after the roll; the three roll columns are set
-- together, once. The key cache compares both times in memory, so neither needs a query.
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT
    CHECK (expires_at IS NULL OR (expires_at > created_at AND expires_at <= created_at + 31536000000));
ALTER TABLE api_keys ADD COLUMN rolled_at BIGINT;
ALTER TABLE api_keys ADD COLUMN rolled_until BIGINT;
ALTER TABLE api_keys ADD COLUMN replaced_by TEXT REFERENCES api_keys (id)
    CHECK ((rolled_at IS NULL AND rolled_until IS NULL AND replaced_by IS NULL)
        OR (rolled_at IS NOT NULL AND rolled_until IS NOT NULL AND replaced_by IS NOT NULL
            AND replaced_by <> id AND rolled_at >= created_at
            AND rolled_until >= rolled_at AND rolled_until <= rolled_at + 604800000));
-- A key replaces at most one other key.
CREATE UNIQUE INDEX api_keys_replaced_by_uq ON api_keys (replaced_by);
