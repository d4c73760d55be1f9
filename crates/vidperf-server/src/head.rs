//! Reading a request's head before hyper does: malformed requests (a byte that is not
//! allowed in the request target, a garbage request line, an oversized target or
//! header) are answered with the API's JSON error instead of hyper's empty body, and a
//! connection only takes a serving slot once its head has arrived, so clients that
//! send their headers slowly cannot crowd out `/metrics`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::ApiError;

/// Limits on a request head.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The request line (method, target, version), bytes.
    pub(crate) request_line: usize,
    /// The whole head, bytes.
    pub(crate) head: usize,
}

/// A head that arrived whole: the bytes read so far (the head and perhaps the start of
/// a body), and the request's path.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) bytes: Vec<u8>,
    pub(crate) path: String,
}

/// Reads until the end of the head (`\r\n\r\n`), validating as it goes. `Ok(None)`: the
/// client closed before sending a head.
pub(crate) async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    limits: Limits,
) -> Result<Option<Head>, ApiError> {
    let mut bytes = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| closed())?;
        if n == 0 {
            return if bytes.is_empty() {
                Ok(None)
            } else {
                Err(bad(
                    "incomplete_request",
                    "the request ended before its headers did",
                ))
            };
        }
        let searched = bytes.len().saturating_sub(3);
        bytes.extend_from_slice(&chunk[..n]);
        let line_end = find(&bytes, b"\r\n");
        if line_end.is_none() && bytes.len() > limits.request_line {
            return Err(too_long_target(limits));
        }
        if let Some(end) = line_end {
            let path = request_line(&bytes[..end], limits)?;
            if let Some(head_end) = find(&bytes[searched..], b"\r\n\r\n") {
                let head_end = searched + head_end;
                if head_end + 4 > limits.head {
                    return Err(too_large(limits));
                }
                headers(&bytes[end + 2..head_end + 2])?;
                return Ok(Some(Head { bytes, path }));
            }
        }
        if bytes.len() > limits.head {
            return Err(too_large(limits));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

fn closed() -> ApiError {
    bad(
        "incomplete_request",
        "the connection failed while reading the request",
    )
}

fn too_large(limits: Limits) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        format!("the request headers are limited to {} bytes", limits.head),
    )
}

fn too_long_target(limits: Limits) -> ApiError {
    ApiError::new(
        StatusCode::URI_TOO_LONG,
        "target_too_long",
        format!(
            "the request line is limited to {} bytes",
            limits.request_line
        ),
    )
}

/// `METHOD SP target SP HTTP/1.x`; the path of the target.
fn request_line(line: &[u8], limits: Limits) -> Result<String, ApiError> {
    if line.len() > limits.request_line {
        return Err(too_long_target(limits));
    }
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(
            "invalid_request_line",
            "the request line must be METHOD TARGET HTTP/1.1",
        ));
    };
    if method.is_empty() || !method.iter().all(|b| is_token(*b)) {
        return Err(bad(
            "invalid_request_line",
            "the method is not a valid token",
        ));
    }
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Err(bad(
            "invalid_request_line",
            "only HTTP/1.0 and HTTP/1.1 are served",
        ));
    }
    if let Some(byte) = target.iter().find(|b| !(0x21..=0x7e).contains(*b)) {
        return Err(bad(
            "invalid_target",
            format!(
                "the request target holds a byte that is not allowed (0x{byte:02X}); percent-encode it"
            ),
        ));
    }
    if !target.starts_with(b"/") && target != b"*" {
        return Err(bad(
            "invalid_target",
            "the request target must be a path starting with /",
        ));
    }
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(path).into_owned())
}

/// Header lines: `name: value`, a token name, no control bytes in the value.
fn headers(block: &[u8]) -> Result<(), ApiError> {
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return Err(bad("invalid_header", "a header line has no colon"));
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|b| is_token(*b)) {
            return Err(bad("invalid_header", "a header name is not a valid token"));
        }
        if value
            .iter()
            .any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f)
        {
            return Err(bad("invalid_header", "a header value holds a control byte"));
        }
    }
    Ok(())
}

/// RFC 9110 token characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Writes `error` as a complete response and closes the connection (best effort, at
/// most `timeout`).
pub(crate) async fn answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    error: &ApiError,
    retry_after: Option<u64>,
    timeout: std::time::Duration,
) {
    let body = error.json();
    let status = error.status();
    let mut response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if let Some(seconds) = retry_after {
        response.push_str(&format!("retry-after: {seconds}\r\n"));
    }
    response.push_str("\r\n");
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(timeout, write).await;
}

/// A stream that first yields bytes already read from it (the head), then reads on;
/// it also notes when a write last made progress, for the stall watchdog.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
    progress: Progress,
}

/// When a connection last wrote something, in milliseconds since it was accepted.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    since: std::time::Instant,
    last_write_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// When a write found the socket full and has not made progress since, ms since
    /// accepted; `u64::MAX` while no write waits.
    blocked_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            since: std::time::Instant::now(),
            last_write_ms: std::sync::Arc::default(),
            blocked_ms: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
        }
    }

    fn wrote(&self) {
        let ms = self.since.elapsed().as_millis() as u64;
        self.last_write_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
        self.blocked_ms
            .store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
    }

    fn blocked(&self) {
        let ms = self.since.elapsed().as_millis() as u64;
        let _ = self.blocked_ms.compare_exchange(
            u64::MAX,
            ms,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// How long a write has been waiting for the client to read (zero while none
    /// waits): a download whose client stopped reading.
    pub(crate) fn blocked_for(&self) -> std::time::Duration {
        let at = self.blocked_ms.load(std::sync::atomic::Ordering::Relaxed);
        if at == u64::MAX {
            return std::time::Duration::ZERO;
        }
        self.since
            .elapsed()
            .saturating_sub(std::time::Duration::from_millis(at))
    }

    /// How long since the last write made progress (or since the start).
    pub(crate) fn stalled_for(&self) -> std::time::Duration {
        let last = self
            .last_write_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        self.since
            .elapsed()
            .saturating_sub(std::time::Duration::from_millis(last))
    }
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S, progress: Progress) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
            progress,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let rest = &this.prefix[this.at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        match &result {
            Poll::Ready(Ok(n)) if *n > 0 => self.progress.wrote(),
            Poll::Pending => self.progress.blocked(),
            _ => {}
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        request_line: 64,
        head: 256,
    };

    fn read_all(input: &[u8]) -> Result<Option<Head>, ApiError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut reader = input;
        runtime.block_on(read(&mut reader, LIMITS))
    }

    fn code(input: &[u8]) -> (u16, &'static str) {
        let e = read_all(input).expect_err("rejected");
        (e.status().as_u16(), e.code())
    }

    #[test]
    fn good_heads_pass_with_their_path() {
        let head = read_all(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\nbody")
            .expect("valid")
            .expect("a head");
        assert_eq!(head.path, "/metrics");
        assert!(head.bytes.ends_with(b"body"), "read-ahead kept for hyper");
        assert!(read_all(b"").expect("closed").is_none());
    }

    #[test]
    fn malformed_heads_get_their_json_status() {
        assert_eq!(
            code(b"GET /a?\xff HTTP/1.1\r\n\r\n"),
            (400, "invalid_target")
        );
        assert_eq!(code(b"garbage\r\n\r\n"), (400, "invalid_request_line"));
        assert_eq!(code(b"GET / HTTP/9\r\n\r\n"), (400, "invalid_request_line"));
        assert_eq!(
            code(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"),
            (400, "invalid_header")
        );
        let long = [b"GET /".as_slice(), &[b'a'; 100], b" HTTP/1.1\r\n\r\n"].concat();
        assert_eq!(code(&long), (414, "target_too_long"));
        let endless = [b"GET /".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(code(&endless), (414, "target_too_long"));
        let big = [
            b"GET / HTTP/1.1\r\nX: ".as_slice(),
            &[b'v'; 300],
            b"\r\n\r\n",
        ]
        .concat();
        assert_eq!(code(&big), (431, "headers_too_large"));
        assert_eq!(code(b"GET / HTTP/1.1\r\nHost"), (400, "incomplete_request"));
    }
}
