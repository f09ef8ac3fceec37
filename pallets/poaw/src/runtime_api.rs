//! `PoawApi`: what miners' workers and clients read from the task pallet;
//! `RegistryApi`: the expert and model records a miner's worker reads.

use crate::types::{FeeQuote, MinerAssignment, QuoteError, TaskDetails, TaskId};
use alloc::vec::Vec;
use codec::Codec;
use dllm_primitives::market::{ChunkIndex, ModelId};
use polkadot_sdk::sp_runtime::Perbill;

polkadot_sdk::sp_api::decl_runtime_apis! {
	/// The task pallet's read API. Version 2 adds the recent tasks, version 3 the quote
	/// for several generators (the runtime implements version 3).
	pub trait PoawApi<AccountId, Balance, BlockNumber>
	where
		AccountId: Codec,
		Balance: Codec,
		BlockNumber: Codec,
	{
		/// Slots `miner` still has to commit or reveal, with what its worker needs.
		fn assignments(miner: AccountId) -> Vec<MinerAssignment<AccountId, Balance, BlockNumber>>;
		/// A task with its prompt, slots and outputs (until the retention ends).
		fn task(task: TaskId) -> Option<TaskDetails<AccountId, Balance, BlockNumber>>;
		/// The least `max_fee` for `prompt_tokens` + `max_tokens` tokens on `model` now.
		/// `submit_task` counts a prompt of `n` bytes as `n + 2` tokens.
		fn quote(model: ModelId, prompt_tokens: u32, max_tokens: u32) -> Result<FeeQuote<Balance>, QuoteError>;
		/// The newest tasks still stored (at most `limit`, at most 64), newest first: a
		/// client's view of what the network did lately.
		#[api_version(2)]
		fn recent_tasks(limit: u32) -> Vec<TaskId>;
		/// [`Self::quote`] for a task with `generators` generators (prefill verification:
		/// the verifier checks each; `submit_task_with_generators`).
		#[api_version(3)]
		fn quote_generators(model: ModelId, prompt_tokens: u32, max_tokens: u32, generators: u8) -> Result<FeeQuote<Balance>, QuoteError>;
	}

	/// The registry records a miner's worker reads (so that no node decodes pallet
	/// storage by key): `Expert` and `Model` are the runtime's expert and model records.
	/// Version 2 adds the operator keys and the model list; version 3 the experts serving
	/// each chunk and the experts' reputation scores (the runtime implements version 3).
	#[api_version(2)]
	pub trait RegistryApi<AccountId, Expert, Model>
	where
		AccountId: Codec,
		Expert: Codec,
		Model: Codec,
	{
		/// An expert's record: profile (peer id, price), bond, served chunks and formats.
		fn expert(who: AccountId) -> Option<Expert>;
		/// A model's record: spec (chunks, hashes, numerics) and status.
		fn model(model: ModelId) -> Option<Model>;
		/// The operator key that signs `expert`'s duties besides the expert's own, if it
		/// named one (its stage messages are signed with it too).
		#[api_version(2)]
		fn operator(expert: AccountId) -> Option<AccountId>;
		/// The expert whose duties `operator` signs, if any (how a miner node holding
		/// only an operator key finds its expert).
		#[api_version(2)]
		fn operated_expert(operator: AccountId) -> Option<AccountId>;
		/// Every registered model's id (the OpenAI API lists the active ones).
		#[api_version(2)]
		fn models() -> Vec<ModelId>;
		/// The experts serving a model's chunk, in the order they started.
		#[api_version(3)]
		fn chunk_servers(model: ModelId, chunk: ChunkIndex) -> Vec<AccountId>;
		/// An expert's reputation score now (what the auction weighs its asks by).
		#[api_version(3)]
		fn reputation_score(expert: AccountId) -> Perbill;
	}
}
