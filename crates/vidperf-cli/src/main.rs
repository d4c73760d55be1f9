//! `vidperf compare BASELINE... CURRENT`: did a strategy regress?
//! `vidperf top [URL]`: a service's live view in the terminal, recorded and replayed.
//!
//! Each side is a JSON export (`vidperf-export.json`) or a live service's URL
//! (`http://127.0.0.1:9464`, whose export is fetched). Several baselines (runs of the
//! same code on the same machine) make the run-to-run spread part of the judgement.
//!
//! Exit status: 0 no regression; 1 a regression; 2 bad usage or input (the message
//! names the file or URL and what is wrong); 3 nothing judged — no pair (of those
//! selected) had enough operations on both sides, which is not a pass
//! (`--allow-insufficient` makes it 0).

// reason: a command-line tool writes its results and errors to stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use vidperf_cli::input::{FetchOptions, load};
use vidperf_cli::render;
use vidperf_watch::compare::{CompareConfig, compare_runs};

#[derive(Parser)]
#[command(name = "vidperf", version, about = "vidperf's command-line tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compares CURRENT with BASELINE per operation type and strategy; exits 1 when
    /// anything regressed.
    Compare(CompareArgs),
    /// A service's live view in the terminal: per-strategy rates, latency and resource
    /// peaks, the operations running, the GPUs and the lints; `--record` and
    /// `--replay` keep and play back what it showed.
    Top(TopArgs),
}

#[derive(clap::Args)]
struct TopArgs {
    /// The service (its HTTP API: --serve ADDR / VIDPERF_HTTP_ADDR).
    #[arg(default_value = "http://127.0.0.1:9464", value_name = "URL")]
    url: String,
    /// Bearer token for the stream (default: VIDPERF_HTTP_TOKEN).
    #[arg(long, env = "VIDPERF_HTTP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The statistics' window at start (`w` steps through 1m, 5m, 15m, 1h).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    window: Duration,
    /// Time between the stream's events (250ms to 60s).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Writes the events as they arrive to FILE, for --replay.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    record: Option<std::path::PathBuf>,
    /// Plays FILE back instead of connecting: a recording (--record) or a JSON export
    /// (its records stepped through over --window).
    #[arg(long, value_name = "FILE")]
    replay: Option<std::path::PathBuf>,
    /// Prints one frame as plain text and exits (the first event; with --replay, the
    /// last frame or --seek's).
    #[arg(long)]
    once: bool,
    /// With --replay: the frame to start at (0 = the first).
    #[arg(long, value_name = "N", requires = "replay")]
    seek: Option<usize>,
    /// --once's size, COLUMNSxROWS.
    #[arg(long, default_value = "80x24", value_parser = parse_size)]
    size: (u16, u16),
}

fn parse_size(text: &str) -> Result<(u16, u16), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{text:?}: give COLUMNSxROWS, such as 80x24"))?;
    let w: u16 = w
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: columns must be a number"))?;
    let h: u16 = h
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: rows must be a number"))?;
    if w < 40 || h < 12 {
        return Err(format!("{text:?}: at least 40x12"));
    }
    Ok((w, h))
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Markdown,
}

#[derive(clap::Args)]
struct CompareArgs {
    /// One or more baseline runs, then the run to judge: each a JSON export file or a
    /// service URL (http://host:port). With several baselines a figure must regress
    /// against every one and beyond their own run-to-run spread.
    #[arg(num_args = 2.., required = true, value_name = "BASELINE... CURRENT")]
    runs: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Compare only this operation type (repeatable).
    #[arg(long)]
    operation: Vec<String>,
    /// Compare only this strategy (repeatable).
    #[arg(long)]
    strategy: Vec<String>,
    /// Significance level of the tests.
    #[arg(long)]
    alpha: Option<f64>,
    /// Relative duration change counted as noise (0.02 = 2%).
    #[arg(long)]
    noise: Option<f64>,
    /// Failure-rate increase counted as noise (0.01 = one percentage point).
    #[arg(long)]
    failure_noise: Option<f64>,
    /// Operations needed on each side to judge a pair.
    #[arg(long)]
    min_samples: Option<u64>,
    /// Seed of the bootstrap resampling.
    #[arg(long)]
    seed: Option<u64>,
    /// Bearer token for a service's export route (default: VIDPERF_HTTP_TOKEN).
    #[arg(long, env = "VIDPERF_HTTP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Seconds allowed for fetching from a service.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Exit 0 when no pair had enough operations to be judged (default: exit 3).
    #[arg(long)]
    allow_insufficient: bool,
}

/// What a comparison concluded, as the exit status says it.
enum Outcome {
    Pass,
    Regressed,
    NothingJudged,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Compare(args) => match run(&args) {
            Ok(Outcome::Pass) => ExitCode::SUCCESS,
            Ok(Outcome::Regressed) => ExitCode::from(1),
            Ok(Outcome::NothingJudged) => ExitCode::from(3),
            Err(message) => {
                eprintln!("vidperf compare: {message}");
                ExitCode::from(2)
            }
        },
        Command::Top(args) => match top(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("vidperf top: {message}");
                ExitCode::from(2)
            }
        },
    }
}

fn top(args: &TopArgs) -> Result<(), String> {
    use vidperf_cli::top::{TopOptions, run};
    if !(Duration::from_millis(250)..=Duration::from_secs(60)).contains(&args.interval) {
        return Err(format!(
            "--interval {}: from 250ms to 60s",
            humantime::format_duration(args.interval)
        ));
    }
    if args.window < Duration::from_secs(1) {
        return Err("--window: at least 1s".to_owned());
    }
    let mut options = TopOptions::new(args.url.clone());
    options.token = args.token.clone().filter(|t| !t.is_empty());
    options.interval = args.interval;
    options.window = args.window;
    options.record.clone_from(&args.record);
    options.replay.clone_from(&args.replay);
    options.once = args.once;
    options.seek = args.seek;
    options.size = args.size;
    options.colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    if !args.once && !terminal {
        return Err("the live view needs a terminal; use --once for one frame as text".to_owned());
    }
    run(&options).map_err(|e| e.to_string())
}

fn run(args: &CompareArgs) -> Result<Outcome, String> {
    let mut config = CompareConfig::default();
    if let Some(v) = args.alpha {
        config.alpha = v;
    }
    if let Some(v) = args.noise {
        config.noise = v;
    }
    if let Some(v) = args.failure_noise {
        config.failure_noise = v;
    }
    if let Some(v) = args.min_samples {
        config.min_samples = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    config.validate().map_err(|e| e.to_string())?;
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| format!("--timeout {}: a positive number of seconds", args.timeout))?;
    let mut options = FetchOptions::default();
    options.token = args.token.clone().filter(|t| !t.is_empty());
    options.timeout = timeout;
    let Some((current, baselines)) = args.runs.split_last() else {
        return Err("give one or more baselines and the current run".to_owned());
    };
    let baselines: Vec<_> = baselines
        .iter()
        .map(|b| load(b, &options).map_err(|e| format!("baseline {e}")))
        .collect::<Result<_, _>>()?;
    let current = load(current, &options).map_err(|e| format!("current {e}"))?;
    let keep = |p: &&vidperf_core::stats::PairStatistics| {
        (args.operation.is_empty() || args.operation.contains(&p.operation_type))
            && (args.strategy.is_empty() || args.strategy.contains(&p.strategy))
    };
    let pick = |pairs: &[vidperf_core::stats::PairStatistics]| -> Vec<_> {
        pairs.iter().filter(keep).cloned().collect()
    };
    let picked: Vec<Vec<_>> = baselines.iter().map(|b| pick(&b.summary.pairs)).collect();
    let refs: Vec<&[_]> = picked.iter().map(Vec::as_slice).collect();
    let comparison = compare_runs(&refs, &pick(&current.summary.pairs), &config);
    let (baseline, others) = baselines.split_first().ok_or("no baseline")?;
    let out = match args.format {
        Format::Table => {
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            render::table(&comparison, baseline, &current, colour)
        }
        Format::Markdown => render::markdown(&comparison, baseline, &current),
        Format::Json => {
            render::json(&comparison, baseline, others, &current).map_err(|e| e.to_string())? + "\n"
        }
    };
    print!("{out}");
    Ok(if comparison.regressed() {
        Outcome::Regressed
    } else if comparison.judged() == 0 && !args.allow_insufficient {
        Outcome::NothingJudged
    } else {
        Outcome::Pass
    })
}
