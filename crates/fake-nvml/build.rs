//! Compiles `c/fake_nvml.c` into two shared libraries in `OUT_DIR`: the full fake, and
//! one without `nvmlDeviceGetMemoryInfo_v2` (the "symbol missing" case); and
//! `c/fake_nvtx.c` into `libfake-nvtx.so`, a fake NVTX injection tool. Uses the C compiler
//! the `cc` crate finds (set `CC` to choose another).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let nvml = Path::new("c/fake_nvml.c");
    let nvtx = Path::new("c/fake_nvtx.c");
    println!("cargo::rerun-if-changed={}", nvml.display());
    println!("cargo::rerun-if-changed={}", nvtx.display());
    let compiler = cc::Build::new().opt_level(1).get_compiler();
    for (source, name, extra) in [
        (nvml, "libnvidia-ml.so", None),
        (
            nvml,
            "libnvidia-ml-nomem.so",
            Some("-DFAKE_NVML_NO_MEMORY_INFO"),
        ),
        (nvtx, "libfake-nvtx.so", None),
    ] {
        let target = out.join(name);
        let mut cmd: Command = compiler.to_command();
        // -pthread: both libraries take a mutex (glibc before 2.34 keeps it in libpthread).
        cmd.args([
            "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-pthread", "-o",
        ])
        .arg(&target)
        .arg(source);
        if let Some(flag) = extra {
            cmd.arg(flag);
        }
        let status = cmd.status().unwrap_or_else(|e| {
            panic!("cannot run the C compiler ({e}); install one (scripts/test.sh installs gcc)")
        });
        assert!(
            status.success(),
            "compiling {} failed: {status}",
            source.display()
        );
    }
    println!("cargo::rustc-env=FAKE_NVML_DIR={}", out.display());
    println!("cargo::rustc-env=FAKE_NVTX_DIR={}", out.display());
}
