-- hse-booking: row-level security (see hse-core's 20261128000003 for the
-- scope settings, the helper functions and the application group role).
--
-- Guests, their companion links and notifications belong to an
-- organization; bookings and door codes also to an establishment, both
-- carried on the row, so their policies need no join but the partner's
-- organizations.

SELECT hse_protect('guests', 'hse_scope_all() OR ' || hse_sees_organization_sql('organization_id'));
SELECT hse_protect('guest_companions', 'hse_scope_all() OR ' || hse_sees_organization_sql('organization_id'));
SELECT hse_protect('notifications', 'hse_scope_all() OR ' || hse_sees_organization_sql('organization_id'));
SELECT hse_protect('bookings', hse_sees_placed_sql('organization_id', 'establishment_id'));
SELECT hse_protect('door_codes', hse_sees_placed_sql('organization_id', 'establishment_id'));
