//! The HTTP endpoint: a few lines over tokio's `TcpListener` rather than
//! a web framework: it answers one `GET /metrics` per connection and
//! nothing else, which does not justify a dependency tree.

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

/// Answers `GET /metrics` on `listener` with [`Metrics::render`] until the
/// task is dropped; any other path gets 404.
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
            let (status, body) = match (method, path.split('?').next().unwrap_or("")) {
                ("GET", "/metrics") => ("200 OK", metrics.render()),
                ("GET", _) => (
                    "404 Not Found",
                    "not found: metrics are at /metrics\n".to_string(),
                ),
                _ => (
                    "405 Method Not Allowed",
                    "only GET is supported\n".to_string(),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
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
