//! A fake `libnvidia-ml.so` for tests, and a safe handle to script it.
//!
//! The library is real C, compiled by this crate's build script, and exports the NVML
//! symbols vidperf's monitor uses; loading it through `nvml-wrapper`'s
//! `Nvml::builder().lib_path(..)` exercises the real wrapper code path. Each
//! [`FakeNvml`] copies the library to its own file before loading it, so every instance
//! has its own state even when tests run side by side in one process.

// reason: calling the fake library's C control functions is FFI; each call passes plain
// integers to a function whose C signature is fixed in c/fake_nvml.c.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
}

/// NVML return codes used by the tests.
pub mod code {
    /// `NVML_SUCCESS`.
    pub const SUCCESS: i32 = 0;
    /// `NVML_ERROR_NOT_SUPPORTED`.
    pub const NOT_SUPPORTED: i32 = 3;
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
    /// A fresh instance: one device, no memory used, 0% utilization, no processes.
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

    /// Lists process `pid` using `used` bytes on device `dev`, in process slot `slot`.
    pub fn set_process(&self, dev: u32, slot: u32, pid: u32, used: u64) {
        self.call(b"fake_nvml_set_process\0", (dev, slot, pid, used));
    }

    /// Makes `function` return `code` (use [`code::SUCCESS`] to heal it).
    pub fn set_error(&self, function: Function, code: i32) {
        self.call(b"fake_nvml_set_error\0", (function as i32, code));
    }

    /// Makes every scripted NVML call sleep `ms` milliseconds before answering.
    pub fn set_hang_ms(&self, ms: u32) {
        self.call(b"fake_nvml_set_hang_ms\0", (ms,));
    }

    /// How many times `function` was called.
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
call_args!(a: i32, b: i32);
call_args!(a: u32, b: u64, c: u64);
call_args!(a: u32, b: u32, c: u32, d: u64);
