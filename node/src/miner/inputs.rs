//! Evidence for disputes: every stage keeps the activation messages it received, each
//! signed by the miner that sent it, and the referee of a disputed chunk fetches the
//! losing side's and reruns that stage on them. The chain then blames the stage whose
//! output does not follow from its own input, or its upstream when the input itself
//! does not follow from the prefix (docs/protocol.md, "Blame follows the computation").

use super::{
	chain::{Assignment, TaskView},
	compute::{self, Recheck},
	protocol::{hop_payload, protocol_name, Refusal, SignedMessage, StageRequest, StageResponse},
	store::{SlotKey, SlotResult},
	worker::{
		lock, max_fingerprint_bytes, no_session, reveal_call, Completion, LoopState, Stage, Worker,
	},
	LOG_TARGET,
};
use codec::{Decode, Encode};
use dllm_inference::fingerprint::{compare, Fingerprint, RowKind};
use dllm_primitives::market::{ChunkIndex, NumericFormat, TaskId};
use dllm_runtime::AccountId;
use pallet_poaw::{InputCheck, PipelineIndex, Role, TaskStatus};
use polkadot_sdk::{
	sc_network::{IfDisconnected, PeerId},
	sp_core::{sr25519, Pair},
};
use std::{sync::Arc, time::Duration};

/// Received input is kept for at most this many slots and bytes (the oldest tasks'
/// outside a dispute go first).
const MAX_KEPT_INPUTS: usize = 64;
const MAX_KEPT_INPUT_BYTES: usize = 4 << 30;

/// What one slot received, in order.
#[derive(Default)]
pub struct InputLog {
	/// The messages, each signed by the previous chunk's miner.
	messages: Vec<Arc<SignedMessage>>,
	/// Whether the stage kept its result (the log no longer changes).
	frozen: bool,
	/// Whether the frozen log is on disk: then the memory bound may drop `messages`,
	/// which are read back from there.
	on_disk: bool,
}

impl InputLog {
	fn bytes(&self) -> usize {
		self.messages.iter().map(|signed| signed.message.len()).sum()
	}
}

/// How long a referee waits for the losing stage's whole input, and for one page of it.
const INPUT_CHECK_TIME: Duration = Duration::from_secs(30);
const INPUT_REQUEST_TIME: Duration = Duration::from_secs(10);
/// How often one page is asked for while the stage is unreachable or not ready.
const INPUT_ATTEMPTS: u32 = 6;
/// The disputed generator's pipeline and the verifier's check of it (the pair).
fn disputed_sides(task: &TaskView) -> [PipelineIndex; 2] {
	let pair = task.task.dispute.map_or(0, |dispute| dispute.pair);
	[pair, task.task.verifier_of(pair)]
}

/// Referee pipelines per round, as set by the runtime this node was built with (the
/// chain's own value is the same unless a runtime upgrade changed it).
fn referees_per_round() -> u8 {
	use polkadot_sdk::sp_core::Get;
	<dllm_runtime::Runtime as pallet_poaw::Config>::RefereesPerRound::get()
}

/// A referee slot's input check: being computed, or what it reveals.
#[derive(Clone)]
pub enum InputCheckState {
	/// Fetching the losing stage's input and rerunning it.
	Running,
	/// Done: the check to reveal (`None`: none applies or it could not be made).
	Ready(Option<InputCheck<Vec<u8>>>),
}

/// Whether `signed` is message `signed.index` into slot `receiver`, signed by one of
/// `signers` (a stage's keys: [`Worker::stage_signers`]).
fn signed_by(signers: &[AccountId], receiver: SlotKey, signed: &SignedMessage) -> bool {
	let payload = hop_payload(
		receiver.task,
		receiver.pipeline,
		receiver.chunk,
		signed.index,
		&signed.message,
	);
	let signature = sr25519::Signature::from_raw(signed.signature);
	signers.iter().any(|signer| {
		let public = sr25519::Public::from_raw(*<AccountId as AsRef<[u8; 32]>>::as_ref(signer));
		sr25519::Pair::verify(&signature, &payload, &public)
	})
}

/// Whether two encoded fingerprints agree under `worker`'s profile for the looser of
/// two formats (as the chain compares them).
fn agree(worker: &Worker, formats: (NumericFormat, NumericFormat), a: &[u8], b: &[u8]) -> bool {
	let params = worker.model.profile(formats.0, formats.1);
	let (Ok(a), Ok(b)) = (Fingerprint::decode(a), Fingerprint::decode(b)) else { return false };
	let tolerance = match a.kind {
		RowKind::Hidden => params.hidden,
		RowKind::Logits => params.logits,
	};
	compare(&a, &b, &tolerance).is_ok_and(|c| c.accepted)
}

impl Worker {
	/// The keys whose signature makes a message `expert`'s: its own, and the operator
	/// key it names on chain now.
	pub(super) fn stage_signers(&self, expert: &AccountId) -> Vec<AccountId> {
		let (best, _) = self.chain.best();
		let mut signers = vec![expert.clone()];
		match self.chain.operator(best, expert) {
			Ok(operator) => signers.extend(operator),
			Err(e) => log::warn!(target: LOG_TARGET, "{e}: checking {expert}'s own key only"),
		}
		signers
	}

	/// Signs message `index` of the stream into `receiver` (this miner is its sender).
	pub(super) fn sign_hop(
		&self,
		receiver: SlotKey,
		index: u32,
		message: &[u8],
	) -> Result<[u8; 64], Refusal> {
		let payload = hop_payload(receiver.task, receiver.pipeline, receiver.chunk, index, message);
		self.submitter.sign_message(&payload).map_err(|e| Refusal::Failed(e.to_string()))
	}

	/// Keeps a message `key`'s slot is about to compute on, once its signature shows it
	/// came from the previous chunk's miner. A resent message is kept once (with the
	/// signature just checked: the upstream may have been replaced); a different one at
	/// an index already kept replaces it and everything after it (a pipeline run again)
	/// until the stage kept its result: from then on the log is what it computed on.
	pub(super) fn record_input(
		&self,
		key: SlotKey,
		assignment: &Assignment,
		signed: SignedMessage,
	) -> Result<(), Refusal> {
		let upstream = key
			.chunk
			.checked_sub(1)
			.and_then(|chunk| assignment.pipeline_experts.get(chunk as usize))
			.ok_or(Refusal::WrongSender)?;
		if !signed_by(&self.stage_signers(upstream), key, &signed) {
			return Err(Refusal::BadRequest(
				"the message is not signed by the previous chunk's miner".into(),
			));
		}
		let mut inputs = lock(&self.inputs);
		let log = inputs.entry(key).or_default();
		if log.on_disk && log.messages.is_empty() {
			// Dropped from memory after the stage kept its result: what it computed on
			// is on disk and stays as it is; a resent step changes nothing.
			return Ok(());
		}
		let index = signed.index as usize;
		if let Some(kept) = log.messages.get_mut(index) {
			if kept.message == signed.message {
				*kept = Arc::new(signed);
				return Ok(());
			}
		}
		if log.frozen {
			return Err(Refusal::BadRequest(
				"this stage already kept its result on other input".into(),
			));
		}
		if index > log.messages.len() {
			return Err(Refusal::BadRequest(format!(
				"message {index} arrived before message {}",
				log.messages.len()
			)));
		}
		log.messages.truncate(index);
		log.messages.push(Arc::new(signed));
		Ok(())
	}

	/// The stage of `key` kept its result: what it received can no longer change. It is
	/// written to the miner's directory (on the blocking pool) before the result is
	/// committed, so that a restarted miner can still show it to a referee.
	pub(super) async fn freeze_input(&self, key: SlotKey) {
		// Shared handles under the lock; encoded and written on the blocking pool.
		let messages: Vec<Arc<SignedMessage>> = match lock(&self.inputs).get_mut(&key) {
			Some(log) => {
				log.frozen = true;
				log.messages.clone()
			}
			None => return,
		};
		let dir = self.store.dir().to_path_buf();
		let saved =
			tokio::task::spawn_blocking(move || super::store::save_input(&dir, key, &messages))
				.await
				.map_err(|e| format!("the write panicked: {e}"))
				.and_then(|saved| saved.map_err(|e| e.to_string()));
		if saved.is_ok() {
			if let Some(log) = lock(&self.inputs).get_mut(&key) {
				log.on_disk = true;
			}
		}
		if let Err(e) = saved {
			self.metrics.failure();
			log::error!(
				target: LOG_TARGET,
				"{key}: the input this stage computed on is not kept \
				 on disk ({e}); a restart before the task ends loses it",
			);
		}
	}

	/// What `key`'s stage received: in memory, or read back from the miner's directory
	/// (after a restart, or once the memory bound evicted it).
	async fn input_log(&self, key: SlotKey) -> Result<Vec<Arc<SignedMessage>>, Refusal> {
		if let Some(log) = lock(&self.inputs).get(&key).filter(|log| !log.messages.is_empty()) {
			return Ok(log.messages.clone());
		}
		let store = self.store.clone();
		let loaded = tokio::task::spawn_blocking(move || store.load_input(key))
			.await
			.map_err(|e| format!("the read panicked: {e}"))
			.and_then(|loaded| loaded.map_err(|e| e.to_string()));
		match loaded {
			// Not put back in memory: the bound stays as the pruning left it.
			Ok(Some(messages)) => Ok(messages.into_iter().map(Arc::new).collect()),
			Ok(None) => Err(no_session()),
			Err(e) => {
				log::error!(target: LOG_TARGET, "{e}");
				Err(Refusal::Failed(e))
			}
		}
	}

	/// Forgets the input of slots whose task ended (`status` at the best block `None` or
	/// closed; on disk only once it also `ended_at_finalized`), then, beyond
	/// [`MAX_KEPT_INPUTS`] slots or [`MAX_KEPT_INPUT_BYTES`] in memory, that of the oldest
	/// tasks not in a dispute: a disputed task's evidence goes last.
	pub(super) fn prune_inputs(
		&self,
		status: impl Fn(TaskId) -> Option<TaskStatus>,
		ended_at_finalized: impl Fn(TaskId) -> bool,
	) {
		let disputed = |task: TaskId| {
			matches!(status(task), Some(TaskStatus::Refereeing | TaskStatus::Judging))
		};
		for key in self.store.input_keys() {
			if !status(key.task).is_some_and(TaskStatus::is_open) && ended_at_finalized(key.task) {
				self.store.remove_input(key);
			}
		}
		let mut inputs = lock(&self.inputs);
		inputs.retain(|key, _| status(key.task).is_some_and(TaskStatus::is_open));
		// Only logs on disk may leave memory: a stage still computing needs its own.
		let mut keys: Vec<(bool, SlotKey)> = inputs
			.iter()
			.filter(|(_, log)| log.on_disk && !log.messages.is_empty())
			.map(|(key, _)| (disputed(key.task), *key))
			.collect();
		// Not disputed first, oldest first.
		keys.sort();
		let mut resident = inputs.values().filter(|log| !log.messages.is_empty()).count();
		let mut bytes: usize = inputs.values().map(InputLog::bytes).sum();
		for (_, key) in keys {
			if resident <= MAX_KEPT_INPUTS && bytes <= MAX_KEPT_INPUT_BYTES {
				break;
			}
			if let Some(log) = inputs.get_mut(&key) {
				bytes = bytes.saturating_sub(log.bytes());
				resident = resident.saturating_sub(1);
				log.messages = Vec::new();
				log::warn!(
					target: LOG_TARGET,
					"{key}: received input dropped from memory (over the \
					 bound of {MAX_KEPT_INPUTS} slots, {MAX_KEPT_INPUT_BYTES} bytes); a kept \
					 result's input is read back from disk when asked for",
				);
			}
		}
		drop(inputs);
	}

	/// A page of what slot `key` received, from message `from` on, for the referee of
	/// its chunk in the task's current dispute.
	pub(super) async fn input_page(
		&self,
		key: SlotKey,
		from: u32,
		peer: PeerId,
	) -> Result<StageResponse, Refusal> {
		let (best, _) = self.chain.best();
		let task = self
			.chain
			.task(best, key.task)
			.map_err(|e| Refusal::Failed(e.to_string()))?
			.ok_or(Refusal::NotAssigned)?;
		let is_peer = |expert: &AccountId| {
			self.peer_of(expert, false).is_ok_and(|p| p == peer)
				|| self.peer_of(expert, true).is_ok_and(|p| p == peer)
		};
		let referee = task.task.dispute.is_some_and(|dispute| {
			let round = dispute.round_pipelines(referees_per_round());
			dispute.chunk == key.chunk
				&& task.slots.iter().any(|slot| {
					slot.role == Role::Referee
						&& round.contains(&slot.pipeline)
						&& slot.chunk == key.chunk
						&& is_peer(&slot.expert)
				})
		});
		if !referee {
			return Err(Refusal::WrongSender);
		}
		// Shared handles; the bytes are copied after the lock.
		let log = self.input_log(key).await?;
		let (page, total): (Vec<Arc<SignedMessage>>, usize) = {
			let limit = super::protocol::max_request_bytes(
				self.model.config.max_position_embeddings,
				self.model.config.hidden_size,
			) as usize;
			let mut page = Vec::new();
			let mut bytes = 0usize;
			for signed in log.iter().skip(from as usize) {
				let size = signed.message.len() + 80;
				if !page.is_empty() && bytes + size > limit {
					break;
				}
				bytes += size;
				page.push(signed.clone());
			}
			(page, log.len())
		};
		let complete = from as usize + page.len() >= total;
		let messages = page.iter().map(|signed| (**signed).clone()).collect();
		Ok(StageResponse::Input { messages, complete })
	}

	/// The reveal of a slot, with its input check when it is the disputed chunk's
	/// referee (waiting, block by block, for the check started at its commit).
	pub(super) async fn reveal(
		self: &Arc<Self>,
		state: &mut LoopState,
		assignment: &Assignment,
		result: SlotResult,
		now: dllm_runtime::BlockNumber,
	) {
		let key = SlotKey::of(assignment);
		if !Self::may_check_input(assignment) {
			return self.submit_once(state, key, Stage::Reveal, now, reveal_call(result, None));
		}
		let known = state.input_checks.get(&key).cloned();
		match known {
			Some(InputCheckState::Ready(check)) => {
				self.submit_once(state, key, Stage::Reveal, now, reveal_call(result, check));
			}
			Some(InputCheckState::Running) => {}
			None => self.start_input_check(state, assignment, result),
		}
	}

	/// Whether `assignment` is a referee's slot that may owe an input check.
	fn may_check_input(assignment: &Assignment) -> bool {
		assignment.role == Role::Referee && assignment.chunk > 0
	}

	/// Starts, once, the input check of a referee's slot whose own result (`result`) is
	/// kept: both sides' fingerprints are on chain since the dispute opened, so it runs
	/// while the round commits, bounded by [`INPUT_CHECK_TIME`], and is ready by the
	/// reveal.
	pub(super) fn start_input_check(
		self: &Arc<Self>,
		state: &mut LoopState,
		assignment: &Assignment,
		result: SlotResult,
	) {
		let key = SlotKey::of(assignment);
		if !Self::may_check_input(assignment) || state.input_checks.contains_key(&key) {
			return;
		}
		state.input_checks.insert(key, InputCheckState::Running);
		let worker = self.clone();
		let assignment = assignment.clone();
		self.spawner.spawn("dllm-miner-input-check", Some("dllm-miner"), async move {
			let check = worker.input_check(&assignment, &result).await;
			worker.report(Completion::InputChecked { key, check });
		});
	}

	/// What this referee (slot `assignment`, whose own result is `result`) reveals about
	/// the losing side's stage: nothing when the dispute is not on its chunk or is about
	/// the sampling, or when its own fingerprint does not single out one side.
	async fn input_check(
		&self,
		assignment: &Assignment,
		result: &SlotResult,
	) -> Option<InputCheck<Vec<u8>>> {
		let (best, _) = self.chain.best();
		let task = match self.chain.task(best, assignment.task) {
			Ok(Some(task)) => task,
			Ok(None) => return None,
			Err(e) => {
				log::warn!(target: LOG_TARGET, "task {}: {e}", assignment.task);
				return None;
			}
		};
		let k = assignment.chunk;
		let dispute = task.task.dispute?;
		let round_open = matches!(task.task.status, TaskStatus::Refereeing | TaskStatus::Judging);
		if dispute.sampling || dispute.chunk != k || !round_open {
			return None;
		}
		let side = self.losing_side(&task, assignment, &result.fingerprint)?;
		let slot_of = |pipeline: PipelineIndex, chunk: ChunkIndex| {
			task.slots.iter().find(|s| s.pipeline == pipeline && s.chunk == chunk)
		};
		let stage = slot_of(side, k)?.expert.clone();
		let upstream = slot_of(side, k - 1)?.expert.clone();
		let fetched = tokio::time::timeout(
			INPUT_CHECK_TIME,
			self.fetch_input(&task, side, k, &stage, &upstream),
		)
		.await
		.unwrap_or_else(|_| Err(format!("no complete answer within {INPUT_CHECK_TIME:?}")));
		let messages = match fetched {
			Ok(messages) => messages,
			Err(why) => {
				log::warn!(
					target: LOG_TARGET,
					"task {} chunk {k}: side {side}'s stage gave no signed input: {why}",
					task.id,
				);
				return Some(InputCheck::Withheld { side });
			}
		};
		match self.rerun_stage(assignment, &task, side, messages).await {
			Ok(Recheck::Done { recomputed, input }) => {
				log::info!(
					target: LOG_TARGET,
					"task {} chunk {k}: side {side}'s stage rerun on its own input",
					task.id,
				);
				Some(InputCheck::Checked { side, recomputed, input })
			}
			Ok(Recheck::BadInput(why)) => {
				log::warn!(
					target: LOG_TARGET,
					"task {} chunk {k}: side {side}'s input makes no pass: {why}",
					task.id,
				);
				Some(InputCheck::Withheld { side })
			}
			Err(e) => {
				self.metrics.failure();
				log::error!(target: LOG_TARGET, "task {} chunk {k}: cannot rerun: {e}", task.id);
				None
			}
		}
	}

	/// The side whose revealed chunk-`k` fingerprint disagrees with this referee's
	/// (`own`), when exactly one does.
	fn losing_side(
		&self,
		task: &TaskView,
		assignment: &Assignment,
		own: &[u8],
	) -> Option<PipelineIndex> {
		let own_format = task
			.slots
			.iter()
			.find(|s| s.pipeline == assignment.pipeline && s.chunk == assignment.chunk)?
			.format;
		let disagreeing: Vec<PipelineIndex> = disputed_sides(task)
			.into_iter()
			.filter(|side| {
				let Some(index) = task
					.slots
					.iter()
					.position(|s| s.pipeline == *side && s.chunk == assignment.chunk)
				else {
					return true;
				};
				let format = task.slots[index].format;
				let revealed = task.fingerprints.iter().find(|(i, _)| *i as usize == index);
				!revealed.is_some_and(|(_, bytes)| agree(self, (own_format, format), own, bytes))
			})
			.collect();
		match disagreeing.as_slice() {
			[side] => Some(*side),
			_ => None,
		}
	}

	/// Every message `stage` (side `side`, chunk `k`) received, each checked to be
	/// signed by `upstream` (or its operator), in order.
	async fn fetch_input(
		&self,
		task: &TaskView,
		side: PipelineIndex,
		k: ChunkIndex,
		stage: &AccountId,
		upstream: &AccountId,
	) -> Result<Vec<Vec<u8>>, String> {
		let key = SlotKey { task: task.id, pipeline: side, chunk: k };
		let peer = self.peer_of(stage, false).map_err(|e| e.to_string())?;
		let signers = self.stage_signers(upstream);
		let mut messages: Vec<Vec<u8>> = Vec::new();
		// Each page holds at least one message, a pass has at most one per position, and
		// all of them hold at most the whole context's hidden states.
		let most = self.model.config.max_position_embeddings + 1;
		let most_bytes = super::protocol::max_request_bytes(
			self.model.config.max_position_embeddings,
			self.model.config.hidden_size,
		) as usize;
		let mut bytes = 0usize;
		while messages.len() <= most {
			let from = messages.len() as u32;
			let (page, complete) = self.input_request(peer, key, from).await?;
			if page.is_empty() && !complete {
				return Err("an empty page".into());
			}
			for signed in page {
				let index = messages.len() as u32;
				if signed.index != index || !signed_by(&signers, key, &signed) {
					return Err(format!("message {index} is not signed by the upstream miner"));
				}
				bytes += signed.message.len();
				if bytes > most_bytes {
					return Err("more input than the whole context's hidden states".into());
				}
				messages.push(signed.message);
			}
			if complete {
				return Ok(messages);
			}
		}
		Err("more messages than the context has positions".into())
	}

	/// One page of `key`'s input from `peer`, asked again while the stage cannot be
	/// reached yet (it may have just joined: no address known) or has not seen the
	/// referee round in its best block; the caller bounds the whole fetch.
	async fn input_request(
		&self,
		peer: PeerId,
		key: SlotKey,
		from: u32,
	) -> Result<(Vec<SignedMessage>, bool), String> {
		let request =
			StageRequest::Input { task: key.task, pipeline: key.pipeline, chunk: key.chunk, from }
				.encode();
		let mut attempt = 0u32;
		loop {
			let reply = self.network.request(
				peer,
				protocol_name(),
				request.clone(),
				None,
				IfDisconnected::TryConnect,
			);
			let reply = tokio::time::timeout(INPUT_REQUEST_TIME, reply)
				.await
				.map_err(|_| format!("no answer within {INPUT_REQUEST_TIME:?}"))?;
			let transient = match reply {
				Ok((bytes, _)) => match StageResponse::decode(&mut &bytes[..]) {
					Ok(StageResponse::Input { messages, complete }) => {
						return Ok((messages, complete))
					}
					Ok(StageResponse::Refused(
						refusal @ (Refusal::NotAssigned | Refusal::WrongSender | Refusal::Busy),
					)) => refusal.to_string(),
					Ok(StageResponse::Refused(refusal)) => return Err(refusal.to_string()),
					_ => return Err("malformed reply".into()),
				},
				Err(e) => format!("the request failed: {e}"),
			};
			attempt += 1;
			if attempt >= INPUT_ATTEMPTS {
				return Err(transient);
			}
			log::debug!(target: LOG_TARGET, "task {} chunk {}: input request: {transient}; again", key.task, key.chunk);
			tokio::time::sleep(Duration::from_millis(500 << attempt.min(4))).await;
		}
	}

	/// Reruns this referee's chunk on another stage's input (on the blocking pool).
	async fn rerun_stage(
		&self,
		assignment: &Assignment,
		task: &TaskView,
		side: PipelineIndex,
		messages: Vec<Vec<u8>>,
	) -> Result<Recheck, String> {
		let shard = self
			.model
			.shard(assignment.model, assignment.chunk)
			.ok_or("this miner does not serve the chunk")?;
		let generator = task.task.attested_generator(assignment.role, assignment.pipeline);
		let output = task
			.outputs
			.iter()
			.find(|output| output.pipeline == generator)
			.ok_or("the generator published no output")?;
		let prompt_len =
			self.model.prompt_tokens(&assignment.prompt).map_err(|e| e.to_string())?.len();
		let profile = self
			.model
			.check_profile(task, (assignment.pipeline, assignment.chunk), (side, assignment.chunk))
			.ok_or("the task's slots do not list both stages")?;
		let config = self.model.config.clone();
		let generated = output.tokens.clone();
		let stage = assignment.clone();
		tokio::task::spawn_blocking(move || {
			compute::recheck_stage(
				&shard,
				&stage,
				prompt_len,
				&generated,
				&config,
				&profile,
				&messages,
				max_fingerprint_bytes(),
			)
		})
		.await
		.map_err(|e| format!("the rerun panicked: {e}"))?
		.map_err(|e| e.to_string())
	}
}
