//! `config.json` of a Hugging Face Mistral checkpoint: parsing and validation.

use crate::error::{InferenceError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// RoPE parameters as transformers v5 writes them (`rope_parameters`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
	/// Base of the rotary frequencies.
	pub rope_theta: f64,
	/// Only `"default"` is supported.
	#[serde(default = "default_rope_type")]
	pub rope_type: String,
}

fn default_rope_type() -> String {
	"default".into()
}

/// `eos_token_id` may be one id or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
	/// A single id.
	One(u32),
	/// Several ids, any of which ends generation.
	Many(Vec<u32>),
}

impl TokenIds {
	/// The ids as a list.
	pub fn to_vec(&self) -> Vec<u32> {
		match self {
			TokenIds::One(id) => vec![*id],
			TokenIds::Many(ids) => ids.clone(),
		}
	}
}

/// The fields of a Mistral `config.json` this engine reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MistralConfig {
	/// e.g. `["MistralForCausalLM"]`.
	#[serde(default)]
	pub architectures: Vec<String>,
	/// `"mistral"`.
	#[serde(default)]
	pub model_type: Option<String>,
	/// Width of the residual stream.
	pub hidden_size: usize,
	/// Width of the MLP.
	pub intermediate_size: usize,
	/// Number of decoder layers.
	pub num_hidden_layers: usize,
	/// Query heads.
	pub num_attention_heads: usize,
	/// Key/value heads (grouped-query attention); defaults to the query heads.
	#[serde(default)]
	pub num_key_value_heads: Option<usize>,
	/// Per-head width; defaults to hidden_size / num_attention_heads.
	#[serde(default)]
	pub head_dim: Option<usize>,
	/// RoPE base (transformers v4 and Mistral-7B checkpoints).
	#[serde(default)]
	pub rope_theta: Option<f64>,
	/// RoPE parameters (transformers v5 checkpoints).
	#[serde(default)]
	pub rope_parameters: Option<RopeParameters>,
	/// RMSNorm epsilon.
	pub rms_norm_eps: f64,
	/// Attention window in tokens (each query sees itself and the window-1 before it).
	#[serde(default)]
	pub sliding_window: Option<usize>,
	/// Vocabulary size (rows of the embedding and of lm_head).
	pub vocab_size: usize,
	/// Longest sequence the model supports.
	pub max_position_embeddings: usize,
	/// Beginning-of-sequence token.
	#[serde(default)]
	pub bos_token_id: Option<u32>,
	/// End-of-sequence token(s).
	#[serde(default)]
	pub eos_token_id: Option<TokenIds>,
	/// Activation of the MLP; only `silu`.
	#[serde(default = "default_act")]
	pub hidden_act: String,
	/// Whether lm_head shares the embedding matrix.
	#[serde(default)]
	pub tie_word_embeddings: bool,
	/// dtype the checkpoint was saved in (informational).
	#[serde(default, alias = "dtype")]
	pub torch_dtype: Option<String>,
}

fn default_act() -> String {
	"silu".into()
}

impl MistralConfig {
	/// Reads and validates `config.json`.
	pub fn from_file(path: &Path) -> Result<Self> {
		let text = std::fs::read_to_string(path).map_err(|e| {
			if e.kind() == std::io::ErrorKind::NotFound {
				InferenceError::MissingFile(path.to_path_buf())
			} else {
				InferenceError::io(path, e)
			}
		})?;
		Self::from_json(&text)
	}

	/// Parses and validates the text of a `config.json`.
	pub fn from_json(text: &str) -> Result<Self> {
		let config: MistralConfig =
			serde_json::from_str(text).map_err(|e| InferenceError::Config(e.to_string()))?;
		config.validate()?;
		Ok(config)
	}

	/// Refuses settings this engine does not implement.
	pub fn validate(&self) -> Result<()> {
		let is_mistral = self.model_type.as_deref() == Some("mistral")
			|| self.architectures.iter().any(|a| a == "MistralForCausalLM");
		if !is_mistral {
			return Err(InferenceError::Unsupported(format!(
				"model_type {:?} / architectures {:?}; only Mistral (MistralForCausalLM) is supported",
				self.model_type, self.architectures
			)));
		}
		if let Some(other) = self.architectures.iter().find(|a| *a != "MistralForCausalLM") {
			return Err(InferenceError::Unsupported(format!("architecture {other}")));
		}
		let positive = [
			("hidden_size", self.hidden_size),
			("intermediate_size", self.intermediate_size),
			("num_hidden_layers", self.num_hidden_layers),
			("num_attention_heads", self.num_attention_heads),
			("vocab_size", self.vocab_size),
			("max_position_embeddings", self.max_position_embeddings),
		];
		for (name, value) in positive {
			if value == 0 {
				return Err(InferenceError::Config(format!("{name} must be positive")));
			}
		}
		let kv = self.num_kv_heads();
		if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
			return Err(InferenceError::Config(format!(
				"num_attention_heads ({}) must be a multiple of num_key_value_heads ({kv})",
				self.num_attention_heads
			)));
		}
		if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
			return Err(InferenceError::Config(format!(
				"hidden_size ({}) is not a multiple of num_attention_heads ({}) and head_dim is unset",
				self.hidden_size, self.num_attention_heads
			)));
		}
		let head_dim = self.head_dim();
		if head_dim == 0 || !head_dim.is_multiple_of(2) {
			return Err(InferenceError::Config(format!(
				"head_dim ({head_dim}) must be even and positive"
			)));
		}
		if self.hidden_act != "silu" {
			return Err(InferenceError::Unsupported(format!("hidden_act {}", self.hidden_act)));
		}
		if let Some(parameters) = &self.rope_parameters {
			if parameters.rope_type != "default" {
				return Err(InferenceError::Unsupported(format!(
					"rope_type {} (only default RoPE)",
					parameters.rope_type
				)));
			}
		}
		let theta = self.rope_theta()?;
		if !(theta.is_finite() && theta > 1.0) {
			return Err(InferenceError::Config(format!("rope_theta {theta} must be > 1")));
		}
		if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
			return Err(InferenceError::Config("rms_norm_eps must be positive".into()));
		}
		if self.sliding_window == Some(0) {
			return Err(InferenceError::Config("sliding_window must be positive or null".into()));
		}
		for id in self.bos_token_id.iter().copied().chain(self.eos_token_ids()) {
			if id as usize >= self.vocab_size {
				return Err(InferenceError::Config(format!(
					"special token id {id} is outside the vocabulary ({})",
					self.vocab_size
				)));
			}
		}
		Ok(())
	}

	/// Key/value heads.
	pub fn num_kv_heads(&self) -> usize {
		self.num_key_value_heads.unwrap_or(self.num_attention_heads)
	}

	/// Per-head width.
	pub fn head_dim(&self) -> usize {
		self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
	}

	/// RoPE base from either `rope_theta` or `rope_parameters.rope_theta`.
	pub fn rope_theta(&self) -> Result<f64> {
		match (self.rope_theta, &self.rope_parameters) {
			(Some(theta), _) => Ok(theta),
			(None, Some(parameters)) => Ok(parameters.rope_theta),
			(None, None) => Err(InferenceError::Config(
				"neither rope_theta nor rope_parameters.rope_theta is set".into(),
			)),
		}
	}

	/// End-of-sequence ids (may be empty).
	pub fn eos_token_ids(&self) -> Vec<u32> {
		self.eos_token_id.as_ref().map(TokenIds::to_vec).unwrap_or_default()
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	fn base() -> serde_json::Value {
		serde_json::json!({
			"architectures": ["MistralForCausalLM"],
			"model_type": "mistral",
			"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
			"num_attention_heads": 4, "num_key_value_heads": 2,
			"rope_theta": 10000.0, "rms_norm_eps": 1e-5, "sliding_window": 16,
			"vocab_size": 300, "max_position_embeddings": 128,
			"bos_token_id": 1, "eos_token_id": 2
		})
	}

	#[test]
	fn parses_v4_and_v5_rope_keys() {
		let v4 = MistralConfig::from_json(&base().to_string()).unwrap();
		assert_eq!(v4.rope_theta().unwrap(), 10000.0);
		assert_eq!(v4.head_dim(), 16);
		let mut v5 = base();
		v5.as_object_mut().unwrap().remove("rope_theta");
		v5["rope_parameters"] = serde_json::json!({"rope_theta": 1e6, "rope_type": "default"});
		assert_eq!(MistralConfig::from_json(&v5.to_string()).unwrap().rope_theta().unwrap(), 1e6);
	}

	#[test]
	fn refuses_what_it_cannot_run() {
		let cases: Vec<(&str, serde_json::Value, &str)> = vec![
			("model_type", serde_json::json!("llama"), "only Mistral"),
			("num_key_value_heads", serde_json::json!(3), "multiple"),
			("hidden_act", serde_json::json!("gelu"), "hidden_act"),
			("sliding_window", serde_json::json!(0), "sliding_window"),
			("eos_token_id", serde_json::json!(999), "outside the vocabulary"),
		];
		for (key, value, message) in cases {
			let mut config = base();
			config[key] = value;
			if key == "model_type" {
				config["architectures"] = serde_json::json!([]);
			}
			let error = MistralConfig::from_json(&config.to_string()).unwrap_err().to_string();
			assert!(error.contains(message), "{key}: {error}");
		}
		assert!(MistralConfig::from_json("{").is_err());
	}
}
