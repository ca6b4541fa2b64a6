-- hse-core: the database-level tenant wall (row-level security).
--
-- The application connects as a login role (scripts/services creates
-- `hse_app`) that owns no table, is no superuser and cannot bypass RLS; it
-- gets its privileges through the NOLOGIN group `hse_app_group`, which
-- these migrations create and grant to. Migrations run as the owner.
--
-- The scope is set per transaction by hse_core::postgres::tx with
-- set_config(.., true): `hse.scope` is 'system', 'platform', 'partner',
-- 'organization' or 'nothing'; `hse.partner`, `hse.organization` and
-- `hse.establishments` (a uuid[] literal) carry its ids. Unset (or any
-- other value) sees nothing. The policies say what Scope::contains says,
-- on the columns each entity's Resource comes from; FORCE makes them bind
-- the table owner too.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hse_app_group') THEN
        CREATE ROLE hse_app_group NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- created meanwhile by a concurrent migration of another database
END
$$;

-- The login role of scripts/services, when it exists, gets the group.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hse_app')
       AND NOT pg_has_role('hse_app', 'hse_app_group', 'MEMBER') THEN
        GRANT hse_app_group TO hse_app;
    END IF;
EXCEPTION WHEN insufficient_privilege OR unique_violation THEN
    RAISE NOTICE 'could not grant hse_app_group to hse_app; grant it as an administrator';
END
$$;

CREATE FUNCTION hse_scope() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(current_setting('hse.scope', true), '') $$;

-- Everything: the server's own tasks, and root.
CREATE FUNCTION hse_scope_all() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT hse_scope() IN ('system', 'platform') $$;

-- Only the server's own tasks.
CREATE FUNCTION hse_scope_system() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT hse_scope() = 'system' $$;

-- The partner company of a partner scope, else NULL.
CREATE FUNCTION hse_scope_partner() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN hse_scope() = 'partner'
                  THEN nullif(current_setting('hse.partner', true), '')::uuid END $$;

-- The organization of an organization scope, else NULL.
CREATE FUNCTION hse_scope_organization() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN hse_scope() = 'organization'
                  THEN nullif(current_setting('hse.organization', true), '')::uuid END $$;

-- The establishments of an organization scope, else NULL.
CREATE FUNCTION hse_scope_establishments() RETURNS uuid[]
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN hse_scope() = 'organization'
                  THEN nullif(current_setting('hse.establishments', true), '')::uuid[] END $$;

-- Writes the policy set of one table: `visible` for every command, plus
-- `also_insert` as an extra way in for INSERT (a new child of a parent in
-- scope that the scope does not list yet) and `also_read` for SELECT only.
CREATE FUNCTION hse_protect(tbl regclass, visible text, also_insert text DEFAULT NULL,
                            also_read text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY tenant_scope ON %s USING (%s) WITH CHECK (%s)',
                   tbl, visible, visible);
    IF also_insert IS NOT NULL THEN
        EXECUTE format('CREATE POLICY tenant_scope_new_child ON %s FOR INSERT WITH CHECK (%s)',
                       tbl, also_insert);
    END IF;
    IF also_read IS NOT NULL THEN
        EXECUTE format('CREATE POLICY tenant_scope_shared ON %s FOR SELECT USING (%s)',
                       tbl, also_read);
    END IF;
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO hse_app_group', tbl);
END
$$;

-- An organization in scope: its own scope, or its partner's.
CREATE FUNCTION hse_sees_organization_sql(col text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('(%1$s = hse_scope_organization() OR %1$s IN '
                  '(SELECT o.id FROM organizations o WHERE o.partner_company_id = hse_scope_partner()))',
                  col)
$$;

-- Something in an establishment of an organization (both columns on the
-- row): the organization's scope when it lists the establishment, or the
-- partner's.
CREATE FUNCTION hse_sees_placed_sql(org text, est text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('(hse_scope_all() OR (%1$s = hse_scope_organization() AND %2$s = ANY(hse_scope_establishments())) '
                  'OR %1$s IN (SELECT o.id FROM organizations o WHERE o.partner_company_id = hse_scope_partner()))',
                  org, est)
$$;

SELECT hse_protect('partner_companies', 'hse_scope_all() OR id = hse_scope_partner()');

SELECT hse_protect('organizations',
    'hse_scope_all() OR partner_company_id = hse_scope_partner() OR id = hse_scope_organization()');

-- A new establishment is a child of its organization: an organization
-- scope may add one before it is listed (and assigned) there.
SELECT hse_protect('establishments',
    hse_sees_placed_sql('organization_id', 'id'),
    also_insert => 'organization_id = hse_scope_organization()');

-- Areas and devices carry only their establishment: visible when it is.
SELECT hse_protect('areas',
    'hse_scope_all() OR establishment_id IN (SELECT e.id FROM establishments e)');
SELECT hse_protect('devices',
    'hse_scope_all() OR establishment_id IN (SELECT e.id FROM establishments e)');

-- Custom roles belong to an organization (and maybe one establishment of
-- it); system roles (no organization) are read by every set scope but
-- written only by the platform.
SELECT hse_protect('roles',
    'hse_scope_all() OR (' || hse_sees_organization_sql('organization_id')
        || ' AND (establishment_id IS NULL OR establishment_id IN (SELECT e.id FROM establishments e)))',
    also_read => 'organization_id IS NULL AND hse_scope() <> ''''');

SELECT hse_protect('permissions',
    'hse_scope_all() OR role_id IN (SELECT r.id FROM roles r WHERE r.organization_id IS NOT NULL)');

-- A partner-level user carries its partner company; other users their
-- organization (whose partner is the partner's).
SELECT hse_protect('users',
    'hse_scope_all() OR partner_company_id = hse_scope_partner() OR '
        || hse_sees_organization_sql('organization_id'));

SELECT hse_protect('user_establishments', hse_sees_placed_sql('organization_id', 'establishment_id'));

SELECT hse_protect('invitations',
    'hse_scope_all() OR partner_company_id = hse_scope_partner() OR '
        || hse_sees_organization_sql('organization_id'));

-- The permission catalogue is no tenant's: readable, written by migrations.
GRANT SELECT ON actions TO hse_app_group;

-- The trigger of 20261128000002 read a role without seeing it under RLS
-- would take an invisible role for a system role: a role it cannot see is
-- now refused like a missing one.
CREATE OR REPLACE FUNCTION hse_core_role_fits_organization() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    role_organization uuid;
BEGIN
    SELECT organization_id INTO role_organization FROM roles WHERE id = NEW.role_id;
    IF NOT FOUND
       OR (role_organization IS NOT NULL
           AND role_organization IS DISTINCT FROM NEW.organization_id) THEN
        RAISE EXCEPTION 'role % belongs to another organization', NEW.role_id
            USING ERRCODE = 'foreign_key_violation',
                  TABLE = TG_TABLE_NAME,
                  CONSTRAINT = TG_TABLE_NAME || '_role_id_organization_fkey';
    END IF;
    RETURN NEW;
END
$$;

-- The helpers that write policies are for migrations only.
REVOKE EXECUTE ON FUNCTION hse_protect(regclass, text, text, text) FROM PUBLIC;
