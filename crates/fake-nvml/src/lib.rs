//! A fake `libnvidia-ml.so` for tests, and a safe handle to script it.
//!
//! The library is real C, compiled by this crate's build script, and exports the NVML
//! symbols vidperf's monitor uses; loading it through `nvml-wrapper`'s
//! `Nvml::builder().lib_path(..)` exercises the real wrapper code path. Each
//! [`FakeNvml`] copies the library to its own file before loading it, so every instance
//! has its own state even when tests run side by side in one process.
//!
//! Beyond memory, utilization and processes, the fake scripts `nvmlDeviceGetSamples`
//! ([`FakeNvml::push_sample`]), `nvmlDeviceGetProcessUtilization`
//! ([`FakeNvml::push_process_utilization`]) and GPM ([`FakeNvml::set_gpm_supported`],
//! [`FakeNvml::set_gpm_activity`]).
//!
//! The crate also builds a fake NVTX injection tool ([`nvtx_injection_path`]): point
//! `NVTX_INJECTION64_PATH` at it before a process's first NVTX call and read back the
//! ranges it recorded with [`FakeNvtx`].

// reason: calling the fake libraries' C control functions is FFI; each call passes plain
// integers (or caller-owned buffers) to a function whose C signature is fixed in
// c/fake_nvml.c or c/fake_nvtx.c.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// NVML function groups whose result a test can script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// `nvmlInit_v2`.
    Init = 0,
    /// `nvmlDeviceGetCount_v2`.
    Count = 1,
    /// `nvmlDeviceGetHandleByIndex_v2`.
    Handle = 2,
    /// `nvmlDeviceGetMemoryInfo_v2`.
    Memory = 3,
    /// `nvmlDeviceGetUtilizationRates`.
    Utilization = 4,
    /// `nvmlDeviceGetComputeRunningProcesses_v3`.
    Processes = 5,
    /// `nvmlDeviceGetSamples`.
    Samples = 6,
    /// `nvmlDeviceGetProcessUtilization`.
    ProcessUtilization = 7,
    /// The GPM calls: `nvmlGpmQueryDeviceSupport`, `nvmlGpmSampleAlloc`,
    /// `nvmlGpmSampleGet`, `nvmlGpmMigSampleGet`, `nvmlGpmMetricsGet`. Not
    /// `nvmlGpmSampleFree`, which never fails or hangs (nvml-wrapper frees in `Drop`).
    Gpm = 8,
    /// `nvmlDeviceGetDecoderUtilization`.
    Decoder = 9,
    /// `nvmlDeviceGetEncoderUtilization`.
    Encoder = 10,
    /// `nvmlDeviceGetPowerUsage`.
    Power = 11,
    /// `nvmlDeviceGetTotalEnergyConsumption`.
    Energy = 12,
}

/// `nvmlSamplingType_t`: which ring [`FakeNvml::push_sample`] appends to. Every type is
/// answered as `NVML_VALUE_TYPE_UNSIGNED_INT`, as the driver does for utilization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleType {
    /// `NVML_TOTAL_POWER_SAMPLES`.
    Power = 0,
    /// `NVML_GPU_UTILIZATION_SAMPLES`.
    GpuUtilization = 1,
    /// `NVML_MEMORY_UTILIZATION_SAMPLES`.
    MemoryUtilization = 2,
    /// `NVML_ENC_UTILIZATION_SAMPLES`.
    EncoderUtilization = 3,
    /// `NVML_DEC_UTILIZATION_SAMPLES`.
    DecoderUtilization = 4,
    /// `NVML_PROCESSOR_CLK_SAMPLES`.
    ProcessorClock = 5,
    /// `NVML_MEMORY_CLK_SAMPLES`.
    MemoryClock = 6,
}

/// One scripted `nvmlProcessUtilizationSample_t`: process `pid`'s utilization, percent,
/// at `timestamp_us` (CPU time in microseconds, as NVML's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessSample {
    /// The process.
    pub pid: u32,
    /// When the sample was taken, microseconds (compare [`now_us`]).
    pub timestamp_us: u64,
    /// SM (3D/compute) utilization.
    pub sm: u32,
    /// Frame buffer memory utilization.
    pub mem: u32,
    /// Encoder utilization.
    pub enc: u32,
    /// Decoder utilization.
    pub dec: u32,
}

/// Microseconds since the Unix epoch: the clock NVML stamps samples with.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// NVML return codes used by the tests.
pub mod code {
    /// `NVML_SUCCESS`.
    pub const SUCCESS: i32 = 0;
    /// `NVML_ERROR_UNINITIALIZED`.
    pub const UNINITIALIZED: i32 = 1;
    /// `NVML_ERROR_INVALID_ARGUMENT`.
    pub const INVALID_ARGUMENT: i32 = 2;
    /// `NVML_ERROR_NOT_SUPPORTED`.
    pub const NOT_SUPPORTED: i32 = 3;
    /// `NVML_ERROR_NOT_FOUND`: what sample queries answer when nothing is newer.
    pub const NOT_FOUND: i32 = 6;
    /// `NVML_ERROR_INSUFFICIENT_SIZE`.
    pub const INSUFFICIENT_SIZE: i32 = 7;
    /// `NVML_ERROR_ARGUMENT_VERSION_MISMATCH`.
    pub const ARGUMENT_VERSION_MISMATCH: i32 = 25;
    /// `NVML_ERROR_DRIVER_NOT_LOADED`.
    pub const DRIVER_NOT_LOADED: i32 = 9;
    /// `NVML_ERROR_GPU_IS_LOST`.
    pub const GPU_IS_LOST: i32 = 15;
    /// `NVML_ERROR_UNKNOWN`.
    pub const UNKNOWN: i32 = 999;
}

/// Where the build script put the full fake library (shared by every user; prefer
/// [`FakeNvml::new`] for a private copy).
pub fn library_path() -> PathBuf {
    Path::new(env!("FAKE_NVML_DIR")).join("libnvidia-ml.so")
}

/// A private copy of the fake library without `nvmlDeviceGetMemoryInfo_v2`.
pub fn library_without_memory_info() -> PathBuf {
    private_copy(&Path::new(env!("FAKE_NVML_DIR")).join("libnvidia-ml-nomem.so"))
}

fn private_copy(source: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!("vidperf-fake-nvml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir for the fake NVML copy");
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let target = dir.join(format!("libnvidia-ml-{n}.so"));
    std::fs::copy(source, &target).expect("copy the fake NVML library");
    target
}

/// One private instance of the fake NVML library, scriptable from the test.
#[derive(Debug)]
pub struct FakeNvml {
    path: PathBuf,
    lib: libloading::Library,
}

impl FakeNvml {
    /// A fresh instance: one device, no memory used, 0% utilization, no processes, no
    /// samples, GPM unsupported.
    pub fn new() -> Self {
        let path = private_copy(&library_path());
        // SAFETY: loading our own library runs no initialisers beyond libc's.
        let lib = unsafe { libloading::Library::new(&path) }.expect("load the fake NVML library");
        Self { path, lib }
    }

    /// The path to pass to `Nvml::builder().lib_path(..)` (or vidperf's monitor config).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn call<A>(&self, name: &[u8], args: A)
    where
        A: CallArgs,
    {
        args.call(&self.lib, name);
    }

    /// Sets the number of devices (at most 8).
    pub fn set_device_count(&self, n: u32) {
        self.call(b"fake_nvml_set_device_count\0", (n,));
    }

    /// Sets device `dev`'s memory used and total, in bytes.
    pub fn set_memory(&self, dev: u32, used: u64, total: u64) {
        self.call(b"fake_nvml_set_memory\0", (dev, used, total));
    }

    /// Sets device `dev`'s GPU utilization, percent.
    pub fn set_utilization(&self, dev: u32, percent: u32) {
        self.call(b"fake_nvml_set_utilization\0", (dev, percent));
    }

    /// Sets device `dev`'s memory-controller utilization (`utilization.memory` of
    /// `nvmlDeviceGetUtilizationRates`), percent.
    pub fn set_memory_utilization(&self, dev: u32, percent: u32) {
        self.call(b"fake_nvml_set_memory_utilization\0", (dev, percent));
    }

    /// Sets device `dev`'s NVDEC and NVENC utilization, percent
    /// (`nvmlDeviceGetDecoderUtilization`, `nvmlDeviceGetEncoderUtilization`).
    pub fn set_codec_utilization(&self, dev: u32, decoder_percent: u32, encoder_percent: u32) {
        self.call(
            b"fake_nvml_set_codec_utilization\0",
            (dev, decoder_percent, encoder_percent),
        );
    }

    /// Sets device `dev`'s power draw, milliwatts (`nvmlDeviceGetPowerUsage`). The
    /// energy counter (`nvmlDeviceGetTotalEnergyConsumption`) grows at the power set, by
    /// the monotonic clock, as the driver's does: over `t` seconds at `p` mW it gains
    /// `p × t` mJ.
    pub fn set_power(&self, dev: u32, milliwatts: u32) {
        self.call(b"fake_nvml_set_power\0", (dev, milliwatts));
    }

    /// Sets device `dev`'s energy counter, millijoules since the driver loaded.
    pub fn set_energy(&self, dev: u32, millijoules: u64) {
        self.call(b"fake_nvml_set_energy\0", (dev, millijoules));
    }

    /// Makes one of the optional per-device calls ([`Function::Decoder`],
    /// [`Function::Encoder`], [`Function::Power`], [`Function::Energy`]) answer
    /// `NVML_ERROR_NOT_SUPPORTED` on device `dev` (a board without it), or answer again.
    pub fn set_supported(&self, dev: u32, function: Function, supported: bool) {
        self.call(
            b"fake_nvml_set_supported\0",
            (dev, function as i32, i32::from(supported)),
        );
    }

    /// Lists process `pid` using `used` bytes on device `dev`, in process slot `slot`.
    pub fn set_process(&self, dev: u32, slot: u32, pid: u32, used: u64) {
        self.call(b"fake_nvml_set_process\0", (dev, slot, pid, used));
    }

    /// Appends a sample of `sample_type` (`value` in the type's unit: percent for
    /// utilization) at `timestamp_us` to device `dev`'s ring, which keeps the newest 128.
    /// `nvmlDeviceGetSamples` returns, oldest first, those newer than the caller's
    /// `lastSeenTimeStamp`, and `NVML_ERROR_NOT_FOUND` when there are none. Push
    /// timestamps in increasing order, as the driver records them.
    pub fn push_sample(&self, dev: u32, sample_type: SampleType, timestamp_us: u64, value: u32) {
        self.call(
            b"fake_nvml_push_sample\0",
            (dev, sample_type as u32, timestamp_us, value),
        );
    }

    /// Appends a GPU utilization sample (`NVML_GPU_UTILIZATION_SAMPLES`), percent.
    pub fn push_utilization_sample(&self, dev: u32, timestamp_us: u64, percent: u32) {
        self.push_sample(dev, SampleType::GpuUtilization, timestamp_us, percent);
    }

    /// Appends a memory utilization sample (`NVML_MEMORY_UTILIZATION_SAMPLES`), percent.
    pub fn push_memory_utilization_sample(&self, dev: u32, timestamp_us: u64, percent: u32) {
        self.push_sample(dev, SampleType::MemoryUtilization, timestamp_us, percent);
    }

    /// Empties device `dev`'s ring of `sample_type` samples.
    pub fn clear_samples(&self, dev: u32, sample_type: SampleType) {
        self.call(b"fake_nvml_clear_samples\0", (dev, sample_type as u32));
    }

    /// Appends a per-process utilization entry to device `dev`'s ring (the newest 128
    /// kept). `nvmlDeviceGetProcessUtilization` returns, oldest first, those newer than
    /// the caller's `lastSeenTimeStamp`, and `NVML_ERROR_NOT_FOUND` when there are none.
    pub fn push_process_utilization(&self, dev: u32, sample: ProcessSample) {
        let ProcessSample {
            pid,
            timestamp_us,
            sm,
            mem,
            enc,
            dec,
        } = sample;
        self.call(
            b"fake_nvml_push_process_utilization\0",
            (dev, pid, timestamp_us, sm, mem, enc, dec),
        );
    }

    /// Empties device `dev`'s per-process utilization ring.
    pub fn clear_process_utilization(&self, dev: u32) {
        self.call(b"fake_nvml_clear_process_utilization\0", (dev,));
    }

    /// Makes device `dev` a GPU with GPM (a Hopper one) or without (the default, an older
    /// one): `nvmlGpmQueryDeviceSupport` answers accordingly, and `nvmlGpmSampleGet` on a
    /// device without GPM fails with `NVML_ERROR_NOT_SUPPORTED`.
    pub fn set_gpm_supported(&self, dev: u32, supported: bool) {
        self.call(
            b"fake_nvml_set_gpm_supported\0",
            (dev, i32::from(supported)),
        );
    }

    /// Sets device `dev`'s GPM activity, percent (clamped to 0..=100, resolution 0.0001):
    /// SM utilization (metric 2), SM occupancy (3) and any-tensor utilization (5).
    ///
    /// Each `nvmlGpmSampleGet` on the device closes one interval at the activity set at
    /// that moment, so the metrics between two consecutive samples are exactly the
    /// activity set when the later one was taken (a sample before a change and one after
    /// give the new values), and between samples further apart, the mean of the intervals
    /// in between. Starts at 0.
    pub fn set_gpm_activity(
        &self,
        dev: u32,
        sm_util_percent: f64,
        sm_occupancy_percent: f64,
        tensor_util_percent: f64,
    ) {
        self.call(
            b"fake_nvml_set_gpm_activity\0",
            (
                dev,
                sm_util_percent,
                sm_occupancy_percent,
                tensor_util_percent,
            ),
        );
    }

    /// GPM samples allocated and not yet freed: 0 once every `GpmSample` is dropped.
    pub fn gpm_live_samples(&self) -> i64 {
        // SAFETY: `fake_nvml_gpm_live_samples(void) -> long long`, see c/fake_nvml.c.
        unsafe {
            let f: libloading::Symbol<'_, unsafe extern "C" fn() -> i64> = self
                .lib
                .get(b"fake_nvml_gpm_live_samples\0")
                .expect("control symbol");
            f()
        }
    }

    /// Makes `function` return `code` (use [`code::SUCCESS`] to heal it).
    pub fn set_error(&self, function: Function, code: i32) {
        self.call(b"fake_nvml_set_error\0", (function as i32, code));
    }

    /// Makes every scripted NVML call sleep `ms` milliseconds before answering.
    pub fn set_hang_ms(&self, ms: u32) {
        self.call(b"fake_nvml_set_hang_ms\0", (ms,));
    }

    /// How many times `function` was called (for [`Function::Memory`], how many memory
    /// readings were taken).
    pub fn calls(&self, function: Function) -> u64 {
        // SAFETY: `fake_nvml_calls(int) -> unsigned long long`, see c/fake_nvml.c.
        unsafe {
            let f: libloading::Symbol<'_, unsafe extern "C" fn(i32) -> u64> =
                self.lib.get(b"fake_nvml_calls\0").expect("control symbol");
            f(function as i32)
        }
    }
}

impl Default for FakeNvml {
    fn default() -> Self {
        Self::new()
    }
}

/// Argument tuples of the control functions, each mapped to its C signature.
trait CallArgs {
    fn call(self, lib: &libloading::Library, name: &[u8]);
}

macro_rules! call_args {
    ($($arg:ident: $ty:ty),*) => {
        impl CallArgs for ($($ty,)*) {
            fn call(self, lib: &libloading::Library, name: &[u8]) {
                let ($($arg,)*) = self;
                // SAFETY: every control function returns void and takes exactly these
                // argument types, see c/fake_nvml.c.
                unsafe {
                    let f: libloading::Symbol<'_, unsafe extern "C" fn($($ty),*)> =
                        lib.get(name).expect("control symbol");
                    f($($arg),*);
                }
            }
        }
    };
}

call_args!(a: u32);
call_args!(a: u32, b: u32);
call_args!(a: u32, b: u32, c: u32);
call_args!(a: i32, b: i32);
call_args!(a: u32, b: u64, c: u64);
call_args!(a: u32, b: u32, c: u32, d: u64);
call_args!(a: u32, b: i32);
call_args!(a: u32, b: u64);
call_args!(a: u32, b: i32, c: i32);
call_args!(a: u32, b: u32, c: u64, d: u32);
call_args!(a: u32, b: u32, c: u64, d: u32, e: u32, f: u32, g: u32);
call_args!(a: u32, b: f64, c: f64, d: f64);

/// Where the build script put the fake NVTX injection tool: the path to set
/// `NVTX_INJECTION64_PATH` to. NVTX reads that variable once, at a process's first NVTX
/// call, so set it for a child process, or before any NVTX call in a test binary of its
/// own. Then open the same path with [`FakeNvtx::open`].
pub fn nvtx_injection_path() -> PathBuf {
    Path::new(env!("FAKE_NVTX_DIR")).join("libfake-nvtx.so")
}

/// What an [`NvtxEvent`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NvtxKind {
    /// A start/end range began (`nvtxRangeStart*`, `nvtxDomainRangeStartEx`).
    Start,
    /// A start/end range ended (`nvtxRangeEnd`, `nvtxDomainRangeEnd`).
    End,
    /// A push/pop range began (`nvtxRangePush*`, `nvtxDomainRangePushEx`).
    Push,
    /// A push/pop range ended (`nvtxRangePop`, `nvtxDomainRangePop`).
    Pop,
    /// An instant (`nvtxMark*`, `nvtxDomainMarkEx`).
    Mark,
}

impl NvtxKind {
    fn from_c(kind: i32) -> Option<Self> {
        Some(match kind {
            0 => Self::Start,
            1 => Self::End,
            2 => Self::Push,
            3 => Self::Pop,
            4 => Self::Mark,
            _ => return None,
        })
    }
}

/// One NVTX call the fake tool recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NvtxEvent {
    /// What happened.
    pub kind: NvtxKind,
    /// The domain's name as created (wide names converted to UTF-8); "" for NVTX's
    /// default domain (the calls without `Domain` in their name).
    pub domain: String,
    /// The message: ASCII, wide (converted to UTF-8) or a registered string, resolved.
    /// An end or pop carries the message of the range it ends; "" if that is unknown (a
    /// pop with nothing pushed, or more than 4096 ranges open at once).
    pub message: String,
    /// Start and end: the range id (`nvtxRangeId_t`, from 1). Otherwise 0.
    pub id: u64,
    /// The calling thread's Linux thread id.
    pub thread: u64,
    /// Push and pop: the 0-based nesting level of the range within its domain on its
    /// thread (what NVTX returns); -1 for a pop with nothing pushed; -2
    /// (`NVTX_NO_PUSH_POP_TRACKING`) beyond 256 levels. Otherwise 0.
    pub depth: i32,
    /// When, on the monotonic clock, in nanoseconds.
    pub time_ns: u64,
}

/// The fake NVTX tool's recording, as loaded by NVTX in this process.
///
/// `dlopen` of a path already loaded returns the same instance, so this reads what the
/// NVTX client in this process recorded. The tool keeps the first 4096 events and only
/// counts the rest ([`FakeNvtx::dropped`]).
#[derive(Debug)]
pub struct FakeNvtx {
    lib: libloading::Library,
}

/// `fake_nvtx_event`'s C signature, see c/fake_nvtx.c.
type EventFn = unsafe extern "C" fn(
    u64,
    *mut i32,
    *mut u64,
    *mut u64,
    *mut i32,
    *mut u64,
    *mut std::ffi::c_char,
    usize,
    *mut usize,
    *mut std::ffi::c_char,
    usize,
    *mut usize,
) -> i32;

impl FakeNvtx {
    /// Opens the tool at `path` (normally [`nvtx_injection_path`]), which fails if it is
    /// not the fake tool.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, libloading::Error> {
        // SAFETY: the fake tool runs no initialisers beyond libc's; if NVTX already
        // loaded it, this only takes another reference.
        let lib = unsafe { libloading::Library::new(path.as_ref()) }?;
        // SAFETY: only checks that the symbol exists; nothing is called.
        unsafe { lib.get::<EventFn>(b"fake_nvtx_event\0") }?;
        Ok(Self { lib })
    }

    fn counter(&self, name: &[u8]) -> u64 {
        // SAFETY: the counters are `unsigned long long name(void)`, see c/fake_nvtx.c.
        unsafe {
            let f: libloading::Symbol<'_, unsafe extern "C" fn() -> u64> =
                self.lib.get(name).expect("fake NVTX control symbol");
            f()
        }
    }

    /// How many times an NVTX client initialised the tool (1 once NVTX has loaded it).
    pub fn initializations(&self) -> u64 {
        self.counter(b"fake_nvtx_init_count\0")
    }

    /// Events not recorded because 4096 already were.
    pub fn dropped(&self) -> u64 {
        self.counter(b"fake_nvtx_dropped_count\0")
    }

    /// The recorded events, oldest first.
    pub fn events(&self) -> Vec<NvtxEvent> {
        let count = self.counter(b"fake_nvtx_event_count\0");
        (0..count).map_while(|i| self.event(i)).flatten().collect()
    }

    /// Event `i`: `None` if there is none (a reset since counting), `Some(None)` for a kind
    /// this wrapper does not know.
    fn event(&self, i: u64) -> Option<Option<NvtxEvent>> {
        // SAFETY: the signature is `EventFn`, checked to exist in `open`.
        let f = unsafe { self.lib.get::<EventFn>(b"fake_nvtx_event\0") }.ok()?;
        let mut domain = vec![0u8; 64];
        let mut message = vec![0u8; 256];
        loop {
            let (mut kind, mut id, mut thread, mut depth, mut time_ns) = (0, 0, 0, 0, 0);
            let (mut domain_len, mut message_len) = (0usize, 0usize);
            // SAFETY: every pointer is to a live local or to a buffer of the length passed
            // with it; the C side writes at most that many bytes and NUL-terminates.
            let rc = unsafe {
                f(
                    i,
                    &mut kind,
                    &mut id,
                    &mut thread,
                    &mut depth,
                    &mut time_ns,
                    domain.as_mut_ptr().cast(),
                    domain.len(),
                    &mut domain_len,
                    message.as_mut_ptr().cast(),
                    message.len(),
                    &mut message_len,
                )
            };
            if rc != 0 {
                return None;
            }
            if domain_len < domain.len() && message_len < message.len() {
                let Some(kind) = NvtxKind::from_c(kind) else {
                    return Some(None);
                };
                return Some(Some(NvtxEvent {
                    kind,
                    domain: String::from_utf8_lossy(&domain[..domain_len]).into_owned(),
                    message: String::from_utf8_lossy(&message[..message_len]).into_owned(),
                    id,
                    thread,
                    depth,
                    time_ns,
                }));
            }
            // Truncated: the lengths say how much room the strings need.
            domain.resize(domain_len.max(domain.len()) + 1, 0);
            message.resize(message_len.max(message.len()) + 1, 0);
        }
    }

    /// Forgets the recorded events and the dropped count (ranges still open end with
    /// their messages).
    pub fn reset(&self) {
        // SAFETY: `void fake_nvtx_reset(void)`, see c/fake_nvtx.c.
        unsafe {
            let f: libloading::Symbol<'_, unsafe extern "C" fn()> = self
                .lib
                .get(b"fake_nvtx_reset\0")
                .expect("fake NVTX control symbol");
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    //! Calls the fake's NVML entry points directly, the way nvml-wrapper 0.13 does
    //! (device.rs `samples`, `process_utilization_stats`, `gpm_support`, `gpm_sample`;
    //! gpm.rs `gpm_metrics_get`, `Drop for GpmSample`), and drives the NVTX tool the way
    //! NVTX's loader does (nvtx3/nvtxDetail/nvtxInit.h, nvtxImpl.h).

    use super::*;
    use std::ffi::{CStr, c_char, c_void};
    use std::ptr::{null, null_mut};

    type Device = *mut c_void;
    type GpmSample = *mut c_void;

    /// `nvmlSample_t`: the value union's `uiVal` is its first 4 bytes.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Sample {
        timestamp: u64,
        value: [u32; 2],
    }

    /// `nvmlProcessUtilizationSample_t`.
    #[repr(C)]
    #[derive(Clone, Copy, Default, Debug, PartialEq)]
    struct ProcUtil {
        pid: u32,
        timestamp: u64,
        sm: u32,
        mem: u32,
        enc: u32,
        dec: u32,
    }

    /// `nvmlGpmSupport_t`.
    #[repr(C)]
    struct GpmSupport {
        version: u32,
        supported: u32,
    }

    /// `nvmlGpmMetric_t`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct GpmMetric {
        id: u32,
        ret: i32,
        value: f64,
        short_name: *const c_char,
        long_name: *const c_char,
        unit: *const c_char,
    }

    /// `nvmlGpmMetricsGet_t`.
    #[repr(C)]
    struct GpmMetricsGet {
        version: u32,
        num: u32,
        sample1: GpmSample,
        sample2: GpmSample,
        metrics: [GpmMetric; 210],
    }

    const SM_UTIL: u32 = 2;
    const SM_OCCUPANCY: u32 = 3;
    const ANY_TENSOR_UTIL: u32 = 5;

    type GetSamples =
        unsafe extern "C" fn(Device, u32, u64, *mut u32, *mut u32, *mut Sample) -> i32;
    type GetProcUtil = unsafe extern "C" fn(Device, *mut ProcUtil, *mut u32, u64) -> i32;

    impl FakeNvml {
        /// Test-only: the entry point `name` as a `T` (a fn pointer type matching its C
        /// signature), valid while `self` lives.
        fn sym<T: Copy>(&self, name: &[u8]) -> T {
            // SAFETY: callers name T to match the C signature in c/fake_nvml.c.
            unsafe { *self.lib.get::<T>(name).expect("NVML symbol") }
        }

        fn device(&self, index: u32) -> Device {
            let init: unsafe extern "C" fn() -> i32 = self.sym(b"nvmlInit_v2\0");
            let handle: unsafe extern "C" fn(u32, *mut Device) -> i32 =
                self.sym(b"nvmlDeviceGetHandleByIndex_v2\0");
            let mut device = null_mut();
            // SAFETY: plain calls with a live out pointer.
            unsafe {
                assert_eq!(init(), code::SUCCESS);
                assert_eq!(handle(index, &mut device), code::SUCCESS);
            }
            device
        }
    }

    /// `Device::samples` step by step: (count query result, count, values fetched).
    fn samples(fake: &FakeNvml, dev: Device, ty: u32, last_seen: u64) -> (i32, Vec<(u64, u32)>) {
        let f: GetSamples = fake.sym(b"nvmlDeviceGetSamples\0");
        let (mut val_type, mut count) = (0u32, 0u32);
        // SAFETY: live out pointers; a NULL buffer asks for the count.
        let rc = unsafe { f(dev, ty, last_seen, &mut val_type, &mut count, null_mut()) };
        if rc != code::SUCCESS && rc != code::INSUFFICIENT_SIZE {
            return (rc, vec![]);
        }
        if count == 0 {
            return (rc, vec![]);
        }
        let mut buf = vec![Sample::default(); count as usize];
        let mut new_count = count;
        // SAFETY: `buf` holds `new_count` entries.
        let rc = unsafe {
            f(
                dev,
                ty,
                last_seen,
                &mut val_type,
                &mut new_count,
                buf.as_mut_ptr(),
            )
        };
        assert_eq!(val_type, 1, "NVML_VALUE_TYPE_UNSIGNED_INT");
        let got = buf[..new_count as usize]
            .iter()
            .map(|s| (s.timestamp, s.value[0]))
            .collect();
        (rc, got)
    }

    #[test]
    fn samples_follow_the_two_call_pattern_and_last_seen() {
        let fake = FakeNvml::new();
        let dev = fake.device(0);
        let get: GetSamples = fake.sym(b"nvmlDeviceGetSamples\0");

        // Nothing yet: NOT_FOUND on the count query, as the driver answers.
        assert_eq!(samples(&fake, dev, 1, 0), (code::NOT_FOUND, vec![]));

        fake.push_utilization_sample(0, 100, 10);
        fake.push_utilization_sample(0, 200, 20);
        fake.push_utilization_sample(0, 300, 30);
        let (mut val_type, mut count) = (0u32, 0u32);
        // SAFETY: live out pointers, NULL buffer.
        let rc = unsafe { get(dev, 1, 0, &mut val_type, &mut count, null_mut()) };
        assert_eq!((rc, count), (code::SUCCESS, 3));

        let all = vec![(100, 10), (200, 20), (300, 30)];
        assert_eq!(samples(&fake, dev, 1, 0), (code::SUCCESS, all));
        assert_eq!(
            samples(&fake, dev, 1, 150),
            (code::SUCCESS, vec![(200, 20), (300, 30)])
        );
        assert_eq!(
            samples(&fake, dev, 1, 200),
            (code::SUCCESS, vec![(300, 30)])
        );
        assert_eq!(samples(&fake, dev, 1, 300), (code::NOT_FOUND, vec![]));

        // A buffer too small for every newer sample (one pushed between the calls) gets the
        // oldest that fit, and SUCCESS (nvml.h: "fetches the number of entries which can
        // be accommodated").
        let mut buf = [Sample::default(); 2];
        let mut count = 2;
        // SAFETY: `buf` holds `count` entries.
        let rc = unsafe { get(dev, 1, 0, &mut val_type, &mut count, buf.as_mut_ptr()) };
        assert_eq!(
            (rc, count, buf[1].timestamp, buf[1].value[0]),
            (code::SUCCESS, 2, 200, 20)
        );
        // A zero-sized non-NULL buffer and a NULL count are invalid (nvml.h).
        let mut zero = 0;
        // SAFETY: no entry is written with a zero count; NULL count is checked.
        unsafe {
            assert_eq!(
                get(dev, 1, 0, &mut val_type, &mut zero, buf.as_mut_ptr()),
                code::INVALID_ARGUMENT
            );
            assert_eq!(
                get(dev, 1, 0, &mut val_type, null_mut(), null_mut()),
                code::INVALID_ARGUMENT
            );
        }

        // Types have rings of their own; unknown types are not supported.
        assert_eq!(samples(&fake, dev, 2, 0).0, code::NOT_FOUND);
        fake.push_memory_utilization_sample(0, 250, 55);
        assert_eq!(samples(&fake, dev, 2, 0), (code::SUCCESS, vec![(250, 55)]));
        assert_eq!(samples(&fake, dev, 7, 0).0, code::NOT_SUPPORTED);
        // Devices too.
        fake.set_device_count(2);
        assert_eq!(samples(&fake, fake.device(1), 1, 0).0, code::NOT_FOUND);

        // The ring keeps the newest 128.
        fake.clear_samples(0, SampleType::GpuUtilization);
        assert_eq!(samples(&fake, dev, 1, 0).0, code::NOT_FOUND);
        for t in 1..=130u32 {
            fake.push_utilization_sample(0, u64::from(t), t);
        }
        let (rc, got) = samples(&fake, dev, 1, 0);
        assert_eq!(
            (rc, got.len(), got[0], got[127]),
            (code::SUCCESS, 128, (3, 3), (130, 130))
        );

        // Scripted errors and counting go through the usual machinery.
        let before = fake.calls(Function::Samples);
        fake.set_error(Function::Samples, code::GPU_IS_LOST);
        assert_eq!(samples(&fake, dev, 1, 0).0, code::GPU_IS_LOST);
        fake.set_error(Function::Samples, code::SUCCESS);
        assert_eq!(samples(&fake, dev, 1, 0).0, code::SUCCESS);
        assert_eq!(fake.calls(Function::Samples), before + 3);
    }

    /// `Device::process_utilization_stats` step by step.
    fn process_utilization(fake: &FakeNvml, dev: Device, last_seen: u64) -> (i32, Vec<ProcUtil>) {
        let f: GetProcUtil = fake.sym(b"nvmlDeviceGetProcessUtilization\0");
        let mut count = 0;
        // SAFETY: live out pointer, NULL buffer.
        let rc = unsafe { f(dev, null_mut(), &mut count, last_seen) };
        if rc != code::SUCCESS && rc != code::INSUFFICIENT_SIZE {
            return (rc, vec![]);
        }
        assert_eq!(
            rc,
            code::INSUFFICIENT_SIZE,
            "the count query of a two-call function"
        );
        let mut buf = vec![ProcUtil::default(); count as usize];
        // SAFETY: `buf` holds `count` entries.
        let rc = unsafe { f(dev, buf.as_mut_ptr(), &mut count, last_seen) };
        buf.truncate(count as usize);
        (rc, buf)
    }

    #[test]
    fn process_utilization_follows_the_two_call_pattern_and_last_seen() {
        let fake = FakeNvml::new();
        let dev = fake.device(0);
        assert_eq!(
            process_utilization(&fake, dev, 0),
            (code::NOT_FOUND, vec![])
        );

        let a = ProcessSample {
            pid: 41,
            timestamp_us: 1_000,
            sm: 90,
            mem: 20,
            enc: 1,
            dec: 2,
        };
        let b = ProcessSample {
            pid: 42,
            timestamp_us: 2_000,
            sm: 10,
            mem: 5,
            enc: 0,
            dec: 0,
        };
        fake.push_process_utilization(0, a);
        fake.push_process_utilization(0, b);
        let c = |s: ProcessSample| ProcUtil {
            pid: s.pid,
            timestamp: s.timestamp_us,
            sm: s.sm,
            mem: s.mem,
            enc: s.enc,
            dec: s.dec,
        };
        assert_eq!(
            process_utilization(&fake, dev, 0),
            (code::SUCCESS, vec![c(a), c(b)])
        );
        assert_eq!(
            process_utilization(&fake, dev, 1_000),
            (code::SUCCESS, vec![c(b)])
        );
        assert_eq!(process_utilization(&fake, dev, 2_000).0, code::NOT_FOUND);

        // Too small a buffer: INSUFFICIENT_SIZE and the count needed.
        let f: GetProcUtil = fake.sym(b"nvmlDeviceGetProcessUtilization\0");
        let mut buf = [ProcUtil::default(); 1];
        let mut count = 1;
        // SAFETY: `buf` holds `count` entries.
        let rc = unsafe { f(dev, buf.as_mut_ptr(), &mut count, 0) };
        assert_eq!((rc, count), (code::INSUFFICIENT_SIZE, 2));

        fake.set_error(Function::ProcessUtilization, code::NOT_SUPPORTED);
        assert_eq!(process_utilization(&fake, dev, 0).0, code::NOT_SUPPORTED);
        fake.set_error(Function::ProcessUtilization, code::SUCCESS);
        fake.clear_process_utilization(0);
        assert_eq!(process_utilization(&fake, dev, 0).0, code::NOT_FOUND);
        assert_eq!(fake.calls(Function::ProcessUtilization), 9);
    }

    struct Gpm<'a> {
        fake: &'a FakeNvml,
        alloc: unsafe extern "C" fn(*mut GpmSample) -> i32,
        free: unsafe extern "C" fn(GpmSample) -> i32,
        get: unsafe extern "C" fn(Device, GpmSample) -> i32,
        metrics: unsafe extern "C" fn(*mut GpmMetricsGet) -> i32,
        support: unsafe extern "C" fn(Device, *mut GpmSupport) -> i32,
    }

    impl<'a> Gpm<'a> {
        fn new(fake: &'a FakeNvml) -> Self {
            Self {
                fake,
                alloc: fake.sym(b"nvmlGpmSampleAlloc\0"),
                free: fake.sym(b"nvmlGpmSampleFree\0"),
                get: fake.sym(b"nvmlGpmSampleGet\0"),
                metrics: fake.sym(b"nvmlGpmMetricsGet\0"),
                support: fake.sym(b"nvmlGpmQueryDeviceSupport\0"),
            }
        }

        fn supported(&self, dev: Device, version: u32) -> (i32, u32) {
            let mut s = GpmSupport {
                version,
                supported: 7,
            };
            // SAFETY: live pointer to a `nvmlGpmSupport_t`.
            let rc = unsafe { (self.support)(dev, &mut s) };
            (rc, s.supported)
        }

        /// `Device::gpm_sample`: alloc, then get (the sample is returned even if get
        /// fails, for the caller to free, as the wrapper's Drop does).
        fn sample(&self, dev: Device) -> (i32, GpmSample) {
            let mut s = null_mut();
            // SAFETY: live out pointer; `s` is the fake's own sample.
            unsafe {
                assert_eq!((self.alloc)(&mut s), code::SUCCESS);
                ((self.get)(dev, s), s)
            }
        }

        fn free(&self, s: GpmSample) {
            // SAFETY: `s` came from `nvmlGpmSampleAlloc` and is freed once.
            assert_eq!(unsafe { (self.free)(s) }, code::SUCCESS);
        }

        /// `gpm_metrics_get`: (call result, [(per-metric result, value, short name)]).
        fn metrics(
            &self,
            s1: GpmSample,
            s2: GpmSample,
            ids: &[u32],
        ) -> (i32, Vec<(i32, f64, String)>) {
            let empty = GpmMetric {
                id: 0,
                ret: 0,
                value: 0.0,
                short_name: null(),
                long_name: null(),
                unit: null(),
            };
            let mut req = Box::new(GpmMetricsGet {
                version: 1,
                num: u32::try_from(ids.len()).expect("few ids"),
                sample1: s1,
                sample2: s2,
                metrics: [empty; 210],
            });
            for (m, id) in req.metrics.iter_mut().zip(ids) {
                m.id = *id;
            }
            // SAFETY: a live, fully initialised `nvmlGpmMetricsGet_t`.
            let rc = unsafe { (self.metrics)(&mut *req) };
            let out = req.metrics[..ids.len()]
                .iter()
                .map(|m| {
                    let name = if m.short_name.is_null() {
                        String::new()
                    } else {
                        // SAFETY: the fake points at static NUL-terminated strings.
                        unsafe { CStr::from_ptr(m.short_name) }
                            .to_string_lossy()
                            .into_owned()
                    };
                    (m.ret, m.value, name)
                })
                .collect();
            (rc, out)
        }

        fn values(&self, s1: GpmSample, s2: GpmSample) -> Vec<f64> {
            let (rc, got) = self.metrics(s1, s2, &[SM_UTIL, SM_OCCUPANCY, ANY_TENSOR_UTIL]);
            assert_eq!(rc, code::SUCCESS);
            assert!(got.iter().all(|m| m.0 == code::SUCCESS));
            got.into_iter().map(|m| m.1).collect()
        }
    }

    #[test]
    fn gpm_metrics_are_the_activity_scripted_between_two_samples() {
        let fake = FakeNvml::new();
        let gpm = Gpm::new(&fake);
        let dev = fake.device(0);

        // Off by default (a pre-Hopper GPU): supported = 0, sampling not supported.
        assert_eq!(gpm.supported(dev, 1), (code::SUCCESS, 0));
        let (rc, s) = gpm.sample(dev);
        assert_eq!(rc, code::NOT_SUPPORTED);
        gpm.free(s);

        fake.set_gpm_supported(0, true);
        assert_eq!(gpm.supported(dev, 1), (code::SUCCESS, 1));
        assert_eq!(gpm.supported(dev, 2).0, code::ARGUMENT_VERSION_MISMATCH);

        // A sample before the activity changes and one after: exactly the new activity.
        let (rc, s1) = gpm.sample(dev);
        assert_eq!(rc, code::SUCCESS);
        fake.set_gpm_activity(0, 50.0, 25.0, 10.0);
        let (_, s2) = gpm.sample(dev);
        assert_eq!(gpm.values(s1, s2), [50.0, 25.0, 10.0]);
        // The next interval, at other values, whatever the wall-clock time between.
        fake.set_gpm_activity(0, 100.0, 0.0, 33.3);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (_, s3) = gpm.sample(dev);
        assert_eq!(gpm.values(s2, s3), [100.0, 0.0, 33.3]);
        // Across both intervals, their mean.
        let v = gpm.values(s1, s3);
        assert_eq!(&v[..2], [75.0, 12.5]);
        assert!((v[2] - 21.65).abs() < 1e-9, "{v:?}");
        // Clamped to 0..=100; no interval (the same sample twice) gives 0.
        fake.set_gpm_activity(0, 150.0, -5.0, f64::NAN);
        let (_, s4) = gpm.sample(dev);
        assert_eq!(gpm.values(s3, s4), [100.0, 0.0, 0.0]);
        assert_eq!(gpm.values(s4, s4), [0.0, 0.0, 0.0]);

        // Metric names, and per-slot NOT_SUPPORTED for metrics not modelled.
        let (rc, got) = gpm.metrics(s1, s2, &[1, SM_UTIL, 10, ANY_TENSOR_UTIL]);
        assert_eq!(rc, code::SUCCESS);
        assert_eq!(got[0], (code::NOT_SUPPORTED, 0.0, String::new()));
        assert_eq!(got[1], (code::SUCCESS, 50.0, "sm_util".to_owned()));
        assert_eq!(got[2].0, code::NOT_SUPPORTED);
        assert_eq!(got[3], (code::SUCCESS, 10.0, "any_tensor_util".to_owned()));

        // Caller errors: samples reversed, from two devices, unfilled; a wrong version.
        assert_eq!(gpm.metrics(s2, s1, &[SM_UTIL]).0, code::INVALID_ARGUMENT);
        fake.set_device_count(2);
        fake.set_gpm_supported(1, true);
        let (_, other) = gpm.sample(fake.device(1));
        assert_eq!(gpm.metrics(s1, other, &[SM_UTIL]).0, code::INVALID_ARGUMENT);
        let mut unfilled = null_mut();
        // SAFETY: live out pointer.
        assert_eq!(unsafe { (gpm.alloc)(&mut unfilled) }, code::SUCCESS);
        assert_eq!(
            gpm.metrics(s1, unfilled, &[SM_UTIL]).0,
            code::INVALID_ARGUMENT
        );

        // Scripted errors reach every counted GPM call; freeing still works.
        fake.set_error(Function::Gpm, code::UNKNOWN);
        assert_eq!(gpm.supported(dev, 1).0, code::UNKNOWN);
        assert_eq!(gpm.metrics(s1, s2, &[SM_UTIL]).0, code::UNKNOWN);
        let mut s = null_mut();
        // SAFETY: live out pointer.
        assert_eq!(unsafe { (gpm.alloc)(&mut s) }, code::UNKNOWN);
        fake.set_error(Function::Gpm, code::SUCCESS);
        assert!(fake.calls(Function::Gpm) >= 20);

        assert_eq!(fake.gpm_live_samples(), 6);
        for s in [s1, s2, s3, s4, other, unfilled] {
            gpm.free(s);
        }
        assert_eq!(gpm.fake.gpm_live_samples(), 0);
        // SAFETY: NULL is rejected, not dereferenced.
        assert_eq!(unsafe { (gpm.free)(null_mut()) }, code::INVALID_ARGUMENT);
    }

    #[test]
    fn memory_readings_are_counted() {
        let fake = FakeNvml::new();
        let dev = fake.device(0);
        let f: unsafe extern "C" fn(Device, *mut [u64; 5]) -> i32 =
            fake.sym(b"nvmlDeviceGetMemoryInfo_v2\0");
        fake.set_memory(0, 3, 10);
        let mut m = [0u64; 5];
        // SAFETY: `m` has `nvmlMemory_v2_t`'s size (version + 4 u64, padded).
        unsafe {
            assert_eq!(f(dev, &mut m), code::SUCCESS);
            assert_eq!(f(dev, &mut m), code::SUCCESS);
        }
        assert_eq!((m[1], m[4]), (10, 3));
        assert_eq!(fake.calls(Function::Memory), 2);
    }

    // ---- NVTX: the loader's side of the injection protocol, simulated ----

    type Slot = Option<unsafe extern "C" fn()>;
    /// `NVTX_CBID_CORE_SIZE` and `NVTX_CBID_CORE2_SIZE` (nvtxTypes.h): what
    /// `GetModuleFunctionTable` reports as the table size.
    const TABLE_SIZE: usize = 16;

    /// `NvtxExportTableCallbacks`.
    #[repr(C)]
    struct Callbacks {
        struct_size: usize,
        get_module: unsafe extern "C" fn(i32, *mut *mut *mut Slot, *mut u32) -> i32,
    }

    static CORE: std::sync::atomic::AtomicPtr<*mut Slot> =
        std::sync::atomic::AtomicPtr::new(null_mut());
    static CORE2: std::sync::atomic::AtomicPtr<*mut Slot> =
        std::sync::atomic::AtomicPtr::new(null_mut());
    static CALLBACKS: Callbacks = Callbacks {
        struct_size: size_of::<Callbacks>(),
        get_module,
    };

    unsafe extern "C" fn get_module(
        module: i32,
        table: *mut *mut *mut Slot,
        size: *mut u32,
    ) -> i32 {
        let t = match module {
            1 => CORE.load(Ordering::SeqCst),
            5 => CORE2.load(Ordering::SeqCst),
            _ => return 0,
        };
        // SAFETY: the tool passes live out pointers (the protocol's contract).
        unsafe {
            *table = t;
            *size = TABLE_SIZE as u32;
        }
        1
    }

    extern "C" fn get_export_table(id: u32) -> *const c_void {
        if id == 1 {
            (&raw const CALLBACKS).cast()
        } else {
            null()
        }
    }

    /// The `nvtxEventAttributes_t` prefix up to the message (48 bytes).
    #[repr(C)]
    struct Attributes {
        version: u16,
        size: u16,
        category: u32,
        color_type: i32,
        color: u32,
        payload_type: i32,
        reserved: i32,
        payload: u64,
        message_type: i32,
        message: *const c_void,
    }

    fn attributes(message_type: i32, message: *const c_void) -> Attributes {
        Attributes {
            version: 3,
            size: 48,
            category: 0,
            color_type: 0,
            color: 0,
            payload_type: 0,
            reserved: 0,
            payload: 0,
            message_type,
            message,
        }
    }

    #[test]
    fn the_nvtx_tool_records_ranges_with_domains_messages_and_nesting() {
        assert_eq!(size_of::<Attributes>(), 48);
        let path = nvtx_injection_path();
        let nvtx = FakeNvtx::open(&path).expect("open the fake NVTX tool");
        nvtx.reset();
        assert_eq!(nvtx.events(), vec![]);

        // The loader's tables: slot arrays, and arrays of pointers to the slots (0 and
        // TABLE_SIZE stay NULL, as in nvtxImpl.h).
        let mut core_slots: Vec<Slot> = vec![None; TABLE_SIZE + 1];
        let mut core2_slots: Vec<Slot> = vec![None; TABLE_SIZE + 1];
        let mut core: Vec<*mut Slot> = (0..=TABLE_SIZE)
            .map(|i| {
                if i == 0 || i == TABLE_SIZE {
                    null_mut()
                } else {
                    &raw mut core_slots[i]
                }
            })
            .collect();
        let mut core2: Vec<*mut Slot> = (0..=TABLE_SIZE)
            .map(|i| {
                if i == 0 || i == TABLE_SIZE {
                    null_mut()
                } else {
                    &raw mut core2_slots[i]
                }
            })
            .collect();
        CORE.store(core.as_mut_ptr(), Ordering::SeqCst);
        CORE2.store(core2.as_mut_ptr(), Ordering::SeqCst);

        // SAFETY: a second handle on the same library; `InitializeInjectionNvtx2` takes the
        // export-table getter, which stays valid (static), and writes only into the slots
        // the tables point at, which live until the end of the test.
        let lib = unsafe { libloading::Library::new(&path) }.expect("load the tool");
        let before = nvtx.initializations();
        unsafe {
            let init: libloading::Symbol<
                '_,
                unsafe extern "C" fn(extern "C" fn(u32) -> *const c_void) -> i32,
            > = lib.get(b"InitializeInjectionNvtx2\0").expect("entry point");
            assert_eq!(init(get_export_table), 1);
        }
        assert_eq!(nvtx.initializations(), before + 1);
        for i in 1..TABLE_SIZE {
            assert!(core_slots[i].is_some(), "CORE slot {i}");
            assert_eq!(core2_slots[i].is_some(), i != 6 && i != 7, "CORE2 slot {i}");
        }

        /// The slot as the NVTX function type it holds.
        macro_rules! slot {
            ($slots:ident[$i:expr] as $ty:ty) => {{
                let f = $slots[$i].expect("filled slot");
                // SAFETY: slot $i holds the tool's function of this type (callback ids
                // and signatures from nvtxTypes.h).
                unsafe { std::mem::transmute::<unsafe extern "C" fn(), $ty>(f) }
            }};
        }
        let start_a = slot!(core_slots[5] as unsafe extern "C" fn(*const c_char) -> u64);
        let end = slot!(core_slots[7] as unsafe extern "C" fn(u64));
        let push_a = slot!(core_slots[9] as unsafe extern "C" fn(*const c_char) -> i32);
        let pop = slot!(core_slots[11] as unsafe extern "C" fn() -> i32);
        let mark_a = slot!(core_slots[2] as unsafe extern "C" fn(*const c_char));
        let d_start =
            slot!(core2_slots[2] as unsafe extern "C" fn(*mut c_void, *const Attributes) -> u64);
        let d_end = slot!(core2_slots[3] as unsafe extern "C" fn(*mut c_void, u64));
        let d_push =
            slot!(core2_slots[4] as unsafe extern "C" fn(*mut c_void, *const Attributes) -> i32);
        let d_pop = slot!(core2_slots[5] as unsafe extern "C" fn(*mut c_void) -> i32);
        let register_w =
            slot!(core2_slots[11] as unsafe extern "C" fn(*mut c_void, *const u32) -> *mut c_void);
        let create_w = slot!(core2_slots[13] as unsafe extern "C" fn(*const u32) -> *mut c_void);
        let wide = |s: &str| s.chars().map(u32::from).chain([0]).collect::<Vec<u32>>();

        // SAFETY: each call passes NUL-terminated strings (wchar_t = u32 on Linux), live
        // attributes, and handles the tool returned.
        let (r1, r2, levels) = unsafe {
            let r1 = start_a(c"frame".as_ptr());
            let domain = create_w(wide("vidperf·gpu").as_ptr());
            let name = register_w(domain, wide("décode ☃").as_ptr());
            let attrs = attributes(3, name);
            let r2 = d_start(domain, &attrs);
            let ascii = attributes(1, c"inner".as_ptr().cast());
            let levels = [
                push_a(c"outer".as_ptr()),
                d_push(domain, &ascii),
                push_a(c"nested".as_ptr()),
                pop(),
                d_pop(domain),
                pop(),
                pop(),
            ];
            d_end(domain, r2);
            end(r1);
            mark_a(c"tick".as_ptr());
            // Another thread: its own id, its own nesting.
            let thread = std::thread::spawn(move || {
                push_a(c"worker".as_ptr());
                pop();
            });
            thread.join().expect("worker thread");
            (r1, r2, levels)
        };
        assert_ne!(r1, r2);
        assert_eq!(levels, [0, 0, 1, 1, 0, 0, -1]);

        let events = nvtx.events();
        let brief: Vec<(NvtxKind, &str, &str, u64, i32)> = events
            .iter()
            .map(|e| (e.kind, e.domain.as_str(), e.message.as_str(), e.id, e.depth))
            .collect();
        use NvtxKind::*;
        assert_eq!(
            brief,
            [
                (Start, "", "frame", r1, 0),
                (Start, "vidperf·gpu", "décode ☃", r2, 0),
                (Push, "", "outer", 0, 0),
                (Push, "vidperf·gpu", "inner", 0, 0),
                (Push, "", "nested", 0, 1),
                (Pop, "", "nested", 0, 1),
                (Pop, "vidperf·gpu", "inner", 0, 0),
                (Pop, "", "outer", 0, 0),
                (Pop, "", "", 0, -1),
                (End, "vidperf·gpu", "décode ☃", r2, 0),
                (End, "", "frame", r1, 0),
                (Mark, "", "tick", 0, 0),
                (Push, "", "worker", 0, 0),
                (Pop, "", "worker", 0, 0),
            ]
        );
        let main_thread = events[0].thread;
        assert!(events[..12].iter().all(|e| e.thread == main_thread));
        assert!(events[12..].iter().all(|e| e.thread != main_thread));
        assert!(events.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));

        // Long strings come back whole (the wrapper retries with bigger buffers).
        let long = "x".repeat(1000) + "\0";
        // SAFETY: a NUL-terminated string.
        unsafe { mark_a(long.as_ptr().cast()) };
        assert_eq!(nvtx.events().last().map(|e| e.message.len()), Some(1000));

        // Bounded: 4096 kept, the rest counted; reset forgets both.
        nvtx.reset();
        for _ in 0..4100 {
            // SAFETY: as above.
            unsafe { mark_a(c"m".as_ptr()) };
        }
        assert_eq!((nvtx.events().len(), nvtx.dropped()), (4096, 4));
        nvtx.reset();
        assert_eq!((nvtx.events().len(), nvtx.dropped()), (0, 0));
        // The tool has written into the slots through these; they must outlive it.
        drop((core, core2));
    }
}
