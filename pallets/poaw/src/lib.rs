//! # Proof of AI work
//!
//! A requester submits a prompt for an active model with a `max_fee`, held from its
//! account as escrow. Every block the pallet runs a reverse auction per chunk of the
//! model among the experts serving it ([`auction`]), never giving a task to its
//! requester, and pays each winner its threshold price.
//!
//! Under prefill verification (the default, [`VerificationMode::Prefill`]) the best
//! miners of every chunk form a generator pipeline and the next best a disjoint
//! verifier pipeline. The generator generates and commits its per-chunk fingerprints
//! and the output; the verifier recomputes the published generation by teacher-forced
//! prefill and commits its own fingerprints and sampling verdict; then both reveal and
//! the chain compares the fingerprints under the model's tolerance. A disagreement goes
//! to referees at the first chunk where it appears (`disputes`); the loser is slashed
//! through the expert registry. Under [`VerificationMode::Redundant`] (the first
//! protocol) several pipelines generate and a majority of bit-identical outputs wins.
//!
//! Deadlines end every stage (`deadlines`): a miner that misses one is replaced by
//! the chunk's next best, is not paid and is reported to the reputation source; a stage
//! left waiting by a silent neighbour claims so (`silence`) and only the silent one is
//! blamed. Accepted duties are free; a slot's duties are signed by its expert or by the
//! operator key the expert named in the registry. Completed tasks pay
//! `layers × tokens × threshold` to the miners, grossed up so that they get
//! `MinerShare` of the fee and the community fund the rest; the rest of the escrow goes
//! back. See docs/protocol.md.
//!
//! The calls (below) check their origin and arguments and delegate; the rest is split
//! the way pallet-staking splits its pallet: `assignment` (quote, auction, pipelines,
//! replacements), `attestation` (commit and reveal bookkeeping, conclusion),
//! `disputes` (comparison, referee rounds, judgement), `silence` (silence claims),
//! `settlement` (payments, refunds, expiry), `deadlines` (every stage's timeout,
//! blame, retention), `views` (runtime API and the reputation pallet's ledger) and
//! `invariants` (`try-state`).

#![cfg_attr(not(feature = "std"), no_std)]
// Runtime code must not panic or overflow: no `unwrap`, no unchecked indexing or
// arithmetic outside the tests (checked by clippy in CI).
#![cfg_attr(
	not(test),
	deny(clippy::arithmetic_side_effects, clippy::indexing_slicing, clippy::unwrap_used)
)]

extern crate alloc;

pub use pallet::*;

mod assignment;
mod attestation;
pub mod auction;
#[cfg(feature = "runtime-benchmarks")]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing, clippy::unwrap_used)]
mod benchmarking;
mod deadlines;
mod disputes;
mod invariants;
pub mod migrations;
#[cfg(test)]
mod mock;
pub mod runtime_api;
mod settlement;
mod silence;
#[cfg(test)]
mod tests;
pub mod types;
mod views;
pub use views::RECENT_TASKS_LIMIT;
pub mod weights;

use alloc::vec::Vec;
pub use dllm_primitives::market::{
	ChunkIndex, CompletedTask, Domain, ExpertQuality, ExpertRegistry, ModelId, ModelRegistry,
	ModelStatus, NumericFormat, TaskLedger, TaskLookupError, TaskOutcome,
};
use polkadot_sdk::{
	frame_support::{
		pallet_prelude::*,
		traits::{
			fungible::{Inspect, InspectHold, Mutate, MutateHold},
			tokens::{Fortitude, Precision, Preservation, Restriction},
		},
		BoundedVec, PalletId,
	},
	frame_system::pallet_prelude::BlockNumberFor,
	sp_core::H256,
	sp_runtime::{
		traits::{AccountIdConversion, BlakeTwo256, Hash, Saturating, Zero},
		Perbill, SaturatedConversion,
	},
};
pub use types::*;
pub use weights::WeightInfo;

/// Amounts in the fee currency.
pub type BalanceOf<T> = <<T as Config>::Currency as Inspect<
	<T as polkadot_sdk::frame_system::Config>::AccountId,
>>::Balance;
/// A task as stored.
pub type TaskOf<T> =
	TaskInfo<<T as polkadot_sdk::frame_system::Config>::AccountId, BalanceOf<T>, BlockNumberFor<T>>;
/// A slot as stored.
pub type SlotOf<T> =
	Slot<<T as polkadot_sdk::frame_system::Config>::AccountId, BalanceOf<T>, BlockNumberFor<T>>;
/// A silence claim as stored.
pub type SilenceClaimOf<T> = SilenceClaim<BlockNumberFor<T>>;
/// A task's open silence claims as stored.
pub type SilenceRecordOf<T> = SilenceRecord<
	BlockNumberFor<T>,
	BoundedVec<SilenceClaimOf<T>, <T as pallet::Config>::MaxSlots>,
>;

/// A bid in a chunk's auction with its expert's free capacity and declared format.
type BidWithCapacity<AccountId> = (auction::Bid<AccountId>, u32, NumericFormat);

/// A pipeline's revealed output.
#[derive(
	polkadot_sdk::frame_support::CloneNoBound,
	polkadot_sdk::frame_support::PartialEqNoBound,
	polkadot_sdk::frame_support::EqNoBound,
	Encode,
	Decode,
	MaxEncodedLen,
	TypeInfo,
	polkadot_sdk::frame_support::DebugNoBound,
)]
#[scale_info(skip_type_params(T))]
#[codec(mel_bound())]
pub struct TaskOutput<T: Config> {
	/// Prompt tokens as tokenized by the first chunk.
	pub prompt_tokens: u32,
	/// Generated token ids.
	pub tokens: BoundedVec<u32, T::MaxGeneratedTokens>,
	/// Generated text.
	pub text: BoundedVec<u8, T::MaxOutputBytes>,
}

/// Most miners that can miss a deadline in one task: every slot it starts with plus
/// every replacement.
pub struct LateBound<T>(core::marker::PhantomData<T>);
impl<T: Config> Get<u32> for LateBound<T> {
	fn get() -> u32 {
		T::MaxSlots::get().saturating_add(T::MaxReassignments::get())
	}
}

/// Most pair results of one task: one per generator.
pub struct GeneratorBound<T>(core::marker::PhantomData<T>);
impl<T: Config> Get<u32> for GeneratorBound<T> {
	fn get() -> u32 {
		T::MaxGenerators::get().into()
	}
}

#[polkadot_sdk::frame_support::pallet]
pub mod pallet {
	use super::*;
	use polkadot_sdk::frame_system::pallet_prelude::*;

	/// 1: tasks record their verification mode and dispute, slots their role and format
	/// (no chain ran version 0 data that needs migrating: the dev and local chains start
	/// from genesis). 2: tasks record their generators, disputes their pair and first
	/// referee pipeline ([`migrations::v2`]).
	pub const STORAGE_VERSION: StorageVersion = StorageVersion::new(2);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	/// Why this pallet holds funds.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// A requester's `max_fee` while its task is open.
		Escrow,
	}

	#[pallet::config]
	pub trait Config: polkadot_sdk::frame_system::Config<RuntimeEvent: From<Event<Self>>> {
		/// The fee currency (DLLM).
		type Currency: Mutate<Self::AccountId>
			+ MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;
		/// The runtime's hold reasons.
		type RuntimeHoldReason: From<HoldReason>;
		/// The model registry.
		type Models: ModelRegistry;
		/// The expert registry: offers, capacity, pay and slash.
		type Experts: ExpertRegistry<Self::AccountId, BalanceOf<Self>>;
		/// Experts' quality for the auction, and where outcomes are reported.
		type Quality: ExpertQuality<Self::AccountId>;
		/// The community fund.
		type CommunityAccount: Get<Self::AccountId>;
		/// Who settles disputes and sets the redundancy.
		type AdminOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// Names the account through which fees are paid out.
		#[pallet::constant]
		type PalletId: Get<PalletId>;
		/// Longest prompt, in bytes.
		#[pallet::constant]
		type MaxPromptBytes: Get<u32>;
		/// Most tokens one task generates.
		#[pallet::constant]
		type MaxGeneratedTokens: Get<u32>;
		/// Longest revealed output text, in bytes.
		#[pallet::constant]
		type MaxOutputBytes: Get<u32>;
		/// Longest activation fingerprint, in bytes.
		#[pallet::constant]
		type MaxFingerprintBytes: Get<u32>;
		/// Redundancy until the admin sets one.
		#[pallet::constant]
		type DefaultRedundancy: Get<u8>;
		/// Highest redundancy.
		#[pallet::constant]
		type MaxRedundancy: Get<u8>;
		/// Most generators a requester may ask for in a task checked by prefill (the
		/// verifier checks each).
		#[pallet::constant]
		type MaxGenerators: Get<u8>;
		/// Most slots (pipelines × chunks) of one task.
		#[pallet::constant]
		type MaxSlots: Get<u32>;
		/// Most offers one chunk's auction sees (the expert registry's bound); sizes the
		/// assignment weight.
		#[pallet::constant]
		type MaxOffersPerChunk: Get<u32>;
		/// Share of the fee paid to miners; the rest goes to the community fund.
		#[pallet::constant]
		type MinerShare: Get<Perbill>;
		/// Largest weight bonus for the fastest measured miner (reorders close scores).
		#[pallet::constant]
		type ThroughputBonus: Get<Perbill>;
		/// Blocks a task may wait for miners before it expires with a full refund.
		#[pallet::constant]
		type AssignmentTimeout: Get<BlockNumberFor<Self>>;
		/// Blocks from assignment to the commit deadline.
		#[pallet::constant]
		type CommitPeriod: Get<BlockNumberFor<Self>>;
		/// Blocks from the last commit to the reveal deadline.
		#[pallet::constant]
		type RevealPeriod: Get<BlockNumberFor<Self>>;
		/// Most replacements of missing miners per task.
		#[pallet::constant]
		type MaxReassignments: Get<u32>;
		/// Blocks a finished task's prompt, output and evidence stay on chain.
		#[pallet::constant]
		type ResultRetention: Get<BlockNumberFor<Self>>;
		/// Most tasks waiting for assignment.
		#[pallet::constant]
		type MaxQueuedTasks: Get<u32>;
		/// Most tasks one requester may have waiting for assignment, so that one account
		/// cannot fill the queue.
		#[pallet::constant]
		type MaxQueuedPerRequester: Get<u32>;
		/// Share of the escrow a task that expires in the queue (never assigned) pays the
		/// community fund: queueing is not free, or squatting the queue would be.
		#[pallet::constant]
		type QueueExpiryFee: Get<Perbill>;
		/// Most tasks the auction assigns per block.
		#[pallet::constant]
		type MaxAssignmentsPerBlock: Get<u32>;
		/// Most deadlines handled per block (later ones wait for the next block).
		#[pallet::constant]
		type MaxTimeoutsPerBlock: Get<u32>;
		/// Most weight `on_initialize` spends per block on deadlines and auctions. Each
		/// deadline and auction is charged its own worst case before it runs; what does
		/// not fit waits for the next block. Deadlines leave room for one auction of the
		/// largest model, so both always make progress.
		#[pallet::constant]
		type HooksWeight: Get<Weight>;
		/// Share of bond and delegations slashed from a miner on the losing side of a
		/// resolved dispute.
		#[pallet::constant]
		type DisputeSlash: Get<Perbill>;
		/// What prefill work (a verifier's or referee's) is paid per token per layer, as a
		/// share of the miner's threshold price for generating: one batched pass instead
		/// of one pass per token (docs/protocol.md).
		#[pallet::constant]
		type PrefillShare: Get<Perbill>;
		/// Most referee rounds of one dispute; when none is conclusive the task is
		/// refunded and nobody is slashed.
		#[pallet::constant]
		type MaxRefereeRounds: Get<u8>;
		/// Independent referee pipelines per round, each covering the disputed chunk and
		/// the chunks before it: a round settles only when all of them agree, so one
		/// lying or lazy referee cannot decide a dispute (fewer when the market or
		/// `MaxSlots` has room for fewer, at least one). Round `n`'s pipelines are
		/// `2 + (n - 1) × RefereesPerRound ..`: change it only when no dispute is open.
		#[pallet::constant]
		type RefereesPerRound: Get<u8>;
		/// Blocks a stage accused of silence (`claim_silence`) has to answer with a claim
		/// of its own before the accusation stands.
		#[pallet::constant]
		type SilenceClaimPeriod: Get<BlockNumberFor<Self>>;
		/// Weights of this pallet's calls and hooks.
		type WeightInfo: WeightInfo;
	}

	/// Id of the next task.
	#[pallet::storage]
	pub type NextTaskId<T> = StorageValue<_, TaskId, ValueQuery>;

	/// Tasks, kept after they finish (their result hash and settlement).
	#[pallet::storage]
	pub type Tasks<T: Config> = StorageMap<_, Twox64Concat, TaskId, TaskOf<T>>;

	/// Prompts, until the result retention ends.
	#[pallet::storage]
	pub type Prompts<T: Config> =
		StorageMap<_, Twox64Concat, TaskId, BoundedVec<u8, T::MaxPromptBytes>>;

	/// The slots of assigned tasks, pipeline-major (`pipeline × chunks + chunk`).
	#[pallet::storage]
	pub type Slots<T: Config> =
		StorageMap<_, Twox64Concat, TaskId, BoundedVec<SlotOf<T>, T::MaxSlots>, ValueQuery>;

	/// Miners that missed a deadline in a task: they do not come back to it.
	#[pallet::storage]
	pub type LateMiners<T: Config> =
		StorageMap<_, Twox64Concat, TaskId, BoundedVec<T::AccountId, LateBound<T>>, ValueQuery>;

	/// Revealed activation fingerprints: evidence for disputes and re-execution.
	#[pallet::storage]
	pub type Fingerprints<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		TaskId,
		Twox64Concat,
		u32,
		BoundedVec<u8, T::MaxFingerprintBytes>,
	>;

	/// Revealed outputs per pipeline.
	#[pallet::storage]
	pub type Outputs<T: Config> =
		StorageDoubleMap<_, Twox64Concat, TaskId, Twox64Concat, PipelineIndex, TaskOutput<T>>;

	/// Slots a miner still has to commit or reveal (the worker's to-do list).
	#[pallet::storage]
	pub type MinerTasks<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Twox64Concat, TaskId, ()>;

	/// Tasks waiting for the auction, oldest first.
	#[pallet::storage]
	pub type Queue<T: Config> = StorageValue<_, BoundedVec<TaskId, T::MaxQueuedTasks>, ValueQuery>;

	/// How many tasks each requester has waiting in `Queue`.
	#[pallet::storage]
	pub type QueuedBy<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, u32, ValueQuery>;

	/// Stage deadlines: block → tasks whose current stage ends there.
	#[pallet::storage]
	pub type Timeouts<T: Config> =
		StorageDoubleMap<_, Twox64Concat, BlockNumberFor<T>, Twox64Concat, TaskId, ()>;

	/// Oldest block whose deadlines may not all be handled yet.
	#[pallet::storage]
	pub type TimeoutCursor<T: Config> = StorageValue<_, BlockNumberFor<T>, ValueQuery>;

	/// Retention ends: block → finished tasks whose data is removed from then on.
	#[pallet::storage]
	pub type RetentionEnds<T: Config> =
		StorageDoubleMap<_, Twox64Concat, BlockNumberFor<T>, Twox64Concat, TaskId, ()>;

	/// Oldest block whose retention ends may not all be handled yet.
	#[pallet::storage]
	pub type RetentionCursor<T: Config> = StorageValue<_, BlockNumberFor<T>, ValueQuery>;

	/// Measured throughput per miner: an average of tokens per block over its verified
	/// slots, in thousandths.
	#[pallet::storage]
	pub type Throughput<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, u64, ValueQuery>;

	/// Pipelines per task the auction aims for (redundant verification).
	#[pallet::storage]
	pub type Redundancy<T: Config> = StorageValue<_, u8, ValueQuery, T::DefaultRedundancy>;

	/// How newly submitted tasks are checked.
	#[pallet::storage]
	pub type Verification<T: Config> = StorageValue<_, VerificationMode, ValueQuery>;

	/// Sampling verdicts revealed by verifiers' and referees' last chunks, by slot index.
	#[pallet::storage]
	pub type Verdicts<T: Config> =
		StorageDoubleMap<_, Twox64Concat, TaskId, Twox64Concat, u32, bool>;

	/// Where the verifier's check of each generator stands (prefill verification), from
	/// the comparison of the sides until the task ends; index `i` is generator `i`.
	#[pallet::storage]
	pub type PairResults<T: Config> =
		StorageMap<_, Twox64Concat, TaskId, BoundedVec<PairResult, GeneratorBound<T>>, ValueQuery>;

	/// Input checks revealed by disputed chunks' referees, by slot index.
	#[pallet::storage]
	pub type InputChecks<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		TaskId,
		Twox64Concat,
		u32,
		InputCheck<BoundedVec<u8, T::MaxFingerprintBytes>>,
	>;

	/// Open silence claims of a task's commit stage (`claim_silence`).
	#[pallet::storage]
	pub type SilenceClaims<T: Config> =
		StorageMap<_, Twox64Concat, TaskId, SilenceRecordOf<T>, OptionQuery>;

	#[pallet::genesis_config]
	#[derive(polkadot_sdk::frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		/// Redundancy; `None` keeps the default.
		pub redundancy: Option<u8>,
		/// How tasks are checked; `None` keeps the default (prefill verification).
		pub verification: Option<VerificationMode>,
		#[serde(skip)]
		pub _config: core::marker::PhantomData<T>,
	}

	#[pallet::genesis_build]
	impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
		fn build(&self) {
			if let Some(redundancy) = self.redundancy {
				assert!(
					(1..=T::MaxRedundancy::get()).contains(&redundancy),
					"genesis redundancy out of range"
				);
				Redundancy::<T>::put(redundancy);
			}
			if let Some(mode) = self.verification {
				Verification::<T>::put(mode);
			}
			// The payout account passes fees through; it must exist so that any amount
			// can land in it (as pallet-treasury funds its pot at genesis).
			let account = Pallet::<T>::payout_account();
			let minimum = T::Currency::minimum_balance();
			if T::Currency::balance(&account) < minimum {
				let _ = T::Currency::mint_into(&account, minimum);
			}
		}
	}

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// A prompt was escrowed and queued for the auction.
		TaskSubmitted {
			task: TaskId,
			requester: T::AccountId,
			model: ModelId,
			max_fee: BalanceOf<T>,
		},
		/// The auction formed the task's pipelines.
		TaskAssigned {
			task: TaskId,
			pipelines: u8,
			price_cap: BalanceOf<T>,
			deadline: BlockNumberFor<T>,
		},
		/// A miner won a slot at its threshold price.
		SlotAssigned {
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			expert: T::AccountId,
			threshold: BalanceOf<T>,
		},
		/// A miner committed.
		Committed { task: TaskId, pipeline: PipelineIndex, chunk: ChunkIndex, expert: T::AccountId },
		/// Every live slot committed: reveals are open until `deadline`.
		RevealsOpened { task: TaskId, deadline: BlockNumberFor<T> },
		/// A miner revealed.
		Revealed {
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			expert: T::AccountId,
			output_hash: H256,
		},
		/// A stage said its pipeline neighbour `silent` stopped answering; the claim
		/// stands at `ripe_at` unless that stage commits or claims the same of it.
		SilenceClaimed {
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			silent: ChunkIndex,
			ripe_at: BlockNumberFor<T>,
		},
		/// A late stage waited on a stage found silent: not blamed, it keeps its slot
		/// until the stage's new deadline.
		StageExcused {
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			deadline: BlockNumberFor<T>,
		},
		/// Two neighbouring stages claimed each other silent: both are freed, unpaid and
		/// not blamed (the chain cannot tell which one stopped), and replaced.
		SlotReleased {
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			expert: T::AccountId,
		},
		/// A miner missed its deadline: not paid, reported.
		DeadlineMissed {
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			expert: T::AccountId,
		},
		/// A missing miner was replaced by the auction's next best.
		SlotReassigned {
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			expert: T::AccountId,
			threshold: BalanceOf<T>,
			deadline: BlockNumberFor<T>,
		},
		/// A pipeline lost a miner nobody could replace; it no longer counts.
		PipelineAbandoned { task: TaskId, pipeline: PipelineIndex },
		/// A miner was paid (through the expert registry: commission, then stake).
		MinerPaid { task: TaskId, expert: T::AccountId, amount: BalanceOf<T> },
		/// A payment could not be made; the amount went back to the requester.
		PaymentFailed { task: TaskId, to: T::AccountId, amount: BalanceOf<T> },
		/// The task completed with an agreed output.
		TaskCompleted {
			task: TaskId,
			output_hash: H256,
			fee: BalanceOf<T>,
			miners: BalanceOf<T>,
			community: BalanceOf<T>,
			refunded: BalanceOf<T>,
		},
		/// Pipelines disagree; escrow and evidence are kept for the admin.
		TaskDisputed { task: TaskId },
		/// The admin settled a dispute (`accepted: None` rejects every output).
		DisputeResolved { task: TaskId, accepted: Option<H256> },
		/// A miner on the losing side of a dispute was slashed.
		MinerSlashed { task: TaskId, expert: T::AccountId, amount: BalanceOf<T> },
		/// The task ended without a result; the escrow went back, less `queueing_fee` (to
		/// the community fund) when it expired in the queue.
		TaskExpired { task: TaskId, refunded: BalanceOf<T>, queueing_fee: BalanceOf<T> },
		/// A finished task's prompt, output and evidence left storage (its record and
		/// output hash stay).
		ResultRemoved { task: TaskId },
		/// The admin set the redundancy.
		RedundancySet { redundancy: u8 },
		/// The admin set how new tasks are checked.
		VerificationModeSet { mode: VerificationMode },
		/// The generator's last chunk published the output with its commit.
		OutputPublished { task: TaskId, output_hash: H256 },
		/// The generator committed: the verifier recomputes its work until `deadline`.
		VerificationOpened { task: TaskId, deadline: BlockNumberFor<T> },
		/// The chain compared generator `pair`'s fingerprints with the verifier's check of
		/// it: `disagreement` is the first chunk that differs, `sampling_accepted` the
		/// verifier's sampling verdict.
		WorkCompared {
			task: TaskId,
			pair: PipelineIndex,
			disagreement: Option<ChunkIndex>,
			sampling_accepted: bool,
		},
		/// A referee round was assigned to recompute chunks `0..=chunk` of generator
		/// `pair`'s dispute.
		RefereesAssigned {
			task: TaskId,
			pair: PipelineIndex,
			chunk: ChunkIndex,
			sampling: bool,
			round: u8,
			/// Independent referee pipelines in the round.
			referees: u8,
			deadline: BlockNumberFor<T>,
		},
		/// A referee round was inconclusive: a referee matched neither side, was silent,
		/// or the round's referees did not all agree.
		RefereeRoundFailed { task: TaskId, round: u8 },
		/// The dispute over generator `pair`'s work ended.
		DisputeSettled {
			task: TaskId,
			pair: PipelineIndex,
			chunk: ChunkIndex,
			outcome: DisputeOutcome,
		},
		/// The losing side's stage at the disputed chunk computed faithfully from the
		/// input its upstream stage sent, and that input does not follow from the prefix:
		/// the blame moves to the upstream stage, `chunk`.
		BlameTraced { task: TaskId, pipeline: PipelineIndex, chunk: ChunkIndex },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// No model with this id.
		UnknownModel,
		/// The model takes no tasks (not Active).
		ModelNotActive,
		/// The prompt is empty.
		EmptyPrompt,
		/// The prompt is longer than `MaxPromptBytes`.
		PromptTooLong,
		/// `max_tokens` is zero.
		ZeroMaxTokens,
		/// More tokens than `MaxGeneratedTokens`.
		TooManyTokens,
		/// Temperature above 10.0 or `top_p` of zero.
		InvalidSampling,
		/// The domain tag is empty or too long.
		InvalidDomain,
		/// Some chunk of the model has no expert with free capacity.
		NoMinersAvailable,
		/// `max_fee` is below the current quote for this prompt and `max_tokens`.
		FeeBelowQuote,
		/// The requester cannot hold `max_fee`.
		InsufficientBalance,
		/// Too many tasks wait for assignment; try again later.
		QueueFull,
		/// No task with this id.
		UnknownTask,
		/// The task has no such pipeline and chunk.
		UnknownSlot,
		/// The slot belongs to another miner.
		NotYourSlot,
		/// The task is not in the stage this call belongs to.
		WrongStage,
		/// The slot already committed.
		AlreadyCommitted,
		/// The slot has not committed (or already revealed).
		NotCommitted,
		/// The revealed values do not hash to the commitment.
		CommitmentMismatch,
		/// The last chunk must reveal the output itself.
		OutputRequired,
		/// Only the last chunk reveals the output; others reveal its hash.
		OutputNotExpected,
		/// The output text is longer than `MaxOutputBytes`.
		OutputTooLong,
		/// The fingerprint is longer than `MaxFingerprintBytes`.
		FingerprintTooLong,
		/// The task is not disputed.
		NotDisputed,
		/// No complete pipeline revealed this output.
		UnknownOutput,
		/// Redundancy must be between 1 and `MaxRedundancy`.
		InvalidRedundancy,
		/// An amount overflowed.
		Overflow,
		/// The slot is closed: its miner missed a deadline or its pipeline was abandoned.
		SlotClosed,
		/// The model has more chunks than a task can have slots (`MaxSlots`).
		ModelTooLarge,
		/// The prompt (counted as `bytes + 2` tokens) plus `max_tokens` exceed the model's
		/// context.
		ExceedsContext,
		/// `max_tokens` of this model could decode to more text than `MaxOutputBytes`.
		OutputMayNotFit,
		/// The requester already has `MaxQueuedPerRequester` tasks waiting.
		TooManyQueued,
		/// The reveal attests another output than the one the generator published.
		OutputMismatch,
		/// A verifier's or referee's last chunk reveals its sampling verdict.
		VerdictRequired,
		/// This slot does not publish an output: only the generator's last chunk does,
		/// with `commit_output`, and it must.
		NotTheOutputSlot,
		/// Only the referee of the disputed chunk (past chunk 0, not a sampling dispute)
		/// reveals an input check, of the generator's or the verifier's stage.
		InputCheckNotExpected,
		/// A silence claim names a stage that is not the next or previous chunk of the
		/// caller's pipeline.
		NotANeighbour,
		/// The stage claimed silent already committed or left the task.
		NeighbourNotSilent,
		/// The caller already claimed that stage silent.
		AlreadyClaimed,
		/// The task holds as many silence claims as it has slots.
		TooManyClaims,
		/// Generators must be between 1 and `MaxGenerators`, and more than one only with
		/// prefill verification.
		InvalidGenerators,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn on_initialize(now: BlockNumberFor<T>) -> Weight {
			let budget = T::HooksWeight::get();
			let for_deadlines = budget.saturating_sub(Self::heaviest_auction());
			let deadlines = Self::handle_timeouts(now, for_deadlines);
			deadlines.saturating_add(Self::assign_queued(now, budget.saturating_sub(deadlines)))
		}

		fn on_idle(now: BlockNumberFor<T>, remaining: Weight) -> Weight {
			Self::remove_old_results(now, remaining)
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(
			_: BlockNumberFor<T>,
		) -> Result<(), polkadot_sdk::sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}

		fn integrity_test() {
			assert!(T::DefaultRedundancy::get() >= 1, "redundancy is at least 1");
			assert!(T::DefaultRedundancy::get() <= T::MaxRedundancy::get());
			assert!(!T::MinerShare::get().is_zero(), "miners must get a share");
			assert!(T::MaxSlots::get() >= 1);
			assert!(T::RefereesPerRound::get() >= 1, "a referee round has a referee");
			assert!(T::MaxGenerators::get() >= 1, "a task has a generator");
			// Every generator may be disputed in turn, each dispute with its own rounds.
			let generators = u32::from(T::MaxGenerators::get());
			let pipelines = (2 * generators).saturating_add(
				generators
					.saturating_mul(T::MaxRefereeRounds::get().into())
					.saturating_mul(T::RefereesPerRound::get().into()),
			);
			// The last index stays free: miner nodes key a referee's rerun of another
			// stage by it.
			assert!(pipelines < u32::from(PipelineIndex::MAX), "referee pipelines fit");
			// A stage of zero blocks would put its deadline behind the cursor that has
			// already passed this block: the task and its escrow would wait forever (L6).
			for period in [
				T::AssignmentTimeout::get(),
				T::CommitPeriod::get(),
				T::RevealPeriod::get(),
				T::SilenceClaimPeriod::get(),
			] {
				assert!(!period.is_zero(), "every stage lasts at least one block");
			}
			// One deadline and one auction at their worst fit in a block's budget, or a
			// task could wait forever.
			let progress = T::WeightInfo::hooks_base()
				.saturating_add(Self::heaviest_deadline())
				.saturating_add(Self::heaviest_auction());
			assert!(
				progress.all_lte(T::HooksWeight::get()),
				"HooksWeight must hold the heaviest deadline and the heaviest auction"
			);
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Submits `prompt` for `model`: holds `max_fee` as escrow and queues the task for
		/// the auction. `max_fee` must cover the current quote for the prompt's length
		/// (counted as `bytes + 2` tokens) plus `max_tokens`.
		#[pallet::call_index(0)]
		#[pallet::weight(Pallet::<T>::submission_weight(prompt))]
		pub fn submit_task(
			origin: OriginFor<T>,
			model: ModelId,
			prompt: Vec<u8>,
			max_tokens: u32,
			sampling: SamplingParams,
			max_fee: BalanceOf<T>,
			domain: Option<Vec<u8>>,
		) -> DispatchResultWithPostInfo {
			let requester = ensure_signed(origin)?;
			let request = TaskRequest { model, prompt, max_tokens, sampling, max_fee, domain };
			Self::do_submit(requester, request, 1)
		}

		/// Commits the caller's slot to
		/// `blake2_256(task, pipeline, chunk, blake2_256(fingerprint), output_hash, salt)`
		/// (see [`commitment`]). Free for the slot's miner when it is accepted (a refused
		/// call pays): the duty is part of the work the task pays for. With prefill
		/// verification the generator's miners commit first, then the verifier's, then
		/// (in a dispute) the referees'; the generator's last chunk uses
		/// [`Pallet::commit_output`] instead.
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::commit(T::MaxSlots::get())
			.saturating_add(Pallet::<T>::operator_lookup()))]
		pub fn commit(
			origin: OriginFor<T>,
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			commitment: H256,
		) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			Self::do_commit(&who, task, pipeline, chunk, commitment, None)?;
			Ok(Pays::No.into())
		}

		/// Reveals what the caller's slot committed to. The last chunk of a redundant
		/// pipeline reveals the output (prompt token count, generated tokens, text); the
		/// generator's and verifier's other chunks its hash; the verifier's and referees'
		/// last chunks their sampling verdict. The referee of a disputed chunk past chunk 0
		/// may add what it found recomputing the losing side's stage from that stage's own
		/// input (`input_check`); everyone else passes `None`. The last reveal of a stage
		/// concludes it: the vote, the comparison of the two sides, or the referee's
		/// judgement. Free for the slot's miner when it is accepted.
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::reveal(
			T::MaxSlots::get(),
			Pallet::<T>::revealed_bytes(fingerprint, input_check),
		).saturating_add(Pallet::<T>::input_check_write(input_check))
		.saturating_add(Pallet::<T>::operator_lookup())
		.saturating_add(Pallet::<T>::judgement_weight(T::MaxSlots::get())))]
		#[allow(clippy::too_many_arguments)]
		pub fn reveal(
			origin: OriginFor<T>,
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			fingerprint: Vec<u8>,
			output: RevealedOutput,
			salt: [u8; 32],
			input_check: Option<InputCheck<Vec<u8>>>,
		) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			let fingerprint_len = Self::revealed_bytes(&fingerprint, &input_check);
			let check_write = Self::input_check_write(&input_check);
			Self::do_reveal(&who, task, pipeline, chunk, fingerprint, output, salt, input_check)?;
			// Charged up front for the largest task; refunded down to this task's slots
			// (a referee round added during the reveal counts too).
			let slots = Slots::<T>::decode_len(task).map_or(T::MaxSlots::get(), |n| n as u32);
			let judgement = match Tasks::<T>::get(task).map(|info| info.mode) {
				Some(VerificationMode::Prefill) => Self::judgement_weight(slots),
				_ => Weight::zero(),
			};
			let actual = T::WeightInfo::reveal(slots, fingerprint_len)
				.saturating_add(check_write)
				.saturating_add(Self::operator_lookup())
				.saturating_add(judgement);
			Ok(polkadot_sdk::frame_support::dispatch::PostDispatchInfo {
				actual_weight: Some(actual),
				pays_fee: Pays::No,
			})
		}

		/// Settles a disputed task: pays the complete pipelines that revealed `accepted`
		/// as if they had won the vote, slashes every miner that revealed another output
		/// by `DisputeSlash`; `None` rejects every output, refunds the requester and
		/// slashes every miner that revealed.
		#[pallet::call_index(3)]
		#[pallet::weight(T::WeightInfo::resolve_dispute(T::MaxSlots::get()))]
		pub fn resolve_dispute(
			origin: OriginFor<T>,
			task: TaskId,
			accepted: Option<H256>,
		) -> DispatchResult {
			T::AdminOrigin::ensure_origin(origin)?;
			let info = Tasks::<T>::get(task).ok_or(Error::<T>::UnknownTask)?;
			ensure!(
				info.status == TaskStatus::Disputed && info.mode == VerificationMode::Redundant,
				Error::<T>::NotDisputed
			);
			let slots = Slots::<T>::get(task);
			if let Some(hash) = accepted {
				ensure!(
					Self::pipeline_outputs(&slots, info.pipelines).contains(&Some(hash)),
					Error::<T>::UnknownOutput
				);
			}
			for slot in slots.iter() {
				if let SlotState::Revealed(revealed) = slot.state {
					if Some(revealed) != accepted {
						let amount = T::Experts::slash(&slot.expert, T::DisputeSlash::get());
						Self::deposit_event(Event::MinerSlashed {
							task,
							expert: slot.expert.clone(),
							amount,
						});
					}
				}
			}
			Self::deposit_event(Event::DisputeResolved { task, accepted });
			match accepted {
				Some(hash) => Self::complete(task, info, &slots, hash),
				None => Self::expire(task, info, &slots, Perbill::zero()),
			}
			Ok(())
		}

		/// Sets how many pipelines the auction aims for.
		#[pallet::call_index(4)]
		#[pallet::weight(T::WeightInfo::set_redundancy())]
		pub fn set_redundancy(origin: OriginFor<T>, redundancy: u8) -> DispatchResult {
			T::AdminOrigin::ensure_origin(origin)?;
			ensure!(
				(1..=T::MaxRedundancy::get()).contains(&redundancy),
				Error::<T>::InvalidRedundancy
			);
			Redundancy::<T>::put(redundancy);
			Self::deposit_event(Event::RedundancySet { redundancy });
			Ok(())
		}

		/// Sets how newly submitted tasks are checked (tasks already submitted keep
		/// theirs).
		#[pallet::call_index(5)]
		#[pallet::weight(T::WeightInfo::set_verification_mode())]
		pub fn set_verification_mode(
			origin: OriginFor<T>,
			mode: VerificationMode,
		) -> DispatchResult {
			T::AdminOrigin::ensure_origin(origin)?;
			Verification::<T>::put(mode);
			Self::deposit_event(Event::VerificationModeSet { mode });
			Ok(())
		}

		/// The generator's last chunk (prefill verification): commits as
		/// [`Pallet::commit`] does and publishes the output (`RevealedOutput::Full`) so
		/// that the verifier can recompute the generation by prefill. The output's hash
		/// is what every miner of the task attests. Free when accepted.
		#[pallet::call_index(6)]
		#[pallet::weight(T::WeightInfo::commit_output(
			T::MaxSlots::get(),
			T::MaxGeneratedTokens::get(),
		).saturating_add(Pallet::<T>::operator_lookup()))]
		pub fn commit_output(
			origin: OriginFor<T>,
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			commitment: H256,
			output: RevealedOutput,
		) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			Self::do_commit(&who, task, pipeline, chunk, commitment, Some(output))?;
			Ok(Pays::No.into())
		}

		/// The caller's stage of a pipeline in its commit stage cannot go on because its
		/// neighbour `silent` (the next chunk, which stopped answering; or the previous
		/// one, which stopped sending) left it waiting. After `SilenceClaimPeriod` blocks
		/// the claim stands unless the accused committed or made the same claim of the
		/// caller: the silent stage alone is blamed and replaced by the chunk's next best,
		/// and the pipeline's other late stages are excused with a new deadline; two
		/// stages claiming each other are both freed unblamed and replaced. Free when
		/// accepted.
		#[pallet::call_index(7)]
		#[pallet::weight(T::WeightInfo::claim_silence(T::MaxSlots::get())
			.saturating_add(Pallet::<T>::operator_lookup()))]
		pub fn claim_silence(
			origin: OriginFor<T>,
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			silent: ChunkIndex,
		) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			Self::do_claim_silence(&who, task, pipeline, chunk, silent)?;
			Ok(Pays::No.into())
		}

		/// [`Pallet::submit_task`] with `generators` generator pipelines instead of one
		/// (1 to `MaxGenerators`, more than one only with prefill verification): the
		/// verifier checks each, a lying one is settled by referees like a single one, and
		/// the answer is the first generator's whose work stands. `max_fee` must cover the
		/// quote for that many generators and their checks
		/// ([`Pallet::quote_generators`]); the requester pays only for work that stands.
		#[pallet::call_index(8)]
		#[pallet::weight(Pallet::<T>::submission_weight(prompt))]
		#[allow(clippy::too_many_arguments)]
		pub fn submit_task_with_generators(
			origin: OriginFor<T>,
			model: ModelId,
			prompt: Vec<u8>,
			max_tokens: u32,
			sampling: SamplingParams,
			max_fee: BalanceOf<T>,
			domain: Option<Vec<u8>>,
			generators: u8,
		) -> DispatchResultWithPostInfo {
			let requester = ensure_signed(origin)?;
			let request = TaskRequest { model, prompt, max_tokens, sampling, max_fee, domain };
			Self::do_submit(requester, request, generators)
		}
	}

	impl<T: Config> From<QuoteError> for Error<T> {
		fn from(error: QuoteError) -> Self {
			match error {
				QuoteError::UnknownModel => Error::<T>::UnknownModel,
				QuoteError::ModelNotActive => Error::<T>::ModelNotActive,
				QuoteError::NoMinersAvailable => Error::<T>::NoMinersAvailable,
				QuoteError::Overflow => Error::<T>::Overflow,
				QuoteError::ModelTooLarge => Error::<T>::ModelTooLarge,
			}
		}
	}
}

#[cfg(feature = "runtime-benchmarks")]
impl<T: Config> Pallet<T> {
	/// Records a completed task of `requester` whose accepted result came from one
	/// pipeline of `miners` (one chunk each), its result still on chain: for the
	/// benchmarks of pallets that read completed tasks.
	pub fn completed_for_benchmark(
		requester: &T::AccountId,
		domain: Option<Domain>,
		miners: &[T::AccountId],
	) -> TaskId {
		let task = NextTaskId::<T>::get();
		NextTaskId::<T>::put(task.saturating_add(1));
		let output = H256::repeat_byte(7);
		let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
		let info = TaskInfo {
			requester: requester.clone(),
			model: 0,
			domain,
			prompt_hash: H256::zero(),
			prompt_bytes: 1,
			max_tokens: 1,
			sampling: SamplingParams::default(),
			escrow: Zero::zero(),
			status: TaskStatus::Completed,
			submitted_at: now,
			deadline: now,
			price_cap: Zero::zero(),
			pipelines: 1,
			generators: 1,
			reassignments: 0,
			mode: VerificationMode::Redundant,
			dispute: None,
			tie_seed: H256::zero(),
			settlement: Some(Settlement {
				output_hash: Some(output),
				tokens: 0,
				fee: Zero::zero(),
				miners: Zero::zero(),
				community: Zero::zero(),
				refunded: Zero::zero(),
			}),
		};
		Tasks::<T>::insert(task, info);
		let slots: Vec<SlotOf<T>> = miners
			.iter()
			.enumerate()
			.map(|(chunk, expert)| Slot {
				pipeline: 0,
				chunk: chunk as ChunkIndex,
				expert: expert.clone(),
				role: Role::Generator,
				format: NumericFormat::F32,
				threshold: Zero::zero(),
				assigned_at: now,
				state: SlotState::Revealed(output),
			})
			.collect();
		Slots::<T>::insert(task, BoundedVec::truncate_from(slots));
		task
	}
}
