//! The layer against a real NVTX injection tool: the fake one from `vidperf-fake-nvml`,
//! loaded through `NVTX_INJECTION64_PATH` exactly as Nsight Systems' is, which records
//! every range with its domain, message, thread and nesting level.
//!
//! NVTX reads the variable once per process, at the first NVTX call: the test runs itself
//! again as a child process with the variable set.

use std::collections::BTreeMap;

use tracing_subscriber::prelude::*;
use vidperf_fake_nvml::{FakeNvtx, NvtxEvent, NvtxKind, nvtx_injection_path};
use vidperf_nvtx::{DOMAIN, NvtxLayer};

#[tracing::instrument(fields(strategy = "seedvr2", operation = "enhancement"))]
fn enhance(frames: u32) {
    for i in 0..frames {
        tracing::info_span!("denoise", frame = i).in_scope(|| {
            tracing::info_span!("kernel").in_scope(|| {});
        });
    }
}

fn by_thread(events: &[NvtxEvent]) -> BTreeMap<u64, Vec<(NvtxKind, String, i32)>> {
    let mut out: BTreeMap<u64, Vec<_>> = BTreeMap::new();
    for e in events {
        out.entry(e.thread)
            .or_default()
            .push((e.kind, e.message.clone(), e.depth));
    }
    out
}

#[test]
fn every_span_is_a_named_nested_range_in_the_vidperf_domain() {
    let path = nvtx_injection_path();
    if std::env::var_os(vidperf_nvtx::INJECTION_PATH_VAR).is_none() {
        // Without a tool there is no layer, and no cost.
        assert_eq!(
            NvtxLayer::attach().map(|_| ()),
            Err(vidperf_nvtx::NotAttached::NoTool)
        );
        assert!(NvtxLayer::if_attached().is_none());
        let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "every_span_is_a_named_nested_range_in_the_vidperf_domain",
            ])
            .env(vidperf_nvtx::INJECTION_PATH_VAR, &path)
            .status()
            .expect("run the test again with the tool");
        assert!(status.success(), "the run with the tool failed: {status}");
        return;
    }
    let layer = NvtxLayer::attach().expect("the fake tool attaches");
    let tool = FakeNvtx::open(&path).expect("the fake tool");
    assert_eq!(tool.initializations(), 1, "NVTX initialised the tool once");

    let subscriber = tracing_subscriber::registry().with(Some(layer));
    tracing::subscriber::with_default(subscriber, || {
        enhance(2);
        // A strategy recorded after the span was created renames its next ranges.
        let span = tracing::info_span!(
            "upscale",
            strategy = tracing::field::Empty,
            operation = tracing::field::Empty
        );
        span.in_scope(|| {});
        span.record("strategy", "vsrm");
        span.record("operation", "enhancement");
        span.in_scope(|| {});
    });

    // Another thread, its own nesting (NVTX push/pop ranges are per thread).
    let subscriber = tracing_subscriber::registry().with(NvtxLayer::if_attached());
    std::thread::spawn(move || {
        tracing::subscriber::with_default(subscriber, || enhance(1));
    })
    .join()
    .expect("thread");

    let events = tool.events();
    assert_eq!(tool.dropped(), 0);
    assert!(
        events.iter().all(|e| e.domain == DOMAIN),
        "every range in the vidperf domain: {events:?}"
    );
    let threads = by_thread(&events);
    assert_eq!(threads.len(), 2, "two threads: {threads:?}");
    let push = |m: &str, d| (NvtxKind::Push, m.to_owned(), d);
    let pop = |m: &str, d| (NvtxKind::Pop, m.to_owned(), d);
    let frame = |v: &mut Vec<_>| {
        v.extend([
            push("denoise", 1),
            push("kernel", 2),
            pop("kernel", 2),
            pop("denoise", 1),
        ]);
    };
    let mut main = vec![push("enhancement seedvr2", 0)];
    frame(&mut main);
    frame(&mut main);
    main.extend([
        pop("enhancement seedvr2", 0),
        push("upscale", 0),
        pop("upscale", 0),
        push("enhancement vsrm", 0),
        pop("enhancement vsrm", 0),
    ]);
    let mut other = vec![push("enhancement seedvr2", 0)];
    frame(&mut other);
    other.push(pop("enhancement seedvr2", 0));
    let mut seen: Vec<_> = threads.into_values().collect();
    seen.sort_by_key(Vec::len);
    assert_eq!(seen, vec![other, main]);

    // A second attach reuses the loaded tool: NVTX initialises a tool once per client.
    assert!(NvtxLayer::if_attached().is_some());
    assert_eq!(tool.initializations(), 1);
}
