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
	/// The same tokenizer with special-token matching off: `<s>` in a message is text.
	literal: tokenizers::Tokenizer,
	bos: Option<u32>,
	eos: Vec<u32>,
	vocab_size: usize,
}

/// Who wrote a chat message (OpenAI's roles; tools are not part of Mistral's v1
/// template).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
	/// Instructions for the whole conversation.
	System,
	/// The person asking.
	User,
	/// The model's earlier answers.
	Assistant,
}

/// One message of a chat, in OpenAI's `{"role", "content"}` form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ChatMessage {
	/// Who wrote it.
	pub role: ChatRole,
	/// What it says.
	pub content: String,
}

/// What joins merged messages and the system prompt to the first user message, as
/// mistral-common joins them.
const JOIN: &str = "\n\n";

/// The tokenizer in the `tokenizer.json` at `path`.
fn read_tokenizer(path: &Path) -> Result<tokenizers::Tokenizer> {
	if !path.is_file() {
		return Err(InferenceError::MissingFile(path.to_path_buf()));
	}
	let json = std::fs::read(path).map_err(|e| InferenceError::io(path, e))?;
	parse_tokenizer(&json).map_err(|e| e.in_file(path))
}

/// The tokenizer described by the text of a `tokenizer.json`.
///
/// The text is parsed as JSON first, and the tokenizer built from that value: the
/// `tokenizers` crate (0.23) panics, rather than returning an error, on some malformed
/// text inside its `decoder` (a truncated file, a raw control character in a string;
/// found by `fuzz/fuzz_targets/tokenizer_json.rs`).
fn parse_tokenizer(json: &[u8]) -> Result<tokenizers::Tokenizer> {
	let value: serde_json::Value = serde_json::from_slice(json)
		.map_err(|e| InferenceError::Tokenizer(format!("not JSON: {e}")))?;
	serde_json::from_value(value).map_err(|e| InferenceError::Tokenizer(e.to_string()))
}

impl PromptTokenizer {
	/// Loads `tokenizer.json`; special ids come from the model's config.
	pub fn from_file(path: &Path, config: &MistralConfig) -> Result<Self> {
		let inner = read_tokenizer(path)?;
		Ok(Self::new(inner, config.bos_token_id, config.eos_token_ids(), config.vocab_size))
	}

	/// Loads a `tokenizer.json` alone: BOS and EOS are its `<s>` and `</s>` tokens, the
	/// vocabulary its own.
	pub fn from_tokenizer_file(path: &Path) -> Result<Self> {
		Ok(Self::standalone(read_tokenizer(path)?))
	}

	/// Like [`PromptTokenizer::from_tokenizer_file`], from the text of a
	/// `tokenizer.json`.
	pub fn from_tokenizer_json(json: &[u8]) -> Result<Self> {
		Ok(Self::standalone(parse_tokenizer(json)?))
	}

	fn standalone(inner: tokenizers::Tokenizer) -> Self {
		let bos = inner.token_to_id("<s>");
		let eos = inner.token_to_id("</s>").into_iter().collect();
		let vocab_size = inner.get_vocab_size(true);
		Self::new(inner, bos, eos, vocab_size)
	}

	fn new(
		inner: tokenizers::Tokenizer,
		bos: Option<u32>,
		eos: Vec<u32>,
		vocab_size: usize,
	) -> Self {
		let mut literal = inner.clone();
		literal.set_encode_special_tokens(true);
		PromptTokenizer { inner, literal, bos, eos, vocab_size }
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
		self.check_ids(&ids)?;
		Ok(ids)
	}

	/// Token ids of a chat in Mistral's v1 instruct template, as mistral-common 1.13
	/// encodes it: `<s>[INST] {system}\n\n{user} [/INST] {assistant}</s>[INST] {user}
	/// [/INST]`. System messages are joined and put before the first user message;
	/// consecutive messages of one role are joined; a chat that opens with an answer gets
	/// an empty question before it. Control tokens come only from the template: `<s>`,
	/// `</s>` or `[INST]` written in a message is encoded as text. Refused, as
	/// mistral-common refuses them: no user message after the last answer, an empty
	/// answer, a system message after an answer.
	pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
		let refuse = |why: &str| Err(InferenceError::Input(format!("chat: {why}")));
		let Some(bos) = self.bos else {
			return refuse("the tokenizer has no BOS token");
		};
		let Some(&eos) = self.eos.first() else {
			return refuse("the tokenizer has no EOS token");
		};
		// Runs of one role (a system message ends a run), then the system prompt apart.
		let mut runs: Vec<(ChatRole, String)> = Vec::new();
		let mut system: Vec<&str> = Vec::new();
		let mut previous: Option<ChatRole> = None;
		for message in messages {
			match (message.role, previous) {
				(ChatRole::System, Some(ChatRole::Assistant)) => {
					return refuse("a system message cannot follow an assistant message")
				}
				(ChatRole::Assistant, _) if message.content.is_empty() => {
					return refuse("an assistant message is empty")
				}
				_ => {}
			}
			match (message.role, runs.last_mut()) {
				(ChatRole::System, _) => system.push(&message.content),
				(role, Some((last, text))) if *last == role && previous == Some(role) => {
					text.push_str(JOIN);
					text.push_str(&message.content);
				}
				(role, _) => runs.push((role, message.content.clone())),
			}
			previous = Some(message.role);
		}
		if runs.first().is_none_or(|(role, _)| *role != ChatRole::User) {
			runs.insert(0, (ChatRole::User, String::new()));
		}
		if runs.last().is_some_and(|(role, _)| *role != ChatRole::User) {
			return refuse("the last message must be the user's (the model answers it)");
		}
		let mut ids = vec![bos];
		for (index, (role, text)) in runs.iter().enumerate() {
			match role {
				ChatRole::User if index == 0 && !system.is_empty() => {
					let system = system.join(JOIN);
					ids.extend(
						self.encode_literal(&format!("[INST] {system}{JOIN}{text} [/INST]"))?,
					);
				}
				ChatRole::User => {
					ids.extend(self.encode_literal(&format!("[INST] {text} [/INST]"))?)
				}
				_ => {
					ids.extend(self.encode_literal(text)?);
					ids.push(eos);
				}
			}
		}
		self.check_ids(&ids)?;
		Ok(ids)
	}

	/// Ids of `text` with no special token matched in it.
	fn encode_literal(&self, text: &str) -> Result<Vec<u32>> {
		let encoding = self
			.literal
			.encode(text, false)
			.map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
		Ok(encoding.get_ids().to_vec())
	}

	fn check_ids(&self, ids: &[u32]) -> Result<()> {
		match ids.iter().find(|id| **id as usize >= self.vocab_size) {
			Some(bad) => Err(InferenceError::Tokenizer(format!(
				"tokenizer produced id {bad}, outside the model's vocabulary of {}",
				self.vocab_size
			))),
			None => Ok(()),
		}
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
