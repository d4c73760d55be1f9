//! Resource peaks end to end: spans through the layer, the monitor over the fake NVML
//! (the real nvml-wrapper code path), statistics, exports and health.

use std::time::Duration;

use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf::Figure;
use vidperf::export;
use vidperf::monitor::{MonitorConfig, NvmlLibrary};
use vidperf_fake_nvml::{FakeNvml, Function};

const MIB: u64 = 1 << 20;

fn with_fake(fake: &FakeNvml, f: impl FnOnce()) -> vidperf::Vidperf {
    let config = MonitorConfig::default()
        .with_interval(Duration::from_millis(1))
        .with_nvml(NvmlLibrary::Path(fake.path().to_owned()));
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .resource_monitor(config)
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    vidperf
}

/// Waits until the monitor has read GPU memory `n` more times.
fn samples(fake: &FakeNvml, n: u64) {
    let start = fake.calls(Function::Memory);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while fake.calls(Function::Memory) < start + n && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn operations_carry_their_peaks_into_records_stats_and_exports() {
    let fake = FakeNvml::new();
    fake.set_memory(0, 1024 * MIB, 80 * 1024 * MIB);
    fake.set_utilization(0, 20);
    let vidperf = with_fake(&fake, || {
        info_span!("upscale", strategy = "seedvr2").in_scope(|| {
            samples(&fake, 2);
            fake.set_memory(0, 6144 * MIB, 80 * 1024 * MIB);
            fake.set_utilization(0, 97);
            samples(&fake, 3);
            fake.set_memory(0, 1024 * MIB, 80 * 1024 * MIB);
            fake.set_utilization(0, 20);
            samples(&fake, 2);
        });
        info_span!("upscale", strategy = "vsrm").in_scope(|| samples(&fake, 3));
        // An ordinary span pays nothing and gets nothing.
        info_span!("decode").in_scope(|| {});
    });
    let records = vidperf.stats().records();
    let seedvr2 = &records[0];
    assert_eq!(seedvr2.bytes(Figure::GpuMemory), Some(6144 * MIB));
    assert_eq!(seedvr2.get(Figure::GpuUtilization), Some(0.97));
    assert!(
        seedvr2
            .bytes(Figure::ProcessMemory)
            .is_some_and(|m| m > MIB),
        "process RSS"
    );
    assert!(seedvr2.samples.is_some_and(|n| n >= 7));
    assert!(
        seedvr2.gpu_devices.is_empty(),
        "one GPU: the device figures are the totals"
    );
    let vsrm = &records[1];
    assert_eq!(vsrm.bytes(Figure::GpuMemory), Some(1024 * MIB));

    let snap = vidperf.snapshot();
    let peaks = snap.by_strategy["seedvr2"]
        .resources
        .get(Figure::GpuMemory)
        .expect("peaks");
    let bytes = (6144 * MIB) as f64;
    assert_eq!((peaks.max, peaks.mean, peaks.operations), (bytes, bytes, 1));
    let monitor = snap
        .health
        .part::<vidperf::monitor::MonitorHealth>("monitor")
        .expect("monitor health");
    assert!(monitor.gpu_available());
    assert!(monitor.running && monitor.samples > 0);
    assert!(monitor.tick_micros.is_some());

    let mut csv = Vec::new();
    vidperf::export::write_stats_csv(&mut csv, vidperf.stats()).expect("csv");
    // The CSV keeps the 0.1.0 columns; later figures (memory-controller and codec
    // utilization, power, energy here) are in the JSON export only.
    let in_csv: Vec<_> = records
        .iter()
        .map(|r| {
            let mut r = r.as_in_csv();
            r.figures = r.figures.iter().filter(|(f, _)| f.def().csv).collect();
            r
        })
        .collect();
    assert!(
        records[0].get(Figure::GpuPower).is_some(),
        "measured, JSON only"
    );
    assert_eq!(export::read_csv(csv.as_slice()).expect("parse"), in_csv);
    vidperf
        .shutdown(Duration::from_secs(1))
        .expect("monitor stops");
}

#[test]
fn several_gpus_are_listed_per_device_in_the_records() {
    let fake = FakeNvml::new();
    fake.set_device_count(2);
    fake.set_memory(0, 512 * MIB, 24 * 1024 * MIB);
    fake.set_memory(1, 3072 * MIB, 24 * 1024 * MIB);
    fake.set_utilization(1, 55);
    let vidperf = with_fake(&fake, || {
        info_span!("upscale", strategy = "ditvr").in_scope(|| samples(&fake, 3));
    });
    let record = &vidperf.stats().records()[0];
    assert_eq!(record.bytes(Figure::GpuMemory), Some(3072 * MIB));
    let devices: Vec<_> = record
        .gpu_devices
        .iter()
        .map(|d| {
            (
                d.index,
                d.bytes(Figure::GpuMemory),
                d.get(Figure::GpuUtilization),
            )
        })
        .collect();
    assert_eq!(
        devices,
        vec![
            (0, Some(512 * MIB), Some(0.0)),
            (1, Some(3072 * MIB), Some(0.55))
        ]
    );

    let mut csv = Vec::new();
    vidperf::export::write_stats_csv(&mut csv, vidperf.stats()).expect("csv");
    assert_eq!(
        export::read_csv(csv.as_slice()).expect("parse")[0].gpu_devices,
        record.gpu_devices
    );
}

#[test]
fn without_a_gpu_the_gpu_columns_stay_empty_and_ram_is_measured() {
    let config = MonitorConfig::default()
        .with_nvml(NvmlLibrary::Path("/nonexistent/libnvidia-ml.so".into()));
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .resource_monitor(config)
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _span = info_span!("upscale", strategy = "vsrm");
    });
    let record = &vidperf.stats().records()[0];
    assert_eq!(record.bytes(Figure::GpuMemory), None);
    assert_eq!(record.get(Figure::GpuUtilization), None);
    assert!(record.bytes(Figure::ProcessMemory).is_some());
    let health = vidperf
        .snapshot()
        .health
        .part::<vidperf::monitor::MonitorHealth>("monitor")
        .expect("monitor");
    assert!(!health.gpu_available());
    assert!(
        health
            .gpu_reason()
            .is_some_and(|r| r.contains("NVML library not found"))
    );
}
