//! Devices and dtypes named on the command line.

use crate::error::{InferenceError, Result};
use candle_core::{DType, Device, Tensor};

/// Parses `cpu` or `cuda:N` (`cuda` means `cuda:0`).
pub fn parse_device(name: &str) -> Result<Device> {
	match name {
		"cpu" => Ok(Device::Cpu),
		cuda if cuda == "cuda" || cuda.starts_with("cuda:") => {
			let ordinal = match cuda.strip_prefix("cuda:") {
				None => 0,
				Some(n) => n
					.parse()
					.map_err(|_| InferenceError::Device(format!("{name:?}: expected cuda:N")))?,
			};
			cuda_device(ordinal)
		}
		other => {
			Err(InferenceError::Device(format!("unknown device {other:?}; use cpu or cuda:N")))
		}
	}
}

#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<Device> {
	Device::new_cuda(ordinal).map_err(|e| InferenceError::Device(format!("cuda:{ordinal}: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(ordinal: usize) -> Result<Device> {
	Err(InferenceError::Device(format!(
		"cuda:{ordinal} requested but this build has no CUDA support; rebuild with --features cuda"
	)))
}

/// Parses `f32`, `f16` or `bf16` (a dtype to store weights in).
pub fn dtype_from_name(name: &str) -> Result<DType> {
	match name {
		"f32" => Ok(DType::F32),
		"f16" => Ok(DType::F16),
		"bf16" => Ok(DType::BF16),
		other => {
			Err(InferenceError::Device(format!("unknown dtype {other:?}; use f32, f16 or bf16")))
		}
	}
}

/// Parses `f32`, `f16` or `bf16`, and refuses what the device cannot compute in.
pub fn parse_dtype(name: &str, device: &Device) -> Result<DType> {
	let dtype = dtype_from_name(name)?;
	if device.is_cpu() && dtype == DType::BF16 {
		// candle's CPU matmul has no bf16 kernel.
		return Err(InferenceError::Device("bf16 is not supported on cpu; use f32 or f16".into()));
	}
	Ok(dtype)
}

/// How a shard computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComputeFormat {
	/// dtype of the weights and activations.
	pub dtype: DType,
	/// When set, weights and every stored activation are rounded to this dtype around
	/// math in `dtype`: how a CPU, whose matmul has no bf16 kernel, reproduces a bf16
	/// GPU (which also accumulates in f32 and stores bf16 after each operation).
	pub round_to: Option<DType>,
}

impl ComputeFormat {
	/// Native computation in `dtype`.
	pub const fn native(dtype: DType) -> Self {
		ComputeFormat { dtype, round_to: None }
	}

	/// bf16 emulated in f32.
	pub const BF16_EMULATED: ComputeFormat =
		ComputeFormat { dtype: DType::F32, round_to: Some(DType::BF16) };

	/// `f32`, `f16`, `bf16` (native where the device has it) or `bf16-emulated`.
	pub fn name(&self) -> &'static str {
		match (self.dtype, self.round_to) {
			(_, Some(_)) => "bf16-emulated",
			(DType::F16, None) => "f16",
			(DType::BF16, None) => "bf16",
			_ => "f32",
		}
	}
}

/// Parses `f32`, `f16` or `bf16`; bf16 on a CPU is emulated (f32 math rounded to bf16).
pub fn parse_format(name: &str, device: &Device) -> Result<ComputeFormat> {
	match dtype_from_name(name)? {
		DType::BF16 if device.is_cpu() => Ok(ComputeFormat::BF16_EMULATED),
		dtype => Ok(ComputeFormat::native(dtype)),
	}
}

/// Rounds `tensor` to `round_to` and back to its own dtype (a no-op for `None`).
pub fn round_through(tensor: Tensor, round_to: Option<DType>) -> Result<Tensor> {
	match round_to {
		Some(dtype) if dtype != tensor.dtype() => {
			let own = tensor.dtype();
			Ok(tensor.to_dtype(dtype)?.to_dtype(own)?)
		}
		_ => Ok(tensor),
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn names() {
		assert!(parse_device("cpu").is_ok());
		assert!(parse_device("tpu").unwrap_err().to_string().contains("unknown device"));
		assert!(parse_device("cuda:x").is_err());
		#[cfg(not(feature = "cuda"))]
		assert!(parse_device("cuda:0").unwrap_err().to_string().contains("--features cuda"));
		assert_eq!(parse_dtype("f16", &Device::Cpu).unwrap(), DType::F16);
		assert!(parse_dtype("bf16", &Device::Cpu).is_err());
		assert!(parse_dtype("f64", &Device::Cpu).is_err());
		assert_eq!(parse_format("bf16", &Device::Cpu).unwrap(), ComputeFormat::BF16_EMULATED);
		assert_eq!(parse_format("f16", &Device::Cpu).unwrap().name(), "f16");
	}

	#[test]
	fn rounding_through_bf16_keeps_8_bits_of_mantissa() {
		let x = Tensor::new(&[1.0f32 + 1.0 / 256.0 + 1.0 / 1024.0, 3.0], &Device::Cpu).unwrap();
		let rounded = round_through(x, Some(DType::BF16)).unwrap().to_vec1::<f32>().unwrap();
		assert_eq!(rounded, vec![1.0 + 1.0 / 128.0, 3.0]);
	}
}
