-- One stored event per (device_id, event_id), whatever its time.
--
-- device_events' key includes the time (a partitioned table's, and a
-- hypertable's, unique keys must), so the same event_id retried with
-- another time — a frame without ts_ms gets the server's time at each
-- attempt — was stored twice and counted twice in the rollups. This table
-- is not partitioned: its key is (device_id, event_id) alone. The writer
-- inserts a batch's ids here first (ON CONFLICT DO NOTHING RETURNING) and
-- stores, and rolls up, only the events whose id was new, in the same
-- statement. `time` is the stored event's, so retention prunes the ids
-- together with the events (PgEventStore::maintain); a BRIN index serves
-- that prune at almost no cost per insert (ids arrive roughly in time
-- order). Both layouts (native partitions and TimescaleDB) use it.

CREATE TABLE device_event_ids (
    device_id  uuid NOT NULL,
    event_id   uuid NOT NULL,
    time       timestamptz NOT NULL,
    PRIMARY KEY (device_id, event_id)
);

CREATE INDEX device_event_ids_time_brin ON device_event_ids USING brin (time);

INSERT INTO device_event_ids (device_id, event_id, time)
SELECT device_id, event_id, min(time) FROM device_events GROUP BY device_id, event_id
ON CONFLICT DO NOTHING;

SELECT hse_protect('device_event_ids', 'hse_scope_all() OR device_id IN (SELECT d.id FROM devices d)');
