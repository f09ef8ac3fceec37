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
	/// Something (a served chunk, a task) starts referring to the model; a retired model
	/// cannot be referred to.
	fn acquire(model: ModelId) -> DispatchResult;
	/// A reference from `acquire` ends; a retired model with none left is removed.
	fn release(model: ModelId);
	/// Registers an active model with `chunks` chunks for benchmarks of other pallets.
	#[cfg(feature = "runtime-benchmarks")]
	fn register_for_benchmark(chunks: u32) -> ModelId;
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
	/// The expert takes one more task; fails when it is at capacity or not registered.
	fn note_assigned(expert: &AccountId) -> DispatchResult;
	/// The expert finished (or lost) a task it had taken.
	fn note_finished(expert: &AccountId);
}
