-- hse-auth: the key that minted a key (issue 13, item 3).
--
-- A key made with another key records it as its parent; revoking a key
-- revokes its descendants (hse_auth::postgres::PgAuthStore::revoke_api_key
-- walks this column). NULL: the creator made it, signed in. The table's
-- row-level security (20261128100002) covers the new column as it is.

ALTER TABLE auth_api_keys
    ADD COLUMN parent_id uuid REFERENCES auth_api_keys (id) ON DELETE CASCADE;
CREATE INDEX auth_api_keys_parent_idx ON auth_api_keys (parent_id)
    WHERE parent_id IS NOT NULL;
