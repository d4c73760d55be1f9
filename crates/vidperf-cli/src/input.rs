//! One side of a comparison: a JSON export file, or a live service whose export is
//! fetched. Either way only what the comparison needs is read (format 2 exports are
//! read up to their pairs; see [`vidperf_core::export::read_summary`]).

use std::io::{BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use vidperf_core::export::{ExportSummary, ReadError, read_summary};

/// Where a side came from and what was read.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Side {
    /// The path or URL given.
    pub source: String,
    /// The export's `format_version`.
    pub format_version: u32,
    /// When the export was written (RFC 3339).
    pub exported_at: Option<String>,
    /// Whether the pairs were rebuilt from records (a format-1 export: only the
    /// records the history kept count).
    pub from_records: bool,
    /// Operations over all pairs.
    pub operations: u64,
    /// The pairs.
    #[serde(skip)]
    pub summary: ExportSummary,
}

/// Why a side could not be read. Its message names the source and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file could not be opened.
    #[error("{source_name}: cannot open: {error}")]
    Open {
        /// The path given.
        source_name: String,
        /// Why.
        error: std::io::Error,
    },
    /// The content is not a readable export.
    #[error("{source_name}: {error}")]
    Read {
        /// The path or URL given.
        source_name: String,
        /// Why.
        error: ReadError,
    },
    /// A CSV export was given where a JSON export is read.
    #[error(
        "{source_name}: {error} (this reads JSON exports, vidperf-export.json; a CSV export has no duration distributions)"
    )]
    CsvGiven {
        /// The path given.
        source_name: String,
        /// What reading it as JSON said.
        error: ReadError,
    },
    /// The service could not be reached or answered an error.
    #[error("{source_name}: {message}")]
    Fetch {
        /// The URL given.
        source_name: String,
        /// Why.
        message: String,
    },
}

/// How a service is asked for its export.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FetchOptions {
    /// Bearer token for the service's export route.
    pub token: Option<String>,
    /// Limit on the whole exchange.
    pub timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            token: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Reads `source`: a URL (`http://` or `https://`) or a file path.
pub fn load(source: &str, options: &FetchOptions) -> Result<Side, InputError> {
    let summary = if source.starts_with("http://") || source.starts_with("https://") {
        fetch(source, options)?
    } else {
        let file = std::fs::File::open(Path::new(source)).map_err(|error| InputError::Open {
            source_name: source.to_owned(),
            error,
        })?;
        read_summary(BufReader::with_capacity(1 << 20, file)).map_err(|error| {
            let is_csv = Path::new(source)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            match error {
                error @ ReadError::Json(_) if is_csv => InputError::CsvGiven {
                    source_name: source.to_owned(),
                    error,
                },
                error => InputError::Read {
                    source_name: source.to_owned(),
                    error,
                },
            }
        })?
    };
    Ok(Side {
        source: source.to_owned(),
        format_version: summary.format_version,
        exported_at: summary
            .exported_at
            .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        from_records: summary.from_records,
        operations: summary.pairs.iter().map(|p| p.statistics.count).sum(),
        summary,
    })
}

/// The export route of the service at `url` (a bare `http://host:port` or one ending
/// in `/`), or `url` itself (any other path: fetched with GET, as a file).
fn fetch(url: &str, options: &FetchOptions) -> Result<ExportSummary, InputError> {
    let fail = |message: String| InputError::Fetch {
        source_name: url.to_owned(),
        message,
    };
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let is_service = match after_scheme.find('/') {
        None => true,
        Some(i) => after_scheme[i..].trim_end_matches('/').is_empty(),
    };
    let started = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(options.timeout))
        .timeout_connect(Some(options.timeout.min(Duration::from_secs(5))))
        .build()
        .into();
    let mut response = if is_service {
        let endpoint = format!(
            "{}/performance/export?format=json",
            url.trim_end_matches('/')
        );
        let mut request = agent.post(&endpoint);
        if let Some(token) = &options.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        request.send_empty()
    } else {
        let mut request = agent.get(url);
        if let Some(token) = &options.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        request.call()
    }
    .map_err(|e| fail(fetch_error(&e, options.timeout)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!(
            "the service answered {status}{}",
            error_body(&mut response)
        )));
    }
    let body = response.into_body();
    if let Some(length) = body.content_length()
        && length > MAX_BODY_BYTES
    {
        return Err(fail(format!(
            "the service announces {length} bytes, larger than {} MiB; compare the export as a file",
            MAX_BODY_BYTES >> 20
        )));
    }
    let reader = Deadline {
        inner: body.into_with_config().limit(MAX_BODY_BYTES).reader(),
        at: started + options.timeout,
    };
    read_summary(BufReader::with_capacity(1 << 20, reader)).map_err(|error| match error {
        ReadError::Io(io) => match io.get_ref().and_then(|e| e.downcast_ref::<ureq::Error>()) {
            _ if io.kind() == std::io::ErrorKind::TimedOut => fail(format!(
                "no complete answer within {} s (raise --timeout for a large export)",
                options.timeout.as_secs_f64()
            )),
            Some(ureq::Error::Timeout(_)) => fail(format!(
                "no complete answer within {} s (raise --timeout for a large export)",
                options.timeout.as_secs_f64()
            )),
            Some(ureq::Error::BodyExceedsLimit(_)) => fail(format!(
                "the export is larger than {} MiB; compare it as a file",
                MAX_BODY_BYTES >> 20
            )),
            _ => InputError::Read {
                source_name: url.to_owned(),
                error: ReadError::Io(io),
            },
        },
        error => InputError::Read {
            source_name: url.to_owned(),
            error,
        },
    })
}

/// An error answer's body (its first 4 KiB), as `: body`, or nothing when empty.
pub(crate) fn error_body(response: &mut ureq::http::Response<ureq::Body>) -> String {
    let body = response
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", body.trim())
    }
}

/// A reader that fails once `at` has passed. ureq's global timeout bounds each socket
/// read, but a server that drips a byte now and then can keep every read short of it;
/// this makes the limit hold for the whole body.
struct Deadline<R> {
    inner: R,
    at: Instant,
}

impl<R: Read> Read for Deadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() >= self.at {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the time allowed for the whole exchange has passed",
            ));
        }
        self.inner.read(buf)
    }
}

/// The most of a service's answer that is read: an export past it is refused (a
/// file has no such cap; it is read as a stream).
pub const MAX_BODY_BYTES: u64 = 256 << 20;

fn fetch_error(e: &ureq::Error, timeout: Duration) -> String {
    match e {
        ureq::Error::Timeout(_) => format!("no answer within {} s", timeout.as_secs_f64()),
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) | ureq::Error::HostNotFound => {
            format!("cannot connect: {e}")
        }
        other => other.to_string(),
    }
}
