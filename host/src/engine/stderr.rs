//! The guest's stderr, kept as a short tail so that a trap can be reported
//! with what the guest said before it died (a Rust panic message, an
//! allocation failure, an interpreter's traceback), instead of only
//! "unreachable instruction executed".
//!
//! It is the only WASI stream the host wires up; it grants the guest
//! nothing but a place to write, and keeps at most [`TAIL_BYTES`] bytes.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much of the guest's stderr is kept.
pub(crate) const TAIL_BYTES: usize = 4096;
/// Longest guest message quoted in a failure reason.
const MESSAGE_CHARS: usize = 400;

/// The last [`TAIL_BYTES`] bytes the guest wrote to stderr.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, bytes: &[u8]) {
        let mut tail = self.lock();
        let bytes = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
        let overflow = (tail.len() + bytes.len()).saturating_sub(TAIL_BYTES);
        tail.drain(..overflow);
        tail.extend_from_slice(bytes);
    }

    /// Forgets what was written (before each call).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The guest's last words, on one line: its last two non-empty lines
    /// (a Rust panic prints where, then what), without Rust's backtrace
    /// hint; `None` if it wrote nothing.
    pub(crate) fn message(&self) -> Option<String> {
        let tail = self.lock();
        let text = String::from_utf8_lossy(&tail);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE=1`"))
            .collect();
        let last = &lines[lines.len().saturating_sub(2)..];
        if last.is_empty() {
            return None;
        }
        let joined = last.join(" ");
        Some(match joined.char_indices().nth(MESSAGE_CHARS) {
            Some((cut, _)) => format!("{}...", &joined[..cut]),
            None => joined,
        })
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for StderrTail {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready; older bytes are dropped, never the writer blocked.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_and_quotes_the_last_lines() {
        let t = StderrTail::default();
        assert_eq!(t.message(), None);
        t.push(b"starting\n");
        t.push(b"thread '<unnamed>' panicked at src/lib.rs:9:5:\nboom\n");
        t.push(b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n");
        assert_eq!(
            t.message().as_deref(),
            Some("thread '<unnamed>' panicked at src/lib.rs:9:5: boom")
        );
        t.clear();
        assert_eq!(t.message(), None);

        t.push(&vec![b'x'; 3 * TAIL_BYTES]);
        t.push(b"\nlast\n");
        assert_eq!(t.lock().len(), TAIL_BYTES);
        let m = t.message().unwrap();
        assert!(m.starts_with("xxx") && m.ends_with("..."), "{m}");
        assert_eq!(m.chars().count(), MESSAGE_CHARS + 3);
    }
}
