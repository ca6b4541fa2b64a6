//! Commands to devices, and the registry of who is connected where.
//!
//! Each session registers its device in [`Connections`] and receives
//! commands through a bounded channel. A newer connection of the same
//! device replaces the older one, which is told through its
//! [`Registration::replaced`] token. [`Connections::send`] delivers a
//! command, tracks it by `request_id` and resolves it with the device's
//! `command_result`, or with `device_offline` / `timeout`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hse_core::DeviceId;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::codec::CommandResult;

/// Built-in command types.
pub const BUILTIN_COMMANDS: [&str; 5] = [
    "program_code",
    "remove_code",
    "unlock",
    "set_state",
    "reboot",
];

/// Whether `command_type` changes a lock's door codes (`program_code`,
/// `remove_code`, or any type with a word `code`, `codes`, `pin`, `pins`,
/// `passcode` or `passcodes` between `_`, `.` or `-`, in any case). Such
/// commands belong to the booking module, which checks a code's strength
/// and uniqueness before programming it; raw command interfaces (HTTP,
/// gRPC) refuse them.
#[must_use]
pub fn is_door_code_command(command_type: &str) -> bool {
    command_type
        .to_ascii_lowercase()
        .split(['_', '.', '-'])
        .any(|word| {
            matches!(
                word,
                "code" | "codes" | "pin" | "pins" | "passcode" | "passcodes"
            )
        })
}

/// Default time to wait for a device's result.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Commands a session may hold undelivered before senders wait.
const COMMAND_BUFFER: usize = 16;

/// A command on its way to a device.
#[derive(Clone, Debug)]
pub struct Command {
    /// Tracks the result.
    pub request_id: Uuid,
    /// What to do.
    pub command_type: String,
    /// With which parameters.
    pub params: Map<String, Value>,
}

/// Why a command has no result from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No session of the device is open here.
    #[error("device_offline")]
    DeviceOffline,
    /// The device did not answer in time.
    #[error("timeout")]
    Timeout,
    /// Another command with the same request id is in flight.
    #[error("duplicate request_id")]
    Duplicate,
}

impl CommandError {
    /// The wire code.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::DeviceOffline => "device_offline",
            Self::Timeout => "timeout",
            Self::Duplicate => "duplicate",
        }
    }
}

#[derive(Debug)]
struct Link {
    connection: u64,
    since_ms: i64,
    commands: mpsc::Sender<Box<Command>>,
    replaced: CancellationToken,
}

/// A device connected to this node at `since_ms` (Unix milliseconds), as
/// announced to other nodes so they drop an older session of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The device.
    pub device_id: DeviceId,
    /// When its session registered.
    pub since_ms: i64,
}

/// Sends a command to a device and waits for its result: [`Connections`]
/// on one node, `CommandBus` (feature `redis`) across nodes.
#[async_trait::async_trait]
pub trait CommandSender: Send + Sync + std::fmt::Debug {
    /// Sends `command` and waits up to `timeout` for the device's result.
    async fn send(
        &self,
        device_id: DeviceId,
        command: Command,
        timeout: Duration,
    ) -> Result<CommandResult, CommandError>;
}

#[async_trait::async_trait]
impl CommandSender for Connections {
    async fn send(
        &self,
        device_id: DeviceId,
        command: Command,
        timeout: Duration,
    ) -> Result<CommandResult, CommandError> {
        Connections::send(self, device_id, command, timeout).await
    }
}

/// Connected devices on this node and commands in flight.
#[derive(Debug, Default)]
pub struct Connections {
    links: Mutex<HashMap<DeviceId, Link>>,
    pending: Mutex<HashMap<Uuid, oneshot::Sender<CommandResult>>>,
    next_connection: AtomicU64,
    announcer: Mutex<Option<mpsc::Sender<Announcement>>>,
}

/// A session's registration.
#[derive(Debug)]
pub struct Registration {
    /// Identifies this connection (to deregister only itself).
    pub connection: u64,
    /// Commands for the device. Boxed: a channel allocates its first
    /// block of slots when created, so an idle connection's channel costs
    /// slots × pointer, not slots × command.
    pub commands: mpsc::Receiver<Box<Command>>,
    /// Cancelled when a newer connection of the device takes over.
    pub replaced: CancellationToken,
}

impl Connections {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a session of `device_id`, replacing any older one.
    pub fn register(&self, device_id: DeviceId) -> Registration {
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(COMMAND_BUFFER);
        let replaced = CancellationToken::new();
        let since_ms = chrono::Utc::now().timestamp_millis();
        let link = Link {
            connection,
            since_ms,
            commands: tx,
            replaced: replaced.clone(),
        };
        if let Some(old) = self.links().insert(device_id, link) {
            old.replaced.cancel();
        }
        let announcer = self
            .announcer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(announcer) = announcer {
            let _ = announcer.try_send(Announcement {
                device_id,
                since_ms,
            });
        }
        Registration {
            connection,
            commands: rx,
            replaced,
        }
    }

    /// Sends every new registration to `announcer` (best effort; the
    /// command bus tells the other nodes).
    pub fn announce_to(&self, announcer: mpsc::Sender<Announcement>) {
        *self
            .announcer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(announcer);
    }

    /// Another node registered the device at `since_ms`: a session here
    /// that is older is replaced (it closes with `replaced`, without
    /// marking the device offline). Returns whether one was.
    pub fn evict_older(&self, device_id: DeviceId, since_ms: i64) -> bool {
        let mut links = self.links();
        if links.get(&device_id).is_some_and(|l| l.since_ms < since_ms)
            && let Some(old) = links.remove(&device_id)
        {
            old.replaced.cancel();
            return true;
        }
        false
    }

    /// Removes the device's registration if it is still `connection`'s.
    /// Returns whether it was (so the caller may mark the device offline).
    pub fn deregister(&self, device_id: DeviceId, connection: u64) -> bool {
        let mut links = self.links();
        if links
            .get(&device_id)
            .is_some_and(|l| l.connection == connection)
        {
            links.remove(&device_id);
            return true;
        }
        false
    }

    /// Every session held here, as it was announced (the command bus
    /// announces them again after a Redis outage).
    #[must_use]
    pub fn sessions(&self) -> Vec<Announcement> {
        self.links()
            .iter()
            .map(|(&device_id, link)| Announcement {
                device_id,
                since_ms: link.since_ms,
            })
            .collect()
    }

    /// Whether the device has a session here.
    #[must_use]
    pub fn is_connected(&self, device_id: DeviceId) -> bool {
        self.links().contains_key(&device_id)
    }

    /// How many devices are connected here.
    #[must_use]
    pub fn len(&self) -> usize {
        self.links().len()
    }

    /// Whether no device is connected here.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends a command and waits for the device's result.
    ///
    /// # Errors
    /// [`CommandError::DeviceOffline`] at once when the device has no
    /// session here; [`CommandError::Timeout`] when no result arrives within
    /// `timeout`.
    pub async fn send(
        &self,
        device_id: DeviceId,
        command: Command,
        timeout: Duration,
    ) -> Result<CommandResult, CommandError> {
        let sender = self
            .links()
            .get(&device_id)
            .map(|l| l.commands.clone())
            .ok_or(CommandError::DeviceOffline)?;
        let request_id = command.request_id;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending();
            if pending.contains_key(&request_id) {
                return Err(CommandError::Duplicate);
            }
            pending.insert(request_id, tx);
        }
        let outcome = tokio::time::timeout(timeout, async {
            sender
                .send(Box::new(command))
                .await
                .map_err(|_| CommandError::DeviceOffline)?;
            rx.await.map_err(|_| CommandError::DeviceOffline)
        })
        .await;
        self.pending().remove(&request_id);
        outcome.unwrap_or(Err(CommandError::Timeout))
    }

    /// Delivers a device's result to the waiting sender, if any.
    pub fn resolve(&self, result: CommandResult) {
        if let Some(waiter) = self.pending().remove(&result.request_id) {
            let _ = waiter.send(result);
        }
    }

    fn links(&self) -> MutexGuard<'_, HashMap<DeviceId, Link>> {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<Uuid, oneshot::Sender<CommandResult>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> Command {
        Command {
            request_id: Uuid::now_v7(),
            command_type: "unlock".into(),
            params: Map::new(),
        }
    }

    #[test]
    fn door_code_commands_are_recognised_by_their_words() {
        for kind in [
            "program_code",
            "remove_code",
            "delete_code",
            "set_pin",
            "lock.codes.clear",
            "PROGRAM_CODE",
            "passcode-add",
        ] {
            assert!(is_door_code_command(kind), "{kind}");
        }
        for kind in ["unlock", "set_state", "reboot", "barcode_scan", "encode"] {
            assert!(!is_door_code_command(kind), "{kind}");
        }
    }

    #[tokio::test]
    async fn an_offline_device_fails_fast() {
        let c = Connections::new();
        let err = c
            .send(DeviceId::new(), command(), DEFAULT_COMMAND_TIMEOUT)
            .await;
        assert_eq!(err.unwrap_err(), CommandError::DeviceOffline);
    }

    #[tokio::test]
    async fn a_result_resolves_the_command_and_silence_times_out() {
        let c = std::sync::Arc::new(Connections::new());
        let id = DeviceId::new();
        let mut reg = c.register(id);
        let c2 = std::sync::Arc::clone(&c);
        let device = tokio::spawn(async move {
            let cmd = reg.commands.recv().await.unwrap();
            c2.resolve(CommandResult {
                request_id: cmd.request_id,
                success: true,
                message: "ok".into(),
            });
            reg
        });
        let result = c.send(id, command(), Duration::from_secs(5)).await.unwrap();
        assert!(result.success);
        let _reg = device.await.unwrap();
        let err = c.send(id, command(), Duration::from_millis(20)).await;
        assert_eq!(err.unwrap_err(), CommandError::Timeout);
    }

    #[tokio::test]
    async fn a_newer_registration_replaces_the_older() {
        let c = Connections::new();
        let id = DeviceId::new();
        let old = c.register(id);
        let new = c.register(id);
        assert!(old.replaced.is_cancelled());
        assert!(!c.deregister(id, old.connection));
        assert!(c.is_connected(id));
        assert!(c.deregister(id, new.connection));
        assert!(c.is_empty());
    }
}
