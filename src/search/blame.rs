//! Whose failure a trial's error is. The design's own (a loss that is not finite, a shape or graph
//! it cannot take) fails that trial and the search goes on; anything else (the device, the
//! driver, out of memory, I/O, the model files, the store) would fail every trial after it the
//! same way, so it stops the study and leaves the trial to be claimed again on resume.

use crate::train::TrainError;
use crate::Error;

/// Who a training error is blamed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The design itself: the trial fails, the search goes on.
    Design,
    /// The machine or its files: the study stops; the trial is trained again on resume.
    Infrastructure,
}

/// Classifies an error of training one design. Errors nothing identifies as the design's are
/// infrastructure: stopping on an unknown error costs a resume, failing trials on it loses them.
pub fn blame(error: &Error) -> Blame {
    match error {
        Error::Spec(_) | Error::Graph(_) => Blame::Design,
        Error::Compile(crate::compile::CompileError::Invalid(_)) => Blame::Design,
        Error::Compile(crate::compile::CompileError::Tensor(e)) => candle_blame(e),
        Error::Train(e) => train_blame(e),
        Error::Candle(e) => candle_blame(e),
        _ => Blame::Infrastructure,
    }
}

fn train_blame(error: &TrainError) -> Blame {
    match error {
        TrainError::NonFiniteLoss { .. }
        | TrainError::NonFiniteDevLoss { .. }
        | TrainError::MissingGradient { .. }
        | TrainError::InvalidConfig(_)
        | TrainError::Message(_) => Blame::Design,
        // The task's split, the same for every design.
        TrainError::EmptySplit { .. } => Blame::Infrastructure,
        TrainError::Candle(e) => candle_blame(e),
    }
}

/// A tensor error: the backend's (CUDA driver, cuBLAS, out of memory), files' and wrapped foreign
/// errors are the machine's; shape, dtype and op errors, and the messages of pets' own ops, are
/// the graph the design built.
fn candle_blame(error: &candle_core::Error) -> Blame {
    use candle_core::Error as C;
    match error {
        C::Context { inner, .. } | C::WithBacktrace { inner, .. } | C::WithPath { inner, .. } => {
            candle_blame(inner)
        }
        C::Cuda(_)
        | C::Metal(_)
        | C::NotCompiledWithCudaSupport
        | C::NotCompiledWithMetalSupport
        | C::Io(_)
        | C::SafeTensor(_)
        | C::UnsupportedSafeTensorDtype(_)
        | C::CannotFindTensor { .. }
        | C::Zip(_)
        | C::Npy(_)
        // candle wraps a failed stream synchronisation this way, among other foreign errors.
        | C::Wrapped(_)
        | C::WrappedContext { .. } => Blame::Infrastructure,
        _ => Blame::Design,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// What cudarc's driver errors look like through candle (`CudaError` is private to its
    /// feature; candle boxes it as any error).
    fn driver_error(code: &str) -> candle_core::Error {
        candle_core::Error::Cuda(Box::new(std::io::Error::other(format!(
            "DriverError({code}, \"invalid device context\")"
        ))))
    }

    #[test]
    fn device_and_driver_errors_are_infrastructure_however_wrapped() {
        let plain = driver_error("CUDA_ERROR_INVALID_CONTEXT");
        assert_eq!(blame(&Error::Candle(plain)), Blame::Infrastructure);
        let oom = driver_error("CUDA_ERROR_OUT_OF_MEMORY").bt();
        assert_eq!(blame(&Error::Candle(oom)), Blame::Infrastructure);
        let in_training = TrainError::Candle(driver_error("CUDA_ERROR_ILLEGAL_ADDRESS"));
        assert_eq!(blame(&Error::Train(in_training)), Blame::Infrastructure);
        let creating = crate::compile::CompileError::Tensor(
            driver_error("CUDA_ERROR_OUT_OF_MEMORY").context("lora.layer0"),
        );
        assert_eq!(blame(&Error::Compile(creating)), Blame::Infrastructure);
        let sync = candle_core::Error::wrap(std::io::Error::other("stream synchronize"));
        assert_eq!(blame(&Error::Candle(sync)), Blame::Infrastructure);
    }

    #[test]
    fn files_store_and_model_loading_are_infrastructure() {
        let io = crate::error::io_err("writing runs/7/metrics.json")(std::io::Error::other("full"));
        assert_eq!(blame(&io), Blame::Infrastructure);
        let weights = crate::backbone::BackboneError::Weights {
            path: "model.safetensors".into(),
            message: "DriverError(CUDA_ERROR_INVALID_CONTEXT)".into(),
        };
        assert_eq!(blame(&Error::Backbone(weights)), Blame::Infrastructure);
        let store = crate::search::store::StoreError::NotOwner {
            study: "mam".into(),
            number: 3,
            owner: "host pid 1".into(),
        };
        assert_eq!(blame(&Error::Store(store)), Blame::Infrastructure);
        let split = TrainError::EmptySplit { which: "train" };
        assert_eq!(blame(&Error::Train(split)), Blame::Infrastructure);
    }

    #[test]
    fn a_loss_that_is_not_finite_or_a_shape_it_cannot_take_is_the_designs() {
        let nan = TrainError::NonFiniteLoss {
            step: 0,
            loss: f64::NAN,
        };
        assert_eq!(blame(&Error::Train(nan)), Blame::Design);
        let dev = TrainError::NonFiniteDevLoss {
            epoch: 1,
            loss: f64::INFINITY,
        };
        assert_eq!(blame(&Error::Train(dev)), Blame::Design);
        // A real shape error from a matmul that cannot take its operands.
        let a = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let shape = a.matmul(&a).unwrap_err();
        assert_eq!(blame(&Error::Candle(shape)), Blame::Design);
        let bad = crate::spec::Design::from_ron("Design(name: \"x\", modules: [", "test")
            .map(|_| ())
            .unwrap_err();
        assert_eq!(blame(&Error::Spec(bad)), Blame::Design);
    }
}
