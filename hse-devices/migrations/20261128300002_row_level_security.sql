-- hse-devices: row-level security (see hse-core's 20261128000003 for the
-- scope settings, the helper functions and the application group role).
--
-- Events and rollups carry only their device: visible when the device is
-- (its policy, in turn, asks its establishment's). The ingest writer runs
-- in the system scope, which the policies test first, so a batch pays one
-- setting comparison per row and no join.
--
-- Partitions are created and dropped by the functions below, which run as
-- their owner (the migration role): the application role cannot create
-- tables, and has no privilege on a partition itself, so it reaches events
-- only through device_events and its policy.

SELECT hse_protect('device_events', 'hse_scope_all() OR device_id IN (SELECT d.id FROM devices d)');
SELECT hse_protect('device_rollups_hourly', 'hse_scope_all() OR device_id IN (SELECT d.id FROM devices d)');
SELECT hse_protect('device_rollups_daily', 'hse_scope_all() OR device_id IN (SELECT d.id FROM devices d)');

ALTER FUNCTION hse_devices_ensure_partition(date) SECURITY DEFINER SET search_path FROM CURRENT;
ALTER FUNCTION hse_devices_drop_partitions_before(date) SECURITY DEFINER SET search_path FROM CURRENT;
REVOKE EXECUTE ON FUNCTION hse_devices_ensure_partition(date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION hse_devices_drop_partitions_before(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hse_devices_ensure_partition(date) TO hse_app_group;
GRANT EXECUTE ON FUNCTION hse_devices_drop_partitions_before(date) TO hse_app_group;
