-- hse-devices: raw device events, hourly/daily rollups, partition upkeep.
--
-- device_events is a TimescaleDB hypertable (compression after 7 days,
-- retention 2 years) when the extension can be created, and otherwise a
-- table range-partitioned by UTC day whose partitions are created ahead and
-- dropped past retention by hse_devices::postgres::PgEventStore::maintain.
-- (device_id, event_id, time) is unique: a redelivered event is stored once.

DO $$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'timescaledb is not available; device_events uses native daily partitions';
    END;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        CREATE TABLE device_events (
            time        timestamptz NOT NULL,
            device_id   uuid NOT NULL,
            event_id    uuid NOT NULL,
            event_type  text NOT NULL CHECK (length(event_type) BETWEEN 1 AND 50),
            value       double precision,
            unit        text CHECK (length(unit) <= 20),
            metadata    jsonb CHECK (metadata IS NULL OR jsonb_typeof(metadata) = 'object'),
            source      text CHECK (length(source) <= 50),
            PRIMARY KEY (device_id, event_id, time)
        );
        PERFORM create_hypertable('device_events', 'time', chunk_time_interval => interval '1 day');
        ALTER TABLE device_events SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id');
        PERFORM add_compression_policy('device_events', interval '7 days');
        PERFORM add_retention_policy('device_events', interval '2 years');
    ELSE
        CREATE TABLE device_events (
            time        timestamptz NOT NULL,
            device_id   uuid NOT NULL,
            event_id    uuid NOT NULL,
            event_type  text NOT NULL CHECK (length(event_type) BETWEEN 1 AND 50),
            value       double precision,
            unit        text CHECK (length(unit) <= 20),
            metadata    jsonb CHECK (metadata IS NULL OR jsonb_typeof(metadata) = 'object'),
            source      text CHECK (length(source) <= 50),
            PRIMARY KEY (device_id, event_id, time)
        ) PARTITION BY RANGE (time);
    END IF;
END
$$;

CREATE INDEX device_events_device_time_idx ON device_events (device_id, time DESC, event_id DESC);

-- Creates the partition of one UTC day if device_events is partitioned and
-- it does not exist yet; safe to call concurrently.
CREATE FUNCTION hse_devices_ensure_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := format('device_events_p%s', to_char(day, 'YYYYMMDD'));
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'device_events'::regclass) THEN
        RETURN false;
    END IF;
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF device_events FOR VALUES FROM (%L) TO (%L)',
        name, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    RETURN true;
EXCEPTION WHEN duplicate_table OR unique_violation THEN
    RETURN false;
END
$$;

-- Drops the daily partitions that end on or before `cutoff`; returns how many.
CREATE FUNCTION hse_devices_drop_partitions_before(cutoff date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'device_events'::regclass
          AND c.relname ~ '^device_events_p[0-9]{8}$'
          AND to_date(substring(c.relname FROM 16), 'YYYYMMDD') < cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;

-- Rollups, maintained in the same statement as the raw insert from the rows
-- actually inserted. Buckets are UTC hours and days.
CREATE TABLE device_rollups_hourly (
    device_id     uuid NOT NULL,
    event_type    text NOT NULL,
    bucket        timestamptz NOT NULL,
    event_count   bigint NOT NULL,
    value_count   bigint NOT NULL,
    value_sum     double precision NOT NULL,
    value_min     double precision,
    value_max     double precision,
    value_sum_sq  double precision NOT NULL,
    PRIMARY KEY (device_id, event_type, bucket)
);

CREATE TABLE device_rollups_daily (LIKE device_rollups_hourly INCLUDING ALL);
