-- hse-booking: guests, companions, bookings, door codes and the notification outbox.
--
-- Tenancy is carried on every row and tied to hse-core's tables with
-- composite foreign keys, so a booking can never reference another
-- tenant's area, guest or lock. Two exclusion constraints make double
-- bookings and duplicate door codes impossible under any concurrency.

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE guests (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    first_name       text NOT NULL CHECK (length(first_name) BETWEEN 1 AND 100),
    last_name        text NOT NULL DEFAULT '',
    email            text CHECK (email = lower(email)),
    phone            text NOT NULL DEFAULT '',
    document_type    text NOT NULL DEFAULT '',
    document_number  text NOT NULL DEFAULT '',
    country          text NOT NULL DEFAULT '',
    metadata         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (id, organization_id)
);
CREATE INDEX guests_organization_idx ON guests (organization_id, id);

-- A link is stored once and read from both sides.
CREATE TABLE guest_companions (
    guest_id         uuid NOT NULL,
    companion_id     uuid NOT NULL,
    organization_id  uuid NOT NULL,
    relationship     text NOT NULL CHECK (length(relationship) BETWEEN 1 AND 50),
    added_at         timestamptz NOT NULL,
    PRIMARY KEY (guest_id, companion_id),
    CHECK (guest_id <> companion_id),
    FOREIGN KEY (guest_id, organization_id) REFERENCES guests (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (companion_id, organization_id) REFERENCES guests (id, organization_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX guest_companions_pair_key
    ON guest_companions (LEAST(guest_id, companion_id), GREATEST(guest_id, companion_id));
CREATE INDEX guest_companions_companion_idx ON guest_companions (companion_id);

-- A booking blocks [check_in, blocked_until): check-out plus the turnover
-- gap of its establishment at the time it was written.
CREATE TABLE bookings (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL,
    establishment_id     uuid NOT NULL,
    area_id              uuid NOT NULL,
    guest_id             uuid NOT NULL,
    check_in             timestamptz NOT NULL,
    check_out            timestamptz NOT NULL,
    blocked_until        timestamptz NOT NULL,
    status               text NOT NULL
                         CHECK (status IN ('pending', 'confirmed', 'in-progress', 'completed', 'cancelled')),
    confirmation_code    text NOT NULL CHECK (confirmation_code ~ '^[2-9A-HJ-NP-Z]{8}$'),
    special_requests     text NOT NULL DEFAULT '',
    total_guests         smallint NOT NULL CHECK (total_guests BETWEEN 1 AND 100),
    metadata             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_by           uuid NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    cancelled_at         timestamptz,
    cancelled_by         uuid,
    cancellation_reason  text,
    CHECK (check_out > check_in),
    CHECK (blocked_until >= check_out),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CHECK ((cancelled_at IS NULL) = (cancelled_by IS NULL)),
    CONSTRAINT bookings_confirmation_code_key UNIQUE (confirmation_code),
    FOREIGN KEY (area_id, establishment_id) REFERENCES areas (id, establishment_id) ON DELETE RESTRICT,
    FOREIGN KEY (establishment_id, organization_id)
        REFERENCES establishments (id, organization_id) ON DELETE RESTRICT,
    FOREIGN KEY (guest_id, organization_id) REFERENCES guests (id, organization_id) ON DELETE RESTRICT,
    CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
        area_id WITH =,
        tstzrange(check_in, blocked_until, '[)') WITH &&
    ) WHERE (status <> 'cancelled')
);
CREATE INDEX bookings_organization_idx ON bookings (organization_id, id);
CREATE INDEX bookings_establishment_idx ON bookings (establishment_id, id);
CREATE INDEX bookings_guest_idx ON bookings (guest_id);
CREATE INDEX bookings_due_check_in_idx ON bookings (check_in) WHERE status = 'confirmed';
CREATE INDEX bookings_due_check_out_idx ON bookings (check_out) WHERE status = 'in-progress';

-- What should be on each lock. Live codes (not removed/failed) are unique
-- per lock among overlapping validity windows.
CREATE TABLE door_codes (
    id                   uuid PRIMARY KEY,
    booking_id           uuid REFERENCES bookings (id) ON DELETE SET NULL,
    organization_id      uuid NOT NULL,
    establishment_id     uuid NOT NULL,
    area_id              uuid NOT NULL,
    device_id            uuid NOT NULL,
    code                 text NOT NULL CHECK (code ~ '^[0-9]{4,8}$'),
    valid_from           timestamptz NOT NULL,
    valid_until          timestamptz NOT NULL,
    early_grace_minutes  integer NOT NULL CHECK (early_grace_minutes >= 0),
    late_grace_minutes   integer NOT NULL CHECK (late_grace_minutes >= 0),
    state                text NOT NULL
                         CHECK (state IN ('pending', 'programming', 'active', 'removing', 'removed', 'failed')),
    failure_reason       text,
    attempts             integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at      timestamptz,
    usage_count          integer NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    max_usages           integer CHECK (max_usages > 0),
    version              bigint NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    CHECK (valid_until > valid_from),
    FOREIGN KEY (device_id, establishment_id) REFERENCES devices (id, establishment_id) ON DELETE CASCADE,
    FOREIGN KEY (area_id, establishment_id) REFERENCES areas (id, establishment_id) ON DELETE CASCADE,
    FOREIGN KEY (establishment_id, organization_id)
        REFERENCES establishments (id, organization_id) ON DELETE CASCADE,
    CONSTRAINT door_codes_unique_per_lock EXCLUDE USING gist (
        device_id WITH =,
        code WITH =,
        tstzrange(valid_from, valid_until, '[)') WITH &&
    ) WHERE (state NOT IN ('removed', 'failed'))
);
CREATE INDEX door_codes_booking_idx ON door_codes (booking_id);
CREATE INDEX door_codes_due_idx ON door_codes (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- The outbox: written in the transaction of the change that causes it.
CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    booking_id       uuid REFERENCES bookings (id) ON DELETE SET NULL,
    guest_id         uuid NOT NULL,
    kind             text NOT NULL CHECK (kind IN
                         ('booking_confirmed', 'check_in_instructions', 'booking_modified', 'booking_cancelled')),
    channel          text NOT NULL CHECK (channel IN ('email', 'webhook')),
    recipient        text NOT NULL,
    subject          text NOT NULL,
    message          text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz,
    last_error       text,
    sent_at          timestamptz,
    metadata         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at       timestamptz NOT NULL,
    FOREIGN KEY (guest_id, organization_id) REFERENCES guests (id, organization_id) ON DELETE CASCADE
);
CREATE INDEX notifications_booking_idx ON notifications (booking_id);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status = 'pending';
