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

	/// Token ids of `prompt`, BOS first and once: a prompt that already begins with the
	/// BOS token's text (`<s>`, as the chat template of the OpenAI API writes it) keeps
	/// that one, as mistral-common encodes it. With `chat`, the prompt is wrapped in
	/// Mistral's instruct template: `<s>[INST] {prompt} [/INST]`.
	pub fn encode(&self, prompt: &str, chat: bool) -> Result<Vec<u32>> {
		let text = if chat { format!("[INST] {prompt} [/INST]") } else { prompt.to_string() };
		let encoding = self
			.inner
			.encode(text.as_str(), false)
			.map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
		let encoded = encoding.get_ids();
		let has_bos = self.bos.is_some() && encoded.first().copied() == self.bos;
		let mut ids: Vec<u32> = self.bos.filter(|_| !has_bos).into_iter().collect();
		ids.extend_from_slice(encoded);
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

	/// Whether `id` is a byte-fallback token (`<0x41>`): its text depends on the bytes
	/// around it.
	pub fn is_byte_token(&self, id: u32) -> bool {
		self.inner.id_to_token(id).is_some_and(|token| {
			let bytes = token.as_bytes();
			bytes.len() == 6
				&& bytes.starts_with(b"<0x")
				&& bytes[5] == b'>'
				&& bytes[3..5].iter().all(u8::is_ascii_hexdigit)
		})
	}
}

/// The text a generation adds token by token, for streaming: each token's piece is
/// what it adds to the decoding of every token so far, and the pieces concatenate to
/// `decode(all tokens)` (the output the chain records). Byte-fallback decoding makes
/// that subtle: a run of byte tokens (`<0x..>`) decodes as UTF-8 as a whole, and one
/// invalid byte turns every byte of its run into U+FFFD, so text inside an open run can
/// still change. A byte token's text is therefore held until a token that is not a
/// byte closes the run (or the generation ends), and that token carries it.
#[derive(Debug, Default, Clone)]
pub struct TextStream {
	tokens: Vec<u32>,
	sent: String,
}

impl TextStream {
	/// An empty stream.
	pub fn new() -> Self {
		Self::default()
	}

	/// Adds a token; returns the text it makes visible (possibly empty).
	pub fn push(&mut self, tokenizer: &PromptTokenizer, token: u32) -> Result<String> {
		self.tokens.push(token);
		if tokenizer.is_byte_token(token) {
			return Ok(String::new());
		}
		let text = tokenizer.decode(&self.tokens)?;
		Ok(self.advance(text))
	}

	/// The generation ended: the rest of the decoded text.
	pub fn finish(&mut self, tokenizer: &PromptTokenizer) -> Result<String> {
		let text = tokenizer.decode(&self.tokens)?;
		Ok(self.advance(text))
	}

	/// Everything sent so far.
	pub fn sent(&self) -> &str {
		&self.sent
	}

	fn advance(&mut self, text: String) -> String {
		// A decoder that rewrites earlier text (space clean-up before punctuation) holds
		// the stream back until the decoding extends what was sent again.
		match text.strip_prefix(self.sent.as_str()) {
			Some(piece) if !piece.is_empty() => {
				let piece = piece.to_string();
				self.sent = text;
				piece
			}
			_ => String::new(),
		}
	}
}
