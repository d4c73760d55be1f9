//! `install()` with the `nvtx` feature under an NVTX tool (the fake one, loaded through
//! `NVTX_INJECTION64_PATH` as Nsight Systems' is): operations appear as ranges named
//! after their operation type and strategy, and the statistics are unchanged.
#![cfg(feature = "nvtx")]

use vidperf_fake_nvml::{FakeNvtx, NvtxKind, nvtx_injection_path};

#[tracing::instrument(fields(
    strategy = "seedvr2",
    operation = "enhancement",
    frames_processed = 8
))]
fn enhance() {
    tracing::info_span!("decode").in_scope(|| {});
}

#[test]
fn install_adds_nvtx_ranges_when_a_tool_is_attached() {
    let path = nvtx_injection_path();
    if std::env::var_os(vidperf::nvtx::INJECTION_PATH_VAR).is_none() {
        // NVTX reads the variable once per process: run again as a child with it set.
        let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "install_adds_nvtx_ranges_when_a_tool_is_attached",
            ])
            .env(vidperf::nvtx::INJECTION_PATH_VAR, &path)
            .status()
            .expect("run the test again with the tool");
        assert!(status.success(), "the run with the tool failed: {status}");
        return;
    }
    let vidperf = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .install()
        .expect("install");
    enhance();
    enhance();
    let tool = FakeNvtx::open(&path).expect("the fake tool");
    let ranges: Vec<(NvtxKind, String, i32)> = tool
        .events()
        .into_iter()
        .map(|e| (e.kind, e.message, e.depth))
        .collect();
    let one = [
        (NvtxKind::Push, "enhancement seedvr2".to_owned(), 0),
        (NvtxKind::Push, "decode".to_owned(), 1),
        (NvtxKind::Pop, "decode".to_owned(), 1),
        (NvtxKind::Pop, "enhancement seedvr2".to_owned(), 0),
    ];
    assert_eq!(ranges, [one.clone(), one].concat());
    let stats = vidperf.snapshot();
    assert_eq!(stats.by_strategy["seedvr2"].frames_processed_total, 16);
}
