-- Rollup arithmetic that cannot fail.
--
-- A device may report any finite double. PostgreSQL's float8 arithmetic
-- raises an error on overflow and underflow (1e200 * 1e200, 1e-200 *
-- 1e-200, 1.7e308 + 1.7e308), and one such error used to fail the whole
-- insert, so a valid event was dead-lettered and its bucket refused every
-- later value. These functions saturate instead: a value beyond ±1e300
-- counts as ±Infinity in the sum, a square beyond 1e300 as Infinity and a
-- square below 1e-300 as 0, and adding two partial sums that would pass
-- the largest double gives ±Infinity. Counts, minimum and maximum stay
-- exact. Each is a single SQL expression, so the planner inlines it.

CREATE FUNCTION hse_rollup_value(v double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v > 1e300 THEN 'Infinity'::float8
                WHEN v < -1e300 THEN '-Infinity'::float8
                ELSE v END
$$;

CREATE FUNCTION hse_rollup_square(v double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN abs(v) > 1e150 THEN 'Infinity'::float8
                WHEN abs(v) < 1e-150 THEN 0::float8
                ELSE v * v END
$$;

CREATE FUNCTION hse_rollup_add(a double precision, b double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a > 0 AND b > 0 AND a > 1.79e308::float8 - b THEN 'Infinity'::float8
                WHEN a < 0 AND b < 0 AND a < -1.79e308::float8 - b THEN '-Infinity'::float8
                ELSE a + b END
$$;
