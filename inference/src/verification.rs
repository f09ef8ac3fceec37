//! Generate once, verify by prefill.
//!
//! [`record_generation`] runs a generation through fingerprinting stages and returns its
//! [`Record`]. [`verify_record`] is the verifier's pass: one batched prefill (in pieces
//! of at most `prefill_piece` positions, through the KV cache) over the prompt and the
//! generated tokens, fingerprints of every chunk's output recomputed and compared with
//! the record's under the tolerance, and the sampling checked at every generated
//! position: the token must be one the seeded sampler could have drawn from the
//! verifier's logits within `max_logit_error`, and the stop reason must be consistent.

use crate::{
	error::{InferenceError, Result},
	fingerprint::{
		compare, compare_float, Comparison, FingerprintBuilder, FloatSketch, Mismatch, RowKind,
		VerificationParams, LOG_RMS_SCALE, PROJECTION_SCALE, VALUE_SCALE,
	},
	pipeline::{generate, GenerationOutput, GenerationRequest, LocalTransport},
	record::{Chunk, Record, RecordModel, RecordSampling, StopReason},
	sampling::is_plausible_sample,
	shard::{LogitsMode, SessionId, Shard, ShardInput},
	LayerRange,
};
use candle_core::Device;
use std::time::{Duration, Instant};

/// Runs `request` through `transport` (which must have been made
/// [`LocalTransport::with_fingerprints`]) and returns the output and its record;
/// `weight_hashes` are the stages' chunk hashes, in order.
pub fn record_generation(
	transport: &mut LocalTransport,
	request: &GenerationRequest,
	device: &Device,
	weight_hashes: &[[u8; 32]],
	compute: &str,
) -> Result<(GenerationOutput, Record)> {
	let params = transport
		.fingerprint_params()
		.ok_or_else(|| InferenceError::Fingerprint("the transport takes no fingerprints".into()))?;
	let output = generate(transport, request, device)?;
	let recorders = transport.take_recorders(request.session).ok_or_else(|| {
		InferenceError::Fingerprint("no fingerprints were taken of this session".into())
	})?;
	let ranges: Vec<LayerRange> = transport.shards().iter().map(Shard::range).collect();
	let config = transport.shards()[0].config();
	let stages = GeneratorStages { config, ranges: &ranges, weight_hashes, params, compute };
	let record = stages.record(recorders, request, &output)?;
	Ok((output, record))
}

/// What a record says about the pipeline that generated it.
pub struct GeneratorStages<'a> {
	/// The model's config.
	pub config: &'a crate::MistralConfig,
	/// Layer ranges of the stages (the record's chunks).
	pub ranges: &'a [LayerRange],
	/// Weight hashes of the chunks.
	pub weight_hashes: &'a [[u8; 32]],
	/// How the stages took fingerprints.
	pub params: crate::fingerprint::FingerprintParams,
	/// The stages' compute format.
	pub compute: &'a str,
}

impl GeneratorStages<'_> {
	/// The record of a generation from the stages' fingerprint builders.
	pub fn record(
		&self,
		recorders: Vec<crate::pipeline::StageRecorder>,
		request: &GenerationRequest,
		output: &GenerationOutput,
	) -> Result<Record> {
		if self.weight_hashes.len() != self.ranges.len() || recorders.len() != self.ranges.len() {
			return Err(InferenceError::Fingerprint(format!(
				"{} weight hashes and {} recorders for {} stages",
				self.weight_hashes.len(),
				recorders.len(),
				self.ranges.len()
			)));
		}
		let chunks = self
			.ranges
			.iter()
			.zip(recorders)
			.zip(self.weight_hashes)
			.map(|((range, recorder), hash)| {
				Ok(Chunk {
					layers: *range,
					weight_hash: *hash,
					hidden: Some(recorder.hidden.finish(usize::MAX)?),
					logits: recorder.logits.map(|l| l.finish(usize::MAX)).transpose()?,
				})
			})
			.collect::<Result<Vec<_>>>()?;
		Ok(Record {
			model: RecordModel {
				num_layers: self.config.num_hidden_layers,
				hidden_size: self.config.hidden_size,
				vocab_size: self.config.vocab_size,
			},
			chunks,
			prompt_tokens: request.prompt.clone(),
			generated_tokens: output.tokens.clone(),
			sampling: RecordSampling::of(request),
			stop: if output.stopped { StopReason::Eos } else { StopReason::MaxTokens },
			params: self.params,
			compute: Some(self.compute.to_string()),
		})
	}
}

/// How a verification runs.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
	/// Tolerances (and the sampling check's logit error).
	pub params: VerificationParams,
	/// Most positions per prefill piece (memory bound of the attention scores).
	pub prefill_piece: usize,
	/// Session id used in the verifier's shards.
	pub session: SessionId,
}

impl Default for VerifyOptions {
	fn default() -> Self {
		VerifyOptions { params: VerificationParams::DEFAULT, prefill_piece: 512, session: 0x7e51 }
	}
}

/// One fingerprint's verdict.
#[derive(Debug, Clone)]
pub struct FingerprintVerdict {
	/// The integer comparison (what the chain computes); `Err` when the shapes differ.
	pub comparison: std::result::Result<Comparison, Mismatch>,
	/// The float reference's acceptance, on the claimed codes and the verifier's
	/// unquantized sketch.
	pub float_accepted: bool,
	/// The verifier's own sketch.
	pub recomputed: FloatSketch,
}

impl FingerprintVerdict {
	/// Whether the claim is within the tolerance.
	pub fn accepted(&self) -> bool {
		self.comparison.as_ref().is_ok_and(|c| c.accepted)
	}

	/// The first block outside the tolerance (0 when the shapes differ).
	pub fn first_bad_block(&self) -> Option<u32> {
		match &self.comparison {
			Ok(c) => c.first_bad_block,
			Err(_) => Some(0),
		}
	}

	/// The numbers as JSON (errors in units of the row's RMS, overlap as a share).
	pub fn to_json(&self) -> serde_json::Value {
		match &self.comparison {
			Ok(c) => serde_json::json!({
				"accepted": c.accepted,
				"first_bad_block": c.first_bad_block,
				"min_overlap": c.worst.top_k_overlap as f64 / 1000.0,
				"max_error": c.worst.block_error as f64 / PROJECTION_SCALE,
				"max_position_error": c.worst.position_error as f64 / PROJECTION_SCALE,
				"max_log_rms_error": c.worst.log_rms_error as f64 / LOG_RMS_SCALE,
				"max_log_rms_bias": c.worst.log_rms_bias as f64 / LOG_RMS_SCALE,
				"max_top_k_error": c.worst.top_k_error as f64 / VALUE_SCALE,
			}),
			Err(mismatch) => serde_json::json!({
				"accepted": false,
				"first_bad_block": 0,
				"min_overlap": 0.0,
				"max_error": null,
				"mismatch": format!("{mismatch:?}"),
			}),
		}
	}
}

/// One chunk's verdict.
#[derive(Debug, Clone)]
pub struct ChunkVerdict {
	/// Its layers.
	pub layers: LayerRange,
	/// Its hidden states (`None`: the record has only the last chunk's logits).
	pub hidden: Option<FingerprintVerdict>,
	/// Its logits (last chunk).
	pub logits: Option<FingerprintVerdict>,
}

impl ChunkVerdict {
	/// Hidden states and logits both accepted.
	pub fn accepted(&self) -> bool {
		self.hidden.as_ref().is_none_or(FingerprintVerdict::accepted)
			&& self.logits.as_ref().is_none_or(FingerprintVerdict::accepted)
	}

	/// Whether the float reference agrees with the integer verdict on every fingerprint.
	pub fn float_agrees(&self) -> bool {
		let agrees = |v: &FingerprintVerdict| v.float_accepted == v.accepted();
		self.hidden.as_ref().is_none_or(agrees) && self.logits.as_ref().is_none_or(agrees)
	}
}

/// The sampling check's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingVerdict {
	/// Every token plausible and the stop consistent.
	pub accepted: bool,
	/// Index (into the generated tokens) of the first failing one.
	pub first_bad_position: Option<usize>,
	/// What failed there.
	pub reason: Option<String>,
	/// Greedy tasks: the largest gap between the best logit and the chosen token's.
	pub max_greedy_gap: Option<f64>,
}

/// A verification's result.
#[derive(Debug, Clone)]
pub struct Verification {
	/// Per record chunk.
	pub chunks: Vec<ChunkVerdict>,
	/// The sampling check.
	pub sampling: SamplingVerdict,
	/// Time inside the shards (the prefill).
	pub prefill_time: Duration,
	/// Whole verification (prefill, fingerprints, comparisons, sampling check).
	pub total_time: Duration,
}

impl Verification {
	/// Everything accepted.
	pub fn accepted(&self) -> bool {
		self.sampling.accepted && self.chunks.iter().all(ChunkVerdict::accepted)
	}

	/// The verdict had the float reference decided every fingerprint.
	pub fn float_accepted(&self) -> bool {
		self.sampling.accepted
			&& self.chunks.iter().all(|c| {
				c.hidden.as_ref().is_none_or(|h| h.float_accepted)
					&& c.logits.as_ref().is_none_or(|l| l.float_accepted)
			})
	}

	/// The first chunk rejected.
	pub fn first_bad_chunk(&self) -> Option<usize> {
		self.chunks.iter().position(|c| !c.accepted())
	}

	/// The report `dllm-infer verify --json` prints.
	pub fn to_json(&self) -> serde_json::Value {
		let chunks: Vec<serde_json::Value> = self
			.chunks
			.iter()
			.enumerate()
			.map(|(i, c)| {
				// The hidden states' numbers, or the logits' when only those were recorded.
				let mut entry = match (&c.hidden, &c.logits) {
					(Some(hidden), _) => hidden.to_json(),
					(None, Some(logits)) => logits.to_json(),
					(None, None) => serde_json::json!({}),
				};
				entry["chunk"] = i.into();
				entry["layers"] = c.layers.to_string().into();
				entry["accepted"] = c.accepted().into();
				if let Some(logits) = &c.logits {
					entry["logits"] = logits.to_json();
					if c.hidden.as_ref().is_none_or(FingerprintVerdict::accepted) {
						entry["first_bad_block"] = logits.first_bad_block().into();
					}
				}
				entry
			})
			.collect();
		serde_json::json!({
			"accepted": self.accepted(),
			"chunks": chunks,
			"sampling": {
				"accepted": self.sampling.accepted,
				"first_bad_position": self.sampling.first_bad_position,
				"reason": self.sampling.reason,
			},
			"prefill_seconds": self.prefill_time.as_secs_f64(),
			"total_seconds": self.total_time.as_secs_f64(),
		})
	}
}

/// Which record chunk ends at each shard (`None`: the chunk goes on in the next shard).
fn chunk_ends(shards: &[LayerRange], chunks: &[LayerRange]) -> Result<Vec<Option<usize>>> {
	let ends: Vec<Option<usize>> =
		shards.iter().map(|s| chunks.iter().position(|c| c.end == s.end)).collect();
	let boundaries = ends.iter().flatten().count();
	if boundaries != chunks.len() {
		let list = |r: &[LayerRange]| r.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(",");
		return Err(InferenceError::Record(format!(
			"the record's chunks {} cannot be verified with shards {}: every chunk must end where a shard ends",
			list(chunks),
			list(shards)
		)));
	}
	Ok(ends)
}

/// Verifies `record` with `shards` (in order, partitioning the model; every record
/// chunk must end where a shard ends). `stop_tokens` are the model's end-of-sequence
/// ids. Errors are bad input (a record that does not fit these shards); a rejection of
/// the work is a [`Verification`] that is not accepted.
pub fn verify_record(
	shards: &mut [Shard],
	record: &Record,
	options: &VerifyOptions,
	stop_tokens: &[u32],
) -> Result<Verification> {
	let started = Instant::now();
	let config = shards
		.first()
		.map(|s| s.config().clone())
		.ok_or_else(|| InferenceError::LayerRange("no shards".into()))?;
	record.check_model(&config)?;
	let ranges: Vec<LayerRange> = shards.iter().map(Shard::range).collect();
	LayerRange::check_partition(&ranges, config.num_hidden_layers)?;
	let ends = chunk_ends(&ranges, &record.layout())?;
	let params = record.params;
	let mut hidden: Vec<FingerprintBuilder> = record
		.chunks
		.iter()
		.map(|_| FingerprintBuilder::for_rows(params, RowKind::Hidden))
		.collect::<Result<_>>()?;
	let mut logits = FingerprintBuilder::for_rows(params, RowKind::Logits)?;
	let mut sampling = SamplingCheck::new(
		record.generated_tokens.clone(),
		record.sampling,
		record.stop,
		options.params.max_logit_error_milli as f32 / 1000.0,
		stop_tokens.to_vec(),
	);

	let tokens = record.input_tokens();
	let first_logit_row = record.prompt_tokens.len() - 1;
	let piece = options.prefill_piece.max(1);
	let mut prefill_time = Duration::ZERO;
	let last = shards.len() - 1;
	let result = (|| -> Result<()> {
		for start in (0..tokens.len()).step_by(piece) {
			let end = (start + piece).min(tokens.len());
			let rows = end - start.max(first_logit_row).min(end);
			let mut input = ShardInput::Tokens(tokens[start..end].to_vec());
			for (s, shard) in shards.iter_mut().enumerate() {
				let mode = if rows > 0 { LogitsMode::Tail(rows) } else { LogitsMode::Last };
				let timer = Instant::now();
				let pass = shard.run(options.session, start, input, mode)?;
				prefill_time += timer.elapsed();
				if let Some(chunk) = ends[s] {
					hidden[chunk].push(&pass.hidden)?;
				}
				if s == last {
					if rows > 0 {
						let table = pass
							.logits
							.ok_or_else(|| {
								InferenceError::Input("the last shard gave no logits".into())
							})?
							.to_vec2::<f32>()?;
						for (r, row) in table.iter().enumerate() {
							logits.push_row(row)?;
							sampling.check(end - rows + r - first_logit_row, row)?;
						}
					}
					break;
				}
				input = ShardInput::Hidden(pass.hidden);
			}
		}
		Ok(())
	})();
	for shard in shards.iter_mut() {
		shard.end_session(options.session);
	}
	result?;

	let tolerance = &options.params;
	let verdict = |claimed: &crate::fingerprint::Fingerprint,
	               builder: &FingerprintBuilder,
	               tolerance: &crate::fingerprint::Tolerance|
	 -> Result<FingerprintVerdict> {
		let recomputed = builder.sketch()?;
		let ours = builder.finish(usize::MAX)?;
		let float_accepted =
			compare_float(&FloatSketch::dequantize(claimed), &recomputed, tolerance).accepted;
		Ok(FingerprintVerdict {
			comparison: compare(claimed, &ours, tolerance),
			float_accepted,
			recomputed,
		})
	};
	let mut chunks = Vec::with_capacity(record.chunks.len());
	for (chunk, builder) in record.chunks.iter().zip(&hidden) {
		let logits = match &chunk.logits {
			Some(claimed) => Some(verdict(claimed, &logits, &tolerance.logits)?),
			None => None,
		};
		chunks.push(ChunkVerdict {
			layers: chunk.layers,
			hidden: match &chunk.hidden {
				Some(claimed) => Some(verdict(claimed, builder, &tolerance.hidden)?),
				None => None,
			},
			logits,
		});
	}
	Ok(Verification {
		chunks,
		sampling: sampling.finish(),
		prefill_time,
		total_time: started.elapsed(),
	})
}

/// The sampling check, position by position as the verifier's logits come: every
/// generated token must be one the seeded sampler could have drawn from logits within
/// `epsilon` of the verifier's, and the stop reason must be consistent.
pub struct SamplingCheck {
	generated: Vec<u32>,
	sampling: RecordSampling,
	stop: StopReason,
	epsilon: f32,
	stop_tokens: Vec<u32>,
	failure: Option<(usize, String)>,
	max_greedy_gap: Option<f64>,
}

impl SamplingCheck {
	/// A check of `generated` (not empty), drawn with `sampling` and ended for `stop`.
	pub fn new(
		generated: Vec<u32>,
		sampling: RecordSampling,
		stop: StopReason,
		epsilon: f32,
		stop_tokens: Vec<u32>,
	) -> Self {
		let max_greedy_gap = (sampling.temperature == 0.0).then_some(0.0);
		SamplingCheck {
			generated,
			sampling,
			stop,
			epsilon,
			stop_tokens,
			failure: None,
			max_greedy_gap,
		}
	}

	fn fail(&mut self, position: usize, reason: String) {
		if self.failure.as_ref().is_none_or(|(p, _)| position < *p) {
			self.failure = Some((position, reason));
		}
	}

	/// Checks the generated token at `position` against the verifier's logits there.
	pub fn check(&mut self, position: usize, logits: &[f32]) -> Result<()> {
		let tokens = &self.generated;
		let token = *tokens.get(position).ok_or_else(|| {
			InferenceError::Input(format!(
				"logits for generated position {position}, but {} tokens were generated",
				tokens.len()
			))
		})?;
		if token as usize >= logits.len() {
			self.fail(position, format!("token {token} is outside the vocabulary"));
			return Ok(());
		}
		if position + 1 < tokens.len() && self.stop_tokens.contains(&token) {
			self.fail(
				position,
				format!(
					"token {token} ends generation, yet {} more follow",
					tokens.len() - position - 1
				),
			);
		}
		if let Some(gap) = &mut self.max_greedy_gap {
			let best = logits.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
			*gap = gap.max((best - logits[token as usize]) as f64);
		}
		let params = self.sampling.params();
		if !is_plausible_sample(logits, &params, position as u64, token, self.epsilon)? {
			self.fail(position, format!("token {token} is not one the seeded sampler could draw"));
		}
		Ok(())
	}

	/// The verdict over every position checked.
	pub fn finish(mut self) -> SamplingVerdict {
		let n = self.generated.len();
		let last = self.generated.last().copied();
		match self.stop {
			StopReason::Eos if !last.is_some_and(|last| self.stop_tokens.contains(&last)) => self
				.fail(
					n.saturating_sub(1),
					format!(
						"reported as ended by end-of-sequence, but the last token {} is not one",
						last.map_or_else(|| "(none)".to_string(), |t| t.to_string())
					),
				),
			StopReason::MaxTokens if n != self.sampling.max_tokens => self.fail(
				n.saturating_sub(1),
				format!(
					"reported as ended at max_tokens {}, but {n} tokens were generated",
					self.sampling.max_tokens
				),
			),
			_ => {}
		}
		let (first_bad_position, reason) = match self.failure {
			Some((p, r)) => (Some(p), Some(r)),
			None => (None, None),
		};
		SamplingVerdict {
			accepted: first_bad_position.is_none(),
			first_bad_position,
			reason,
			max_greedy_gap: self.max_greedy_gap,
		}
	}
}

/// What the model's last stage needs to check the sampling of a generation.
#[derive(Debug, Clone)]
pub struct LastStage {
	/// How the generation was sampled (`max_tokens`: the most it could reach, the
	/// context's room included).
	pub sampling: RecordSampling,
	/// The model's end-of-sequence tokens.
	pub stop_tokens: Vec<u32>,
	/// Logit error the sampling check absorbs (the profile's `max_logit_error`).
	pub max_logit_error: f32,
}

/// One miner's share of a verification pass spread over a pipeline of miners, as
/// [`verify_record`] runs it in one process: the stage runs its shard over prompt +
/// generated tokens in pieces (each piece's input arriving from the stage before, in
/// order), fingerprints its output (the hidden states, or on the model's last stage the
/// logits at the generated positions) and, on the last stage, checks every generated
/// token against its logits.
pub struct StageVerifier {
	session: SessionId,
	positions: usize,
	first_logit_row: usize,
	next_offset: usize,
	fingerprint: FingerprintBuilder,
	sampling: Option<SamplingCheck>,
}

/// What a stage found.
#[derive(Debug, Clone)]
pub struct StageVerdict {
	/// The fingerprint of the stage's output, to compare with the generator's.
	pub fingerprint: crate::fingerprint::Fingerprint,
	/// The sampling check (the model's last stage).
	pub sampling: Option<SamplingVerdict>,
}

impl StageVerifier {
	/// A stage checking the generation of `generated` (not empty) after a prompt of
	/// `prompt_len` tokens (not empty); `last` makes it the model's last stage.
	pub fn new(
		params: crate::fingerprint::FingerprintParams,
		session: SessionId,
		prompt_len: usize,
		generated: &[u32],
		last: Option<LastStage>,
	) -> Result<Self> {
		if prompt_len == 0 || generated.is_empty() {
			return Err(InferenceError::Input(format!(
				"a verification needs a prompt and a generation ({prompt_len} prompt tokens, {} \
				 generated)",
				generated.len()
			)));
		}
		let kind = if last.is_some() { RowKind::Logits } else { RowKind::Hidden };
		let sampling = last.map(|last| {
			let ended = generated.last().is_some_and(|t| last.stop_tokens.contains(t));
			let stop = if ended { StopReason::Eos } else { StopReason::MaxTokens };
			SamplingCheck::new(
				generated.to_vec(),
				last.sampling,
				stop,
				last.max_logit_error,
				last.stop_tokens,
			)
		});
		Ok(StageVerifier {
			session,
			positions: prompt_len + generated.len() - 1,
			first_logit_row: prompt_len - 1,
			next_offset: 0,
			fingerprint: FingerprintBuilder::for_rows(params, kind)?,
			sampling,
		})
	}

	/// The tokens the first stage runs: the prompt and every generated token but the
	/// last (whose hidden state the generation never computed).
	pub fn input_tokens(prompt: &[u32], generated: &[u32]) -> Vec<u32> {
		let mut tokens = prompt.to_vec();
		tokens.extend_from_slice(&generated[..generated.len().saturating_sub(1)]);
		tokens
	}

	/// Positions the pass covers.
	pub fn positions(&self) -> usize {
		self.positions
	}

	/// The position the next piece starts at.
	pub fn next_offset(&self) -> usize {
		self.next_offset
	}

	/// Whether every position was run.
	pub fn is_done(&self) -> bool {
		self.next_offset == self.positions
	}

	/// Runs the piece of `input` starting at `offset` (the next one) through `shard`
	/// and takes in its output; returns the pass, whose hidden states go to the next
	/// stage.
	pub fn run_piece(
		&mut self,
		shard: &mut Shard,
		offset: usize,
		input: ShardInput,
	) -> Result<crate::shard::ShardPass> {
		let count = match &input {
			ShardInput::Tokens(tokens) => tokens.len(),
			ShardInput::Hidden(hidden) => hidden.dim(1)?,
		};
		let mode = self.logits_mode(offset, count)?;
		let pass = shard.run(self.session, offset, input, mode)?;
		self.absorb(offset, count, &pass)?;
		Ok(pass)
	}

	/// What a piece of `count` positions at `offset` asks of the shard's logits.
	pub fn logits_mode(&self, offset: usize, count: usize) -> Result<LogitsMode> {
		if offset != self.next_offset || count == 0 || offset + count > self.positions {
			return Err(InferenceError::Input(format!(
				"a piece of {count} positions at {offset}; the pass expects the next piece at \
				 {} of {} positions",
				self.next_offset, self.positions
			)));
		}
		let rows = self.rows(offset, count);
		Ok(if self.sampling.is_some() && rows > 0 {
			LogitsMode::Tail(rows)
		} else {
			LogitsMode::Last
		})
	}

	/// Takes in the shard's output for the piece at `offset` (see [`Self::run_piece`];
	/// a caller that changes the pass between running and absorbing it claims what it
	/// absorbed).
	pub fn absorb(
		&mut self,
		offset: usize,
		count: usize,
		pass: &crate::shard::ShardPass,
	) -> Result<()> {
		self.logits_mode(offset, count)?;
		let rows = self.rows(offset, count);
		match &mut self.sampling {
			None => self.fingerprint.push(&pass.hidden)?,
			Some(_) if rows == 0 => {}
			Some(sampling) => {
				let table = pass
					.logits
					.as_ref()
					.ok_or_else(|| InferenceError::Input("the last shard gave no logits".into()))?
					.to_dtype(candle_core::DType::F32)?
					.to_vec2::<f32>()?;
				if table.len() != rows {
					return Err(InferenceError::Input(format!(
						"{} logit rows for a piece with {rows} generated positions",
						table.len()
					)));
				}
				let first = offset + count - rows - self.first_logit_row;
				for (r, row) in table.iter().enumerate() {
					self.fingerprint.push_row(row)?;
					sampling.check(first + r, row)?;
				}
			}
		}
		self.next_offset = offset + count;
		Ok(())
	}

	/// Generated positions (rows of logits) inside the piece.
	fn rows(&self, offset: usize, count: usize) -> usize {
		let end = offset + count;
		end - offset.max(self.first_logit_row).min(end)
	}

	/// The stage's fingerprint (at most `max_bytes` encoded) and sampling verdict, once
	/// every position ran.
	pub fn finish(self, max_bytes: usize) -> Result<StageVerdict> {
		if !self.is_done() {
			return Err(InferenceError::Input(format!(
				"the pass stopped at position {} of {}",
				self.next_offset, self.positions
			)));
		}
		Ok(StageVerdict {
			fingerprint: self.fingerprint.finish(max_bytes)?,
			sampling: self.sampling.map(SamplingCheck::finish),
		})
	}
}
