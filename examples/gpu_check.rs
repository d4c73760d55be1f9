//! A check of vidperf's GPU figures against a real NVIDIA GPU: allocates known amounts of
//! device memory (1 GiB, 4 GiB) inside operations and keeps every SM busy for ~200 ms,
//! then prints what vidperf reported next to what is known.
//!
//! The CUDA driver (`libcuda.so.1`) is loaded at run time: building needs no CUDA
//! toolkit, and without a GPU the example says so and exits 2.
//!
//! ```text
//! scripts/gpu-check.sh            # = cargo run --release --example gpu_check
//! ```
//!
//! Exit status: 0 when every memory figure is within ±5% of the known amount (and the
//! busy kernel shows as ≥ 90% utilization), 1 otherwise, 2 when there is no GPU.

// reason: an example program reports on stdout.
#![allow(clippy::print_stdout)]
// reason: the CUDA driver API is a C ABI loaded at run time; every unsafe block says
// what it relies on.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vidperf::Figure;
use vidperf::{FinishedSpan, ResourcePeaks, Sink};

const GIB: u64 = 1 << 30;

type CuResult = c_int;
type CuDevice = c_int;
type CuContext = *mut c_void;
type CuModule = *mut c_void;
type CuFunction = *mut c_void;
type CuDevicePtr = u64;

/// CU_DEVICE_ATTRIBUTE_CLOCK_RATE (kHz) and _MULTIPROCESSOR_COUNT.
const ATTRIBUTE_CLOCK_RATE: c_int = 13;
const ATTRIBUTE_MULTIPROCESSOR_COUNT: c_int = 16;

/// Spins every thread until its SM's clock passed `cycles` more ticks.
const SPIN_PTX: &CStr = c".version 7.0
.target sm_52
.address_size 64
.visible .entry spin(.param .u64 cycles)
{
    .reg .pred %p;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [cycles];
    mov.u64 %rd2, %clock64;
    add.u64 %rd3, %rd2, %rd1;
LOOP:
    mov.u64 %rd2, %clock64;
    setp.lt.u64 %p, %rd2, %rd3;
    @%p bra LOOP;
    ret;
}
";

/// The few driver functions the check needs.
struct Cuda {
    _library: libloading::Library,
    init: unsafe extern "C" fn(c_uint) -> CuResult,
    device_get: unsafe extern "C" fn(*mut CuDevice, c_int) -> CuResult,
    device_get_attribute: unsafe extern "C" fn(*mut c_int, c_int, CuDevice) -> CuResult,
    ctx_create: unsafe extern "C" fn(*mut CuContext, c_uint, CuDevice) -> CuResult,
    ctx_synchronize: unsafe extern "C" fn() -> CuResult,
    mem_alloc: unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult,
    mem_free: unsafe extern "C" fn(CuDevicePtr) -> CuResult,
    memset_d8: unsafe extern "C" fn(CuDevicePtr, u8, usize) -> CuResult,
    module_load_data: unsafe extern "C" fn(*mut CuModule, *const c_void) -> CuResult,
    module_get_function: unsafe extern "C" fn(*mut CuFunction, CuModule, *const c_char) -> CuResult,
    #[allow(clippy::type_complexity)]
    launch_kernel: unsafe extern "C" fn(
        CuFunction,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        *mut c_void,
        *mut *mut c_void,
        *mut *mut c_void,
    ) -> CuResult,
    get_error_string: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
}

impl Cuda {
    fn load() -> Result<Self, String> {
        // SAFETY: loading the NVIDIA driver library runs its initialisers, as any CUDA
        // program does.
        let library = unsafe { libloading::Library::new("libcuda.so.1") }
            .map_err(|e| format!("no CUDA driver (libcuda.so.1): {e}"))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the field's type is the driver API's signature of this symbol
                // (cuda.h); the library stays loaded as long as `Cuda`.
                *unsafe { library.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| format!("libcuda.so.1 lacks {}: {e}", $name))?
            };
        }
        Ok(Self {
            init: sym!("cuInit"),
            device_get: sym!("cuDeviceGet"),
            device_get_attribute: sym!("cuDeviceGetAttribute"),
            ctx_create: sym!("cuCtxCreate_v2"),
            ctx_synchronize: sym!("cuCtxSynchronize"),
            mem_alloc: sym!("cuMemAlloc_v2"),
            mem_free: sym!("cuMemFree_v2"),
            memset_d8: sym!("cuMemsetD8_v2"),
            module_load_data: sym!("cuModuleLoadData"),
            module_get_function: sym!("cuModuleGetFunction"),
            launch_kernel: sym!("cuLaunchKernel"),
            get_error_string: sym!("cuGetErrorString"),
            _library: library,
        })
    }

    fn check(&self, what: &str, result: CuResult) -> Result<(), String> {
        if result == 0 {
            return Ok(());
        }
        let mut text: *const c_char = std::ptr::null();
        // SAFETY: cuGetErrorString writes a pointer to a static string, or fails.
        let message =
            if unsafe { (self.get_error_string)(result, &mut text) } == 0 && !text.is_null() {
                // SAFETY: a NUL-terminated static string from the driver.
                unsafe { CStr::from_ptr(text) }
                    .to_string_lossy()
                    .into_owned()
            } else {
                format!("error {result}")
            };
        Err(format!("{what}: {message}"))
    }
}

/// A context on device 0, the spin kernel, and the device's clock and SM count.
struct Gpu {
    cuda: Cuda,
    spin: CuFunction,
    clock_khz: u64,
    multiprocessors: u32,
}

impl Gpu {
    fn open() -> Result<Self, String> {
        let cuda = Cuda::load()?;
        let (mut device, mut ctx, mut module, mut spin) = (
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        let (mut clock, mut sms) = (0, 0);
        // SAFETY: each call gets valid out-pointers to locals; the context is made
        // current on this thread, which does all the later calls; the PTX is a
        // NUL-terminated image.
        unsafe {
            cuda.check("cuInit", (cuda.init)(0))?;
            cuda.check("cuDeviceGet", (cuda.device_get)(&mut device, 0))?;
            cuda.check(
                "cuDeviceGetAttribute",
                (cuda.device_get_attribute)(&mut clock, ATTRIBUTE_CLOCK_RATE, device),
            )?;
            cuda.check(
                "cuDeviceGetAttribute",
                (cuda.device_get_attribute)(&mut sms, ATTRIBUTE_MULTIPROCESSOR_COUNT, device),
            )?;
            cuda.check("cuCtxCreate", (cuda.ctx_create)(&mut ctx, 0, device))?;
            cuda.check(
                "cuModuleLoadData",
                (cuda.module_load_data)(&mut module, SPIN_PTX.as_ptr().cast()),
            )?;
            cuda.check(
                "cuModuleGetFunction",
                (cuda.module_get_function)(&mut spin, module, c"spin".as_ptr()),
            )?;
        }
        Ok(Self {
            cuda,
            spin,
            clock_khz: u64::try_from(clock).unwrap_or(0),
            multiprocessors: u32::try_from(sms).unwrap_or(1),
        })
    }

    /// Allocates and fills `bytes` of device memory.
    fn alloc(&self, bytes: u64) -> Result<CuDevicePtr, String> {
        let mut ptr = 0;
        let len = usize::try_from(bytes).map_err(|e| e.to_string())?;
        // SAFETY: a valid out-pointer; the fill stays inside the allocation.
        unsafe {
            self.cuda
                .check("cuMemAlloc", (self.cuda.mem_alloc)(&mut ptr, len))?;
            self.cuda
                .check("cuMemsetD8", (self.cuda.memset_d8)(ptr, 0xA5, len))?;
            self.cuda
                .check("cuCtxSynchronize", (self.cuda.ctx_synchronize)())?;
        }
        Ok(ptr)
    }

    fn free(&self, ptr: CuDevicePtr) -> Result<(), String> {
        // SAFETY: `ptr` came from `alloc` and is freed once.
        unsafe { self.cuda.check("cuMemFree", (self.cuda.mem_free)(ptr)) }
    }

    /// Keeps every SM busy for about `time`, and waits for it.
    fn spin(&self, time: Duration) -> Result<(), String> {
        let mut cycles = (self.clock_khz as f64 * 1e3 * time.as_secs_f64()) as u64;
        let mut params = [(&raw mut cycles).cast::<c_void>()];
        // SAFETY: the kernel takes one u64 parameter, passed by pointer as the driver
        // API expects; grid and block sizes are within every GPU's limits.
        unsafe {
            self.cuda.check(
                "cuLaunchKernel",
                (self.cuda.launch_kernel)(
                    self.spin,
                    self.multiprocessors * 4,
                    1,
                    1,
                    256,
                    1,
                    1,
                    0,
                    std::ptr::null_mut(),
                    params.as_mut_ptr(),
                    std::ptr::null_mut(),
                ),
            )?;
            self.cuda
                .check("cuCtxSynchronize", (self.cuda.ctx_synchronize)())
        }
    }
}

/// Keeps the resource figures of every finished operation, by strategy.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<(String, Duration, ResourcePeaks)>>>);

impl Sink for Collect {
    fn on_finish(&self, span: &FinishedSpan) {
        if let Some(key) = &span.operation
            && let Ok(mut seen) = self.0.lock()
        {
            seen.push((
                key.strategy.to_string(),
                span.duration,
                span.resources.clone(),
            ));
        }
    }
}

impl Collect {
    fn of(&self, strategy: &str) -> Option<(Duration, ResourcePeaks)> {
        let seen = self.0.lock().ok()?;
        seen.iter()
            .rev()
            .find(|(s, ..)| s == strategy)
            .map(|(_, d, r)| (*d, r.clone()))
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

fn run() -> Result<bool, String> {
    let gpu = Gpu::open()?;
    let collect = Collect::default();
    let vidperf = vidperf::builder()
        .sink(collect.clone())
        .install()
        .map_err(|e| e.to_string())?;
    println!(
        "GPU 0: {} SMs at {} MHz; vidperf monitor: {:?}",
        gpu.multiprocessors,
        gpu.clock_khz / 1000,
        vidperf.resource_monitor().map(|m| m.gpu_status())
    );

    // Quiet baseline: device memory used before any allocation of ours.
    let idle = tracing::info_span!("gpu_check", strategy = "idle");
    idle.in_scope(|| std::thread::sleep(Duration::from_millis(1_500)));
    drop(idle);
    let (_, baseline) = collect.of("idle").ok_or("no idle operation")?;
    let base_device = baseline
        .bytes(Figure::GpuMemory)
        .ok_or("vidperf reported no GPU memory")?;
    let base_process = baseline.bytes(Figure::GpuProcessMemory);

    let mut ok = true;
    println!("\n| figure | known | reported | error |\n|---|---|---|---|");
    for gib in [1u64, 4] {
        let strategy = format!("alloc-{gib}gib");
        let span = tracing::info_span!("gpu_check", strategy = strategy.as_str());
        span.in_scope(|| -> Result<(), String> {
            let ptr = gpu.alloc(gib * GIB)?;
            // Held past the monitor's once-a-second process-list query.
            std::thread::sleep(Duration::from_millis(2_500));
            gpu.free(ptr)
        })?;
        drop(span);
        let (_, peaks) = collect.of(&strategy).ok_or("no allocation operation")?;
        let known = gib * GIB;
        let rows = [
            (
                "device VRAM peak − idle",
                peaks
                    .bytes(Figure::GpuMemory)
                    .map(|v| v.saturating_sub(base_device)),
            ),
            (
                "process VRAM peak − idle",
                peaks
                    .bytes(Figure::GpuProcessMemory)
                    .map(|v| v.saturating_sub(base_process.unwrap_or(0))),
            ),
        ];
        for (name, reported) in rows {
            match reported {
                Some(r) => {
                    let error = (r as f64 - known as f64) / known as f64;
                    let pass = error.abs() <= 0.05;
                    ok &= pass || name.starts_with("process") && base_process.is_none();
                    println!(
                        "| {name}, {gib} GiB | {:.0} MiB | {:.0} MiB | {:+.1}% {} |",
                        mib(known),
                        mib(r),
                        error * 100.0,
                        if pass { "ok" } else { "OUT OF ±5%" }
                    );
                }
                None => println!("| {name}, {gib} GiB | {:.0} MiB | absent | — |", mib(known)),
            }
        }
    }

    let busy = tracing::info_span!("gpu_check", strategy = "busy");
    let started = Instant::now();
    busy.in_scope(|| -> Result<(), String> {
        std::thread::sleep(Duration::from_millis(100));
        gpu.spin(Duration::from_millis(200))?;
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    })?;
    drop(busy);
    let kernel = started.elapsed();
    let (duration, peaks) = collect.of("busy").ok_or("no busy operation")?;
    let percent = |v: Option<f64>| v.map_or("absent".to_owned(), |v| format!("{:.1}%", v * 100.0));
    println!(
        "| utilization peak, 200 ms kernel in a {:.0} ms operation | ~100% | {} | {} |",
        duration.as_secs_f64() * 1e3,
        percent(peaks.get(Figure::GpuUtilization)),
        if peaks.get(Figure::GpuUtilization).is_some_and(|u| u >= 0.9) {
            "ok"
        } else {
            "BELOW 90%"
        }
    );
    ok &= peaks.get(Figure::GpuUtilization).is_some_and(|u| u >= 0.9);
    println!(
        "| utilization mean (driver samples) | ~{:.0}% | {} | |",
        20_000.0 / (kernel.as_secs_f64() * 1e3).max(1.0),
        percent(peaks.get(Figure::GpuUtilizationMean))
    );
    println!(
        "| this process's SM utilization peak | ~100% | {} | |",
        percent(peaks.get(Figure::GpuProcessUtilization))
    );
    println!(
        "| GPM SM utilization | ~50% | {} | |",
        percent(peaks.get(Figure::GpuSmUtilization))
    );
    println!(
        "| GPM tensor activity | 0% | {} | |",
        percent(peaks.get(Figure::GpuTensorActivity))
    );
    println!(
        "| samples in the busy operation | | {} | |",
        peaks.samples.unwrap_or(0)
    );
    let _ = vidperf.shutdown(Duration::from_secs(2));
    Ok(ok)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("gpu_check: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
