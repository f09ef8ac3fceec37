//! `/dllm/tokens/1`: a generation's tokens, streamed while they are produced.
//!
//! The first-chunk miner of a generator pipeline sees every token (the last chunk's
//! sample comes back up the pipeline to be embedded), so it publishes each one, with
//! the text it adds, in its [`TokenStreams`]. Any node fetches them by task id:
//! [`TokenRequest`] asks for the tokens from an index on, and the miner answers as
//! soon as there is one (a long poll, at most [`LONG_POLL`]). The requesting node
//! asks only the peer the chain assigned (the registered peer id of the pipeline's
//! chunk-0 expert; libp2p authenticates it), so what it relays is what that miner
//! produced. The chain's verdict still decides: streamed tokens are a preview of the
//! output the pipeline will publish.
//!
//! Bounded on both sides: a page holds at most [`MAX_PAGE_TOKENS`] tokens and
//! [`MAX_RESPONSE_BYTES`]; a miner keeps at most [`MAX_STREAMS`] streams of at most
//! [`MAX_STREAM_TOKENS`] tokens, ended ones for [`KEEP_ENDED`], and holds at most
//! [`MAX_WAITING`] long polls open at once.

use codec::{Decode, Encode};
use dllm_primitives::market::TaskId;
use pallet_poaw::PipelineIndex;
use polkadot_sdk::sc_network::{
	request_responses::{IncomingRequest, OutgoingResponse},
	service::traits::NetworkService,
	IfDisconnected, PeerId, ProtocolName,
};
use std::{
	collections::HashMap,
	sync::{
		atomic::{AtomicUsize, Ordering},
		Mutex,
	},
	time::{Duration, Instant},
};

/// The protocol's name.
pub const PROTOCOL_NAME: &str = "/dllm/tokens/1";
/// How long a miner holds a request open waiting for a token past `from`.
pub const LONG_POLL: Duration = Duration::from_secs(5);
/// How long a requester waits for an answer (a long poll and the network around it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// A request is a task id, a pipeline and an index.
pub const MAX_REQUEST_BYTES: u64 = 64;
/// A page's bound: what a page can hold (tokens and their text) plus its framing.
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
/// Most tokens in one page.
pub const MAX_PAGE_TOKENS: usize = 256;
/// Most text bytes in one page (the rest of [`MAX_RESPONSE_BYTES`] is framing).
const MAX_PAGE_TEXT: usize = 48 * 1024;
/// Most streams a miner keeps.
pub const MAX_STREAMS: usize = 1024;
/// Most tokens of one stream (a context is at most this long).
pub const MAX_STREAM_TOKENS: usize = 1 << 17;
/// How long a miner keeps an ended stream for late readers.
pub const KEEP_ENDED: Duration = Duration::from_secs(600);
/// Most long polls a miner holds open at once; more are answered at once.
pub const MAX_WAITING: usize = 64;

/// The protocol's name as sc-network takes it.
pub fn protocol_name() -> ProtocolName {
	ProtocolName::from(PROTOCOL_NAME)
}

/// Which stream: a task's generator pipeline.
pub type StreamKey = (TaskId, PipelineIndex);

/// Tokens of `task`'s `pipeline` from index `from` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct TokenRequest {
	/// The task.
	pub task: TaskId,
	/// Its generator pipeline.
	pub pipeline: PipelineIndex,
	/// The first token wanted (0: the first generated token).
	pub from: u32,
}

/// One generated token.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct StreamedToken {
	/// Its id in the model's vocabulary.
	pub token: u32,
	/// The UTF-8 text it adds to the output (empty inside a multi-byte character).
	pub text: Vec<u8>,
}

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum StreamState {
	/// Tokens are still being produced.
	Generating,
	/// The last token was produced (end of sequence or `max_tokens`).
	Finished,
	/// The pipeline stopped before its end (a stage failed; the chain may replace it
	/// and a new stream start), or a retried pass produced other tokens than those
	/// streamed: nothing more comes from this stream.
	Stopped,
}

/// A miner's answer.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum TokenResponse {
	/// Tokens from the index asked for (none if none came within the long poll).
	Page {
		/// The tokens.
		tokens: Vec<StreamedToken>,
		/// Tokens the stream holds now.
		total: u32,
		/// Where the stream stands.
		state: StreamState,
	},
	/// This node publishes no such stream (not its slot, not started, or forgotten).
	Unknown,
	/// Too many requests wait; ask again.
	Busy,
	/// The request could not be decoded.
	Malformed,
}

struct Stream {
	tokens: Vec<StreamedToken>,
	state: StreamState,
	ended_at: Option<Instant>,
}

/// The streams a miner publishes, and the long polls waiting on them.
pub struct TokenStreams {
	streams: Mutex<HashMap<StreamKey, Stream>>,
	changed: tokio::sync::watch::Sender<u64>,
	waiting: AtomicUsize,
}

impl Default for TokenStreams {
	fn default() -> Self {
		TokenStreams {
			streams: Default::default(),
			changed: tokio::sync::watch::channel(0).0,
			waiting: AtomicUsize::new(0),
		}
	}
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
	// Single inserts and updates: a panic elsewhere cannot leave the map inconsistent.
	mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TokenStreams {
	/// Starts publishing `key` (a new generation, or a retried one: then the tokens
	/// already streamed stay, and the retry must reproduce them).
	pub fn start(&self, key: StreamKey) {
		let mut streams = lock(&self.streams);
		Self::prune(&mut streams);
		let stream = streams.entry(key).or_insert_with(|| Stream {
			tokens: Vec::new(),
			state: StreamState::Generating,
			ended_at: None,
		});
		if stream.state != StreamState::Finished {
			stream.state = StreamState::Generating;
			stream.ended_at = None;
		}
		drop(streams);
		self.notify();
	}

	/// Publishes token `index` of `key`. An index already streamed must carry the same
	/// token (a retried pass); another one stops the stream, since its readers cannot
	/// take tokens back.
	pub fn push(&self, key: StreamKey, index: u32, token: StreamedToken) {
		let mut streams = lock(&self.streams);
		let Some(stream) = streams.get_mut(&key) else { return };
		if stream.state != StreamState::Generating {
			return;
		}
		let index = index as usize;
		match stream.tokens.get(index) {
			Some(known) if known.token == token.token => {}
			Some(_) => {
				log::warn!(
					target: crate::miner::LOG_TARGET,
					"task {} pipeline {}: token {index} differs from the one streamed; the \
					 stream stops",
					key.0, key.1,
				);
				stream.state = StreamState::Stopped;
				stream.ended_at = Some(Instant::now());
			}
			None if index == stream.tokens.len() && index < MAX_STREAM_TOKENS => {
				stream.tokens.push(token);
			}
			None => {
				stream.state = StreamState::Stopped;
				stream.ended_at = Some(Instant::now());
			}
		}
		drop(streams);
		self.notify();
	}

	/// `key` ended: `Finished` after its last token, `Stopped` when the pipeline failed.
	pub fn end(&self, key: StreamKey, state: StreamState) {
		let mut streams = lock(&self.streams);
		if let Some(stream) = streams.get_mut(&key) {
			if stream.state == StreamState::Generating {
				stream.state = state;
				stream.ended_at = Some(Instant::now());
			}
		}
		drop(streams);
		self.notify();
	}

	/// The tokens of `request` available now.
	pub fn page(&self, request: &TokenRequest) -> TokenResponse {
		let streams = lock(&self.streams);
		let Some(stream) = streams.get(&(request.task, request.pipeline)) else {
			return TokenResponse::Unknown;
		};
		let mut tokens = Vec::new();
		let mut text = 0;
		for token in stream.tokens.iter().skip(request.from as usize) {
			if tokens.len() == MAX_PAGE_TOKENS
				|| (!tokens.is_empty() && text + token.text.len() > MAX_PAGE_TEXT)
			{
				break;
			}
			text += token.text.len();
			tokens.push(token.clone());
		}
		TokenResponse::Page { tokens, total: stream.tokens.len() as u32, state: stream.state }
	}

	/// The tokens of `request`, waiting up to `timeout` for one while the stream is
	/// still generating.
	pub async fn wait_page(&self, request: &TokenRequest, timeout: Duration) -> TokenResponse {
		let mut changed = self.changed.subscribe();
		let until = tokio::time::Instant::now() + timeout;
		loop {
			changed.mark_unchanged();
			let page = self.page(request);
			let waits = matches!(
				&page,
				TokenResponse::Page { tokens, state: StreamState::Generating, .. } if tokens.is_empty()
			);
			if !waits {
				return page;
			}
			match tokio::time::timeout_at(until, changed.changed()).await {
				Ok(Ok(())) => continue,
				_ => return page,
			}
		}
	}

	/// Answers `/dllm/tokens/1` requests until the node stops.
	pub async fn serve(
		self: std::sync::Arc<Self>,
		requests: async_channel::Receiver<IncomingRequest>,
		spawner: polkadot_sdk::sc_service::SpawnTaskHandle,
	) {
		while let Ok(request) = requests.recv().await {
			let streams = self.clone();
			spawner.spawn("dllm-tokens-request", Some("dllm-miner"), async move {
				let response = streams.answer(&request.payload).await;
				let _ = request.pending_response.send(OutgoingResponse {
					result: Ok(response.encode()),
					reputation_changes: Vec::new(),
					sent_feedback: None,
				});
			});
		}
	}

	async fn answer(&self, payload: &[u8]) -> TokenResponse {
		let Ok(request) = TokenRequest::decode(&mut &payload[..]) else {
			return TokenResponse::Malformed;
		};
		if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
			self.waiting.fetch_sub(1, Ordering::SeqCst);
			return match self.page(&request) {
				TokenResponse::Page { tokens, .. } if tokens.is_empty() => TokenResponse::Busy,
				page => page,
			};
		}
		let page = self.wait_page(&request, LONG_POLL).await;
		self.waiting.fetch_sub(1, Ordering::SeqCst);
		page
	}

	fn notify(&self) {
		self.changed.send_modify(|version| *version = version.wrapping_add(1));
	}

	/// Forgets streams ended longer than [`KEEP_ENDED`] ago, then the oldest ended
	/// ones beyond [`MAX_STREAMS`] (a running stream is never dropped: the worker
	/// runs at most its slots' worth).
	fn prune(streams: &mut HashMap<StreamKey, Stream>) {
		streams.retain(|_, stream| stream.ended_at.is_none_or(|at| at.elapsed() < KEEP_ENDED));
		while streams.len() >= MAX_STREAMS {
			let oldest = streams
				.iter()
				.filter_map(|(key, stream)| stream.ended_at.map(|at| (at, *key)))
				.min()
				.map(|(_, key)| key);
			match oldest {
				Some(key) => {
					streams.remove(&key);
				}
				None => break,
			}
		}
	}
}

/// Asks `peer` for the tokens of `request`.
pub async fn fetch(
	network: &dyn NetworkService,
	peer: PeerId,
	request: TokenRequest,
) -> Result<TokenResponse, String> {
	let (reply, _) = network
		.request(peer, protocol_name(), request.encode(), None, IfDisconnected::TryConnect)
		.await
		.map_err(|e| format!("peer {peer}: {e}"))?;
	TokenResponse::decode(&mut &reply[..])
		.map_err(|e| format!("peer {peer} sent a malformed token page: {e}"))
}

#[cfg(test)]
mod tests {
	use super::*;

	fn token(id: u32, text: &str) -> StreamedToken {
		StreamedToken { token: id, text: text.as_bytes().to_vec() }
	}

	fn tokens_of(response: TokenResponse) -> (Vec<u32>, u32, StreamState) {
		match response {
			TokenResponse::Page { tokens, total, state } => {
				(tokens.iter().map(|t| t.token).collect(), total, state)
			}
			other => panic!("not a page: {other:?}"),
		}
	}

	#[test]
	fn pages_follow_the_stream_and_a_retry_must_repeat_it() {
		let streams = TokenStreams::default();
		let request = |from| TokenRequest { task: 1, pipeline: 0, from };
		assert_eq!(streams.page(&request(0)), TokenResponse::Unknown);
		// Tokens published before the stream started are not kept.
		streams.push((1, 0), 0, token(5, "x"));
		streams.start((1, 0));
		assert_eq!(tokens_of(streams.page(&request(0))), (vec![], 0, StreamState::Generating));
		streams.push((1, 0), 0, token(5, "a"));
		streams.push((1, 0), 1, token(6, "b"));
		assert_eq!(tokens_of(streams.page(&request(1))), (vec![6], 2, StreamState::Generating));
		// A retried pass repeats the same tokens: nothing changes.
		streams.start((1, 0));
		streams.push((1, 0), 0, token(5, "a"));
		streams.push((1, 0), 2, token(7, "c"));
		streams.end((1, 0), StreamState::Finished);
		assert_eq!(tokens_of(streams.page(&request(0))), (vec![5, 6, 7], 3, StreamState::Finished));
		assert_eq!(tokens_of(streams.page(&request(9))), (vec![], 3, StreamState::Finished));
		// A finished stream stays finished; later pushes change nothing.
		streams.start((1, 0));
		streams.push((1, 0), 3, token(8, "d"));
		assert_eq!(tokens_of(streams.page(&request(0))).1, 3);

		// A retry that produces another token stops the stream.
		streams.start((2, 0));
		streams.push((2, 0), 0, token(5, "a"));
		streams.start((2, 0));
		streams.push((2, 0), 0, token(9, "z"));
		let request = TokenRequest { task: 2, pipeline: 0, from: 0 };
		assert_eq!(tokens_of(streams.page(&request)), (vec![5], 1, StreamState::Stopped));
		// So does a gap.
		streams.start((3, 0));
		streams.push((3, 0), 1, token(5, "a"));
		let request = TokenRequest { task: 3, pipeline: 0, from: 0 };
		assert_eq!(tokens_of(streams.page(&request)), (vec![], 0, StreamState::Stopped));
	}

	#[test]
	fn a_page_is_bounded_in_tokens_and_bytes() {
		let streams = TokenStreams::default();
		streams.start((1, 0));
		let long = "é".repeat(1000);
		for index in 0..600 {
			streams.push((1, 0), index, token(index, if index < 300 { "a" } else { &long }));
		}
		let (page, total, _) =
			tokens_of(streams.page(&TokenRequest { task: 1, pipeline: 0, from: 0 }));
		assert_eq!((page.len(), total), (MAX_PAGE_TOKENS, 600));
		let response = streams.page(&TokenRequest { task: 1, pipeline: 0, from: 300 });
		assert!(response.encode().len() as u64 <= MAX_RESPONSE_BYTES);
		let (page, _, _) = tokens_of(response);
		assert_eq!(page.len(), MAX_PAGE_TEXT / 2000);
		// One token longer than a page's text still goes out alone.
		streams.start((2, 0));
		streams.push((2, 0), 0, token(1, &"x".repeat(MAX_PAGE_TEXT + 1)));
		let (page, _, _) = tokens_of(streams.page(&TokenRequest { task: 2, pipeline: 0, from: 0 }));
		assert_eq!(page, vec![1]);
	}

	#[test]
	fn ended_streams_are_forgotten_oldest_first_running_ones_never() {
		let mut map = HashMap::new();
		let now = Instant::now();
		for task in 0..MAX_STREAMS as u64 {
			map.insert(
				(task, 0),
				Stream {
					tokens: Vec::new(),
					state: if task == 0 { StreamState::Generating } else { StreamState::Finished },
					ended_at: (task != 0).then(|| now - Duration::from_millis(task)),
				},
			);
		}
		TokenStreams::prune(&mut map);
		assert_eq!(map.len(), MAX_STREAMS - 1);
		assert!(map.contains_key(&(0, 0)), "running");
		assert!(!map.contains_key(&(MAX_STREAMS as u64 - 1, 0)), "the oldest ended one");
		map.get_mut(&(1, 0)).unwrap().ended_at = Some(now - KEEP_ENDED);
		TokenStreams::prune(&mut map);
		assert!(!map.contains_key(&(1, 0)), "ended too long ago");
	}

	#[test]
	fn a_long_poll_answers_with_the_next_token_or_empty_after_its_time() {
		tokio::runtime::Builder::new_current_thread()
			.enable_time()
			.build()
			.expect("a test runtime")
			.block_on(long_poll());
	}

	async fn long_poll() {
		let streams = std::sync::Arc::new(TokenStreams::default());
		streams.start((1, 0));
		let request = TokenRequest { task: 1, pipeline: 0, from: 0 };
		let empty = streams.wait_page(&request, Duration::from_millis(20)).await;
		assert_eq!(tokens_of(empty), (vec![], 0, StreamState::Generating));
		let publisher = streams.clone();
		let waiter = tokio::spawn({
			let streams = streams.clone();
			async move { streams.wait_page(&request, Duration::from_secs(60)).await }
		});
		tokio::time::sleep(Duration::from_millis(20)).await;
		publisher.push((1, 0), 0, token(4, "a"));
		assert_eq!(tokens_of(waiter.await.unwrap()), (vec![4], 1, StreamState::Generating));
		// An end wakes a waiter too.
		let request = TokenRequest { task: 1, pipeline: 0, from: 1 };
		let waiter = tokio::spawn({
			let streams = streams.clone();
			async move { streams.wait_page(&request, Duration::from_secs(60)).await }
		});
		tokio::time::sleep(Duration::from_millis(20)).await;
		publisher.end((1, 0), StreamState::Stopped);
		assert_eq!(tokens_of(waiter.await.unwrap()), (vec![], 1, StreamState::Stopped));
		// Garbage is answered, never a panic.
		assert_eq!(streams.answer(&[1, 2]).await, TokenResponse::Malformed);
	}

	#[test]
	fn messages_round_trip_and_garbage_is_an_error() {
		let request = TokenRequest { task: 9, pipeline: 1, from: 3 };
		assert_eq!(TokenRequest::decode(&mut &request.encode()[..]).unwrap(), request);
		assert!(request.encode().len() as u64 <= MAX_REQUEST_BYTES);
		let page = TokenResponse::Page {
			tokens: vec![token(1, "hé")],
			total: 1,
			state: StreamState::Finished,
		};
		assert_eq!(TokenResponse::decode(&mut &page.encode()[..]).unwrap(), page);
		use rand::{rngs::StdRng, Rng, SeedableRng};
		let mut rng = StdRng::seed_from_u64(3);
		for _ in 0..20_000 {
			let len = rng.gen_range(0..48);
			let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
			let _ = TokenRequest::decode(&mut &bytes[..]);
			let _ = TokenResponse::decode(&mut &bytes[..]);
		}
	}
}
