//! The node's RPC extensions: account nonces (`system_accountNextIndex`, `system_dryRun`),
//! fee queries (`payment_queryInfo`), a task's streamed tokens (`dllm_subscribeTask`,
//! [`tasks`]) and, where GRANDPA runs, its round state, finality proofs and
//! justifications (`grandpa_roundState`, `grandpa_proveFinality`,
//! `grandpa_subscribeJustifications`: what light clients, bridges and validators watching
//! their votes read). Standard Substrate RPCs come from sc-service.

pub mod tasks;

pub use tasks::TaskRpc;

use std::sync::Arc;

use dllm_runtime::{opaque::Block, AccountId, Balance, BlockNumber, Hash, Nonce};
use jsonrpsee::RpcModule;
use polkadot_sdk::{
	pallet_transaction_payment_rpc::{TransactionPayment, TransactionPaymentApiServer},
	sc_consensus_grandpa::{
		FinalityProofProvider, GrandpaJustificationStream, SharedAuthoritySet, SharedVoterState,
	},
	sc_consensus_grandpa_rpc::{Grandpa, GrandpaApiServer},
	sc_rpc::SubscriptionTaskExecutor,
	sc_service::TFullBackend,
	sc_transaction_pool_api::TransactionPool,
	sp_api::ProvideRuntimeApi,
	sp_block_builder::BlockBuilder,
	sp_blockchain::{Error as BlockChainError, HeaderBackend, HeaderMetadata},
	substrate_frame_rpc_system::{System, SystemApiServer},
	*,
};

/// What the RPC extensions need.
pub struct FullDeps<C, P> {
	/// The client.
	pub client: Arc<C>,
	/// The transaction pool.
	pub pool: Arc<P>,
	/// The task RPC.
	pub tasks: TaskRpc,
	/// GRANDPA's state, on chains that finalize with it (not the `--dev` chain).
	pub grandpa: Option<GrandpaDeps>,
}

/// What GRANDPA's RPC reads.
pub struct GrandpaDeps {
	/// The voter's rounds and votes.
	pub shared_voter_state: SharedVoterState,
	/// The authority set and its pending changes.
	pub shared_authority_set: SharedAuthoritySet<Hash, BlockNumber>,
	/// Each block finalized, with its justification.
	pub justification_stream: GrandpaJustificationStream<Block>,
	/// Runs the justification subscriptions.
	pub subscription_executor: SubscriptionTaskExecutor,
	/// Proves a block's finality to a light client.
	pub finality_provider: Arc<FinalityProofProvider<TFullBackend<Block>, Block>>,
}

/// Builds the RPC extensions of a full node.
pub fn create_full<C, P>(
	deps: FullDeps<C, P>,
) -> Result<RpcModule<()>, Box<dyn std::error::Error + Send + Sync>>
where
	C: ProvideRuntimeApi<Block>
		+ HeaderBackend<Block>
		+ HeaderMetadata<Block, Error = BlockChainError>
		+ Send
		+ Sync
		+ 'static,
	C::Api: substrate_frame_rpc_system::AccountNonceApi<Block, AccountId, Nonce>,
	C::Api: pallet_transaction_payment_rpc::TransactionPaymentRuntimeApi<Block, Balance>,
	C::Api: BlockBuilder<Block>,
	P: TransactionPool + 'static,
{
	let mut module = RpcModule::new(());
	let FullDeps { client, pool, tasks, grandpa } = deps;

	module.merge(System::new(client.clone(), pool).into_rpc())?;
	module.merge(TransactionPayment::new(client).into_rpc())?;
	module.merge(tasks::DllmTaskApiServer::into_rpc(tasks))?;
	if let Some(GrandpaDeps {
		shared_voter_state,
		shared_authority_set,
		justification_stream,
		subscription_executor,
		finality_provider,
	}) = grandpa
	{
		module.merge(
			Grandpa::new(
				subscription_executor,
				shared_authority_set,
				shared_voter_state,
				justification_stream,
				finality_provider,
			)
			.into_rpc(),
		)?;
	}

	Ok(module)
}
