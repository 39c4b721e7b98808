//! With the `cuda` feature, compiles pets' CUDA kernels (`src/backbone/ops/cuda/kernels.cu`) to
//! PTX in OUT_DIR with nvcc, for `include_str!`; without it, does nothing.

use std::path::PathBuf;
use std::process::Command;

const KERNELS: &str = "src/backbone/ops/cuda/kernels.cu";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    println!("cargo:rerun-if-changed={KERNELS}");
    for var in ["NVCC", "CUDA_ROOT", "CUDA_COMPUTE_CAP"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let nvcc = std::env::var_os("NVCC")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CUDA_ROOT").map(|r| PathBuf::from(r).join("bin/nvcc")))
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    // PTX for the oldest architecture the kernels need (warp shuffles: 7.0) unless told: the
    // driver compiles it for the GPU it runs on.
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "70".into());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("pets_kernels.ptx");
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3"])
        .arg(format!("-arch=compute_{cap}"))
        .arg(KERNELS)
        .arg("-o")
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{} failed on {KERNELS}: {s}", nvcc.display()),
        Err(e) => panic!(
            "running {} for {KERNELS}: {e} (set NVCC or CUDA_ROOT)",
            nvcc.display()
        ),
    }
}
