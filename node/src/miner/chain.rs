//! What the worker reads from the chain (runtime APIs only) and how it signs and
//! submits its extrinsics.

use super::KEY_TYPE;
use crate::service::FullClient;
use codec::Encode;
use dllm_primitives::market::{ChunkIndex, ModelId, TaskId};
use dllm_runtime::{
	opaque::Block, AccountId, Balance, BlockNumber, Nonce, Runtime, RuntimeCall, SignedPayload,
	UncheckedExtrinsic,
};
use pallet_poaw::{
	runtime_api::{PoawApi, RegistryApi},
	FeeQuote, MinerAssignment, QuoteError, TaskDetails, TaskStatus,
};
use polkadot_sdk::{
	frame_system_rpc_runtime_api::AccountNonceApi,
	sc_transaction_pool,
	sc_transaction_pool_api::{
		error::{Error as PoolError, IntoPoolError},
		InPoolTransaction, TransactionPool, TransactionSource, TransactionStatusStreamFor,
	},
	sp_api::{ApiExt, Core, ProvideRuntimeApi},
	sp_blockchain::HeaderBackend,
	sp_core::{sr25519, Pair as _, H256},
	sp_keystore::KeystorePtr,
	sp_runtime::{
		generic::Era,
		traits::{BlakeTwo256, Hash as _},
		transaction_validity::InvalidTransaction,
		MultiAddress, MultiSignature, OpaqueExtrinsic, Perbill,
	},
};
use std::sync::Arc;

/// A slot as the runtime API lists it.
pub type Assignment = MinerAssignment<AccountId, Balance, BlockNumber>;
/// A task as the runtime API shows it.
pub type TaskView = TaskDetails<AccountId, Balance, BlockNumber>;
/// An expert's registry record.
pub type ExpertRecord = pallet_experts::ExpertInfo<Runtime>;
/// A model's registry record.
pub type ModelRecord = pallet_models::ModelInfo<Runtime>;
/// The node's transaction pool.
pub type Pool = sc_transaction_pool::TransactionPoolHandle<Block, FullClient>;

/// How long a submission waits for the pool's view of the best block (the pool builds
/// it when it has processed the block's import).
const READY_VIEW_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Why the chain could not be read, or an extrinsic not signed or submitted.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
	/// A runtime API call failed (an unknown block, or a runtime without the API).
	#[error("runtime API `{call}` failed: {source}")]
	Api {
		/// The call.
		call: &'static str,
		/// What the client said.
		#[source]
		source: polkadot_sdk::sp_api::ApiError,
	},
	/// The keystore could not sign.
	#[error("signing failed: {0}")]
	Signing(#[from] polkadot_sdk::sp_keystore::Error),
	/// The miner key is no longer in the keystore.
	#[error("the miner key left the keystore")]
	KeyGone,
	/// The signed extrinsic did not decode as an opaque one.
	#[error("encoding the extrinsic failed: {0}")]
	Encoding(#[from] codec::Error),
	/// The signing account cannot pay the transaction fee.
	#[error("{account} cannot pay the transaction fee")]
	CannotPay {
		/// The signing account.
		account: AccountId,
	},
	/// The transaction pool refused the extrinsic.
	#[error("the transaction pool refused the extrinsic (nonce {nonce}): {reason}")]
	Pool {
		/// The nonce it was signed with.
		nonce: Nonce,
		/// The pool's error.
		reason: String,
	},
}

/// A runtime API error as a [`ChainError`] naming `call`.
fn api_failed(call: &'static str) -> impl FnOnce(polkadot_sdk::sp_api::ApiError) -> ChainError {
	move |source| ChainError::Api { call, source }
}

/// Reads the chain at the best block.
#[derive(Clone)]
pub struct ChainView {
	client: Arc<FullClient>,
}

impl ChainView {
	pub fn new(client: Arc<FullClient>) -> Self {
		ChainView { client }
	}

	/// Notifications of the blocks the node imports from now on.
	pub fn imports(&self) -> polkadot_sdk::sc_client_api::ImportNotifications<Block> {
		polkadot_sdk::sc_client_api::BlockchainEvents::import_notification_stream(&*self.client)
	}

	/// The best block's hash and number.
	pub fn best(&self) -> (H256, BlockNumber) {
		let info = self.client.info();
		(info.best_hash, info.best_number)
	}

	/// The last finalized block's hash.
	pub fn finalized(&self) -> H256 {
		self.client.info().finalized_hash
	}

	/// The miner's open slots at `at`.
	pub fn assignments(&self, at: H256, miner: &AccountId) -> Result<Vec<Assignment>, ChainError> {
		self.client.runtime_api().assignments(at, miner.clone()).map_err(api_failed("assignments"))
	}

	/// A task's status at `at` (`None`: unknown task).
	pub fn task_status(&self, at: H256, task: TaskId) -> Result<Option<TaskStatus>, ChainError> {
		Ok(self.task(at, task)?.map(|details| details.task.status))
	}

	/// A task with its prompt, slots and published outputs at `at`.
	pub fn task(&self, at: H256, task: TaskId) -> Result<Option<TaskView>, ChainError> {
		self.client.runtime_api().task(at, task).map_err(api_failed("task"))
	}

	/// The least `max_fee` for `prompt_tokens` + `max_tokens` tokens on `model` at `at`.
	pub fn quote(
		&self,
		at: H256,
		model: ModelId,
		prompt_tokens: u32,
		max_tokens: u32,
		generators: u8,
	) -> Result<Result<FeeQuote<Balance>, QuoteError>, ChainError> {
		let api = self.client.runtime_api();
		if generators == 1 {
			return api.quote(at, model, prompt_tokens, max_tokens).map_err(api_failed("quote"));
		}
		// PoawApi version 3; an older runtime has no quote for several generators.
		api.quote_generators(at, model, prompt_tokens, max_tokens, generators)
			.map_err(api_failed("quote_generators (PoawApi 3)"))
	}

	/// An expert's registry record at `at`.
	pub fn expert(&self, at: H256, who: &AccountId) -> Result<Option<ExpertRecord>, ChainError> {
		RegistryApi::<Block, AccountId, ExpertRecord, ModelRecord>::expert(
			&*self.client.runtime_api(),
			at,
			who.clone(),
		)
		.map_err(api_failed("expert"))
	}

	/// The operator key `expert` named at `at`, if any.
	pub fn operator(&self, at: H256, expert: &AccountId) -> Result<Option<AccountId>, ChainError> {
		RegistryApi::<Block, AccountId, ExpertRecord, ModelRecord>::operator(
			&*self.client.runtime_api(),
			at,
			expert.clone(),
		)
		.map_err(api_failed("operator"))
	}

	/// The expert whose duties `operator` signs at `at`, if any.
	pub fn operated_expert(
		&self,
		at: H256,
		operator: &AccountId,
	) -> Result<Option<AccountId>, ChainError> {
		RegistryApi::<Block, AccountId, ExpertRecord, ModelRecord>::operated_expert(
			&*self.client.runtime_api(),
			at,
			operator.clone(),
		)
		.map_err(api_failed("operated_expert"))
	}

	/// Every registered model's id at `at`.
	pub fn models(&self, at: H256) -> Result<Vec<ModelId>, ChainError> {
		RegistryApi::<Block, AccountId, ExpertRecord, ModelRecord>::models(
			&*self.client.runtime_api(),
			at,
		)
		.map_err(api_failed("models"))
	}

	/// Whether the runtime at `at` offers the version 3 registry API (chunk servers,
	/// reputation scores) and the version 2 task API (recent tasks): a node newer than
	/// its chain's runtime must not call what the runtime lacks.
	pub fn has_network_apis(&self, at: H256) -> Result<bool, ChainError> {
		let api = self.client.runtime_api();
		let version =
			|found: Result<Option<u32>, _>| found.map_err(api_failed("api_version (Core)"));
		let registry = version(
			api.api_version::<dyn RegistryApi<Block, AccountId, ExpertRecord, ModelRecord>>(at),
		)?;
		let poaw =
			version(api.api_version::<dyn PoawApi<Block, AccountId, Balance, BlockNumber>>(at))?;
		Ok(registry.unwrap_or(0) >= 3 && poaw.unwrap_or(0) >= 2)
	}

	/// The experts serving `model`'s chunk `chunk` at `at`, in the order they started.
	pub fn chunk_servers(
		&self,
		at: H256,
		model: ModelId,
		chunk: ChunkIndex,
	) -> Result<Vec<AccountId>, ChainError> {
		RegistryApi::<Block, AccountId, ExpertRecord, ModelRecord>::chunk_servers(
			&*self.client.runtime_api(),
			at,
			model,
			chunk,
		)
		.map_err(api_failed("chunk_servers"))
	}

	/// An expert's reputation score at `at`.
	pub fn reputation_score(&self, at: H256, expert: &AccountId) -> Result<Perbill, ChainError> {
		RegistryApi::<Block, AccountId, ExpertRecord, ModelRecord>::reputation_score(
			&*self.client.runtime_api(),
			at,
			expert.clone(),
		)
		.map_err(api_failed("reputation_score"))
	}

	/// The newest tasks still stored at `at` (at most `limit`), newest first.
	pub fn recent_tasks(&self, at: H256, limit: u32) -> Result<Vec<TaskId>, ChainError> {
		self.client.runtime_api().recent_tasks(at, limit).map_err(api_failed("recent_tasks"))
	}

	/// The client this view reads.
	pub fn client(&self) -> &Arc<FullClient> {
		&self.client
	}

	/// A model's registry record at `at`.
	pub fn model(&self, at: H256, model: ModelId) -> Result<Option<ModelRecord>, ChainError> {
		RegistryApi::<Block, AccountId, ExpertRecord, ModelRecord>::model(
			&*self.client.runtime_api(),
			at,
			model,
		)
		.map_err(api_failed("model"))
	}
}

/// A transaction the pool accepted.
pub struct Submitted {
	/// Its hash.
	pub hash: H256,
	/// Its nonce.
	pub nonce: Nonce,
	/// What becomes of it in the pool (included, or dropped, usurped, invalid).
	pub status: std::pin::Pin<Box<TransactionStatusStreamFor<Pool>>>,
}

/// Signs extrinsics with the miner key (the expert's operator key, or the expert's own)
/// and submits them to the node's pool.
pub struct Submitter {
	client: Arc<FullClient>,
	pool: Arc<Pool>,
	key: SigningKey,
	/// Held from signing to the pool's answer, so that each submission sees the one
	/// before it among the pool's ready transactions.
	submitting: futures::lock::Mutex<()>,
}

/// The key a [`Submitter`] signs with.
pub enum SigningKey {
	/// The miner key in the node's keystore (type `dllm`).
	Keystore { keystore: KeystorePtr, public: sr25519::Public },
	/// A key held in memory (the OpenAI API's requester account).
	Pair(Box<sr25519::Pair>),
}

impl SigningKey {
	fn public(&self) -> sr25519::Public {
		match self {
			SigningKey::Keystore { public, .. } => *public,
			SigningKey::Pair(pair) => pair.public(),
		}
	}

	fn sign(&self, payload: &[u8]) -> Result<sr25519::Signature, ChainError> {
		match self {
			SigningKey::Keystore { keystore, public } => {
				keystore.sr25519_sign(KEY_TYPE, public, payload)?.ok_or(ChainError::KeyGone)
			}
			SigningKey::Pair(pair) => Ok(pair.sign(payload)),
		}
	}
}

impl Submitter {
	pub fn new(client: Arc<FullClient>, pool: Arc<Pool>, key: SigningKey) -> Self {
		Submitter { client, pool, key, submitting: futures::lock::Mutex::new(()) }
	}

	/// The signing account: the expert's operator, or the expert itself.
	pub fn account(&self) -> AccountId {
		AccountId::from(self.key.public())
	}

	/// Signs `payload` (an activation message's [`super::protocol::hop_payload`]) with
	/// the miner key.
	pub fn sign_message(&self, payload: &[u8]) -> Result<[u8; 64], ChainError> {
		self.key.sign(payload).map(|signature| signature.0)
	}

	/// Signs `call` at the best block's runtime and the account's next index (the
	/// chain's nonce, past this account's transactions ready in the pool) and submits
	/// it. A transaction the pool dropped leaves no gap: the next submission reuses its
	/// nonce (N3 in the December security review). Returns the transaction's hash and
	/// nonce.
	pub async fn submit(&self, call: RuntimeCall) -> Result<Submitted, ChainError> {
		let _turn = self.submitting.lock().await;
		let info = self.client.info();
		let best = info.best_hash;
		let (xt, nonce) = self.sign(best, info.best_number, call).await?;
		let hash = BlakeTwo256::hash_of(&xt);
		let status =
			self.pool.submit_and_watch(best, TransactionSource::Local, xt).await.map_err(|e| {
				match e.into_pool_error() {
					Ok(PoolError::InvalidTransaction(InvalidTransaction::Payment)) => {
						ChainError::CannotPay { account: self.account() }
					}
					Ok(other) => ChainError::Pool { nonce, reason: other.to_string() },
					Err(other) => ChainError::Pool { nonce, reason: other.to_string() },
				}
			})?;
		Ok(Submitted { hash, nonce, status })
	}

	/// The nonce after the chain's `chain_nonce` at `at` and this account's transactions
	/// that are ready in the pool's view of `at`. That view, not the pool's newest one:
	/// blocks imported in quick succession can leave the newest view without the
	/// transactions just submitted, and two of them would then get one nonce.
	async fn next_index(&self, at: H256, chain_nonce: Nonce) -> Nonce {
		// Bounded: a view the pool never builds (it skipped the block) must not stall
		// every submission; after the wait the pool answers with its best guess.
		let ready = self.pool.ready_at_with_timeout(at, READY_VIEW_WAIT).await;
		let ready = ready.map(|tx| tx.provides().first().cloned());
		next_index(&self.account(), chain_nonce, ready)
	}

	/// Signs `call` as a transaction valid for [`dllm_runtime::MINER_TX_MORTALITY`]
	/// blocks from `best` (number `best_number`).
	async fn sign(
		&self,
		best: H256,
		best_number: u32,
		call: RuntimeCall,
	) -> Result<(OpaqueExtrinsic, Nonce), ChainError> {
		let info = self.client.info();
		let account = self.account();
		let (version, chain_nonce) = {
			let api = self.client.runtime_api();
			let version = api.version(best).map_err(api_failed("version (Core)"))?;
			let chain_nonce =
				api.account_nonce(best, account.clone()).map_err(api_failed("account_nonce"))?;
			(version, chain_nonce)
		};
		let nonce = self.next_index(best, chain_nonce).await;
		// Born at `best`: a period under 4096 blocks is not quantized, so the era's birth
		// block is the current one (`mortal_era_is_born_at_the_best_block`).
		let era = Era::mortal(dllm_runtime::MINER_TX_MORTALITY, best_number.into());
		let birth = best;
		let extension = dllm_runtime::tx_extension_in_era(nonce, era);
		let genesis = info.genesis_hash;
		let implicit = (
			(),
			version.spec_version,
			version.transaction_version,
			genesis,
			birth,
			(),
			(),
			(),
			None,
			(),
		);
		let payload = SignedPayload::from_raw(call.clone(), extension.clone(), implicit);
		let signature = payload.using_encoded(|bytes| self.key.sign(bytes))?;
		let xt = UncheckedExtrinsic::new_signed(
			call,
			MultiAddress::Id(account),
			MultiSignature::Sr25519(signature),
			extension,
		);
		let opaque = OpaqueExtrinsic::try_from_encoded_extrinsic(&xt.encode()[..])?;
		Ok((opaque, nonce))
	}
}

/// The nonce after `chain_nonce` and the run of `account`'s transactions among `ready`
/// (each one's first `provides` tag, in the pool's order, which is by nonce per
/// sender): a signed transaction provides `(account, nonce)`, SCALE-encoded.
fn next_index(
	account: &AccountId,
	chain_nonce: Nonce,
	ready: impl Iterator<Item = Option<Vec<u8>>>,
) -> Nonce {
	let mut next = chain_nonce;
	for tag in ready.flatten() {
		if tag == (account, next).encode() {
			next = next.saturating_add(1);
		}
	}
	next
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn mortal_era_is_born_at_the_best_block() {
		for best in [0u64, 1, 63, 64, 65, 1_000_003, u32::MAX as u64] {
			let era = Era::mortal(dllm_runtime::MINER_TX_MORTALITY, best);
			assert_eq!(era.birth(best), best);
			assert_eq!(era.death(best), best + dllm_runtime::MINER_TX_MORTALITY);
		}
	}

	#[test]
	fn the_next_index_follows_the_ready_run_and_fills_a_dropped_transactions_gap() {
		let me = AccountId::from([1u8; 32]);
		let other = AccountId::from([2u8; 32]);
		let tag = |who: &AccountId, nonce: Nonce| Some((who, nonce).encode());
		// Two of mine ready after the chain's 5, someone else's between them.
		let ready = vec![tag(&me, 5), tag(&other, 5), tag(&me, 6), None];
		assert_eq!(next_index(&me, 5, ready.into_iter()), 7);
		// Nonce 6 was dropped: 7 waits in the future queue, so 6 is next again (a local
		// counter would have gone on at 8, and everything after it would wait forever).
		let ready = vec![tag(&me, 5)];
		assert_eq!(next_index(&me, 5, ready.into_iter()), 6);
		// Nothing of mine in the pool: the chain's nonce.
		assert_eq!(next_index(&me, 9, vec![tag(&other, 9)].into_iter()), 9);
	}
}
