//! Scripted GPUs: spikes, overlapping windows, errors, hangs, missing pieces.

use std::time::{Duration, Instant};

use vidperf_core::{Figure, ResourceWindows};
use vidperf_fake_nvml::{FakeNvml, Function, ProcessSample, code, now_us};
use vidperf_sampler::{
    ErrorKind, GpuStatus, GpuUnavailable, MonitorConfig, NvmlLibrary, ResourceMonitor,
};

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
    let peaks = monitor.close(window, Instant::now());
    assert_eq!(peaks.bytes(Figure::GpuMemory), Some(3 * GIB + 12_345));
    assert_eq!(peaks.get(Figure::GpuUtilization), Some(0.30));
    assert!(peaks.samples.unwrap_or(0) >= 5);

    // The spike is over: a later window does not see it.
    let window = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(
        monitor
            .close(window, Instant::now())
            .bytes(Figure::GpuMemory),
        Some(GIB)
    );
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
    let a_peaks = monitor.close(a, Instant::now());
    spike(&fake, 5 * GIB, Duration::from_millis(3), GIB); // inside B only
    let b_peaks = monitor.close(b, Instant::now());

    assert_eq!(a_peaks.bytes(Figure::GpuMemory), Some(3 * GIB));
    assert_eq!(b_peaks.bytes(Figure::GpuMemory), Some(5 * GIB));
}

#[test]
fn a_one_ms_operation_still_gets_start_and_end_samples() {
    let fake = FakeNvml::new();
    fake.set_memory(0, 7 * GIB, TOTAL);
    let monitor = monitor(&fake, 50);
    let window = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(1));
    let peaks = monitor.close(window, Instant::now());
    assert!(peaks.samples.unwrap_or(0) >= 1, "{peaks:?}");
    assert_eq!(peaks.bytes(Figure::GpuMemory), Some(7 * GIB));
    assert!(peaks.bytes(Figure::ProcessMemory).is_some());
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
        monitor.health().gpu_errors_of(ErrorKind::GpuLost) >= 3
    }));
    // A window entirely inside the outage: GPU figures absent, never old numbers.
    let lost = monitor.open(Instant::now());
    let before = monitor.health().samples;
    assert!(wait_until(Duration::from_secs(5), || monitor
        .health()
        .samples
        >= before + 3));
    let peaks = monitor.close(lost, Instant::now());
    assert_eq!(
        peaks.bytes(Figure::GpuMemory),
        None,
        "stale GPU data is not reported"
    );
    assert!(
        peaks.bytes(Figure::ProcessMemory).is_some(),
        "CPU/RAM keep working"
    );
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
        monitor.close(back, Instant::now()).bytes(Figure::GpuMemory),
        Some(4 * GIB),
        "sampling resumed"
    );
    let _ = monitor.close(keep_awake, Instant::now());
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
        let _ = monitor.close(w, Instant::now());
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
    let _ = monitor.close(outer, Instant::now());
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
    let peaks = monitor.close(w, Instant::now());
    assert_eq!(peaks.bytes(Figure::GpuMemory), None);
    assert!(peaks.bytes(Figure::ProcessMemory).is_some());
    assert!(!monitor.health().gpu_available());
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
    let reason = monitor.health().gpu_reason().unwrap_or_default();
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
    // GPM too: the fake is a pre-Hopper GPU unless told otherwise.
    let unsupported: Vec<String> = unsupported.iter().map(ToString::to_string).collect();
    assert_eq!(
        unsupported,
        vec![
            "device 0: utilization".to_owned(),
            "device 0: gpm".to_owned()
        ]
    );
    let w = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(5));
    let peaks = monitor.close(w, Instant::now());
    assert_eq!(peaks.get(Figure::GpuUtilization), None);
    assert_eq!(peaks.bytes(Figure::GpuMemory), Some(GIB));
    assert!(
        monitor.health().gpu_errors.iter().all(|n| *n == 0),
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
    let peaks = monitor.close(w, Instant::now());
    assert_eq!(peaks.bytes(Figure::GpuProcessMemory), Some(512 << 20));
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
    let peaks = monitor.close(w, Instant::now());
    assert_eq!(
        peaks.bytes(Figure::GpuMemory),
        Some(6 * GIB),
        "the maximum over devices"
    );
    assert_eq!(peaks.get(Figure::GpuUtilization), Some(0.9));
    let per_device: Vec<_> = peaks
        .devices
        .iter()
        .map(|d| {
            (
                d.index,
                d.figures.bytes(Figure::GpuMemory),
                d.get(Figure::GpuUtilization),
            )
        })
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
    let peaks = monitor.close(w, Instant::now());
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
        let peaks = monitor.close(window, Instant::now());
        if peaks.bytes(Figure::GpuMemory) == Some(spike_bytes) {
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
        let requested = monitor.health().samples_on_request;
        let window = monitor.open(Instant::now());
        std::thread::sleep(Duration::from_millis(5));
        let peaks = monitor.close(window, Instant::now());
        assert!(peaks.samples.unwrap_or(0) >= 1, "{peaks:?}");
        if peaks.bytes(Figure::GpuMemory) == Some(value)
            && monitor.health().samples_on_request > requested
        {
            own += 1;
        }
        fake.set_memory(0, GIB, TOTAL);
    }
    // Each such operation got its own sample; on a loaded machine the monitor may be
    // late for one.
    assert!(own >= 9, "{own} of 10 operations saw their own moment");
}

/// The driver's utilization samples are assigned to an operation by their own
/// timestamps: those stamped before it opened or after it closed are left out, whatever
/// the polling rate, and the peak and mean are exactly those of the samples inside.
#[test]
fn driver_utilization_samples_are_assigned_by_their_own_timestamps() {
    let fake = FakeNvml::new();
    fake.set_memory(0, GIB, TOTAL);
    fake.set_utilization(0, 5); // the polled reading, which the driver's samples beat
    let pid = std::process::id();
    let other = pid.wrapping_add(1);
    fake.push_utilization_sample(0, now_us() - 20_000, 95); // before the operation
    let monitor = monitor(&fake, 10);
    std::thread::sleep(Duration::from_millis(2));
    let window = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(10));
    let t = now_us();
    for (dt, percent) in [(6_000, 40), (4_000, 70), (2_000, 55)] {
        fake.push_utilization_sample(0, t - dt, percent);
    }
    for (dt, own, others) in [(5_000, 33, 90), (3_000, 61, 99)] {
        let sample = |pid, sm| ProcessSample {
            pid,
            timestamp_us: t - dt,
            sm,
            ..ProcessSample::default()
        };
        fake.push_process_utilization(0, sample(pid, own));
        fake.push_process_utilization(0, sample(other, others));
    }
    // Stamped after the operation will have closed: fetched while it is open, left out.
    fake.push_utilization_sample(0, t + 10_000_000, 99);
    fake.push_process_utilization(
        0,
        ProcessSample {
            pid,
            timestamp_us: t + 10_000_000,
            sm: 100,
            ..ProcessSample::default()
        },
    );
    // Long enough for the fetches (every sample, and every 100 ms per process).
    std::thread::sleep(Duration::from_millis(250));
    let peaks = monitor.close(window, Instant::now());
    assert_eq!(peaks.get(Figure::GpuUtilization), Some(0.70), "{peaks:?}");
    assert_eq!(
        peaks.get(Figure::GpuUtilizationMean),
        Some(0.55),
        "{peaks:?}"
    );
    assert_eq!(
        peaks.get(Figure::GpuProcessUtilization),
        Some(0.61),
        "{peaks:?}"
    );

    // A later operation sees none of them: its utilization is the polled reading, and
    // the driver figures are absent rather than zero.
    let window = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(30));
    let peaks = monitor.close(window, Instant::now());
    assert_eq!(peaks.get(Figure::GpuUtilization), Some(0.05), "{peaks:?}");
    assert_eq!(peaks.get(Figure::GpuUtilizationMean), None);
    assert_eq!(peaks.get(Figure::GpuProcessUtilization), None);
}

/// GPM on a Hopper-like device: SM utilization, SM occupancy and tensor activity of
/// exactly each operation's intervals, from the fake's scripted counters; absent, not
/// zero, on a device without GPM; and no GPM sample leaked.
#[test]
fn gpm_figures_cover_exactly_the_operation() {
    let fake = FakeNvml::new();
    fake.set_memory(0, GIB, TOTAL);
    fake.set_gpm_supported(0, true);
    fake.set_gpm_activity(0, 90.0, 90.0, 90.0); // before the operations: not theirs
    {
        let monitor = ResourceMonitor::start(
            MonitorConfig::default()
                .with_nvml(NvmlLibrary::Path(fake.path().to_owned()))
                .with_gpm_interval(Duration::from_millis(20)),
        )
        .expect("monitor starts");
        std::thread::sleep(Duration::from_millis(50));
        for (sm, occupancy, tensor) in [(62.5, 30.0, 12.5), (20.0, 10.0, 0.0)] {
            // Let the monitor go quiet so the operation asks for its own sample, GPM
            // included. (Which intervals count at the edges is checked exactly in the
            // unit tests of `GpmSeries`; the fake accounts each interval at the
            // activity current when it closes.)
            std::thread::sleep(Duration::from_millis(1_200));
            fake.set_gpm_activity(0, sm, occupancy, tensor);
            let window = monitor.open(Instant::now());
            std::thread::sleep(Duration::from_millis(200));
            let peaks = monitor.close(window, Instant::now());
            fake.set_gpm_activity(0, 90.0, 90.0, 90.0);
            let close =
                |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want / 100.0).abs() < 1e-9);
            assert!(close(peaks.get(Figure::GpuSmUtilization), sm), "{peaks:?}");
            assert!(
                close(peaks.get(Figure::GpuSmOccupancy), occupancy),
                "{peaks:?}"
            );
            assert!(
                close(peaks.get(Figure::GpuTensorActivity), tensor),
                "{peaks:?}"
            );
        }
        monitor.shutdown(Duration::from_secs(2)).expect("shutdown");
    }
    assert_eq!(fake.gpm_live_samples(), 0, "every GPM sample freed");

    // Without GPM (a pre-Hopper device): absent, never zero; the rest still measured.
    let older = FakeNvml::new();
    older.set_memory(0, GIB, TOTAL);
    let monitor = monitor(&older, 5);
    let window = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(100));
    let peaks = monitor.close(window, Instant::now());
    assert_eq!(peaks.bytes(Figure::GpuMemory), Some(GIB));
    assert_eq!(peaks.get(Figure::GpuSmUtilization), None);
    assert_eq!(peaks.get(Figure::GpuSmOccupancy), None);
    assert_eq!(peaks.get(Figure::GpuTensorActivity), None);
    assert!(
        matches!(monitor.gpu_status(), GpuStatus::Available { unsupported, .. } if unsupported.iter().any(|u| u.to_string() == "device 0: gpm"))
    );
}

/// With reads at operation boundaries, even an operation far shorter than the sampling
/// interval has its own start and end in its peaks: the fake's value at that moment,
/// every time, and two more samples counted.
#[test]
fn with_boundary_reads_a_one_ms_operation_reports_its_own_moment() {
    let fake = FakeNvml::new();
    fake.set_memory(0, GIB, TOTAL);
    let monitor = ResourceMonitor::start(
        MonitorConfig::default()
            .with_interval(Duration::from_millis(50))
            .with_boundary_gap(Duration::ZERO) // no sample on request: only the reads
            .with_boundary_reads(true)
            .with_nvml(NvmlLibrary::Path(fake.path().to_owned())),
    )
    .expect("monitor starts");
    for run in 0..20u64 {
        let value = 2 * GIB + run;
        fake.set_memory(0, value, TOTAL);
        let window = monitor.open(Instant::now());
        std::thread::sleep(Duration::from_millis(1));
        fake.set_memory(0, GIB, TOTAL);
        let peaks = monitor.close(window, Instant::now());
        assert_eq!(
            peaks.bytes(Figure::GpuMemory),
            Some(value),
            "run {run}: {peaks:?}"
        );
        assert!(peaks.samples.unwrap_or(0) >= 2, "{peaks:?}");
        assert!(peaks.bytes(Figure::ProcessMemory).is_some());
    }
    // A value reached only at the end is caught by the read at close.
    let window = monitor.open(Instant::now());
    fake.set_memory(0, 7 * GIB, TOTAL);
    let peaks = monitor.close(window, Instant::now());
    assert_eq!(peaks.bytes(Figure::GpuMemory), Some(7 * GIB));

    // Off (the default), the same operation only has what the monitor sampled.
    let off = monitor_with(&fake, |c| {
        c.with_interval(Duration::from_millis(50))
            .with_boundary_gap(Duration::ZERO)
    });
    fake.set_memory(0, GIB, TOTAL);
    std::thread::sleep(Duration::from_millis(60));
    let window = off.open(Instant::now());
    fake.set_memory(0, 5 * GIB, TOTAL);
    let peaks = off.close(window, Instant::now());
    assert_eq!(
        peaks.bytes(Figure::GpuMemory),
        Some(GIB),
        "no read on the operation's thread"
    );
}

fn monitor_with(
    fake: &FakeNvml,
    f: impl FnOnce(MonitorConfig) -> MonitorConfig,
) -> ResourceMonitor {
    ResourceMonitor::start(f(
        MonitorConfig::default().with_nvml(NvmlLibrary::Path(fake.path().to_owned()))
    ))
    .expect("monitor starts")
}
