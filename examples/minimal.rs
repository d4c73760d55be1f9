//! The smallest useful setup: `#[instrument]` with the contract fields, one line of
//! initialisation, a statistics query.
//!
//! ```text
//! cargo run --example minimal
//! ```

// reason: an example program reports on stdout.
#![allow(clippy::print_stdout)]

use tracing::{Span, field::Empty, instrument};

#[instrument(skip(frames), fields(strategy = "vsrm", operation = "enhancement",
    frames_processed = Empty, quality_score = Empty))]
fn enhance(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let out: Vec<Vec<u8>> = frames.iter().map(|f| f.repeat(4)).collect(); // "upscale"
    Span::current().record("frames_processed", out.len());
    Span::current().record("quality_score", 0.9);
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vidperf = vidperf::init()?;
    for clip in 0..5 {
        enhance(&vec![vec![clip as u8; 1024]; 24]);
    }
    let stats = vidperf.snapshot();
    let vsrm = &stats.by_strategy["vsrm"];
    println!(
        "vsrm: {} runs, {} frames, {:.0} fps, mean quality {:.2}",
        vsrm.count,
        vsrm.frames_processed_total,
        vsrm.frames_per_second.unwrap_or_default(),
        vsrm.mean_quality_score.unwrap_or_default(),
    );
    Ok(())
}
