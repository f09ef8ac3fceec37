//! What the task pallet stores and what its runtime API returns.

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use dllm_primitives::market::{ChunkIndex, Domain, ModelId, NumericFormat};
use polkadot_sdk::{
	sp_core::H256,
	sp_runtime::{
		traits::{BlakeTwo256, Hash},
		Perbill,
	},
};
use scale_info::TypeInfo;

pub use dllm_primitives::market::TaskId;
/// Index of a pipeline within a task (`0..redundancy`).
pub type PipelineIndex = u8;

/// How the last chunk's miner samples, fixed by the requester so anyone can replay it.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
	Default,
)]
pub struct SamplingParams {
	/// Temperature in thousandths; 0 is greedy.
	pub temperature_milli: u32,
	/// Keep only the `top_k` likeliest tokens; 0 keeps all.
	pub top_k: u32,
	/// Nucleus sampling mass; 100% keeps all; 0 is refused.
	pub top_p: Perbill,
	/// Seed of the sampler's random numbers.
	pub seed: u64,
}

/// How the work of a task is checked.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
	Default,
	serde::Serialize,
	serde::Deserialize,
)]
pub enum VerificationMode {
	/// `redundancy` pipelines generate on their own and the output a majority of them
	/// revealed bit for bit wins; a split goes to the admin (the first protocol, which the
	/// miners' worker plays until it takes the prefill roles).
	Redundant,
	/// One pipeline generates, a disjoint one verifies by teacher-forced prefill, the
	/// chain compares their fingerprints under the model's tolerance and referees settle
	/// a disagreement at the first chunk where it appears (docs/protocol.md).
	#[default]
	Prefill,
}

/// What a slot's miner does in a task checked by prefill.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
)]
pub enum Role {
	/// Generates (every slot of a redundant task generates).
	Generator,
	/// Recomputes the generator's work by prefill over prompt and generated tokens.
	Verifier,
	/// Recomputes the disputed chunk (and the chunks before it) by prefill.
	Referee,
}

/// The disagreement a task checked by prefill is being settled on: one generator and
/// the verifier's pipeline that checked it (a pair), at one chunk.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
)]
pub struct Dispute {
	/// The first chunk whose fingerprints disagree (the last chunk for a sampling
	/// dispute).
	pub chunk: ChunkIndex,
	/// Whether every fingerprint agreed and the verifier rejected the sampling.
	pub sampling: bool,
	/// Referee rounds opened so far (the current one included).
	pub rounds: u8,
	/// The disputed generator's pipeline (its verifier's is `generators + pair`).
	pub pair: PipelineIndex,
	/// The pipeline of this dispute's first round's first referee.
	pub first_referee: PipelineIndex,
}

impl Dispute {
	/// The pipelines of the current round's referees when every round has up to
	/// `per_round` of them: round `n` (from 1) holds pipelines
	/// `first_referee + (n - 1) × per_round ..` (below `first_referee` are the sides
	/// and the referees of the task's earlier disputes).
	pub fn round_pipelines(&self, per_round: u8) -> core::ops::RangeInclusive<PipelineIndex> {
		let per_round = per_round.max(1);
		let first = self
			.first_referee
			.saturating_add(self.rounds.saturating_sub(1).saturating_mul(per_round));
		first..=first.saturating_add(per_round.saturating_sub(1))
	}

	/// Every referee pipeline this dispute has opened so far, all rounds.
	pub fn referee_pipelines(&self, per_round: u8) -> core::ops::RangeInclusive<PipelineIndex> {
		self.first_referee..=*self.round_pipelines(per_round).end()
	}
}

/// Where the check of one generator by the verifier stands (a pair: generator `i`,
/// the verifier's pipeline `generators + i`).
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
)]
pub enum PairResult {
	/// Every chunk agreed and the verifier accepted the sampling.
	Agreed,
	/// A pipeline of the pair did not finish (whoever missed a deadline was blamed):
	/// nothing of it is paid.
	Incomplete,
	/// The pair disagrees at `chunk` (or on the sampling): referees will settle it.
	Disagreed {
		/// The first chunk that differs (the last for a sampling dispute).
		chunk: ChunkIndex,
		/// Whether only the sampling verdict disagrees.
		sampling: bool,
	},
	/// The pair's dispute ended.
	Settled {
		/// How.
		outcome: DisputeOutcome,
		/// The disputed chunk.
		chunk: ChunkIndex,
		/// The slot index that lost (`u32::MAX` when nobody did).
		loser: u32,
		/// The pipelines of the round that settled it (empty when none did).
		first_referee: PipelineIndex,
		/// The last pipeline of that round.
		last_referee: PipelineIndex,
	},
}

impl PairResult {
	/// Whether the pair's generation stands: its output may be delivered and its
	/// generator is paid.
	pub fn stands(&self) -> bool {
		matches!(
			self,
			Self::Agreed
				| Self::Settled {
					outcome: DisputeOutcome::VerifierLost | DisputeOutcome::BothAgreed,
					..
				}
		)
	}
}

/// How a dispute ended.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
)]
pub enum DisputeOutcome {
	/// The referee agreed with the verifier: the generator's miner of the disputed chunk
	/// is slashed, the requester refunded in full.
	GeneratorLost,
	/// The referee agreed with the generator: the verifier's miner of the disputed
	/// chunk is slashed, the task completes.
	VerifierLost,
	/// The referee agreed with both sides (a disagreement at the tolerance's edge): the
	/// task completes, nobody is slashed.
	BothAgreed,
	/// No referee round was conclusive: refunded, nobody slashed.
	Unsettled,
}

/// Where a task stands.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
)]
pub enum TaskStatus {
	/// Escrowed, waiting for the auction (no miners free yet).
	Queued,
	/// Pipelines assigned; miners compute and commit (with prefill verification: the
	/// generator's miners generate and commit, the last one publishing the output).
	Assigned,
	/// Prefill verification: the generator committed; the verifier's miners recompute
	/// its work by prefill and commit.
	Verifying,
	/// Every live slot committed; miners reveal.
	Committed,
	/// Prefill verification: the sides disagree; the current referee round's miners
	/// recompute the disputed chunk and commit.
	Refereeing,
	/// The current referee round committed; its miners reveal.
	Judging,
	/// A majority of pipelines agreed; paid out.
	Completed,
	/// Pipelines disagree; escrow and evidence kept until resolved.
	Disputed,
	/// No result; the escrow went back to the requester.
	Expired,
}

impl TaskStatus {
	/// Whether the task still holds its escrow.
	pub fn is_open(self) -> bool {
		matches!(
			self,
			Self::Queued
				| Self::Assigned
				| Self::Verifying
				| Self::Committed
				| Self::Refereeing
				| Self::Judging
				| Self::Disputed
		)
	}

	/// Whether miners have duties in the task now (commit or reveal).
	pub fn has_duties(self) -> bool {
		matches!(
			self,
			Self::Assigned | Self::Verifying | Self::Committed | Self::Refereeing | Self::Judging
		)
	}
}

/// Where one miner's part of a task (one chunk of one pipeline) stands.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
)]
pub enum SlotState {
	/// Assigned; the miner computes and then commits.
	Assigned,
	/// Committed to this hash.
	Committed(H256),
	/// Revealed; the pipeline output it attested.
	Revealed(H256),
	/// The miner missed its deadline (and was replaced or its pipeline abandoned).
	Missed,
	/// Its pipeline was abandoned (no replacement for another slot of it).
	Abandoned,
}

impl SlotState {
	/// Whether the miner still owes a commit or a reveal.
	pub fn is_pending(self) -> bool {
		matches!(self, Self::Assigned | Self::Committed(_))
	}
}

/// One miner's part of a task: a chunk of a pipeline.
#[derive(
	Clone, PartialEq, Eq, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Debug,
)]
pub struct Slot<AccountId, Balance, BlockNumber> {
	/// The pipeline.
	pub pipeline: PipelineIndex,
	/// The chunk.
	pub chunk: ChunkIndex,
	/// The miner.
	pub expert: AccountId,
	/// What it does.
	pub role: Role,
	/// The format it declared it computes the chunk in.
	pub format: NumericFormat,
	/// Its threshold price per token per layer.
	pub threshold: Balance,
	/// When it was assigned (measures its throughput).
	pub assigned_at: BlockNumber,
	/// Its progress.
	pub state: SlotState,
}

/// How a finished task was paid.
#[derive(
	Clone, PartialEq, Eq, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Debug,
)]
pub struct Settlement<Balance> {
	/// The accepted output's hash (`None` when the task ended without one).
	pub output_hash: Option<H256>,
	/// Tokens paid for: prompt plus generated.
	pub tokens: u32,
	/// What the requester paid: miners plus community.
	pub fee: Balance,
	/// Paid to miners (through the expert registry, delegators included).
	pub miners: Balance,
	/// Paid to the community fund.
	pub community: Balance,
	/// Returned to the requester.
	pub refunded: Balance,
}

/// A task: the LLM-Net per-request contract.
#[derive(
	Clone, PartialEq, Eq, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Debug,
)]
pub struct TaskInfo<AccountId, Balance, BlockNumber> {
	/// Who asked and pays.
	pub requester: AccountId,
	/// The model.
	pub model: ModelId,
	/// The domain the requester wants an expert in, if any (weights quality).
	pub domain: Option<Domain>,
	/// Blake2-256 of the prompt (the prompt itself is stored apart and removed later).
	pub prompt_hash: H256,
	/// Prompt length in bytes.
	pub prompt_bytes: u32,
	/// Most tokens to generate.
	pub max_tokens: u32,
	/// Sampling parameters.
	pub sampling: SamplingParams,
	/// Held from the requester: its `max_fee`.
	pub escrow: Balance,
	/// Where it stands.
	pub status: TaskStatus,
	/// Block of submission.
	pub submitted_at: BlockNumber,
	/// End of the current stage (queue, commit or reveal).
	pub deadline: BlockNumber,
	/// Highest price per token per layer the escrow pays (set by the auction).
	pub price_cap: Balance,
	/// Number of pipelines (the redundancy the auction could reach; with prefill
	/// verification the generators' and the verifier's, referees not counted).
	pub pipelines: u8,
	/// Generators the requester asked for (prefill verification; 1 by default): the
	/// verifier checks each, and the first whose work stands is the answer.
	pub generators: u8,
	/// Replacements made so far.
	pub reassignments: u32,
	/// How the work is checked (the pallet's mode when the task was submitted).
	pub mode: VerificationMode,
	/// The disagreement being settled, with prefill verification.
	pub dispute: Option<Dispute>,
	/// Tie-break seed. At submission: the block before the one that included the task
	/// and the signed task itself, so the including author cannot steer it; at
	/// assignment that seed is hashed with the assigning block's parent, which the
	/// requester could not know when it signed, so grinding its seed picks nobody.
	pub tie_seed: H256,
	/// Set when the task is finished.
	pub settlement: Option<Settlement<Balance>>,
}

impl<AccountId, Balance, BlockNumber> TaskInfo<AccountId, Balance, BlockNumber> {
	/// Generators of a task checked by prefill (at least one).
	pub fn generator_count(&self) -> u8 {
		self.generators.max(1)
	}

	/// The verifier's pipeline that checks generator `pair`: generators are pipelines
	/// `0..g`, the verifier's `g..2g`, referees come after.
	pub fn verifier_of(&self, pair: PipelineIndex) -> PipelineIndex {
		self.generator_count().saturating_add(pair)
	}

	/// The pipelines of the generators and the verifier (`2g`): referees come after.
	pub fn side_pipelines(&self) -> u8 {
		self.generator_count().saturating_mul(2)
	}

	/// The generator whose published output a slot of `role` in `pipeline` works on and
	/// attests: its own for a generator, the checked one for the verifier, the disputed
	/// one for a referee.
	pub fn attested_generator(&self, role: Role, pipeline: PipelineIndex) -> PipelineIndex {
		match role {
			Role::Generator => pipeline,
			Role::Verifier => pipeline.saturating_sub(self.generator_count()),
			Role::Referee => self.dispute.map_or(0, |dispute| dispute.pair),
		}
	}
}

/// A requester's task as `submit_task` takes it, before it is checked.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TaskRequest<Balance> {
	/// The model.
	pub model: ModelId,
	/// The prompt's bytes.
	pub prompt: Vec<u8>,
	/// Most tokens to generate.
	pub max_tokens: u32,
	/// Sampling parameters.
	pub sampling: SamplingParams,
	/// The most the requester pays (held as escrow).
	pub max_fee: Balance,
	/// The domain it wants an expert in, if any.
	pub domain: Option<Vec<u8>>,
}

/// What the last chunk of a pipeline reveals as the output (or a non-last chunk as
/// its hash).
#[derive(Clone, PartialEq, Eq, Encode, Decode, DecodeWithMemTracking, TypeInfo, Debug)]
pub enum RevealedOutput {
	/// The hash of the pipeline's output (chunks other than the last).
	Hash(H256),
	/// The output itself (the last chunk).
	Full {
		/// Prompt tokens as tokenized by the first chunk.
		prompt_tokens: u32,
		/// Generated token ids.
		tokens: Vec<u32>,
		/// Generated text, UTF-8.
		text: Vec<u8>,
	},
	/// The sampling verdict of a verifier's or referee's last chunk: whether every
	/// generated token is one the seeded sampler could have drawn from its logits and the
	/// stop is consistent. What it committed to is [`verdict_hash`] of the output's hash
	/// and the verdict.
	Verdict {
		/// Accepted or not.
		accepted: bool,
	},
}

/// What the disputed chunk's referee found when it recomputed the losing side's stage
/// from that stage's own input: the activations its upstream stage sent it, under the
/// upstream's signature (docs/protocol.md, "Blame follows the computation"). With it the
/// chain tells a stage that computed wrongly from one that was fed bad input.
#[derive(
	Clone, PartialEq, Eq, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Debug,
)]
pub enum InputCheck<Bytes> {
	/// The stage of `side` did not hand over a signed input covering every position: it
	/// cannot show that its output follows from what it received.
	Withheld {
		/// The side (pipeline) whose stage was asked.
		side: PipelineIndex,
	},
	/// The stage of `side` handed over its signed input.
	Checked {
		/// The side (pipeline) whose stage was asked.
		side: PipelineIndex,
		/// The fingerprint of the disputed chunk run by prefill on that input.
		recomputed: Bytes,
		/// The fingerprint of the input itself (the previous chunk's output as sent).
		input: Bytes,
	},
}

impl<Bytes> InputCheck<Bytes> {
	/// The side whose stage was checked.
	pub fn side(&self) -> PipelineIndex {
		match self {
			InputCheck::Withheld { side } | InputCheck::Checked { side, .. } => *side,
		}
	}

	/// How many fingerprint bytes it carries.
	pub fn fingerprint_bytes(&self) -> usize
	where
		Bytes: AsRef<[u8]>,
	{
		match self {
			InputCheck::Withheld { .. } => 0,
			InputCheck::Checked { recomputed, input, .. } => {
				recomputed.as_ref().len().saturating_add(input.as_ref().len())
			}
		}
	}
}

/// A pipeline's output as the runtime API returns it.
#[derive(Clone, PartialEq, Eq, Encode, Decode, TypeInfo, Debug)]
pub struct OutputView {
	/// The pipeline that produced it.
	pub pipeline: PipelineIndex,
	/// Prompt tokens.
	pub prompt_tokens: u32,
	/// Generated token ids.
	pub tokens: Vec<u32>,
	/// Generated text.
	pub text: Vec<u8>,
	/// Its hash (what miners committed to).
	pub hash: H256,
}

/// A task with everything a client needs.
#[derive(Clone, PartialEq, Eq, Encode, Decode, TypeInfo, Debug)]
pub struct TaskDetails<AccountId, Balance, BlockNumber> {
	/// The task's id.
	pub id: TaskId,
	/// The record.
	pub task: TaskInfo<AccountId, Balance, BlockNumber>,
	/// The prompt, until the result retention ends.
	pub prompt: Option<Vec<u8>>,
	/// The miners' slots, until the result retention ends.
	pub slots: Vec<Slot<AccountId, Balance, BlockNumber>>,
	/// The revealed outputs, until the result retention ends.
	pub outputs: Vec<OutputView>,
	/// The revealed fingerprints by slot index (into `slots`), until the result
	/// retention ends: what a referee sets its own against.
	pub fingerprints: Vec<(u32, Vec<u8>)>,
}

/// A slot a miner has to act on, with what its worker needs.
#[derive(Clone, PartialEq, Eq, Encode, Decode, TypeInfo, Debug)]
pub struct MinerAssignment<AccountId, Balance, BlockNumber> {
	/// The task.
	pub task: TaskId,
	/// The model.
	pub model: ModelId,
	/// Its pipeline.
	pub pipeline: PipelineIndex,
	/// Its chunk.
	pub chunk: ChunkIndex,
	/// Number of chunks of the model (the last one samples).
	pub chunks: u32,
	/// Assigned (compute, then commit) or Committed (reveal).
	pub state: SlotState,
	/// End of the current stage.
	pub deadline: BlockNumber,
	/// How the task's work is checked.
	pub mode: VerificationMode,
	/// What the slot's miner does.
	pub role: Role,
	/// The pipeline's miners in chunk order.
	pub pipeline_experts: Vec<AccountId>,
	/// The prompt (the first chunk tokenizes it).
	pub prompt: Vec<u8>,
	/// Most tokens to generate.
	pub max_tokens: u32,
	/// Sampling parameters.
	pub sampling: SamplingParams,
	/// What the slot is paid per token per layer.
	pub threshold: Balance,
	/// Chunks of its pipeline whose open silence claims name this slot (it answers a
	/// false one by claiming the same of its accuser).
	pub accused_by: Vec<ChunkIndex>,
}

/// What a task would cost now.
#[derive(Clone, PartialEq, Eq, Encode, Decode, TypeInfo, Debug)]
pub struct FeeQuote<Balance> {
	/// The least `max_fee` `submit_task` accepts for these sizes now.
	pub max_fee: Balance,
	/// Pipelines the auction can form now.
	pub redundancy: u8,
	/// Price per token per layer the quote covers in every chunk.
	pub price_per_token_layer: Balance,
	/// Tokens the quote pays for (prompt plus most generated).
	pub tokens: u32,
	/// Layers of the model.
	pub layers: u32,
	/// How the work will be checked: with prefill verification `redundancy` is the
	/// number of generators (1 unless asked) and the verifier's prefill of each adds
	/// `PrefillShare` of its generation work.
	pub mode: VerificationMode,
}

/// Why no quote can be given.
#[derive(Clone, Copy, PartialEq, Eq, Encode, Decode, TypeInfo, Debug)]
pub enum QuoteError {
	/// The model is not registered.
	UnknownModel,
	/// The model takes no tasks (not Active).
	ModelNotActive,
	/// Some chunk has no expert with free capacity.
	NoMinersAvailable,
	/// The sizes overflow the fee arithmetic.
	Overflow,
	/// The model has more chunks than a task can have slots.
	ModelTooLarge,
}

/// The tokens a prompt of `bytes` bytes can take at most: the chain cannot tokenize,
/// so it counts one token per byte (byte-fallback BPE never does worse), plus the BOS
/// token and SentencePiece's leading-space marker.
pub fn prompt_token_bound(bytes: u32) -> u32 {
	bytes.saturating_add(2)
}

/// The hash a pipeline's miners attest as its output.
pub fn output_hash(prompt_tokens: u32, tokens: &[u32], text: &[u8]) -> H256 {
	BlakeTwo256::hash_of(&(prompt_tokens, tokens, text))
}

/// What a verifier's or referee's last chunk commits to as its "output": the hash of the
/// output it checked and its sampling verdict.
pub fn verdict_hash(output_hash: H256, accepted: bool) -> H256 {
	BlakeTwo256::hash_of(&(b"dllm-verdict", output_hash, accepted))
}

/// What a miner commits to: its slot, the hash of its chunk's activation fingerprint,
/// the pipeline's output hash and a secret salt.
pub fn commitment(
	task: TaskId,
	pipeline: PipelineIndex,
	chunk: ChunkIndex,
	fingerprint: &[u8],
	output_hash: H256,
	salt: [u8; 32],
) -> H256 {
	let fingerprint_hash = BlakeTwo256::hash(fingerprint);
	BlakeTwo256::hash_of(&(task, pipeline, chunk, fingerprint_hash, output_hash, salt))
}

/// A stage's claim that its pipeline neighbour stopped answering (docs/protocol.md,
/// "Silent stages"): the stage `by` of `pipeline` says the stage `silent` (the next or
/// the previous chunk) left it waiting. It stands once `ripe_at` comes unless the
/// accused committed or claimed the same of its accuser.
#[derive(
	Clone, PartialEq, Eq, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Debug,
)]
pub struct SilenceClaim<BlockNumber> {
	/// The pipeline.
	pub pipeline: PipelineIndex,
	/// The claiming stage's chunk.
	pub by: ChunkIndex,
	/// The chunk it says is silent.
	pub silent: ChunkIndex,
	/// When the claim is decided: the accused has had time to answer it.
	pub ripe_at: BlockNumber,
}

/// A task's open silence claims, with the deadline its commit stage had before them.
#[derive(
	Clone, PartialEq, Eq, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Debug,
)]
pub struct SilenceRecord<BlockNumber, Claims> {
	/// The stage's own deadline (at least every claim's `ripe_at`).
	pub stage_deadline: BlockNumber,
	/// The claims not decided yet.
	pub claims: Claims,
}
