//! Commands across nodes through Redis pub/sub (feature `redis`).
//!
//! When several ingest nodes run, a device is connected to one of them.
//! [`CommandBus::send`] tries this node first; otherwise it publishes the
//! command on `{p}commands`. The node holding the device delivers it and
//! publishes the device's result (or `timeout`) on the requester's
//! `{p}results:{node}`; every other node answers `not_here`, so a device
//! connected nowhere fails fast with `device_offline` once all have said so.
//!
//! Each session registered on a node is announced on `{p}connected`; a node
//! holding an older session of the same device closes it with `replaced`,
//! so the protocol's "a newer connection replaces the older" holds across
//! nodes too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use hse_core::DeviceId;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::codec::CommandResult;
use crate::commands::{Announcement, Command, CommandError, CommandSender, Connections};
use crate::error::QueueError;

/// Registrations waiting to be announced to the other nodes.
const ANNOUNCE_BUFFER: usize = 1024;
/// Replies buffered per command in flight.
const REPLY_BUFFER: usize = 64;

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    request_id: Uuid,
    device_id: DeviceId,
    command_type: String,
    params: Map<String, Value>,
    timeout_ms: u64,
    reply_to: String,
}

#[derive(Debug, Serialize, Deserialize)]
enum Outcome {
    Result { success: bool, message: String },
    NotHere,
    Offline,
    Timeout,
}

#[derive(Debug, Serialize, Deserialize)]
struct Connected {
    device_id: DeviceId,
    since_ms: i64,
    node: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    request_id: Uuid,
    outcome: Outcome,
}

/// Routes commands to the node a device is connected to.
#[derive(Debug)]
pub struct CommandBus {
    node: String,
    prefix: String,
    local: Arc<Connections>,
    conn: ConnectionManager,
    pending: Mutex<HashMap<Uuid, mpsc::Sender<Reply>>>,
}

impl CommandBus {
    /// Joins the bus under `prefix` as `node` (unique per process) and
    /// starts listening; `local` holds this node's sessions.
    ///
    /// # Errors
    /// [`QueueError::Unavailable`] if Redis cannot be reached.
    pub async fn start(
        client: &redis::Client,
        conn: ConnectionManager,
        prefix: &str,
        node: &str,
        local: Arc<Connections>,
    ) -> Result<Arc<Self>, QueueError> {
        let bus = Arc::new(Self {
            node: node.to_owned(),
            prefix: prefix.to_owned(),
            local,
            conn,
            pending: Mutex::new(HashMap::new()),
        });
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let channels = [
            bus.commands_channel(),
            bus.results_channel(node),
            bus.connected_channel(),
        ];
        for channel in channels {
            pubsub
                .subscribe(channel)
                .await
                .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        }
        let (announcements, announced) = mpsc::channel(ANNOUNCE_BUFFER);
        bus.local.announce_to(announcements);
        tokio::spawn(announce(Arc::downgrade(&bus), announced));
        let weak = Arc::downgrade(&bus);
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let Some(bus) = weak.upgrade() else { return };
                bus.on_message(message.get_channel_name(), message.get_payload_bytes());
            }
        });
        Ok(bus)
    }

    fn commands_channel(&self) -> String {
        format!("{}commands", self.prefix)
    }

    fn connected_channel(&self) -> String {
        format!("{}connected", self.prefix)
    }

    fn results_channel(&self, node: &str) -> String {
        format!("{}results:{node}", self.prefix)
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<Uuid, mpsc::Sender<Reply>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn on_message(self: &Arc<Self>, channel: &str, payload: &[u8]) {
        if channel == self.connected_channel() {
            match serde_json::from_slice::<Connected>(payload) {
                Ok(c) if c.node != self.node && self.local.evict_older(c.device_id, c.since_ms) => {
                    tracing::info!(device.id = %c.device_id, "session replaced by a newer one on another node");
                }
                _ => {}
            }
            return;
        }
        if channel == self.commands_channel() {
            match serde_json::from_slice::<Request>(payload) {
                Ok(request) if request.reply_to != self.node => {
                    tokio::spawn(Arc::clone(self).serve(request));
                }
                _ => {}
            }
            return;
        }
        let Ok(reply) = serde_json::from_slice::<Reply>(payload) else {
            return;
        };
        if let Some(waiter) = self.pending().get(&reply.request_id) {
            let _ = waiter.try_send(reply);
        }
    }

    /// Delivers a remote node's command if the device is connected here.
    async fn serve(self: Arc<Self>, request: Request) {
        let outcome = if self.local.is_connected(request.device_id) {
            let command = Command {
                request_id: request.request_id,
                command_type: request.command_type,
                params: request.params,
            };
            let timeout = Duration::from_millis(request.timeout_ms);
            match self.local.send(request.device_id, command, timeout).await {
                Ok(r) => Outcome::Result {
                    success: r.success,
                    message: r.message,
                },
                Err(CommandError::Timeout) => Outcome::Timeout,
                Err(_) => Outcome::Offline,
            }
        } else {
            Outcome::NotHere
        };
        let reply = Reply {
            request_id: request.request_id,
            outcome,
        };
        let Ok(text) = serde_json::to_string(&reply) else {
            return;
        };
        let mut conn = self.conn.clone();
        let published: Result<i64, _> = conn
            .publish(self.results_channel(&request.reply_to), text)
            .await;
        if let Err(e) = published {
            tracing::warn!(error = %e, "command reply not published");
        }
    }

    async fn send_remote(
        &self,
        device_id: DeviceId,
        command: Command,
        timeout: Duration,
    ) -> Result<CommandResult, CommandError> {
        let request_id = command.request_id;
        let (tx, mut rx) = mpsc::channel(REPLY_BUFFER);
        self.pending().insert(request_id, tx);
        let outcome = tokio::time::timeout(timeout, async {
            let others = self.publish(device_id, command, timeout).await?;
            let mut not_here = 0;
            while not_here < others {
                match rx.recv().await.map(|r| r.outcome) {
                    Some(Outcome::Result { success, message }) => {
                        return Ok(CommandResult {
                            request_id,
                            success,
                            message,
                        });
                    }
                    Some(Outcome::Timeout) => return Err(CommandError::Timeout),
                    Some(Outcome::NotHere | Outcome::Offline) => not_here += 1,
                    None => break,
                }
            }
            Err(CommandError::DeviceOffline)
        })
        .await;
        self.pending().remove(&request_id);
        outcome.unwrap_or(Err(CommandError::Timeout))
    }

    /// Publishes the request; returns how many other nodes received it.
    async fn publish(
        &self,
        device_id: DeviceId,
        command: Command,
        timeout: Duration,
    ) -> Result<i64, CommandError> {
        let request = Request {
            request_id: command.request_id,
            device_id,
            command_type: command.command_type,
            params: command.params,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            reply_to: self.node.clone(),
        };
        let text = serde_json::to_string(&request).map_err(|_| CommandError::DeviceOffline)?;
        let mut conn = self.conn.clone();
        let receivers: i64 = conn
            .publish(self.commands_channel(), text)
            .await
            .map_err(|_| CommandError::DeviceOffline)?;
        Ok((receivers - 1).max(0))
    }
}

#[async_trait]
impl CommandSender for CommandBus {
    async fn send(
        &self,
        device_id: DeviceId,
        command: Command,
        timeout: Duration,
    ) -> Result<CommandResult, CommandError> {
        if self.local.is_connected(device_id) {
            return self.local.send(device_id, command, timeout).await;
        }
        self.send_remote(device_id, command, timeout).await
    }
}

/// Tells the other nodes about each session registered here, so they close
/// an older session of the same device (`replaced`).
async fn announce(bus: std::sync::Weak<CommandBus>, mut announced: mpsc::Receiver<Announcement>) {
    while let Some(a) = announced.recv().await {
        let Some(bus) = bus.upgrade() else { return };
        let message = Connected {
            device_id: a.device_id,
            since_ms: a.since_ms,
            node: bus.node.clone(),
        };
        let Ok(text) = serde_json::to_string(&message) else {
            continue;
        };
        let mut conn = bus.conn.clone();
        let published: Result<i64, _> = conn.publish(bus.connected_channel(), text).await;
        if let Err(e) = published {
            tracing::warn!(error = %e, "connection not announced to other nodes");
        }
    }
}
