//! The miner worker (`dllm-node --miner`): runs this expert's chunks of a registered
//! model for the tasks the chain assigns it, passes activations to the next chunk's
//! miner over sc-network, and commits and reveals its results on chain.
//!
//! - [`chain`]: what it reads from the chain, and how it signs and submits.
//! - [`compute`]: the loaded chunks and one pass through one of them.
//! - [`error`]: why the worker's own steps fail.
//! - [`protocol`]: the `/dllm/activations/2` request-response messages.
//! - [`worker`]: block following, pipelines, requests, commits and reveals.
//! - [`store`]: results kept on disk until revealed.
//! - [`metrics`]: Prometheus metrics.
//! - [`test_hooks`]: misbehaviour for the end-to-end tests (feature `test-hooks`).

pub mod chain;
pub mod compute;
pub mod error;
pub mod inputs;
pub mod metrics;
pub mod protocol;
pub mod store;
pub mod test_hooks;
pub mod worker;

use crate::service::FullClient;
use candle_core::{DType, Device};
use chain::{ChainView, Submitter};
use compute::ServedModel;
use dllm_inference::{
	device::{parse_device, parse_dtype},
	tokenizer::PromptTokenizer,
	weight_hash, LayerRange, ModelDir, Shard,
};
use dllm_primitives::market::{ChunkIndex, ModelId, NumericFormat};
use dllm_runtime::AccountId;
use futures::StreamExt;
use polkadot_sdk::{
	sc_client_api::BlockchainEvents,
	sc_network::{
		request_responses::IncomingRequest, service::traits::NetworkService, NetworkBackend, PeerId,
	},
	sc_service::{Configuration, SpawnEssentialTaskHandle, SpawnTaskHandle},
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
	pub serve_chunks: ServeChunks,

	/// Where the chunks run: `cpu` or `cuda:N` (a build with `--features cuda`).
	#[arg(long, value_name = "cpu|cuda:N", default_value = "cpu", requires = "miner")]
	pub device: String,

	/// Compute dtype: f32, f16 or bf16 (bf16 on CUDA only). It must be the format the
	/// expert declared for its chunks on chain (`serve_chunk`), one the model accepts.
	#[arg(long, value_name = "DTYPE", default_value = "f32", requires = "miner")]
	pub dtype: String,

	/// Test-only misbehaviour (a build with the `test-hooks` feature).
	#[cfg(feature = "test-hooks")]
	#[command(flatten)]
	pub test_hooks: test_hooks::TestHookArgs,
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

/// What `prepare` found before the network starts: the keys, the model directory and
/// the compute settings. The chain-dependent checks wait for [`resolve`].
pub struct Prepared {
	keys: Vec<sr25519::Public>,
	dir: ModelDir,
	dir_path: PathBuf,
	tokenizer_hash: [u8; 32],
	config_hash: [u8; 32],
	serve: ServeChunks,
	device: Device,
	dtype: DType,
	format: NumericFormat,
	hooks: test_hooks::TestHooks,
	requests: async_channel::Receiver<IncomingRequest>,
}

/// Whether the worker can start.
enum Resolution {
	/// It can: the expert and its loaded chunks (boxed: the model is large).
	Ready(Box<Resolved>),
	/// Not yet (why): no key is a registered expert, or the expert serves no chunk of
	/// the directory's model, at the best block (registration pending, or not synced).
	Waiting(String),
}

/// The expert this node mines as, and its loaded chunks.
struct Resolved {
	public: sr25519::Public,
	account: AccountId,
	model: ServedModel,
	registered_peer: Vec<u8>,
}

type Error = polkadot_sdk::sc_service::Error;

fn fail(message: impl Into<String>) -> Error {
	Error::Other(message.into())
}

/// Finds the miner key and opens the model directory; returns the request-response
/// protocol to register with the network.
pub fn prepare<Block: BlockT, N: NetworkBackend<Block, Block::Hash>>(
	config: &Configuration,
	keystore: &KeystorePtr,
	cmd: &MinerCmd,
) -> Result<(Prepared, N::RequestResponseProtocolConfig), Error> {
	let dir_path = cmd.model_dir.clone().ok_or_else(|| fail("--miner needs --model-dir DIR"))?;
	let serve = cmd.serve_chunks.clone();

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

	let dir = ModelDir::open(&dir_path)
		.map_err(|e| fail(format!("--model-dir {}: {e}", dir_path.display())))?;
	let tokenizer_hash = weight_hash::tokenizer_hash(&dir)
		.map_err(|e| fail(format!("--model-dir {}: {e}", dir_path.display())))?;
	let device = parse_device(&cmd.device).map_err(|e| fail(format!("--device: {e}")))?;
	if device.is_cpu() {
		// Each op of a chunk on the CPU allocates megabytes: keep freed memory in the
		// process instead of page-faulting it back (prefill 20–30% faster in dllm-infer).
		dllm_inference::memory::retain_freed_memory();
	}
	let dtype = parse_dtype(&cmd.dtype, &device).map_err(|e| fail(format!("--dtype: {e}")))?;
	let format = NumericFormat::from_name(&cmd.dtype)
		.ok_or_else(|| fail(format!("--dtype {}: expected f32, f16 or bf16", cmd.dtype)))?;
	let config_hash = weight_hash::config_hash(dir.config())
		.map_err(|e| fail(format!("--model-dir {}: {e}", dir_path.display())))?;

	let (sender, requests) = async_channel::bounded(64);
	let protocol = N::request_response_config(
		protocol::protocol_name(),
		Vec::new(),
		protocol::max_request_bytes(dir.config().max_position_embeddings, dir.config().hidden_size),
		protocol::max_response_bytes(
			dir.config().max_position_embeddings,
			dir.config().hidden_size,
		),
		protocol::REQUEST_TIMEOUT,
		Some(sender),
	);
	let prepared = Prepared {
		keys,
		dir,
		dir_path,
		tokenizer_hash,
		config_hash,
		serve,
		device,
		dtype,
		format,
		#[cfg(feature = "test-hooks")]
		hooks: test_hooks::TestHooks::from_args(&cmd.test_hooks),
		#[cfg(not(feature = "test-hooks"))]
		hooks: test_hooks::TestHooks::honest(),
		requests,
	};
	Ok((prepared, protocol))
}

/// The registered expert among the keys at the best block, with its chunks checked
/// against the registry and loaded. Errors are fatal: weights that differ from the
/// registry's, chunks asked for that the expert does not serve.
fn resolve(prepared: &Prepared, chain: &ChainView) -> Result<Resolution, String> {
	let (best, number) = chain.best();
	let mut found = None;
	// An operator key first: the expert's own key holds its stake (N4).
	for public in &prepared.keys {
		let key = AccountId::from(*public);
		if let Some(expert) = chain.operated_expert(best, &key).map_err(|e| e.to_string())? {
			if let Some(record) = chain.expert(best, &expert).map_err(|e| e.to_string())? {
				found = Some((*public, expert, record));
				break;
			}
		}
	}
	for public in prepared.keys.iter().filter(|_| found.is_none()) {
		let account = AccountId::from(*public);
		if let Some(record) = chain.expert(best, &account).map_err(|e| e.to_string())? {
			log::warn!(
				target: LOG_TARGET,
				"the miner key is the expert {account}'s own key, which controls its stake; \
				 name an operator key with `set_operator` and give the node only that one \
				 (docs/operators.md)",
			);
			found = Some((*public, account, record));
			break;
		}
	}
	let Some((public, account, expert)) = found else {
		let accounts: Vec<String> =
			prepared.keys.iter().map(|k| AccountId::from(*k).to_string()).collect();
		return Ok(Resolution::Waiting(format!(
			"no miner key ({}) is a registered expert or an expert's operator at block \
			 #{number}",
			accounts.join(", ")
		)));
	};
	if AccountId::from(public) != account {
		log::info!(
			target: LOG_TARGET,
			"signing as {}, the operator of expert {account}",
			AccountId::from(public)
		);
	}
	let dir_path = prepared.dir_path.display();
	let config = prepared.dir.config();

	// The directory must hold one of the models the expert serves, hashes matching.
	let mut served: BTreeMap<ModelId, Vec<ChunkIndex>> = BTreeMap::new();
	for chunk_ref in expert.serving.iter() {
		served.entry(chunk_ref.model).or_default().push(chunk_ref.chunk);
	}
	let mut model_match = None;
	for (model, chunks) in &served {
		let Some(record) = chain.model(best, *model).map_err(|e| e.to_string())? else { continue };
		let spec = &record.spec;
		if spec.num_layers as usize == config.num_hidden_layers
			&& spec.hidden_size as usize == config.hidden_size
			&& spec.tokenizer_hash.0 == prepared.tokenizer_hash
			&& spec.config_hash.0 == prepared.config_hash
		{
			model_match = Some((*model, record, chunks.clone()));
			break;
		}
	}
	let Some((model, record, registered)) = model_match else {
		return Ok(Resolution::Waiting(format!(
			"at block #{number}, the checkpoint in --model-dir {dir_path} (its layers, width, \
			 engine config and tokenizer) is none of the models {account} serves ({:?})",
			served.keys().collect::<Vec<_>>()
		)));
	};
	let chunks = match &prepared.serve {
		ServeChunks::Auto => registered.clone(),
		ServeChunks::Only(list) => {
			if let Some(missing) = list.iter().find(|c| !registered.contains(c)) {
				return Err(format!(
					"--serve-chunks: {account} does not serve chunk {missing} of model {model} \
					 on chain (it serves {registered:?}); register it with `serve_chunk` first"
				));
			}
			list.clone()
		}
	};
	for chunk in &chunks {
		let declared = expert
			.serving
			.iter()
			.find(|served| served.is(model, *chunk))
			.map(|served| served.format);
		if declared != Some(prepared.format) {
			return Err(format!(
				"--dtype {}: {account} serves chunk {chunk} of model {model} as {} on chain; \
				 start with that --dtype, or serve the chunk again with `serve_chunk` in {}",
				prepared.format.name(),
				declared.map_or("nothing", NumericFormat::name),
				prepared.format.name(),
			));
		}
	}
	let mut shards = BTreeMap::new();
	for chunk in chunks {
		let spec = record
			.spec
			.chunks
			.get(chunk as usize)
			.ok_or_else(|| format!("model {model} has no chunk {chunk} in the registry"))?;
		let range = LayerRange::new(spec.start_layer as usize, spec.end_layer as usize)
			.map_err(|e| format!("model {model} chunk {chunk}: {e}"))?;
		let hash = weight_hash::chunk_hash(&prepared.dir, range)
			.map_err(|e| format!("--model-dir {dir_path}: {e}"))?;
		if hash != spec.weights_hash.0 {
			return Err(format!(
				"--model-dir {dir_path}: the weights of chunk {chunk} (layers {range}) hash to \
				 0x{}, but the registry has 0x{} for model {model}; refusing to serve other \
				 weights",
				weight_hash::to_hex(&hash),
				weight_hash::to_hex(&spec.weights_hash.0),
			));
		}
		let shard = Shard::load(&prepared.dir, range, &prepared.device, prepared.dtype)
			.map_err(|e| format!("loading chunk {chunk} (layers {range}): {e}"))?;
		log::info!(
			target: LOG_TARGET,
			"serving chunk {chunk} (layers {range}) of model {model} as {account}: weights \
			 match the registry",
		);
		shards.insert(chunk, Arc::new(Mutex::new(shard)));
	}
	let tokenizer = PromptTokenizer::from_file(&prepared.dir.tokenizer_path(), config)
		.map_err(|e| format!("--model-dir {dir_path}: {e}"))?;
	Ok(Resolution::Ready(Box::new(Resolved {
		public,
		account,
		registered_peer: expert.profile.peer_id.to_vec(),
		model: ServedModel {
			model,
			config: config.clone(),
			tokenizer,
			shards,
			profiles: record
				.spec
				.numerics
				.iter()
				.map(|profile| (profile.format, profile.verification))
				.collect(),
		},
	})))
}

/// Refuses to mine under a peer id other than the registered one: the previous
/// miners would send their activations elsewhere.
fn check_peer(resolved: &Resolved, local_peer: PeerId) -> Result<(), String> {
	if local_peer.to_bytes() == resolved.registered_peer {
		return Ok(());
	}
	let registered = PeerId::from_bytes(&resolved.registered_peer)
		.map(|p| p.to_string())
		.unwrap_or_else(|_| "an invalid peer id".into());
	Err(format!(
		"--miner: {} registered the peer id {registered}, but this node is {local_peer}; \
		 start it with that peer's node key (--node-key-file) or update the expert's profile",
		resolved.account
	))
}

/// What the worker needs from the running node.
pub struct NodeParts {
	pub client: Arc<FullClient>,
	pub pool:
		Arc<sc_transaction_pool::TransactionPoolHandle<dllm_runtime::opaque::Block, FullClient>>,
	pub keystore: KeystorePtr,
	pub network: Arc<dyn NetworkService>,
	pub spawner: SpawnTaskHandle,
	pub essential: SpawnEssentialTaskHandle,
	pub registry: Option<Registry>,
	pub data_path: PathBuf,
	/// Where the generations this node drives publish their tokens (`/dllm/tokens/1`).
	pub token_streams: Arc<crate::tokens::TokenStreams>,
}

/// Starts the worker. Errors found now (wrong weights, wrong peer id) stop the node at
/// once; if no key is a registered expert yet, the worker waits for one, and an error
/// found then stops the node too (the worker is an essential task).
pub fn start(prepared: Prepared, node: NodeParts) -> Result<(), Error> {
	let chain = ChainView::new(node.client.clone());
	let local_peer = node.network.local_peer_id();
	let resolved = match resolve(&prepared, &chain).map_err(fail)? {
		Resolution::Ready(resolved) => {
			check_peer(&resolved, local_peer).map_err(fail)?;
			Some(resolved)
		}
		Resolution::Waiting(why) => {
			log::warn!(
				target: LOG_TARGET,
				"{why}; the miner waits for the registration (docs/operators.md) or for the \
				 node to sync",
			);
			None
		}
	};
	let store =
		store::ResultStore::open(&node.data_path.join("miner")).map_err(|e| fail(e.to_string()))?;
	let metrics = metrics::Metrics::register(node.registry.as_ref())
		.map_err(|e| fail(format!("registering the miner metrics failed: {e}")))?;
	let prepared = Arc::new(prepared);
	let run = async move {
		let mut imports = node.client.import_notification_stream();
		let mut resolved = resolved;
		while resolved.is_none() {
			if imports.next().await.is_none() {
				return;
			}
			// Resolving hashes and loads the weights (seconds to minutes): on a blocking
			// thread, never on the node's async threads (review N2).
			let (for_resolve, chain_view) = (prepared.clone(), chain.clone());
			let resolution = tokio::task::spawn_blocking(move || {
				resolve(&for_resolve, &chain_view).and_then(|resolution| match resolution {
					Resolution::Ready(r) => check_peer(&r, local_peer).map(|()| Some(r)),
					Resolution::Waiting(_) => Ok(None),
				})
			})
			.await
			.unwrap_or_else(|e| Err(format!("resolving the expert failed: {e}")));
			match resolution {
				Ok(found) => resolved = found,
				Err(e) => {
					log::error!(target: LOG_TARGET, "{e}; the miner stops");
					return;
				}
			}
		}
		let Some(resolved) = resolved else { return };
		let (completions, completed) = futures::channel::mpsc::unbounded();
		let worker = Arc::new(worker::Worker {
			chain,
			submitter: Submitter::new(
				node.client.clone(),
				node.pool,
				chain::SigningKey::Keystore { keystore: node.keystore, public: resolved.public },
			),
			account: resolved.account,
			network: node.network,
			model: resolved.model,
			store,
			metrics,
			spawner: node.spawner.clone(),
			sessions: Default::default(),
			checks: Default::default(),
			peers: Default::default(),
			inputs: Default::default(),
			token_streams: node.token_streams,
			hooks: prepared.hooks,
			signer_revoked: Default::default(),
			view: tokio::sync::watch::Sender::new(Default::default()),
			completions,
		});
		worker.run(node.client, prepared.requests.clone(), completed).await;
	};
	node.essential.spawn("dllm-miner", Some("dllm-miner"), run);
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
