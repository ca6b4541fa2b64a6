//! Frame transports: how a session reads and writes frames, whatever the
//! connection is.
//!
//! [`LineReader`] and [`LineWriter`] speak the TCP line framing;
//! [`TextFrames`] and [`ChannelWriter`] adapt a WebSocket (one text message
//! is one frame), so both transports share one session implementation.

use std::future::Future;
use std::io;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use crate::codec::MAX_FRAME_BYTES;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The frame is longer than 64 KiB.
    #[error("frame larger than 64 KiB")]
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

/// Reads `\n`-terminated lines of at most 64 KiB (a trailing `\r` is
/// dropped, blank lines are skipped). Memory per connection stays bounded
/// by the frame limit plus one read chunk.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    scanned: usize,
}

const CHUNK: usize = 8 * 1024;

impl<R> LineReader<R> {
    /// Wraps a byte stream.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(CHUNK),
            scanned: 0,
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
            let mut chunk = [0u8; CHUNK];
            match self.inner.read(&mut chunk).await {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Some(Err(ReadError::Io(e))),
            }
        }
    }
}

/// Writes frames as `\n`-terminated lines.
#[derive(Debug)]
pub struct LineWriter<W: AsyncWrite> {
    inner: BufWriter<W>,
}

impl<W: AsyncWrite + Unpin + Send> LineWriter<W> {
    /// Wraps a byte sink.
    pub fn new(inner: W) -> Self {
        Self {
            inner: BufWriter::new(inner),
        }
    }
}

impl<W: AsyncWrite + Unpin + Send> FrameWrite for LineWriter<W> {
    async fn send(&mut self, frames: Vec<String>) -> io::Result<()> {
        for frame in frames {
            self.inner.write_all(frame.as_bytes()).await?;
            self.inner.write_all(b"\n").await?;
        }
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
}
