//! The three ways in: `#[instrument]` (see layer.rs), `#[vidperf::track]`, and manual
//! tracking with `Operation` / `track_operation`.

use std::fmt;

use vidperf::{FieldValue, Operation, OperationOutcome, Resolution, track_operation};

use crate::{block_on, run};

#[derive(Debug, Clone)]
struct Enhanced {
    frames: u64,
    quality: f64,
}

impl OperationOutcome for Enhanced {
    fn frames_processed(&self) -> Option<u64> {
        Some(self.frames)
    }
    fn quality_score(&self) -> Option<f64> {
        Some(self.quality)
    }
    fn input_resolution(&self) -> Option<Resolution> {
        Some(Resolution::new(640, 360))
    }
    fn output_resolution(&self) -> Option<Resolution> {
        Some(Resolution::new(2560, 1440))
    }
    fn segments(&self) -> Option<u64> {
        Some(2)
    }
}

#[derive(Debug)]
struct Refused(&'static str);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl From<std::num::ParseIntError> for Refused {
    fn from(_: std::num::ParseIntError) -> Self {
        Self("not a number")
    }
}

#[vidperf::track(strategy = "vsrm", operation = "enhancement")]
fn enhance(frames: u64) -> Result<Enhanced, Refused> {
    if frames == 0 {
        return Err(Refused("empty clip"));
    }
    Ok(Enhanced {
        frames,
        quality: 0.9,
    })
}

/// `?` inside a tracked function converts through `From`, like anywhere else.
#[vidperf::track(strategy = "seedvr2")]
fn parse_and_enhance(text: &str) -> Result<Enhanced, Refused> {
    let frames: u64 = text.parse()?;
    Ok(Enhanced {
        frames,
        quality: 0.5,
    })
}

#[vidperf::track(strategy = "ditvr", operation = "enhancement", name = "ditvr_async")]
async fn enhance_async(frames: u64) -> Result<Enhanced, Refused> {
    std::future::ready(()).await;
    tracing::info_span!("segment").in_scope(|| {});
    Ok(Enhanced {
        frames,
        quality: 0.7,
    })
}

#[vidperf::track(strategy = "vsrm", operation = "warmup")]
fn returns_unit() {}

struct Engine {
    scale: u32,
}

impl Engine {
    #[vidperf::track(strategy = "vsrm", operation = "enhancement")]
    fn run(&mut self, frames: u64) -> Result<Enhanced, Refused> {
        self.scale += 1;
        Ok(Enhanced {
            frames: frames * u64::from(self.scale),
            quality: 0.8,
        })
    }
}

#[test]
fn track_records_the_outcome() {
    let vidperf = run(|| {
        assert!(enhance(48).is_ok());
        assert!(enhance(0).is_err());
        assert!(parse_and_enhance("12").is_ok());
        assert!(parse_and_enhance("twelve").is_err());
        returns_unit();
        let mut engine = Engine { scale: 1 };
        assert_eq!(engine.run(10).map(|e| e.frames).ok(), Some(20));
    });
    let records = vidperf.stats().records();
    assert_eq!(records.len(), 6);
    let ok = &records[0];
    assert_eq!(
        (ok.operation_type.as_str(), ok.strategy.as_str()),
        ("enhancement", "vsrm")
    );
    assert_eq!(ok.frames_processed, Some(48));
    assert_eq!(ok.segments, Some(2));
    assert_eq!(ok.quality_score, Some(0.9));
    assert_eq!(ok.scale_factor, Some(4.0));
    assert_eq!(
        records[1].error_message.as_deref(),
        Some("refused: empty clip")
    );
    assert_eq!(records[1].frames_processed, None);
    assert_eq!(
        records[2].operation_type, "parse_and_enhance",
        "no operation: the fn name"
    );
    assert_eq!(
        records[3].error_message.as_deref(),
        Some("refused: not a number")
    );
    assert_eq!(records[4].operation_type, "warmup");
    assert!(records[4].success);
    assert_eq!(records[5].frames_processed, Some(20));
}

#[test]
fn track_works_on_async_fns() {
    let vidperf = run(|| {
        let out = block_on(enhance_async(30));
        assert!(out.is_ok());
    });
    let records = vidperf.stats().records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].strategy, "ditvr");
    assert_eq!(records[0].frames_processed, Some(30));
    assert_eq!(records[0].quality_score, Some(0.7));
}

#[test]
fn manual_operation_start_update_finish() {
    let vidperf = run(|| {
        let op = Operation::start("enhancement", "seedvr2")
            .with_metadata("video_path", "in/clip.mp4")
            .with_metadata("quality_tier", "high");
        op.update("frames_processed", 120u32)
            .update("quality_score", 0.93)
            .update("attempt", 2)
            .update("attempt", 3);
        op.finish();

        let op = Operation::start("api_request", "vsrm").with_metadata("job_id", "j-1");
        op.fail("client went away");

        let op = Operation::start("enhancement", "vsrm");
        let result: Result<(), Refused> = Err(Refused("bad resolution"));
        op.finish_with(&result);
    });
    let records = vidperf.stats().records();
    assert_eq!(records.len(), 3);
    let r = &records[0];
    assert_eq!(r.frames_processed, Some(120));
    assert_eq!(r.quality_score, Some(0.93));
    assert_eq!(
        r.metadata["video_path"],
        FieldValue::Str("in/clip.mp4".into())
    );
    assert_eq!(
        r.metadata["attempt"],
        FieldValue::I64(3),
        "a later update replaces"
    );
    assert!(r.success);
    assert_eq!(
        records[1].error_message.as_deref(),
        Some("client went away")
    );
    assert_eq!(records[1].metadata["job_id"], FieldValue::Str("j-1".into()));
    assert_eq!(
        records[2].error_message.as_deref(),
        Some("refused: bad resolution")
    );
}

#[test]
fn dropping_an_operation_during_a_panic_records_failure() {
    let vidperf = run(|| {
        let caught = std::panic::catch_unwind(|| {
            let _op = Operation::start("enhancement", "vsrm");
            panic!("segfault in kernel");
        });
        assert!(caught.is_err());
    });
    let snap = vidperf.snapshot();
    assert_eq!(snap.summary.failures, 1);
    assert_eq!(snap.summary.active_operations, 0);
}

#[test]
fn track_operation_is_the_context_manager() {
    let vidperf = run(|| {
        let ok = track_operation("analysis", "degradation_router", |op| {
            op.update("frames_processed", 96)
                .update("quality_score", 0.8);
            // Spans opened inside are children of the operation.
            tracing::info_span!("estimate_noise").in_scope(|| {});
            Ok::<_, Refused>(0.8)
        });
        assert_eq!(ok.ok(), Some(0.8));
        let err = track_operation("analysis", "degradation_router", |_| {
            Err::<(), _>(Refused("corrupt"))
        });
        assert!(err.is_err());
    });
    let snap = vidperf.snapshot();
    let analysis = &snap.by_operation["analysis"];
    assert_eq!((analysis.count, analysis.failures), (2, 1));
    assert_eq!(analysis.frames_processed_total, 96);
}

#[test]
fn outside_any_subscriber_everything_is_a_no_op() {
    let op = Operation::start("enhancement", "vsrm").with_metadata("k", "v");
    op.update("frames_processed", 1);
    op.finish();
    assert!(enhance(3).is_ok());
}
