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
//! nodes too. The same registration claims the device's owner key
//! `{p}owner:{device}` (`<since_ms> <node>`, newest session wins), which
//! covers announcements a node missed while its subscription was down.
//!
//! The subscription survives Redis: when it drops (Redis restarted, the
//! connection cut, or a ping unanswered for [`PING_TIMEOUT`]) the bus
//! subscribes again with capped backoff, counts
//! `hse_redis_resubscriptions_total{channel}`, logs it, and then
//! re-asserts every session it holds: each is claimed again under its
//! owner key (a session whose device registered later on another node is
//! closed with `replaced`) and announced again.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use hse_core::DeviceId;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
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
/// How often the subscription's connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(3);
/// A ping (or a new subscription's connection) unanswered this long means
/// the subscription is lost.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// The first wait before subscribing again, doubled up to
/// [`RESUBSCRIBE_MAX`] while Redis stays unreachable.
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to subscribe again.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);
/// Sessions claimed and announced per round trip when re-asserting them.
const REASSERT_CHUNK: usize = 500;
/// How long a device's owner key outlives its last claim.
const OWNER_TTL: Duration = Duration::from_secs(7 * 86_400);

/// Claims `KEYS[1]` (a device's owner key) for the session registered at
/// `ARGV[1]` on node `ARGV[2]`, for `ARGV[3]` seconds, unless it records a
/// newer session: then returns that owner (`<since_ms> <node>`) and
/// changes nothing.
const CLAIM_OWNER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
    local since = tonumber(string.match(current, '^(-?%d+) '))
    if since and since > tonumber(ARGV[1]) then
        return current
    end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'EX', ARGV[3])
return false";

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
        let subscription = bus.subscribe(client).await?;
        let (announcements, announced) = mpsc::channel(ANNOUNCE_BUFFER);
        bus.local.announce_to(announcements);
        tokio::spawn(announce(Arc::downgrade(&bus), announced));
        tokio::spawn(listen(Arc::downgrade(&bus), client.clone(), subscription));
        Ok(bus)
    }

    /// The channels this node listens on, with their metric label.
    fn channels(&self) -> [(String, &'static str); 3] {
        [
            (self.commands_channel(), "commands"),
            (self.results_channel(&self.node), "results"),
            (self.connected_channel(), "connected"),
        ]
    }

    /// A new connection subscribed to every channel of [`Self::channels`].
    async fn subscribe(&self, client: &redis::Client) -> Result<Subscription, QueueError> {
        let unavailable = |e: redis::RedisError| QueueError::Unavailable(e.to_string());
        let connecting = tokio::time::timeout(PING_TIMEOUT, client.get_async_pubsub());
        let pubsub = connecting
            .await
            .map_err(|_| QueueError::Unavailable("pub/sub connection timed out".into()))?
            .map_err(unavailable)?;
        let (mut sink, stream) = pubsub.split();
        for (channel, _) in self.channels() {
            sink.subscribe(channel).await.map_err(unavailable)?;
        }
        Ok(Subscription { sink, stream })
    }

    /// Claims every session held here again and announces it: after a
    /// subscription gap, announcements may have been missed both ways.
    /// A session whose device registered later on another node is closed.
    async fn reassert_sessions(&self) {
        let sessions = self.local.sessions();
        for chunk in sessions.chunks(REASSERT_CHUNK) {
            if let Err(e) = self.claim_and_announce(chunk).await {
                tracing::warn!(error = %e, "sessions not re-announced after resubscribing");
                return;
            }
        }
        if !sessions.is_empty() {
            tracing::info!(
                sessions = sessions.len(),
                "command bus: sessions re-announced"
            );
        }
    }

    /// Claims the owner key of each session and announces those that are
    /// still the newest; closes those another node holds a newer session of.
    async fn claim_and_announce(&self, sessions: &[Announcement]) -> Result<(), redis::RedisError> {
        static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CLAIM_OWNER));
        let mut pipe = redis::pipe();
        // Loaded in the same round trip: a restarted Redis forgot it.
        pipe.cmd("SCRIPT").arg("LOAD").arg(CLAIM_OWNER).ignore();
        for a in sessions {
            pipe.invoke_script(
                CLAIM
                    .key(self.owner_key(a.device_id))
                    .arg(a.since_ms)
                    .arg(&self.node)
                    .arg(OWNER_TTL.as_secs()),
            );
        }
        let mut conn = self.conn.clone();
        let owners: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        let mut announce = redis::pipe();
        for (a, newer) in sessions.iter().zip(owners) {
            if let Some(since_ms) = newer.as_deref().and_then(newer_elsewhere(&self.node)) {
                if self.local.evict_older(a.device_id, since_ms) {
                    tracing::info!(device.id = %a.device_id, "session replaced by a newer one on another node");
                }
                continue;
            }
            let message = Connected {
                device_id: a.device_id,
                since_ms: a.since_ms,
                node: self.node.clone(),
            };
            if let Ok(text) = serde_json::to_string(&message) {
                announce.publish(self.connected_channel(), text).ignore();
            }
        }
        announce.query_async::<()>(&mut conn).await
    }

    fn owner_key(&self, device_id: DeviceId) -> String {
        format!("{}owner:{device_id}", self.prefix)
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

/// Tells the other nodes about each session registered here (owner key and
/// `{p}connected`), so they close an older session of the same device
/// (`replaced`). One that cannot be announced now (Redis down) is
/// announced again when the subscription comes back.
async fn announce(bus: Weak<CommandBus>, mut announced: mpsc::Receiver<Announcement>) {
    while let Some(a) = announced.recv().await {
        let Some(bus) = bus.upgrade() else { return };
        if let Err(e) = bus.claim_and_announce(&[a]).await {
            tracing::warn!(error = %e, "connection not announced to other nodes");
        }
    }
}

/// The connection of a subscription: commands (subscribe, ping) and the
/// messages it receives.
struct Subscription {
    sink: PubSubSink,
    stream: PubSubStream,
}

/// Delivers the bus's messages, and subscribes again (with backoff) each
/// time the subscription is lost, until the bus is dropped.
async fn listen(bus: Weak<CommandBus>, client: redis::Client, mut subscription: Subscription) {
    if let Some(b) = bus.upgrade() {
        b.reassert_sessions().await;
    }
    loop {
        follow(&bus, subscription).await;
        let Some(mut backoff) = bus.upgrade().map(|_| RESUBSCRIBE_FIRST) else {
            return;
        };
        tracing::warn!("command bus: Redis subscription lost, subscribing again");
        subscription = loop {
            tokio::time::sleep(backoff).await;
            let Some(b) = bus.upgrade() else { return };
            match b.subscribe(&client).await {
                Ok(s) => {
                    for (channel, label) in b.channels() {
                        metrics::counter!("hse_redis_resubscriptions_total", "channel" => label)
                            .increment(1);
                        tracing::info!(redis.channel = %channel, "command bus: resubscribed");
                    }
                    b.reassert_sessions().await;
                    break s;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "command bus: resubscribing failed");
                    backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
                }
            }
        };
    }
}

/// Hands each message to the bus until the subscription ends: its stream
/// closes (the connection dropped) or a ping goes unanswered.
async fn follow(bus: &Weak<CommandBus>, subscription: Subscription) {
    let Subscription { mut sink, stream } = subscription;
    let mut stream = std::pin::pin!(stream);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return };
                let Some(bus) = bus.upgrade() else { return };
                bus.on_message(message.get_channel_name(), message.get_payload_bytes());
            }
            _ = ping.tick() => {
                let pong = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) || bus.strong_count() == 0 {
                    return;
                }
            }
        }
    }
}

/// The `since_ms` of the owner recorded in `value` (`<since_ms> <node>`)
/// when it is a session on another node than `node`.
fn newer_elsewhere(node: &str) -> impl Fn(&str) -> Option<i64> + '_ {
    move |value| {
        let (since, owner) = value.split_once(' ')?;
        (owner != node).then(|| since.parse().ok()).flatten()
    }
}
