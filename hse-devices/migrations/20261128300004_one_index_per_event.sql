-- One B-tree per stored event instead of two.
--
-- The primary key was (device_id, event_id, time) and reads used a second
-- index (device_id, time DESC, event_id DESC): every insert paid for two
-- B-trees, one of them at random positions (event ids are random). A key
-- on (device_id, time, event_id) holds the same three columns, so it makes
-- the same rows unique (a redelivered event is still stored once), and
-- read backwards it serves the newest-first reads the second index did.
--
-- Only the native daily partitions are changed: a TimescaleDB hypertable
-- with compression enabled does not allow its key to be replaced in place,
-- and both layouts are correct.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'device_events'::regclass) THEN
        ALTER TABLE device_events DROP CONSTRAINT device_events_pkey;
        ALTER TABLE device_events ADD CONSTRAINT device_events_pkey PRIMARY KEY (device_id, time, event_id);
        DROP INDEX device_events_device_time_idx;
    END IF;
END
$$;
