//! The node service: client, transaction pool, network, RPC and consensus.
//!
//! Two consensus setups share one runtime:
//! - real networks (`--chain local`, custom specs): Aura authoring with GRANDPA finality;
//! - development chains (`--dev`): manual seal, a block on every transaction and at least
//!   every [`DEV_BLOCK_INTERVAL`], each finalized at once.

use std::{sync::Arc, time::Duration};

use dllm_runtime::{apis::RuntimeApi, opaque::Block};
use futures::{FutureExt, StreamExt};
use polkadot_sdk::{
	sc_basic_authorship,
	sc_chain_spec::ChainType,
	sc_client_api::{Backend, BlockBackend},
	sc_consensus,
	sc_consensus_aura::{self, ImportQueueParams, SlotProportion, StartAuraParams},
	sc_consensus_grandpa::{self, SharedVoterState},
	sc_consensus_manual_seal::{
		self, consensus::aura::AuraConsensusDataProvider, EngineCommand, ManualSealParams,
	},
	sc_executor, sc_network, sc_offchain,
	sc_service::{self, error::Error as ServiceError, Configuration, TaskManager, WarpSyncConfig},
	sc_telemetry::{self, Telemetry, TelemetryWorker},
	sc_transaction_pool,
	sc_transaction_pool_api::{OffchainTransactionPoolFactory, TransactionPool},
	sp_api::ProvideRuntimeApi,
	sp_blockchain::HeaderBackend,
	sp_consensus_aura::AuraApi,
	sp_consensus_aura::{
		self,
		sr25519::{AuthorityPair as AuraPair, AuthoritySignature as AuraSignature},
		Slot, SlotDuration,
	},
	sp_core::{self, crypto::ByteArray},
	sp_io,
	sp_keystore::KeystorePtr,
	sp_runtime, sp_timestamp,
};

/// The client of a full node.
pub type FullClient = sc_service::TFullClient<
	Block,
	RuntimeApi,
	sc_executor::WasmExecutor<sp_io::SubstrateHostFunctions>,
>;
type FullBackend = sc_service::TFullBackend<Block>;
type FullSelectChain = sc_consensus::LongestChain<FullBackend, Block>;
type GrandpaBlockImport =
	sc_consensus_grandpa::GrandpaBlockImport<FullBackend, Block, FullClient, FullSelectChain>;
type GrandpaLink = sc_consensus_grandpa::LinkHalf<Block, FullClient, FullSelectChain>;

/// GRANDPA justifications are stored at least every this many blocks.
const GRANDPA_JUSTIFICATION_PERIOD: u32 = 512;

/// A `--dev` chain seals a block at least this often, even with no transactions.
pub const DEV_BLOCK_INTERVAL: Duration = Duration::from_secs(2);

/// How blocks are made and finalized on this chain.
// Built once at start-up and moved a few times; its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Consensus {
	/// Aura slots and GRANDPA finality: every network with more than one node.
	AuraGrandpa { block_import: GrandpaBlockImport, link: GrandpaLink },
	/// Manual seal with instant finality: the one-node `--dev` chain.
	DevSeal,
}

/// The parts of a node that subcommands (import, export, revert) need too.
pub type Service = sc_service::PartialComponents<
	FullClient,
	FullBackend,
	FullSelectChain,
	sc_consensus::DefaultImportQueue<Block>,
	sc_transaction_pool::TransactionPoolHandle<Block, FullClient>,
	(Consensus, Option<Telemetry>),
>;

/// Development chains use manual seal; everything else Aura + GRANDPA.
pub fn uses_dev_seal(config: &Configuration) -> bool {
	config.chain_spec.chain_type() == ChainType::Development
}

/// Builds the client, import queue and transaction pool.
pub fn new_partial(config: &Configuration) -> Result<Service, ServiceError> {
	let telemetry = config
		.telemetry_endpoints
		.clone()
		.filter(|x| !x.is_empty())
		.map(|endpoints| -> Result<_, sc_telemetry::Error> {
			let worker = TelemetryWorker::new(16)?;
			let telemetry = worker.handle().new_telemetry(endpoints);
			Ok((worker, telemetry))
		})
		.transpose()?;

	let executor = sc_service::new_wasm_executor::<sp_io::SubstrateHostFunctions>(&config.executor);
	let (client, backend, keystore_container, task_manager) =
		sc_service::new_full_parts::<Block, RuntimeApi, _>(
			config,
			telemetry.as_ref().map(|(_, telemetry)| telemetry.handle()),
			executor,
			Vec::new(),
		)?;
	let client = Arc::new(client);

	let telemetry = telemetry.map(|(worker, telemetry)| {
		task_manager.spawn_handle().spawn("telemetry", None, worker.run());
		telemetry
	});

	let select_chain = sc_consensus::LongestChain::new(backend.clone());

	let transaction_pool = Arc::from(
		sc_transaction_pool::Builder::new(
			task_manager.spawn_essential_handle(),
			client.clone(),
			config.role.is_authority().into(),
		)
		.with_options(config.transaction_pool.clone())
		.with_prometheus(config.prometheus_registry())
		.build(),
	);

	let (import_queue, consensus) = if uses_dev_seal(config) {
		let import_queue = sc_consensus_manual_seal::import_queue(
			Box::new(client.clone()),
			&task_manager.spawn_essential_handle(),
			config.prometheus_registry(),
		);
		(import_queue, Consensus::DevSeal)
	} else {
		let (grandpa_block_import, grandpa_link) = sc_consensus_grandpa::block_import(
			client.clone(),
			GRANDPA_JUSTIFICATION_PERIOD,
			&client,
			select_chain.clone(),
			telemetry.as_ref().map(|x| x.handle()),
		)?;

		let cidp_client = client.clone();
		let import_queue =
			sc_consensus_aura::import_queue::<AuraPair, _, _, _, _, _>(ImportQueueParams {
				block_import: grandpa_block_import.clone(),
				justification_import: Some(Box::new(grandpa_block_import.clone())),
				client: client.clone(),
				create_inherent_data_providers: move |parent_hash, _| {
					let cidp_client = cidp_client.clone();
					async move {
						let slot_duration = sc_consensus_aura::standalone::slot_duration_at(
							&*cidp_client,
							parent_hash,
						)?;
						let timestamp = sp_timestamp::InherentDataProvider::from_system_time();
						let slot =
							sp_consensus_aura::inherents::InherentDataProvider::from_timestamp_and_slot_duration(
								*timestamp,
								slot_duration,
							);
						Ok((slot, timestamp))
					}
				},
				spawner: &task_manager.spawn_essential_handle(),
				registry: config.prometheus_registry(),
				check_for_equivocation: Default::default(),
				telemetry: telemetry.as_ref().map(|x| x.handle()),
				compatibility_mode: Default::default(),
			})?;
		(
			import_queue,
			Consensus::AuraGrandpa { block_import: grandpa_block_import, link: grandpa_link },
		)
	};

	Ok(sc_service::PartialComponents {
		client,
		backend,
		task_manager,
		import_queue,
		keystore_container,
		select_chain,
		transaction_pool,
		other: (consensus, telemetry),
	})
}

/// Builds and starts a full node.
pub fn new_full<
	N: sc_network::NetworkBackend<Block, <Block as sp_runtime::traits::Block>::Hash>,
>(
	config: Configuration,
	miner: Option<crate::miner::MinerCmd>,
	openai: Option<crate::openai::OpenAiCmd>,
) -> Result<TaskManager, ServiceError> {
	let sc_service::PartialComponents {
		client,
		backend,
		mut task_manager,
		import_queue,
		keystore_container,
		select_chain,
		transaction_pool,
		other: (consensus, mut telemetry),
	} = new_partial(&config)?;

	let mut net_config = sc_network::config::FullNetworkConfiguration::<
		Block,
		<Block as sp_runtime::traits::Block>::Hash,
		N,
	>::new(&config.network, config.prometheus_registry().cloned());
	let metrics = N::register_notification_metrics(config.prometheus_registry());

	// The miner worker checks its key and weights before anything starts, and brings
	// its activations protocol to the network.
	let miner = match &miner {
		Some(cmd) => {
			let (prepared, protocol) =
				crate::miner::prepare::<Block, N>(&config, &keystore_container.keystore(), cmd)?;
			net_config.add_request_response_protocol(protocol);
			Some(prepared)
		}
		None => None,
	};
	// Every node speaks the token protocol: miners publish their generations' tokens,
	// and any node fetches them for its RPC clients (`dllm_subscribeTask`).
	let token_streams = miner.as_ref().map(|_| Arc::new(crate::tokens::TokenStreams::default()));
	let (token_requests, token_inbound) = match miner {
		Some(_) => {
			let (sender, receiver) = async_channel::bounded(64);
			(Some(receiver), Some(sender))
		}
		None => (None, None),
	};
	net_config.add_request_response_protocol(N::request_response_config(
		crate::tokens::protocol_name(),
		Vec::new(),
		crate::tokens::MAX_REQUEST_BYTES,
		crate::tokens::MAX_RESPONSE_BYTES,
		crate::tokens::REQUEST_TIMEOUT,
		token_inbound,
	));
	let peer_store_handle = net_config.peer_store_handle();

	let genesis_hash = client
		.block_hash(0)
		.ok()
		.flatten()
		.ok_or_else(|| ServiceError::Other("the genesis block is missing".into()))?;
	let grandpa_protocol_name =
		sc_consensus_grandpa::protocol_standard_name(&genesis_hash, &config.chain_spec);

	// GRANDPA's gossip protocol is registered only where GRANDPA runs.
	let grandpa_network = match &consensus {
		Consensus::AuraGrandpa { link, .. } => {
			let (protocol_config, notification_service) =
				sc_consensus_grandpa::grandpa_peers_set_config::<_, N>(
					grandpa_protocol_name.clone(),
					metrics.clone(),
					peer_store_handle,
				);
			net_config.add_notification_protocol(protocol_config);
			let warp_sync = Arc::new(sc_consensus_grandpa::warp_proof::NetworkProvider::new(
				backend.clone(),
				link.shared_authority_set().clone(),
				Vec::default(),
			));
			Some((notification_service, warp_sync))
		}
		Consensus::DevSeal => None,
	};
	let warp_sync_config = grandpa_network
		.as_ref()
		.map(|(_, warp_sync)| WarpSyncConfig::WithProvider(warp_sync.clone()));

	let (network, system_rpc_tx, tx_handler_controller, sync_service, _bitswap) =
		sc_service::build_network(sc_service::BuildNetworkParams {
			config: &config,
			net_config,
			client: client.clone(),
			transaction_pool: transaction_pool.clone(),
			spawn_handle: task_manager.spawn_handle(),
			spawn_essential_handle: task_manager.spawn_essential_handle(),
			import_queue,
			block_announce_validator_builder: None,
			warp_sync_config,
			block_relay: None,
			metrics,
			gap_sync_body_policy: None,
		})?;

	if config.offchain_worker.enabled {
		let offchain_workers =
			sc_offchain::OffchainWorkers::new(sc_offchain::OffchainWorkerOptions {
				runtime_api_provider: client.clone(),
				is_validator: config.role.is_authority(),
				keystore: Some(keystore_container.keystore()),
				offchain_db: backend.offchain_storage(),
				transaction_pool: Some(OffchainTransactionPoolFactory::new(
					transaction_pool.clone(),
				)),
				network_provider: Arc::new(network.clone()),
				enable_http_requests: true,
				custom_extensions: |_| vec![],
			})?;
		task_manager.spawn_handle().spawn(
			"offchain-workers-runner",
			"offchain-worker",
			offchain_workers.run(client.clone(), task_manager.spawn_handle()).boxed(),
		);
	}

	if let (Some(streams), Some(requests)) = (&token_streams, token_requests) {
		task_manager.spawn_handle().spawn(
			"dllm-tokens",
			Some("dllm-miner"),
			streams.clone().serve(requests, task_manager.spawn_handle()),
		);
	}
	if let (Some(prepared), Some(streams)) = (miner, &token_streams) {
		crate::miner::start(
			prepared,
			crate::miner::NodeParts {
				client: client.clone(),
				pool: transaction_pool.clone(),
				keystore: keystore_container.keystore(),
				network: network.clone(),
				spawner: task_manager.spawn_handle(),
				essential: task_manager.spawn_essential_handle(),
				registry: config.prometheus_registry().cloned(),
				data_path: config.data_path.clone(),
				token_streams: streams.clone(),
			},
		)?;
	}

	let role = config.role;
	let force_authoring = config.force_authoring;
	let name = config.network.node_name.clone();
	let enable_grandpa = !config.disable_grandpa;
	let prometheus_registry = config.prometheus_registry().cloned();

	// Shared by the GRANDPA voter, which reports its rounds into it, and the RPC.
	let shared_voter_state = SharedVoterState::empty();
	let grandpa_rpc = match &consensus {
		Consensus::AuraGrandpa { link, .. } => Some((
			link.shared_authority_set().clone(),
			link.justification_stream(),
			sc_consensus_grandpa::FinalityProofProvider::new_for_service(
				backend.clone(),
				Some(link.shared_authority_set().clone()),
			),
		)),
		Consensus::DevSeal => None,
	};

	let rpc_extensions_builder = {
		let client = client.clone();
		let pool = transaction_pool.clone();
		let shared_voter_state = shared_voter_state.clone();
		let tasks = crate::rpc::TaskRpc::new(client.clone(), network.clone(), token_streams);
		if let Some(cmd) = &openai {
			let parts = crate::openai::NodeParts {
				client: client.clone(),
				pool: transaction_pool.clone(),
				tasks: tasks.clone(),
				spawner: task_manager.spawn_handle(),
				dev: config.chain_spec.chain_type() == sc_service::ChainType::Development,
			};
			crate::openai::start(cmd, parts).map_err(ServiceError::Other)?;
		}
		Box::new(move |subscription_executor| {
			let grandpa = grandpa_rpc.as_ref().map(
				|(shared_authority_set, justification_stream, finality_provider)| {
					crate::rpc::GrandpaDeps {
						shared_voter_state: shared_voter_state.clone(),
						shared_authority_set: shared_authority_set.clone(),
						justification_stream: justification_stream.clone(),
						subscription_executor,
						finality_provider: finality_provider.clone(),
					}
				},
			);
			let deps = crate::rpc::FullDeps {
				client: client.clone(),
				pool: pool.clone(),
				tasks: tasks.clone(),
				grandpa,
			};
			crate::rpc::create_full(deps).map_err(Into::into)
		})
	};

	let _rpc_handlers = sc_service::spawn_tasks(sc_service::SpawnTasksParams {
		network: network.clone(),
		client: client.clone(),
		keystore: keystore_container.keystore(),
		task_manager: &mut task_manager,
		transaction_pool: transaction_pool.clone(),
		rpc_builder: rpc_extensions_builder,
		backend,
		system_rpc_tx,
		tx_handler_controller,
		sync_service: sync_service.clone(),
		config,
		telemetry: telemetry.as_mut(),
		tracing_execute_block: None,
	})?;

	let proposer_factory = sc_basic_authorship::ProposerFactory::new(
		task_manager.spawn_handle(),
		client.clone(),
		transaction_pool.clone(),
		prometheus_registry.as_ref(),
		telemetry.as_ref().map(|x| x.handle()),
	);
	let slot_duration = sc_consensus_aura::slot_duration(&*client)?;

	match consensus {
		// On a dev chain only the authority's node seals; the others (miners joining
		// with `--chain dev`) follow it.
		Consensus::DevSeal
			if !holds_aura_authority_key(&client, &keystore_container.keystore()) =>
		{
			log::info!(
				"dev chain: no Aura authority key in the keystore, following the sealing node"
			);
		}
		Consensus::DevSeal => {
			start_dev_seal(
				&task_manager,
				client,
				select_chain,
				transaction_pool,
				proposer_factory,
				slot_duration,
			);
		}
		Consensus::AuraGrandpa { block_import, link } => {
			if role.is_authority() {
				let aura = sc_consensus_aura::start_aura::<AuraPair, _, _, _, _, _, _, _, _, _, _>(
					StartAuraParams {
						slot_duration,
						client,
						select_chain,
						block_import,
						proposer_factory,
						create_inherent_data_providers: move |_, ()| async move {
							let timestamp = sp_timestamp::InherentDataProvider::from_system_time();
							let slot =
								sp_consensus_aura::inherents::InherentDataProvider::from_timestamp_and_slot_duration(
									*timestamp,
									slot_duration,
								);
							Ok((slot, timestamp))
						},
						force_authoring,
						backoff_authoring_blocks: Option::<()>::None,
						keystore: keystore_container.keystore(),
						sync_oracle: sync_service.clone(),
						justification_sync_link: sync_service.clone(),
						block_proposal_slot_portion: SlotProportion::new(2f32 / 3f32),
						max_block_proposal_slot_portion: None,
						telemetry: telemetry.as_ref().map(|x| x.handle()),
						compatibility_mode: Default::default(),
					},
				)?;
				// Authoring is essential: if it fails, the node stops.
				task_manager.spawn_essential_handle().spawn_blocking(
					"aura",
					Some("block-authoring"),
					aura,
				);
			}

			if enable_grandpa {
				let Some((notification_service, _)) = grandpa_network else {
					return Err(ServiceError::Other("GRANDPA network not configured".into()));
				};
				// Only authorities vote; other full nodes follow with the voter's
				// data-availability guarantees but no keys.
				let keystore =
					if role.is_authority() { Some(keystore_container.keystore()) } else { None };
				let grandpa_config = sc_consensus_grandpa::Config {
					gossip_duration: Duration::from_millis(333),
					justification_generation_period: GRANDPA_JUSTIFICATION_PERIOD,
					name: Some(name),
					observer_enabled: false,
					keystore,
					local_role: role,
					telemetry: telemetry.as_ref().map(|x| x.handle()),
					protocol_name: grandpa_protocol_name,
				};
				let grandpa_params = sc_consensus_grandpa::GrandpaParams {
					config: grandpa_config,
					link,
					network,
					sync: Arc::new(sync_service),
					notification_service,
					voting_rule: sc_consensus_grandpa::VotingRulesBuilder::default().build(),
					prometheus_registry,
					shared_voter_state,
					telemetry: telemetry.as_ref().map(|x| x.handle()),
					offchain_tx_pool_factory: OffchainTransactionPoolFactory::new(transaction_pool),
				};
				task_manager.spawn_essential_handle().spawn_blocking(
					"grandpa-voter",
					None,
					sc_consensus_grandpa::run_grandpa_voter(grandpa_params)?,
				);
			}
		}
	}

	Ok(task_manager)
}

/// Whether the keystore holds the key of one of the best block's Aura authorities.
fn holds_aura_authority_key(client: &FullClient, keystore: &KeystorePtr) -> bool {
	let best = client.info().best_hash;
	let Ok(authorities) = client.runtime_api().authorities(best) else { return false };
	authorities.iter().any(|authority| {
		keystore.has_keys(&[(authority.to_raw_vec(), sp_core::crypto::key_types::AURA)])
	})
}

/// Starts manual seal for `--dev`: a block whenever a transaction enters the pool and at
/// least every [`DEV_BLOCK_INTERVAL`], each finalized immediately.
fn start_dev_seal(
	task_manager: &TaskManager,
	client: Arc<FullClient>,
	select_chain: FullSelectChain,
	transaction_pool: Arc<sc_transaction_pool::TransactionPoolHandle<Block, FullClient>>,
	proposer_factory: sc_basic_authorship::ProposerFactory<
		sc_transaction_pool::TransactionPoolHandle<Block, FullClient>,
		FullClient,
	>,
	slot_duration: SlotDuration,
) {
	let heartbeat = futures::stream::unfold((), |()| async {
		futures_timer::Delay::new(DEV_BLOCK_INTERVAL).await;
		Some(((), ()))
	});
	let new_transactions = transaction_pool.import_notification_stream().map(|_| ());
	let commands_stream = futures::stream::select(heartbeat, new_transactions).map(|()| {
		EngineCommand::SealNewBlock {
			create_empty: true,
			finalize: true,
			parent_hash: None,
			sender: None,
		}
	});

	let cidp_client = client.clone();
	let seal = sc_consensus_manual_seal::run_manual_seal(ManualSealParams {
		block_import: client.clone(),
		env: proposer_factory,
		client,
		pool: transaction_pool,
		commands_stream: Box::pin(commands_stream),
		select_chain,
		consensus_data_provider: Some(Box::new(AuraConsensusDataProvider::new_with_slot_duration(
			slot_duration,
		))),
		create_inherent_data_providers: move |parent_hash, ()| {
			let client = cidp_client.clone();
			async move {
				let timestamp = dev_block_timestamp(&client, parent_hash, slot_duration)?;
				Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
					sp_timestamp::InherentDataProvider::new(timestamp.into()),
				)
			}
		},
	});
	task_manager.spawn_essential_handle().spawn_blocking("dev-seal", Some("block-authoring"), seal);
}

/// The timestamp of the next `--dev` block.
///
/// The runtime's Aura allows one block per 6-second slot and its timestamp pallet wants
/// at least half a slot between blocks, so each dev block takes the later of the current
/// slot and the parent's slot + 1. When blocks come faster than slots (every 2 s with no
/// traffic), chain time runs ahead of wall-clock time; deadlines in this chain are in
/// blocks, so nothing depends on it.
fn dev_block_timestamp(
	client: &FullClient,
	parent_hash: <Block as sp_runtime::traits::Block>::Hash,
	slot_duration: SlotDuration,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
	let parent = client
		.header(parent_hash)?
		.ok_or_else(|| format!("parent block {parent_hash} is not in the database"))?;
	let parent_slot: Slot =
		sc_consensus_aura::standalone::find_pre_digest::<Block, AuraSignature>(&parent)
			.map_err(|e| format!("parent block has no Aura slot: {e}"))?;
	let slot_millis = slot_duration.as_millis();
	let now_slot = sp_timestamp::Timestamp::current().as_millis() / slot_millis;
	let next_slot = now_slot.max(u64::from(parent_slot) + 1);
	Ok(next_slot * slot_millis)
}
