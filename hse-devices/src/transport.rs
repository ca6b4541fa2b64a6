//! Frame transports: how a session reads and writes frames, whatever the
//! connection is.
//!
//! [`LineReader`] and [`LineWriter`] speak the TCP line framing;
//! [`TextFrames`] and [`ChannelWriter`] adapt a WebSocket (one text message
//! is one frame), so both transports share one session implementation.
//!
//! | transport | one frame | largest frame | past it |
//! |---|---|---|---|
//! | TCP | one `\n`-terminated line (`\r` dropped) | [`MAX_FRAME_BYTES`] = 262,144 bytes, terminator excluded | [`ReadError::TooLarge`]: `error frame_too_large`, connection closed |
//! | WebSocket | one text message | [`MAX_FRAME_BYTES`] = 262,144 bytes | the same |

use std::future::Future;
use std::io;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::codec::MAX_FRAME_BYTES;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The frame is longer than [`MAX_FRAME_BYTES`] (256 KiB).
    #[error("frame larger than 256 KiB")]
    TooLarge,
    /// The connection failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// A source of frames. `next_frame` must be cancel-safe (a session selects
/// on it together with timers and commands).
pub trait FrameRead: Send {
    /// The next frame; `None` at the end of the stream.
    fn next_frame(&mut self) -> impl Future<Output = Option<Result<Vec<u8>, ReadError>>> + Send;
}

/// A sink of frames.
pub trait FrameWrite: Send {
    /// Writes the frames (serialized, without terminators) and flushes.
    fn send(&mut self, frames: Vec<String>) -> impl Future<Output = io::Result<()>> + Send;
}

/// Reads `\n`-terminated lines of at most [`MAX_FRAME_BYTES`] (256 KiB; a
/// trailing `\r` is dropped, blank lines are skipped). Memory per connection stays bounded
/// by the frame limit plus one read.
///
/// The read size adapts, as hyper's does: it starts at [`MIN_READ`], doubles
/// (up to [`MAX_READ`]) while reads fill it, and halves when they come back
/// small; an emptied buffer larger than the read size is released. An idle
/// device, which has sent one `hello` and then waits, so keeps well under a
/// kilobyte here instead of a fixed 8 KiB chunk (the connection benchmark's
/// per-connection memory is mostly this and the writer's buffer).
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    scanned: usize,
    read_size: usize,
}

/// The first and smallest read.
pub const MIN_READ: usize = 512;
/// The largest read.
pub const MAX_READ: usize = 16 * 1024;

impl<R> LineReader<R> {
    /// Wraps a byte stream.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            scanned: 0,
            read_size: MIN_READ,
        }
    }

    fn take_line(&mut self) -> Option<Result<Vec<u8>, ReadError>> {
        loop {
            let pos = self.buf[self.scanned..].iter().position(|b| *b == b'\n')?;
            let end = self.scanned + pos;
            let mut line: Vec<u8> = self.buf.drain(..=end).collect();
            self.scanned = 0;
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > MAX_FRAME_BYTES {
                return Some(Err(ReadError::TooLarge));
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(Ok(line));
            }
        }
    }

    /// Makes room for the next read, releasing a buffer a burst left large.
    fn prepare_read(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > self.read_size {
            self.buf = Vec::new();
        }
        self.buf.reserve(self.read_size);
    }

    /// Adapts the read size to what the last read brought.
    fn adapt(&mut self, n: usize) {
        if n >= self.read_size {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        } else if n < self.read_size / 4 {
            self.read_size = (self.read_size / 2).max(MIN_READ);
        }
    }
}

impl<R: AsyncRead + Unpin + Send> FrameRead for LineReader<R> {
    async fn next_frame(&mut self) -> Option<Result<Vec<u8>, ReadError>> {
        loop {
            if let Some(line) = self.take_line() {
                return Some(line);
            }
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_FRAME_BYTES + 1 {
                return Some(Err(ReadError::TooLarge));
            }
            self.prepare_read();
            // `read_buf` is cancel-safe: when the session's select drops
            // this future, nothing was read.
            match self.inner.read_buf(&mut self.buf).await {
                Ok(0) => return None,
                Ok(n) => self.adapt(n),
                Err(e) => return Some(Err(ReadError::Io(e))),
            }
        }
    }
}

/// Writes frames as `\n`-terminated lines, each batch in one write. It
/// keeps no buffer between batches: an idle connection costs nothing here.
#[derive(Debug)]
pub struct LineWriter<W: AsyncWrite> {
    inner: W,
}

impl<W: AsyncWrite + Unpin + Send> LineWriter<W> {
    /// Wraps a byte sink.
    pub fn new(inner: W) -> Self {
        Self { inner }
    }
}

impl<W: AsyncWrite + Unpin + Send> FrameWrite for LineWriter<W> {
    async fn send(&mut self, frames: Vec<String>) -> io::Result<()> {
        let size = frames.iter().map(|f| f.len() + 1).sum();
        let mut out = Vec::with_capacity(size);
        for frame in frames {
            out.extend_from_slice(frame.as_bytes());
            out.push(b'\n');
        }
        self.inner.write_all(&out).await?;
        self.inner.flush().await
    }
}

/// WebSocket input: a stream of text messages, one frame each.
#[derive(Debug)]
pub struct TextFrames<S> {
    inner: S,
}

impl<S> TextFrames<S> {
    /// Wraps the stream of text messages (the server's WebSocket handler
    /// maps close and binary messages away).
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: Stream<Item = String> + Unpin + Send> FrameRead for TextFrames<S> {
    async fn next_frame(&mut self) -> Option<Result<Vec<u8>, ReadError>> {
        let text = self.inner.next().await?;
        if text.len() > MAX_FRAME_BYTES {
            return Some(Err(ReadError::TooLarge));
        }
        Some(Ok(text.into_bytes()))
    }
}

/// WebSocket output: frames go to a bounded channel the server's handler
/// forwards as text messages; the session closes it by dropping it.
#[derive(Debug)]
pub struct ChannelWriter {
    inner: mpsc::Sender<String>,
}

impl ChannelWriter {
    /// Wraps the channel.
    #[must_use]
    pub fn new(inner: mpsc::Sender<String>) -> Self {
        Self { inner }
    }
}

impl FrameWrite for ChannelWriter {
    async fn send(&mut self, frames: Vec<String>) -> io::Result<()> {
        for frame in frames {
            self.inner
                .send(frame)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn frames(input: &[u8]) -> Vec<Result<Vec<u8>, String>> {
        let mut reader = LineReader::new(input);
        let mut out = Vec::new();
        while let Some(f) = reader.next_frame().await {
            let stop = matches!(f, Err(ReadError::TooLarge));
            out.push(f.map_err(|e| e.to_string()));
            if stop {
                break;
            }
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_trimmed_and_blank_lines_skipped() {
        let got = frames(b"{\"a\":1}\r\n\n  \n{\"b\":2}\npartial").await;
        assert_eq!(
            got,
            vec![Ok(b"{\"a\":1}".to_vec()), Ok(b"{\"b\":2}".to_vec())]
        );
    }

    #[tokio::test]
    async fn an_oversized_line_is_reported_without_buffering_it_all() {
        let mut input = vec![b'x'; MAX_FRAME_BYTES + 10];
        input.push(b'\n');
        let got = frames(&input).await;
        assert_eq!(got.len(), 1);
        assert!(got[0].is_err());
        let mut exact = vec![b'x'; MAX_FRAME_BYTES];
        exact.push(b'\n');
        assert_eq!(frames(&exact).await.len(), 1);
        assert!(frames(&exact).await[0].is_ok());
    }

    #[tokio::test]
    async fn an_idle_reader_keeps_a_small_buffer_and_a_burst_grows_then_releases_it() {
        let (mut device, server) = tokio::io::duplex(1 << 20);
        let mut reader = LineReader::new(server);
        device.write_all(b"{\"hello\":1}\n").await.unwrap();
        assert_eq!(
            reader.next_frame().await.unwrap().unwrap(),
            b"{\"hello\":1}"
        );
        let idle = tokio::time::timeout(Duration::from_millis(20), reader.next_frame()).await;
        assert!(idle.is_err(), "nothing to read");
        assert!(
            reader.buf.capacity() <= 2 * MIN_READ,
            "{}",
            reader.buf.capacity()
        );

        let line = format!("{{\"x\":\"{}\"}}\n", "y".repeat(1000));
        let burst = line.repeat(300);
        device.write_all(burst.as_bytes()).await.unwrap();
        for _ in 0..300 {
            let frame = reader.next_frame().await.unwrap().unwrap();
            assert_eq!(frame.len(), line.len() - 1);
        }
        assert_eq!(reader.read_size, MAX_READ, "reads filled: the size grew");
        let idle = tokio::time::timeout(Duration::from_millis(20), reader.next_frame()).await;
        assert!(idle.is_err());
        assert!(
            reader.buf.capacity() <= 2 * MAX_READ,
            "{}",
            reader.buf.capacity()
        );
    }

    #[tokio::test]
    async fn a_batch_of_frames_is_written_as_lines() {
        let mut out = Vec::new();
        LineWriter::new(&mut out)
            .send(vec!["{\"a\":1}".into(), "{\"b\":2}".into()])
            .await
            .unwrap();
        assert_eq!(out, b"{\"a\":1}\n{\"b\":2}\n");
    }
}
