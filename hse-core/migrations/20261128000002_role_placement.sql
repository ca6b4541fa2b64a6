-- hse-core: what the composite foreign keys of 20261128000001 cannot say.
--
-- A custom role belongs to one organization. A user holding it, or an
-- invitation offering it, must be of that same organization; system roles
-- (organization_id IS NULL) go with any placement. A foreign key cannot
-- express "equal unless NULL on the referenced side", so a trigger does.
-- The error is a foreign key violation (23503) on
-- `<table>_role_id_organization_fkey`: like a missing role, which is what a
-- role of another tenant must look like.

CREATE FUNCTION hse_core_role_fits_organization() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    role_organization uuid;
BEGIN
    SELECT organization_id INTO role_organization FROM roles WHERE id = NEW.role_id;
    IF role_organization IS NOT NULL
       AND role_organization IS DISTINCT FROM NEW.organization_id THEN
        RAISE EXCEPTION 'role % belongs to another organization', NEW.role_id
            USING ERRCODE = 'foreign_key_violation',
                  TABLE = TG_TABLE_NAME,
                  CONSTRAINT = TG_TABLE_NAME || '_role_id_organization_fkey';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER users_role_fits_organization
    BEFORE INSERT OR UPDATE OF role_id, organization_id ON users
    FOR EACH ROW EXECUTE FUNCTION hse_core_role_fits_organization();

CREATE TRIGGER invitations_role_fits_organization
    BEFORE INSERT OR UPDATE OF role_id, organization_id ON invitations
    FOR EACH ROW EXECUTE FUNCTION hse_core_role_fits_organization();

-- The trigger above reads a role's organization without locking it, which
-- is sound only because a role never moves: refuse any change of its
-- placement.
CREATE FUNCTION hse_core_role_placement_is_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.organization_id IS DISTINCT FROM OLD.organization_id
       OR NEW.establishment_id IS DISTINCT FROM OLD.establishment_id THEN
        RAISE EXCEPTION 'a role cannot move to another organization or establishment'
            USING ERRCODE = 'check_violation',
                  TABLE = 'roles',
                  CONSTRAINT = 'roles_organization_id_fixed_check';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER roles_placement_is_fixed
    BEFORE UPDATE OF organization_id, establishment_id ON roles
    FOR EACH ROW EXECUTE FUNCTION hse_core_role_placement_is_fixed();
