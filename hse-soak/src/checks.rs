//! The checkers, run at the end on the data PostgreSQL holds (connected
//! straight to it as the superuser, so row-level security hides nothing).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::load::DeviceOutcome;

/// One checker's verdict.
#[derive(Debug)]
pub(crate) struct Verdict {
    /// What it checks.
    pub(crate) name: &'static str,
    /// Whether it holds.
    pub(crate) passed: bool,
    /// The figures behind it.
    pub(crate) detail: String,
}

/// The event counts of the exactly-once checker, by `(device_id,
/// event_id)`: the time a row carries is not part of an event's identity
/// (a device without a clock gets the server's time on every attempt).
#[derive(Debug, Default)]
pub(crate) struct EventCounts {
    /// Distinct `(device, event)` pairs acknowledged to the devices.
    pub(crate) acked: u64,
    /// Rows in `device_events` for the soak's devices.
    pub(crate) stored_rows: u64,
    /// Distinct `(device, event)` pairs among those rows.
    pub(crate) stored_pairs: u64,
    /// Acknowledged pairs with exactly one row.
    pub(crate) acked_stored_once: u64,
    /// Acknowledged pairs with no row.
    pub(crate) missing: u64,
    /// Pairs (acknowledged or not) with more than one row.
    pub(crate) duplicated: u64,
    /// Of those, pairs of devices that send no `ts_ms`.
    pub(crate) duplicated_timeless: u64,
    /// Rows beyond the first of every duplicated pair.
    pub(crate) extra_rows: u64,
    /// One duplicated pair, described (device, event, rows, times).
    pub(crate) example: Option<String>,
    /// Stored pairs the device never saw acknowledged (their ack was lost
    /// with a connection; allowed).
    pub(crate) stored_unacked: u64,
}

impl EventCounts {
    /// Whether every acknowledged event is stored exactly once.
    pub(crate) fn holds(&self) -> bool {
        self.missing == 0 && self.duplicated == 0 && self.acked_stored_once == self.acked
    }

    /// The checker's figures, duplicates described precisely.
    pub(crate) fn detail(&self) -> String {
        let mut detail = format!(
            "{} (device, event) pairs acked, {} stored ({} rows), {} acked stored once, {} missing, {} duplicated",
            self.acked,
            self.stored_pairs,
            self.stored_rows,
            self.acked_stored_once,
            self.missing,
            self.duplicated
        );
        if self.duplicated > 0 {
            detail.push_str(&format!(
                " ({} extra rows; {} of the pairs from devices without ts_ms)",
                self.extra_rows, self.duplicated_timeless
            ));
        }
        if let Some(example) = &self.example {
            detail.push_str(&format!("; e.g. {example}"));
        }
        detail
    }
}

/// One stored pair: device, event, rows, earliest and latest time.
type StoredPair = (Uuid, Uuid, i64, DateTime<Utc>, DateTime<Utc>);

/// Counts rows per `(device, event)` for the soak's devices.
pub(crate) async fn events(
    pool: &PgPool,
    devices: &[DeviceOutcome],
) -> anyhow::Result<EventCounts> {
    let ids: Vec<Uuid> = devices.iter().map(|d| d.device).collect();
    let rows: Vec<StoredPair> = sqlx::query_as(
        "SELECT device_id, event_id, count(*), min(time), max(time) FROM device_events
         WHERE device_id = ANY($1) GROUP BY device_id, event_id",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    Ok(count(rows, devices))
}

/// The counts of `rows` (one per stored pair) against what `devices` saw
/// acknowledged.
fn count(rows: Vec<StoredPair>, devices: &[DeviceOutcome]) -> EventCounts {
    let timeless: HashSet<Uuid> = devices
        .iter()
        .filter(|d| !d.timed)
        .map(|d| d.device)
        .collect();
    let mut stored: HashMap<(Uuid, Uuid), i64> = HashMap::with_capacity(rows.len());
    let mut counts = EventCounts::default();
    for (device, event, n, first, last) in rows {
        counts.stored_rows += u64::try_from(n).unwrap_or(0);
        counts.stored_pairs += 1;
        if n > 1 {
            counts.duplicated += 1;
            counts.extra_rows += u64::try_from(n - 1).unwrap_or(0);
            let clock = if timeless.contains(&device) {
                counts.duplicated_timeless += 1;
                "without ts_ms"
            } else {
                "with ts_ms"
            };
            counts.example.get_or_insert_with(|| {
                format!(
                    "device {device} ({clock}) event {event}: {n} rows, {} to {}",
                    first.to_rfc3339(),
                    last.to_rfc3339()
                )
            });
        }
        stored.insert((device, event), n);
    }
    let mut acked_keys = HashSet::new();
    for device in devices {
        for event in &device.acked {
            if !acked_keys.insert((device.device, *event)) {
                continue;
            }
            counts.acked += 1;
            match stored.get(&(device.device, *event)) {
                None => counts.missing += 1,
                Some(1) => counts.acked_stored_once += 1,
                Some(_) => {}
            }
        }
    }
    counts.stored_unacked = stored.keys().filter(|k| !acked_keys.contains(k)).count() as u64;
    counts
}

/// Acknowledged events not yet stored (to wait for the writers).
pub(crate) async fn unstored(pool: &PgPool, devices: &[DeviceOutcome]) -> anyhow::Result<u64> {
    Ok(events(pool, devices).await?.missing)
}

/// No two active bookings of an area overlap (check-in to blocked-until).
pub(crate) async fn bookings(pool: &PgPool) -> anyhow::Result<Verdict> {
    let (active, overlapping): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM bookings WHERE status <> 'cancelled'),
                (SELECT count(*) FROM bookings a JOIN bookings b
                   ON a.area_id = b.area_id AND a.id < b.id
                  WHERE a.status <> 'cancelled' AND b.status <> 'cancelled'
                    AND tstzrange(a.check_in, a.blocked_until, '[)')
                     && tstzrange(b.check_in, b.blocked_until, '[)'))",
    )
    .fetch_one(pool)
    .await?;
    Ok(Verdict {
        name: "no overlapping active bookings of an area",
        passed: overlapping == 0 && active > 0,
        detail: format!("{active} active bookings, {overlapping} overlapping pairs"),
    })
}

/// No two live equal codes on a lock with overlapping validity.
pub(crate) async fn door_codes(pool: &PgPool) -> anyhow::Result<Verdict> {
    let (live, clashing): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM door_codes WHERE state NOT IN ('removed', 'failed')),
                (SELECT count(*) FROM door_codes a JOIN door_codes b
                   ON a.device_id = b.device_id AND a.code = b.code AND a.id < b.id
                  WHERE a.state NOT IN ('removed', 'failed') AND b.state NOT IN ('removed', 'failed')
                    AND tstzrange(a.valid_from, a.valid_until, '[)')
                     && tstzrange(b.valid_from, b.valid_until, '[)'))",
    )
    .fetch_one(pool)
    .await?;
    Ok(Verdict {
        name: "no equal live codes on a lock with overlapping validity",
        passed: clashing == 0 && live > 0,
        detail: format!("{live} live codes, {clashing} clashing pairs"),
    })
}

/// Every id of a tenant's rows, by organization: organizations,
/// establishments, areas, devices, users, guests, bookings, door codes.
pub(crate) async fn owners(pool: &PgPool) -> anyhow::Result<HashMap<String, String>> {
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, id FROM organizations
         UNION ALL SELECT id, organization_id FROM establishments
         UNION ALL SELECT a.id, e.organization_id FROM areas a JOIN establishments e ON e.id = a.establishment_id
         UNION ALL SELECT d.id, e.organization_id FROM devices d JOIN establishments e ON e.id = d.establishment_id
         UNION ALL SELECT id, organization_id FROM users WHERE organization_id IS NOT NULL
         UNION ALL SELECT id, organization_id FROM guests
         UNION ALL SELECT id, organization_id FROM bookings
         UNION ALL SELECT id, organization_id FROM door_codes",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, org)| (id.to_string(), org.to_string()))
        .collect())
}

/// The ids `seen` by the tenant of `organization` that belong to another
/// organization (`owners`) or are events of another tenant's devices.
pub(crate) fn foreign_ids(
    seen: &HashSet<String>,
    organization: &str,
    owners: &HashMap<String, String>,
    others_events: &HashSet<String>,
) -> Vec<String> {
    let mut foreign: Vec<String> = seen
        .iter()
        .filter(|id| {
            owners.get(*id).is_some_and(|org| org != organization) || others_events.contains(*id)
        })
        .cloned()
        .collect();
    foreign.sort();
    foreign
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(timed: bool, acked: Vec<Uuid>) -> DeviceOutcome {
        DeviceOutcome {
            device: Uuid::new_v4(),
            timed,
            acked,
            ..DeviceOutcome::default()
        }
    }

    #[test]
    fn a_pair_stored_at_two_times_is_a_duplicate_with_an_example() {
        let (e1, e2, e3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let timed = device(true, vec![e1]);
        let timeless = device(false, vec![e2, e3]);
        let t = Utc::now();
        let later = t + chrono::TimeDelta::milliseconds(1500);
        let rows = vec![
            (timed.device, e1, 1, t, t),
            (timeless.device, e2, 3, t, later),
            (timeless.device, e3, 1, t, t),
        ];
        let counts = count(rows, &[timed, timeless]);
        assert!(!counts.holds());
        assert_eq!(
            (counts.acked, counts.stored_pairs, counts.stored_rows),
            (3, 3, 5)
        );
        assert_eq!((counts.acked_stored_once, counts.missing), (2, 0));
        assert_eq!(
            (
                counts.duplicated,
                counts.extra_rows,
                counts.duplicated_timeless
            ),
            (1, 2, 1)
        );
        let detail = counts.detail();
        assert!(detail.contains(&format!("event {e2}: 3 rows")), "{detail}");
        assert!(detail.contains("without ts_ms"), "{detail}");
    }

    #[test]
    fn one_row_per_acked_pair_holds_and_missing_ones_do_not() {
        let (e1, e2) = (Uuid::new_v4(), Uuid::new_v4());
        let d = device(false, vec![e1, e2]);
        let t = Utc::now();
        let both = count(vec![(d.device, e1, 1, t, t), (d.device, e2, 1, t, t)], &[d]);
        assert!(both.holds(), "{}", both.detail());
        let d = device(false, vec![e1, e2]);
        let one = count(vec![(d.device, e1, 1, t, t)], &[d]);
        assert!(!one.holds());
        assert_eq!(one.missing, 1);
    }
}
