//! `dllm_subscribeTask`: a task's tokens as its generator produces them, then the
//! chain's verdict; `dllm_quote`: the least fee for a prompt given as text.
//!
//! The node reads the task through the runtime API, asks the generator pipeline's
//! chunk-0 miner (the peer its expert registered) for the tokens over `/dllm/tokens/1`,
//! or its own miner's streams when it is that miner, and passes them on in order. When
//! the chain replaces that miner, the node asks the replacement from the next token
//! on. Once the task is finished on chain, one last item carries the verdict and the
//! accepted output, which is what counts: the streamed tokens are a preview of it.

use crate::{
	miner::chain::{ChainView, TaskView},
	service::FullClient,
	tokens::{self, StreamState, TokenRequest, TokenResponse, TokenStreams},
};
use dllm_primitives::market::{ModelId, TaskId};
use dllm_runtime::{AccountId, Balance, BlockNumber};
use futures::StreamExt;
use jsonrpsee::{
	core::{async_trait, RpcResult, SubscriptionResult},
	proc_macros::rpc,
	types::ErrorObjectOwned,
	PendingSubscriptionSink, SubscriptionMessage, SubscriptionSink,
};
use pallet_poaw::{PipelineIndex, Role, SlotState, TaskStatus, VerificationMode};
use polkadot_sdk::{sc_network::service::traits::NetworkService, sc_network::PeerId, sp_core::Get};
use serde::Serialize;
use std::{sync::Arc, time::Duration};

/// JSON-RPC error code: no such task on chain.
pub const UNKNOWN_TASK: i32 = 1001;
/// JSON-RPC error code: the chain could not be read.
pub const CHAIN_ERROR: i32 = 1002;

/// How long the stream waits for a block before it looks at the chain again.
const BLOCK_WAIT: Duration = Duration::from_secs(6);
/// Pause before asking again a miner that is unreachable or not publishing yet.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Pause before asking again the assigned generator that has not opened the task's
/// stream yet: it opens it as it starts generating, often well within a block, and a
/// stream found a block late would arrive in one burst (6 s late on 6 s blocks).
const NOT_OPEN_PAUSE: Duration = Duration::from_millis(100);
/// Quick looks at a stream not open yet (10 s of them) before looking once a block.
const NOT_OPEN_TRIES: u32 = 100;

/// One item of a task's subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum TaskEvent {
	/// A generated token, in order from index 0.
	#[serde(rename_all = "camelCase")]
	Token {
		/// Its position among the generated tokens.
		index: u32,
		/// Its id.
		token: u32,
		/// The text it adds to the output (empty inside a multi-byte character).
		text: String,
	},
	/// The chain's verdict; nothing follows.
	#[serde(rename_all = "camelCase")]
	Final {
		/// The task.
		task: TaskId,
		/// `Completed` (paid out), `Expired` (refunded), or `Forgotten` (its record
		/// was removed before this node saw it end).
		status: String,
		/// What the requester paid, miners and community together (a decimal string).
		fee: Option<String>,
		/// What went back to the requester.
		refunded: Option<String>,
		/// Paid to miners.
		miners: Option<String>,
		/// Paid to the community fund.
		community: Option<String>,
		/// The accepted output's text.
		output: Option<String>,
		/// The accepted output's token ids.
		tokens: Option<Vec<u32>>,
		/// The prompt's tokens as the generator counted them.
		prompt_tokens: Option<u32>,
	},
}

/// JSON-RPC error code: the chain gives no quote (the reason's name is the message).
pub const NO_QUOTE: i32 = 1003;
/// JSON-RPC error code: the prompt cannot be submitted (empty or too long).
pub const BAD_PROMPT: i32 = 1004;
/// `dllm_quote` was asked for a number of generators the chain does not take.
pub const BAD_GENERATORS: i32 = 1005;

/// What `dllm_quote` answers: the least `max_fee` `submit_task` accepts now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
	/// The least `max_fee` (a decimal string: balances exceed JSON's safe integers).
	pub max_fee: String,
	/// Pipelines the auction can form now (under prefill verification the generators
	/// asked for).
	pub redundancy: u8,
	/// Price per token per layer the quote covers in every chunk (a decimal string).
	pub price_per_token_layer: String,
	/// Tokens paid for: the chain's bound on the prompt's tokens plus `max_tokens`.
	pub tokens: u32,
	/// Layers of the model.
	pub layers: u32,
	/// How the work is checked (`Prefill` or `Redundant`).
	pub mode: String,
}

/// The DLLM task RPC.
#[rpc(server, namespace = "dllm")]
pub trait DllmTaskApi {
	/// The least fee `submit_task` accepts now for `prompt` (text: the chain counts its
	/// UTF-8 bytes) and `max_tokens` on `model`; with `generators` (1 when left out), the
	/// least fee `submit_task_with_generators` accepts for that many.
	#[method(name = "quote")]
	fn quote(
		&self,
		model: ModelId,
		prompt: String,
		max_tokens: u32,
		generators: Option<u8>,
	) -> RpcResult<Quote>;

	/// Streams `task`'s generated tokens, then the chain's verdict.
	#[subscription(
		name = "subscribeTask" => "taskEvent",
		unsubscribe = "unsubscribeTask",
		item = TaskEvent,
	)]
	async fn subscribe_task(&self, task: TaskId) -> SubscriptionResult;
}

/// What the task RPC reads: the chain, the network, and this node's own streams when
/// it is a miner.
#[derive(Clone)]
pub struct TaskRpc {
	chain: ChainView,
	network: Arc<dyn NetworkService>,
	local: Option<Arc<TokenStreams>>,
}

impl TaskRpc {
	pub fn new(
		client: Arc<FullClient>,
		network: Arc<dyn NetworkService>,
		local: Option<Arc<TokenStreams>>,
	) -> Self {
		TaskRpc { chain: ChainView::new(client), network, local }
	}

	fn task(&self, task: TaskId) -> Result<Option<TaskView>, ErrorObjectOwned> {
		let (best, _) = self.chain.best();
		self.chain
			.task(best, task)
			.map_err(|e| ErrorObjectOwned::owned(CHAIN_ERROR, e.to_string(), None::<()>))
	}

	/// Who publishes the task's tokens: the generator pipeline's chunk-0 miner.
	fn source(&self, details: &TaskView) -> Option<(PeerId, PipelineIndex)> {
		let slot = generator_slot(details)?;
		let expert = self.chain.expert(self.chain.best().0, &slot.expert).ok()??;
		Some((PeerId::from_bytes(&expert.profile.peer_id).ok()?, slot.pipeline))
	}

	async fn page(&self, peer: PeerId, request: TokenRequest) -> Result<TokenResponse, String> {
		match &self.local {
			Some(streams) if peer == self.network.local_peer_id() => {
				Ok(streams.wait_page(&request, tokens::LONG_POLL).await)
			}
			_ => tokens::fetch(&*self.network, peer, request).await,
		}
	}

	/// Relays `task`'s tokens to `sink`, then its verdict, until the chain finishes the
	/// task or the receiver is dropped (the RPC's and the OpenAI API's clients).
	pub async fn relay(
		&self,
		task: TaskId,
		sink: tokio::sync::mpsc::Sender<TaskEvent>,
	) -> Result<(), String> {
		let sink = &sink;
		let mut imports = self.chain.imports();
		let mut next = 0u32;
		let mut finished = false;
		// Quick looks in a row at a stream not open yet.
		let mut unopened = 0u32;
		loop {
			let details = self.task(task).map_err(|e| e.message().to_string())?;
			let Some(details) = details else {
				send(sink, &forgotten(task)).await?;
				return Ok(());
			};
			if !details.task.status.is_open() {
				send(sink, &verdict(&details)).await?;
				return Ok(());
			}
			let source = if finished { None } else { self.source(&details) };
			let Some((peer, pipeline)) = source else {
				// Nothing to fetch now.
				next_block(&mut imports).await?;
				continue;
			};
			match self.page(peer, TokenRequest { task, pipeline, from: next }).await {
				Ok(TokenResponse::Page { tokens, total, state }) => {
					unopened = 0;
					for token in tokens {
						let text = String::from_utf8_lossy(&token.text).into_owned();
						send(sink, &TaskEvent::Token { index: next, token: token.token, text })
							.await?;
						next += 1;
					}
					// A stopped stream may start again (a retry, or the chain's
					// replacement of the miner); a finished one is complete.
					if state == StreamState::Finished && next >= total {
						finished = true;
					} else if state == StreamState::Stopped && next >= total {
						next_block(&mut imports).await?;
					}
				}
				// Not published there yet: look again soon, or at the next block (which may
				// name another generator).
				Ok(TokenResponse::Unknown) if unopened < NOT_OPEN_TRIES => {
					unopened += 1;
					tokio::select! {
						_ = tokio::time::sleep(NOT_OPEN_PAUSE) => {}
						waited = next_block(&mut imports) => waited?,
					}
				}
				Ok(TokenResponse::Unknown) => next_block(&mut imports).await?,
				Ok(TokenResponse::Malformed) => next_block(&mut imports).await?,
				Ok(TokenResponse::Busy) | Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
			}
		}
	}
}

/// Waits for the next imported block (at most [`BLOCK_WAIT`]); an error once the node
/// stops importing.
async fn next_block(
	imports: &mut polkadot_sdk::sc_client_api::ImportNotifications<dllm_runtime::opaque::Block>,
) -> Result<(), String> {
	match tokio::time::timeout(BLOCK_WAIT, imports.next()).await {
		Ok(None) => Err("the node is stopping".to_string()),
		_ => Ok(()),
	}
}

type SlotView = pallet_poaw::Slot<AccountId, Balance, BlockNumber>;

/// The slot whose miner publishes the task's tokens: chunk 0 of the generator
/// pipeline (under redundancy, of the first pipeline still live).
fn generator_slot(details: &TaskView) -> Option<&SlotView> {
	let generates = |role: Role| match details.task.mode {
		VerificationMode::Prefill => role == Role::Generator,
		VerificationMode::Redundant => true,
	};
	details.slots.iter().filter(|slot| slot.chunk == 0 && generates(slot.role)).min_by_key(|slot| {
		(matches!(slot.state, SlotState::Missed | SlotState::Abandoned), slot.pipeline)
	})
}

fn forgotten(task: TaskId) -> TaskEvent {
	TaskEvent::Final {
		task,
		status: "Forgotten".into(),
		fee: None,
		refunded: None,
		miners: None,
		community: None,
		output: None,
		tokens: None,
		prompt_tokens: None,
	}
}

/// The final item of a finished task.
pub(crate) fn verdict(details: &TaskView) -> TaskEvent {
	let settlement = details.task.settlement.as_ref();
	let accepted = settlement
		.and_then(|s| s.output_hash)
		.and_then(|hash| details.outputs.iter().find(|output| output.hash == hash));
	let status = match details.task.status {
		TaskStatus::Completed => "Completed",
		TaskStatus::Expired => "Expired",
		_ => "Disputed",
	};
	TaskEvent::Final {
		task: details.id,
		status: status.into(),
		fee: settlement.map(|s| s.fee.to_string()),
		refunded: settlement.map(|s| s.refunded.to_string()),
		miners: settlement.map(|s| s.miners.to_string()),
		community: settlement.map(|s| s.community.to_string()),
		output: accepted.map(|output| String::from_utf8_lossy(&output.text).into_owned()),
		tokens: accepted.map(|output| output.tokens.clone()),
		prompt_tokens: accepted.map(|output| output.prompt_tokens),
	}
}

async fn send(
	sink: &tokio::sync::mpsc::Sender<TaskEvent>,
	event: &TaskEvent,
) -> Result<(), String> {
	sink.send(event.clone()).await.map_err(|_| "the client left".to_string())
}

async fn send_json(sink: &SubscriptionSink, event: &TaskEvent) -> Result<(), String> {
	let message = SubscriptionMessage::from_json(event).map_err(|e| e.to_string())?;
	sink.send(message).await.map_err(|_| "the client left".to_string())
}

#[async_trait]
impl DllmTaskApiServer for TaskRpc {
	fn quote(
		&self,
		model: ModelId,
		prompt: String,
		max_tokens: u32,
		generators: Option<u8>,
	) -> RpcResult<Quote> {
		let generators = generators.unwrap_or(1);
		let most_generators =
			<<dllm_runtime::Runtime as pallet_poaw::Config>::MaxGenerators as Get<u8>>::get();
		if !(1..=most_generators).contains(&generators) {
			return Err(ErrorObjectOwned::owned(
				BAD_GENERATORS,
				format!("{generators} generators asked for; a task takes 1 to {most_generators}"),
				None::<()>,
			));
		}
		let bytes = prompt.len();
		let most =
			<<dllm_runtime::Runtime as pallet_poaw::Config>::MaxPromptBytes as Get<u32>>::get();
		if bytes == 0 || bytes > most as usize {
			return Err(ErrorObjectOwned::owned(
				BAD_PROMPT,
				format!("the prompt has {bytes} bytes; submit_task takes 1 to {most}"),
				None::<()>,
			));
		}
		let (best, _) = self.chain.best();
		let tokens = pallet_poaw::prompt_token_bound(bytes as u32);
		let quote = self
			.chain
			.quote(best, model, tokens, max_tokens, generators)
			.map_err(|e| ErrorObjectOwned::owned(CHAIN_ERROR, e.to_string(), None::<()>))?
			.map_err(|reason| {
				ErrorObjectOwned::owned(NO_QUOTE, format!("{reason:?}"), None::<()>)
			})?;
		Ok(Quote {
			max_fee: quote.max_fee.to_string(),
			redundancy: quote.redundancy,
			price_per_token_layer: quote.price_per_token_layer.to_string(),
			tokens: quote.tokens,
			layers: quote.layers,
			mode: format!("{:?}", quote.mode),
		})
	}

	async fn subscribe_task(
		&self,
		pending: PendingSubscriptionSink,
		task: TaskId,
	) -> SubscriptionResult {
		match self.task(task) {
			Err(error) => {
				pending.reject(error).await;
				return Ok(());
			}
			Ok(None) => {
				pending
					.reject(ErrorObjectOwned::owned(
						UNKNOWN_TASK,
						format!(
							"unknown task {task}: never submitted, or its record was removed \
							 after the retention period"
						),
						None::<()>,
					))
					.await;
				return Ok(());
			}
			Ok(Some(_)) => {}
		}
		let sink = pending.accept().await?;
		// Ends when the task ends on chain or the client leaves, whichever comes first.
		let (events, mut received) = tokio::sync::mpsc::channel(64);
		let relay = self.relay(task, events);
		let forward = async {
			while let Some(event) = received.recv().await {
				send_json(&sink, &event).await?;
			}
			Ok(())
		};
		let both = Box::pin(async {
			let (relayed, forwarded) = futures::future::join(relay, forward).await;
			relayed.and(forwarded)
		});
		let left = Box::pin(sink.closed());
		let outcome = match futures::future::select(both, left).await {
			futures::future::Either::Left((outcome, _)) => outcome,
			futures::future::Either::Right(((), _)) => Err("the client left".to_string()),
		};
		if let Err(why) = outcome {
			log::debug!(target: crate::miner::LOG_TARGET, "task {task}'s subscription ended: {why}");
		}
		Ok(())
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn items_serialize_as_the_js_client_reads_them() {
		let token = TaskEvent::Token { index: 3, token: 72, text: "H".into() };
		assert_eq!(
			serde_json::to_value(&token).unwrap(),
			serde_json::json!({ "type": "token", "index": 3, "token": 72, "text": "H" })
		);
		let done = forgotten(4);
		let value = serde_json::to_value(&done).unwrap();
		assert_eq!(value["type"], "final");
		assert_eq!(value["status"], "Forgotten");
		assert_eq!(value["task"], 4);
		assert!(value["fee"].is_null());
	}
}
