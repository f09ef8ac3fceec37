//! Reading a shard's tensors from memory-mapped safetensors files.
//!
//! Only the files holding the shard's tensors are mapped, only its tensors are copied
//! out, and the maps are dropped once loading is done, so a shard with k of L layers
//! keeps about k/L of the layer weights resident.

use crate::{
	config::MistralConfig,
	error::{InferenceError, Result},
	model_dir::{self, ModelDir},
	LayerRange,
};
use candle_core::{safetensors::MmapedSafetensors, DType, Device, Tensor};
use std::{collections::HashMap, path::Path};

/// The tensors of one shard, by checkpoint name, on the target device and dtype.
pub struct ShardTensors {
	tensors: HashMap<String, Tensor>,
}

impl ShardTensors {
	/// Loads every tensor a shard over `range` needs, checking names and shapes.
	pub fn load(dir: &ModelDir, range: LayerRange, device: &Device, dtype: DType) -> Result<Self> {
		let config = dir.config();
		range.check_within(config.num_hidden_layers)?;
		let names = model_dir::shard_tensor_names(config, range);
		let files = dir.files_for(&names)?;
		// SAFETY: the files are mapped read-only and must not be modified while loading,
		// which is the contract of every memory-mapped checkpoint loader.
		let mapped = unsafe { MmapedSafetensors::multi(&files) }
			.map_err(|e| InferenceError::Weights(format!("cannot map safetensors files: {e}")))?;
		let mut tensors = HashMap::with_capacity(names.len());
		for name in &names {
			let view =
				mapped.get(name).map_err(|e| InferenceError::Weights(format!("{name}: {e}")))?;
			let expected = expected_shape(config, name)?;
			if view.shape() != expected.as_slice() {
				return Err(InferenceError::Weights(format!(
					"{name} has shape {:?} but config.json implies {expected:?}",
					view.shape()
				)));
			}
			let tensor = mapped
				.load(name, device)
				.map_err(|e| InferenceError::Weights(format!("{name}: {e}")))?
				.to_dtype(dtype)?;
			tensors.insert(name.clone(), tensor);
		}
		drop(mapped);
		Ok(ShardTensors { tensors })
	}

	/// Takes a tensor out (each is used once, by the module that owns it).
	pub fn take(&mut self, name: &str) -> Result<Tensor> {
		self.tensors
			.remove(name)
			.ok_or_else(|| InferenceError::Weights(format!("tensor {name} was not loaded")))
	}

	/// A tensor that may be used twice (a tied embedding / lm_head).
	pub fn get(&self, name: &str) -> Result<Tensor> {
		self.tensors
			.get(name)
			.cloned()
			.ok_or_else(|| InferenceError::Weights(format!("tensor {name} was not loaded")))
	}

	/// Rounds every tensor to `dtype` and back (weights as a bf16 device would hold them).
	pub fn round_all(&mut self, dtype: DType) -> Result<()> {
		for tensor in self.tensors.values_mut() {
			*tensor = crate::device::round_through(tensor.clone(), Some(dtype))?;
		}
		Ok(())
	}

	/// Total bytes held.
	pub fn bytes(&self) -> usize {
		self.tensors.values().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum()
	}
}

/// The shape `config` implies for a checkpoint tensor.
pub fn expected_shape(config: &MistralConfig, name: &str) -> Result<Vec<usize>> {
	let hidden = config.hidden_size;
	let q_width = config.num_attention_heads * config.head_dim();
	let kv_width = config.num_kv_heads() * config.head_dim();
	let inter = config.intermediate_size;
	let shape = match name {
		model_dir::EMBED_TOKENS | model_dir::LM_HEAD => vec![config.vocab_size, hidden],
		model_dir::FINAL_NORM => vec![hidden],
		_ => {
			let suffix = name
				.strip_prefix("model.layers.")
				.and_then(|rest| rest.split_once('.'))
				.map(|(_, suffix)| suffix)
				.ok_or_else(|| InferenceError::Weights(format!("unexpected tensor {name}")))?;
			match suffix {
				"input_layernorm.weight" | "post_attention_layernorm.weight" => vec![hidden],
				"self_attn.q_proj.weight" => vec![q_width, hidden],
				"self_attn.k_proj.weight" | "self_attn.v_proj.weight" => vec![kv_width, hidden],
				"self_attn.o_proj.weight" => vec![hidden, q_width],
				"mlp.gate_proj.weight" | "mlp.up_proj.weight" => vec![inter, hidden],
				"mlp.down_proj.weight" => vec![hidden, inter],
				other => {
					return Err(InferenceError::Weights(format!(
						"unexpected tensor suffix {other}"
					)))
				}
			}
		}
	};
	Ok(shape)
}

/// Names of the tensors in one safetensors file (reads only its header).
pub fn tensor_names_in_file(path: &Path) -> Result<Vec<String>> {
	let header = read_header(path)?;
	Ok(header.keys().filter(|k| *k != "__metadata__").cloned().collect())
}

/// The JSON header of a safetensors file, checked against the file's length.
pub fn read_header(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
	use std::io::Read;
	let mut file = std::fs::File::open(path).map_err(|e| InferenceError::io(path, e))?;
	let file_len = file.metadata().map_err(|e| InferenceError::io(path, e))?.len();
	let mut len_bytes = [0u8; 8];
	file.read_exact(&mut len_bytes).map_err(|_| {
		InferenceError::Weights(format!("{} is not a safetensors file", path.display()))
	})?;
	let header_len = u64::from_le_bytes(len_bytes);
	if header_len > 100 * 1024 * 1024 || header_len + 8 > file_len {
		return Err(InferenceError::Weights(format!(
			"{} is corrupt: header length {header_len} does not fit the file",
			path.display()
		)));
	}
	let mut header = vec![0u8; header_len as usize];
	file.read_exact(&mut header).map_err(|e| InferenceError::io(path, e))?;
	serde_json::from_slice(&header)
		.map_err(|e| InferenceError::Weights(format!("{}: corrupt header: {e}", path.display())))
}
