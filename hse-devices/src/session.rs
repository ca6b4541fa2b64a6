//! One device session, shared by the TCP and WebSocket transports.
//!
//! `hello` first (secret checked against the stored hash), then events,
//! pings and command results in any order. Event frames are enqueued
//! concurrently (up to `max_in_flight` per session; past that the session
//! stops reading, which pushes back on the device through TCP) and answered
//! strictly in order once durable: consecutive acks that complete together
//! are sent as one `{"type":"ack","seq":N,"upto":true}`, which covers every
//! frame since the previous answer. A session ends when the device closes,
//! goes silent for `3 × heartbeat`, sends 10 bad frames in a row or one
//! oversized frame, or a newer connection of the device replaces it
//! (`error replaced`). Frames already acked are never affected.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{FuturesOrdered, StreamExt};
use hse_core::DeviceId;
use hse_core::model::DeviceStatus;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::codec::{self, EventDraft, Hello, Inbound, Limits, Origin, Outbound, Rejection};
use crate::commands::{Command, Connections, Registration};
use crate::directory::DeviceDirectory;
use crate::error::ErrorCode;
use crate::ingest::Ingest;
use crate::state::{Connection, StateStore};
use crate::transport::{FrameRead, FrameWrite, ReadError};

/// Session settings.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Heartbeat interval announced in `welcome`; silence for three of them
    /// ends the session.
    pub heartbeat: Duration,
    /// Time allowed for the first frame.
    pub hello_timeout: Duration,
    /// Event frames enqueued concurrently per session before it stops reading.
    pub max_in_flight: usize,
    /// Bad frames in a row that close the connection.
    pub max_bad_frames: u32,
    /// Oldest accepted event age.
    pub retention: Duration,
    /// Time allowed for one write to the device.
    pub write_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(10),
            max_in_flight: 64,
            max_bad_frames: 10,
            retention: Duration::from_secs(730 * 86_400),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// What every session of a node shares.
#[derive(Debug)]
pub struct SessionContext {
    /// Checks secrets, records connectivity.
    pub directory: Arc<dyn DeviceDirectory>,
    /// Where events go.
    pub ingest: Ingest,
    /// Who is connected here; routes commands.
    pub connections: Arc<Connections>,
    /// Current device state.
    pub state: Arc<dyn StateStore>,
    /// Settings.
    pub config: SessionConfig,
    /// Cancelled to stop all sessions (they finish in-flight frames first).
    pub shutdown: CancellationToken,
}

/// Where a connection comes from.
#[derive(Clone, Debug)]
pub struct Peer {
    /// `tcp`, `websocket`, ... (stored as the events' source).
    pub protocol: &'static str,
    /// The remote address.
    pub remote_address: String,
}

/// Runs one session to its end in a `device.session` span (never per frame).
pub async fn run_session<R: FrameRead, W: FrameWrite>(
    ctx: Arc<SessionContext>,
    peer: Peer,
    mut reader: R,
    mut writer: W,
) {
    let span = tracing::info_span!(
        "device.session",
        transport = peer.protocol,
        device.id = tracing::field::Empty
    );
    async move {
        let Some(hello) = handshake(&ctx, &mut reader, &mut writer).await else {
            return;
        };
        let device_id = hello.device_id;
        tracing::Span::current().record("device.id", tracing::field::display(device_id));
        let session = Session::open(Arc::clone(&ctx), device_id, peer).await;
        session.run(reader, writer).await;
    }
    .instrument(span)
    .await;
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn limits(ctx: &SessionContext) -> Limits {
    Limits {
        now_ms: now_ms(),
        retention_ms: i64::try_from(ctx.config.retention.as_millis()).unwrap_or(i64::MAX),
    }
}

async fn send<W: FrameWrite>(ctx: &SessionContext, writer: &mut W, frames: Vec<Outbound>) -> bool {
    let lines = frames.iter().map(codec::encode).collect();
    matches!(
        timeout(ctx.config.write_timeout, writer.send(lines)).await,
        Ok(Ok(()))
    )
}

async fn refuse<W: FrameWrite>(
    ctx: &SessionContext,
    writer: &mut W,
    code: ErrorCode,
    message: &str,
) {
    let _ = send(ctx, writer, vec![Outbound::error(code, message)]).await;
}

async fn handshake<R: FrameRead, W: FrameWrite>(
    ctx: &SessionContext,
    reader: &mut R,
    writer: &mut W,
) -> Option<Hello> {
    let line = match timeout(ctx.config.hello_timeout, reader.next_frame()).await {
        Ok(Some(Ok(line))) => line,
        Ok(Some(Err(ReadError::TooLarge))) => {
            refuse(
                ctx,
                writer,
                ErrorCode::FrameTooLarge,
                codec::FRAME_TOO_LARGE,
            )
            .await;
            return None;
        }
        _ => return None,
    };
    let hello = match codec::decode(&line, &limits(ctx)) {
        Ok(Inbound::Hello(hello)) => hello,
        Err(Rejection::Error { code, message }) if code != ErrorCode::UnknownType => {
            refuse(ctx, writer, code, &message).await;
            return None;
        }
        _ => {
            refuse(
                ctx,
                writer,
                ErrorCode::HelloRequired,
                "the first frame must be hello",
            )
            .await;
            return None;
        }
    };
    if hello.protocol != codec::PROTOCOL_VERSION {
        refuse(
            ctx,
            writer,
            ErrorCode::UnsupportedProtocol,
            "this server speaks protocol 1",
        )
        .await;
        return None;
    }
    match ctx.directory.verify(hello.device_id, &hello.token).await {
        Ok(true) => Some(hello),
        Ok(false) => {
            refuse(
                ctx,
                writer,
                ErrorCode::Unauthorized,
                "device id or secret not accepted",
            )
            .await;
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "device directory unavailable at hello");
            refuse(ctx, writer, ErrorCode::Unavailable, "try again later").await;
            None
        }
    }
}

/// The answer to one event frame, in frame order.
#[derive(Debug)]
enum Reply {
    Ack(u64),
    Nack {
        seq: u64,
        code: ErrorCode,
        message: String,
        retry_after_ms: Option<u64>,
    },
}

/// Why the main loop ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Closed,
    Replaced,
    Silent,
    ShuttingDown,
    Refused,
}

struct Session {
    ctx: Arc<SessionContext>,
    device_id: DeviceId,
    session_id: Uuid,
    peer: Peer,
    registration: Registration,
    in_flight: FuturesOrdered<BoxFuture<'static, Reply>>,
    last_seq: Option<u64>,
    bad_in_row: u32,
    last_heard: Instant,
}

impl Session {
    async fn open(ctx: Arc<SessionContext>, device_id: DeviceId, peer: Peer) -> Self {
        let registration = ctx.connections.register(device_id);
        let session = Self {
            ctx,
            device_id,
            session_id: Uuid::now_v7(),
            peer,
            registration,
            in_flight: FuturesOrdered::new(),
            last_seq: None,
            bad_in_row: 0,
            last_heard: Instant::now(),
        };
        record_connected(&session.ctx, session.device_id, &session.peer, true).await;
        session
    }

    async fn run<R: FrameRead, W: FrameWrite>(mut self, mut reader: R, mut writer: W) {
        let welcome = Outbound::Welcome {
            session_id: self.session_id,
            server_time_ms: now_ms(),
            heartbeat_s: self.ctx.config.heartbeat.as_secs(),
        };
        tracing::info!(session.id = %self.session_id, "device connected");
        let end = if send(&self.ctx, &mut writer, vec![welcome]).await {
            self.serve(&mut reader, &mut writer).await
        } else {
            End::Closed
        };
        self.close(&mut writer, &end).await;
    }

    async fn serve<R: FrameRead, W: FrameWrite>(&mut self, reader: &mut R, writer: &mut W) -> End {
        let silence = self.ctx.config.heartbeat * 3;
        let replaced = self.registration.replaced.clone();
        let shutdown = self.ctx.shutdown.clone();
        loop {
            let can_read = self.in_flight.len() < self.ctx.config.max_in_flight;
            let outcome = tokio::select! {
                biased;
                () = replaced.cancelled() => return End::Replaced,
                () = shutdown.cancelled() => return End::ShuttingDown,
                Some(first) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    let replies = self.ready_replies(first);
                    send(&self.ctx, writer, answers(replies)).await
                }
                Some(command) = self.registration.commands.recv() => {
                    send(&self.ctx, writer, vec![command_frame(*command)]).await
                }
                frame = reader.next_frame(), if can_read => match self.on_frame(frame, writer).await {
                    Ok(()) => true,
                    Err(end) => return end,
                },
                () = sleep_until(self.last_heard + silence) => return End::Silent,
            };
            if !outcome {
                return End::Closed;
            }
        }
    }

    fn ready_replies(&mut self, first: Reply) -> Vec<Reply> {
        let mut replies = vec![first];
        while let Some(Some(next)) = self.in_flight.next().now_or_never() {
            replies.push(next);
        }
        replies
    }

    async fn on_frame<W: FrameWrite>(
        &mut self,
        frame: Option<Result<Vec<u8>, ReadError>>,
        writer: &mut W,
    ) -> Result<(), End> {
        let line = match frame {
            None | Some(Err(ReadError::Io(_))) => return Err(End::Closed),
            Some(Err(ReadError::TooLarge)) => {
                refuse(
                    &self.ctx,
                    writer,
                    ErrorCode::FrameTooLarge,
                    codec::FRAME_TOO_LARGE,
                )
                .await;
                return Err(End::Refused);
            }
            Some(Ok(line)) => line,
        };
        self.last_heard = Instant::now();
        match codec::decode(&line, &limits(&self.ctx)) {
            Ok(inbound) => {
                self.bad_in_row = 0;
                self.on_inbound(inbound, writer).await
            }
            Err(Rejection::Nack { seq, code, message }) => {
                self.bad_in_row = 0;
                if self.accept_seq(seq) {
                    self.reply_in_order(Reply::Nack {
                        seq,
                        code,
                        message,
                        retry_after_ms: None,
                    });
                }
                Ok(())
            }
            Err(Rejection::Error { code, message }) => {
                self.on_bad_frame(code, &message, writer).await
            }
        }
    }

    async fn on_bad_frame<W: FrameWrite>(
        &mut self,
        code: ErrorCode,
        message: &str,
        writer: &mut W,
    ) -> Result<(), End> {
        self.bad_in_row += 1;
        refuse(&self.ctx, writer, code, message).await;
        if code == ErrorCode::FrameTooLarge {
            return Err(End::Refused);
        }
        if self.bad_in_row >= self.ctx.config.max_bad_frames {
            refuse(
                &self.ctx,
                writer,
                ErrorCode::TooManyErrors,
                "too many bad frames in a row",
            )
            .await;
            return Err(End::Refused);
        }
        Ok(())
    }

    async fn on_inbound<W: FrameWrite>(
        &mut self,
        inbound: Inbound,
        writer: &mut W,
    ) -> Result<(), End> {
        match inbound {
            Inbound::Events { seq, events } => self.on_events(seq, events),
            Inbound::Ping => {
                let pong = Outbound::Pong {
                    server_time_ms: now_ms(),
                };
                if !send(&self.ctx, writer, vec![pong]).await {
                    return Err(End::Closed);
                }
                if let Err(e) = self.ctx.state.touch(self.device_id, now_ms()).await {
                    tracing::debug!(error = %e, "last seen not updated");
                }
            }
            Inbound::CommandResult(result) => self.ctx.connections.resolve(result),
            Inbound::Hello(_) => {
                return self
                    .on_bad_frame(ErrorCode::Invalid, "hello was already accepted", writer)
                    .await;
            }
        }
        Ok(())
    }

    /// Whether `seq` follows the previous frame's; nacks it otherwise.
    fn accept_seq(&mut self, seq: u64) -> bool {
        if self.last_seq.is_some_and(|last| seq <= last) {
            let message = "seq must increase within a connection".to_owned();
            self.reply_in_order(Reply::Nack {
                seq,
                code: ErrorCode::Invalid,
                message,
                retry_after_ms: None,
            });
            return false;
        }
        self.last_seq = Some(seq);
        true
    }

    fn on_events(&mut self, seq: u64, drafts: Vec<EventDraft>) {
        if !self.accept_seq(seq) {
            return;
        }
        let origin = Origin {
            device_id: self.device_id,
            session_id: self.session_id,
            seq,
            now_ms: now_ms(),
            source: self.peer.protocol,
        };
        let events: Vec<_> = drafts
            .into_iter()
            .enumerate()
            .map(|(i, d)| d.into_event(origin, i))
            .collect();
        let ingest = self.ctx.ingest.clone();
        self.in_flight.push_back(
            async move {
                match ingest.submit(&events).await {
                    Ok(()) => Reply::Ack(seq),
                    Err(e) => Reply::Nack {
                        seq,
                        code: e.code(),
                        message: e.to_string(),
                        retry_after_ms: Some(
                            u64::try_from(e.retry_after().as_millis()).unwrap_or(u64::MAX),
                        ),
                    },
                }
            }
            .boxed(),
        );
    }

    fn reply_in_order(&mut self, reply: Reply) {
        self.in_flight
            .push_back(futures_util::future::ready(reply).boxed());
    }

    async fn close<W: FrameWrite>(mut self, writer: &mut W, end: &End) {
        let drained: Vec<Reply> = timeout(self.ctx.config.write_timeout, async {
            let mut all = Vec::new();
            while let Some(reply) = self.in_flight.next().await {
                all.push(reply);
            }
            all
        })
        .await
        .unwrap_or_default();
        let mut frames = answers(drained);
        match end {
            End::Replaced => frames.push(Outbound::error(
                ErrorCode::Replaced,
                "a newer connection of this device took over",
            )),
            End::ShuttingDown => frames.push(Outbound::error(
                ErrorCode::ShuttingDown,
                "server shutting down; reconnect",
            )),
            _ => {}
        }
        if !frames.is_empty() {
            let _ = send(&self.ctx, writer, frames).await;
        }
        if self
            .ctx
            .connections
            .deregister(self.device_id, self.registration.connection)
        {
            record_connected(&self.ctx, self.device_id, &self.peer, false).await;
        }
        tracing::info!(reason = ?end, "device disconnected");
    }
}

async fn record_connected(ctx: &SessionContext, device_id: DeviceId, peer: &Peer, connected: bool) {
    let connection = Connection {
        connected,
        protocol: peer.protocol.to_owned(),
        remote_address: peer.remote_address.clone(),
    };
    let status = if connected {
        DeviceStatus::Online
    } else {
        DeviceStatus::Offline
    };
    if let Err(e) = ctx
        .state
        .set_connection(device_id, &connection, now_ms())
        .await
    {
        tracing::warn!(error = %e, "device state not updated");
    }
    if let Err(e) = ctx.directory.set_status(device_id, status).await {
        tracing::warn!(error = %e, "device status not recorded");
    }
}

/// Frames for replies in order: runs of acks collapse into one `upto` ack.
fn answers(replies: Vec<Reply>) -> Vec<Outbound> {
    let mut frames = Vec::new();
    let mut run: Option<(u64, usize)> = None;
    let flush = |run: &mut Option<(u64, usize)>, frames: &mut Vec<Outbound>| {
        if let Some((seq, n)) = run.take() {
            frames.push(Outbound::Ack { seq, upto: n > 1 });
        }
    };
    for reply in replies {
        match reply {
            Reply::Ack(seq) => run = Some((seq, run.map_or(1, |(_, n)| n + 1))),
            Reply::Nack {
                seq,
                code,
                message,
                retry_after_ms,
            } => {
                flush(&mut run, &mut frames);
                frames.push(Outbound::Nack {
                    seq,
                    code: code.as_str(),
                    message,
                    retry_after_ms,
                });
            }
        }
    }
    flush(&mut run, &mut frames);
    frames
}

fn command_frame(command: Command) -> Outbound {
    Outbound::Command {
        request_id: command.request_id,
        command_type: command.command_type,
        params: command.params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_acks_collapse_and_nacks_break_runs() {
        let frames = answers(vec![
            Reply::Ack(1),
            Reply::Ack(2),
            Reply::Ack(3),
            Reply::Nack {
                seq: 4,
                code: ErrorCode::Invalid,
                message: "x".into(),
                retry_after_ms: None,
            },
            Reply::Ack(5),
            Reply::Nack {
                seq: 6,
                code: ErrorCode::Overloaded,
                message: "y".into(),
                retry_after_ms: Some(250),
            },
        ]);
        let text: Vec<String> = frames.iter().map(codec::encode).collect();
        assert_eq!(
            text,
            vec![
                r#"{"type":"ack","seq":3,"upto":true}"#,
                r#"{"type":"nack","seq":4,"code":"invalid","message":"x"}"#,
                r#"{"type":"ack","seq":5}"#,
                r#"{"type":"nack","seq":6,"code":"overloaded","message":"y","retry_after_ms":250}"#,
            ]
        );
    }
}
