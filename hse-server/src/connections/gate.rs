//! Admission of incoming connections: a cap on every connection a listener
//! holds open and on those from one source address. A connection over
//! either cap is closed as soon as it is accepted, before anything is
//! allocated for it, so an address that floods the listener takes its own
//! share only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How many connections a listener holds open at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// In all.
    pub total: usize,
    /// From one source ([`Source`]).
    pub per_source: usize,
}

/// What connections are counted under: an IPv4 address, or the `/64` an
/// IPv6 address is in (one host is commonly handed a whole `/64`, so
/// counting single IPv6 addresses would not cap anyone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    /// The source of a peer address (IPv4-mapped IPv6 counts as IPv4).
    #[must_use]
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Self(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
                }
            },
        }
    }
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds its total cap.
    Full,
    /// Its source holds its per-source cap.
    SourceFull,
}

impl Refusal {
    /// The `reason` label of `hse_connections_refused_total`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Full => "total",
            Self::SourceFull => "per_source",
        }
    }
}

/// The open connections of one listener, by source.
#[derive(Debug)]
pub struct Gate {
    listener: &'static str,
    caps: Caps,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<Source, usize>,
}

impl Gate {
    /// A gate for the listener named `listener` (`http`, `grpc`: the
    /// `listener` label of its metrics).
    #[must_use]
    pub fn new(listener: &'static str, caps: Caps) -> Arc<Self> {
        Arc::new(Self {
            listener,
            caps: Caps {
                total: caps.total.max(1),
                per_source: caps.per_source.max(1),
            },
            open: Mutex::new(Open::default()),
        })
    }

    /// Admits a connection from `ip`, or says which cap it is over.
    ///
    /// # Errors
    /// [`Refusal`] when the listener or the source is at its cap; the
    /// refusal is counted in `hse_connections_refused_total`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let source = Source::of(ip);
        let mut open = self.lock();
        let from_source = open.by_source.get(&source).copied().unwrap_or(0);
        let refusal = if open.total >= self.caps.total {
            Some(Refusal::Full)
        } else if from_source >= self.caps.per_source {
            Some(Refusal::SourceFull)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            drop(open);
            metrics::counter!(
                "hse_connections_refused_total",
                "listener" => self.listener,
                "reason" => refusal.label()
            )
            .increment(1);
            return Err(refusal);
        }
        open.total += 1;
        open.by_source.insert(source, from_source + 1);
        let total = open.total;
        drop(open);
        self.report(total);
        Ok(Slot {
            gate: Arc::clone(self),
            source,
        })
    }

    /// Connections open now.
    #[must_use]
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn release(&self, source: Source) {
        let mut open = self.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                open.by_source.remove(&source);
                // Give back what a flood from many sources left behind.
                let map = &mut open.by_source;
                if map.capacity() > SHRINK_ABOVE && map.len() < map.capacity() / 4 {
                    map.shrink_to(map.len() * 2);
                }
            }
        }
        let total = open.total;
        drop(open);
        self.report(total);
    }

    fn report(&self, total: usize) {
        metrics::gauge!("hse_connections_open", "listener" => self.listener).set(total as f64);
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sources the map keeps room for without shrinking.
const SHRINK_ABOVE: usize = 1024;

/// One admitted connection: dropping it (when the connection, or the
/// WebSocket it was upgraded to, is closed) frees its place.
#[derive(Debug)]
pub struct Slot {
    gate: Arc<Gate>,
    source: Source,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.release(self.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_source_gets_its_share_and_the_total_is_capped() {
        let gate = Gate::new(
            "test",
            Caps {
                total: 3,
                per_source: 2,
            },
        );
        let a1 = gate.admit(ip("10.0.0.1")).unwrap();
        let _a2 = gate.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            gate.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::SourceFull
        );
        let _b1 = gate.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(gate.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Full);
        drop(a1);
        assert_eq!(gate.open(), 2);
        assert!(gate.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(Source::of(ip("::ffff:10.0.0.1")), Source::of(ip("10.0.0.1")));
    }

    #[test]
    fn closed_connections_leave_nothing_behind() {
        let gate = Gate::new(
            "test",
            Caps {
                total: 10_000,
                per_source: 1,
            },
        );
        let slots: Vec<Slot> = (0..5000u32)
            .map(|i| gate.admit(IpAddr::from(i.to_be_bytes())).unwrap())
            .collect();
        drop(slots);
        assert_eq!(gate.open(), 0);
        assert!(gate.lock().by_source.capacity() <= SHRINK_ABOVE * 2);
    }
}
