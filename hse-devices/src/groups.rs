//! The consumer-group port: how a module that reacts to device events
//! (alarms, access decisions, attendance) follows the event stream.
//!
//! A module registers a consumer group of its own with
//! [`EventGroups::register_group`] and reads it like the batch writer reads
//! the writers' group: [`QueueConsumer::read`] gives a batch (the
//! consumer's own unacked entries first, after a restart), the module acts
//! on it and commits, then [`QueueConsumer::ack`]s it;
//! [`QueueConsumer::reclaim`] takes over what a dead member of the group
//! held. A group is never on a device's ack path: a device is acked once
//! its events are enqueued, whatever any group does, and each group gets
//! every event enqueued after its registration, at least once (so a
//! module's effect must be idempotent by `(device_id, event_id)`).
//!
//! The queue keeps an entry until every group is done with it: the Redis
//! adapter trims the stream below the oldest entry any group still needs,
//! the in-process one keeps a copy per group. The queue's bounds (the
//! Redis high-water mark, the in-process capacity) count what every group
//! holds, so a group that stops reading for long enough makes ingest
//! answer `overloaded` rather than lose entries or exhaust memory.
//!
//! Adapters: [`MemoryQueue`](crate::queue::MemoryQueue) and `RedisQueue`
//! (feature `redis`), each with the behaviour suite of
//! `tests/consumers/groups.rs`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Invalid, QueueError};
use crate::model::EventType;
use crate::queue::QueueConsumer;

/// The batch writers' consumer group (reserved: a module cannot register
/// it).
pub const WRITERS_GROUP: &str = "writers";

/// A consumer group's name: 1–50 characters of `[a-z0-9_.-]`, not
/// [`WRITERS_GROUP`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(String);

impl GroupName {
    /// Longest accepted name.
    pub const MAX_LEN: usize = EventType::MAX_LEN;

    /// Validates a group name.
    ///
    /// # Errors
    /// [`Invalid`] naming `group` when empty, too long, with a character
    /// outside `[a-z0-9_.-]`, or the writers' own.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        // The same alphabet and length as event types.
        EventType::parse(text).map_err(|e| Invalid::new("group", e.reason))?;
        if text == WRITERS_GROUP {
            return Err(Invalid::new(
                "group",
                "`writers` is the batch writers' group",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupName({})", self.0)
    }
}

/// The port: consumer groups on the device-event queue.
#[async_trait]
pub trait EventGroups: Send + Sync + fmt::Debug {
    /// Registers `group` if it does not exist yet (it then receives every
    /// event enqueued from now on; an existing group keeps its place) and
    /// returns its member `consumer`. Give each process a stable consumer
    /// name, so a restarted one finds its unacked entries first.
    ///
    /// # Errors
    /// [`QueueError::Unavailable`] if the backend cannot be reached.
    async fn register_group(
        &self,
        group: &GroupName,
        consumer: &str,
    ) -> Result<Arc<dyn QueueConsumer>, QueueError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_take_the_event_type_alphabet_and_not_the_writers_name() {
        assert!(GroupName::parse("alarms").is_ok());
        assert!(GroupName::parse("access.v2-eu_1").is_ok());
        assert!(GroupName::parse(&"a".repeat(50)).is_ok());
        for bad in ["", "Alarms", "a b", "a:b", "writers", &"a".repeat(51)] {
            assert!(GroupName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
