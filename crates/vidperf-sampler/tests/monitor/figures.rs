//! The figures of the video engines, the memory controller, power and energy, from the
//! fake NVML's scripted devices: measured where a board has them, absent (and listed)
//! where it does not.

use std::time::{Duration, Instant};

use vidperf_core::{Figure, ResourceWindows};
use vidperf_fake_nvml::{FakeNvml, Function};
use vidperf_sampler::{GpuStatus, MonitorConfig, NvmlLibrary, ResourceMonitor};

use crate::wait_until;

const GIB: u64 = 1 << 30;

fn monitor(fake: &FakeNvml) -> ResourceMonitor {
    let config = MonitorConfig::default()
        .with_interval(Duration::from_millis(2))
        .with_nvml(NvmlLibrary::Path(fake.path().to_owned()));
    ResourceMonitor::start(config).expect("monitor starts")
}

/// Waits until the monitor has read the (one device's) energy counter twice more.
fn two_more_readings(fake: &FakeNvml) {
    let calls = fake.calls(Function::Energy);
    assert!(wait_until(Duration::from_secs(5), || fake
        .calls(Function::Energy)
        >= calls + 2));
}

#[test]
fn memory_controller_codecs_power_and_energy_are_measured_per_operation() {
    let fake = FakeNvml::new();
    fake.set_memory(0, GIB, 80 * GIB);
    fake.set_memory_utilization(0, 40);
    fake.set_codec_utilization(0, 30, 20);
    fake.set_power(0, 0);
    fake.set_energy(0, 1_000_000);
    let monitor = monitor(&fake);

    let window = monitor.open(Instant::now());
    two_more_readings(&fake);
    // A decoder burst inside the operation; the energy counter moves by 37.5 J.
    fake.set_codec_utilization(0, 85, 20);
    fake.set_energy(0, 1_037_500);
    two_more_readings(&fake);
    fake.set_codec_utilization(0, 30, 20);
    two_more_readings(&fake);
    let peaks = monitor.close(window, Instant::now());

    assert_eq!(peaks.get(Figure::GpuMemoryUtilization), Some(0.40));
    assert_eq!(
        peaks.get(Figure::GpuDecoderUtilization),
        Some(0.85),
        "the burst"
    );
    assert_eq!(peaks.get(Figure::GpuEncoderUtilization), Some(0.20));
    assert_eq!(peaks.get(Figure::GpuPower), Some(0.0), "measured: 0 W");
    assert_eq!(peaks.get(Figure::GpuEnergy), Some(37.5));

    // At 150 W the counter accrues by itself: 150 W over the time between the
    // operation's first and last sample.
    fake.set_power(0, 150_000);
    let start = Instant::now();
    let window = monitor.open(start);
    std::thread::sleep(Duration::from_millis(200));
    let end = Instant::now();
    let peaks = monitor.close(window, end);
    assert_eq!(peaks.get(Figure::GpuPower), Some(150.0));
    let joules = peaks.get(Figure::GpuEnergy).expect("energy measured");
    let seconds = end.duration_since(start).as_secs_f64();
    // The first sample is at most two intervals before the start (or the one taken
    // for it), the last at most one interval before the end.
    assert!(
        joules <= 150.0 * (seconds + 0.004) + 0.01 && joules >= 150.0 * (seconds - 0.020),
        "{joules} J over {seconds} s at 150 W"
    );
}

#[test]
fn a_board_without_codecs_power_or_energy_lists_them_and_leaves_them_absent() {
    let fake = FakeNvml::new();
    fake.set_memory(0, 2 * GIB, 80 * GIB);
    for function in [
        Function::Decoder,
        Function::Encoder,
        Function::Power,
        Function::Energy,
    ] {
        fake.set_supported(0, function, false);
    }
    let monitor = monitor(&fake);
    let GpuStatus::Available { unsupported, .. } = monitor.gpu_status() else {
        panic!("GPUs available: {:?}", monitor.gpu_status());
    };
    for figure in ["decoder", "encoder", "power", "energy"] {
        assert!(
            unsupported
                .iter()
                .any(|u| u.to_string() == format!("device 0: {figure}")),
            "{unsupported:?}"
        );
    }
    let calls = fake.calls(Function::Decoder);
    let window = monitor.open(Instant::now());
    std::thread::sleep(Duration::from_millis(20));
    let peaks = monitor.close(window, Instant::now());
    assert_eq!(peaks.bytes(Figure::GpuMemory), Some(2 * GIB));
    for figure in [
        Figure::GpuDecoderUtilization,
        Figure::GpuEncoderUtilization,
        Figure::GpuPower,
        Figure::GpuEnergy,
    ] {
        assert_eq!(peaks.get(figure), None, "{figure}: absent, never zero");
    }
    assert_eq!(
        fake.calls(Function::Decoder),
        calls,
        "an unsupported call is never made again"
    );
}

#[test]
fn two_gpus_sum_their_power_and_energy_and_keep_each_devices_own() {
    let fake = FakeNvml::new();
    fake.set_device_count(2);
    for dev in 0..2 {
        fake.set_memory(dev, GIB, 80 * GIB);
        fake.set_energy(dev, 0);
    }
    fake.set_power(0, 100_000);
    fake.set_power(1, 250_000);
    fake.set_codec_utilization(1, 0, 45);
    let monitor = monitor(&fake);
    // Power stays; the energy counters are stepped by hand, power 0 from here on so
    // that only the steps count.
    let window = monitor.open(Instant::now());
    let calls = fake.calls(Function::Power);
    assert!(wait_until(Duration::from_secs(5), || fake
        .calls(Function::Power)
        >= calls + 4));
    fake.set_power(0, 0);
    fake.set_power(1, 0);
    fake.set_energy(0, 5_000_000);
    fake.set_energy(1, 9_000_000);
    let calls = fake.calls(Function::Energy);
    assert!(wait_until(Duration::from_secs(5), || fake
        .calls(Function::Energy)
        >= calls + 4));
    fake.set_energy(0, 5_010_000);
    fake.set_energy(1, 9_020_000);
    let calls = fake.calls(Function::Energy);
    assert!(wait_until(Duration::from_secs(5), || fake
        .calls(Function::Energy)
        >= calls + 4));
    let peaks = monitor.close(window, Instant::now());

    assert_eq!(peaks.get(Figure::GpuPower), Some(350.0), "the sum of both");
    assert_eq!(
        peaks.get(Figure::GpuEncoderUtilization),
        Some(0.45),
        "the highest"
    );
    let energy = peaks.get(Figure::GpuEnergy).expect("energy");
    let per_device: Vec<_> = peaks
        .devices
        .iter()
        .map(|d| (d.index, d.get(Figure::GpuPower), d.get(Figure::GpuEnergy)))
        .collect();
    assert_eq!(per_device.len(), 2);
    assert_eq!(per_device[0].1, Some(100.0));
    assert_eq!(per_device[1].1, Some(250.0));
    let (e0, e1) = (
        per_device[0].2.expect("device 0 energy"),
        per_device[1].2.expect("device 1 energy"),
    );
    // Each counter was stepped by hand from about 0 to 5,010 J and 9,020 J; at 100/250 W
    // it also accrued a little on its own (a few ms) around the first reading.
    assert!((e0 - 5_010.0).abs() < 2.0, "{e0}");
    assert!((e1 - 9_020.0).abs() < 5.0, "{e1}");
    assert_eq!(energy, e0 + e1, "the machine's energy is their sum");
}
