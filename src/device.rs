//! The device a run computes on, as a setting: parsed once from its name (`cpu`, `cuda`), opened
//! when the run starts, and named again to the `pets train` child processes of a study.

use candle_core::Device;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Where the model runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceKind {
    /// The CPU kernels, on rayon's threads.
    #[default]
    Cpu,
    /// GPU 0, through CUDA (a build with the `cuda` feature).
    Cuda,
}

/// A device name that is neither `cpu` nor `cuda`.
#[derive(Debug, Error)]
#[error("device {name}: expected cpu or cuda")]
pub struct UnknownDevice {
    /// The name as given.
    pub name: String,
}

impl DeviceKind {
    /// The device's name, as parsed.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        }
    }

    /// Opens the device. The GPU is opened once per process and shared: later calls return
    /// the same device (one context, one cuBLAS handle), bound to the calling thread.
    pub fn open(self) -> candle_core::Result<Device> {
        match self {
            DeviceKind::Cpu => Ok(Device::Cpu),
            DeviceKind::Cuda => {
                static OPENED: std::sync::Mutex<Option<Device>> = std::sync::Mutex::new(None);
                let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(device) = opened.as_ref() {
                    crate::run::bind_thread(device)?;
                    return Ok(device.clone());
                }
                // candle's per-thread default streams: the `--jobs` claim loops of a search run
                // side by side on the GPU (34 s for the README's search, 54 s on one shared
                // stream).
                let device = Device::new_cuda(0)?;
                #[cfg(feature = "cuda")]
                if let Device::Cuda(cuda) = &device {
                    crate::backbone::ops::cuda::prepare_device(cuda)?;
                }
                *opened = Some(device.clone());
                Ok(device)
            }
        }
    }
}

impl FromStr for DeviceKind {
    type Err = UnknownDevice;

    fn from_str(name: &str) -> Result<DeviceKind, UnknownDevice> {
        match name {
            "cpu" => Ok(DeviceKind::Cpu),
            "cuda" => Ok(DeviceKind::Cuda),
            _ => Err(UnknownDevice {
                name: name.to_string(),
            }),
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for kind in [DeviceKind::Cpu, DeviceKind::Cuda] {
            assert_eq!(kind.to_string().parse::<DeviceKind>().ok(), Some(kind));
        }
        let err = "tpu".parse::<DeviceKind>().err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("device tpu: expected cpu or cuda"));
    }
}
