//! The canonical hash of a chunk's weights, which the chain records so miners can show
//! they hold the right ones.
//!
//! SHA-256 over: the tag `dllm-chunk-weights-v1`, the layer range, then for every
//! tensor of the chunk in name order: name, dtype as stored, shape, and the raw bytes as
//! stored in the safetensors file (no conversion), each length-prefixed (u64 LE).

use crate::{
	error::{InferenceError, Result},
	model_dir::{self, ModelDir},
	LayerRange,
};
use candle_core::safetensors::MmapedSafetensors;
use sha2::{Digest, Sha256};

/// Domain separation tag of version 1 of the hash.
pub const TAG: &[u8] = b"dllm-chunk-weights-v1";

fn put(hasher: &mut Sha256, bytes: &[u8]) {
	hasher.update((bytes.len() as u64).to_le_bytes());
	hasher.update(bytes);
}

/// The 32-byte hash of the chunk `range` of the model in `dir`.
pub fn chunk_hash(dir: &ModelDir, range: LayerRange) -> Result<[u8; 32]> {
	range.check_within(dir.config().num_hidden_layers)?;
	let names = model_dir::shard_tensor_names(dir.config(), range);
	let files = dir.files_for(&names)?;
	// SAFETY: read-only maps of files that are not modified while hashing.
	let mapped = unsafe { MmapedSafetensors::multi(&files) }
		.map_err(|e| InferenceError::Weights(format!("cannot map safetensors files: {e}")))?;
	let mut hasher = Sha256::new();
	put(&mut hasher, TAG);
	hasher.update((range.start as u64).to_le_bytes());
	hasher.update((range.end as u64).to_le_bytes());
	for name in &names {
		let view = mapped.get(name).map_err(|e| InferenceError::Weights(format!("{name}: {e}")))?;
		put(&mut hasher, name.as_bytes());
		put(&mut hasher, format!("{:?}", view.dtype()).as_bytes());
		hasher.update((view.shape().len() as u64).to_le_bytes());
		for dim in view.shape() {
			hasher.update((*dim as u64).to_le_bytes());
		}
		put(&mut hasher, view.data());
	}
	Ok(hasher.finalize().into())
}

/// SHA-256 of `tokenizer.json`'s bytes.
pub fn tokenizer_hash(dir: &ModelDir) -> Result<[u8; 32]> {
	let path = dir.tokenizer_path();
	let bytes = std::fs::read(&path).map_err(|e| InferenceError::io(&path, e))?;
	Ok(Sha256::digest(&bytes).into())
}

/// `0x`-prefixed lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
	let mut out = String::with_capacity(2 + 2 * bytes.len());
	out.push_str("0x");
	for b in bytes {
		out.push_str(&format!("{b:02x}"));
	}
	out
}
