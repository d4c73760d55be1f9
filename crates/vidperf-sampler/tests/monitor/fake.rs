//! Scripted GPUs: spikes, overlapping windows, errors, hangs, missing pieces.

use std::time::{Duration, Instant};

use vidperf_core::ResourceWindows;
use vidperf_fake_nvml::{FakeNvml, Function, code};
use vidperf_sampler::{GpuStatus, GpuUnavailable, MonitorConfig, NvmlLibrary, ResourceMonitor};

use crate::wait_until;

const GIB: u64 = 1 << 30;
const TOTAL: u64 = 80 * GIB;

fn monitor(fake: &FakeNvml, interval_ms: u64) -> ResourceMonitor {
    let config = MonitorConfig::default()
        .with_interval(Duration::from_millis(interval_ms))
        .with_nvml(NvmlLibrary::Path(fake.path().to_owned()))
        .with_error_backoff(Duration::from_millis(5));
    ResourceMonitor::start(config).expect("monitor starts")
}

/// Holds `used` on device 0 for at least `min`, and until the monitor has read memory
/// at least twice meanwhile, then restores `after`.
fn spike(fake: &FakeNvml, used: u64, min: Duration, after: u64) {
    let start = Instant::now();
    let calls = fake.calls(Function::Memory);
    fake.set_memory(0, used, TOTAL);
    assert!(wait_until(Duration::from_secs(5), || {
        start.elapsed() >= min && fake.calls(Function::Memory) >= calls + 2
    }));
    fake.set_memory(0, after, TOTAL);
    let calls = fake.calls(Function::Memory);
    assert!(wait_until(Duration::from_secs(5), || fake
        .calls(Function::Memory)
        >= calls + 2));
}

#[test]
fn a_five_ms_spike_inside_an_operation_is_reported_exactly() {
    let fake = FakeNvml::new();
    fake.set_memory(0, GIB, TOTAL);
    fake.set_utilization(0, 30);
    let monitor = monitor(&fake, 1);
    assert!(
        matches!(monitor.gpu_status(), GpuStatus::Available { devices, .. } if devices.len() == 1)
    );

    let window = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(10));
    spike(&fake, 3 * GIB + 12_345, Duration::from_millis(5), GIB);
    let peaks = monitor.close(window);
    assert_eq!(peaks.gpu_memory_bytes, Some(3 * GIB + 12_345));
    assert_eq!(peaks.gpu_utilization, Some(0.30));
    assert!(peaks.samples.unwrap_or(0) >= 5);

    // The spike is over: a later window does not see it.
    let window = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(monitor.close(window).gpu_memory_bytes, Some(GIB));
}

#[test]
fn overlapping_operations_each_get_the_peak_of_their_own_window() {
    let fake = FakeNvml::new();
    fake.set_memory(0, GIB, TOTAL);
    let monitor = monitor(&fake, 1);

    let a = monitor.open(Instant::now());
    spike(&fake, 2 * GIB, Duration::from_millis(3), GIB); // inside A only
    let b = monitor.open(Instant::now());
    spike(&fake, 3 * GIB, Duration::from_millis(3), GIB); // inside A and B
    let a_peaks = monitor.close(a);
    spike(&fake, 5 * GIB, Duration::from_millis(3), GIB); // inside B only
    let b_peaks = monitor.close(b);

    assert_eq!(a_peaks.gpu_memory_bytes, Some(3 * GIB));
    assert_eq!(b_peaks.gpu_memory_bytes, Some(5 * GIB));
}

#[test]
fn a_one_ms_operation_still_gets_start_and_end_samples() {
    let fake = FakeNvml::new();
    fake.set_memory(0, 7 * GIB, TOTAL);
    let monitor = monitor(&fake, 50);
    let window = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(1));
    let peaks = monitor.close(window);
    assert!(peaks.samples.unwrap_or(0) >= 1, "{peaks:?}");
    assert_eq!(peaks.gpu_memory_bytes, Some(7 * GIB));
    assert!(peaks.process_memory_bytes.is_some());
}

#[test]
fn gpu_lost_then_back_marks_data_stale_counts_errors_and_resumes() {
    let fake = FakeNvml::new();
    fake.set_memory(0, 2 * GIB, TOTAL);
    let monitor = monitor(&fake, 1);
    let keep_awake = monitor.open(Instant::now());

    fake.set_error(Function::Memory, code::GPU_IS_LOST);
    fake.set_error(Function::Utilization, code::GPU_IS_LOST);
    assert!(wait_until(Duration::from_secs(5), || {
        monitor
            .health()
            .gpu_errors
            .get("gpu_lost")
            .copied()
            .unwrap_or(0)
            >= 3
    }));
    // A window entirely inside the outage: GPU figures absent, never old numbers.
    let lost = monitor.open(Instant::now());
    let before = monitor.health().samples;
    assert!(wait_until(Duration::from_secs(5), || monitor
        .health()
        .samples
        >= before + 3));
    let peaks = monitor.close(lost);
    assert_eq!(
        peaks.gpu_memory_bytes, None,
        "stale GPU data is not reported"
    );
    assert!(peaks.process_memory_bytes.is_some(), "CPU/RAM keep working");
    assert!(monitor.health().running);

    fake.set_error(Function::Memory, code::SUCCESS);
    fake.set_error(Function::Utilization, code::SUCCESS);
    fake.set_memory(0, 4 * GIB, TOTAL);
    let back = monitor.open(Instant::now());
    let calls = fake.calls(Function::Memory);
    assert!(wait_until(Duration::from_secs(10), || fake
        .calls(Function::Memory)
        >= calls + 3));
    assert_eq!(
        monitor.close(back).gpu_memory_bytes,
        Some(4 * GIB),
        "sampling resumed"
    );
    let _ = monitor.close(keep_awake);
}

#[test]
fn a_hung_nvml_call_affects_neither_spans_nor_shutdown() {
    let fake = FakeNvml::new();
    fake.set_memory(0, GIB, TOTAL);
    let monitor = monitor(&fake, 2);
    let outer = monitor.open(Instant::now());
    fake.set_hang_ms(1500);
    let calls = fake.calls(Function::Memory);
    assert!(wait_until(Duration::from_secs(5), || fake
        .calls(Function::Memory)
        > calls));
    // The thread is now blocked inside the driver call.
    let started = Instant::now();
    for _ in 0..1000 {
        let w = monitor.open(Instant::now());
        let _ = monitor.close(w);
    }
    let per_window = started.elapsed() / 1000;
    assert!(
        per_window < Duration::from_millis(5),
        "windows wait on the driver: {per_window:?}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || monitor.health().stale),
        "stale is reported"
    );
    let started = Instant::now();
    let result = monitor.shutdown(Duration::from_millis(100));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(result.is_err(), "shutdown says it timed out");
    fake.set_hang_ms(0);
    let _ = monitor.close(outer);
}

#[test]
fn no_library_means_no_gpu_figures_and_working_ram() {
    let config = MonitorConfig::default()
        .with_nvml(NvmlLibrary::Path("/nonexistent/libnvidia-ml.so".into()));
    let monitor = ResourceMonitor::start(config).expect("starts without a GPU");
    assert!(matches!(
        monitor.gpu_status(),
        GpuStatus::Unavailable(GpuUnavailable::LibraryMissing(_))
    ));
    let w = monitor.open(Instant::now());
    let peaks = monitor.close(w);
    assert_eq!(peaks.gpu_memory_bytes, None);
    assert!(peaks.process_memory_bytes.is_some());
    assert_eq!(monitor.health().gpu_state, "unavailable");
}

#[test]
fn driver_not_loaded_is_reported_once_at_start() {
    let fake = FakeNvml::new();
    fake.set_error(Function::Init, code::DRIVER_NOT_LOADED);
    let monitor = monitor(&fake, 5);
    assert_eq!(
        monitor.gpu_status(),
        &GpuStatus::Unavailable(GpuUnavailable::DriverNotLoaded)
    );
    let reason = monitor.health().gpu_reason.unwrap_or_default();
    assert!(reason.contains("driver not loaded"), "{reason}");
}

#[test]
fn a_missing_nvml_function_is_reported_as_such() {
    let config = MonitorConfig::default().with_nvml(NvmlLibrary::Path(
        vidperf_fake_nvml::library_without_memory_info(),
    ));
    let monitor = ResourceMonitor::start(config).expect("starts");
    assert!(
        matches!(monitor.gpu_status(), GpuStatus::Unavailable(GpuUnavailable::SymbolMissing(s)) if s.contains("nvmlDeviceGetMemoryInfo")),
        "{:?}",
        monitor.gpu_status()
    );
}

#[test]
fn an_unsupported_figure_is_data_not_an_error() {
    let fake = FakeNvml::new();
    fake.set_memory(0, GIB, TOTAL);
    fake.set_error(Function::Utilization, code::NOT_SUPPORTED); // as on a MIG slice
    let monitor = monitor(&fake, 1);
    let GpuStatus::Available { unsupported, .. } = monitor.gpu_status() else {
        panic!("available: {:?}", monitor.gpu_status());
    };
    assert_eq!(unsupported, &vec!["device 0: utilization".to_owned()]);
    let w = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(5));
    let peaks = monitor.close(w);
    assert_eq!(peaks.gpu_utilization, None);
    assert_eq!(peaks.gpu_memory_bytes, Some(GIB));
    assert!(
        monitor.health().gpu_errors.is_empty(),
        "not counted as errors"
    );
}

#[test]
fn the_process_list_is_queried_at_most_once_a_second() {
    let fake = FakeNvml::new();
    fake.set_memory(0, 3 * GIB, TOTAL);
    fake.set_process(0, 0, 4_000_000, GIB); // another process
    fake.set_process(0, 1, std::process::id(), 512 << 20);
    let monitor = monitor(&fake, 1);
    let w = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(300));
    let peaks = monitor.close(w);
    assert_eq!(peaks.gpu_process_memory_bytes, Some(512 << 20));
    assert!(fake.calls(Function::Memory) >= 50, "sampling ran");
    assert!(
        fake.calls(Function::Processes) <= 2,
        "{} process-list calls in 300 ms",
        fake.calls(Function::Processes)
    );
}

#[test]
fn every_gpu_is_sampled_with_per_device_peaks() {
    let fake = FakeNvml::new();
    fake.set_device_count(3);
    for (dev, used, util) in [(0, GIB, 10), (1, 6 * GIB, 90), (2, 2 * GIB, 40)] {
        fake.set_memory(dev, used, TOTAL);
        fake.set_utilization(dev, util);
    }
    let monitor = monitor(&fake, 1);
    let w = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(5));
    let peaks = monitor.close(w);
    assert_eq!(
        peaks.gpu_memory_bytes,
        Some(6 * GIB),
        "the maximum over devices"
    );
    assert_eq!(peaks.gpu_utilization, Some(0.9));
    let per_device: Vec<_> = peaks
        .devices
        .iter()
        .map(|d| (d.index, d.memory_bytes, d.utilization))
        .collect();
    assert_eq!(
        per_device,
        vec![
            (0, Some(GIB), Some(0.1)),
            (1, Some(6 * GIB), Some(0.9)),
            (2, Some(2 * GIB), Some(0.4))
        ]
    );
}

#[test]
fn the_thread_parks_when_idle_and_wakes_for_an_operation() {
    let fake = FakeNvml::new();
    let config = MonitorConfig::default()
        .with_interval(Duration::from_millis(1))
        .with_park_after(Duration::from_millis(20))
        .with_nvml(NvmlLibrary::Path(fake.path().to_owned()));
    let monitor = ResourceMonitor::start(config).expect("starts");
    assert!(wait_until(Duration::from_secs(5), || monitor
        .health()
        .parked));
    let calls = fake.calls(Function::Memory);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        fake.calls(Function::Memory),
        calls,
        "no sampling while parked"
    );
    let w = monitor.open(Instant::now());
    assert!(wait_until(Duration::from_secs(5), || fake
        .calls(Function::Memory)
        >= calls + 3));
    assert!(!monitor.health().parked);
    let peaks = monitor.close(w);
    assert!(peaks.samples.unwrap_or(0) >= 1);
    monitor
        .shutdown(Duration::from_secs(1))
        .expect("clean shutdown");
    assert!(!monitor.health().running);
}

/// At the default interval (10 ms), a 20 ms VRAM spike inside a 300 ms operation falls
/// on a sample every time: 20 runs. The spike is timed by the clock alone (not by the
/// fake's call count), as an allocation in a real operation would be.
#[test]
fn a_twenty_ms_spike_in_a_300_ms_operation_is_caught_every_time() {
    let fake = FakeNvml::new();
    fake.set_memory(0, GIB, TOTAL);
    let monitor = ResourceMonitor::start(
        MonitorConfig::default().with_nvml(NvmlLibrary::Path(fake.path().to_owned())),
    )
    .expect("monitor starts");
    let mut caught = 0;
    for run in 0..20u64 {
        let spike_bytes = 4 * GIB + run;
        let window = monitor.open(Instant::now());
        std::thread::sleep(Duration::from_millis(140));
        fake.set_memory(0, spike_bytes, TOTAL);
        std::thread::sleep(Duration::from_millis(20));
        fake.set_memory(0, GIB, TOTAL);
        std::thread::sleep(Duration::from_millis(140));
        let peaks = monitor.close(window);
        if peaks.gpu_memory_bytes == Some(spike_bytes) {
            caught += 1;
        }
    }
    assert_eq!(caught, 20, "the spike was caught in {caught} of 20 runs");
}

/// An operation that opens after a quiet spell asks for a sample of its own, taken on
/// the monitor's thread: a 5 ms operation opened 5 ms after the last sample (interval
/// 50 ms, so the next periodic one is ~45 ms away) sees the value of its own moment.
#[test]
fn an_operation_after_a_quiet_spell_gets_a_sample_of_its_own() {
    let fake = FakeNvml::new();
    fake.set_memory(0, GIB, TOTAL);
    let monitor = monitor(&fake, 50);
    let mut own = 0;
    for run in 0..10u64 {
        // Just after a periodic sample, so the next is ~50 ms away.
        let calls = fake.calls(Function::Memory);
        assert!(wait_until(Duration::from_secs(5), || fake
            .calls(Function::Memory)
            > calls));
        std::thread::sleep(Duration::from_millis(5));
        let value = 2 * GIB + run;
        fake.set_memory(0, value, TOTAL);
        let requested = monitor.samples_on_request();
        let window = monitor.open(Instant::now());
        std::thread::sleep(Duration::from_millis(5));
        let peaks = monitor.close(window);
        assert!(peaks.samples.unwrap_or(0) >= 1, "{peaks:?}");
        if peaks.gpu_memory_bytes == Some(value) && monitor.samples_on_request() > requested {
            own += 1;
        }
        fake.set_memory(0, GIB, TOTAL);
    }
    // Each such operation got its own sample; on a loaded machine the monitor may be
    // late for one.
    assert!(own >= 9, "{own} of 10 operations saw their own moment");
}
