//! The generation record: what a generator pipeline claims about a generation, written
//! by `dllm-infer generate --record` and checked by `dllm-infer verify`.
//!
//! JSON: the model's chunk layout (layer ranges and weight hashes), the prompt and
//! generated token ids, the sampling parameters with seed and `max_tokens`, the stop
//! reason, and per chunk the hex encoding of its hidden-state fingerprint (and on the
//! last chunk of its logits fingerprint; there the hidden-state one may be left out, as
//! miners' records do). [`GenerationRecord::decode`] checks every
//! field against every other and returns a [`Record`] or an error that says what is
//! wrong.

use crate::{
	config::MistralConfig,
	error::{InferenceError, Result},
	fingerprint::{Fingerprint, FingerprintParams, RowKind},
	sampling::SamplingParams,
	weight_hash::to_hex,
	LayerRange,
};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `format` of a record file.
pub const RECORD_FORMAT: &str = "dllm-generation-record";
/// `version` of the record layout.
pub const RECORD_VERSION: u32 = 1;

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
	/// The last token is an end-of-sequence token.
	Eos,
	/// `max_tokens` tokens were generated.
	MaxTokens,
}

/// The model a record is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordModel {
	/// Decoder layers.
	pub num_layers: usize,
	/// Width of the hidden states.
	pub hidden_size: usize,
	/// Vocabulary size (width of the logits).
	pub vocab_size: usize,
}

/// Sampling as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecordSampling {
	/// 0: greedy.
	pub temperature: f32,
	/// Top-k (null: off).
	pub top_k: Option<usize>,
	/// Top-p (null: off).
	pub top_p: Option<f32>,
	/// Seed of the sampler.
	pub seed: u64,
	/// Most tokens the generation could produce.
	pub max_tokens: usize,
}

impl RecordSampling {
	/// What a record says of `request`'s sampling.
	pub fn of(request: &crate::pipeline::GenerationRequest) -> Self {
		RecordSampling {
			temperature: request.sampling.temperature,
			top_k: request.sampling.top_k,
			top_p: request.sampling.top_p,
			seed: request.sampling.seed,
			max_tokens: request.max_tokens,
		}
	}

	/// The sampler's parameters.
	pub fn params(&self) -> SamplingParams {
		SamplingParams {
			temperature: self.temperature,
			top_k: self.top_k,
			top_p: self.top_p,
			seed: self.seed,
		}
	}
}

/// One chunk as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordChunk {
	/// Layer range, e.g. `0..2`.
	pub layers: String,
	/// `0x`-hex SHA-256 of the chunk's weights (`dllm-infer hash-chunks`).
	pub weight_hash: String,
	/// Hex of the encoded fingerprint of the chunk's output hidden states. Only the last
	/// chunk may leave it out (`null`): a miner's last chunk fingerprints its logits
	/// alone, which the last layer's hidden states determine.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub hidden: Option<String>,
	/// Hex of the encoded fingerprint of the logits (last chunk only).
	#[serde(default)]
	pub logits: Option<String>,
}

/// The JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRecord {
	/// Always [`RECORD_FORMAT`].
	pub format: String,
	/// Always [`RECORD_VERSION`].
	pub version: u32,
	/// The model's shape.
	pub model: RecordModel,
	/// The chunks, in pipeline order.
	pub chunks: Vec<RecordChunk>,
	/// Prompt token ids.
	pub prompt_tokens: Vec<u32>,
	/// Generated token ids.
	pub generated_tokens: Vec<u32>,
	/// Sampling parameters.
	pub sampling: RecordSampling,
	/// Why generation ended.
	pub stop: StopReason,
	/// How the fingerprints were taken.
	pub fingerprint: RecordParams,
	/// The generator's compute format (informational).
	#[serde(default)]
	pub compute: Option<String>,
}

/// [`FingerprintParams`] in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordParams {
	/// Positions per block.
	pub block: u16,
	/// Top-k entries per block.
	pub top_k: u16,
	/// Projections per position.
	pub projections: u8,
}

impl From<FingerprintParams> for RecordParams {
	fn from(p: FingerprintParams) -> Self {
		RecordParams { block: p.block, top_k: p.top_k, projections: p.projections }
	}
}

impl From<RecordParams> for FingerprintParams {
	fn from(p: RecordParams) -> Self {
		FingerprintParams { block: p.block, top_k: p.top_k, projections: p.projections }
	}
}

/// A chunk of a checked record.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
	/// Its layers.
	pub layers: LayerRange,
	/// Its weight hash.
	pub weight_hash: [u8; 32],
	/// Fingerprint of its output hidden states (every chunk but perhaps the last).
	pub hidden: Option<Fingerprint>,
	/// Fingerprint of the logits (last chunk).
	pub logits: Option<Fingerprint>,
}

/// A checked record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
	/// The model's shape.
	pub model: RecordModel,
	/// Chunks, partitioning the layers in order.
	pub chunks: Vec<Chunk>,
	/// Prompt tokens (at least one).
	pub prompt_tokens: Vec<u32>,
	/// Generated tokens (at least one).
	pub generated_tokens: Vec<u32>,
	/// Sampling, valid.
	pub sampling: RecordSampling,
	/// Why generation ended (as claimed; the verifier checks it).
	pub stop: StopReason,
	/// How the fingerprints were taken.
	pub params: FingerprintParams,
	/// The generator's compute format, if given.
	pub compute: Option<String>,
}

impl Record {
	/// Positions the model ran: the prompt and every generated token but the last.
	pub fn positions(&self) -> usize {
		self.prompt_tokens.len() + self.generated_tokens.len() - 1
	}

	/// The tokens a verifier's prefill runs.
	pub fn input_tokens(&self) -> Vec<u32> {
		crate::verification::StageVerifier::input_tokens(
			&self.prompt_tokens,
			&self.generated_tokens,
		)
	}

	/// The layer ranges of the chunks.
	pub fn layout(&self) -> Vec<LayerRange> {
		self.chunks.iter().map(|c| c.layers).collect()
	}

	/// Checks the record fits `config` (layers, widths, vocabulary, context).
	pub fn check_model(&self, config: &MistralConfig) -> Result<()> {
		let expected = RecordModel {
			num_layers: config.num_hidden_layers,
			hidden_size: config.hidden_size,
			vocab_size: config.vocab_size,
		};
		if self.model != expected {
			return Err(InferenceError::Record(format!(
				"the record is for another model ({} layers, hidden {}, vocabulary {}); this one has {} layers, hidden {}, vocabulary {}",
				self.model.num_layers,
				self.model.hidden_size,
				self.model.vocab_size,
				expected.num_layers,
				expected.hidden_size,
				expected.vocab_size
			)));
		}
		if self.positions() > config.max_position_embeddings {
			return Err(InferenceError::Record(format!(
				"{} positions exceed the model's maximum of {}",
				self.positions(),
				config.max_position_embeddings
			)));
		}
		Ok(())
	}

	/// The JSON form, with fingerprints encoded.
	pub fn to_json(&self) -> GenerationRecord {
		let last = self.chunks.len().saturating_sub(1);
		GenerationRecord {
			format: RECORD_FORMAT.into(),
			version: RECORD_VERSION,
			model: self.model.clone(),
			chunks: self
				.chunks
				.iter()
				.enumerate()
				.map(|(i, c)| RecordChunk {
					layers: c.layers.to_string(),
					weight_hash: to_hex(&c.weight_hash),
					hidden: c.hidden.as_ref().map(|h| hex(&h.encode())),
					logits: c.logits.as_ref().filter(|_| i == last).map(|l| hex(&l.encode())),
				})
				.collect(),
			prompt_tokens: self.prompt_tokens.clone(),
			generated_tokens: self.generated_tokens.clone(),
			sampling: self.sampling,
			stop: self.stop,
			fingerprint: self.params.into(),
			compute: self.compute.clone(),
		}
	}

	/// Writes the JSON file.
	pub fn save(&self, path: &Path) -> Result<()> {
		let text = serde_json::to_string_pretty(&self.to_json())
			.map_err(|e| InferenceError::Record(e.to_string()))?;
		std::fs::write(path, text).map_err(|e| InferenceError::io(path, e))
	}

	/// Reads and checks a JSON file.
	pub fn load(path: &Path) -> Result<Record> {
		let text = std::fs::read_to_string(path).map_err(|e| InferenceError::io(path, e))?;
		let json: GenerationRecord = serde_json::from_str(&text).map_err(|e| {
			InferenceError::Record(format!("{} is not a generation record: {e}", path.display()))
		})?;
		json.decode()
	}
}

fn hex(bytes: &[u8]) -> String {
	to_hex(bytes)
}

/// Parses `0x`-prefixed (or bare) hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
	let digits = text.strip_prefix("0x").unwrap_or(text).as_bytes();
	if !digits.len().is_multiple_of(2) {
		return None;
	}
	let value = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
	digits.chunks(2).map(|pair| Some(value(pair[0])? << 4 | value(pair[1])?)).collect()
}

impl GenerationRecord {
	/// Checks every field and decodes the fingerprints.
	pub fn decode(&self) -> Result<Record> {
		let bad = |m: String| Err(InferenceError::Record(m));
		if self.format != RECORD_FORMAT || self.version != RECORD_VERSION {
			return bad(format!(
				"format {:?} version {} is not {RECORD_FORMAT:?} version {RECORD_VERSION}",
				self.format, self.version
			));
		}
		let model = &self.model;
		if model.num_layers == 0 || model.hidden_size == 0 || model.vocab_size == 0 {
			return bad("the model has no layers, width or vocabulary".into());
		}
		if self.prompt_tokens.is_empty() || self.generated_tokens.is_empty() {
			return bad("the prompt and the generated tokens must not be empty".into());
		}
		let vocab = model.vocab_size as u32;
		if let Some(t) =
			self.prompt_tokens.iter().chain(&self.generated_tokens).find(|t| **t >= vocab)
		{
			return bad(format!("token id {t} is outside the vocabulary of {vocab}"));
		}
		let sampling = self.sampling;
		sampling.params().validate().map_err(|e| InferenceError::Record(e.to_string()))?;
		if sampling.max_tokens == 0 || self.generated_tokens.len() > sampling.max_tokens {
			return bad(format!(
				"{} generated tokens with max_tokens {}",
				self.generated_tokens.len(),
				sampling.max_tokens
			));
		}
		let params: FingerprintParams = self.fingerprint.into();
		params.validate().map_err(|e| InferenceError::Record(format!("fingerprint: {e}")))?;
		let layers = self
			.chunks
			.iter()
			.map(|c| c.layers.parse::<LayerRange>())
			.collect::<Result<Vec<_>>>()
			.map_err(|e| InferenceError::Record(format!("chunks: {e}")))?;
		if layers.is_empty() {
			return bad("the record has no chunks".into());
		}
		LayerRange::check_partition(&layers, model.num_layers)
			.map_err(|e| InferenceError::Record(format!("chunks: {e}")))?;
		let positions = self.prompt_tokens.len() + self.generated_tokens.len() - 1;
		let last = self.chunks.len() - 1;
		let mut chunks = Vec::with_capacity(self.chunks.len());
		for (i, (chunk, layers)) in self.chunks.iter().zip(layers).enumerate() {
			let weight_hash: [u8; 32] =
				from_hex(&chunk.weight_hash).and_then(|b| b.try_into().ok()).ok_or_else(|| {
					InferenceError::Record(format!(
						"chunk {layers}: weight_hash is not 32 bytes of hex"
					))
				})?;
			let fingerprint = |text: &str, what: &str, kind, rows, width| -> Result<Fingerprint> {
				let bytes = from_hex(text).ok_or_else(|| {
					InferenceError::Record(format!("chunk {layers}: {what} fingerprint is not hex"))
				})?;
				let fp = Fingerprint::decode(&bytes).map_err(|e| {
					InferenceError::Record(format!("chunk {layers}: {what} fingerprint: {e}"))
				})?;
				let expected =
					FingerprintParams { top_k: params.top_k_for(width as u32), ..params };
				if fp.kind != kind
					|| fp.positions as usize != rows
					|| fp.width as usize != width
					|| fp.params != expected
				{
					return Err(InferenceError::Record(format!(
						"chunk {layers}: the {what} fingerprint covers {} rows of width {} with {:?}; the record implies {rows} rows of width {width} with {expected:?}",
						fp.positions, fp.width, fp.params
					)));
				}
				Ok(fp)
			};
			let hidden = match (&chunk.hidden, i == last) {
				(Some(text), _) => Some(fingerprint(
					text,
					"hidden",
					RowKind::Hidden,
					positions,
					model.hidden_size,
				)?),
				(None, true) => None,
				(None, false) => {
					return bad(format!("chunk {layers} has no hidden-state fingerprint"))
				}
			};
			let logits = match (&chunk.logits, i == last) {
				(Some(text), true) => Some(fingerprint(
					text,
					"logits",
					RowKind::Logits,
					self.generated_tokens.len(),
					model.vocab_size,
				)?),
				(None, false) => None,
				(None, true) => {
					return bad(format!("the last chunk {layers} has no logits fingerprint"))
				}
				(Some(_), false) => {
					return bad(format!(
						"chunk {layers} has a logits fingerprint but is not the last"
					))
				}
			};
			chunks.push(Chunk { layers, weight_hash, hidden, logits });
		}
		Ok(Record {
			model: model.clone(),
			chunks,
			prompt_tokens: self.prompt_tokens.clone(),
			generated_tokens: self.generated_tokens.clone(),
			sampling,
			stop: self.stop,
			params,
			compute: self.compute.clone(),
		})
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn hex_round_trips_and_refuses_garbage() {
		assert_eq!(from_hex("0x00ff10").unwrap(), vec![0, 255, 16]);
		assert_eq!(from_hex(&to_hex(&[1, 2, 254])).unwrap(), vec![1, 2, 254]);
		for bad in ["0x0", "zz", "0xg1", "ä1"] {
			assert!(from_hex(bad).is_none(), "{bad}");
		}
	}
}
