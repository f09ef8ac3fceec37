//! `tokenizer.json` through the `tokenizers` crate (pure Rust, no network), with BOS/EOS
//! handling and the Mistral instruct template.

use crate::{
	config::MistralConfig,
	error::{InferenceError, Result},
};
use std::path::Path;

/// A model's tokenizer with its special tokens.
pub struct PromptTokenizer {
	inner: tokenizers::Tokenizer,
	bos: Option<u32>,
	eos: Vec<u32>,
	vocab_size: usize,
}

impl PromptTokenizer {
	/// Loads `tokenizer.json`; special ids come from the model's config.
	pub fn from_file(path: &Path, config: &MistralConfig) -> Result<Self> {
		if !path.is_file() {
			return Err(InferenceError::MissingFile(path.to_path_buf()));
		}
		let inner = tokenizers::Tokenizer::from_file(path)
			.map_err(|e| InferenceError::Tokenizer(format!("{}: {e}", path.display())))?;
		Ok(PromptTokenizer {
			inner,
			bos: config.bos_token_id,
			eos: config.eos_token_ids(),
			vocab_size: config.vocab_size,
		})
	}

	/// Token ids of `prompt`, BOS first. With `chat`, the prompt is wrapped in Mistral's
	/// instruct template: `<s>[INST] {prompt} [/INST]`.
	pub fn encode(&self, prompt: &str, chat: bool) -> Result<Vec<u32>> {
		let text = if chat { format!("[INST] {prompt} [/INST]") } else { prompt.to_string() };
		let encoding = self
			.inner
			.encode(text.as_str(), false)
			.map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
		let mut ids: Vec<u32> = self.bos.into_iter().collect();
		ids.extend_from_slice(encoding.get_ids());
		if let Some(bad) = ids.iter().find(|id| **id as usize >= self.vocab_size) {
			return Err(InferenceError::Tokenizer(format!(
				"tokenizer produced id {bad}, outside the model's vocabulary of {}",
				self.vocab_size
			)));
		}
		Ok(ids)
	}

	/// Text of `ids`, without special tokens.
	pub fn decode(&self, ids: &[u32]) -> Result<String> {
		self.inner.decode(ids, true).map_err(|e| InferenceError::Tokenizer(e.to_string()))
	}

	/// Most bytes one token adds to a decoded text: the longest single-token decoding
	/// (a lone byte-fallback token that is not UTF-8 on its own decodes to U+FFFD, 3
	/// bytes). The model registry records it, so that the chain can refuse a `max_tokens`
	/// whose text could not be stored.
	pub fn max_token_bytes(&self) -> Result<usize> {
		let mut longest = 0;
		for id in 0..self.vocab_size as u32 {
			let text = self
				.inner
				.decode(&[id], true)
				.map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
			longest = longest.max(text.len());
		}
		Ok(longest)
	}

	/// End-of-sequence ids.
	pub fn eos(&self) -> &[u32] {
		&self.eos
	}
}
