//! Drawing one frame: the header, the strategy table, the GPUs, the operations
//! running, the lints and the key line — and the help popup over them.

use std::time::SystemTime;

use ratatui::Frame as Screen;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState};

use super::model::{Frame, Model, Running, Severity, StrategyRow};

/// A column of the strategy table, which is also a sort key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// The strategy's name.
    Strategy,
    /// Operations per second.
    Rate,
    /// Median duration.
    P50,
    /// 95th percentile duration.
    P95,
    /// 99th percentile duration.
    P99,
    /// Failed, percent.
    Failed,
    /// Cancelled, percent.
    Cancelled,
    /// Frames per second.
    Fps,
    /// VRAM peak.
    Vram,
    /// GPU utilization peak.
    Gpu,
    /// Energy per frame.
    Energy,
    /// p95 over the last frames.
    P95Trend,
    /// Rate over the last frames.
    RateTrend,
}

impl Column {
    /// The sort keys, in the order `s` steps through them.
    pub const SORTABLE: [Column; 11] = [
        Column::Strategy,
        Column::Rate,
        Column::P50,
        Column::P95,
        Column::P99,
        Column::Failed,
        Column::Cancelled,
        Column::Fps,
        Column::Vram,
        Column::Gpu,
        Column::Energy,
    ];

    /// Shown first to last as the width allows.
    const BY_PRIORITY: [Column; 13] = [
        Column::Strategy,
        Column::Rate,
        Column::P95,
        Column::Failed,
        Column::P50,
        Column::Fps,
        Column::Vram,
        Column::Gpu,
        Column::P95Trend,
        Column::P99,
        Column::Cancelled,
        Column::RateTrend,
        Column::Energy,
    ];

    /// In table order.
    const ORDER: [Column; 13] = [
        Column::Strategy,
        Column::Rate,
        Column::RateTrend,
        Column::P50,
        Column::P95,
        Column::P99,
        Column::P95Trend,
        Column::Failed,
        Column::Cancelled,
        Column::Fps,
        Column::Vram,
        Column::Gpu,
        Column::Energy,
    ];

    /// The column's heading.
    pub fn title(self) -> &'static str {
        match self {
            Column::Strategy => "strategy",
            Column::Rate => "rate/s",
            Column::P50 => "p50",
            Column::P95 => "p95",
            Column::P99 => "p99",
            Column::Failed => "fail%",
            Column::Cancelled => "canc%",
            Column::Fps => "fps",
            Column::Vram => "vram",
            Column::Gpu => "gpu%",
            Column::Energy => "J/frame",
            Column::P95Trend => "p95 trend",
            Column::RateTrend => "rate trend",
        }
    }

    fn width(self) -> u16 {
        match self {
            Column::Strategy => 8,
            Column::Rate | Column::P50 | Column::P95 | Column::P99 | Column::Fps => 7,
            Column::Failed | Column::Cancelled | Column::Gpu => 5,
            Column::Vram => 6,
            Column::Energy => 7,
            Column::P95Trend | Column::RateTrend => TREND,
        }
    }

    /// The figure sorted by (`None` for the name).
    fn key(self, r: &StrategyRow) -> Option<f64> {
        match self {
            Column::Strategy | Column::P95Trend | Column::RateTrend => None,
            Column::Rate => Some(r.rate),
            Column::P50 => r.p50,
            Column::P95 => r.p95,
            Column::P99 => r.p99,
            Column::Failed => r.failure_pct,
            Column::Cancelled => r.cancelled_pct,
            Column::Fps => r.fps,
            Column::Vram => r.vram_bytes,
            Column::Gpu => r.gpu_util,
            Column::Energy => r.energy_per_frame,
        }
    }
}

/// Frames a trend covers (one character each).
const TREND: u16 = 10;

/// Where the frames come from, as the header says it.
#[derive(Clone, Debug)]
pub enum Mode {
    /// A service's stream.
    Live {
        /// The service.
        url: String,
        /// Why the connection is down, while it is.
        down: Option<String>,
        /// Seconds since the last event, when that is long.
        stale: Option<f64>,
    },
    /// A file played back.
    Replay {
        /// What the file is.
        what: String,
        /// Whether playing is paused.
        paused: bool,
        /// Playback speed.
        speed: f64,
    },
}

/// What the user chose: sort, filter, help, scroll.
#[derive(Clone, Debug)]
pub struct View {
    /// The sort key.
    pub sort: Column,
    /// Highest first.
    pub descending: bool,
    /// Strategies shown: those whose name contains it (case-insensitive).
    pub filter: String,
    /// The filter being typed, while `/` is open.
    pub editing: Option<String>,
    /// Whether the help popup is open.
    pub help: bool,
    /// Colours on.
    pub colour: bool,
    /// The first table row shown.
    pub scroll: usize,
    /// Where the frames come from.
    pub mode: Mode,
    /// A message for the key line (a failed window change, a recording error).
    pub note: Option<String>,
    /// Recording to this file.
    pub recording: Option<String>,
}

impl View {
    /// The default view: by rate, highest first.
    pub fn new(mode: Mode, colour: bool) -> Self {
        Self {
            sort: Column::Rate,
            descending: true,
            filter: String::new(),
            editing: None,
            help: false,
            colour,
            scroll: 0,
            mode,
            note: None,
            recording: None,
        }
    }

    fn style(&self, style: Style) -> Style {
        if self.colour { style } else { Style::default() }
    }

    /// The filter in effect (the one being typed, while typing).
    fn active_filter(&self) -> &str {
        self.editing.as_deref().unwrap_or(&self.filter)
    }

    /// The rows shown, filtered and sorted.
    pub fn rows<'a>(&self, frame: &'a Frame) -> Vec<&'a StrategyRow> {
        let needle = self.active_filter().to_lowercase();
        let mut rows: Vec<&StrategyRow> = frame
            .rows
            .iter()
            .filter(|r| needle.is_empty() || r.name.to_lowercase().contains(&needle))
            .collect();
        let sort = self.sort;
        rows.sort_by(|a, b| {
            let order = match (sort.key(a), sort.key(b)) {
                (None, None) if sort == Column::Strategy => a.name.cmp(&b.name),
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Greater,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (None, None) => std::cmp::Ordering::Equal,
            };
            let order = if self.descending {
                order.reverse()
            } else {
                order
            };
            order.then_with(|| a.name.cmp(&b.name))
        });
        rows
    }
}

/// A running operation's progress — `▕███▒▒▒▒▒▏ 12/48 ` — or nothing when unknown.
pub fn progress(r: &Running) -> String {
    let (Some((done, total)), Some(fraction)) = (r.progress, r.fraction()) else {
        return String::new();
    };
    const CELLS: usize = 8;
    let full = ((fraction * CELLS as f64).round() as usize).min(CELLS);
    format!(
        "▕{}{}▏ {done}/{total}  ",
        "█".repeat(full),
        "░".repeat(CELLS - full)
    )
}

/// Seconds as the table shows them: `850µs`, `12ms`, `3.41s`, `12.3s`, `4m05s`.
pub fn secs(s: f64) -> String {
    if !s.is_finite() {
        "-".to_owned()
    } else if s < 1e-3 {
        format!("{:.0}µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.0}ms", s * 1e3)
    } else if s < 10.0 {
        format!("{s:.2}s")
    } else if s < 100.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{:.1}h", s / 3600.0)
    }
}

/// A window: `1m`, `5m`, `1h`, `90s`.
pub fn window(s: f64) -> String {
    let whole = s.round() as u64;
    if whole > 0 && whole.is_multiple_of(3600) {
        format!("{}h", whole / 3600)
    } else if whole > 0 && whole.is_multiple_of(60) {
        format!("{}m", whole / 60)
    } else {
        format!("{whole}s")
    }
}

fn num(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn bytes(b: f64) -> String {
    let gib = b / f64::from(1u32 << 30);
    if gib >= 100.0 {
        format!("{gib:.0}G")
    } else if gib >= 1.0 {
        format!("{gib:.1}G")
    } else {
        format!("{:.0}M", b / f64::from(1u32 << 20))
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_owned(), f)
}

/// `values` as a one-line bar chart, one character each, scaled from their lowest to
/// their highest (a trend shows change; the figure itself is in its column). Values
/// all alike sit in the middle.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let max = finite.clone().fold(f64::NEG_INFINITY, f64::max);
    let min = finite.fold(f64::INFINITY, f64::min);
    values
        .iter()
        .map(|v| {
            if !v.is_finite() {
                ' '
            } else if max - min <= max.abs() * 1e-9 {
                BARS[3]
            } else {
                BARS[(((v - min) / (max - min)) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

fn cell(column: Column, r: &StrategyRow, model: &Model, at: usize) -> String {
    match column {
        Column::Strategy => r.name.clone(),
        Column::Rate => num(r.rate),
        Column::P50 => opt(r.p50, secs),
        Column::P95 => opt(r.p95, secs),
        Column::P99 => opt(r.p99, secs),
        Column::Failed => opt(r.failure_pct, |p| format!("{p:.1}")),
        Column::Cancelled => opt(r.cancelled_pct, |p| format!("{p:.1}")),
        Column::Fps => opt(r.fps, num),
        Column::Vram => opt(r.vram_bytes, bytes),
        Column::Gpu => opt(r.gpu_util, |u| format!("{:.0}", u * 100.0)),
        Column::Energy => opt(r.energy_per_frame, |j| format!("{}J", num(j))),
        Column::P95Trend => sparkline(&model.history(&r.name, at, TREND as usize, |r| r.p95)),
        Column::RateTrend => {
            sparkline(&model.history(&r.name, at, TREND as usize, |r| Some(r.rate)))
        }
    }
}

/// The columns that fit `width`, in table order, and the strategy column's width.
fn columns(width: u16, names: u16) -> (Vec<Column>, u16) {
    let name_width = names.clamp(Column::Strategy.width(), 24);
    let mut used = 0u16;
    let mut chosen = Vec::new();
    for c in Column::BY_PRIORITY {
        let w = if c == Column::Strategy {
            name_width
        } else {
            c.width()
        } + 1;
        if used + w <= width {
            used += w;
            chosen.push(c);
        }
    }
    let shown = Column::ORDER
        .iter()
        .copied()
        .filter(|c| chosen.contains(c))
        .collect();
    (shown, name_width)
}

fn clock(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    text.get(11..19).unwrap_or(&text).to_owned()
}

fn header(frame: Option<&Frame>, position: usize, total: usize, view: &View) -> Line<'static> {
    let bold = view.style(Style::default().add_modifier(Modifier::BOLD));
    let mut spans = vec![Span::styled("vidperf top", bold), Span::raw("  ")];
    if view.recording.is_some() {
        spans.push(Span::styled(
            "● REC  ",
            view.style(Style::default().fg(Color::Red)),
        ));
    }
    match &view.mode {
        Mode::Live { url, down, stale } => {
            spans.push(Span::raw(
                url.strip_prefix("http://").unwrap_or(url).to_owned(),
            ));
            if let Some(why) = down {
                spans.push(Span::styled(
                    format!("  DOWN: {why}"),
                    view.style(Style::default().fg(Color::Red)),
                ));
            } else if let Some(s) = stale {
                spans.push(Span::styled(
                    format!("  no event for {s:.0}s"),
                    view.style(Style::default().fg(Color::Yellow)),
                ));
            }
        }
        Mode::Replay { paused, speed, .. } => {
            spans.push(Span::styled(
                format!(
                    "REPLAY {}/{} {}{}",
                    position + 1,
                    total,
                    if *paused { "paused" } else { "playing" },
                    if (*speed - 1.0).abs() > 1e-9 {
                        format!(" x{speed}")
                    } else {
                        String::new()
                    }
                ),
                view.style(Style::default().fg(Color::Cyan)),
            ));
        }
    }
    if let Some(f) = frame {
        spans.push(Span::raw(format!(
            "  #{} {} · {} · {}/s · {} running",
            f.sequence,
            clock(f.generated_at),
            window(f.window_seconds),
            num(f.total_rate),
            f.running_count
        )));
    }
    Line::from(spans)
}

fn section(title: String, view: &View) -> Block<'static> {
    Block::default()
        .borders(Borders::TOP)
        .title(Span::styled(
            title,
            view.style(Style::default().add_modifier(Modifier::BOLD)),
        ))
        .border_style(view.style(Style::default().fg(Color::DarkGray)))
}

fn gpu_lines(frame: &Frame, view: &View) -> Vec<Line<'static>> {
    if frame.gpus.is_empty() {
        return vec![Line::from(Span::styled(
            frame
                .gpu_note
                .clone()
                .unwrap_or_else(|| "no GPU".to_owned()),
            view.style(Style::default().fg(Color::DarkGray)),
        ))];
    }
    frame
        .gpus
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let memory = match (g.memory_used, g.memory_total) {
                (Some(u), Some(t)) if t > 0.0 => {
                    format!("mem {}/{} {:.0}%", bytes(u), bytes(t), 100.0 * u / t)
                }
                (Some(u), _) => format!("mem {}", bytes(u)),
                _ => "mem -".to_owned(),
            };
            let mut parts = vec![
                format!("{i}"),
                g.name.clone().unwrap_or_default(),
                memory,
                format!(
                    "util {}",
                    opt(g.utilization, |u| format!("{:.0}%", u * 100.0))
                ),
            ];
            if let Some(d) = g.decoder {
                parts.push(format!("nvdec {:.0}%", d * 100.0));
            }
            if let Some(e) = g.encoder {
                parts.push(format!("nvenc {:.0}%", e * 100.0));
            }
            if let Some(w) = g.power_watts {
                parts.push(format!("{w:.0} W"));
            }
            parts.retain(|p| !p.is_empty());
            Line::from(parts.join("  "))
        })
        .collect()
}

/// Lines of each pane below the table at most.
const PANE_LINES: usize = 4;

/// Draws `model`'s frame `at` as `view` says.
pub fn draw(screen: &mut Screen<'_>, model: &Model, at: usize, view: &View) {
    let area = screen.area();
    let frame = model.frame(at);
    let running = frame.map_or(0, |f| f.running.len().clamp(1, PANE_LINES - 1));
    let lints = frame.map_or(0, |f| f.lints.len().clamp(1, PANE_LINES));
    let gpus = frame.map_or(1, |f| f.gpus.len().clamp(1, 2));
    let [top, table, gpu, run, lint, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(1 + gpus as u16),
        Constraint::Length(1 + running as u16),
        Constraint::Length(1 + lints as u16),
        Constraint::Length(1),
    ])
    .areas(area);
    screen.render_widget(Paragraph::new(header(frame, at, model.len(), view)), top);
    let Some(frame) = frame else {
        screen.render_widget(Paragraph::new("waiting for the first event…"), table);
        draw_keys(screen, keys, view);
        return;
    };
    draw_table(screen, table, model, at, frame, view);
    screen.render_widget(
        Paragraph::new(gpu_lines(frame, view)).block(section(" GPU ".to_owned(), view)),
        gpu,
    );
    let lines: Vec<Line<'static>> = if frame.running.is_empty() {
        vec![Line::from("none")]
    } else {
        frame
            .running
            .iter()
            .take(running)
            .map(|r| {
                Line::from(format!(
                    "{:>7}  {}/{}  {}trace {}",
                    secs(r.age_seconds),
                    r.operation,
                    r.strategy,
                    progress(r),
                    r.trace_id.get(..8).unwrap_or(&r.trace_id)
                ))
            })
            .collect()
    };
    let more = frame.running_count.saturating_sub(running as u64);
    let title = if more > 0 {
        format!(
            " Running {} (oldest first, {more} more) ",
            frame.running_count
        )
    } else {
        format!(" Running {} ", frame.running_count)
    };
    screen.render_widget(Paragraph::new(lines).block(section(title, view)), run);
    let mut sorted: Vec<_> = frame.lints.iter().collect();
    sorted.sort_by_key(|l| l.severity);
    let lines: Vec<Line<'static>> = if sorted.is_empty() {
        vec![Line::from(Span::styled(
            "no findings",
            view.style(Style::default().fg(Color::Green)),
        ))]
    } else {
        sorted
            .iter()
            .take(lints)
            .map(|l| {
                let (mark, colour) = match l.severity {
                    Severity::Error => ("✗", Color::Red),
                    Severity::Warning => ("!", Color::Yellow),
                };
                Line::from(vec![
                    Span::styled(
                        format!("{mark} {} ", l.kind),
                        view.style(Style::default().fg(colour).add_modifier(Modifier::BOLD)),
                    ),
                    Span::raw(l.reason.clone()),
                ])
            })
            .collect()
    };
    let title = if sorted.len() > lints {
        format!(" Lints {} ({} more) ", sorted.len(), sorted.len() - lints)
    } else {
        format!(" Lints {} ", sorted.len())
    };
    screen.render_widget(Paragraph::new(lines).block(section(title, view)), lint);
    draw_keys(screen, keys, view);
    if view.help {
        draw_help(screen, area, view);
    }
}

fn draw_table(
    screen: &mut Screen<'_>,
    area: Rect,
    model: &Model,
    at: usize,
    frame: &Frame,
    view: &View,
) {
    let rows = view.rows(frame);
    let longest = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0);
    let (shown, name_width) = columns(area.width, u16::try_from(longest).unwrap_or(u16::MAX));
    let heading = Row::new(shown.iter().map(|c| {
        let mut title = c.title().to_owned();
        if *c == view.sort {
            title.push(if view.descending { '↓' } else { '↑' });
        }
        Cell::from(title)
    }))
    .style(
        view.style(
            Style::default()
                .add_modifier(Modifier::BOLD)
                .add_modifier(Modifier::REVERSED),
        ),
    );
    let visible = usize::from(area.height.saturating_sub(1));
    let scroll = view.scroll.min(rows.len().saturating_sub(visible));
    let body: Vec<Row<'_>> = rows
        .iter()
        .skip(scroll)
        .take(visible)
        .map(|r| {
            let failing = r.failure_pct.is_some_and(|p| p > 0.0);
            Row::new(shown.iter().map(|c| {
                let text = cell(*c, r, model, at);
                let style = match c {
                    Column::Failed if failing => view.style(Style::default().fg(Color::Red)),
                    Column::P95Trend | Column::RateTrend => {
                        view.style(Style::default().fg(Color::Cyan))
                    }
                    _ => Style::default(),
                };
                Cell::from(text).style(style)
            }))
        })
        .collect();
    let widths: Vec<Constraint> = shown
        .iter()
        .map(|c| {
            Constraint::Length(if *c == Column::Strategy {
                name_width
            } else {
                c.width()
            })
        })
        .collect();
    let table = Table::new(body, widths).header(heading).column_spacing(1);
    let mut state = TableState::default();
    screen.render_stateful_widget(table, area, &mut state);
    if rows.len() > visible + scroll || scroll > 0 {
        let note = format!(
            " {}-{} of {} ",
            scroll + 1,
            (scroll + visible).min(rows.len()),
            rows.len()
        );
        let width = u16::try_from(note.chars().count())
            .unwrap_or(0)
            .min(area.width);
        let corner = Rect {
            x: area.x + area.width - width,
            y: area.y + area.height - 1,
            width,
            height: 1,
        };
        screen.render_widget(
            Paragraph::new(note).style(view.style(Style::default().fg(Color::DarkGray))),
            corner,
        );
    }
}

fn draw_keys(screen: &mut Screen<'_>, area: Rect, view: &View) {
    let dim = view.style(Style::default().fg(Color::DarkGray));
    let line = if let Some(typing) = &view.editing {
        Line::from(vec![
            Span::styled(
                "filter: ",
                view.style(Style::default().add_modifier(Modifier::BOLD)),
            ),
            Span::raw(format!("{typing}_")),
            Span::styled("  enter keeps, esc clears", dim),
        ])
    } else if let Some(note) = &view.note {
        Line::from(Span::styled(
            note.clone(),
            view.style(Style::default().fg(Color::Yellow)),
        ))
    } else {
        let mut keys = format!(
            "q quit  ? help  s sort:{}{}  / filter{}  w window",
            view.sort.title(),
            if view.descending { '↓' } else { '↑' },
            if view.filter.is_empty() {
                String::new()
            } else {
                format!(":{}", view.filter)
            }
        );
        if matches!(view.mode, Mode::Replay { .. }) {
            keys.push_str("  space pause  ←→ step");
        }
        Line::from(Span::styled(keys, dim))
    };
    screen.render_widget(Paragraph::new(line), area);
}

/// The keys, as the help popup lists them.
pub const HELP: [(&str, &str); 14] = [
    ("q, esc, ctrl-c", "quit"),
    ("?", "this help (any key closes it)"),
    ("s / S", "sort by the next column / reverse the order"),
    ("/", "filter strategies by name (enter keeps, esc clears)"),
    ("w", "next window: 1m, 5m, 15m, 1h"),
    ("↑ ↓  j k", "scroll the table"),
    ("PgUp PgDn", "scroll a page"),
    ("r", "reconnect now (live)"),
    ("space", "pause / play (replay)"),
    ("← →  h l", "step one frame back / on (replay)"),
    ("[ ]", "seek ten frames back / on (replay)"),
    ("home end  g G", "first / last frame (replay)"),
    ("+ -", "play faster / slower (replay)"),
    ("", "NO_COLOR=1 turns colours off"),
];

fn draw_help(screen: &mut Screen<'_>, area: Rect, view: &View) {
    let width = area.width.min(66);
    let height = area.height.min(HELP.len() as u16 + 2);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line<'static>> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:>14}  "),
                    view.style(Style::default().add_modifier(Modifier::BOLD)),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    screen.render_widget(Clear, popup);
    screen.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" keys ")),
        popup,
    );
}
