-- Cloud storage integrations (issue 12): a team's delegated access to its own AWS S3, Google
-- Cloud Storage and Azure Blob buckets, so tasks can name private attachments (`s3://b/k`,
-- `gs://b/k`, `https://ACCOUNT.blob.core.windows.net/C/B`) that labelers see through
-- short-lived signed URLs or through Tessera.
--
-- Invariants held by the schema:
--   * one external ID per team, never shared by two teams (the confused-deputy guard an IAM
--     role's trust policy requires)
--   * an integration's credential kind belongs to its provider; a role stores no secret, every
--     other kind a sealed secret with its fingerprint
--   * a verification result is whole: when, whether, and the reason exactly when it failed
--   * a bucket (an Azure container, as account/container) belongs to at most one of a team's
--     integrations, of that integration's provider and team

CREATE TABLE team_storage_settings (
    team_id TEXT PRIMARY KEY REFERENCES teams (id),
    aws_external_id TEXT NOT NULL UNIQUE CHECK (length(aws_external_id) >= 32),
    -- 1: attachments are streamed by Tessera instead of handed out as signed URLs.
    proxy_attachments BIGINT NOT NULL DEFAULT 0 CHECK (proxy_attachments IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE storage_integrations (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    provider TEXT NOT NULL CHECK (provider IN ('aws_s3', 'gcs', 'azure_blob')),
    credential_kind TEXT NOT NULL CHECK (credential_kind IN (
        'aws_role', 'aws_access_key', 'gcs_service_account', 'azure_account_key',
        'azure_service_principal')),
    name TEXT NOT NULL CHECK (length(name) >= 1 AND length(name) <= 80),
    -- What is not secret, as JSON: role_arn, access_key_id, region, endpoint, path_style,
    -- account, tenant_id, client_id, client_email.
    settings TEXT NOT NULL,
    -- AES-256-GCM under the master key, bound to the team and this row's id.
    secret_sealed TEXT,
    -- A short digest of the secret, shown so a customer can tell which key is in use.
    secret_fingerprint TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    verified_at BIGINT,
    verified_ok BIGINT CHECK (verified_ok IS NULL OR verified_ok IN (0, 1)),
    verify_error TEXT,
    CONSTRAINT storage_integrations_kind CHECK (
        (credential_kind IN ('aws_role', 'aws_access_key')) = (provider = 'aws_s3')
        AND (credential_kind = 'gcs_service_account') = (provider = 'gcs')
        AND (credential_kind IN ('azure_account_key', 'azure_service_principal')) = (provider = 'azure_blob')
        AND (credential_kind = 'aws_role') = (secret_sealed IS NULL)
        AND (secret_sealed IS NULL) = (secret_fingerprint IS NULL)
    ),
    CONSTRAINT storage_integrations_verified CHECK (
        (verified_at IS NULL) = (verified_ok IS NULL)
        AND (verify_error IS NOT NULL) = (verified_ok IS NOT NULL AND verified_ok = 0)
    ),
    UNIQUE (team_id, id, provider)
);
CREATE INDEX storage_integrations_team_idx ON storage_integrations (team_id, created_at);

CREATE TABLE storage_integration_buckets (
    team_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    bucket TEXT NOT NULL CHECK (length(bucket) >= 3 AND length(bucket) <= 300),
    integration_id TEXT NOT NULL,
    PRIMARY KEY (team_id, provider, bucket),
    FOREIGN KEY (team_id, integration_id, provider)
        REFERENCES storage_integrations (team_id, id, provider) ON DELETE CASCADE
);
CREATE INDEX storage_integration_buckets_integration_idx
    ON storage_integration_buckets (integration_id);
