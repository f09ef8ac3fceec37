//! The miner worker (`dllm-node --miner`): runs this expert's chunks of a registered
//! model for the tasks the chain assigns it, passes activations to the next chunk's
//! miner over sc-network, and commits and reveals its results on chain.
//!
//! - [`chain`]: what it reads from the chain, and how it signs and submits.
//! - [`compute`]: the loaded chunks and one pass through one of them.
//! - [`protocol`]: the `/dllm/activations/1` request-response messages.
//! - [`worker`]: block following, pipelines, requests, commits and reveals.
//! - [`store`]: results kept on disk until revealed.
//! - [`metrics`]: Prometheus metrics.

pub mod chain;
pub mod compute;
pub mod metrics;
pub mod protocol;
pub mod store;
pub mod worker;

use crate::service::FullClient;
use chain::{ChainView, Submitter};
use compute::ServedModel;
use dllm_inference::{
	device::{parse_device, parse_dtype},
	tokenizer::PromptTokenizer,
	weight_hash, LayerRange, ModelDir, Shard,
};
use dllm_primitives::market::{ChunkIndex, ModelId};
use dllm_runtime::AccountId;
use polkadot_sdk::{
	sc_network::{
		request_responses::IncomingRequest, service::traits::NetworkService, NetworkBackend,
	},
	sc_service::{Configuration, SpawnTaskHandle},
	sc_transaction_pool,
	sp_core::{crypto::KeyTypeId, sr25519},
	sp_keystore::KeystorePtr,
	sp_runtime::traits::Block as BlockT,
	substrate_prometheus_endpoint::Registry,
};
use std::{
	collections::BTreeMap,
	path::PathBuf,
	sync::{Arc, Mutex},
};

/// Log target of the worker.
pub const LOG_TARGET: &str = "dllm-miner";

/// The miner key's type in the keystore (`dllm-node key insert --key-type dllm`).
pub const KEY_TYPE: KeyTypeId = KeyTypeId(*b"dllm");

/// Miner options of `dllm-node`.
#[derive(Debug, Clone, clap::Args)]
pub struct MinerCmd {
	/// Run the miner worker: serve this node's expert's chunks of the model in
	/// `--model-dir` for the tasks the chain assigns it. The expert's key (type `dllm`,
	/// sr25519) must be in the keystore: `dllm-node key insert --key-type dllm --scheme
	/// sr25519 --suri ...`, or a dev account flag (`--bob`) on a dev chain.
	#[arg(long, requires = "model_dir")]
	pub miner: bool,

	/// The model's Hugging Face directory (config.json, tokenizer.json, safetensors).
	#[arg(long, value_name = "DIR", requires = "miner")]
	pub model_dir: Option<PathBuf>,

	/// Chunks to serve: `auto` (every chunk the expert registered) or indices (`0,2`).
	#[arg(long, value_name = "auto|LIST", default_value = "auto", requires = "miner")]
	pub serve_chunks: String,

	/// Where the chunks run: `cpu` or `cuda:N` (a build with `--features cuda`).
	#[arg(long, value_name = "cpu|cuda:N", default_value = "cpu", requires = "miner")]
	pub device: String,

	/// Compute dtype: f32, f16 or bf16 (bf16 on CUDA only). Miners of one task must use
	/// the same dtype for their outputs to agree.
	#[arg(long, value_name = "DTYPE", default_value = "f32", requires = "miner")]
	pub dtype: String,

	/// Test only: distort every activation this miner outputs (a dishonest miner).
	#[arg(long, hide = true, requires = "miner")]
	pub miner_perturb_activations: bool,
}

/// Which chunks `--serve-chunks` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeChunks {
	/// Every chunk the expert registered for the model.
	Auto,
	/// These chunk indices.
	Only(Vec<ChunkIndex>),
}

impl std::str::FromStr for ServeChunks {
	type Err = String;

	fn from_str(text: &str) -> Result<Self, String> {
		if text.trim() == "auto" {
			return Ok(ServeChunks::Auto);
		}
		let chunks = text
			.split(',')
			.map(|part| {
				part.trim().parse::<ChunkIndex>().map_err(|_| {
					format!(
						"--serve-chunks: {part:?} is not a chunk index (give `auto` or a \
						 list such as `0,2`)"
					)
				})
			})
			.collect::<Result<Vec<_>, _>>()?;
		Ok(ServeChunks::Only(chunks))
	}
}

/// What `prepare` found and loaded before the network starts.
pub struct Prepared {
	public: sr25519::Public,
	account: AccountId,
	model: ServedModel,
	registered_peer: Vec<u8>,
	requests: async_channel::Receiver<IncomingRequest>,
}

type Error = polkadot_sdk::sc_service::Error;

fn fail(message: impl Into<String>) -> Error {
	Error::Other(message.into())
}

/// Finds the miner key, checks the model directory against the registry and loads the
/// served chunks; returns the request-response protocol to register with the network.
pub fn prepare<Block: BlockT, N: NetworkBackend<Block, Block::Hash>>(
	config: &Configuration,
	client: &Arc<FullClient>,
	keystore: &KeystorePtr,
	cmd: &MinerCmd,
) -> Result<(Prepared, N::RequestResponseProtocolConfig), Error> {
	let dir_path = cmd.model_dir.clone().ok_or_else(|| fail("--miner needs --model-dir DIR"))?;
	let serve: ServeChunks = cmd.serve_chunks.parse().map_err(fail)?;
	let chain = ChainView::new(client.clone());
	let (best, number) = chain.best();

	// The key: one in the keystore, or the dev account's on a dev chain.
	let mut keys = keystore.sr25519_public_keys(KEY_TYPE);
	if keys.is_empty() {
		if let Some(seed) = &config.dev_key_seed {
			keystore
				.sr25519_generate_new(KEY_TYPE, Some(seed))
				.map_err(|e| fail(format!("cannot add the dev miner key: {e}")))?;
			keys = keystore.sr25519_public_keys(KEY_TYPE);
		}
	}
	if keys.is_empty() {
		return Err(fail(
			"--miner: the keystore holds no miner key (type `dllm`); insert the expert's key \
			 with `dllm-node key insert --key-type dllm --scheme sr25519 --suri <secret> \
			 --chain <chain> --base-path <path>` or, on a dev chain, pass a dev account flag \
			 such as --bob",
		));
	}
	let mut found = None;
	for public in &keys {
		let account = AccountId::from(*public);
		if let Some(record) = chain.expert(best, &account).map_err(fail)? {
			found = Some((*public, account, record));
			break;
		}
	}
	let Some((public, account, expert)) = found else {
		let accounts: Vec<String> = keys.iter().map(|k| AccountId::from(*k).to_string()).collect();
		return Err(fail(format!(
			"--miner: no miner key in the keystore ({}) is a registered expert at block \
			 #{number}; register the expert first (docs/experts.md), or let the node sync",
			accounts.join(", ")
		)));
	};

	// The model: the directory must hold one the expert serves, chunk hashes matching.
	let dir = ModelDir::open(&dir_path)
		.map_err(|e| fail(format!("--model-dir {}: {e}", dir_path.display())))?;
	let config_of_dir = dir.config().clone();
	let tokenizer_hash = weight_hash::tokenizer_hash(&dir)
		.map_err(|e| fail(format!("--model-dir {}: {e}", dir_path.display())))?;
	let mut served: BTreeMap<ModelId, Vec<ChunkIndex>> = BTreeMap::new();
	for chunk_ref in expert.serving.iter() {
		served.entry(chunk_ref.model).or_default().push(chunk_ref.chunk);
	}
	let mut model_match = None;
	for (model, chunks) in &served {
		let Some(record) = chain.model(best, *model).map_err(fail)? else { continue };
		let spec = &record.spec;
		if spec.num_layers as usize == config_of_dir.num_hidden_layers
			&& spec.hidden_size as usize == config_of_dir.hidden_size
			&& spec.tokenizer_hash.0 == tokenizer_hash
		{
			model_match = Some((*model, record, chunks.clone()));
			break;
		}
	}
	let Some((model, record, registered)) = model_match else {
		return Err(fail(format!(
			"--model-dir {}: the checkpoint (its layers, width and tokenizer) is none of the \
			 models {account} serves ({:?})",
			dir_path.display(),
			served.keys().collect::<Vec<_>>()
		)));
	};
	let chunks = match serve {
		ServeChunks::Auto => registered.clone(),
		ServeChunks::Only(list) => {
			if let Some(missing) = list.iter().find(|c| !registered.contains(c)) {
				return Err(fail(format!(
					"--serve-chunks: {account} does not serve chunk {missing} of model {model} \
					 on chain (it serves {registered:?}); register it with `serve_chunk` first"
				)));
			}
			list
		}
	};
	let device = parse_device(&cmd.device).map_err(|e| fail(format!("--device: {e}")))?;
	let dtype = parse_dtype(&cmd.dtype, &device).map_err(|e| fail(format!("--dtype: {e}")))?;
	let mut shards = BTreeMap::new();
	for chunk in chunks {
		let spec =
			record.spec.chunks.get(chunk as usize).ok_or_else(|| {
				fail(format!("model {model} has no chunk {chunk} in the registry"))
			})?;
		let range = LayerRange::new(spec.start_layer as usize, spec.end_layer as usize)
			.map_err(|e| fail(format!("model {model} chunk {chunk}: {e}")))?;
		let hash = weight_hash::chunk_hash(&dir, range)
			.map_err(|e| fail(format!("--model-dir {}: {e}", dir_path.display())))?;
		if hash != spec.weights_hash.0 {
			return Err(fail(format!(
				"--model-dir {}: the weights of chunk {chunk} (layers {range}) hash to 0x{}, \
				 but the registry has 0x{} for model {model}; refusing to serve other weights",
				dir_path.display(),
				weight_hash::to_hex(&hash),
				weight_hash::to_hex(&spec.weights_hash.0),
			)));
		}
		let shard = Shard::load(&dir, range, &device, dtype)
			.map_err(|e| fail(format!("loading chunk {chunk} (layers {range}): {e}")))?;
		log::info!(
			target: LOG_TARGET,
			"serving chunk {chunk} (layers {range}) of model {model} as {account}: weights \
			 match the registry",
		);
		shards.insert(chunk, Arc::new(Mutex::new(shard)));
	}
	let tokenizer = PromptTokenizer::from_file(&dir.tokenizer_path(), &config_of_dir)
		.map_err(|e| fail(format!("--model-dir {}: {e}", dir_path.display())))?;

	let (sender, requests) = async_channel::bounded(64);
	let protocol = N::request_response_config(
		protocol::protocol_name(),
		Vec::new(),
		protocol::max_request_bytes(
			config_of_dir.max_position_embeddings,
			config_of_dir.hidden_size,
		),
		protocol::MAX_RESPONSE_BYTES,
		protocol::REQUEST_TIMEOUT,
		Some(sender),
	);
	let prepared = Prepared {
		public,
		account,
		registered_peer: expert.profile.peer_id.to_vec(),
		model: ServedModel {
			model,
			config: config_of_dir,
			tokenizer,
			shards,
			perturb: cmd.miner_perturb_activations,
		},
		requests,
	};
	Ok((prepared, protocol))
}

/// What the worker needs from the running node.
pub struct NodeParts {
	pub client: Arc<FullClient>,
	pub pool:
		Arc<sc_transaction_pool::TransactionPoolHandle<dllm_runtime::opaque::Block, FullClient>>,
	pub keystore: KeystorePtr,
	pub network: Arc<dyn NetworkService>,
	pub spawner: SpawnTaskHandle,
	pub registry: Option<Registry>,
	pub data_path: PathBuf,
}

/// Starts the worker's tasks.
pub fn start(prepared: Prepared, node: NodeParts) -> Result<(), Error> {
	let local_peer = node.network.local_peer_id();
	if local_peer.to_bytes() != prepared.registered_peer {
		let registered = polkadot_sdk::sc_network::PeerId::from_bytes(&prepared.registered_peer)
			.map(|p| p.to_string())
			.unwrap_or_else(|_| "an invalid peer id".into());
		return Err(fail(format!(
			"--miner: {} registered the peer id {registered}, but this node is {local_peer}; \
			 start it with that peer's node key (--node-key-file) or update the expert's \
			 profile",
			prepared.account
		)));
	}
	let store = store::ResultStore::open(&node.data_path.join("miner")).map_err(fail)?;
	let metrics = metrics::Metrics::register(node.registry.as_ref())
		.map_err(|e| fail(format!("registering the miner metrics failed: {e}")))?;
	let worker = Arc::new(worker::Worker {
		chain: ChainView::new(node.client.clone()),
		submitter: Submitter::new(node.client.clone(), node.pool, node.keystore, prepared.public),
		account: prepared.account,
		network: node.network,
		model: prepared.model,
		store,
		metrics,
		spawner: node.spawner.clone(),
		sessions: Default::default(),
		drives: Default::default(),
		submitted: Default::default(),
		peers: Default::default(),
		warned: Default::default(),
	});
	node.spawner.spawn(
		"dllm-miner-requests",
		Some("dllm-miner"),
		worker.clone().serve(prepared.requests),
	);
	node.spawner.spawn("dllm-miner-blocks", Some("dllm-miner"), worker.follow_blocks(node.client));
	Ok(())
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn serve_chunks_parses_or_says_what_to_fix() {
		assert_eq!("auto".parse::<ServeChunks>(), Ok(ServeChunks::Auto));
		assert_eq!("0, 2".parse::<ServeChunks>(), Ok(ServeChunks::Only(vec![0, 2])));
		for bad in ["", "x", "0,,1", "-1"] {
			let error = bad.parse::<ServeChunks>().unwrap_err();
			assert!(error.contains("--serve-chunks"), "{bad}: {error}");
		}
	}
}
