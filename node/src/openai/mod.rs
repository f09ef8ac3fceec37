//! The OpenAI-compatible HTTP API (`dllm-node --openai`): `GET /v1/models`,
//! `POST /v1/chat/completions` and `POST /v1/completions`, streamed (server-sent events)
//! or not, on `--openai-host`:`--openai-port` (127.0.0.1:8080).
//!
//! Each request becomes a task on chain: the node renders the prompt (the Mistral
//! instruct template for chat), signs `submit_task` with the configured account at the
//! chain's quote, learns the task's id from its inclusion, relays the generator's
//! tokens as they come ([`crate::rpc::TaskRpc::relay`], the same path as
//! `dllm_subscribeTask`) and answers with the verified output once the chain settles
//! the task. `GET /` serves a chat page on the same API, and `GET /dllm/network` the
//! network view beside it (models, experts, recent tasks). It lives in the node because it needs the node's chain client, its
//! transaction pool and its token protocol; docs/users.md says more.

pub mod api;
mod network;
mod page;

use crate::{
	miner::chain::{ChainError, ChainView, ModelRecord, Pool, SigningKey, Submitter},
	rpc::{tasks::TaskEvent, TaskRpc},
	service::FullClient,
};
use api::{ApiError, DllmInfo, Generation, Usage};
use bytes::Bytes;
use codec::Decode;
use dllm_primitives::market::{ModelId, ModelStatus, TaskId};
use dllm_runtime::{Runtime, RuntimeCall, RuntimeEvent};
use futures::{SinkExt, StreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::{
	body::{Frame, Incoming},
	header, Method, Request, Response, StatusCode,
};
use pallet_poaw::QuoteError;
use polkadot_sdk::{
	frame_support::traits::PalletInfoAccess,
	frame_system::{EventRecord, Phase},
	sc_client_api::{BlockBackend, BlockchainEvents, StorageProvider},
	sc_service::SpawnTaskHandle,
	sp_core::{sr25519, storage::StorageKey, Get, Pair, H256},
	sp_runtime::{
		traits::{BlakeTwo256, Hash},
		DispatchError, ModuleError, TokenError,
	},
};
use std::{
	convert::Infallible,
	net::{IpAddr, SocketAddr},
	sync::Arc,
	time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Log target of the API.
const LOG_TARGET: &str = "dllm-openai";
/// The largest request body taken.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a submitted task may take to be included.
const INCLUSION_WAIT: Duration = Duration::from_secs(60);
/// How long an answer may take once the task is on chain.
/// (Together with the inclusion, under the OpenAI SDKs' 600 s request timeout.)
const ANSWER_WAIT: Duration = Duration::from_secs(480);
/// How long a client may take to send a request's headers.
const HEADER_WAIT: Duration = Duration::from_secs(30);

/// Options of the OpenAI-compatible API.
#[derive(Debug, Clone, clap::Args)]
pub struct OpenAiCmd {
	/// Serve the OpenAI-compatible HTTP API (`/v1/models`, `/v1/chat/completions`,
	/// `/v1/completions`): each request is a task on chain, paid by `--openai-suri`.
	#[arg(long)]
	pub openai: bool,

	/// Address the API listens on. Anything but a loopback address needs
	/// `--openai-api-key`.
	#[arg(long, value_name = "IP", default_value = "127.0.0.1")]
	pub openai_host: String,

	/// Port the API listens on.
	#[arg(long, value_name = "PORT", default_value_t = 8080)]
	pub openai_port: u16,

	/// The account that signs `submit_task` and pays the fees: a secret URI (a
	/// mnemonic, optionally with a derivation path; `//Alice` on a dev chain, the default
	/// there). Or in the environment: `DLLM_OPENAI_SURI` (kept out of `ps`).
	#[arg(long, value_name = "SURI")]
	pub openai_suri: Option<String>,

	/// Require `Authorization: Bearer <KEY>` on every request. Or in the environment:
	/// `DLLM_OPENAI_API_KEY`.
	#[arg(long, value_name = "KEY")]
	pub openai_api_key: Option<String>,
}

/// What the API needs from the running node.
pub struct NodeParts {
	pub client: Arc<FullClient>,
	pub pool: Arc<Pool>,
	pub tasks: TaskRpc,
	pub spawner: SpawnTaskHandle,
	/// Whether the chain is a development chain (the default account is `//Alice`).
	pub dev: bool,
}

struct Server {
	chain: ChainView,
	submitter: Submitter,
	tasks: TaskRpc,
	api_key: Option<String>,
	spawner: SpawnTaskHandle,
	/// The last network view and the block it was read at.
	network_cache: std::sync::Mutex<Option<(H256, serde_json::Value)>>,
}

/// Checks the options, binds the port and starts serving; an error says what to fix.
pub fn start(cmd: &OpenAiCmd, node: NodeParts) -> Result<(), String> {
	let from_env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
	let api_key = cmd
		.openai_api_key
		.clone()
		.filter(|key| !key.is_empty())
		.or_else(|| from_env("DLLM_OPENAI_API_KEY"));
	let suri = match (cmd.openai_suri.clone().or_else(|| from_env("DLLM_OPENAI_SURI")), node.dev) {
		(Some(suri), _) => suri,
		(None, true) => "//Alice".to_string(),
		(None, false) => {
			return Err("--openai needs --openai-suri (or DLLM_OPENAI_SURI): the account that \
			            signs and pays for the requests"
				.into())
		}
	};
	let pair = sr25519::Pair::from_string(&suri, None)
		.map_err(|e| format!("--openai-suri: not a valid secret URI ({e:?})"))?;
	let ip: IpAddr = cmd
		.openai_host
		.parse()
		.map_err(|_| format!("--openai-host {}: not an IP address", cmd.openai_host))?;
	if !ip.is_loopback() && api_key.is_none() {
		return Err(format!(
			"--openai-host {ip} is reachable from other machines: set --openai-api-key too"
		));
	}
	let address = SocketAddr::new(ip, cmd.openai_port);
	let listener = std::net::TcpListener::bind(address).map_err(|e| {
		format!("--openai-port {}: cannot listen on {address}: {e}", cmd.openai_port)
	})?;
	listener.set_nonblocking(true).map_err(|e| format!("{address}: {e}"))?;
	// The port the system chose for `--openai-port 0`.
	let address = listener.local_addr().unwrap_or(address);
	let submitter =
		Submitter::new(node.client.clone(), node.pool, SigningKey::Pair(Box::new(pair)));
	log::info!(
		target: LOG_TARGET,
		"OpenAI-compatible API on http://{address}/v1, requests paid by {}",
		submitter.account(),
	);
	let server = Arc::new(Server {
		chain: ChainView::new(node.client),
		submitter,
		tasks: node.tasks,
		api_key,
		spawner: node.spawner.clone(),
		network_cache: Default::default(),
	});
	node.spawner.spawn("dllm-openai", Some("dllm-openai"), async move {
		let listener = match tokio::net::TcpListener::from_std(listener) {
			Ok(listener) => listener,
			Err(e) => {
				log::error!(target: LOG_TARGET, "{address}: {e}");
				return;
			}
		};
		loop {
			let (stream, _) = match listener.accept().await {
				Ok(accepted) => accepted,
				Err(e) => {
					log::warn!(target: LOG_TARGET, "accepting a connection failed: {e}");
					tokio::time::sleep(Duration::from_millis(100)).await;
					continue;
				}
			};
			let server = server.clone();
			server.spawner.clone().spawn(
				"dllm-openai-connection",
				Some("dllm-openai"),
				async move {
					let service = hyper::service::service_fn(move |request| {
						let server = server.clone();
						async move { Ok::<_, Infallible>(server.handle(request).await) }
					});
					let io = hyper_util::rt::TokioIo::new(stream);
					let mut builder = hyper::server::conn::http1::Builder::new();
					builder
						.timer(hyper_util::rt::TokioTimer::new())
						.header_read_timeout(HEADER_WAIT);
					if let Err(e) = builder.serve_connection(io, service).await {
						log::debug!(target: LOG_TARGET, "connection ended: {e}");
					}
				},
			);
		}
	});
	Ok(())
}

type Body = BoxBody<Bytes, Infallible>;

fn json(status: u16, value: &serde_json::Value) -> Response<Body> {
	let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
	*response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
	response
		.headers_mut()
		.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
	response
}

fn error(e: &ApiError) -> Response<Body> {
	let mut response = json(e.status, &e.body());
	if e.submitted {
		// The OpenAI SDKs retry 5xx answers; a retry here would pay for a second task.
		response.headers_mut().insert("x-should-retry", header::HeaderValue::from_static("false"));
	}
	response
}

fn now() -> u64 {
	SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Chat or plain completion: what the answer's objects are called.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
	Chat,
	Text,
}

impl Server {
	async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
		let route = (request.method().clone(), request.uri().path().to_string());
		if let Err(e) = self.local_only(&request) {
			return error(&e);
		}
		if route.0 == Method::GET || route.0 == Method::HEAD {
			// The chat page is public: its requests carry the API key the user typed in.
			if let Some(file) = page::file(&route.1) {
				return page::response(file);
			}
		}
		if let Err(e) = self.authorize(&request) {
			return error(&e);
		}
		let outcome = match (&route.0, route.1.as_str()) {
			(&Method::GET, "/v1/models") => self.models(),
			(&Method::GET, "/dllm/network") => self.network().await,
			(&Method::POST, "/v1/chat/completions") => match read_json(request).await {
				Ok(body) => self.chat(body).await,
				Err(e) => Err(e),
			},
			(&Method::POST, "/v1/completions") => match read_json(request).await {
				Ok(body) => self.completion(body).await,
				Err(e) => Err(e),
			},
			(method, path) => Err(ApiError::new(
				404,
				"invalid_request_error",
				"unknown_url",
				format!(
					"no endpoint {method} {path}: the API serves GET /v1/models, POST \
				         /v1/chat/completions, POST /v1/completions and GET /dllm/network; \
				         the chat page is at /"
				),
			)),
		};
		outcome.unwrap_or_else(|e| error(&e))
	}

	/// Without an API key the server trusts whoever reaches it on loopback, so it answers
	/// only requests addressed to a loopback name, from no page or a page of its own: a
	/// web page elsewhere (cross-site requests) or a name that rebinds to 127.0.0.1 (DNS
	/// rebinding) must not spend the paying account. With a key, the key decides.
	fn local_only(&self, request: &Request<Incoming>) -> Result<(), ApiError> {
		if self.api_key.is_some() {
			return Ok(());
		}
		let refuse = |what: &str, value: &str| {
			Err(ApiError::new(
				403,
				"invalid_request_error",
				"forbidden",
				format!(
					"{what} {value:?} is not this server on loopback: without --openai-api-key \
					 it answers only requests to 127.0.0.1, localhost or [::1] from no web page \
					 or its own"
				),
			))
		};
		let header = |name| request.headers().get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
		if let Some(host) = header(header::HOST) {
			if !is_loopback_authority(host) {
				return refuse("Host", host);
			}
		}
		if let Some(origin) = header(header::ORIGIN) {
			let authority = origin.strip_prefix("http://").unwrap_or("\u{fffd}");
			if !is_loopback_authority(authority) {
				return refuse("Origin", origin);
			}
		}
		Ok(())
	}

	/// The network view at the best block: computed off the async threads (it makes a
	/// few runtime calls per expert and task), once per best block however many pages
	/// poll it.
	async fn network(&self) -> Result<Response<Body>, ApiError> {
		let unavailable = |e: String| ApiError::new(503, "server_error", "chain_unavailable", e);
		let (best, number) = self.chain.best();
		let cached = self.network_cache.lock().ok().and_then(|cache| cache.clone());
		if let Some((_, view)) = cached.filter(|(at, _)| *at == best) {
			return Ok(json(200, &view));
		}
		let chain = self.chain.clone();
		let view = tokio::task::spawn_blocking(move || network::network_view(&chain, best, number))
			.await
			.map_err(|e| unavailable(e.to_string()))?
			.map_err(|e| unavailable(e.to_string()))?;
		if let Ok(mut cache) = self.network_cache.lock() {
			*cache = Some((best, view.clone()));
		}
		Ok(json(200, &view))
	}

	fn authorize(&self, request: &Request<Incoming>) -> Result<(), ApiError> {
		let Some(key) = &self.api_key else { return Ok(()) };
		let given = request
			.headers()
			.get(header::AUTHORIZATION)
			.and_then(|value| value.to_str().ok())
			.and_then(|value| value.strip_prefix("Bearer "));
		match given {
			Some(given) if same_key(given, key) => Ok(()),
			Some(_) => Err(ApiError::new(
				401,
				"invalid_request_error",
				"invalid_api_key",
				"the API key is not this server's".into(),
			)),
			None => Err(ApiError::new(
				401,
				"invalid_request_error",
				"invalid_api_key",
				"this server needs an API key: send `Authorization: Bearer <key>`".into(),
			)),
		}
	}

	/// The active models by name (the newest registration of a name wins).
	fn active_models(&self) -> Result<Vec<(ModelId, ModelRecord)>, ApiError> {
		let (best, _) = self.chain.best();
		let unavailable =
			|e: ChainError| ApiError::new(503, "server_error", "chain_unavailable", e.to_string());
		let mut found: Vec<(ModelId, ModelRecord)> = Vec::new();
		for id in self.chain.models(best).map_err(unavailable)? {
			let Some(record) = self.chain.model(best, id).map_err(unavailable)? else { continue };
			if record.status != ModelStatus::Active {
				continue;
			}
			found.retain(|(_, other)| other.spec.name != record.spec.name);
			found.push((id, record));
		}
		Ok(found)
	}

	fn model_named(&self, name: &str) -> Result<(ModelId, ModelRecord), ApiError> {
		let models = self.active_models()?;
		let names: Vec<String> = models
			.iter()
			.map(|(_, r)| String::from_utf8_lossy(&r.spec.name).into_owned())
			.collect();
		models.into_iter().find(|(_, r)| r.spec.name.as_slice() == name.as_bytes()).ok_or_else(
			|| {
				ApiError::new(
					404,
					"invalid_request_error",
					"model_not_found",
					format!(
						"model {name:?} is not an active model on this chain (active: {names:?})"
					),
				)
			},
		)
	}

	fn models(&self) -> Result<Response<Body>, ApiError> {
		let data: Vec<serde_json::Value> = self
			.active_models()?
			.into_iter()
			.map(|(id, record)| {
				serde_json::json!({
					"id": String::from_utf8_lossy(&record.spec.name),
					"object": "model",
					"created": 0,
					"owned_by": "dllm",
					"dllm": {
						"model_id": id,
						"version": record.spec.version,
						"layers": record.spec.num_layers,
						"chunks": record.spec.chunks.len(),
						"max_context": record.spec.max_context,
					},
				})
			})
			.collect();
		Ok(json(200, &serde_json::json!({ "object": "list", "data": data })))
	}

	async fn chat(self: &Arc<Self>, body: Bytes) -> Result<Response<Body>, ApiError> {
		let request = api::ChatRequest::parse(&body)
			.map_err(|e| ApiError::bad_request(format!("the body is not a chat request: {e}")))?;
		let prompt = api::mistral_prompt(&request.messages)?;
		self.answer(Kind::Chat, &request.options, prompt).await
	}

	async fn completion(self: &Arc<Self>, body: Bytes) -> Result<Response<Body>, ApiError> {
		let request = api::CompletionRequest::parse(&body).map_err(|e| {
			ApiError::bad_request(format!("the body is not a completion request: {e}"))
		})?;
		let prompt = api::completion_prompt(&request.prompt)?;
		self.answer(Kind::Text, &request.options, prompt).await
	}

	/// Submits the task, then answers: at once with a stream, or with the verified
	/// output once the chain settles it.
	async fn answer(
		self: &Arc<Self>,
		kind: Kind,
		options: &api::Options,
		prompt: String,
	) -> Result<Response<Body>, ApiError> {
		let most_tokens = <<Runtime as pallet_poaw::Config>::MaxGeneratedTokens as Get<u32>>::get();
		let generation = api::generation(options, most_tokens, rand::random())?;
		let (model, record) = self.model_named(&options.model)?;
		let task = self.submit(model, &record, &prompt, &generation).await?;
		let (events, received) = tokio::sync::mpsc::channel(64);
		let tasks = self.tasks.clone();
		self.spawner.spawn("dllm-openai-task", Some("dllm-openai"), async move {
			if let Err(e) = tasks.relay(task, events).await {
				log::debug!(target: LOG_TARGET, "task {task}: {e}");
			}
		});
		let reply = Reply { kind, model: options.model.clone(), task, generation, created: now() };
		if reply.generation.stream {
			Ok(reply.stream(received))
		} else {
			reply.whole(received).await
		}
	}

	/// Quotes, signs and submits the task; its id once a block includes it.
	async fn submit(
		&self,
		model: ModelId,
		record: &ModelRecord,
		prompt: &str,
		generation: &Generation,
	) -> Result<TaskId, ApiError> {
		let bytes = prompt.len() as u32;
		let most = <<Runtime as pallet_poaw::Config>::MaxPromptBytes as Get<u32>>::get();
		if bytes == 0 {
			return Err(ApiError::bad_request("the prompt is empty"));
		}
		if bytes > most {
			return Err(ApiError::bad_request(format!(
				"the prompt has {bytes} bytes with its template; the chain takes at most {most}"
			)));
		}
		let tokens = pallet_poaw::prompt_token_bound(bytes);
		if tokens.saturating_add(generation.max_tokens) > record.spec.max_context {
			return Err(ApiError::bad_request(format!(
				"the prompt (up to {tokens} tokens) and max_tokens {} exceed the model's \
				 context of {} tokens",
				generation.max_tokens, record.spec.max_context
			)));
		}
		let (best, _) = self.chain.best();
		let quote = self
			.chain
			.quote(best, model, tokens, generation.max_tokens, 1)
			.map_err(|e| ApiError::new(503, "server_error", "chain_unavailable", e.to_string()))?
			.map_err(|reason| match reason {
				QuoteError::NoMinersAvailable => ApiError::new(
					503,
					"server_error",
					"no_miners",
					"no miner serves this model now; try again later".into(),
				),
				other => ApiError::bad_request(format!("the chain gives no quote: {other:?}")),
			})?;
		let call = RuntimeCall::Poaw(pallet_poaw::Call::submit_task {
			model,
			prompt: prompt.as_bytes().to_vec(),
			max_tokens: generation.max_tokens,
			sampling: generation.sampling,
			max_fee: quote.max_fee,
			domain: None,
		});
		// Watching before submitting: a dev chain may seal the block at once.
		let mut imports = self.chain.client().import_notification_stream();
		let hash = self.submitter.submit(call).await.map_err(|e| match e {
			ChainError::CannotPay { .. } => {
				ApiError::new(402, "insufficient_quota", "insufficient_quota", e.to_string())
			}
			_ => ApiError::new(503, "server_error", "not_submitted", e.to_string()),
		})?;
		let hash = hash.hash;
		let deadline = Instant::now() + INCLUSION_WAIT;
		loop {
			let left = deadline.saturating_duration_since(Instant::now());
			let Ok(Some(block)) = tokio::time::timeout(left, imports.next()).await else {
				return Err(ApiError::new(
					504,
					"server_error",
					"not_included",
					format!(
						"the task was not included within {INCLUSION_WAIT:?}; it may still be \
						 (its transaction stays valid): look for {}'s tasks before retrying",
						self.submitter.account()
					),
				)
				.after_submission());
			};
			// A block off the best chain may be retracted, and the task with it.
			if !block.is_new_best {
				continue;
			}
			if let Some(index) = self.extrinsic_index(block.hash, hash) {
				let task = self
					.submission_outcome(block.hash, index, quote.max_fee)
					.map_err(ApiError::after_submission)?;
				self.check_own(task, prompt)?;
				return Ok(task);
			}
		}
	}

	/// Checks that task `task` on chain is this request's: submitted by this server's
	/// account with this prompt.
	fn check_own(&self, task: TaskId, prompt: &str) -> Result<(), ApiError> {
		let (best, _) = self.chain.best();
		let details = self.chain.task(best, task).ok().flatten();
		let ours = details.is_some_and(|d| {
			d.task.requester == self.submitter.account()
				&& d.task.prompt_hash == BlakeTwo256::hash(prompt.as_bytes())
		});
		match ours {
			true => Ok(()),
			false => Err(ApiError::new(
				503,
				"server_error",
				"chain_unavailable",
				format!("task {task} on the best chain is not this request's (a reorganisation?)"),
			)
			.after_submission()),
		}
	}

	/// Where extrinsic `hash` is in block `block`, if it is there.
	fn extrinsic_index(&self, block: H256, hash: H256) -> Option<u32> {
		let body = self.chain.client().block_body(block).ok()??;
		body.iter()
			.position(|extrinsic| BlakeTwo256::hash(&codec::Encode::encode(extrinsic)) == hash)
			.map(|index| index as u32)
	}

	/// The task id of the `submit_task` at `index` of `block`, or why it failed.
	fn submission_outcome(
		&self,
		block: H256,
		index: u32,
		max_fee: dllm_runtime::Balance,
	) -> Result<TaskId, ApiError> {
		// `frame_system::Events` (private to its pallet): the block's event records.
		let key = polkadot_sdk::frame_support::storage::storage_prefix(b"System", b"Events");
		let unreadable = |why: String| ApiError::new(503, "server_error", "chain_unavailable", why);
		let data = self
			.chain
			.client()
			.storage(block, &StorageKey(key.to_vec()))
			.map_err(|e| unreadable(e.to_string()))?
			.ok_or_else(|| unreadable("no events in the including block".into()))?;
		let records = Vec::<EventRecord<RuntimeEvent, H256>>::decode(&mut &data.0[..])
			.map_err(|e| unreadable(format!("the block's events do not decode: {e}")))?;
		for record in records.iter().filter(|r| r.phase == Phase::ApplyExtrinsic(index)) {
			match &record.event {
				RuntimeEvent::Poaw(pallet_poaw::Event::TaskSubmitted { task, .. }) => {
					log::info!(target: LOG_TARGET, "task {task} submitted, max fee {max_fee}");
					return Ok(*task);
				}
				RuntimeEvent::System(polkadot_sdk::frame_system::Event::ExtrinsicFailed {
					dispatch_error,
					..
				}) => return Err(refusal(dispatch_error, &self.submitter.account())),
				_ => {}
			}
		}
		Err(unreadable("the including block shows no outcome of the submission".into()))
	}
}

/// Whether two keys are equal, in time that does not depend on where they differ.
/// Whether `authority` (`host` or `host:port`) names a loopback address.
fn is_loopback_authority(authority: &str) -> bool {
	let host = match authority.strip_prefix('[') {
		// `[::1]:8080`
		Some(rest) => rest.split(']').next().unwrap_or(""),
		None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
	};
	host.eq_ignore_ascii_case("localhost")
		|| host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn same_key(given: &str, key: &str) -> bool {
	let (given, key) = (given.as_bytes(), key.as_bytes());
	given.len() == key.len() && given.iter().zip(key).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// The API error for a `submit_task` the chain refused.
fn refusal(error: &DispatchError, payer: &dllm_runtime::AccountId) -> ApiError {
	let poaw = <dllm_runtime::Poaw as PalletInfoAccess>::index() as u8;
	let name = match error {
		DispatchError::Module(ModuleError { index, error, .. }) if *index == poaw => {
			pallet_poaw::Error::<Runtime>::decode(&mut &error[..])
				.map(<&'static str>::from)
				.unwrap_or("an unknown task pallet error")
		}
		DispatchError::Token(TokenError::FundsUnavailable | TokenError::BelowMinimum) => {
			"InsufficientBalance"
		}
		_ => "",
	};
	match name {
		"InsufficientBalance" => ApiError::new(
			402,
			"insufficient_quota",
			"insufficient_quota",
			format!("{payer} cannot hold the task's fee: fund the account"),
		),
		"NoMinersAvailable" | "QueueFull" | "TooManyQueued" | "FeeBelowQuote" => ApiError::new(
			503,
			"server_error",
			"no_miners",
			format!("the chain refused the task now ({name}); try again later"),
		),
		"" => ApiError::new(
			503,
			"server_error",
			"refused",
			format!("the chain refused the task: {error:?}"),
		),
		other => ApiError::bad_request(format!("the chain refused the task: poaw.{other}")),
	}
}

async fn read_json(request: Request<Incoming>) -> Result<Bytes, ApiError> {
	// Required: a cross-site page cannot send this type without the browser asking first
	// (a CORS preflight, which this server does not answer).
	let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
	if !content_type.is_some_and(|t| t.starts_with("application/json")) {
		return Err(ApiError::bad_request(
			"the body must be JSON (Content-Type: application/json)",
		));
	}
	let body = Limited::new(request.into_body(), MAX_BODY_BYTES)
		.collect()
		.await
		.map_err(|e| ApiError::bad_request(format!("the body could not be read: {e}")))?;
	Ok(body.to_bytes())
}

/// One request's answer.
struct Reply {
	kind: Kind,
	model: String,
	task: TaskId,
	generation: Generation,
	created: u64,
}

/// A settled task as the answer reports it.
struct Settled {
	content: String,
	finish_reason: &'static str,
	usage: Usage,
	info: DllmInfo,
}

impl Reply {
	fn id(&self) -> String {
		match self.kind {
			Kind::Chat => format!("chatcmpl-dllm-{}", self.task),
			Kind::Text => format!("cmpl-dllm-{}", self.task),
		}
	}

	/// The chain's verdict as the answer reports it, or the error when there is no
	/// verified output.
	fn settle(&self, event: &TaskEvent) -> Result<Settled, ApiError> {
		let TaskEvent::Final { status, fee, refunded, output, tokens, prompt_tokens, .. } = event
		else {
			return Err(ApiError::new(504, "server_error", "timeout", "no verdict".into()));
		};
		let info = DllmInfo {
			task: self.task,
			status: status.clone(),
			verified: status == "Completed",
			fee: fee.clone(),
			refunded: refunded.clone(),
		};
		let (Some(output), Some(tokens), true) = (output, tokens, info.verified) else {
			return Err(ApiError::new(
				504,
				"server_error",
				"no_verified_answer",
				format!(
					"task {} ended {status} without a verified answer; refunded {}",
					self.task,
					refunded.clone().unwrap_or_else(|| "?".into())
				),
			));
		};
		let (content, stopped) = api::cut_at_stop(output, &self.generation.stop);
		let length = tokens.len() as u32 >= self.generation.max_tokens;
		Ok(Settled {
			content,
			finish_reason: if length && !stopped { "length" } else { "stop" },
			usage: Usage::new(prompt_tokens.unwrap_or(0), tokens.len() as u32),
			info,
		})
	}

	fn choice(&self, content: &str, finish_reason: Option<&str>, delta: bool) -> serde_json::Value {
		match (self.kind, delta) {
			(Kind::Chat, false) => serde_json::json!({
				"index": 0,
				"message": { "role": "assistant", "content": content },
				"logprobs": null,
				"finish_reason": finish_reason,
			}),
			(Kind::Chat, true) => serde_json::json!({
				"index": 0,
				"delta": { "content": content },
				"logprobs": null,
				"finish_reason": finish_reason,
			}),
			(Kind::Text, _) => serde_json::json!({
				"index": 0,
				"text": content,
				"logprobs": null,
				"finish_reason": finish_reason,
			}),
		}
	}

	fn object(&self, chunk: bool) -> &'static str {
		match (self.kind, chunk) {
			(Kind::Chat, false) => "chat.completion",
			(Kind::Chat, true) => "chat.completion.chunk",
			(Kind::Text, _) => "text_completion",
		}
	}

	fn envelope(&self, chunk: bool, choices: Vec<serde_json::Value>) -> serde_json::Value {
		serde_json::json!({
			"id": self.id(),
			"object": self.object(chunk),
			"created": self.created,
			"model": self.model,
			"choices": choices,
		})
	}

	/// Waits for the chain's verdict and answers with the verified output.
	async fn whole(
		self,
		mut events: tokio::sync::mpsc::Receiver<TaskEvent>,
	) -> Result<Response<Body>, ApiError> {
		let deadline = Instant::now() + ANSWER_WAIT;
		loop {
			let left = deadline.saturating_duration_since(Instant::now());
			match tokio::time::timeout(left, events.recv()).await {
				Ok(Some(TaskEvent::Token { .. })) => continue,
				Ok(Some(last @ TaskEvent::Final { .. })) => {
					let settled = self.settle(&last).map_err(ApiError::after_submission)?;
					let mut body = self.envelope(
						false,
						vec![self.choice(&settled.content, Some(settled.finish_reason), false)],
					);
					body["usage"] = serde_json::json!(settled.usage);
					body["dllm"] = serde_json::json!(settled.info);
					return Ok(json(200, &body));
				}
				Ok(None) | Err(_) => {
					return Err(ApiError::new(
						504,
						"server_error",
						"timeout",
						format!(
							"task {} has no verdict yet; follow it with dllm_subscribeTask",
							self.task
						),
					)
					.after_submission())
				}
			}
		}
	}

	/// Server-sent events: the streamed text as it comes, held back where a stop
	/// string may begin; then the rest of the verified output, the finish reason and
	/// the task's settlement, the usage if asked, and `[DONE]`.
	fn stream(self, mut events: tokio::sync::mpsc::Receiver<TaskEvent>) -> Response<Body> {
		let (mut frames, body) =
			futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
		tokio::spawn(async move {
			let mut first = self.envelope(true, vec![self.choice("", None, true)]);
			if self.kind == Kind::Chat {
				first["choices"][0]["delta"] =
					serde_json::json!({ "role": "assistant", "content": "" });
			}
			if !push(&mut frames, &first).await {
				return;
			}
			let hold =
				self.generation.stop.iter().map(|s| s.len()).max().unwrap_or(1).saturating_sub(1);
			let (mut seen, mut emitted) = (String::new(), String::new());
			let deadline = Instant::now() + ANSWER_WAIT;
			let last = loop {
				let left = deadline.saturating_duration_since(Instant::now());
				match tokio::time::timeout(left, events.recv()).await {
					Ok(Some(TaskEvent::Token { text, .. })) => {
						seen.push_str(&text);
						let (cut, stopped) = api::cut_at_stop(&seen, &self.generation.stop);
						let mut safe =
							if stopped { cut.len() } else { cut.len().saturating_sub(hold) };
						while !cut.is_char_boundary(safe) {
							safe -= 1;
						}
						if safe > emitted.len() && cut[..safe].starts_with(&emitted) {
							let delta = cut[emitted.len()..safe].to_string();
							emitted.push_str(&delta);
							let chunk = self.envelope(true, vec![self.choice(&delta, None, true)]);
							if !push(&mut frames, &chunk).await {
								return;
							}
						}
					}
					Ok(Some(last @ TaskEvent::Final { .. })) => break Some(last),
					Ok(None) | Err(_) => break None,
				}
			};
			let no_verdict = || {
				ApiError::new(
					504,
					"server_error",
					"timeout",
					format!("task {} has no verdict yet", self.task),
				)
			};
			match last.as_ref().map(|last| self.settle(last)).unwrap_or_else(|| Err(no_verdict())) {
				Ok(settled) => {
					// The verified output goes on from what was streamed (a preview of it);
					// a preview that is not its beginning is flagged, with the whole
					// verified content beside it.
					let rest = settled.content.strip_prefix(emitted.as_str());
					let mut end = self.envelope(
						true,
						vec![self.choice(rest.unwrap_or(""), Some(settled.finish_reason), true)],
					);
					end["dllm"] = serde_json::json!(settled.info);
					end["dllm"]["preview_matches"] = serde_json::json!(rest.is_some());
					if rest.is_none() {
						end["dllm"]["content"] = serde_json::json!(settled.content);
					}
					push(&mut frames, &end).await;
					if self.generation.include_usage {
						let mut usage = self.envelope(true, Vec::new());
						usage["usage"] = serde_json::json!(settled.usage);
						push(&mut frames, &usage).await;
					}
				}
				Err(e) => {
					push(&mut frames, &e.body()).await;
				}
			}
			let _ = frames.send(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n")))).await;
		});
		let mut response = Response::new(BodyExt::boxed(StreamBody::new(body)));
		let headers = response.headers_mut();
		headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/event-stream"));
		headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
		response
	}
}

type Frames = futures::channel::mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

/// Sends one server-sent event; false once the client is gone.
async fn push(frames: &mut Frames, value: &serde_json::Value) -> bool {
	frames.send(Ok(Frame::data(Bytes::from(format!("data: {value}\n\n"))))).await.is_ok()
}

#[cfg(test)]
mod tests {
	use super::is_loopback_authority;

	#[test]
	fn only_loopback_names_are_loopback_authorities() {
		for local in [
			"127.0.0.1:8080",
			"127.0.0.1",
			"localhost:8080",
			"LOCALHOST",
			"[::1]:8080",
			"[::1]",
			"127.1.2.3:1",
		] {
			assert!(is_loopback_authority(local), "{local}");
		}
		for other in [
			"evil.example:8080",
			"10.0.0.1:8080",
			"[2001:db8::1]:80",
			"",
			"localhost.evil:8080",
			"127.0.0.1.evil",
		] {
			assert!(!is_loopback_authority(other), "{other}");
		}
	}
}
