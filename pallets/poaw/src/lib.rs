//! # Proof of AI work
//!
//! A requester submits a prompt for an active model with a `max_fee`, held from its
//! account as escrow. Every block the pallet runs a reverse auction per chunk of the
//! model among the experts serving it ([`auction`]): the best `r` miners (redundancy)
//! of every chunk form `r` pipelines, each winner paid its threshold price. Miners
//! commit to a hash of their chunk's activation fingerprint and of the pipeline's
//! output, then reveal; the last chunk reveals the output. When a majority of the
//! pipelines that revealed agree, the task completes: the requester pays
//! `layers × tokens × threshold` to every miner of the agreeing pipelines, grossed up
//! so that they get `MinerShare` of the fee and the community fund the rest; the rest
//! of the escrow goes back. Deadlines end every stage: a miner that misses one is
//! replaced by the auction's next best, is not paid and is reported to the reputation
//! source. Disagreement leaves the task Disputed for `DisputeOrigin` to settle, with the
//! losers slashed through the expert registry. See docs/protocol.md.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

pub mod auction;
#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
pub mod runtime_api;
#[cfg(test)]
mod tests;
pub mod types;
pub mod weights;

use alloc::{collections::btree_map::BTreeMap, vec::Vec};
pub use dllm_primitives::market::{
	ChunkIndex, CompletedTask, Domain, ExpertQuality, ExpertRegistry, ModelId, ModelRegistry,
	ModelStatus, TaskLedger, TaskLookupError, TaskOutcome,
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

/// A bid in a chunk's auction with its expert's free capacity.
type BidWithCapacity<AccountId> = (auction::Bid<AccountId>, u32);

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

#[polkadot_sdk::frame_support::pallet]
pub mod pallet {
	use super::*;
	use polkadot_sdk::frame_system::pallet_prelude::*;

	#[pallet::pallet]
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
		/// Most tasks the auction assigns per block.
		#[pallet::constant]
		type MaxAssignmentsPerBlock: Get<u32>;
		/// Most deadlines handled per block (later ones wait for the next block).
		#[pallet::constant]
		type MaxTimeoutsPerBlock: Get<u32>;
		/// Share of bond and delegations slashed from a miner on the losing side of a
		/// resolved dispute.
		#[pallet::constant]
		type DisputeSlash: Get<Perbill>;
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

	/// Pipelines per task the auction aims for.
	#[pallet::storage]
	pub type Redundancy<T: Config> = StorageValue<_, u8, ValueQuery, T::DefaultRedundancy>;

	#[pallet::genesis_config]
	#[derive(polkadot_sdk::frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		/// Redundancy; `None` keeps the default.
		pub redundancy: Option<u8>,
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
		/// The task ended without a result; the whole escrow went back.
		TaskExpired { task: TaskId, refunded: BalanceOf<T> },
		/// A finished task's prompt, output and evidence left storage (its record and
		/// output hash stay).
		ResultRemoved { task: TaskId },
		/// The admin set the redundancy.
		RedundancySet { redundancy: u8 },
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
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn on_initialize(now: BlockNumberFor<T>) -> Weight {
			Self::handle_timeouts(now).saturating_add(Self::assign_queued(now))
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
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Submits `prompt` for `model`: holds `max_fee` as escrow and queues the task for
		/// the auction. `max_fee` must cover the current quote for the prompt's length
		/// (counted as `bytes + 2` tokens) plus `max_tokens`.
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::submit_task(
			(prompt.len() as u32).min(T::MaxPromptBytes::get()),
			T::MaxSlots::get(),
			T::MaxOffersPerChunk::get(),
		))]
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
			ensure!(!prompt.is_empty(), Error::<T>::EmptyPrompt);
			let prompt: BoundedVec<u8, T::MaxPromptBytes> =
				prompt.try_into().map_err(|_| Error::<T>::PromptTooLong)?;
			ensure!(max_tokens > 0, Error::<T>::ZeroMaxTokens);
			ensure!(max_tokens <= T::MaxGeneratedTokens::get(), Error::<T>::TooManyTokens);
			ensure!(
				sampling.temperature_milli <= 10_000 && !sampling.top_p.is_zero(),
				Error::<T>::InvalidSampling
			);
			let domain = match domain {
				Some(tag) => {
					let tag = Domain::try_from(tag).map_err(|_| Error::<T>::InvalidDomain)?;
					ensure!(!tag.is_empty(), Error::<T>::InvalidDomain);
					Some(tag)
				}
				None => None,
			};
			let prompt_bytes = prompt.len() as u32;
			let quote = Self::quote(model, prompt_token_bound(prompt_bytes), max_tokens)
				.map_err(Error::<T>::from)?;
			ensure!(max_fee >= quote.max_fee, Error::<T>::FeeBelowQuote);
			ensure!(
				T::Currency::can_hold(&HoldReason::Escrow.into(), &requester, max_fee),
				Error::<T>::InsufficientBalance
			);
			let id = NextTaskId::<T>::get();
			Queue::<T>::try_append(id).map_err(|_| Error::<T>::QueueFull)?;
			// The task refers to its model until it ends, so the model cannot leave the
			// registry under running work.
			T::Models::acquire(model)?;
			T::Currency::hold(&HoldReason::Escrow.into(), &requester, max_fee)
				.map_err(|_| Error::<T>::InsufficientBalance)?;
			NextTaskId::<T>::put(id.checked_add(1).ok_or(Error::<T>::Overflow)?);
			let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
			let prompt_hash = BlakeTwo256::hash(&prompt);
			let tie_seed = BlakeTwo256::hash_of(&(
				polkadot_sdk::frame_system::Pallet::<T>::parent_hash(),
				&requester,
				prompt_hash,
				sampling.seed,
			));
			let deadline = now.saturating_add(T::AssignmentTimeout::get());
			Tasks::<T>::insert(
				id,
				TaskInfo {
					requester: requester.clone(),
					model,
					domain,
					prompt_hash,
					prompt_bytes,
					max_tokens,
					sampling,
					escrow: max_fee,
					status: TaskStatus::Queued,
					submitted_at: now,
					deadline,
					price_cap: Zero::zero(),
					pipelines: 0,
					reassignments: 0,
					tie_seed,
					settlement: None,
				},
			);
			Prompts::<T>::insert(id, prompt);
			Timeouts::<T>::insert(deadline, id, ());
			Self::deposit_event(Event::TaskSubmitted { task: id, requester, model, max_fee });
			// The auction work scales with the model's chunks; offers are charged at most.
			let chunks = T::Models::chunk_count(model).unwrap_or(T::MaxSlots::get());
			Ok(Some(T::WeightInfo::submit_task(prompt_bytes, chunks, T::MaxOffersPerChunk::get()))
				.into())
		}

		/// Commits the caller's slot to
		/// `blake2_256(task, pipeline, chunk, blake2_256(fingerprint), output_hash, salt)`
		/// (see [`commitment`]).
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::commit(T::MaxSlots::get()))]
		pub fn commit(
			origin: OriginFor<T>,
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			commitment: H256,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut info = Tasks::<T>::get(task).ok_or(Error::<T>::UnknownTask)?;
			ensure!(info.status == TaskStatus::Assigned, Error::<T>::WrongStage);
			let mut slots = Slots::<T>::get(task);
			let slot = Self::own_slot(slots.as_mut(), &who, pipeline, chunk)?;
			match slot.state {
				SlotState::Assigned => {}
				SlotState::Committed(_) | SlotState::Revealed(_) => {
					return Err(Error::<T>::AlreadyCommitted.into())
				}
				SlotState::Missed | SlotState::Abandoned => {
					return Err(Error::<T>::SlotClosed.into())
				}
			}
			slot.state = SlotState::Committed(commitment);
			let all_committed = !slots.iter().any(|slot| slot.state == SlotState::Assigned);
			Slots::<T>::insert(task, &slots);
			Self::deposit_event(Event::Committed { task, pipeline, chunk, expert: who });
			if all_committed {
				Self::open_reveals(task, &mut info);
				Tasks::<T>::insert(task, info);
			}
			Ok(())
		}

		/// Reveals what the caller's slot committed to. The last chunk reveals the output
		/// (prompt token count, generated tokens, text); the others its hash. The last
		/// reveal concludes the task.
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::reveal(
			T::MaxSlots::get(),
			fingerprint.len().min(T::MaxFingerprintBytes::get() as usize) as u32,
		))]
		pub fn reveal(
			origin: OriginFor<T>,
			task: TaskId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
			fingerprint: Vec<u8>,
			output: RevealedOutput,
			salt: [u8; 32],
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let info = Tasks::<T>::get(task).ok_or(Error::<T>::UnknownTask)?;
			ensure!(info.status == TaskStatus::Committed, Error::<T>::WrongStage);
			let chunks = T::Models::chunk_count(info.model).ok_or(Error::<T>::UnknownModel)?;
			let mut slots = Slots::<T>::get(task);
			let index = Self::slot_index(&slots, pipeline, chunk)?;
			let slot = slots.get_mut(index).ok_or(Error::<T>::UnknownSlot)?;
			ensure!(slot.expert == who, Error::<T>::NotYourSlot);
			let committed = match slot.state {
				SlotState::Committed(committed) => committed,
				SlotState::Missed | SlotState::Abandoned => {
					return Err(Error::<T>::SlotClosed.into())
				}
				SlotState::Assigned | SlotState::Revealed(_) => {
					return Err(Error::<T>::NotCommitted.into())
				}
			};
			let fingerprint: BoundedVec<u8, T::MaxFingerprintBytes> =
				fingerprint.try_into().map_err(|_| Error::<T>::FingerprintTooLong)?;
			let is_last = chunk.saturating_add(1) == chunks;
			let (hash, full) = match (output, is_last) {
				(RevealedOutput::Hash(hash), false) => (hash, None),
				(RevealedOutput::Hash(_), true) => return Err(Error::<T>::OutputRequired.into()),
				(RevealedOutput::Full { .. }, false) => {
					return Err(Error::<T>::OutputNotExpected.into())
				}
				(RevealedOutput::Full { prompt_tokens, tokens, text }, true) => {
					ensure!(tokens.len() as u32 <= info.max_tokens, Error::<T>::TooManyTokens);
					let hash = output_hash(prompt_tokens, &tokens, &text);
					let output = TaskOutput::<T> {
						prompt_tokens,
						tokens: tokens.try_into().map_err(|_| Error::<T>::TooManyTokens)?,
						text: text.try_into().map_err(|_| Error::<T>::OutputTooLong)?,
					};
					(hash, Some(output))
				}
			};
			ensure!(
				commitment(task, pipeline, chunk, &fingerprint, hash, salt) == committed,
				Error::<T>::CommitmentMismatch
			);
			slot.state = SlotState::Revealed(hash);
			Fingerprints::<T>::insert(task, index as u32, fingerprint);
			if let Some(output) = full {
				Outputs::<T>::insert(task, pipeline, output);
			}
			Self::sync_miner_tasks(task, &slots, &[]);
			let all_revealed = !slots.iter().any(|slot| slot.state.is_pending());
			Slots::<T>::insert(task, &slots);
			Self::deposit_event(Event::Revealed {
				task,
				pipeline,
				chunk,
				expert: who,
				output_hash: hash,
			});
			if all_revealed {
				Self::conclude(task, info, slots);
			}
			Ok(())
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
			ensure!(info.status == TaskStatus::Disputed, Error::<T>::NotDisputed);
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
				None => Self::expire(task, info, &slots),
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

	impl<T: Config> Pallet<T> {
		/// The account fees pass through on their way to miners and the community fund.
		pub fn payout_account() -> T::AccountId {
			T::PalletId::get().into_account_truncating()
		}

		/// The least `max_fee` that lets the auction assign a task of `prompt_tokens` +
		/// `max_tokens` tokens now: every chunk's `r`-th cheapest eligible ask, over all
		/// chunks the highest, times `r` pipelines, the model's layers and the tokens,
		/// grossed up by `MinerShare`.
		pub fn quote(
			model: ModelId,
			prompt_tokens: u32,
			max_tokens: u32,
		) -> Result<FeeQuote<BalanceOf<T>>, QuoteError> {
			match T::Models::status(model) {
				None => return Err(QuoteError::UnknownModel),
				Some(ModelStatus::Active) => {}
				Some(_) => return Err(QuoteError::ModelNotActive),
			}
			let layers = T::Models::chunk_layers(model).ok_or(QuoteError::UnknownModel)?;
			if layers.len() as u32 > T::MaxSlots::get() {
				return Err(QuoteError::ModelTooLarge);
			}
			let mut asks_per_chunk = Vec::with_capacity(layers.len());
			for chunk in 0..layers.len() as u32 {
				let mut asks: Vec<u128> = Self::bids(model, chunk, None, H256::zero(), &[])
					.into_iter()
					.map(|(bid, _)| bid.price)
					.collect();
				asks.sort();
				asks_per_chunk.push(asks);
			}
			let fewest = asks_per_chunk.iter().map(Vec::len).min().unwrap_or(0);
			let redundancy = Self::target_redundancy(layers.len() as u32).min(fewest as u8);
			if redundancy == 0 {
				return Err(QuoteError::NoMinersAvailable);
			}
			let price = asks_per_chunk
				.iter()
				.filter_map(|asks| asks.get(redundancy as usize - 1).copied())
				.max()
				.unwrap_or(0);
			let total_layers: u32 = layers.iter().fold(0u32, |sum, l| sum.saturating_add(*l));
			let tokens = prompt_tokens.checked_add(max_tokens).ok_or(QuoteError::Overflow)?;
			let miners = price
				.checked_mul(redundancy as u128)
				.and_then(|v| v.checked_mul(total_layers as u128))
				.and_then(|v| v.checked_mul(tokens as u128))
				.ok_or(QuoteError::Overflow)?;
			let fee = T::MinerShare::get().saturating_reciprocal_mul_ceil(miners);
			let max_fee: BalanceOf<T> = fee.try_into().map_err(|_| QuoteError::Overflow)?;
			Ok(FeeQuote {
				max_fee,
				redundancy,
				price_per_token_layer: price.saturated_into(),
				tokens,
				layers: total_layers,
			})
		}

		/// Redundancy to aim for with a model of `chunks` chunks.
		fn target_redundancy(chunks: u32) -> u8 {
			let by_slots = T::MaxSlots::get().checked_div(chunks.max(1)).unwrap_or(0);
			Redundancy::<T>::get().min(by_slots.min(u8::MAX as u32) as u8)
		}

		/// The auction's bids for a chunk, leaving out `excluded` experts, each with the
		/// expert's free capacity.
		pub(crate) fn bids(
			model: ModelId,
			chunk: ChunkIndex,
			domain: Option<&Domain>,
			tie_seed: H256,
			excluded: &[T::AccountId],
		) -> Vec<BidWithCapacity<T::AccountId>> {
			let offers: Vec<_> = T::Experts::offers(model, chunk)
				.into_iter()
				.filter(|offer| !excluded.contains(&offer.expert))
				.filter_map(|offer| {
					let quality = T::Quality::quality(&offer.expert, domain)?;
					let speed = Throughput::<T>::get(&offer.expert);
					Some((offer, quality, speed))
				})
				.collect();
			let best = offers.iter().map(|(_, _, speed)| *speed).max().unwrap_or(0);
			offers
				.into_iter()
				.map(|(offer, quality, speed)| {
					let bid = auction::Bid {
						weight: auction::weight(
							quality.deconstruct(),
							T::ThroughputBonus::get().deconstruct(),
							speed,
							best,
						),
						tie_key: BlakeTwo256::hash_of(&(tie_seed, &offer.expert)).0,
						price: offer.price_per_token_layer.saturated_into(),
						expert: offer.expert,
					};
					(bid, offer.free_capacity)
				})
				.collect()
		}

		/// Highest price per token per layer `escrow` pays to `pipelines` pipelines of a
		/// model with `layers` layers for `tokens` tokens.
		fn price_cap(escrow: BalanceOf<T>, pipelines: u8, layers: u32, tokens: u32) -> u128 {
			let budget: u128 = T::MinerShare::get().mul_floor(escrow).saturated_into();
			let units =
				(pipelines as u128).saturating_mul(layers as u128).saturating_mul(tokens as u128);
			budget.checked_div(units).unwrap_or(0)
		}

		/// Runs the auctions of a queued task. `Ok(true)`: assigned; `Ok(false)`: not
		/// enough miners now; `Err`: the task cannot run (its model is gone).
		pub(crate) fn try_assign(
			task: TaskId,
			info: &mut TaskOf<T>,
			now: BlockNumberFor<T>,
		) -> Result<bool, ()> {
			if T::Models::status(info.model).is_none_or(|s| s == ModelStatus::Retired) {
				return Err(());
			}
			let layers = T::Models::chunk_layers(info.model).ok_or(())?;
			let chunks = layers.len() as u32;
			let total_layers = layers.iter().fold(0u32, |sum, l| sum.saturating_add(*l));
			let tokens = prompt_token_bound(info.prompt_bytes).saturating_add(info.max_tokens);
			let bids: Vec<_> = (0..chunks)
				.map(|chunk| {
					Self::bids(info.model, chunk, info.domain.as_ref(), info.tie_seed, &[])
				})
				.collect();
			let Some((pipelines, cap, awards)) =
				(1..=Self::target_redundancy(chunks)).rev().find_map(|r| {
					let cap = Self::price_cap(info.escrow, r, total_layers, tokens);
					Self::award_all(&bids, r, cap).map(|awards| (r, cap, awards))
				})
			else {
				return Ok(false);
			};
			let mut slots: BoundedVec<SlotOf<T>, T::MaxSlots> = BoundedVec::new();
			for pipeline in Self::form_pipelines(awards, pipelines) {
				for (chunk, award) in pipeline.into_iter().enumerate() {
					let _ = slots.try_push(Slot {
						pipeline: (slots.len() as u32 / chunks) as u8,
						chunk: chunk as u32,
						expert: award.expert,
						threshold: award.threshold.saturated_into(),
						assigned_at: now,
						state: SlotState::Assigned,
					});
				}
			}
			// Capacity was checked through the offers; an expert winning more slots than
			// it has room for is caught here and the task waits.
			let counted = polkadot_sdk::frame_support::storage::with_storage_layer(|| {
				for slot in slots.iter() {
					T::Experts::note_assigned(&slot.expert)?;
				}
				Ok::<(), DispatchError>(())
			});
			if counted.is_err() {
				return Ok(false);
			}
			info.status = TaskStatus::Assigned;
			info.pipelines = pipelines;
			info.price_cap = cap.saturated_into();
			Self::reschedule(task, info, now.saturating_add(T::CommitPeriod::get()));
			for slot in slots.iter() {
				MinerTasks::<T>::insert(&slot.expert, task, ());
				Self::deposit_event(Event::SlotAssigned {
					task,
					pipeline: slot.pipeline,
					chunk: slot.chunk,
					expert: slot.expert.clone(),
					threshold: slot.threshold,
				});
			}
			Slots::<T>::insert(task, slots);
			Self::deposit_event(Event::TaskAssigned {
				task,
				pipelines,
				price_cap: info.price_cap,
				deadline: info.deadline,
			});
			Ok(true)
		}

		/// Every chunk's `r` winners under `cap`, each expert winning at most as many
		/// slots as its free capacity; `None` when some chunk has fewer.
		fn award_all(
			bids: &[Vec<BidWithCapacity<T::AccountId>>],
			r: u8,
			cap: u128,
		) -> Option<Vec<Vec<auction::Award<T::AccountId>>>> {
			let mut used: BTreeMap<T::AccountId, u32> = BTreeMap::new();
			let mut all = Vec::with_capacity(bids.len());
			for chunk_bids in bids {
				let available: Vec<_> = chunk_bids
					.iter()
					.filter(|(bid, free)| used.get(&bid.expert).copied().unwrap_or(0) < *free)
					.map(|(bid, _)| bid.clone())
					.collect();
				let awards = auction::run(&available, r as usize, cap);
				if awards.len() < r as usize {
					return None;
				}
				for award in awards.iter() {
					used.entry(award.expert.clone()).or_default().saturating_inc();
				}
				all.push(awards);
			}
			Some(all)
		}

		/// Arranges every chunk's winners into `r` pipelines, keeping pipelines disjoint
		/// where the winners allow: a pipeline takes back a miner it already has (one
		/// expert serving consecutive chunks), else one no other pipeline has, else the
		/// best left. Returns the pipelines, each in chunk order.
		fn form_pipelines(
			awards: Vec<Vec<auction::Award<T::AccountId>>>,
			r: u8,
		) -> Vec<Vec<auction::Award<T::AccountId>>> {
			let mut pipelines: Vec<Vec<auction::Award<T::AccountId>>> =
				(0..r).map(|_| Vec::with_capacity(awards.len())).collect();
			for mut chunk_awards in awards {
				for p in 0..pipelines.len() {
					let has = |i: usize, who: &T::AccountId| {
						pipelines.get(i).is_some_and(|pl| pl.iter().any(|a| &a.expert == who))
					};
					let pick = chunk_awards
						.iter()
						.position(|award| has(p, &award.expert))
						.or_else(|| {
							chunk_awards.iter().position(|award| {
								!(0..pipelines.len()).any(|q| q != p && has(q, &award.expert))
							})
						})
						.unwrap_or(0);
					if pick < chunk_awards.len() {
						let award = chunk_awards.remove(pick);
						if let Some(pipeline) = pipelines.get_mut(p) {
							pipeline.push(award);
						}
					}
				}
			}
			pipelines
		}

		/// Index of the slot of `pipeline` and `chunk`.
		fn slot_index(
			slots: &[SlotOf<T>],
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
		) -> Result<usize, DispatchError> {
			slots
				.iter()
				.position(|slot| slot.pipeline == pipeline && slot.chunk == chunk)
				.ok_or_else(|| Error::<T>::UnknownSlot.into())
		}

		/// The slot of `pipeline` and `chunk`, which must be `who`'s.
		fn own_slot<'a>(
			slots: &'a mut [SlotOf<T>],
			who: &T::AccountId,
			pipeline: PipelineIndex,
			chunk: ChunkIndex,
		) -> Result<&'a mut SlotOf<T>, DispatchError> {
			let index = Self::slot_index(slots, pipeline, chunk)?;
			let slot = slots.get_mut(index).ok_or(Error::<T>::UnknownSlot)?;
			ensure!(&slot.expert == who, Error::<T>::NotYourSlot);
			Ok(slot)
		}

		/// Moves the task's deadline (and its entry in `Timeouts`) to `deadline`.
		fn reschedule(task: TaskId, info: &mut TaskOf<T>, deadline: BlockNumberFor<T>) {
			Timeouts::<T>::remove(info.deadline, task);
			info.deadline = deadline;
			Timeouts::<T>::insert(deadline, task, ());
		}

		/// Every live slot committed: the reveal stage starts.
		fn open_reveals(task: TaskId, info: &mut TaskOf<T>) {
			let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
			info.status = TaskStatus::Committed;
			Self::reschedule(task, info, now.saturating_add(T::RevealPeriod::get()));
			Self::deposit_event(Event::RevealsOpened { task, deadline: info.deadline });
		}

		/// Each pipeline's output: `Some(hash)` when every slot of it revealed the same
		/// hash and the last chunk's output is stored, else `None`.
		pub(crate) fn pipeline_outputs(slots: &[SlotOf<T>], pipelines: u8) -> Vec<Option<H256>> {
			(0..pipelines)
				.map(|p| {
					let mut hashes = slots.iter().filter(|slot| slot.pipeline == p).map(|slot| {
						match slot.state {
							SlotState::Revealed(hash) => Some(hash),
							_ => None,
						}
					});
					let first = hashes.next().flatten()?;
					hashes.all(|hash| hash == Some(first)).then_some(first)
				})
				.collect()
		}

		/// All reveals are in (or the reveal deadline passed): complete on a majority of
		/// the complete pipelines, dispute on a split, expire when none is complete.
		fn conclude(task: TaskId, mut info: TaskOf<T>, slots: BoundedVec<SlotOf<T>, T::MaxSlots>) {
			let outputs = Self::pipeline_outputs(&slots, info.pipelines);
			let complete: Vec<H256> = outputs.iter().flatten().copied().collect();
			let mut votes: BTreeMap<H256, u32> = BTreeMap::new();
			for hash in complete.iter() {
				votes.entry(*hash).or_default().saturating_inc();
			}
			let leader = votes.iter().max_by_key(|(_, count)| **count).map(|(h, c)| (*h, *c));
			match leader {
				None => Self::expire(task, info, &slots),
				Some((hash, count)) if count.saturating_mul(2) > complete.len() as u32 => {
					Self::complete(task, info, &slots, hash)
				}
				Some(_) => {
					// Evidence stays; the miners stay assigned (and so slashable) until
					// the admin resolves.
					for slot in slots.iter() {
						MinerTasks::<T>::remove(&slot.expert, task);
					}
					Timeouts::<T>::remove(info.deadline, task);
					info.status = TaskStatus::Disputed;
					Tasks::<T>::insert(task, info);
					Self::deposit_event(Event::TaskDisputed { task });
				}
			}
		}

		/// Pays the pipelines whose output is `accepted`, reports every miner, refunds
		/// the rest of the escrow.
		fn complete(task: TaskId, mut info: TaskOf<T>, slots: &[SlotOf<T>], accepted: H256) {
			let outputs = Self::pipeline_outputs(slots, info.pipelines);
			let agreeing: Vec<PipelineIndex> = outputs
				.iter()
				.enumerate()
				.filter(|(_, hash)| **hash == Some(accepted))
				.map(|(p, _)| p as PipelineIndex)
				.collect();
			let output = agreeing.first().and_then(|p| Outputs::<T>::get(task, p));
			let tokens = output
				.as_ref()
				.map(|out| {
					out.prompt_tokens
						.min(prompt_token_bound(info.prompt_bytes))
						.saturating_add(out.tokens.len() as u32)
				})
				.unwrap_or(0);
			let layers = T::Models::chunk_layers(info.model).unwrap_or_default();
			// Work done per miner at its threshold prices, in slot order.
			let mut owed: Vec<(T::AccountId, u128)> = Vec::new();
			for slot in slots.iter().filter(|slot| agreeing.contains(&slot.pipeline)) {
				let chunk_layers = layers.get(slot.chunk as usize).copied().unwrap_or(0);
				let amount = (chunk_layers as u128)
					.saturating_mul(tokens as u128)
					.saturating_mul(slot.threshold.saturated_into::<u128>());
				match owed.iter_mut().find(|(who, _)| *who == slot.expert) {
					Some((_, sum)) => *sum = sum.saturating_add(amount),
					None => owed.push((slot.expert.clone(), amount)),
				}
			}
			let escrow: u128 = info.escrow.saturated_into();
			let mut miners: u128 = owed.iter().fold(0u128, |sum, (_, a)| sum.saturating_add(*a));
			// The auction's price cap keeps this within the escrow; were it not, every
			// miner is scaled down alike rather than the requester overcharged.
			let budget = T::MinerShare::get().mul_floor(escrow);
			if miners > budget {
				let scale = Perbill::from_rational(budget, miners);
				for (_, amount) in owed.iter_mut() {
					*amount = scale.mul_floor(*amount);
				}
				miners = owed.iter().fold(0u128, |sum, (_, a)| sum.saturating_add(*a));
			}
			let fee = T::MinerShare::get().saturating_reciprocal_mul_ceil(miners).min(escrow);
			let community = fee.saturating_sub(miners);
			let refund = escrow.saturating_sub(fee);
			let mut refunded: BalanceOf<T> = refund.saturated_into();
			let _ = T::Currency::release(
				&HoldReason::Escrow.into(),
				&info.requester,
				refunded,
				Precision::BestEffort,
			);
			let payout = Self::payout_account();
			let moved = T::Currency::transfer_on_hold(
				&HoldReason::Escrow.into(),
				&info.requester,
				&payout,
				fee.saturated_into(),
				Precision::Exact,
				Restriction::Free,
				Fortitude::Force,
			);
			let (mut paid_miners, mut paid_community) = (BalanceOf::<T>::zero(), Zero::zero());
			if moved.is_ok() {
				for (expert, amount) in owed {
					let amount: BalanceOf<T> = amount.saturated_into();
					if amount.is_zero() {
						continue;
					}
					if T::Experts::pay(&expert, &payout, amount).is_ok() {
						paid_miners.saturating_accrue(amount);
						Self::deposit_event(Event::MinerPaid { task, expert, amount });
					} else {
						Self::pay_back(task, &payout, &info.requester, &expert, amount);
						refunded.saturating_accrue(amount);
					}
				}
				let community_amount: BalanceOf<T> = community.saturated_into();
				let community_account = T::CommunityAccount::get();
				if !community_amount.is_zero() {
					if T::Currency::transfer(
						&payout,
						&community_account,
						community_amount,
						Preservation::Preserve,
					)
					.is_ok()
					{
						paid_community = community_amount;
					} else {
						Self::pay_back(
							task,
							&payout,
							&info.requester,
							&community_account,
							community_amount,
						);
						refunded.saturating_accrue(community_amount);
					}
				}
			} else {
				// Cannot happen with the escrow held; if it did, nothing is lost.
				let rest =
					T::Currency::balance_on_hold(&HoldReason::Escrow.into(), &info.requester)
						.min(fee.saturated_into());
				let _ = T::Currency::release(
					&HoldReason::Escrow.into(),
					&info.requester,
					rest,
					Precision::BestEffort,
				);
				refunded.saturating_accrue(rest);
				Self::deposit_event(Event::PaymentFailed {
					task,
					to: payout,
					amount: fee.saturated_into(),
				});
			}
			// Reports, capacity and throughput.
			let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
			for slot in slots.iter() {
				MinerTasks::<T>::remove(&slot.expert, task);
			}
			for slot in slots.iter() {
				let outcome = match slot.state {
					SlotState::Revealed(hash)
						if agreeing.contains(&slot.pipeline) && hash == accepted =>
					{
						Some(TaskOutcome::Verified)
					}
					SlotState::Revealed(hash) if hash != accepted => Some(TaskOutcome::Outvoted),
					SlotState::Revealed(_) => None,
					SlotState::Assigned | SlotState::Committed(_) => {
						Some(TaskOutcome::MissedDeadline)
					}
					SlotState::Missed | SlotState::Abandoned => continue,
				};
				if let Some(outcome) = outcome {
					T::Quality::report(&slot.expert, info.domain.as_ref(), outcome);
				}
				if outcome == Some(TaskOutcome::Verified) {
					Self::note_throughput(&slot.expert, tokens, slot.assigned_at, now);
				}
				T::Experts::note_finished(&slot.expert);
			}
			let paid_fee = paid_miners.saturating_add(paid_community);
			Self::finish(
				task,
				&mut info,
				TaskStatus::Completed,
				Settlement {
					output_hash: Some(accepted),
					tokens,
					fee: paid_fee,
					miners: paid_miners,
					community: paid_community,
					refunded,
				},
			);
			Self::deposit_event(Event::TaskCompleted {
				task,
				output_hash: accepted,
				fee: paid_fee,
				miners: paid_miners,
				community: paid_community,
				refunded,
			});
		}

		/// A payment that failed goes from the payout account back to the requester.
		fn pay_back(
			task: TaskId,
			payout: &T::AccountId,
			requester: &T::AccountId,
			to: &T::AccountId,
			amount: BalanceOf<T>,
		) {
			let _ = T::Currency::transfer(payout, requester, amount, Preservation::Preserve);
			Self::deposit_event(Event::PaymentFailed { task, to: to.clone(), amount });
		}

		/// Ends a task without a result: the whole escrow goes back, miners that owed
		/// work are reported and freed.
		fn expire(task: TaskId, mut info: TaskOf<T>, slots: &[SlotOf<T>]) {
			let refunded = T::Currency::release(
				&HoldReason::Escrow.into(),
				&info.requester,
				info.escrow,
				Precision::BestEffort,
			)
			.unwrap_or_default();
			for slot in slots.iter() {
				MinerTasks::<T>::remove(&slot.expert, task);
			}
			for slot in slots.iter() {
				match slot.state {
					SlotState::Missed | SlotState::Abandoned => continue,
					SlotState::Assigned | SlotState::Committed(_) => T::Quality::report(
						&slot.expert,
						info.domain.as_ref(),
						TaskOutcome::MissedDeadline,
					),
					SlotState::Revealed(_) => {}
				}
				T::Experts::note_finished(&slot.expert);
			}
			Self::finish(
				task,
				&mut info,
				TaskStatus::Expired,
				Settlement {
					output_hash: None,
					tokens: 0,
					fee: Zero::zero(),
					miners: Zero::zero(),
					community: Zero::zero(),
					refunded,
				},
			);
			Self::deposit_event(Event::TaskExpired { task, refunded });
		}

		/// Records the end of a task and schedules the removal of its data.
		fn finish(
			task: TaskId,
			info: &mut TaskOf<T>,
			status: TaskStatus,
			settlement: Settlement<BalanceOf<T>>,
		) {
			let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
			Timeouts::<T>::remove(info.deadline, task);
			T::Models::release(info.model);
			info.status = status;
			info.settlement = Some(settlement);
			info.deadline = now.saturating_add(T::ResultRetention::get());
			RetentionEnds::<T>::insert(info.deadline, task, ());
			Tasks::<T>::insert(task, &*info);
		}

		/// Folds a verified slot into the miner's throughput average (weight 1/4).
		fn note_throughput(
			expert: &T::AccountId,
			tokens: u32,
			since: BlockNumberFor<T>,
			now: BlockNumberFor<T>,
		) {
			let blocks: u64 = now.saturating_sub(since).saturated_into::<u64>().max(1);
			let sample = (tokens as u64).saturating_mul(1000) / blocks;
			Throughput::<T>::mutate(expert, |average| {
				*average = if *average == 0 {
					sample
				} else {
					average.saturating_mul(3).saturating_add(sample) / 4
				};
			});
		}

		/// Handles the deadlines due by `now`, at most `MaxTimeoutsPerBlock` of them.
		fn handle_timeouts(now: BlockNumberFor<T>) -> Weight {
			let mut weight = T::WeightInfo::hooks_base();
			let mut budget = T::MaxTimeoutsPerBlock::get();
			let mut cursor = TimeoutCursor::<T>::get();
			while cursor <= now && budget > 0 {
				let due: Vec<TaskId> =
					Timeouts::<T>::iter_key_prefix(cursor).take(budget as usize).collect();
				if due.is_empty() {
					cursor.saturating_inc();
					weight.saturating_accrue(T::DbWeight::get().reads(1));
					continue;
				}
				for task in due {
					budget.saturating_dec();
					Timeouts::<T>::remove(cursor, task);
					weight.saturating_accrue(Self::handle_timeout(task, now));
				}
			}
			TimeoutCursor::<T>::put(cursor);
			weight
		}

		/// A task's stage ended without everyone acting.
		pub(crate) fn handle_timeout(task: TaskId, now: BlockNumberFor<T>) -> Weight {
			let Some(mut info) = Tasks::<T>::get(task) else {
				return T::DbWeight::get().reads(1);
			};
			let slots = Slots::<T>::get(task);
			let count = slots.len() as u32;
			match info.status {
				TaskStatus::Queued => {
					Queue::<T>::mutate(|queue| queue.retain(|id| *id != task));
					Self::expire(task, info, &slots);
					T::WeightInfo::expire_queued()
				}
				TaskStatus::Assigned => {
					Self::end_commit_stage(task, &mut info, slots, now);
					T::WeightInfo::end_commit_stage(count)
				}
				TaskStatus::Committed => {
					Self::end_reveal_stage(task, info, slots);
					T::WeightInfo::end_reveal_stage(count)
				}
				_ => T::DbWeight::get().reads(2),
			}
		}

		/// The commit deadline passed: slots that did not commit are replaced by the
		/// auction's next best or their pipeline is abandoned.
		fn end_commit_stage(
			task: TaskId,
			info: &mut TaskOf<T>,
			mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
			now: BlockNumberFor<T>,
		) {
			let mut replaced = LateMiners::<T>::get(task);
			let missed: Vec<usize> = (0..slots.len())
				.filter(|i| slots.get(*i).is_some_and(|slot| slot.state == SlotState::Assigned))
				.collect();
			// Everyone late is blamed and freed first, so that abandoning a pipeline
			// below cannot hide a second late miner.
			for index in missed.iter() {
				let Some(slot) = slots.get_mut(*index) else { continue };
				Self::blame(task, info, slot);
				let _ = replaced.try_push(slot.expert.clone());
			}
			let mut dead: Vec<PipelineIndex> = Vec::new();
			for index in missed {
				let Some(slot) = slots.get(index).cloned() else { continue };
				if dead.contains(&slot.pipeline) {
					continue;
				}
				let replacement = if info.reassignments < T::MaxReassignments::get() {
					Self::replacement(info, &slots, &replaced, &slot)
				} else {
					None
				};
				match replacement {
					Some(award) => {
						info.reassignments.saturating_inc();
						let threshold: BalanceOf<T> = award.threshold.saturated_into();
						Self::deposit_event(Event::SlotReassigned {
							task,
							pipeline: slot.pipeline,
							chunk: slot.chunk,
							expert: award.expert.clone(),
							threshold,
							deadline: now.saturating_add(T::CommitPeriod::get()),
						});
						if let Some(entry) = slots.get_mut(index) {
							*entry = Slot {
								pipeline: slot.pipeline,
								chunk: slot.chunk,
								expert: award.expert,
								threshold,
								assigned_at: now,
								state: SlotState::Assigned,
							};
						}
					}
					None => {
						Self::abandon(task, slots.as_mut(), slot.pipeline);
						dead.push(slot.pipeline);
					}
				}
			}
			Self::sync_miner_tasks(task, &slots, &replaced);
			LateMiners::<T>::insert(task, replaced);
			let live = slots.iter().any(|slot| slot.state.is_pending());
			if !live {
				Slots::<T>::insert(task, &slots);
				Self::expire(task, info.clone(), &slots);
				return;
			}
			if slots.iter().any(|slot| slot.state == SlotState::Assigned) {
				Self::reschedule(task, info, now.saturating_add(T::CommitPeriod::get()));
			} else {
				Self::open_reveals(task, info);
			}
			Slots::<T>::insert(task, &slots);
			Tasks::<T>::insert(task, &*info);
		}

		/// Lists the task among the to-dos of exactly those of `slots`' miners (and of
		/// `others`) that still owe a commit or reveal in it.
		fn sync_miner_tasks(task: TaskId, slots: &[SlotOf<T>], others: &[T::AccountId]) {
			for who in slots.iter().map(|slot| &slot.expert).chain(others.iter()) {
				if slots.iter().any(|slot| &slot.expert == who && slot.state.is_pending()) {
					MinerTasks::<T>::insert(who, task, ());
				} else {
					MinerTasks::<T>::remove(who, task);
				}
			}
		}

		/// A miner let its slot's deadline pass: it is reported, freed and never paid for
		/// this task.
		fn blame(task: TaskId, info: &TaskOf<T>, slot: &mut SlotOf<T>) {
			T::Quality::report(&slot.expert, info.domain.as_ref(), TaskOutcome::MissedDeadline);
			T::Experts::note_finished(&slot.expert);
			Self::deposit_event(Event::DeadlineMissed {
				task,
				pipeline: slot.pipeline,
				chunk: slot.chunk,
				expert: slot.expert.clone(),
			});
			slot.state = SlotState::Missed;
		}

		/// The next best miner for a missed slot: the chunk's auction again, without the
		/// task's other pipelines' miners and without those replaced before, at the
		/// task's price cap. It must have room for one more task.
		fn replacement(
			info: &TaskOf<T>,
			slots: &[SlotOf<T>],
			replaced: &[T::AccountId],
			missed: &SlotOf<T>,
		) -> Option<auction::Award<T::AccountId>> {
			let mut excluded: Vec<T::AccountId> = replaced.to_vec();
			excluded.extend(
				slots
					.iter()
					.filter(|slot| slot.pipeline != missed.pipeline)
					.map(|slot| slot.expert.clone()),
			);
			let bids: Vec<_> = Self::bids(
				info.model,
				missed.chunk,
				info.domain.as_ref(),
				info.tie_seed,
				&excluded,
			)
			.into_iter()
			.map(|(bid, _)| bid)
			.collect();
			let award =
				auction::run(&bids, 1, info.price_cap.saturated_into()).into_iter().next()?;
			T::Experts::note_assigned(&award.expert).ok()?;
			Some(award)
		}

		/// A pipeline that cannot be completed: its miners are freed, unpaid and not
		/// blamed (the one that missed its deadline already was).
		fn abandon(task: TaskId, slots: &mut [SlotOf<T>], pipeline: PipelineIndex) {
			for slot in slots.iter_mut().filter(|slot| slot.pipeline == pipeline) {
				if slot.state.is_pending() {
					T::Experts::note_finished(&slot.expert);
				}
				if slot.state != SlotState::Missed {
					slot.state = SlotState::Abandoned;
				}
			}
			Self::deposit_event(Event::PipelineAbandoned { task, pipeline });
		}

		/// The reveal deadline passed: slots that did not reveal are marked missed (and
		/// reported by `conclude`), and the task concludes on what was revealed.
		fn end_reveal_stage(
			task: TaskId,
			info: TaskOf<T>,
			mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
		) {
			for slot in slots.iter_mut() {
				if let SlotState::Committed(_) = slot.state {
					Self::blame(task, &info, slot);
				}
			}
			Slots::<T>::insert(task, &slots);
			Self::conclude(task, info, slots);
		}

		/// Runs the auction for up to `MaxAssignmentsPerBlock` queued tasks, oldest
		/// first; a task without enough miners goes to the back of the queue.
		fn assign_queued(now: BlockNumberFor<T>) -> Weight {
			let mut queue = Queue::<T>::get();
			if queue.is_empty() {
				return T::DbWeight::get().reads(1);
			}
			let mut weight = T::DbWeight::get().reads_writes(1, 1);
			let rounds = T::MaxAssignmentsPerBlock::get().min(queue.len() as u32);
			let mut waiting = Vec::new();
			for _ in 0..rounds {
				if queue.is_empty() {
					break;
				}
				let task = queue.remove(0);
				let Some(mut info) = Tasks::<T>::get(task) else { continue };
				let chunks = T::Models::chunk_count(info.model).unwrap_or(0);
				weight.saturating_accrue(T::WeightInfo::assign_task(
					chunks,
					T::MaxOffersPerChunk::get(),
				));
				match Self::try_assign(task, &mut info, now) {
					Ok(true) => Tasks::<T>::insert(task, info),
					Ok(false) => waiting.push(task),
					Err(()) => Self::expire(task, info, &[]),
				}
			}
			for task in waiting {
				let _ = queue.try_push(task);
			}
			Queue::<T>::put(queue);
			weight
		}

		/// Removes the prompt, output and evidence of tasks whose retention ended, as
		/// far as `remaining` weight allows.
		pub(crate) fn remove_old_results(now: BlockNumberFor<T>, remaining: Weight) -> Weight {
			let per_task = T::WeightInfo::remove_result(T::MaxSlots::get());
			let mut weight = T::DbWeight::get().reads_writes(1, 1);
			if remaining.any_lt(weight.saturating_add(per_task)) {
				return Weight::zero();
			}
			let mut cursor = RetentionCursor::<T>::get();
			while cursor <= now {
				let next = RetentionEnds::<T>::iter_key_prefix(cursor).next();
				let Some(task) = next else {
					cursor.saturating_inc();
					weight.saturating_accrue(T::DbWeight::get().reads(1));
					if remaining.any_lt(weight.saturating_add(per_task)) {
						break;
					}
					continue;
				};
				if remaining.any_lt(weight.saturating_add(per_task)) {
					break;
				}
				RetentionEnds::<T>::remove(cursor, task);
				Prompts::<T>::remove(task);
				Slots::<T>::remove(task);
				LateMiners::<T>::remove(task);
				let _ = Fingerprints::<T>::clear_prefix(task, T::MaxSlots::get(), None);
				let _ = Outputs::<T>::clear_prefix(task, T::MaxRedundancy::get() as u32, None);
				weight.saturating_accrue(per_task);
				Self::deposit_event(Event::ResultRemoved { task });
			}
			RetentionCursor::<T>::put(cursor);
			weight
		}

		/// A miner's open slots, for its worker.
		pub fn assignments(
			miner: T::AccountId,
		) -> Vec<MinerAssignment<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
			let mut found = Vec::new();
			for task in MinerTasks::<T>::iter_key_prefix(&miner) {
				let Some(info) = Tasks::<T>::get(task) else { continue };
				let chunks = T::Models::chunk_count(info.model).unwrap_or(0);
				let slots = Slots::<T>::get(task);
				let prompt = Prompts::<T>::get(task).map(|p| p.into_inner()).unwrap_or_default();
				for slot in slots.iter().filter(|s| s.expert == miner && s.state.is_pending()) {
					found.push(MinerAssignment {
						task,
						model: info.model,
						pipeline: slot.pipeline,
						chunk: slot.chunk,
						chunks,
						state: slot.state,
						deadline: info.deadline,
						pipeline_experts: slots
							.iter()
							.filter(|s| s.pipeline == slot.pipeline)
							.map(|s| s.expert.clone())
							.collect(),
						prompt: prompt.clone(),
						max_tokens: info.max_tokens,
						sampling: info.sampling,
						threshold: slot.threshold,
					});
				}
			}
			found
		}

		/// A task with its prompt, slots and outputs, for clients.
		pub fn task_details(
			task: TaskId,
		) -> Option<TaskDetails<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
			let info = Tasks::<T>::get(task)?;
			let outputs = Outputs::<T>::iter_prefix(task)
				.map(|(pipeline, out)| OutputView {
					pipeline,
					hash: output_hash(out.prompt_tokens, &out.tokens, &out.text),
					prompt_tokens: out.prompt_tokens,
					tokens: out.tokens.into_inner(),
					text: out.text.into_inner(),
				})
				.collect();
			Some(TaskDetails {
				id: task,
				task: info,
				prompt: Prompts::<T>::get(task).map(|p| p.into_inner()),
				slots: Slots::<T>::get(task).into_inner(),
				outputs,
			})
		}

		/// Invariants: every requester's escrow hold equals the escrow of its open
		/// tasks; the queue holds exactly the queued tasks; every assigned or committed
		/// task has its deadline scheduled; the to-do index matches the pending slots;
		/// the payout account keeps exactly the minimum balance.
		pub fn do_try_state() -> Result<(), polkadot_sdk::sp_runtime::TryRuntimeError> {
			let mut escrow: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
			let queue = Queue::<T>::get();
			let mut pending = 0usize;
			for (id, task) in Tasks::<T>::iter() {
				if task.status.is_open() {
					escrow
						.entry(task.requester.clone())
						.or_default()
						.saturating_accrue(task.escrow);
				}
				ensure!(
					(task.status == TaskStatus::Queued) == queue.contains(&id),
					"queue differs from queued tasks"
				);
				if matches!(
					task.status,
					TaskStatus::Queued | TaskStatus::Assigned | TaskStatus::Committed
				) {
					ensure!(
						Timeouts::<T>::contains_key(task.deadline, id),
						"open task without its deadline"
					);
				}
				for slot in Slots::<T>::get(id).iter() {
					let open = matches!(task.status, TaskStatus::Assigned | TaskStatus::Committed);
					if open && slot.state.is_pending() {
						pending += 1;
						ensure!(
							MinerTasks::<T>::contains_key(&slot.expert, id),
							"pending slot missing from the miner's list"
						);
					}
				}
			}
			for (who, id) in MinerTasks::<T>::iter_keys() {
				let task = Tasks::<T>::get(id).ok_or("miner list names an unknown task")?;
				ensure!(
					matches!(task.status, TaskStatus::Assigned | TaskStatus::Committed)
						&& Slots::<T>::get(id)
							.iter()
							.any(|slot| slot.expert == who && slot.state.is_pending()),
					"miner list names a slot that is not pending"
				);
			}
			let _ = pending;
			for (who, amount) in escrow.iter() {
				ensure!(
					T::Currency::balance_on_hold(&HoldReason::Escrow.into(), who) == *amount,
					"escrow held differs from open tasks"
				);
			}
			ensure!(
				T::Currency::balance(&Self::payout_account()) == T::Currency::minimum_balance(),
				"fees left in the payout account"
			);
			Ok(())
		}
	}
}

impl<T: Config> TaskLedger<T::AccountId> for Pallet<T> {
	fn completed_task(task: TaskId) -> Result<CompletedTask<T::AccountId>, TaskLookupError> {
		let info = Tasks::<T>::get(task).ok_or(TaskLookupError::Unknown)?;
		let accepted = match (&info.status, &info.settlement) {
			(TaskStatus::Completed, Some(Settlement { output_hash: Some(hash), .. })) => *hash,
			_ => return Err(TaskLookupError::NotCompleted),
		};
		let slots = Slots::<T>::get(task);
		if slots.is_empty() {
			return Err(TaskLookupError::Pruned);
		}
		let outputs = Self::pipeline_outputs(&slots, info.pipelines);
		let mut miners: Vec<T::AccountId> = Vec::new();
		for slot in slots.iter() {
			let agreed = outputs.get(slot.pipeline as usize).copied().flatten() == Some(accepted);
			if agreed && !miners.contains(&slot.expert) {
				miners.push(slot.expert.clone());
			}
		}
		Ok(CompletedTask { requester: info.requester, domain: info.domain, miners })
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
			reassignments: 0,
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
				threshold: Zero::zero(),
				assigned_at: now,
				state: SlotState::Revealed(output),
			})
			.collect();
		Slots::<T>::insert(task, BoundedVec::truncate_from(slots));
		task
	}
}
