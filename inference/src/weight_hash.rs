//! The canonical hash of a chunk's weights, which the chain records so miners can show
//! they hold the right ones.
//!
//! SHA-256 over: the tag `dllm-chunk-weights-v1`, the layer range, then for every
//! tensor of the chunk in name order: name, dtype as stored, shape, and the raw bytes as
//! stored in the safetensors file (no conversion), each length-prefixed (u64 LE).

use crate::{
	config::MistralConfig,
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

/// Domain separation tag of version 1 of the config hash.
pub const CONFIG_TAG: &[u8] = b"dllm-engine-config-v1";

/// The hash of the config fields this engine computes with, which the registry binds
/// so that every miner runs the same architecture: the tag `dllm-engine-config-v1`,
/// then as u64 LE hidden size, intermediate size, layers, attention heads, key/value
/// heads, head size, vocabulary, longest position, sliding window (0: none), BOS
/// (`u64::MAX`: none), the number of EOS ids and each id; as f64 bits the RoPE base and
/// the norm epsilon; and the flag of tied embeddings. Fields the engine ignores (dtype
/// as stored, names, versions) are left out.
pub fn config_hash(config: &MistralConfig) -> Result<[u8; 32]> {
	let mut hasher = Sha256::new();
	put(&mut hasher, CONFIG_TAG);
	let eos = config.eos_token_ids();
	let words = [
		config.hidden_size as u64,
		config.intermediate_size as u64,
		config.num_hidden_layers as u64,
		config.num_attention_heads as u64,
		config.num_kv_heads() as u64,
		config.head_dim() as u64,
		config.vocab_size as u64,
		config.max_position_embeddings as u64,
		config.sliding_window.unwrap_or(0) as u64,
		config.bos_token_id.map_or(u64::MAX, u64::from),
		eos.len() as u64,
	];
	for word in words.into_iter().chain(eos.iter().map(|id| *id as u64)) {
		hasher.update(word.to_le_bytes());
	}
	hasher.update(config.rope_theta()?.to_bits().to_le_bytes());
	hasher.update(config.rms_norm_eps.to_bits().to_le_bytes());
	hasher.update([config.tie_word_embeddings as u8]);
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
