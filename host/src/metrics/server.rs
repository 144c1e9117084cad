//! The HTTP endpoint: a few lines over tokio's `TcpListener` rather than
//! a web framework: it answers one GET per connection, `/metrics`
//! (Prometheus text), `/` (the live console) and `/status.json` (what the
//! console shows), which does not justify a dependency tree.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::Metrics;

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Answers `GET /metrics` on `listener` with [`Metrics::render`], `GET /`
/// with the console and `GET /status.json` with [`Metrics::status`] until
/// the task is dropped; any other path gets 404.
pub async fn serve(metrics: Arc<Metrics>, listener: TcpListener) {
    loop {
        let (mut socket, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let head_done = loop {
                match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break false,
                    Ok(Ok(n)) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            break true;
                        }
                        if buf.len() > 16 * 1024 {
                            break false;
                        }
                    }
                }
            };
            if !head_done {
                tracing::debug!("metrics endpoint: incomplete request from {peer}");
                return;
            }
            let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            let mut words = line.split_whitespace();
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
            let (status, content_type, body) = match (method, path.split('?').next().unwrap_or(""))
            {
                ("GET", "/metrics") => ("200 OK", TEXT, metrics.render()),
                ("GET", "/") => (
                    "200 OK",
                    "text/html; charset=utf-8",
                    super::status::CONSOLE_HTML.to_string(),
                ),
                ("GET", "/status.json") => {
                    ("200 OK", "application/json", metrics.status().to_string())
                }
                ("GET", _) => (
                    "404 Not Found",
                    TEXT,
                    "not found: metrics are at /metrics, the console at /\n".to_string(),
                ),
                _ => (
                    "405 Method Not Allowed",
                    TEXT,
                    "only GET is supported\n".to_string(),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = socket.write_all(response.as_bytes()).await {
                tracing::debug!("metrics endpoint: cannot answer {peer}: {e}");
            }
            let _ = socket.shutdown().await;
        });
    }
}
