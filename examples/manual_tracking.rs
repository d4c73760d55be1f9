//! Manual tracking, for work that does not fit one function: the original design's
//! `start_operation` / `update_operation` / `finish_operation` and its context manager.
//!
//! ```text
//! cargo run --example manual_tracking
//! ```

// reason: an example program reports on stdout.
#![allow(clippy::print_stdout)]

use vidperf::{Operation, track_operation};

fn process_video(path: &str) -> Result<(u64, f64), String> {
    if path.ends_with(".corrupt") {
        return Err(format!("cannot decode {path}"));
    }
    Ok((240, 0.91))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vidperf = vidperf::init()?;

    for input in ["clips/intro.mp4", "clips/broken.corrupt"] {
        // start_operation(operation_type, strategy, metadata)
        let op = Operation::start("enhancement", "seedvr2")
            .with_metadata("video_path", input)
            .with_metadata("quality_tier", "high");
        match process_video(input) {
            Ok((frames, quality)) => {
                // update_operation(...)
                op.update("frames_processed", frames)
                    .update("quality_score", quality);
                // finish_operation(success=True)
                op.finish();
            }
            // finish_operation(success=False, error_message=...)
            Err(e) => op.fail(e),
        }
    }

    // The context manager: an Err (or a panic) marks the failure.
    let confidence = track_operation("analysis", "degradation_router", |op| {
        op.update("frames_processed", 96)
            .update("quality_score", 0.8);
        Ok::<_, String>(0.8)
    })?;
    println!("router confidence {confidence}");

    for record in vidperf.stats().records() {
        println!(
            "{:<12} {:<20} success={:<5} frames={:?} error={:?} metadata={:?}",
            record.operation_type,
            record.strategy,
            record.success,
            record.frames_processed,
            record.error_message,
            record.metadata,
        );
    }
    Ok(())
}
