//! Devices and dtypes named on the command line.

use crate::error::{InferenceError, Result};
use candle_core::{DType, Device};

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
	}
}
