//! The model side of the worker: the chunks this miner serves, loaded once, and one
//! pipeline pass of one session through one of them.

use super::{chain::Assignment, test_hooks::TestHooks};
use candle_core::Tensor;
use dllm_inference::{
	fingerprint::{FingerprintBuilder, FingerprintParams, RowKind, VerificationParams},
	record::RecordSampling,
	sampling::SamplingParams,
	shard::{LogitsMode, SessionId},
	tokenizer::PromptTokenizer,
	verification::{LastStage, StageVerifier},
	wire::{ActivationMessage, Payload},
	MistralConfig, Shard, ShardInput, ShardOutput,
};
use dllm_primitives::market::{ChunkIndex, ModelId, NumericFormat, TaskId};
use dllm_runtime::AccountId;
use pallet_poaw::PipelineIndex;
use polkadot_sdk::{sp_core::H256, sp_runtime::Perbill};
use std::{
	collections::BTreeMap,
	sync::{Arc, Mutex},
};

/// Why a pass, a check or a session's setup failed.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
	/// The inference engine refused the input or failed.
	#[error(transparent)]
	Inference(#[from] dllm_inference::InferenceError),
	/// A tensor operation failed.
	#[error(transparent)]
	Tensor(#[from] candle_core::Error),
	/// A thread panicked while holding the lock.
	#[error("{0} lock poisoned")]
	Poisoned(&'static str),
	/// The input does not fit the stage (a message out of order, logits for a chunk,
	/// a piece too long).
	#[error("{0}")]
	Input(String),
}

/// The model this miner serves: its tokenizer and the chunks it holds.
pub struct ServedModel {
	/// The registry's id.
	pub model: ModelId,
	/// The checkpoint's config.
	pub config: MistralConfig,
	/// Its tokenizer (every stage decodes the output to attest its hash).
	pub tokenizer: PromptTokenizer,
	/// Loaded chunks by index.
	pub shards: BTreeMap<ChunkIndex, Arc<Mutex<Shard>>>,
	/// The registry's verification profile of each format the model accepts: the
	/// sampling check absorbs the logit error of the looser of the generator's and
	/// this miner's formats.
	pub profiles: Vec<(NumericFormat, VerificationParams)>,
}

impl ServedModel {
	/// The profile that covers work in formats `a` and `b` (the looser one's), or the
	/// most tolerant registered one when the registry lacks it.
	pub fn profile(&self, a: NumericFormat, b: NumericFormat) -> VerificationParams {
		let looser = a.max(b);
		self.profiles
			.iter()
			.find(|(format, _)| *format == looser)
			.or_else(|| self.profiles.iter().max_by_key(|(format, _)| *format))
			.map_or(VerificationParams::DEFAULT, |(_, params)| *params)
	}

	/// A task's prompt (bytes from the chain) as tokens, BOS first: what every stage of
	/// every pipeline counts and runs.
	pub fn prompt_tokens(&self, prompt: &[u8]) -> Result<Vec<u32>, ComputeError> {
		Ok(self.tokenizer.encode(&String::from_utf8_lossy(prompt), false)?)
	}

	/// The verification profile for a check of the stage (`pipeline`, `chunk`) of `task`
	/// against the generator's stage `generator_chunk`: the looser of the two slots'
	/// formats. `None` when the task's slots do not list both.
	pub fn check_profile(
		&self,
		task: &super::chain::TaskView,
		(pipeline, chunk): (PipelineIndex, ChunkIndex),
		(generator_pipeline, generator_chunk): (PipelineIndex, ChunkIndex),
	) -> Option<VerificationParams> {
		let format_of = |pipeline: PipelineIndex, chunk: ChunkIndex| {
			task.slots
				.iter()
				.find(|slot| slot.pipeline == pipeline && slot.chunk == chunk)
				.map(|slot| slot.format)
		};
		Some(
			self.profile(
				format_of(pipeline, chunk)?,
				format_of(generator_pipeline, generator_chunk)?,
			),
		)
	}

	/// The loaded chunk for a slot, if this miner serves it.
	pub fn shard(&self, model: ModelId, chunk: ChunkIndex) -> Option<Arc<Mutex<Shard>>> {
		(model == self.model).then(|| self.shards.get(&chunk).cloned()).flatten()
	}
}

/// The session id all stages of a task's pipeline use for their KV caches.
pub fn session_id(task: TaskId, pipeline: PipelineIndex) -> SessionId {
	task.wrapping_mul(256).wrapping_add(pipeline as u64)
}

/// The chain's sampling parameters as the inference crate takes them. `dllm-infer
/// generate --temperature T --top-k K --top-p P --seed S` with T = milli / 1000 and
/// P = parts per billion / 10⁹ replays a task exactly.
pub fn sampling(params: &pallet_poaw::SamplingParams) -> SamplingParams {
	SamplingParams {
		temperature: params.temperature_milli as f32 / 1000.0,
		top_k: (params.top_k > 0).then_some(params.top_k as usize),
		top_p: (params.top_p < Perbill::one())
			.then(|| params.top_p.deconstruct() as f32 / 1_000_000_000.0),
		seed: params.seed,
	}
}

/// Fingerprints as `dllm-inference` calibrates them: 32 positions per block (TOPLOC's),
/// per position its RMS and 3 projections, per block the top 16 entries.
pub const FINGERPRINT_PARAMS: FingerprintParams = FingerprintParams::DEFAULT;

/// What one stage keeps about one pipeline of one task while it generates.
pub struct Session {
	/// This miner's slot.
	pub assignment: Assignment,
	/// Position the next pass starts at.
	pub next_offset: usize,
	/// Prompt tokens (learned from the first pass).
	pub prompt_tokens: Option<u32>,
	/// Most tokens this generation can reach: `max_tokens`, less when the context fills.
	pub max_new: usize,
	/// Tokens generated so far (every stage sees them come back up the pipeline).
	pub tokens: Vec<u32>,
	/// The fingerprint of this chunk's outputs.
	pub fingerprint: FingerprintBuilder,
	/// The last step answered, for retried requests.
	pub last_reply: Option<(u32, u32)>,
	/// A step this stage ran whose result the next stage has not answered yet (it
	/// failed or went silent): sent again, not run again, when the step is retried
	/// (the cache already holds its positions).
	pub pending: Option<PendingStep>,
	/// What this stage sent down the pipeline at each answered step, kept so that a
	/// replacement of the next stage can rebuild its cache from them (replay).
	pub sent: Vec<Vec<u8>>,
	/// The miner of the next chunk the `sent` messages went to (its cache holds them).
	pub sent_to: Option<AccountId>,
	/// Whether a step came in live (not replayed): no replay is taken after that.
	pub live: bool,
}

/// A step run here and not answered downstream yet.
pub struct PendingStep {
	/// The step.
	pub step: u32,
	/// The hash of the message it ran on (a retry must bring the same one).
	pub input: H256,
	/// What it produced for the next stage.
	pub output: Vec<u8>,
	/// The next chunk's miner it went to.
	pub to: AccountId,
}

impl Session {
	pub fn new(assignment: Assignment) -> Result<Self, ComputeError> {
		// The last chunk's fingerprint covers its logits, as a verifier's does.
		let kind = if assignment.chunk + 1 == assignment.chunks {
			RowKind::Logits
		} else {
			RowKind::Hidden
		};
		Ok(Session {
			max_new: assignment.max_tokens as usize,
			assignment,
			next_offset: 0,
			prompt_tokens: None,
			tokens: Vec::new(),
			fingerprint: FingerprintBuilder::for_rows(FINGERPRINT_PARAMS, kind)?,
			last_reply: None,
			pending: None,
			sent: Vec::new(),
			sent_to: None,
			live: false,
		})
	}

	/// Whether generation is over after the tokens so far.
	pub fn is_done(&self, stop_tokens: &[u32]) -> bool {
		self.tokens.len() >= self.max_new
			|| self.tokens.last().is_some_and(|token| stop_tokens.contains(token))
	}
}

/// What a pass through this miner's chunk produced.
pub enum PassOutput {
	/// Hidden states for the next chunk, encoded in the wire format.
	Hidden(Vec<u8>),
	/// The last position's logits (last chunk).
	Logits(Vec<f32>),
}

/// Runs one encoded activation message through `shard` for `session` (blocking: call it
/// on a blocking thread).
pub fn run_pass(
	shard: &Mutex<Shard>,
	session: &Mutex<Session>,
	message: &[u8],
	max_positions: usize,
	hooks: TestHooks,
) -> Result<PassOutput, ComputeError> {
	let mut shard = shard.lock().map_err(|_| ComputeError::Poisoned("shard"))?;
	let mut session = session.lock().map_err(|_| ComputeError::Poisoned("session"))?;
	let id = session_id(session.assignment.task, session.assignment.pipeline);
	let message = ActivationMessage::decode(message, shard.device())?;
	message.expect(id, session.next_offset)?;
	let positions = message.num_positions as usize;
	if session.next_offset == 0 {
		session.prompt_tokens = Some(message.num_positions);
		// Positions 0..prompt + generated - 1 are run; the context bounds them.
		session.max_new = generation_cap(session.assignment.max_tokens, positions, max_positions);
	}
	let input = match message.payload {
		Payload::Tokens(tokens) => ShardInput::Tokens(tokens),
		Payload::Hidden(hidden) => ShardInput::Hidden(hidden),
		Payload::Logits(_) => return Err(ComputeError::Input("a chunk cannot take logits".into())),
	};
	let offset = session.next_offset;
	let output = shard.forward(id, offset, input, LogitsMode::Last)?;
	session.next_offset += positions;
	match output {
		ShardOutput::Hidden(hidden) => {
			let (fingerprinted, sent) = hooks.generated(hidden)?;
			session.fingerprint.push(&fingerprinted)?;
			let reply = ActivationMessage::hidden(id, offset, sent)?;
			Ok(PassOutput::Hidden(reply.encode()?))
		}
		ShardOutput::Logits(logits) => {
			let logits = match logits.rank() {
				3 => logits.squeeze(0),
				1 => logits.unsqueeze(0),
				_ => Ok(logits),
			}?;
			let rows = logits.dim(0)?;
			let mut last: Vec<f32> = logits
				.get(rows.saturating_sub(1))
				.and_then(|row| row.to_dtype(candle_core::DType::F32))
				.and_then(|row| row.to_vec1::<f32>())?;
			hooks.generated_logits(&mut last);
			session.fingerprint.push_row(&last)?;
			Ok(PassOutput::Logits(last))
		}
	}
}

/// Most tokens a generation of `max_tokens` after `prompt_len` prompt tokens can reach
/// in a context of `max_positions` (the generation runs positions up to prompt +
/// generated - 1).
pub fn generation_cap(max_tokens: u32, prompt_len: usize, max_positions: usize) -> usize {
	(max_tokens as usize).min((max_positions + 1).saturating_sub(prompt_len))
}

/// Positions per prefill piece a verifier's pipeline passes on: bounds the attention
/// scores of one pass and the size of one request.
pub const PREFILL_PIECE: usize = 512;

/// What one stage of a verifier's or referee's pipeline keeps while the published
/// generation passes through it by prefill.
pub struct CheckSession {
	/// This miner's slot.
	pub assignment: Assignment,
	/// The hash of the generator's published output, which every check attests.
	pub published: H256,
	/// The stage's share of the verification; out while a piece runs, gone once the
	/// stage's result is kept.
	pub verifier: Option<StageVerifier>,
	/// Whether the published prompt length and text follow from the prompt and tokens
	/// (this miner's tokenizer); the last chunk rejects the sampling otherwise.
	pub claims_consistent: bool,
	/// The last piece this stage ran, and its output for the next stage (kept so that
	/// a retried piece is passed on again rather than run twice).
	pub last_piece: Option<(u32, Option<Vec<u8>>)>,
	/// The piece running now.
	pub in_flight: Option<u32>,
}

impl CheckSession {
	/// A stage checking the generation `generated` published as `published`, after
	/// the task's prompt of `prompt_len` tokens (this miner's own tokenization). The
	/// model's last chunk checks the sampling under `profile`.
	pub fn new(
		assignment: Assignment,
		published: H256,
		prompt_len: usize,
		generated: &[u32],
		config: &MistralConfig,
		profile: &VerificationParams,
		claims_consistent: bool,
	) -> Result<Self, ComputeError> {
		let session = session_id(assignment.task, assignment.pipeline);
		let verifier =
			stage_verifier(&assignment, session, prompt_len, generated, config, profile)?;
		Ok(CheckSession {
			assignment,
			published,
			verifier: Some(verifier),
			claims_consistent,
			last_piece: None,
			in_flight: None,
		})
	}
}

/// The share of a verification that `assignment`'s chunk runs, in KV-cache session
/// `session`: on the model's last chunk it checks the sampling under `profile`.
fn stage_verifier(
	assignment: &Assignment,
	session: SessionId,
	prompt_len: usize,
	generated: &[u32],
	config: &MistralConfig,
	profile: &VerificationParams,
) -> Result<StageVerifier, ComputeError> {
	let max_positions = config.max_position_embeddings;
	let last = (assignment.chunk + 1 == assignment.chunks).then(|| {
		let params = sampling(&assignment.sampling);
		LastStage {
			sampling: RecordSampling {
				temperature: params.temperature,
				top_k: params.top_k,
				top_p: params.top_p,
				seed: params.seed,
				max_tokens: generation_cap(assignment.max_tokens, prompt_len, max_positions),
			},
			stop_tokens: config.eos_token_ids(),
			max_logit_error: profile.max_logit_error_milli as f32 / 1000.0,
		}
	});
	Ok(StageVerifier::new(FINGERPRINT_PARAMS, session, prompt_len, generated, last)?)
}

/// Runs one encoded prefill piece of `assignment`'s check through `shard` (blocking);
/// returns the encoded hidden states for the next stage (none from the model's last
/// chunk).
pub fn run_check_piece(
	shard: &Mutex<Shard>,
	verifier: &mut StageVerifier,
	assignment: &Assignment,
	message: &[u8],
	hooks: TestHooks,
) -> Result<Option<Vec<u8>>, ComputeError> {
	let mut shard = shard.lock().map_err(|_| ComputeError::Poisoned("shard"))?;
	let id = session_id(assignment.task, assignment.pipeline);
	let message = ActivationMessage::decode(message, shard.device())?;
	let offset = verifier.next_offset();
	message.expect(id, offset)?;
	let count = message.num_positions as usize;
	if count > PREFILL_PIECE {
		return Err(ComputeError::Input(format!(
			"a prefill piece of {count} positions; at most {PREFILL_PIECE}"
		)));
	}
	let input = match message.payload {
		Payload::Tokens(tokens) => ShardInput::Tokens(tokens),
		Payload::Hidden(hidden) => ShardInput::Hidden(hidden),
		Payload::Logits(_) => return Err(ComputeError::Input("a chunk cannot take logits".into())),
	};
	let mode = verifier.logits_mode(offset, count)?;
	let mut pass = shard.run(id, offset, input, mode)?;
	hooks.checked(&mut pass)?;
	verifier.absorb(offset, count, &pass)?;
	if assignment.chunk + 1 >= assignment.pipeline_experts.len() as u32 {
		// The pipeline's last stage (the model's last chunk, or a referee round's
		// disputed one) passes nothing on.
		return Ok(None);
	}
	let sent = hooks.sent(pass.hidden)?;
	let reply = ActivationMessage::hidden(id, offset, sent)?;
	Ok(Some(reply.encode()?))
}

/// The KV-cache session of a referee's rerun of another stage (no pipeline has this
/// index: a task has at most `2 + MaxRefereeRounds × RefereesPerRound` of them, and the
/// runtime's integrity test keeps that below it).
const RECHECK_PIPELINE: PipelineIndex = PipelineIndex::MAX;

/// What a referee found rerunning another miner's stage on the input that stage
/// received.
pub enum Recheck {
	/// The encoded fingerprints of the stage rerun on its input and of the input itself.
	Done {
		/// The chunk's output recomputed from the input.
		recomputed: Vec<u8>,
		/// The input as received (the previous chunk's output as sent).
		input: Vec<u8>,
	},
	/// The input does not make a pass: it does not decode, skips or repeats positions,
	/// or does not cover them all.
	BadInput(String),
}

/// Reruns `assignment`'s chunk (a referee's slot) by prefill on `messages`, the
/// activation messages another pipeline's stage of the same chunk received, and
/// fingerprints both the rerun and the input (blocking). `Err`: this miner's own
/// computation failed.
#[allow(clippy::too_many_arguments)]
pub fn recheck_stage(
	shard: &Mutex<Shard>,
	assignment: &Assignment,
	prompt_len: usize,
	generated: &[u32],
	config: &MistralConfig,
	profile: &VerificationParams,
	messages: &[Vec<u8>],
	max_bytes: usize,
) -> Result<Recheck, ComputeError> {
	let mut shard = shard.lock().map_err(|_| ComputeError::Poisoned("shard"))?;
	let session = session_id(assignment.task, RECHECK_PIPELINE);
	let mut verifier = stage_verifier(assignment, session, prompt_len, generated, config, profile)?;
	let mut input = FingerprintBuilder::for_rows(FINGERPRINT_PARAMS, RowKind::Hidden)?;
	let result = rerun(&mut shard, &mut verifier, &mut input, messages);
	shard.end_session(session);
	if let Err(bad) = result {
		return Ok(Recheck::BadInput(bad));
	}
	if !verifier.is_done() {
		return Ok(Recheck::BadInput(format!(
			"the input covers {} of {} positions",
			verifier.next_offset(),
			verifier.positions()
		)));
	}
	let recomputed = verifier.finish(max_bytes)?.fingerprint.encode();
	let input = input.finish(max_bytes)?.encode();
	Ok(Recheck::Done { recomputed, input })
}

/// Feeds `messages` (hidden states, in position order) through `verifier` in pieces of
/// at most [`PREFILL_PIECE`] positions, fingerprinting them into `input` as they come.
/// An error says why the input cannot be what the stage computed on.
fn rerun(
	shard: &mut Shard,
	verifier: &mut StageVerifier,
	input: &mut FingerprintBuilder,
	messages: &[Vec<u8>],
) -> Result<(), String> {
	let mut pending: Vec<Tensor> = Vec::new();
	let (mut pending_positions, mut next) = (0usize, 0usize);
	for (index, bytes) in messages.iter().enumerate() {
		let message = ActivationMessage::decode(bytes, shard.device())
			.map_err(|e| format!("message {index}: {e}"))?;
		if message.position_offset as usize != next {
			return Err(format!(
				"message {index} starts at position {}, expected {next}",
				message.position_offset
			));
		}
		let Payload::Hidden(hidden) = message.payload else {
			return Err(format!("message {index} carries no hidden states"));
		};
		let count = message.num_positions as usize;
		if count == 0 || count > verifier.positions().saturating_sub(next) {
			return Err(format!("message {index}: {count} positions at {next}"));
		}
		input.push(&hidden).map_err(|e| format!("message {index}: {e}"))?;
		if pending_positions + count > PREFILL_PIECE {
			run_pending(shard, verifier, &mut pending).map_err(|e| e.to_string())?;
			pending_positions = 0;
		}
		pending.push(hidden);
		pending_positions += count;
		next += count;
	}
	run_pending(shard, verifier, &mut pending).map_err(|e| e.to_string())
}

/// Runs the hidden states gathered in `pending` as one prefill piece.
fn run_pending(
	shard: &mut Shard,
	verifier: &mut StageVerifier,
	pending: &mut Vec<Tensor>,
) -> Result<(), ComputeError> {
	if pending.is_empty() {
		return Ok(());
	}
	let piece = Tensor::cat(pending, 1)?;
	pending.clear();
	let offset = verifier.next_offset();
	verifier.run_piece(shard, offset, ShardInput::Hidden(piece))?;
	Ok(())
}

/// Frees a session's KV cache in its shard.
pub fn end_session(shard: &Mutex<Shard>, task: TaskId, pipeline: PipelineIndex) {
	if let Ok(mut shard) = shard.lock() {
		shard.end_session(session_id(task, pipeline));
	}
}

/// [`end_session`] for async code: the shard's lock waits for any pass running on it (a
/// long prefill), so it is taken on a blocking thread, never on the node's async
/// threads (review N2). Returns once the cache is freed.
pub async fn end_session_off_loop(shard: Arc<Mutex<Shard>>, task: TaskId, pipeline: PipelineIndex) {
	let freed = tokio::task::spawn_blocking(move || end_session(&shard, task, pipeline)).await;
	if let Err(e) = freed {
		log::warn!(target: super::LOG_TARGET, "freeing the cache of task {task} failed: {e}");
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	/// N2: freeing a cache whose shard a long pass holds must not stall the async
	/// threads. On a one-thread runtime a blocking lock would keep every other task
	/// (here a ticker) from running until the pass ends.
	#[tokio::test(flavor = "current_thread")]
	async fn freeing_a_busy_shards_cache_leaves_the_async_thread_free() {
		let dir = std::env::temp_dir().join(format!("dllm-free-cache-{}", std::process::id()));
		dllm_inference::tiny::write_tiny_model(&dir, &dllm_inference::tiny::TinySpec::default())
			.unwrap();
		let model = dllm_inference::ModelDir::open(&dir).unwrap();
		let range = dllm_inference::LayerRange::new(0, 1).unwrap();
		let shard =
			Shard::load(&model, range, &candle_core::Device::Cpu, candle_core::DType::F32).unwrap();
		let shard = Arc::new(Mutex::new(shard));
		// A pass holds the shard for 400 ms.
		let (held, is_held) = std::sync::mpsc::channel();
		let pass = {
			let shard = shard.clone();
			std::thread::spawn(move || {
				let _pass = shard.lock().unwrap();
				held.send(()).unwrap();
				std::thread::sleep(std::time::Duration::from_millis(400));
			})
		};
		is_held.recv().unwrap();
		let started = std::time::Instant::now();
		let ticker = tokio::spawn(async move {
			tokio::time::sleep(std::time::Duration::from_millis(20)).await;
			started.elapsed()
		});
		end_session_off_loop(shard.clone(), 1, 0).await;
		let freed_after = started.elapsed();
		let ticked_after = ticker.await.unwrap();
		pass.join().unwrap();
		assert!(
			freed_after >= std::time::Duration::from_millis(300),
			"the free waited for the pass"
		);
		assert!(
			ticked_after < freed_after,
			"the ticker ran at {ticked_after:?}, only after the free at {freed_after:?}"
		);
		std::fs::remove_dir_all(&dir).unwrap();
	}

	#[test]
	fn chain_sampling_maps_to_what_dllm_infer_takes() {
		let chain = pallet_poaw::SamplingParams {
			temperature_milli: 700,
			top_k: 40,
			top_p: Perbill::from_percent(90),
			seed: 5,
		};
		let params = sampling(&chain);
		assert_eq!(params.temperature, "0.7".parse::<f32>().unwrap());
		assert_eq!(params.top_k, Some(40));
		assert_eq!(params.top_p, Some("0.9".parse::<f32>().unwrap()));
		assert_eq!(params.seed, 5);
		let greedy = sampling(&pallet_poaw::SamplingParams {
			temperature_milli: 0,
			top_k: 0,
			top_p: Perbill::one(),
			seed: 0,
		});
		assert_eq!(greedy, SamplingParams::greedy());
		assert_ne!(session_id(1, 0), session_id(1, 1));
	}
}
