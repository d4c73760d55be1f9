//! A small video-enhancement service, instrumented with vidperf: the first thing to run.
//!
//! Synthetic clips (moving patterns, degraded by noise or blur) go through a
//! degradation router (an `analysis` operation) that measures them and picks a strategy;
//! the strategies really upscale the frames on the CPU, each its own way, and score the
//! result against the clean source. Some clips fail for real reasons (a resolution a
//! strategy refuses, a corrupt clip). At the end it prints per-strategy statistics and
//! writes `vidperf-export.json` and `vidperf-export.csv` (into a temporary directory
//! unless `--export-dir` says where).
//!
//! ```text
//! cargo run --release --example pipeline -- [--clips N] [--frames N] [--workers N]
//!     [--serve ADDR] [--export-dir DIR] [--seed N] [--duration SECS] [--rate N]
//!     [--slowdown STRATEGY=FACTOR] [--slowdown-for SECS]
//! ```
//!
//! `--duration` keeps submitting clips for that long (a service under steady load, for
//! dashboards and alerts to watch); `--slowdown seedvr2=1.5` makes that strategy do 1.5
//! times its real work (a regression to detect), for `--slowdown-for` seconds or the
//! whole run. SIGTERM or Ctrl-C stops taking clips, lets the ones in flight finish,
//! then writes the exports and flushes OTLP as at the end of a normal run.
//!
//! The shape of a real service: a frontend opens one `api_request` span per submitted
//! clip and hands the job, with the request's span as its parent, to a pool of worker
//! threads; each job is a `background_job` that routes the clip (`analysis`) and
//! enhances it (`enhancement`, with per-segment child spans for SeedVR2). It shows the
//! three ways in: `#[instrument]` with the contract fields (the router and VSRM),
//! `#[vidperf::track]` (DiTVR) and manual tracking with `Operation` (SeedVR2).

// reason: an example program reports on stdout.
#![allow(clippy::print_stdout)]

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use tracing::{Span, field::Empty, info_span, instrument};
use vidperf::Figure;
use vidperf::{Operation, OperationOutcome, Resolution};

// ---------------------------------------------------------------------------------------
// Command line

/// A small video-enhancement service instrumented with vidperf.
#[derive(Debug, Parser)]
#[command(name = "pipeline", version)]
struct Args {
    /// Clips to submit.
    #[arg(long, default_value_t = 24, value_name = "N")]
    clips: usize,
    /// Frames per clip.
    #[arg(long, default_value_t = 12, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    frames: u16,
    /// Worker threads running background jobs.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Serve the HTTP API (stats, exports, Prometheus /metrics) on this address while
    /// running, and after the run until Ctrl-C / SIGTERM.
    #[arg(long, value_name = "ADDR")]
    serve: Option<SocketAddr>,
    /// Where to write vidperf-export.json and vidperf-export.csv [default: a
    /// `vidperf-pipeline` directory in the system's temporary directory].
    #[arg(long, value_name = "DIR")]
    export_dir: Option<PathBuf>,
    /// Seed of the synthetic clips (same seed, same clips).
    #[arg(long, default_value_t = 7, value_name = "N")]
    seed: u64,
    /// Keep submitting clips for this many seconds instead of submitting `--clips` once.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Clips submitted per second at most (default: as fast as the workers take them).
    #[arg(long, value_name = "N")]
    rate: Option<f64>,
    /// Make one strategy do FACTOR times its real work, e.g. `seedvr2=1.5` (repeatable).
    #[arg(long, value_name = "STRATEGY=FACTOR", value_parser = parse_slowdown)]
    slowdown: Vec<(Route, f64)>,
    /// End the slowdowns after this many seconds (default: they last the whole run).
    #[arg(long, value_name = "SECS")]
    slowdown_for: Option<f64>,
}

fn parse_slowdown(text: &str) -> Result<(Route, f64), String> {
    let (name, factor) = text
        .split_once('=')
        .ok_or_else(|| format!("expected STRATEGY=FACTOR, e.g. seedvr2=1.5, got {text:?}"))?;
    let route = match name {
        "vsrm" => Route::Vsrm,
        "seedvr2" => Route::SeedVr2,
        "ditvr" => Route::DiTvr,
        _ => {
            return Err(format!(
                "unknown strategy {name:?}: expected vsrm, seedvr2 or ditvr"
            ));
        }
    };
    match factor.parse::<f64>() {
        Ok(f) if f.is_finite() && (1.0..=100.0).contains(&f) => Ok((route, f)),
        _ => Err(format!(
            "FACTOR must be a number from 1 to 100, got {factor:?}"
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Frames and clips

/// A grayscale frame.
#[derive(Clone)]
struct Frame {
    width: usize,
    height: usize,
    pixels: Vec<f32>,
}

impl Frame {
    fn at(&self, x: isize, y: isize) -> f32 {
        let x = x.clamp(0, self.width as isize - 1) as usize;
        let y = y.clamp(0, self.height as isize - 1) as usize;
        self.pixels[y * self.width + x]
    }
}

struct Clip {
    id: usize,
    degraded: Vec<Frame>,
    /// The clean frames at twice the resolution: what a perfect upscaler would output.
    reference: Vec<Frame>,
}

/// A small deterministic random generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn pattern(width: usize, height: usize, t: f32) -> Frame {
    let mut pixels = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
            let v = 0.5
                + 0.25 * ((fx * 9.0 + t).sin() * (fy * 7.0 - t * 0.5).cos())
                + 0.2 * ((fx + fy) * 20.0 + t * 2.0).sin();
            pixels.push(v.clamp(0.0, 1.0));
        }
    }
    Frame {
        width,
        height,
        pixels,
    }
}

fn downscale(frame: &Frame) -> Frame {
    let (w, h) = (frame.width / 2, frame.height / 2);
    let mut pixels = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let (x2, y2) = (2 * x as isize, 2 * y as isize);
            let sum = frame.at(x2, y2)
                + frame.at(x2 + 1, y2)
                + frame.at(x2, y2 + 1)
                + frame.at(x2 + 1, y2 + 1);
            pixels.push(sum / 4.0);
        }
    }
    Frame {
        width: w,
        height: h,
        pixels,
    }
}

fn blur(frame: &Frame) -> Frame {
    let mut out = frame.clone();
    for y in 0..frame.height as isize {
        for x in 0..frame.width as isize {
            let mut sum = 0.0;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    sum += frame.at(x + dx, y + dy);
                }
            }
            out.pixels[y as usize * frame.width + x as usize] = sum / 9.0;
        }
    }
    out
}

fn make_clip(id: usize, frames: usize, rng: &mut Rng) -> Clip {
    // Input sizes (the output is twice as large); one size is beyond VSRM's limit.
    const SIZES: [(usize, usize); 4] = [(160, 90), (320, 180), (240, 136), (400, 224)];
    let (w, h) = SIZES[(rng.next() % SIZES.len() as u64) as usize];
    let noise = if rng.unit() < 0.4 { 0.08 } else { 0.01 };
    let blurry = rng.unit() < 0.3;
    let corrupt = rng.unit() < 0.08;
    let mut degraded = Vec::with_capacity(frames);
    let mut reference = Vec::with_capacity(frames);
    for f in 0..frames {
        let clean = pattern(w * 2, h * 2, id as f32 + f as f32 * 0.15);
        let mut low = downscale(&clean);
        if blurry {
            low = blur(&blur(&low));
        }
        for p in &mut low.pixels {
            *p = (*p + (rng.unit() - 0.5) * 2.0 * noise).clamp(0.0, 1.0);
        }
        if corrupt && f == frames / 2 {
            low.pixels.truncate(low.pixels.len() / 3); // a truncated frame
        }
        degraded.push(low);
        reference.push(clean);
    }
    Clip {
        id,
        degraded,
        reference,
    }
}

// ---------------------------------------------------------------------------------------
// Degradation router: an `analysis` operation, instrumented with #[instrument]

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Route {
    Vsrm,
    SeedVr2,
    DiTvr,
}

#[instrument(skip_all, err, fields(strategy = "degradation_router", operation = "analysis", clip = clip.id,
    frames_processed = Empty, quality_score = Empty, noise = Empty, sharpness = Empty, routed_to = Empty))]
fn route(clip: &Clip) -> Result<Route, EnhanceError> {
    // The first intact frame: a corrupt clip may have lost any of them.
    let Some(sample) = clip
        .degraded
        .iter()
        .find(|f| f.pixels.len() == f.width * f.height && f.width > 2 && f.height > 2)
    else {
        return Err(EnhanceError::Corrupt { frame: 0 });
    };
    let mut noise = 0.0f64;
    let mut sharpness = 0.0f64;
    for y in 1..sample.height as isize - 1 {
        for x in 1..sample.width as isize - 1 {
            let c = sample.at(x, y);
            let lap = 4.0 * c
                - sample.at(x - 1, y)
                - sample.at(x + 1, y)
                - sample.at(x, y - 1)
                - sample.at(x, y + 1);
            noise += f64::from(lap.abs());
            sharpness += f64::from((sample.at(x + 1, y) - c).abs());
        }
    }
    let n = ((sample.width - 2) * (sample.height - 2)) as f64;
    let (noise, sharpness) = (noise / n, sharpness / n);
    let route = if noise > 0.1 {
        Route::SeedVr2
    } else if sharpness < 0.011 {
        Route::DiTvr
    } else {
        Route::Vsrm
    };
    let span = Span::current();
    span.record("frames_processed", 1);
    span.record("noise", noise);
    span.record("sharpness", sharpness);
    span.record(
        "quality_score",
        (1.0 - (noise - 0.1).abs() * 2.0).clamp(0.0, 1.0),
    ); // routing confidence
    span.record("routed_to", format!("{route:?}").to_lowercase().as_str());
    Ok(route)
}

// ---------------------------------------------------------------------------------------
// Strategies

#[derive(Debug)]
enum EnhanceError {
    Refused(String),
    Corrupt { frame: usize },
}

impl fmt::Display for EnhanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(why) => write!(f, "refused: {why}"),
            Self::Corrupt { frame } => write!(f, "corrupt clip: frame {frame} is truncated"),
        }
    }
}

impl std::error::Error for EnhanceError {}

struct Enhanced {
    frames: Vec<Frame>,
    input: Resolution,
    quality: f64,
    segments: u64,
}

impl OperationOutcome for Enhanced {
    fn frames_processed(&self) -> Option<u64> {
        Some(self.frames.len() as u64)
    }
    fn segments(&self) -> Option<u64> {
        Some(self.segments)
    }
    fn input_resolution(&self) -> Option<Resolution> {
        Some(self.input)
    }
    fn output_resolution(&self) -> Option<Resolution> {
        self.frames
            .first()
            .map(|f| Resolution::new(f.width as u32, f.height as u32))
    }
    fn quality_score(&self) -> Option<f64> {
        Some(self.quality)
    }
}

fn check(clip: &Clip) -> Result<(), EnhanceError> {
    match clip
        .degraded
        .iter()
        .position(|f| f.pixels.len() != f.width * f.height)
    {
        Some(frame) => Err(EnhanceError::Corrupt { frame }),
        None => Ok(()),
    }
}

fn bilinear(frame: &Frame) -> Frame {
    let (w, h) = (frame.width * 2, frame.height * 2);
    let mut pixels = Vec::with_capacity(w * h);
    for y in 0..h {
        let sy = (y as f32 + 0.5) / 2.0 - 0.5;
        let (y0, ty) = (sy.floor() as isize, sy - sy.floor());
        for x in 0..w {
            let sx = (x as f32 + 0.5) / 2.0 - 0.5;
            let (x0, tx) = (sx.floor() as isize, sx - sx.floor());
            let top = frame.at(x0, y0) * (1.0 - tx) + frame.at(x0 + 1, y0) * tx;
            let bottom = frame.at(x0, y0 + 1) * (1.0 - tx) + frame.at(x0 + 1, y0 + 1) * tx;
            pixels.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    Frame {
        width: w,
        height: h,
        pixels,
    }
}

fn cubic(t: f32) -> [f32; 4] {
    // Catmull-Rom weights.
    let (t2, t3) = (t * t, t * t * t);
    [
        -0.5 * t3 + t2 - 0.5 * t,
        1.5 * t3 - 2.5 * t2 + 1.0,
        -1.5 * t3 + 2.0 * t2 + 0.5 * t,
        0.5 * t3 - 0.5 * t2,
    ]
}

fn bicubic(frame: &Frame) -> Frame {
    let (w, h) = (frame.width * 2, frame.height * 2);
    let mut pixels = Vec::with_capacity(w * h);
    for y in 0..h {
        let sy = (y as f32 + 0.5) / 2.0 - 0.5;
        let (y0, wy) = (sy.floor() as isize, cubic(sy - sy.floor()));
        for x in 0..w {
            let sx = (x as f32 + 0.5) / 2.0 - 0.5;
            let (x0, wx) = (sx.floor() as isize, cubic(sx - sx.floor()));
            let mut v = 0.0;
            for (j, wyj) in wy.iter().enumerate() {
                for (i, wxi) in wx.iter().enumerate() {
                    v += wyj * wxi * frame.at(x0 - 1 + i as isize, y0 - 1 + j as isize);
                }
            }
            pixels.push(v.clamp(0.0, 1.0));
        }
    }
    Frame {
        width: w,
        height: h,
        pixels,
    }
}

fn sharpen(frame: &Frame, amount: f32) -> Frame {
    let soft = blur(frame);
    let mut out = frame.clone();
    for (o, (p, s)) in out
        .pixels
        .iter_mut()
        .zip(frame.pixels.iter().zip(&soft.pixels))
    {
        *o = (p + amount * (p - s)).clamp(0.0, 1.0);
    }
    out
}

fn denoise(frame: &Frame) -> Frame {
    // A 3x3 median: removes noise, keeps edges.
    let mut out = frame.clone();
    for y in 0..frame.height as isize {
        for x in 0..frame.width as isize {
            let mut v = [0.0f32; 9];
            let mut k = 0;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    v[k] = frame.at(x + dx, y + dy);
                    k += 1;
                }
            }
            v.sort_by(f32::total_cmp);
            out.pixels[y as usize * frame.width + x as usize] = v[4];
        }
    }
    out
}

/// PSNR against the clean reference, mapped to 0–1 (50 dB = 1.0).
fn quality(frames: &[Frame], reference: &[Frame]) -> f64 {
    let mut mse = 0.0f64;
    let mut n = 0usize;
    for (a, b) in frames.iter().zip(reference) {
        for (p, q) in a.pixels.iter().zip(&b.pixels) {
            mse += f64::from(p - q).powi(2);
            n += 1;
        }
    }
    let mse = (mse / n.max(1) as f64).max(1e-10);
    let psnr = 10.0 * (1.0 / mse).log10();
    (psnr / 50.0).clamp(0.0, 1.0)
}

/// The `--slowdown` in force: per strategy, how many times its real work it does, until
/// when.
struct Slowdown {
    factors: std::collections::HashMap<Route, f64>,
    until: Option<std::time::Instant>,
}

static SLOWDOWN: std::sync::OnceLock<Slowdown> = std::sync::OnceLock::new();

/// Runs `kernel` over `frames` as `route` does: once per frame, or `factor` times as
/// much work under a slowdown (frame `i` of `n` runs `floor(factor)` times, plus once
/// more for the first `round(frac(factor) × n)` frames), keeping the last result.
fn processed(route: Route, frames: &[Frame], kernel: impl Fn(&Frame) -> Frame) -> Vec<Frame> {
    let factor = SLOWDOWN
        .get()
        .filter(|s| {
            s.until
                .is_none_or(|until| std::time::Instant::now() < until)
        })
        .and_then(|s| s.factors.get(&route).copied())
        .unwrap_or(1.0);
    let extra = ((factor.fract()) * frames.len() as f64).round() as usize;
    frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let runs = factor.trunc() as usize + usize::from(i < extra);
            let mut out = kernel(frame);
            for _ in 1..runs {
                out = std::hint::black_box(kernel(frame));
            }
            out
        })
        .collect()
}

fn input_resolution(clip: &Clip) -> Resolution {
    let f = &clip.degraded[0];
    Resolution::new(f.width as u32, f.height as u32)
}

/// VSRM: fast bilinear upscaling; refuses inputs wider than 256 px.
/// Instrumented with `#[instrument]` and `Span::record`.
#[instrument(skip_all, err, fields(strategy = "vsrm", operation = "enhancement", clip = clip.id,
    frames_processed = Empty, input_width = Empty, input_height = Empty,
    output_width = Empty, output_height = Empty, quality_score = Empty))]
fn enhance_vsrm(clip: &Clip) -> Result<Vec<Frame>, EnhanceError> {
    let span = Span::current();
    let input = input_resolution(clip);
    span.record("input_width", input.width);
    span.record("input_height", input.height);
    if input.width > 256 {
        return Err(EnhanceError::Refused(format!(
            "vsrm supports up to 256 px wide, got {input}"
        )));
    }
    check(clip)?;
    let frames = processed(Route::Vsrm, &clip.degraded, bilinear);
    span.record("frames_processed", frames.len());
    span.record("output_width", frames[0].width);
    span.record("output_height", frames[0].height);
    span.record("quality_score", quality(&frames, &clip.reference));
    Ok(frames)
}

/// SeedVR2: denoise, bicubic and sharpen, in segments of four frames, each segment its
/// own child span. Tracked manually with `Operation`; `frames_total` and the frames done
/// after each segment give its progress while it runs.
fn enhance_seedvr2(clip: &Clip) -> Result<Vec<Frame>, EnhanceError> {
    let op = Operation::start("enhancement", "seedvr2")
        .with_metadata("clip", clip.id)
        .with_metadata("frames_total", clip.degraded.len());
    let input = input_resolution(clip);
    op.update("input_width", input.width)
        .update("input_height", input.height);
    let result = op.in_scope(|| {
        check(clip)?;
        let mut out = Vec::with_capacity(clip.degraded.len());
        let chunks = clip.degraded.chunks(4);
        let segments = chunks.len();
        for (index, chunk) in chunks.enumerate() {
            let _segment = info_span!("segment", index, frames = chunk.len()).entered();
            out.extend(processed(Route::SeedVr2, chunk, |f| {
                sharpen(&bicubic(&denoise(f)), 0.3)
            }));
            op.update("frames_processed", out.len());
        }
        Ok::<_, EnhanceError>((out, segments))
    });
    match result {
        Ok((frames, segments)) => {
            op.record_outcome(&Enhanced {
                quality: quality(&frames, &clip.reference),
                frames: Vec::new(),
                input,
                segments: segments as u64,
            });
            op.update("frames_processed", frames.len())
                .update("output_width", frames[0].width)
                .update("output_height", frames[0].height);
            op.finish();
            Ok(frames)
        }
        Err(e) => {
            op.fail(&e);
            Err(e)
        }
    }
}

/// DiTVR: bicubic plus a strong sharpening pass for blurry inputs; the decorator form.
#[vidperf::track(strategy = "ditvr", operation = "enhancement")]
fn enhance_ditvr(clip: &Clip) -> Result<Enhanced, EnhanceError> {
    check(clip)?;
    let frames = processed(Route::DiTvr, &clip.degraded, |f| {
        sharpen(&sharpen(&bicubic(f), 0.8), 0.4)
    });
    let quality = quality(&frames, &clip.reference);
    Ok(Enhanced {
        frames,
        input: input_resolution(clip),
        quality,
        segments: 1,
    })
}

// ---------------------------------------------------------------------------------------
// The service: a frontend accepts one `api_request` per clip and hands it to a pool of
// workers, each job a `background_job` span whose parent is its request.

struct Job {
    clip: Clip,
    /// The request this job belongs to: its context travels with the job, and it ends
    /// (recording the outcome) when the job is done.
    request: Span,
}

fn run_job(job: Job) -> Result<(), EnhanceError> {
    let Job { clip, request } = job;
    // The job runs the strategy its request asked for ("auto": the router decides).
    let span = info_span!(parent: &request, "background_job", operation = "background_job",
        strategy = "auto", frames_processed = Empty, routed_to = Empty, error = Empty, clip = clip.id);
    let result = span.in_scope(|| {
        let route = route(&clip)?;
        let strategy = format!("{route:?}").to_lowercase();
        span.record("routed_to", strategy.as_str());
        request.record("routed_to", strategy.as_str());
        let result = match route {
            Route::Vsrm => enhance_vsrm(&clip).map(|f| f.len()),
            Route::SeedVr2 => enhance_seedvr2(&clip).map(|f| f.len()),
            Route::DiTvr => enhance_ditvr(&clip).map(|e| e.frames.len()),
        };
        if let Ok(frames) = &result {
            span.record("frames_processed", *frames);
            request.record("frames_processed", *frames);
        }
        result.map(drop)
    });
    if let Err(e) = &result {
        let message = e.to_string();
        span.record("error", message.as_str());
        request.record("error", message.as_str());
    }
    result
}

fn submit(clip: Clip, queue: &std::sync::mpsc::SyncSender<Job>) {
    let request = info_span!(
        "api_request",
        operation = "api_request",
        strategy = "auto",
        job_id = format!("job-{:04}", clip.id).as_str(),
        quality_tier = if clip.id.is_multiple_of(3) {
            "high"
        } else {
            "standard"
        },
        frames_processed = Empty,
        routed_to = Empty,
        error = Empty
    );
    let _ = queue.send(Job { clip, request });
}

fn check_export_dir(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
    let probe = dir.join(format!(".vidperf-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn print_tables(stats: &vidperf::StatsSnapshot) {
    print_table("strategy", &stats.by_strategy);
    println!();
    print_table("operation", &stats.by_operation);
    if let Some(monitor) = &stats
        .health
        .part::<vidperf::monitor::MonitorHealth>("monitor")
    {
        let gpu = match monitor.gpu_reason() {
            Some(reason) => format!("GPU: {reason}"),
            None => format!("GPU: {}", monitor.gpu_devices().join(", ")),
        };
        println!("\nresource monitor: {} samples, {gpu}", monitor.samples);
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn print_table(
    title: &str,
    rows: &std::collections::BTreeMap<String, vidperf::stats::AggregateStats>,
) {
    println!(
        "{:<20} {:>5} {:>8} {:>9} {:>9} {:>9} {:>8} {:>10} {:>10}",
        title, "ops", "success", "p50 ms", "p95 ms", "fps", "quality", "peak RAM", "peak VRAM"
    );
    let mib = |p: Option<&vidperf::stats::PeakStats>| {
        p.as_ref()
            .map_or_else(|| "-".to_owned(), |p| format!("{:.0} MiB", p.max / MIB))
    };
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.2}", v * 1e3));
    for (name, s) in rows {
        let d = s.duration.as_ref();
        println!(
            "{:<20} {:>5} {:>7.0}% {:>9} {:>9} {:>9} {:>8} {:>10} {:>10}",
            name,
            s.count,
            s.success_rate.unwrap_or(0.0) * 100.0,
            ms(d.map(|d| d.p50_seconds)),
            ms(d.map(|d| d.p95_seconds)),
            s.frames_per_second
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")),
            s.mean_quality_score
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}")),
            mib(s.resources.get(Figure::ProcessMemory)),
            mib(s.resources.get(Figure::GpuMemory)),
        );
    }
}

/// Sets `stop` on the first Ctrl-C or SIGTERM (a thread with a small tokio runtime for
/// the signal streams); `stop` is shared with the submitter and the final wait.
fn watch_signals(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{SignalKind, signal};
                    if let Ok(mut term) = signal(SignalKind::terminate()) {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                        return;
                    }
                }
                let _ = tokio::signal::ctrl_c().await;
            });
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        eprintln!("warning: cannot watch for signals: {e}");
    }
}

fn main() -> ExitCode {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let args = Args::parse();
    let export_dir = args
        .export_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("vidperf-pipeline"));
    if let Err(message) = check_export_dir(&export_dir) {
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    let mut builder = vidperf::builder();
    if let Some(addr) = args.serve {
        builder = builder.http_api(addr);
    }
    let vidperf = match builder.install() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: cannot start vidperf: {e}");
            return ExitCode::FAILURE;
        }
    };
    // This program has no log output of its own: show vidperf's startup warnings here.
    for warning in vidperf.warnings() {
        eprintln!("warning: {warning}");
    }
    if vidperf.exports_otlp() {
        let endpoint = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .unwrap_or_default();
        println!("exporting traces and metrics over OTLP to {endpoint}");
    }
    if let Some(addr) = vidperf.http_addr() {
        println!(
            "serving the vidperf API on http://{addr}/ (dashboard), /performance/stats and /metrics"
        );
    }
    if !args.slowdown.is_empty() {
        let _ = SLOWDOWN.set(Slowdown {
            factors: args.slowdown.iter().copied().collect(),
            until: args
                .slowdown_for
                .map(|s| std::time::Instant::now() + Duration::from_secs_f64(s.max(0.0))),
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone());

    // Workers take jobs from a bounded queue; each reports back when done. A job that
    // panics is recorded as failed (its spans close while unwinding) and the worker
    // carries on.
    let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(usize::from(args.workers) * 2);
    let jobs = Arc::new(Mutex::new(jobs));
    let (done_tx, done) = std::sync::mpsc::channel::<bool>();
    let mut workers = Vec::new();
    for i in 0..args.workers {
        let jobs = jobs.clone();
        let done_tx = done_tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || {
                loop {
                    let job = jobs.lock().map(|rx| rx.recv());
                    let Ok(Ok(job)) = job else { break };
                    let ok =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_job(job)))
                            .is_ok_and(|result| result.is_ok());
                    let _ = done_tx.send(ok);
                }
            });
        match spawned {
            Ok(worker) => workers.push(worker),
            Err(e) => {
                eprintln!("error: cannot start a worker thread: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    drop(done_tx);

    let progress = ProgressBar::new(args.clips as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} clips ({elapsed}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    if args.duration.is_some() {
        progress.set_length(0);
    }
    // The frontend: submits `--clips` clips, or keeps submitting for `--duration`, at
    // most `--rate` a second, until a signal stops it; returns how many it submitted.
    let submitted_so_far = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let submitting = Arc::new(AtomicBool::new(true));
    let submitter = {
        let (clips, duration, rate) = (args.clips, args.duration, args.rate);
        let frames = usize::from(args.frames);
        let mut rng = Rng(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (stop, count, submitting) =
            (stop.clone(), submitted_so_far.clone(), submitting.clone());
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let deadline = duration.map(|d| started + Duration::from_secs_f64(d.max(0.0)));
            let mut id = 0;
            while !stop.load(Ordering::SeqCst) {
                let more = match deadline {
                    Some(deadline) => std::time::Instant::now() < deadline,
                    None => id < clips,
                };
                if !more {
                    break;
                }
                if let Some(rate) = rate.filter(|r| *r > 0.0) {
                    let due = started + Duration::from_secs_f64(id as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                        std::thread::sleep(wait.min(Duration::from_millis(100)));
                        continue;
                    }
                }
                submit(make_clip(id, frames, &mut rng), &queue);
                id += 1;
                count.store(id, Ordering::SeqCst);
            }
            submitting.store(false, Ordering::SeqCst);
            id
        })
    };
    let mut finished = 0usize;
    let mut failed = 0usize;
    loop {
        // Read in this order: once submitting is over, the count is final.
        let over = !submitting.load(Ordering::SeqCst);
        if over && finished >= submitted_so_far.load(Ordering::SeqCst) {
            break;
        }
        match done.recv_timeout(Duration::from_millis(100)) {
            Ok(ok) => {
                finished += 1;
                failed += usize::from(!ok);
                if args.duration.is_some() {
                    progress.set_length(finished as u64);
                }
                progress.inc(1);
                progress.set_message(format!("{failed} failed"));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    progress.finish_and_clear();
    let submitted = match submitter.join() {
        Ok(n) => n,
        Err(_) => finished,
    };
    drop(jobs);
    for w in workers {
        let _ = w.join();
    }
    let stopped = stop.load(Ordering::SeqCst);

    let stats = vidperf.snapshot();
    println!(
        "{submitted} clips processed by {} workers, {failed} failed; {} operations recorded{}\n",
        args.workers,
        stats.summary.total_operations,
        if stopped {
            " (stopped by a signal: no more clips were taken, the ones in flight finished)"
        } else {
            ""
        }
    );
    print_tables(&stats);

    if !stopped && let Some(addr) = vidperf.http_addr() {
        println!("\nstill serving on http://{addr} — press Ctrl-C (or send SIGTERM) to stop");
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let exporting = vidperf.exports_otlp();
    if let Err(e) = vidperf.shutdown(Duration::from_secs(5)) {
        eprintln!("warning: {e}");
    }
    if exporting
        && let Some(export) = vidperf
            .snapshot()
            .health
            .part::<vidperf::otlp::ExportHealth>("export")
    {
        println!(
            "\nOTLP: {} spans sent, {} delivered, {} failed, {} dropped",
            export.emitted, export.exported, export.failed, export.dropped
        );
    }
    match vidperf.write_exports(&export_dir) {
        Ok(paths) => {
            println!(
                "\nexports: {} and {}",
                paths.json.display(),
                paths.csv.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
