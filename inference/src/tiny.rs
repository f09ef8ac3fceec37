//! Random Mistral checkpoints of any size, in the Hugging Face layout, so tests,
//! benchmarks and the node run end to end with no download: `config.json`, a byte-level
//! `tokenizer.json`, several `*.safetensors` files and their index.
//!
//! Weights come from a seeded generator (SplitMix64 + Box-Muller with `libm`), so the
//! same spec and seed give byte-identical files, and so identical chunk hashes.

use crate::{
	error::{InferenceError, Result},
	model_dir::{self, INDEX_FILE},
};
use candle_core::{DType, Device, Tensor};
use std::{collections::HashMap, path::Path};

/// Shape and seed of a random model.
#[derive(Debug, Clone, PartialEq)]
pub struct TinySpec {
	/// Decoder layers.
	pub layers: usize,
	/// Residual width.
	pub hidden: usize,
	/// Query heads.
	pub heads: usize,
	/// Key/value heads.
	pub kv_heads: usize,
	/// Per-head width (None: hidden / heads).
	pub head_dim: Option<usize>,
	/// MLP width.
	pub intermediate: usize,
	/// Vocabulary (at least 259: 3 special tokens and 256 bytes).
	pub vocab: usize,
	/// Attention window (None: full attention).
	pub sliding_window: Option<usize>,
	/// Longest sequence.
	pub max_positions: usize,
	/// RoPE base frequency.
	pub rope_theta: f64,
	/// Number of safetensors files (at most one per layer, at least 1).
	pub files: usize,
	/// dtype of the stored weights (f32, f16 or bf16).
	pub dtype: DType,
	/// Seed of the weights.
	pub seed: u64,
}

impl Default for TinySpec {
	fn default() -> Self {
		TinySpec {
			layers: 4,
			hidden: 64,
			heads: 4,
			kv_heads: 2,
			head_dim: None,
			intermediate: 128,
			vocab: 320,
			sliding_window: Some(16),
			max_positions: 512,
			rope_theta: 10_000.0,
			files: 3,
			dtype: DType::F32,
			seed: 0,
		}
	}
}

/// Ids of the special tokens of the generated tokenizer.
pub const UNK: u32 = 0;
/// Beginning of sequence.
pub const BOS: u32 = 1;
/// End of sequence.
pub const EOS: u32 = 2;
/// Id of byte 0x00; byte b is `BYTE_BASE + b`.
pub const BYTE_BASE: u32 = 3;

struct Rng(u64);

impl Rng {
	fn next_u64(&mut self) -> u64 {
		self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
		let mut z = self.0;
		z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
		z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
		z ^ (z >> 31)
	}

	fn uniform(&mut self) -> f64 {
		((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
	}

	/// Standard normal (Box-Muller).
	fn normal(&mut self) -> f64 {
		let (u1, u2) = (self.uniform(), self.uniform());
		libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * std::f64::consts::PI * u2)
	}
}

impl TinySpec {
	/// Mistral-7B's shapes (v0.1: hidden 4096, MLP 14336, 32 query and 8 key/value heads
	/// of 128, vocabulary 32000, RoPE base 10⁴, window 4096, 32768 positions) with
	/// `layers` layers; v0.2's RoPE base is 10⁶ (set [`TinySpec::rope_theta`]).
	pub fn mistral_7b(layers: usize) -> Self {
		TinySpec {
			layers,
			hidden: 4096,
			heads: 32,
			kv_heads: 8,
			head_dim: Some(128),
			intermediate: 14_336,
			vocab: 32_000,
			sliding_window: Some(4096),
			max_positions: 32_768,
			rope_theta: 10_000.0,
			files: layers.clamp(1, 8),
			dtype: DType::F32,
			seed: 0,
		}
	}

	fn validate(&self) -> Result<()> {
		let bad = |m: String| Err(InferenceError::Config(m));
		if self.layers == 0 || self.hidden == 0 || self.heads == 0 || self.intermediate == 0 {
			return bad("layers, hidden, heads and intermediate must be positive".into());
		}
		if self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
			return bad(format!(
				"heads ({}) must be a multiple of kv-heads ({})",
				self.heads, self.kv_heads
			));
		}
		match self.head_dim {
			Some(d) if d == 0 || !d.is_multiple_of(2) => {
				return bad(format!("head dim ({d}) must be even and positive"))
			}
			Some(_) => {}
			None if !self.hidden.is_multiple_of(self.heads)
				|| !(self.hidden / self.heads).is_multiple_of(2) =>
			{
				return bad(format!(
					"hidden ({}) / heads ({}) must be an even integer (or give the head dim)",
					self.hidden, self.heads
				))
			}
			None => {}
		}
		if self.vocab < BYTE_BASE as usize + 256 {
			return bad(format!(
				"vocab ({}) must be at least 259 for the byte-level tokenizer",
				self.vocab
			));
		}
		if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
			return bad(format!(
				"rope theta ({}) must be a finite number above 1",
				self.rope_theta
			));
		}
		if self.sliding_window == Some(0) || self.max_positions == 0 {
			return bad("sliding window and max positions must be positive".into());
		}
		if self.dtype == DType::BF16 || self.dtype == DType::F16 || self.dtype == DType::F32 {
			Ok(())
		} else {
			bad(format!("dtype {:?} (use f32, f16 or bf16)", self.dtype))
		}
	}

	/// Per-head width.
	pub fn head_dim(&self) -> usize {
		self.head_dim.unwrap_or(self.hidden / self.heads)
	}

	/// The config.json this spec describes.
	pub fn config_json(&self) -> serde_json::Value {
		serde_json::json!({
			"architectures": ["MistralForCausalLM"],
			"model_type": "mistral",
			"hidden_size": self.hidden,
			"intermediate_size": self.intermediate,
			"num_hidden_layers": self.layers,
			"num_attention_heads": self.heads,
			"num_key_value_heads": self.kv_heads,
			"head_dim": self.head_dim(),
			"hidden_act": "silu",
			"rope_theta": self.rope_theta,
			"rms_norm_eps": 1e-5,
			"sliding_window": self.sliding_window,
			"vocab_size": self.vocab,
			"max_position_embeddings": self.max_positions,
			"bos_token_id": BOS,
			"eos_token_id": EOS,
			"tie_word_embeddings": false,
			"torch_dtype": match self.dtype { DType::BF16 => "bfloat16", DType::F16 => "float16", _ => "float32" },
		})
	}
}

/// Writes a complete random model directory to `out` (created if missing).
pub fn write_tiny_model(out: &Path, spec: &TinySpec) -> Result<()> {
	spec.validate()?;
	std::fs::create_dir_all(out).map_err(|e| InferenceError::io(out, e))?;
	let config_text = serde_json::to_string_pretty(&spec.config_json())
		.map_err(|e| InferenceError::Config(e.to_string()))?;
	write(out, "config.json", config_text.as_bytes())?;
	write_tokenizer(&out.join("tokenizer.json"), spec.vocab)?;

	let mut rng = Rng(spec.seed);
	let device = Device::Cpu;
	let mut random =
		|name: &str, shape: &[usize], std: f64, mean: f64| -> Result<(String, Tensor)> {
			let count: usize = shape.iter().product();
			let data: Vec<f32> = (0..count).map(|_| (mean + std * rng.normal()) as f32).collect();
			Ok((name.to_string(), Tensor::from_vec(data, shape, &device)?.to_dtype(spec.dtype)?))
		};
	let (h, i, v) = (spec.hidden, spec.intermediate, spec.vocab);
	let head_dim = spec.head_dim();
	let (q, kv) = (spec.heads * head_dim, spec.kv_heads * head_dim);
	let inv = |n: usize| 1.0 / (n as f64).sqrt();

	// Files: layers split evenly; the embedding in the first, norm and lm_head in the last.
	let files = spec.files.clamp(1, spec.layers);
	let file_of_layer = |layer: usize| layer * files / spec.layers;
	let name_of = |f: usize| format!("model-{:05}-of-{:05}.safetensors", f + 1, files);
	let mut groups: Vec<Vec<(String, Tensor)>> = vec![Vec::new(); files];
	groups[0].push(random(model_dir::EMBED_TOKENS, &[v, h], 1.0, 0.0)?);
	for layer in 0..spec.layers {
		let p = format!("model.layers.{layer}");
		let group = &mut groups[file_of_layer(layer)];
		group.push(random(&format!("{p}.input_layernorm.weight"), &[h], 0.1, 1.0)?);
		group.push(random(&format!("{p}.self_attn.q_proj.weight"), &[q, h], inv(h), 0.0)?);
		group.push(random(&format!("{p}.self_attn.k_proj.weight"), &[kv, h], inv(h), 0.0)?);
		group.push(random(&format!("{p}.self_attn.v_proj.weight"), &[kv, h], inv(h), 0.0)?);
		group.push(random(&format!("{p}.self_attn.o_proj.weight"), &[h, q], inv(q), 0.0)?);
		group.push(random(&format!("{p}.post_attention_layernorm.weight"), &[h], 0.1, 1.0)?);
		group.push(random(&format!("{p}.mlp.gate_proj.weight"), &[i, h], inv(h), 0.0)?);
		group.push(random(&format!("{p}.mlp.up_proj.weight"), &[i, h], inv(h), 0.0)?);
		group.push(random(&format!("{p}.mlp.down_proj.weight"), &[h, i], inv(i), 0.0)?);
	}
	groups[files - 1].push(random(model_dir::FINAL_NORM, &[h], 0.1, 1.0)?);
	groups[files - 1].push(random(model_dir::LM_HEAD, &[v, h], inv(h), 0.0)?);

	let mut weight_map = serde_json::Map::new();
	let mut total_size = 0usize;
	for (f, group) in groups.into_iter().enumerate() {
		let file = name_of(f);
		for (name, tensor) in &group {
			weight_map.insert(name.clone(), file.clone().into());
			total_size += tensor.elem_count() * tensor.dtype().size_in_bytes();
		}
		let tensors: HashMap<String, Tensor> = group.into_iter().collect();
		let path = out.join(&file);
		candle_core::safetensors::save(&tensors, &path)
			.map_err(|e| InferenceError::Weights(format!("{}: {e}", path.display())))?;
	}
	let index =
		serde_json::json!({ "metadata": { "total_size": total_size }, "weight_map": weight_map });
	let index_text =
		serde_json::to_string_pretty(&index).map_err(|e| InferenceError::Config(e.to_string()))?;
	write(out, INDEX_FILE, index_text.as_bytes())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
	let path = dir.join(name);
	std::fs::write(&path, bytes).map_err(|e| InferenceError::io(&path, e))
}

/// A byte-level tokenizer: `<unk>`, `<s>`, `</s>`, the 256 byte tokens `<0xNN>` (BPE with
/// byte fallback and no merges, so any UTF-8 text encodes), and filler tokens up to
/// `vocab`.
pub fn write_tokenizer(path: &Path, vocab: usize) -> Result<()> {
	use tokenizers::{
		decoders::{byte_fallback::ByteFallback, fuse::Fuse, sequence::Sequence, DecoderWrapper},
		models::bpe::BPE,
		AddedToken, Tokenizer,
	};
	let mut entries = tokenizers::models::bpe::Vocab::default();
	entries.insert("<unk>".into(), UNK);
	entries.insert("<s>".into(), BOS);
	entries.insert("</s>".into(), EOS);
	for byte in 0..=255u32 {
		entries.insert(format!("<0x{byte:02X}>"), BYTE_BASE + byte);
	}
	for id in (BYTE_BASE + 256)..vocab as u32 {
		entries.insert(format!("<extra_{id}>"), id);
	}
	let model = BPE::builder()
		.vocab_and_merges(entries, vec![])
		.unk_token("<unk>".into())
		.byte_fallback(true)
		.build()
		.map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
	let mut tokenizer = Tokenizer::new(model);
	let decoders: Vec<DecoderWrapper> = vec![ByteFallback::new().into(), Fuse::new().into()];
	tokenizer.with_decoder(Some(Sequence::new(decoders)));
	tokenizer
		.add_special_tokens([
			AddedToken::from("<unk>", true),
			AddedToken::from("<s>", true),
			AddedToken::from("</s>", true),
		])
		.map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
	tokenizer
		.save(path, true)
		.map_err(|e| InferenceError::Tokenizer(format!("{}: {e}", path.display())))
}
