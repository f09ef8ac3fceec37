//! The pipeline driver: runs a prompt through a list of stages (shards) that talk only
//! in the wire format, samples each next token on the last stage's logits, and feeds it
//! back to the first stage until `max_tokens` or an end-of-sequence token.
//!
//! [`Transport`] is how the driver reaches the stages; [`LocalTransport`] runs shards in
//! this process, the node implements it over its p2p network.

use crate::{
	error::{InferenceError, Result},
	fingerprint::{FingerprintBuilder, FingerprintParams, RowKind},
	sampling::{sample, SamplingParams},
	shard::{LogitsMode, SessionId, Shard, ShardInput, ShardPass},
	wire::{ActivationMessage, Payload},
	LayerRange,
};
use candle_core::{DType, Device};
use std::{
	collections::HashMap,
	time::{Duration, Instant},
};

/// Carries encoded messages to pipeline stages and their replies back.
pub trait Transport {
	/// Number of stages, in pipeline order.
	fn stages(&self) -> usize;
	/// Sends `message` to `stage` and returns its encoded reply.
	fn exchange(&mut self, stage: usize, message: Vec<u8>) -> Result<Vec<u8>>;
	/// Frees the session's caches on every stage.
	fn end_session(&mut self, session: SessionId);
}

/// The fingerprints one stage builds of one session: its output hidden states at every
/// position it runs and, on the last stage, the logits of every generated token.
#[derive(Debug, Clone)]
pub struct StageRecorder {
	/// The stage's output hidden states.
	pub hidden: FingerprintBuilder,
	/// The logits each token was sampled from (last stage only).
	pub logits: Option<FingerprintBuilder>,
}

impl StageRecorder {
	/// Empty builders for a stage (`last`: also the logits).
	pub fn new(params: FingerprintParams, last: bool) -> Result<Self> {
		Ok(StageRecorder {
			hidden: FingerprintBuilder::for_rows(params, RowKind::Hidden)?,
			logits: last
				.then(|| FingerprintBuilder::for_rows(params, RowKind::Logits))
				.transpose()?,
		})
	}

	/// Adds what a pass computed.
	pub fn push(&mut self, pass: &ShardPass) -> Result<()> {
		self.hidden.push(&pass.hidden)?;
		match (&mut self.logits, &pass.logits) {
			(Some(builder), Some(logits)) => builder.push(logits),
			(None, None) => Ok(()),
			_ => Err(InferenceError::Fingerprint("logits on a stage that is not the last".into())),
		}
	}
}

/// Shards in this process, reached through the wire format exactly as remote ones are.
pub struct LocalTransport {
	shards: Vec<Shard>,
	wire_dtype: Option<DType>,
	stage_time: Vec<Duration>,
	bytes_sent: usize,
	/// Fingerprints taken when set, per session and stage.
	fingerprints: Option<FingerprintParams>,
	recorders: HashMap<SessionId, Vec<StageRecorder>>,
}

impl LocalTransport {
	/// Shards in pipeline order; their ranges must partition the model's layers.
	pub fn new(shards: Vec<Shard>) -> Result<Self> {
		let first = shards.first().ok_or_else(|| InferenceError::LayerRange("no shards".into()))?;
		let layers = first.config().num_hidden_layers;
		let ranges: Vec<LayerRange> = shards.iter().map(Shard::range).collect();
		LayerRange::check_partition(&ranges, layers)?;
		let stages = shards.len();
		Ok(LocalTransport {
			shards,
			wire_dtype: None,
			stage_time: vec![Duration::ZERO; stages],
			bytes_sent: 0,
			fingerprints: None,
			recorders: HashMap::new(),
		})
	}

	/// Makes every stage fingerprint its outputs with `params` (a generation record).
	pub fn with_fingerprints(mut self, params: FingerprintParams) -> Self {
		self.fingerprints = Some(params);
		self
	}

	/// The fingerprint parameters, when the stages take fingerprints.
	pub fn fingerprint_params(&self) -> Option<FingerprintParams> {
		self.fingerprints
	}

	/// Takes the fingerprint builders of `session`, one per stage (kept after the
	/// session's caches are freed, until taken).
	pub fn take_recorders(&mut self, session: SessionId) -> Option<Vec<StageRecorder>> {
		self.recorders.remove(&session)
	}

	/// Sends hidden states in `dtype` instead of the shards' compute dtype.
	pub fn with_wire_dtype(mut self, dtype: DType) -> Self {
		self.wire_dtype = Some(dtype);
		self
	}

	/// Time spent inside each stage so far.
	pub fn stage_times(&self) -> &[Duration] {
		&self.stage_time
	}

	/// Bytes of messages sent between stages so far.
	pub fn bytes_sent(&self) -> usize {
		self.bytes_sent
	}

	/// The shards.
	pub fn shards(&self) -> &[Shard] {
		&self.shards
	}

	/// The shards, to run them directly (a verification with the same weights).
	pub fn shards_mut(&mut self) -> &mut [Shard] {
		&mut self.shards
	}
}

impl Transport for LocalTransport {
	fn stages(&self) -> usize {
		self.shards.len()
	}

	fn exchange(&mut self, stage: usize, message: Vec<u8>) -> Result<Vec<u8>> {
		let started = Instant::now();
		self.bytes_sent += message.len();
		let shard = self
			.shards
			.get_mut(stage)
			.ok_or_else(|| InferenceError::LayerRange(format!("no stage {stage}")))?;
		let message = ActivationMessage::decode(&message, shard.device())?;
		let offset = message.position_offset as usize;
		let input = match message.payload {
			Payload::Tokens(tokens) => ShardInput::Tokens(tokens),
			Payload::Hidden(hidden) => ShardInput::Hidden(hidden),
			Payload::Logits(_) => {
				return Err(InferenceError::Wire("a stage cannot take logits".into()))
			}
		};
		let positions = message.num_positions as usize;
		let pass = shard.run(message.session, offset, input, LogitsMode::Last)?;
		if let Some(params) = self.fingerprints {
			let stages = self.shards.len();
			let recorders = self.recorders.entry(message.session).or_default();
			if offset == 0 || recorders.len() != stages {
				// A (re)started session: fresh builders for this stage.
				if recorders.len() != stages {
					*recorders = (0..stages)
						.map(|s| StageRecorder::new(params, s + 1 == stages))
						.collect::<Result<_>>()?;
				} else {
					recorders[stage] = StageRecorder::new(params, stage + 1 == stages)?;
				}
			}
			recorders[stage].push(&pass)?;
		}
		let reply = match pass.logits {
			None => {
				let hidden = match self.wire_dtype {
					Some(dtype) => pass.hidden.to_dtype(dtype)?,
					None => pass.hidden,
				};
				ActivationMessage::hidden(message.session, offset, hidden)?
			}
			Some(logits) => ActivationMessage::logits(message.session, offset, positions, logits)?,
		};
		let encoded = reply.encode()?;
		self.stage_time[stage] += started.elapsed();
		Ok(encoded)
	}

	fn end_session(&mut self, session: SessionId) {
		for shard in &mut self.shards {
			shard.end_session(session);
		}
	}
}

/// A generation job.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
	/// Session id shared by all stages.
	pub session: SessionId,
	/// The prompt's token ids.
	pub prompt: Vec<u32>,
	/// Most tokens to generate.
	pub max_tokens: usize,
	/// Sampling parameters (with seed).
	pub sampling: SamplingParams,
	/// Tokens that end generation (included in the output).
	pub stop_tokens: Vec<u32>,
	/// Keep the logits each token was sampled from.
	pub keep_logits: bool,
}

/// What a generation produced.
#[derive(Debug, Clone, Default)]
pub struct GenerationOutput {
	/// Generated token ids.
	pub tokens: Vec<u32>,
	/// Logits each generated token was chosen from ([tokens][vocab]), if kept.
	pub logits: Vec<Vec<f32>>,
	/// Whether a stop token ended generation.
	pub stopped: bool,
	/// Time of the prompt pass (prefill) including the first token.
	pub prefill_time: Duration,
	/// Time of the decode steps after the first token.
	pub decode_time: Duration,
}

/// Runs `request` through every stage of `transport`.
pub fn generate<T: Transport>(
	transport: &mut T,
	request: &GenerationRequest,
	device: &Device,
) -> Result<GenerationOutput> {
	request.sampling.validate()?;
	if request.prompt.is_empty() {
		return Err(InferenceError::Input("the prompt has no tokens".into()));
	}
	let mut output = GenerationOutput::default();
	let mut input = request.prompt.clone();
	let mut offset = 0usize;
	let started = Instant::now();
	let result = (|| -> Result<()> {
		for step in 0..request.max_tokens {
			let logits = run_stages(transport, request.session, offset, input.clone(), device)?;
			let token = sample(&logits, &request.sampling, step as u64)?;
			if request.keep_logits {
				output.logits.push(logits);
			}
			output.tokens.push(token);
			if step == 0 {
				output.prefill_time = started.elapsed();
			}
			if request.stop_tokens.contains(&token) {
				output.stopped = true;
				break;
			}
			offset += input.len();
			input = vec![token];
		}
		Ok(())
	})();
	transport.end_session(request.session);
	result?;
	output.decode_time = started.elapsed().saturating_sub(output.prefill_time);
	Ok(output)
}

/// One pass of `tokens` at `offset` through all stages; returns the last position's logits.
fn run_stages<T: Transport>(
	transport: &mut T,
	session: SessionId,
	offset: usize,
	tokens: Vec<u32>,
	device: &Device,
) -> Result<Vec<f32>> {
	let mut message = ActivationMessage::tokens(session, offset, tokens)?.encode()?;
	let stages = transport.stages();
	for stage in 0..stages {
		let reply = transport.exchange(stage, message)?;
		let decoded = ActivationMessage::decode(&reply, device)?;
		decoded.expect(session, offset)?;
		match (&decoded.payload, stage + 1 == stages) {
			(Payload::Hidden(_), false) => message = reply,
			(Payload::Logits(logits), true) => {
				let rows = logits.dim(0)?;
				return Ok(logits.get(rows - 1)?.to_vec1::<f32>()?);
			}
			_ => {
				return Err(InferenceError::Wire(format!(
					"stage {stage} of {stages} replied with the wrong kind of message"
				)))
			}
		}
	}
	Err(InferenceError::LayerRange("the pipeline has no stages".into()))
}
