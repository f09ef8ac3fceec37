//! What the market pallets (models, experts, and later tasks) share: model and chunk
//! identifiers, the model lifecycle, and the traits through which one pallet uses
//! another without depending on its crate.

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use polkadot_sdk::{
	sp_core::{ConstU32, H256},
	sp_runtime::{BoundedVec, DispatchError, DispatchResult, Perbill},
};
use scale_info::TypeInfo;

/// Index of a model in the registry.
pub type ModelId = u32;
/// Index of a chunk (a contiguous layer range) within its model's chunking.
pub type ChunkIndex = u32;
/// Index of a task in the task pallet.
pub type TaskId = u64;

/// Longest domain tag, in bytes (e.g. `medicine`, `code/rust`).
pub const MAX_DOMAIN_LEN: u32 = 32;
/// A domain a fine-tuned model or an expert is good at, as UTF-8 bytes.
pub type Domain = BoundedVec<u8, ConstU32<MAX_DOMAIN_LEN>>;

/// Where a model stands in its life.
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
	serde::Serialize,
	serde::Deserialize,
)]
pub enum ModelStatus {
	/// Registered; miners may start serving its chunks, tasks may not use it yet.
	Proposed,
	/// Takes new tasks.
	Active,
	/// Takes no new tasks or miners; running tasks finish.
	Deprecated,
	/// Out of use; removed from storage once nothing refers to it.
	Retired,
}

impl ModelStatus {
	/// Whether a miner may start serving the model's chunks.
	pub fn accepts_miners(self) -> bool {
		matches!(self, ModelStatus::Proposed | ModelStatus::Active)
	}
}

/// The model registry, as the expert and task pallets see it.
pub trait ModelRegistry {
	/// The model's status, or `None` if it is not registered.
	fn status(model: ModelId) -> Option<ModelStatus>;
	/// Number of chunks of the model.
	fn chunk_count(model: ModelId) -> Option<u32>;
	/// The registered weight hash of one chunk; an error names an unknown model or chunk.
	fn chunk_weights_hash(model: ModelId, chunk: ChunkIndex) -> Result<H256, DispatchError>;
	/// Number of layers in each chunk, in chunk order.
	fn chunk_layers(model: ModelId) -> Option<Vec<u32>>;
	/// How long a task's context and output may be.
	fn limits(model: ModelId) -> Option<ModelLimits>;
	/// Whether miners may compute the model's chunks in `format`.
	fn accepts_format(model: ModelId, format: NumericFormat) -> bool;
	/// The fingerprint parameters and tolerances under which work computed in `format`
	/// (or a tighter format) is compared, if the model accepts `format`.
	fn verification(
		model: ModelId,
		format: NumericFormat,
	) -> Option<dllm_fingerprint::VerificationParams>;
	/// Something (a served chunk, a task) starts referring to the model; a retired model
	/// cannot be referred to.
	fn acquire(model: ModelId) -> DispatchResult;
	/// A reference from `acquire` ends; a retired model with none left is removed.
	fn release(model: ModelId);
	/// Registers an active model with `chunks` chunks for benchmarks of other pallets.
	#[cfg(feature = "runtime-benchmarks")]
	fn register_for_benchmark(chunks: u32) -> ModelId;
}

/// The number format a miner computes a chunk in (weights and activations).
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	PartialOrd,
	Ord,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
	serde::Serialize,
	serde::Deserialize,
)]
pub enum NumericFormat {
	/// 32-bit floats.
	F32,
	/// IEEE half precision.
	F16,
	/// bfloat16 (8-bit exponent, 7-bit mantissa): the noisiest, so the loosest
	/// tolerance. Formats order from the tightest to the loosest.
	Bf16,
}

impl NumericFormat {
	/// The name `--dtype` and the inference engine use (`f32`, `f16`, `bf16`).
	pub fn name(self) -> &'static str {
		match self {
			NumericFormat::F32 => "f32",
			NumericFormat::F16 => "f16",
			NumericFormat::Bf16 => "bf16",
		}
	}

	/// The format of a `--dtype` name.
	pub fn from_name(name: &str) -> Option<Self> {
		[NumericFormat::F32, NumericFormat::F16, NumericFormat::Bf16]
			.into_iter()
			.find(|format| format.name() == name)
	}
}

/// How much one task of a model may hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ModelLimits {
	/// Longest context (prompt plus output) in tokens.
	pub max_context: u32,
	/// Most bytes one generated token adds to the decoded text.
	pub max_token_bytes: u32,
}

/// An expert offering to run a chunk, as the task pallet's auction sees it.
#[derive(Clone, PartialEq, Eq, Encode, Decode, TypeInfo, Debug)]
pub struct ChunkOffer<AccountId, Balance> {
	/// The expert's account.
	pub expert: AccountId,
	/// Asking price per token per layer.
	pub price_per_token_layer: Balance,
	/// How many more tasks it takes now.
	pub free_capacity: u32,
	/// Its bond plus the stake delegated to it.
	pub stake: Balance,
	/// The format it declared it computes the chunk in.
	pub format: NumericFormat,
}

/// The expert registry, as the task pallet uses it.
pub trait ExpertRegistry<AccountId, Balance> {
	/// Experts serving a chunk with room for more work and at least the minimum bond.
	fn offers(model: ModelId, chunk: ChunkIndex) -> Vec<ChunkOffer<AccountId, Balance>>;
	/// Pays `amount` from `payer`'s free balance: the expert keeps its commission and the
	/// rest is shared pro rata between its bond and its delegators.
	fn pay(expert: &AccountId, payer: &AccountId, amount: Balance) -> DispatchResult;
	/// Takes `fraction` of the expert's bond and of each delegation to the community
	/// fund; returns the amount taken.
	fn slash(expert: &AccountId, fraction: Perbill) -> Balance;
	/// As [`Self::slash`], but the amount goes to `beneficiary` (which then pays those who
	/// settled the dispute, and the community fund the rest).
	fn slash_to(expert: &AccountId, fraction: Perbill, beneficiary: &AccountId) -> Balance;
	/// The expert takes one more task; fails when it is at capacity or not registered.
	fn note_assigned(expert: &AccountId) -> DispatchResult;
	/// The expert finished (or lost) a task it had taken.
	fn note_finished(expert: &AccountId);
	/// The key `expert` named to sign its duties (commits, reveals, silence claims) in
	/// its place, so that its miner node never holds the key that controls its stake.
	fn operator(expert: &AccountId) -> Option<AccountId>;
	/// The expert whose duties `operator` signs, if it is one's operator.
	fn operated_expert(operator: &AccountId) -> Option<AccountId>;
	/// Registers `who` (funded here) as an expert serving `chunk` of `model` at `price`,
	/// for benchmarks of other pallets.
	#[cfg(feature = "runtime-benchmarks")]
	fn register_for_benchmark(who: &AccountId, model: ModelId, chunk: ChunkIndex, price: Balance);
}

/// How one miner's part in a task ended, as the reputation pallet is told.
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
pub enum TaskOutcome {
	/// Its work was part of the accepted result.
	Verified,
	/// It missed a commit or reveal deadline.
	MissedDeadline,
	/// Its result lost a vote or a dispute.
	Outvoted,
}

/// Quality of experts for the task pallet's auction, and what it reports back.
pub trait ExpertQuality<AccountId> {
	/// The expert's quality in (0, 1] (for `domain` when given), or `None` when it must
	/// not be assigned work now (its reputation is below the threshold).
	fn quality(expert: &AccountId, domain: Option<&Domain>) -> Option<Perbill>;
	/// How a task ended for the expert.
	fn report(expert: &AccountId, domain: Option<&Domain>, outcome: TaskOutcome);
}

/// Quality of an expert nobody knows anything about: the prior mean of a
/// beta(1, 1) reputation.
pub const NEUTRAL_QUALITY: Perbill = Perbill::from_percent(50);

/// Every expert has the neutral quality and reports go nowhere: the runtime's choice
/// until the reputation pallet exists.
impl<AccountId> ExpertQuality<AccountId> for () {
	fn quality(_: &AccountId, _: Option<&Domain>) -> Option<Perbill> {
		Some(NEUTRAL_QUALITY)
	}
	fn report(_: &AccountId, _: Option<&Domain>, _: TaskOutcome) {}
}

/// A completed task as the reputation pallet sees it when its requester rates it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CompletedTask<AccountId> {
	/// Who asked and paid.
	pub requester: AccountId,
	/// The domain it asked for, if any.
	pub domain: Option<Domain>,
	/// The miners whose work the accepted result contains, each once.
	pub miners: Vec<AccountId>,
}

/// Why a task has no completed result to rate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TaskLookupError {
	/// No such task.
	Unknown,
	/// The task is open, disputed or expired.
	NotCompleted,
	/// Its result was removed after the retention period.
	Pruned,
}

/// The task pallet, as the reputation pallet uses it.
pub trait TaskLedger<AccountId> {
	/// A completed task whose result is still on chain.
	fn completed_task(task: TaskId) -> Result<CompletedTask<AccountId>, TaskLookupError>;
}
