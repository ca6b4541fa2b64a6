-- hse-core: the tenant tree, roles, users, assignments and invitations.
--
-- Composite foreign keys make a reference into another tenant impossible:
-- an area's parent is in the same establishment, a device's area is in the
-- device's establishment, an assignment's user and establishment are in the
-- same organization, an establishment role belongs to that organization.

CREATE TABLE partner_companies (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    contact_email   text,
    contact_phone   text NOT NULL DEFAULT '',
    address         text NOT NULL DEFAULT '',
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE organizations (
    id                  uuid PRIMARY KEY,
    partner_company_id  uuid REFERENCES partner_companies (id) ON DELETE RESTRICT,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    industry            text NOT NULL DEFAULT '',
    contact_email       text,
    contact_phone       text NOT NULL DEFAULT '',
    address             text NOT NULL DEFAULT '',
    is_active           boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX organizations_partner_idx ON organizations (partner_company_id, id);

CREATE TABLE establishments (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    address          text NOT NULL DEFAULT '',
    location_lat     double precision CHECK (location_lat BETWEEN -90 AND 90),
    location_lon     double precision CHECK (location_lon BETWEEN -180 AND 180),
    timezone         text NOT NULL,
    is_active        boolean NOT NULL DEFAULT true,
    metadata         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CHECK ((location_lat IS NULL) = (location_lon IS NULL)),
    UNIQUE (id, organization_id)
);
CREATE INDEX establishments_organization_idx ON establishments (organization_id, id);

CREATE TABLE areas (
    id                uuid PRIMARY KEY,
    establishment_id  uuid NOT NULL REFERENCES establishments (id) ON DELETE RESTRICT,
    parent_area_id    uuid CHECK (parent_area_id <> id),
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    type              text NOT NULL CHECK (length(type) BETWEEN 1 AND 50),
    floor             integer,
    metadata          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (id, establishment_id),
    FOREIGN KEY (parent_area_id, establishment_id)
        REFERENCES areas (id, establishment_id) ON DELETE RESTRICT
);
CREATE INDEX areas_establishment_idx ON areas (establishment_id, id);
CREATE INDEX areas_parent_idx ON areas (parent_area_id);

CREATE TABLE devices (
    id                uuid PRIMARY KEY,
    establishment_id  uuid NOT NULL,
    area_id           uuid NOT NULL,
    device_type       text NOT NULL CHECK (length(device_type) BETWEEN 1 AND 50),
    manufacturer      text NOT NULL DEFAULT '',
    model             text NOT NULL DEFAULT '',
    serial_number     text NOT NULL DEFAULT '',
    mac_address       text,
    protocol          text NOT NULL CHECK (length(protocol) BETWEEN 1 AND 50),
    status            text NOT NULL DEFAULT 'offline'
                      CHECK (status IN ('online', 'offline', 'error', 'maintenance')),
    metadata          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    secret_hash       bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (id, establishment_id),
    FOREIGN KEY (area_id, establishment_id)
        REFERENCES areas (id, establishment_id) ON DELETE RESTRICT
);
CREATE INDEX devices_establishment_idx ON devices (establishment_id, id);
CREATE INDEX devices_area_idx ON devices (area_id, id);

-- The permission catalogue; rows are upserted from hse_core::action at migrate time.
CREATE TABLE actions (
    name          text PRIMARY KEY,
    resource      text NOT NULL,
    verb          text NOT NULL,
    category      text NOT NULL,
    description   text NOT NULL,
    exclusive_to  text CHECK (exclusive_to IN ('root', 'partner', 'admin'))
);

-- System roles (hierarchy 1-4) have fixed ids and no organization; custom
-- roles (5+) belong to an organization, optionally one establishment of it.
CREATE TABLE roles (
    id                uuid PRIMARY KEY,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description       text NOT NULL DEFAULT '',
    hierarchy         smallint NOT NULL CHECK (hierarchy >= 1),
    organization_id   uuid REFERENCES organizations (id) ON DELETE RESTRICT,
    establishment_id  uuid,
    created_by        uuid,
    created_at        timestamptz NOT NULL,
    CHECK ((hierarchy <= 4) = (organization_id IS NULL)),
    CHECK (establishment_id IS NULL OR organization_id IS NOT NULL),
    UNIQUE (id, organization_id),
    FOREIGN KEY (establishment_id, organization_id)
        REFERENCES establishments (id, organization_id) ON DELETE RESTRICT
);
INSERT INTO roles (id, name, description, hierarchy, created_at) VALUES
    ('00000000-0000-7000-8000-000000000001', 'root', 'System role root', 1, 'epoch'),
    ('00000000-0000-7000-8000-000000000002', 'partner', 'System role partner', 2, 'epoch'),
    ('00000000-0000-7000-8000-000000000003', 'admin', 'System role admin', 3, 'epoch'),
    ('00000000-0000-7000-8000-000000000004', 'user', 'System role user', 4, 'epoch');

-- Grants of custom roles. System roles' permissions come from the catalogue.
CREATE TABLE permissions (
    role_id     uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    action      text NOT NULL REFERENCES actions (name) ON DELETE RESTRICT,
    granted_by  uuid,
    granted_at  timestamptz NOT NULL,
    PRIMARY KEY (role_id, action)
);

-- partner_company_id is set only for partner-level users; users of an
-- organization take their partner from the organization (so it can never
-- disagree with it).
CREATE TABLE users (
    id                  uuid PRIMARY KEY,
    email               text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash       text,
    first_name          text NOT NULL,
    last_name           text NOT NULL DEFAULT '',
    role_id             uuid NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    partner_company_id  uuid REFERENCES partner_companies (id) ON DELETE RESTRICT,
    organization_id     uuid REFERENCES organizations (id) ON DELETE RESTRICT,
    is_active           boolean NOT NULL DEFAULT true,
    email_verified      boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    CHECK (partner_company_id IS NULL OR organization_id IS NULL),
    UNIQUE (id, organization_id)
);
CREATE INDEX users_partner_idx ON users (partner_company_id, id);
CREATE INDEX users_organization_idx ON users (organization_id, id);

ALTER TABLE roles ADD FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE permissions ADD FOREIGN KEY (granted_by) REFERENCES users (id) ON DELETE SET NULL;

CREATE TABLE user_establishments (
    user_id           uuid NOT NULL,
    establishment_id  uuid NOT NULL,
    organization_id   uuid NOT NULL,
    role_id           uuid,
    assigned_at       timestamptz NOT NULL,
    assigned_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    PRIMARY KEY (user_id, establishment_id),
    FOREIGN KEY (user_id, organization_id)
        REFERENCES users (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (establishment_id, organization_id)
        REFERENCES establishments (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (role_id, organization_id)
        REFERENCES roles (id, organization_id) ON DELETE RESTRICT
);
CREATE INDEX user_establishments_establishment_idx ON user_establishments (establishment_id);

CREATE TABLE invitations (
    id                  uuid PRIMARY KEY,
    email               text NOT NULL,
    role_id             uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    partner_company_id  uuid REFERENCES partner_companies (id) ON DELETE CASCADE,
    organization_id     uuid REFERENCES organizations (id) ON DELETE CASCADE,
    invited_by          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash          bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    status              text NOT NULL CHECK (status IN ('pending', 'accepted', 'declined')),
    expires_at          timestamptz NOT NULL,
    created_at          timestamptz NOT NULL,
    responded_at        timestamptz,
    CHECK ((partner_company_id IS NULL) <> (organization_id IS NULL))
);
