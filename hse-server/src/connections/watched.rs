//! A connection's byte stream, watched: it holds the connection's place at
//! the [`Gate`](super::gate::Gate) for as long as it lives, and fails with
//! `TimedOut` once no byte has moved either way for the idle timeout.
//!
//! The idle clock is lazy: each read or write only records the time, and
//! the one timer is re-armed when it fires early, so a busy connection
//! costs a clock read per I/O call. The timer is polled whenever a read or
//! a write would wait, which is when hyper and h2 wait on the connection,
//! so an expired connection's task is woken and its next read fails.
//! While a request is being handled the clock stands still ([`Busy`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::gate::Slot;

/// A stream with its gate slot and idle timeout.
#[derive(Debug)]
pub struct Watched<IO> {
    io: IO,
    _slot: Slot,
    idle: Idle,
}

/// What the connection's server tells its idle clock: a request is being
/// handled (no byte need move meanwhile; the request has its own
/// timeout), or the connection was upgraded to a WebSocket, whose device
/// session bounds silence itself (the `hello` deadline, then missed
/// heartbeats).
#[derive(Clone, Debug, Default)]
pub struct IdleSwitch(Arc<SwitchState>);

#[derive(Debug, Default)]
struct SwitchState {
    disarmed: AtomicBool,
    busy: AtomicUsize,
}

impl IdleSwitch {
    /// Stops the idle timeout of its connection for good.
    pub fn disarm(&self) {
        self.0.disarmed.store(true, Ordering::Relaxed);
    }

    /// Holds the idle clock while the returned guard lives.
    #[must_use]
    pub fn busy(&self) -> Busy {
        self.0.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn disarmed(&self) -> bool {
        self.0.disarmed.load(Ordering::Relaxed)
    }

    fn is_busy(&self) -> bool {
        self.0.busy.load(Ordering::Relaxed) > 0
    }
}

/// A request in flight on a watched connection ([`IdleSwitch::busy`]).
#[derive(Debug)]
pub struct Busy(IdleSwitch);

impl Drop for Busy {
    fn drop(&mut self) {
        (self.0).0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Idle {
    after: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    switch: IdleSwitch,
}

impl Idle {
    fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// Has the connection been idle too long? Registers the waker of `cx`
    /// with the timer when not.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.switch.disarmed() || self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.switch.is_busy() {
                // Look again one timeout later; the answer's bytes will
                // restart the clock.
                self.last = Instant::now();
            }
            let deadline = self.last + self.after;
            if Instant::now() >= deadline {
                return true;
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")
}

impl<IO> Watched<IO> {
    /// Watches `io`, admitted as `slot`, closing it after `idle_after`
    /// without a byte moving; the switch turns that off.
    pub fn new(io: IO, slot: Slot, idle_after: Duration) -> (Self, IdleSwitch) {
        let switch = IdleSwitch::default();
        let now = Instant::now();
        let watched = Self {
            io,
            _slot: slot,
            idle: Idle {
                after: idle_after,
                last: now,
                timer: Box::pin(tokio::time::sleep_until(now + idle_after)),
                switch: switch.clone(),
            },
        };
        (watched, switch)
    }

    /// The watched stream.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    fn moved<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>, progress: bool) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                if progress {
                    self.idle.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.idle.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let progress = buf.filled().len() > before;
        this.moved(cx, polled, progress)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        let progress = matches!(polled, Poll::Ready(Ok(n)) if n > 0);
        this.moved(cx, polled, progress)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        let progress = matches!(polled, Poll::Ready(Ok(n)) if n > 0);
        this.moved(cx, polled, progress)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.moved(cx, polled, false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Watched<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
