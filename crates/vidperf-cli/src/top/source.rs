//! Where `vidperf top`'s events come from: a service's `GET /performance/stream`
//! (read on a thread of its own, optionally recorded to a file), or a file played back
//! (a recording, or a JSON export whose records are stepped through).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use vidperf_core::OperationRecord;

use super::model::{Model, StreamEvent, frames_from_records};

/// Why `vidperf top` cannot start. The message names the URL or file and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The URL is not an `http://` or `https://` URL.
    #[error("{url}: not a service URL (give http://host:port)")]
    BadUrl {
        /// The URL given.
        url: String,
    },
    /// The service could not be reached, or answered an error.
    #[error("{url}: {message}")]
    Connect {
        /// The stream's URL.
        url: String,
        /// Why.
        message: String,
    },
    /// A file could not be read or written, or is not a recording or an export.
    #[error("{path}: {message}")]
    File {
        /// The path given.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// How to reach a service's stream.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Endpoint {
    /// The service, `http://host:port` (a path prefix is kept).
    pub base: String,
    /// Bearer token, when the service asks for one.
    pub token: Option<String>,
    /// Seconds between events.
    pub interval: Duration,
}

impl Endpoint {
    /// The service at `url` (`http://host:port`, a trailing `/` or a path to the stream
    /// itself accepted).
    pub fn new(url: &str, token: Option<String>, interval: Duration) -> Result<Self, SourceError> {
        let url = url.trim();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .filter(|rest| !rest.is_empty() && !rest.starts_with('/'))
            .ok_or_else(|| SourceError::BadUrl {
                url: url.to_owned(),
            })?;
        if rest.contains(['?', '#', ' ']) {
            return Err(SourceError::BadUrl {
                url: url.to_owned(),
            });
        }
        let base = url
            .trim_end_matches('/')
            .trim_end_matches("/performance/stream")
            .to_owned();
        Ok(Self {
            base,
            token,
            interval,
        })
    }

    /// The stream's URL over `window`.
    pub fn stream_url(&self, window: Duration) -> String {
        format!(
            "{}/performance/stream?interval={}ms&window={}s",
            self.base,
            self.interval.as_millis(),
            window.as_secs()
        )
    }
}

/// The longest line of an event accepted (a stream of 200 strategies is ~1 MiB).
const MAX_LINE: u64 = 64 << 20;

/// A connection's events, one `data:` payload at a time.
struct Events {
    reader: BufReader<Box<dyn Read + Send>>,
}

impl Events {
    /// The next event's data; `None` at the end of the stream.
    fn next(&mut self) -> std::io::Result<Option<String>> {
        let mut data = String::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(None);
            }
            if !line.ends_with(b"\n") && n as u64 == MAX_LINE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("an event line longer than {} MiB", MAX_LINE >> 20),
                ));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                if !data.is_empty() {
                    return Ok(Some(data));
                }
                continue;
            }
            if let Some(value) = text.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
    }
}

/// Opens the stream over `window`: the answer checked, nothing read yet.
fn connect(endpoint: &Endpoint, window: Duration) -> Result<Events, SourceError> {
    let url = endpoint.stream_url(window);
    let fail = |message: String| SourceError::Connect {
        url: url.clone(),
        message,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_recv_response(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut request = agent.get(&url).header("Accept", "text/event-stream");
    if let Some(token) = &endpoint.token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().map_err(|e| match e {
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) | ureq::Error::HostNotFound => {
            fail(format!("cannot connect: {e}"))
        }
        other => fail(other.to_string()),
    })?;
    let status = response.status();
    if !status.is_success() {
        let hint = if status == 401 {
            " (give the service's token with --token or VIDPERF_HTTP_TOKEN)"
        } else if status == 404 {
            " (is this a vidperf service? its stream is /performance/stream)"
        } else {
            ""
        };
        return Err(fail(format!(
            "the service answered {status}{hint}{}",
            crate::input::error_body(&mut response)
        )));
    }
    let is_stream = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_stream {
        return Err(fail(
            "the answer is not an event stream (is this a vidperf service?)".to_owned(),
        ));
    }
    let reader: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
    Ok(Events {
        reader: BufReader::with_capacity(1 << 16, reader),
    })
}

/// What the stream thread hands the view.
#[derive(Debug)]
pub enum Message {
    /// An event, parsed.
    Event(Box<StreamEvent>),
    /// The connection is up again after a failure.
    Connected,
    /// The connection failed; the thread retries.
    Disconnected(String),
    /// Recording stopped (the file could not be written).
    RecordingFailed(String),
}

/// The first line of a recording.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// Always 1 (the format's version).
    vidperf_recording: u32,
    /// The stream's URL.
    url: String,
    /// When the recording started.
    #[serde(with = "humantime_serde")]
    started_at: SystemTime,
}

/// RFC 3339 times, as the rest of vidperf writes them.
mod humantime_serde {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_micros(*t).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// Writes the events as they arrive: a header line, then one line per event,
/// `{"at": seconds since the start, "event": <the event's data as sent>}`.
#[derive(Debug)]
pub struct Recorder {
    out: BufWriter<File>,
    started: Instant,
    path: PathBuf,
}

impl Recorder {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: &Path, url: &str) -> Result<Self, SourceError> {
        let fail = |message: String| SourceError::File {
            path: path.to_owned(),
            message,
        };
        let file = File::create(path).map_err(|e| fail(format!("cannot create: {e}")))?;
        let mut out = BufWriter::new(file);
        let header = Header {
            vidperf_recording: 1,
            url: url.to_owned(),
            started_at: SystemTime::now(),
        };
        let line = serde_json::to_string(&header).map_err(|e| fail(e.to_string()))?;
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| fail(format!("cannot write: {e}")))?;
        Ok(Self {
            out,
            started: Instant::now(),
            path: path.to_owned(),
        })
    }

    fn write(&mut self, data: &str) -> std::io::Result<()> {
        let at = self.started.elapsed().as_secs_f64();
        // The data is one JSON document as the service wrote it (one line).
        writeln!(
            self.out,
            "{{\"at\":{at:.3},\"event\":{}}}",
            data.replace('\n', " ")
        )?;
        self.out.flush()
    }
}

/// A running connection to a service's stream, on its own thread. Dropping it asks
/// the thread to stop (it does at its next event or failure).
#[derive(Debug)]
pub struct Live {
    /// The events and the connection's changes.
    pub messages: Receiver<Message>,
    stop: Arc<AtomicBool>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Events waiting for the view at most (it takes them all at every tick).
const QUEUE: usize = 256;

/// A recording shared by the connections of one view (a new one opens when the window
/// changes).
pub type SharedRecorder = Arc<Mutex<Option<Recorder>>>;

/// A connection whose first event was read, not followed yet.
pub struct Connection {
    events: Events,
    endpoint: Endpoint,
    window: Duration,
    recorder: Option<SharedRecorder>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("endpoint", &self.endpoint)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// Connects to `endpoint` over `window` and returns the first event (or why there is
/// none) and the connection, to follow for the next ones. With `recorder`, every
/// event is appended there (the first one too).
pub fn open(
    endpoint: &Endpoint,
    window: Duration,
    recorder: Option<SharedRecorder>,
) -> Result<(Box<StreamEvent>, Connection), SourceError> {
    let url = endpoint.stream_url(window);
    let mut events = connect(endpoint, window)?;
    let fail = |message: String| SourceError::Connect {
        url: url.clone(),
        message,
    };
    let first = events
        .next()
        .map_err(|e| fail(format!("reading the first event: {e}")))?
        .ok_or_else(|| fail("the stream ended before its first event".to_owned()))?;
    let event: StreamEvent = serde_json::from_str(&first).map_err(|e| {
        fail(format!(
            "the first event is not a vidperf stream event: {e}"
        ))
    })?;
    if let Some(shared) = &recorder {
        let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = guard.as_mut() {
            r.write(&first).map_err(|e| SourceError::File {
                path: r.path.clone(),
                message: format!("cannot write: {e}"),
            })?;
        }
    }
    let connection = Connection {
        events,
        endpoint: endpoint.clone(),
        window,
        recorder,
    };
    Ok((Box::new(event), connection))
}

impl Connection {
    /// Reads the next events on a thread of its own (reconnecting when the connection
    /// fails), handing them over in [`Live::messages`].
    pub fn follow(self) -> Result<Live, SourceError> {
        let (sender, messages) = std::sync::mpsc::sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let url = self.endpoint.stream_url(self.window);
        std::thread::Builder::new()
            .name("vidperf-top-stream".to_owned())
            .spawn(move || {
                let Connection {
                    events,
                    endpoint,
                    window,
                    recorder,
                } = self;
                read_loop(
                    events,
                    &endpoint,
                    window,
                    recorder.as_ref(),
                    &sender,
                    &thread_stop,
                );
            })
            .map_err(|e| SourceError::Connect {
                url,
                message: format!("cannot start the reader thread: {e}"),
            })?;
        Ok(Live { messages, stop })
    }
}

/// Appends `data` to the recording; on failure stops recording and says why.
fn record(shared: &SharedRecorder, data: &str) -> Option<String> {
    let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let r = guard.as_mut()?;
    let e = r.write(data).err()?;
    let why = format!("{}: cannot write: {e}; recording stopped", r.path.display());
    *guard = None;
    Some(why)
}

/// Hands `message` over unless the view is gone; `false` when it is.
fn send(sender: &SyncSender<Message>, message: Message) -> bool {
    match sender.try_send(message) {
        Ok(()) => true,
        // The view is behind by a whole queue: it will catch up on the next ones.
        Err(TrySendError::Full(_)) => true,
        Err(TrySendError::Disconnected(_)) => false,
    }
}

fn read_loop(
    mut events: Events,
    endpoint: &Endpoint,
    window: Duration,
    recorder: Option<&SharedRecorder>,
    sender: &SyncSender<Message>,
    stop: &AtomicBool,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let failure = loop {
            match events.next() {
                Ok(Some(data)) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match serde_json::from_str::<StreamEvent>(&data) {
                        Ok(event) => {
                            if let Some(failed) = recorder.and_then(|r| record(r, &data))
                                && !send(sender, Message::RecordingFailed(failed))
                            {
                                return;
                            }
                            if !send(sender, Message::Event(Box::new(event))) {
                                return;
                            }
                            backoff = Duration::from_millis(500);
                        }
                        Err(e) => {
                            break format!("an event that is not a vidperf stream event: {e}");
                        }
                    }
                }
                Ok(None) => break "the service closed the stream".to_owned(),
                Err(e) => break format!("reading the stream: {e}"),
            }
        };
        if stop.load(Ordering::Relaxed) || !send(sender, Message::Disconnected(failure)) {
            return;
        }
        // Reconnect with backoff, until it works or the view goes.
        loop {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match connect(endpoint, window) {
                Ok(next) => {
                    events = next;
                    if !send(sender, Message::Connected) {
                        return;
                    }
                    break;
                }
                Err(e) => {
                    if !send(sender, Message::Disconnected(e.to_string())) {
                        return;
                    }
                }
            }
        }
    }
}

/// A file played back: its frames, and when each arrived (seconds from the first).
#[derive(Debug)]
pub struct Replay {
    /// Every frame.
    pub model: Model,
    /// When each frame arrived, seconds since the first (for playing in real time).
    pub at: Vec<f64>,
    /// What the file is (`recording of URL`, `export written at …`).
    pub description: String,
    /// An export's records (its frames can be made again over another window); `None`
    /// for a recording.
    pub records: Option<Vec<OperationRecord>>,
}

/// The most frames built from an export (the step is widened to fit).
const MAX_EXPORT_FRAMES: usize = 3600;

/// Reads `path`: a recording (`--record`) or a JSON export, its frames over `window`
/// (for an export; a recording has its own).
pub fn replay(path: &Path, window: Duration) -> Result<Replay, SourceError> {
    let fail = |message: String| SourceError::File {
        path: path.to_owned(),
        message,
    };
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut first = String::new();
    (&mut reader)
        .take(1 << 20)
        .read_line(&mut first)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if let Ok(header) = serde_json::from_str::<Header>(first.trim()) {
        if header.vidperf_recording != 1 {
            return Err(fail(format!(
                "a recording of format {}, newer than this vidperf reads (1)",
                header.vidperf_recording
            )));
        }
        return read_recording(reader, &header, &fail);
    }
    if !first.trim_start().starts_with('{') {
        return Err(fail(
            "neither a recording (vidperf top --record) nor a JSON export".to_owned(),
        ));
    }
    // A JSON export: read it whole, from the start.
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let export =
        vidperf_core::export::read_json(BufReader::with_capacity(1 << 20, file)).map_err(|e| {
            fail(format!(
                "neither a recording (vidperf top --record) nor a readable JSON export: {e}"
            ))
        })?;
    if export.operations.is_empty() {
        return Err(fail(
            "the export holds no operation records to play back".to_owned(),
        ));
    }
    let (model, at) = export_frames(&export.operations, window);
    Ok(Replay {
        model,
        at,
        description: format!(
            "export written {} ({} operations)",
            humantime::format_rfc3339_seconds(export.exported_at),
            export.operations.len()
        ),
        records: Some(export.operations),
    })
}

/// The frames of an export's records over `window`, one per second of their end
/// times, and when each is (seconds from the first).
pub fn export_frames(records: &[OperationRecord], window: Duration) -> (Model, Vec<f64>) {
    let frames = frames_from_records(records, window, Duration::from_secs(1), MAX_EXPORT_FRAMES);
    let t0 = frames.first().map(|f| f.generated_at);
    let mut at = Vec::with_capacity(frames.len());
    let mut model = Model::new(frames.len());
    for f in frames {
        at.push(
            t0.and_then(|t| f.generated_at.duration_since(t).ok())
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        model.push(f);
    }
    (model, at)
}

/// One line of a recording after the header.
#[derive(Deserialize)]
struct Line {
    at: f64,
    event: StreamEvent,
}

fn read_recording(
    reader: BufReader<File>,
    header: &Header,
    fail: &dyn Fn(String) -> SourceError,
) -> Result<Replay, SourceError> {
    let mut lines = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| fail(format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(&line) {
            Ok(l) => lines.push(l),
            // A recording cut short (the view was killed mid-line) keeps what it has.
            Err(e) if e.is_eof() => break,
            Err(e) => return Err(fail(format!("line {}: {e}", n + 2))),
        }
    }
    if lines.is_empty() {
        return Err(fail("the recording holds no event".to_owned()));
    }
    let mut model = Model::new(lines.len());
    let mut at = Vec::with_capacity(lines.len());
    for line in &lines {
        model.push_event(&line.event);
        at.push(line.at);
    }
    Ok(Replay {
        model,
        at,
        description: format!(
            "recording of {} from {}",
            header.url,
            humantime::format_rfc3339_seconds(header.started_at)
        ),
        records: None,
    })
}
