//! `vidperf top`: the live view of a service for a terminal, from its
//! `GET /performance/stream`, with record and replay.
//!
//! The view is three parts: [`source`] reads events (a connection on its own thread,
//! or a file), [`model`] turns each into a [`Frame`](model::Frame) of plain numbers,
//! and [`view`] draws a frame with the user's sort and filter. A recording holds the
//! events as they came, so its replay builds the live frames again.

pub mod model;
pub mod source;
pub mod view;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use self::model::Model;
use self::source::{Endpoint, Live, Message, Recorder, Replay, SourceError};
use self::view::{Column, Mode, View};

/// What `vidperf top` was asked for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TopOptions {
    /// The service, `http://host:port`.
    pub url: String,
    /// Bearer token.
    pub token: Option<String>,
    /// Seconds between the stream's events.
    pub interval: Duration,
    /// The statistics' window.
    pub window: Duration,
    /// Record the events to this file.
    pub record: Option<PathBuf>,
    /// Play this file back instead of connecting.
    pub replay: Option<PathBuf>,
    /// Print one frame as text and exit.
    pub once: bool,
    /// With `--replay`: start at this frame (0: the first).
    pub seek: Option<usize>,
    /// `--once`'s size, columns × rows.
    pub size: (u16, u16),
    /// Colours on (off with `NO_COLOR`).
    pub colour: bool,
}

impl TopOptions {
    /// The options for the service at `url`, everything else default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            interval: Duration::from_secs(1),
            window: Duration::from_secs(60),
            record: None,
            replay: None,
            once: false,
            seek: None,
            size: (80, 24),
            colour: true,
        }
    }
}

/// The windows `w` steps through.
pub const WINDOWS: [Duration; 4] = [
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(900),
    Duration::from_secs(3600),
];

/// Frames a live view keeps (for the trends and stepping back).
const LIVE_FRAMES: usize = 600;

/// Frame `at` of `model` as plain text, `width` × `height` (trailing spaces trimmed).
pub fn render_text(model: &Model, at: usize, view: &View, width: u16, height: u16) -> String {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(e) => match e {},
    };
    let _ = terminal.draw(|screen| view::draw(screen, model, at, view));
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..height {
        let mut line = String::new();
        for x in 0..width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Runs `vidperf top`. Errors are those that stop it from starting (a bad URL, token
/// or file); once running, a lost connection is retried and shown.
pub fn run(options: &TopOptions) -> Result<(), SourceError> {
    if let Some(path) = &options.replay {
        let replay = source::replay(path, options.window)?;
        let at = options
            .seek
            .unwrap_or(if options.once {
                replay.model.len() - 1
            } else {
                0
            })
            .min(replay.model.len() - 1);
        let mode = Mode::Replay {
            what: replay.description.clone(),
            paused: options.once,
            speed: 1.0,
        };
        let view = View::new(mode, options.colour && !options.once);
        if options.once {
            print_once(&replay.model, at, &view, options.size);
            return Ok(());
        }
        return interactive(State::replay(replay, at), view);
    }
    let endpoint = Endpoint::new(&options.url, options.token.clone(), options.interval)?;
    let recorder = match &options.record {
        Some(path) => Some(Arc::new(Mutex::new(Some(Recorder::create(
            path,
            &endpoint.stream_url(options.window),
        )?)))),
        None => None,
    };
    let (first, connection) = source::open(&endpoint, options.window, recorder.clone())?;
    let mut model = Model::new(if options.once { 1 } else { LIVE_FRAMES });
    model.push_event(&first);
    let mut view = View::new(
        Mode::Live {
            url: endpoint.base.clone(),
            down: None,
            stale: None,
        },
        options.colour && !options.once,
    );
    view.recording = options.record.as_ref().map(|p| p.display().to_string());
    if options.once {
        print_once(&model, 0, &view, options.size);
        return Ok(());
    }
    let live = connection.follow()?;
    let state = State {
        model,
        at: 0,
        source: Source::Live {
            endpoint,
            live: Some(live),
            window: options.window,
            recorder,
            last_event: Instant::now(),
        },
    };
    interactive(state, view)
}

// reason: `--once` writes its frame to stdout, which is what it is for.
#[allow(clippy::print_stdout)]
fn print_once(model: &Model, at: usize, view: &View, (width, height): (u16, u16)) {
    print!("{}", render_text(model, at, view, width, height));
}

/// Where the frames come from, and what is needed to get more.
enum Source {
    Live {
        endpoint: Endpoint,
        live: Option<Live>,
        window: Duration,
        recorder: Option<source::SharedRecorder>,
        last_event: Instant,
    },
    Replay {
        at: Vec<f64>,
        /// An export's records, for another window.
        records: Option<Vec<vidperf_core::OperationRecord>>,
        window: Duration,
        /// When the current frame was shown, for playing in real time.
        shown: Instant,
    },
}

struct State {
    model: Model,
    at: usize,
    source: Source,
}

impl State {
    fn replay(replay: Replay, at: usize) -> Self {
        let window = replay.model.frame(0).map_or(Duration::from_secs(60), |f| {
            Duration::try_from_secs_f64(f.window_seconds).unwrap_or(Duration::from_secs(60))
        });
        Self {
            model: replay.model,
            at,
            source: Source::Replay {
                at: replay.at,
                records: replay.records,
                window,
                shown: Instant::now(),
            },
        }
    }

    /// Takes what the connection delivered, or plays on; `true` when the screen changed.
    fn advance(&mut self, view: &mut View) -> bool {
        let mut changed = false;
        match &mut self.source {
            Source::Live {
                live,
                last_event,
                endpoint,
                ..
            } => {
                if let Some(l) = live {
                    while let Ok(message) = l.messages.try_recv() {
                        changed = true;
                        match message {
                            Message::Event(event) => {
                                self.model.push_event(&event);
                                *last_event = Instant::now();
                                if let Mode::Live { down, .. } = &mut view.mode {
                                    *down = None;
                                }
                            }
                            Message::Connected => {
                                if let Mode::Live { down, .. } = &mut view.mode {
                                    *down = None;
                                }
                            }
                            Message::Disconnected(why) => {
                                if let Mode::Live { down, .. } = &mut view.mode {
                                    *down = Some(why);
                                }
                            }
                            Message::RecordingFailed(why) => {
                                view.recording = None;
                                view.note = Some(why);
                            }
                        }
                    }
                }
                self.at = self.model.len().saturating_sub(1);
                let quiet = last_event.elapsed().as_secs_f64();
                let limit = (endpoint.interval.as_secs_f64() * 3.0).max(5.0);
                if let Mode::Live { stale, .. } = &mut view.mode {
                    let now = (quiet > limit).then_some(quiet);
                    if now.map(f64::round) != stale.map(f64::round) {
                        changed = true;
                    }
                    *stale = now;
                }
            }
            Source::Replay { at, shown, .. } => {
                if let Mode::Replay { paused, speed, .. } = &mut view.mode
                    && !*paused
                {
                    let next = self.at + 1;
                    if next >= self.model.len() {
                        *paused = true;
                        changed = true;
                    } else {
                        let gap = (at[next] - at[self.at]).max(0.0) / *speed;
                        if shown.elapsed().as_secs_f64() >= gap {
                            self.at = next;
                            *shown = Instant::now();
                            changed = true;
                        }
                    }
                }
            }
        }
        changed
    }

    fn seek(&mut self, to: usize) {
        self.at = to.min(self.model.len().saturating_sub(1));
        if let Source::Replay { shown, .. } = &mut self.source {
            *shown = Instant::now();
        }
    }

    /// Switches to the next window: a new connection, or the export's frames again.
    fn next_window(&mut self, view: &mut View) {
        match &mut self.source {
            Source::Live {
                endpoint,
                live,
                window,
                recorder,
                last_event,
            } => {
                let next = next_window(*window);
                match source::open(endpoint, next, recorder.clone())
                    .and_then(|(first, c)| Ok((first, c.follow()?)))
                {
                    Ok((first, connection)) => {
                        *live = Some(connection);
                        *window = next;
                        *last_event = Instant::now();
                        self.model.push_event(&first);
                        self.at = self.model.len() - 1;
                        view.note = None;
                    }
                    Err(e) => {
                        view.note =
                            Some(format!("window {}: {e}", view::window(next.as_secs_f64())));
                    }
                }
            }
            Source::Replay {
                records,
                window,
                at,
                ..
            } => {
                let Some(records) = records else {
                    view.note =
                        Some("a recording keeps the window it was recorded with".to_owned());
                    return;
                };
                let next = next_window(*window);
                let time = self.model.frame(self.at).map(|f| f.generated_at);
                let (model, times) = source::export_frames(records, next);
                self.at = (0..model.len())
                    .find(|i| model.frame(*i).map(|f| f.generated_at) >= time)
                    .unwrap_or(model.len().saturating_sub(1));
                self.model = model;
                *at = times;
                *window = next;
                view.note = None;
            }
        }
    }

    fn reconnect(&mut self, view: &mut View) {
        if let Source::Live {
            endpoint,
            live,
            window,
            recorder,
            last_event,
        } = &mut self.source
        {
            *live = None;
            match source::open(endpoint, *window, recorder.clone())
                .and_then(|(first, c)| Ok((first, c.follow()?)))
            {
                Ok((first, connection)) => {
                    *live = Some(connection);
                    *last_event = Instant::now();
                    self.model.push_event(&first);
                    self.at = self.model.len() - 1;
                    if let Mode::Live { down, .. } = &mut view.mode {
                        *down = None;
                    }
                    view.note = None;
                }
                Err(e) => {
                    if let Mode::Live { down, .. } = &mut view.mode {
                        *down = Some(e.to_string());
                    }
                }
            }
        }
    }
}

fn next_window(current: Duration) -> Duration {
    WINDOWS
        .iter()
        .copied()
        .find(|w| *w > current)
        .unwrap_or(WINDOWS[0])
}

/// Redraws at most this often while nothing happens (the ages of running operations,
/// a stale connection).
const TICK: Duration = Duration::from_millis(250);

fn interactive(mut state: State, mut view: View) -> Result<(), SourceError> {
    // Restores the terminal on a panic too (ratatui's hook).
    let mut terminal = ratatui::init();
    let result = event_loop(&mut terminal, &mut state, &mut view);
    ratatui::restore();
    result.map_err(|e| SourceError::File {
        path: PathBuf::from("/dev/tty"),
        message: format!("the terminal failed: {e}"),
    })
}

/// Whether the key ends the view.
fn handle_key(key: KeyEvent, state: &mut State, view: &mut View) -> bool {
    if key.kind == KeyEventKind::Release {
        return false;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return true;
    }
    if let Some(typing) = &mut view.editing {
        match key.code {
            KeyCode::Enter => {
                view.filter = std::mem::take(typing);
                view.editing = None;
            }
            KeyCode::Esc => {
                view.filter.clear();
                view.editing = None;
            }
            KeyCode::Backspace => {
                typing.pop();
            }
            KeyCode::Char(c) => typing.push(c),
            _ => {}
        }
        view.scroll = 0;
        return false;
    }
    if view.help {
        view.help = false;
        return key.code == KeyCode::Char('q');
    }
    view.note = None;
    let replay = matches!(view.mode, Mode::Replay { .. });
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => return true,
        KeyCode::Char('?') => view.help = true,
        KeyCode::Char('/') => view.editing = Some(view.filter.clone()),
        KeyCode::Char('s') => {
            let i = Column::SORTABLE
                .iter()
                .position(|c| *c == view.sort)
                .unwrap_or(0);
            view.sort = Column::SORTABLE[(i + 1) % Column::SORTABLE.len()];
            view.descending = view.sort != Column::Strategy;
        }
        KeyCode::Char('S') => view.descending = !view.descending,
        KeyCode::Char('w') => state.next_window(view),
        KeyCode::Char('r') => state.reconnect(view),
        KeyCode::Down | KeyCode::Char('j') => view.scroll += 1,
        KeyCode::Up | KeyCode::Char('k') => view.scroll = view.scroll.saturating_sub(1),
        KeyCode::PageDown => view.scroll += 10,
        KeyCode::PageUp => view.scroll = view.scroll.saturating_sub(10),
        KeyCode::Char(' ') if replay => {
            if let Mode::Replay { paused, .. } = &mut view.mode {
                *paused = !*paused;
            }
            let at = state.at;
            state.seek(at);
        }
        KeyCode::Right | KeyCode::Char('l') if replay => {
            pause(view);
            state.seek(state.at + 1);
        }
        KeyCode::Left | KeyCode::Char('h') if replay => {
            pause(view);
            state.seek(state.at.saturating_sub(1));
        }
        KeyCode::Char(']') if replay => state.seek(state.at + 10),
        KeyCode::Char('[') if replay => state.seek(state.at.saturating_sub(10)),
        KeyCode::Home | KeyCode::Char('g') if replay => state.seek(0),
        KeyCode::End | KeyCode::Char('G') if replay => state.seek(usize::MAX),
        KeyCode::Char('+') if replay => {
            if let Mode::Replay { speed, .. } = &mut view.mode {
                *speed = (*speed * 2.0).min(64.0);
            }
        }
        KeyCode::Char('-') if replay => {
            if let Mode::Replay { speed, .. } = &mut view.mode {
                *speed = (*speed / 2.0).max(1.0 / 16.0);
            }
        }
        _ => {}
    }
    false
}

fn pause(view: &mut View) {
    if let Mode::Replay { paused, .. } = &mut view.mode {
        *paused = true;
    }
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    state: &mut State,
    view: &mut View,
) -> std::io::Result<()> {
    let mut dirty = true;
    let mut drawn = Instant::now();
    loop {
        if dirty || drawn.elapsed() >= Duration::from_secs(1) {
            terminal.draw(|screen| view::draw(screen, &state.model, state.at, view))?;
            drawn = Instant::now();
            dirty = false;
        }
        if event::poll(TICK)? {
            match event::read()? {
                Event::Key(key) => {
                    if handle_key(key, state, view) {
                        return Ok(());
                    }
                    dirty = true;
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
        dirty |= state.advance(view);
    }
}
