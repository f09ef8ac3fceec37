//! A shard: the decoder layers `[start, end)` of a model, plus the token embedding on
//! the first shard and the final norm and lm_head on the last, with KV caches for
//! several sessions at once.

use crate::{
	config::MistralConfig,
	device::{round_through, ComputeFormat},
	error::{InferenceError, Result},
	layer::{DecoderLayer, LayerKvCache},
	linear::ShardLinear,
	model_dir::{self, ModelDir},
	rope::RotaryEmbedding,
	weights::ShardTensors,
	LayerRange,
};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, RmsNorm};
use std::collections::HashMap;

/// Identifies a generation session (one task's pipeline) across shards.
pub type SessionId = u64;

/// What a shard is fed.
#[derive(Debug, Clone)]
pub enum ShardInput {
	/// Token ids (the first shard only).
	Tokens(Vec<u32>),
	/// Hidden states [1, positions, hidden] from the previous shard.
	Hidden(Tensor),
}

/// What one pass through a shard computed.
#[derive(Debug, Clone)]
pub struct ShardPass {
	/// The output of the shard's last layer [1, positions, hidden] (before the final
	/// norm on the last shard): what the chunk's fingerprint covers.
	pub hidden: Tensor,
	/// Logits [rows, vocab] in f32 on the last shard, for the rows [`LogitsMode`] asks.
	pub logits: Option<Tensor>,
}

/// What a shard produces.
#[derive(Debug, Clone)]
pub enum ShardOutput {
	/// Hidden states [1, positions, hidden] for the next shard.
	Hidden(Tensor),
	/// Logits [rows, vocab] in f32 (the last shard): the last position only, or every
	/// position with [`LogitsMode::All`].
	Logits(Tensor),
}

/// Which positions the last shard computes logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsMode {
	/// Only the last position (generation).
	Last,
	/// Every position.
	All,
	/// The last `n` positions (a verifier's generated positions), at most all.
	Tail(usize),
}

/// Bounds on what a shard keeps cached.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
	/// Sessions cached at once; the least recently used is evicted beyond this.
	pub max_sessions: usize,
	/// Positions cached over all sessions (per layer); LRU eviction beyond this.
	pub max_cached_positions: usize,
}

impl Default for CacheLimits {
	fn default() -> Self {
		CacheLimits { max_sessions: 16, max_cached_positions: 64 * 1024 }
	}
}

struct Session {
	caches: Vec<LayerKvCache>,
	next_position: usize,
	last_used: u64,
}

impl Session {
	/// Positions cached (every layer caches as many).
	fn cached_positions(&self) -> usize {
		self.caches.first().map_or(0, LayerKvCache::len)
	}
}

/// A loaded chunk of a model.
pub struct Shard {
	config: MistralConfig,
	range: LayerRange,
	device: Device,
	format: ComputeFormat,
	embed_tokens: Option<Embedding>,
	layers: Vec<DecoderLayer>,
	final_norm: Option<RmsNorm>,
	lm_head: Option<ShardLinear>,
	rope: RotaryEmbedding,
	sessions: HashMap<SessionId, Session>,
	limits: CacheLimits,
	clock: u64,
	weight_bytes: usize,
}

impl Shard {
	/// Loads the shard over `range` from `dir`, computing natively in `dtype`.
	pub fn load(dir: &ModelDir, range: LayerRange, device: &Device, dtype: DType) -> Result<Self> {
		Self::load_as(dir, range, device, ComputeFormat::native(dtype))
	}

	/// Loads the shard over `range` from `dir`, computing in `format`.
	pub fn load_as(
		dir: &ModelDir,
		range: LayerRange,
		device: &Device,
		format: ComputeFormat,
	) -> Result<Self> {
		let config = dir.config().clone();
		range.check_within(config.num_hidden_layers)?;
		let dtype = format.dtype;
		let mut tensors = ShardTensors::load(dir, range, device, dtype)?;
		if let Some(round_to) = format.round_to {
			tensors.round_all(round_to)?;
		}
		let weight_bytes = tensors.bytes();
		let is_first = range.start == 0;
		let is_last = range.end == config.num_hidden_layers;
		let embed_tokens = if is_first {
			Some(Embedding::new(tensors.get(model_dir::EMBED_TOKENS)?, config.hidden_size))
		} else {
			None
		};
		let layers = range
			.layers()
			.map(|index| DecoderLayer::new(&config, index, &mut tensors, format.round_to))
			.collect::<Result<Vec<_>>>()?;
		let (final_norm, lm_head) = if is_last {
			let head = if config.tie_word_embeddings {
				tensors.get(model_dir::EMBED_TOKENS)?
			} else {
				tensors.take(model_dir::LM_HEAD)?
			};
			(
				Some(RmsNorm::new(tensors.take(model_dir::FINAL_NORM)?, config.rms_norm_eps)),
				Some(ShardLinear::new(head)),
			)
		} else {
			(None, None)
		};
		let rope = RotaryEmbedding::new(&config, dtype, device)?.rounded(format.round_to)?;
		Ok(Shard {
			config,
			range,
			device: device.clone(),
			format,
			embed_tokens,
			layers,
			final_norm,
			lm_head,
			rope,
			sessions: HashMap::new(),
			limits: CacheLimits::default(),
			clock: 0,
			weight_bytes,
		})
	}

	/// Replaces the cache bounds.
	pub fn with_limits(mut self, limits: CacheLimits) -> Self {
		self.limits = limits;
		self
	}

	/// The layer range.
	pub fn range(&self) -> LayerRange {
		self.range
	}

	/// The model config.
	pub fn config(&self) -> &MistralConfig {
		&self.config
	}

	/// Whether this shard takes token ids.
	pub fn is_first(&self) -> bool {
		self.embed_tokens.is_some()
	}

	/// Whether this shard produces logits.
	pub fn is_last(&self) -> bool {
		self.lm_head.is_some()
	}

	/// Compute dtype.
	pub fn dtype(&self) -> DType {
		self.format.dtype
	}

	/// How the shard computes.
	pub fn format(&self) -> ComputeFormat {
		self.format
	}

	/// Device.
	pub fn device(&self) -> &Device {
		&self.device
	}

	/// Bytes of weights this shard holds.
	pub fn weight_bytes(&self) -> usize {
		self.weight_bytes
	}

	/// Sessions currently cached.
	pub fn cached_sessions(&self) -> usize {
		self.sessions.len()
	}

	/// Frees a session's caches.
	pub fn end_session(&mut self, session: SessionId) {
		self.sessions.remove(&session);
	}

	/// Runs positions `offset..offset + n` of `session` through the shard.
	///
	/// `offset == 0` starts (or restarts) the session; otherwise `offset` must be where
	/// the session's previous call ended.
	pub fn forward(
		&mut self,
		session: SessionId,
		offset: usize,
		input: ShardInput,
		logits: LogitsMode,
	) -> Result<ShardOutput> {
		let pass = self.run(session, offset, input, logits)?;
		Ok(match pass.logits {
			Some(logits) => ShardOutput::Logits(logits),
			None => ShardOutput::Hidden(pass.hidden),
		})
	}

	/// Like [`Shard::forward`], and also returns the last layer's output on the last
	/// shard.
	pub fn run(
		&mut self,
		session: SessionId,
		offset: usize,
		input: ShardInput,
		logits: LogitsMode,
	) -> Result<ShardPass> {
		let mut xs = self.embed_input(input)?;
		let positions = xs.dim(1)?;
		if positions == 0 {
			return Err(InferenceError::Input("no positions to run".into()));
		}
		let end = offset
			.checked_add(positions)
			.filter(|end| *end <= self.config.max_position_embeddings)
			.ok_or_else(|| {
				InferenceError::Input(format!(
					"positions {offset}..{} exceed the model's maximum of {}",
					offset.saturating_add(positions),
					self.config.max_position_embeddings
				))
			})?;

		self.check_share(session, offset, positions)?;

		self.clock += 1;
		let clock = self.clock;
		let num_layers = self.layers.len();
		let state = if offset == 0 {
			self.sessions.insert(
				session,
				Session {
					caches: vec![LayerKvCache::default(); num_layers],
					next_position: 0,
					last_used: clock,
				},
			);
			self.sessions.get_mut(&session)
		} else {
			self.sessions.get_mut(&session)
		}
		.ok_or_else(|| {
			InferenceError::Session(format!(
				"session {session} is not cached here (never started or evicted); restart it at position 0"
			))
		})?;
		if state.next_position != offset {
			return Err(InferenceError::Session(format!(
				"session {session} is at position {} but the input starts at {offset}",
				state.next_position
			)));
		}

		for (layer, cache) in self.layers.iter().zip(state.caches.iter_mut()) {
			xs = layer.forward(&xs, offset, &self.rope, cache)?;
		}
		state.next_position = end;
		state.last_used = clock;
		self.evict(session);

		let logits = match (&self.final_norm, &self.lm_head) {
			(Some(norm), Some(head)) => {
				let rows = match logits {
					LogitsMode::Last => 1,
					LogitsMode::All => positions,
					LogitsMode::Tail(n) => n.clamp(1, positions),
				};
				let r = |t| round_through(t, self.format.round_to);
				let tail = xs.narrow(1, positions - rows, rows)?;
				let logits = r(head.forward(&r(norm.forward(&tail)?)?)?)?;
				Some(logits.squeeze(0)?.to_dtype(DType::F32)?)
			}
			_ => None,
		};
		Ok(ShardPass { hidden: xs, logits })
	}

	/// Token ids -> embeddings on the first shard; checks hidden states elsewhere.
	fn embed_input(&self, input: ShardInput) -> Result<Tensor> {
		match (input, &self.embed_tokens) {
			(ShardInput::Tokens(tokens), Some(embed)) => {
				if let Some(bad) = tokens.iter().find(|t| **t as usize >= self.config.vocab_size) {
					return Err(InferenceError::Input(format!(
						"token id {bad} is outside the vocabulary of {}",
						self.config.vocab_size
					)));
				}
				let ids = Tensor::new(tokens.as_slice(), &self.device)?.unsqueeze(0)?;
				Ok(embed.forward(&ids)?)
			}
			(ShardInput::Hidden(hidden), None) => {
				let dims = hidden.dims();
				if dims.len() != 3 || dims[0] != 1 || dims[2] != self.config.hidden_size {
					return Err(InferenceError::Input(format!(
						"hidden states of shape {dims:?}; expected [1, positions, {}]",
						self.config.hidden_size
					)));
				}
				let hidden = hidden.to_device(&self.device)?.to_dtype(self.format.dtype)?;
				round_through(hidden, self.format.round_to)
			}
			(ShardInput::Tokens(_), None) => Err(InferenceError::Input(format!(
				"shard {} takes hidden states, not token ids",
				self.range
			))),
			(ShardInput::Hidden(_), Some(_)) => Err(InferenceError::Input(format!(
				"shard {} is the first and takes token ids, not hidden states",
				self.range
			))),
		}
	}

	/// Refuses a pass after which `session` would hold more than its share of the cache
	/// (`max_cached_positions / max_sessions`) and the cache could not hold it beside the
	/// other sessions: beyond its share a session uses free space only, so that one
	/// session (one task's previous stage sending a long input) cannot evict the others
	/// (review L3). Within its share it evicts the least recently used, as before.
	fn check_share(&self, session: SessionId, offset: usize, positions: usize) -> Result<()> {
		let own = match self.sessions.get(&session) {
			Some(state) if offset > 0 => state.cached_positions(),
			_ => 0,
		};
		let others: usize = self
			.sessions
			.iter()
			.filter(|(id, _)| **id != session)
			.map(|(_, s)| s.cached_positions())
			.sum();
		// What the cache keeps after the pass (`layer::store_in_cache` trims a windowed
		// cache to its last window once it reaches two).
		let mut after = own.saturating_add(positions);
		if let Some(window) = self.config.sliding_window {
			if after >= window.saturating_mul(2) {
				after = window.saturating_sub(1);
			}
		}
		let limit = self.limits.max_cached_positions;
		let share = limit / self.limits.max_sessions.max(1);
		if after > share && others.saturating_add(after) > limit {
			return Err(InferenceError::Session(format!(
				"session {session} would cache {after} positions, beyond its share of {share}, \
				 and the {others} positions other sessions cache here leave no room (this \
				 shard caches {limit}); it may continue once others end"
			)));
		}
		Ok(())
	}

	/// Evicts least recently used sessions (never `keep`) beyond the limits.
	fn evict(&mut self, keep: SessionId) {
		loop {
			let cached: usize = self.sessions.values().map(Session::cached_positions).sum();
			if self.sessions.len() <= self.limits.max_sessions
				&& cached <= self.limits.max_cached_positions
			{
				return;
			}
			let victim = self
				.sessions
				.iter()
				.filter(|(id, _)| **id != keep)
				.min_by_key(|(_, s)| s.last_used)
				.map(|(id, _)| *id);
			match victim {
				Some(id) => {
					self.sessions.remove(&id);
				}
				None => return,
			}
		}
	}
}
