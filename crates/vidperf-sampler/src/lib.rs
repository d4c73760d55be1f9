//! The resource monitor of [vidperf](https://docs.rs/vidperf): this process's RAM and
//! CPU (from sysinfo) and every NVIDIA GPU's memory and utilization (from NVML, through
//! nvml-wrapper), sampled by one background thread, with per-operation peaks.
//!
//! [`ResourceMonitor`] implements [`vidperf_core::ResourceWindows`]: give it to
//! [`PerfLayer::builder().resources(..)`](vidperf_core::PerfLayerBuilder::resources) and
//! every operation span gets the peaks of its own lifetime. The `vidperf` facade does
//! this for you.
//!
//! NVML is loaded at run time: the crate builds and runs on machines without a GPU or
//! driver, where GPU figures are simply absent.
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `system` | yes | process RAM and CPU through sysinfo |
//! | `gpu` | yes | GPU memory and utilization through NVML (nvml-wrapper) |
//!
//! Concurrent operations share one process and its GPUs: an operation's RAM and VRAM
//! peaks are the process's (or device's) peaks during its window, not its own
//! allocation.

#![forbid(unsafe_code)]
#![cfg_attr(test, deny(warnings))]

mod gate;
#[cfg(feature = "gpu")]
mod gpu;
#[cfg(not(feature = "gpu"))]
#[path = "gpu_off.rs"]
mod gpu;
mod gpu_types;
mod health;
mod monitor;
#[cfg(feature = "system")]
mod process;
#[cfg(not(feature = "system"))]
#[path = "process_off.rs"]
mod process;
mod stack;

pub use gpu_types::{Capability, ErrorKind, GpuStatus, GpuUnavailable, NvmlLibrary, Unsupported};
pub use health::{DeviceNow, MonitorHealth, family, family_defs};
pub use monitor::{MonitorConfig, ResourceMonitor, ShutdownError, StartError};

/// GPUs sampled individually at most; further devices are not sampled.
pub const MAX_DEVICES: usize = 8;
