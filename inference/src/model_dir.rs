//! A model directory in the Hugging Face layout: `config.json`, `tokenizer.json`, and
//! `*.safetensors` files with `model.safetensors.index.json` (or one `model.safetensors`).

use crate::{
	config::MistralConfig,
	error::{InferenceError, Result},
	LayerRange,
};
use std::{
	collections::{BTreeMap, BTreeSet},
	path::{Path, PathBuf},
};

/// Name of the single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Name of the index of a multi-file checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// A validated model directory: its config and which file holds each tensor.
#[derive(Debug, Clone)]
pub struct ModelDir {
	root: PathBuf,
	config: MistralConfig,
	/// Tensor name -> file name (relative to `root`).
	weight_map: BTreeMap<String, String>,
}

impl ModelDir {
	/// Opens a directory: reads the config and the tensor index (or the single file's
	/// header) and checks that every file the index names exists.
	pub fn open(root: impl AsRef<Path>) -> Result<Self> {
		let root = root.as_ref().to_path_buf();
		if !root.is_dir() {
			return Err(InferenceError::MissingFile(root));
		}
		let config = MistralConfig::from_file(&root.join("config.json"))?;
		let index_path = root.join(INDEX_FILE);
		let weight_map = if index_path.is_file() {
			read_index(&index_path)?
		} else if root.join(SINGLE_FILE).is_file() {
			single_file_map(&root.join(SINGLE_FILE))?
		} else {
			return Err(InferenceError::Weights(format!(
				"{} has neither {INDEX_FILE} nor {SINGLE_FILE}",
				root.display()
			)));
		};
		for file in weight_map.values().collect::<BTreeSet<_>>() {
			let path = root.join(file);
			if !path.is_file() {
				return Err(InferenceError::MissingFile(path));
			}
		}
		Ok(ModelDir { root, config, weight_map })
	}

	/// The model's config.
	pub fn config(&self) -> &MistralConfig {
		&self.config
	}

	/// The directory.
	pub fn root(&self) -> &Path {
		&self.root
	}

	/// Path of `tokenizer.json`.
	pub fn tokenizer_path(&self) -> PathBuf {
		self.root.join("tokenizer.json")
	}

	/// The file holding `tensor`.
	pub fn file_of(&self, tensor: &str) -> Result<PathBuf> {
		self.weight_map.get(tensor).map(|file| self.root.join(file)).ok_or_else(|| {
			InferenceError::Weights(format!("tensor {tensor} is not in the checkpoint"))
		})
	}

	/// Every tensor name in the checkpoint.
	pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
		self.weight_map.keys().map(String::as_str)
	}

	/// The distinct files holding `tensors`, sorted.
	pub fn files_for(&self, tensors: &[String]) -> Result<Vec<PathBuf>> {
		let files: BTreeSet<PathBuf> =
			tensors.iter().map(|t| self.file_of(t)).collect::<Result<_>>()?;
		Ok(files.into_iter().collect())
	}
}

fn read_index(path: &Path) -> Result<BTreeMap<String, String>> {
	let text = std::fs::read_to_string(path).map_err(|e| InferenceError::io(path, e))?;
	parse_index(&text).map_err(|e| e.in_file(path))
}

/// The tensor-to-file map of a `model.safetensors.index.json`, checked: every file is a
/// safetensors file inside the model directory.
pub fn parse_index(text: &str) -> Result<BTreeMap<String, String>> {
	#[derive(serde::Deserialize)]
	struct Index {
		weight_map: BTreeMap<String, String>,
	}
	let index: Index =
		serde_json::from_str(text).map_err(|e| InferenceError::Weights(e.to_string()))?;
	for file in index.weight_map.values() {
		// The index names files inside the model directory, never elsewhere.
		if file.contains('/')
			|| file.contains('\\')
			|| file == ".."
			|| !file.ends_with(".safetensors")
		{
			return Err(InferenceError::Weights(format!(
				"file name {file:?} is not a safetensors file in the model directory"
			)));
		}
	}
	Ok(index.weight_map)
}

fn single_file_map(path: &Path) -> Result<BTreeMap<String, String>> {
	let names = crate::weights::tensor_names_in_file(path)?;
	Ok(names.into_iter().map(|name| (name, SINGLE_FILE.to_string())).collect())
}

/// Tensor names of one decoder layer, in canonical order.
pub fn layer_tensor_names(layer: usize) -> Vec<String> {
	[
		"input_layernorm.weight",
		"mlp.down_proj.weight",
		"mlp.gate_proj.weight",
		"mlp.up_proj.weight",
		"post_attention_layernorm.weight",
		"self_attn.k_proj.weight",
		"self_attn.o_proj.weight",
		"self_attn.q_proj.weight",
		"self_attn.v_proj.weight",
	]
	.iter()
	.map(|suffix| format!("model.layers.{layer}.{suffix}"))
	.collect()
}

/// Token embedding tensor.
pub const EMBED_TOKENS: &str = "model.embed_tokens.weight";
/// Final RMSNorm tensor.
pub const FINAL_NORM: &str = "model.norm.weight";
/// Output projection tensor.
pub const LM_HEAD: &str = "lm_head.weight";

/// Every tensor a shard over `range` needs, sorted by name.
pub fn shard_tensor_names(config: &MistralConfig, range: LayerRange) -> Vec<String> {
	let mut names: Vec<String> = range.layers().flat_map(layer_tensor_names).collect();
	if range.start == 0 {
		names.push(EMBED_TOKENS.into());
	}
	if range.end == config.num_hidden_layers {
		names.push(FINAL_NORM.into());
		names.push(if config.tie_word_embeddings { EMBED_TOKENS } else { LM_HEAD }.into());
	}
	names.sort();
	names.dedup();
	names
}
