-- hse-auth: refresh-token families, API keys and their usage, TOTP.
--
-- No secret is stored in clear: refresh tokens and API keys as 32-byte
-- digests, TOTP secrets sealed with a server key, recovery codes hashed.

CREATE TABLE auth_refresh_families (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoke_reason  text CHECK (revoke_reason IN ('logout', 'reuse', 'password_change', 'deactivated')),
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL)),
    CHECK (expires_at > created_at)
);
CREATE INDEX auth_refresh_families_live_user_idx
    ON auth_refresh_families (user_id) WHERE revoked_at IS NULL;

CREATE TABLE auth_refresh_tokens (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    family_id   uuid NOT NULL REFERENCES auth_refresh_families (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL,
    spent_at    timestamptz
);
CREATE INDEX auth_refresh_tokens_family_idx ON auth_refresh_tokens (family_id);

CREATE TABLE auth_api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 400),
    created_by   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope        jsonb NOT NULL,
    permissions  text[] NOT NULL,
    last_four    text NOT NULL CHECK (length(last_four) = 4),
    secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX auth_api_keys_creator_idx ON auth_api_keys (created_by, id);

-- Append-only usage history; no foreign key, so an audit batch can never
-- fail on a key's fate.
CREATE TABLE auth_api_key_usage (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id  uuid NOT NULL,
    route   text NOT NULL,
    status  smallint NOT NULL,
    at      timestamptz NOT NULL
);
CREATE INDEX auth_api_key_usage_key_idx ON auth_api_key_usage (key_id, at DESC);

CREATE TABLE auth_totp (
    user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret  bytea NOT NULL,
    confirmed_at   timestamptz,
    last_step      bigint,
    created_at     timestamptz NOT NULL
);

CREATE TABLE auth_recovery_codes (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   bytea NOT NULL CHECK (length(code_hash) = 32),
    created_at  timestamptz NOT NULL,
    used_at     timestamptz,
    PRIMARY KEY (user_id, code_hash)
);
