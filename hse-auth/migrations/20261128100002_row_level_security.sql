-- hse-auth: row-level security (see hse-core's 20261128000003 for the
-- scope settings, the helper functions and the application group role).
--
-- These tables have no tenant columns and are never read for a user's
-- request scope: hse_auth::postgres reaches them only in the system scope
-- (token rotation, key look-up, TOTP), so that is all their policy lets
-- through. Any other scope, or none, sees and writes nothing.

SELECT hse_protect('auth_refresh_families', 'hse_scope_system()');
SELECT hse_protect('auth_refresh_tokens', 'hse_scope_system()');
SELECT hse_protect('auth_api_keys', 'hse_scope_system()');
SELECT hse_protect('auth_api_key_usage', 'hse_scope_system()');
SELECT hse_protect('auth_totp', 'hse_scope_system()');
SELECT hse_protect('auth_recovery_codes', 'hse_scope_system()');

DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO hse_app_group',
                   pg_get_serial_sequence('auth_api_key_usage', 'id'));
END
$$;
