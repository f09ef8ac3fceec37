//! The worker: follows best blocks, drives the pipelines whose first chunk it holds,
//! serves the requests of the miners before it, and commits and reveals its results.
//!
//! One loop ([`Worker::run`]) owns the worker's bookkeeping ([`LoopState`]: the drives,
//! the submitted commits and reveals, the input checks, the warnings given, the peers
//! expected to send requests and the requests running) and `select!`s over imported
//! blocks, incoming requests and the [`Completion`]s its spawned tasks report; only it
//! decides when a commit or reveal is submitted (the submission itself runs in a task
//! of its own, so the loop never waits on the pool). Passes run concurrently
//! on the blocking pool, each holding its session, so the sessions, the received inputs
//! and the peer cache are shared with the request handlers that run them. A handler
//! that finds the next stage silent asks the loop to claim it on chain
//! ([`Completion::SilenceFound`]); the loop publishes its claims beside the slots
//! ([`SlotsView`]).
//!
//! Under prefill verification a slot's role decides what it runs: a generator's
//! pipeline generates (its last chunk publishes the output with its commit); once the
//! output is on chain, the verifier's pipeline (and in a dispute each referee round's
//! pipeline, chunks up to the disputed one) recomputes it by prefill, piece by piece,
//! every stage fingerprinting its output and the model's last chunk checking the
//! sampling; then every miner reveals.

use super::{
	chain::{Assignment, ChainView, Submitted, Submitter},
	compute::{self, CheckSession, PassOutput, PendingStep, ServedModel, Session, PREFILL_PIECE},
	error::WorkerError,
	inputs::{InputCheckState, InputLog},
	metrics::Metrics,
	protocol::{protocol_name, Refusal, Signature, SignedMessage, StageRequest, StageResponse},
	store::{ResultStore, SlotKey, SlotResult},
	test_hooks::TestHooks,
	LOG_TARGET,
};
use crate::tokens::{StreamState, StreamedToken, TokenStreams};
use codec::{Decode, Encode};
use dllm_inference::{sampling::sample, tokenizer::TextStream, wire::ActivationMessage};
use dllm_primitives::market::TaskId;
use dllm_runtime::{AccountId, BlockNumber, Runtime, RuntimeCall};
use futures::{channel::oneshot, future::BoxFuture, FutureExt, StreamExt};
use pallet_poaw::{
	InputCheck, PipelineIndex, RevealedOutput, Role, SlotState, TaskStatus, VerificationMode,
};
use polkadot_sdk::{
	sc_client_api::BlockchainEvents,
	sc_network::{
		request_responses::{IncomingRequest, OutgoingResponse},
		service::traits::NetworkService,
		IfDisconnected, PeerId, ReputationChange,
	},
	sc_service::SpawnTaskHandle,
	sc_transaction_pool_api::{TransactionStatus, TransactionStatusStreamFor},
	sp_core::Get,
	sp_runtime::traits::{BlakeTwo256, Hash},
};
use std::{
	collections::{HashMap, HashSet},
	sync::{Arc, Mutex},
	time::{Duration, Instant},
};

/// How often a request to the next miner is tried before the pass fails.
const SEND_ATTEMPTS: u32 = 5;
/// A submitted commit or reveal that has not landed after this many blocks is sent again.
const RESUBMIT_AFTER: BlockNumber = 10;
/// A pipeline this miner drives and that failed is tried again after this many blocks,
/// at most [`DRIVE_ATTEMPTS`] times, while the slot is still open.
const RETRY_DRIVE_AFTER: BlockNumber = 3;
const DRIVE_ATTEMPTS: u32 = 3;
/// How often one generation goes on through replaced stages before it gives up.
const MAX_RESUMES: u32 = 4;
/// How long a stage waits for a slot to appear in its own best block (the sender may
/// have imported the assigning block a little earlier).
const ASSIGNMENT_WAIT: Duration = Duration::from_secs(10);

/// What the worker submits for one of its slots: the two steps in which the slot's
/// result goes on chain, and its claims that a neighbour left it waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Stage {
	/// The commitment (with the published output, for a generator's last chunk).
	Commit,
	/// The fingerprint, output and salt behind the commitment.
	Reveal,
	/// The claim that the miner of chunk `silent` of the slot's pipeline is silent.
	SilenceClaim { silent: u32 },
}

impl Stage {
	fn name(self) -> &'static str {
		match self {
			Stage::Commit => "commit",
			Stage::Reveal => "reveal",
			Stage::SilenceClaim { .. } => "silence claim",
		}
	}
}

/// A silence claim the loop made: against which miners, and whether the pool took it.
struct Claim {
	/// The slot's pipeline when claimed: once the chain replaces a miner in it, the
	/// claim is settled (and a new one may come).
	pipeline: Vec<AccountId>,
	/// The best block it was made at: a claim that changed nothing by
	/// [`claim_lapses_after`] blocks later (it failed in its block, or the accused
	/// answered in time) is settled too.
	at: BlockNumber,
	/// In the pool (or on chain); until then, who waits to hear whether it is.
	submitted: bool,
	waiting: Vec<oneshot::Sender<bool>>,
}

/// The state only the worker's loop reads and changes.
#[derive(Default)]
pub(super) struct LoopState {
	/// The pipelines this miner drives from their first chunk, by task and pipeline.
	drives: HashMap<(TaskId, PipelineIndex), Drive>,
	/// Each open slot's last commit or reveal submission.
	submitted: HashMap<(SlotKey, Stage), Submission>,
	/// The number of the last drive or submission started: what a completion names, so
	/// that a late one cannot change the state of a newer run.
	last_run: u64,
	/// Open slots already warned about (once each).
	warned: HashSet<SlotKey>,
	/// This miner's referee slots' input checks.
	pub(super) input_checks: HashMap<SlotKey, InputCheckState>,
	/// The peers that may send this miner requests at the best block (N1 of the
	/// December review): the previous stages of its open slots, and the referees of the
	/// disputes over tasks whose input it keeps. Anyone else is refused before the
	/// request is decoded.
	expected: HashSet<PeerId>,
	/// Requests being handled, per peer.
	in_flight: HashMap<PeerId, usize>,
	/// The silence claims made for open slots, by slot and accused chunk.
	claims: HashMap<(SlotKey, u32), Claim>,
}

/// Most requests of one peer handled at once: a previous stage sends one per slot at a
/// time, and an expert holds at most a few slots of one task and a few tasks.
const MAX_REQUESTS_PER_PEER: usize = 8;
/// Most requests handled at once in all (sc-network queues up to 64 more).
const MAX_REQUESTS: usize = 32;
/// The reputation a peer loses for a request it had no reason to send (not an expected
/// sender at this miner's best block): an honest sender a block ahead of this node
/// loses it a few times; a flood of them gets its sender banned (sc-network bans below
/// about -1.5e9).
const UNEXPECTED_REQUEST_COST: i32 = -(1 << 20);
// A flood of them is banned within 2 000 requests; an honest sender's 5 tries stay far
// from a ban.
const _: () = assert!(
	polkadot_sdk::sc_network::peer_store::BANNED_THRESHOLD / UNEXPECTED_REQUEST_COST < 2_000
);
const _: () = assert!(
	5 * UNEXPECTED_REQUEST_COST > polkadot_sdk::sc_network::peer_store::BANNED_THRESHOLD / 100
);

/// Blocks after which a silence claim that changed nothing is forgotten: the chain acts
/// on a claim `SilenceClaimPeriod` blocks after it, and 3 more are its margin.
fn claim_lapses_after() -> BlockNumber {
	<<Runtime as pallet_poaw::Config>::SilenceClaimPeriod as Get<u32>>::get() + 3
}

impl LoopState {
	/// Forgets the claims whose slot closed or whose pipeline changed (the chain replaced
	/// the silent miner, or freed both), and those that changed nothing by
	/// [`claim_lapses_after`] blocks after block `now`: they are settled, and new ones may
	/// come.
	fn settle_claims(&mut self, slots: &[Assignment], now: BlockNumber) {
		let pipelines: HashMap<SlotKey, &Vec<AccountId>> =
			slots.iter().map(|slot| (SlotKey::of(slot), &slot.pipeline_experts)).collect();
		let submitted = &mut self.submitted;
		self.claims.retain(|(key, silent), claim| {
			let open = pipelines.get(key).is_some_and(|pipeline| **pipeline == claim.pipeline)
				&& now <= claim.at + claim_lapses_after();
			if !open {
				submitted.remove(&(*key, Stage::SilenceClaim { silent: *silent }));
			}
			open
		});
	}

	/// The claims in the pool or on chain.
	fn claimed(&self) -> HashSet<(SlotKey, u32)> {
		self.claims.iter().filter(|(_, claim)| claim.submitted).map(|(claim, _)| *claim).collect()
	}
}

/// What the loop does with an incoming request.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
	/// Handled by a task of its own.
	Handle,
	/// Refused at once, unread: the sender is not expected here.
	Unexpected,
	/// Refused at once: too many requests are running (the sender retries).
	Busy,
}

/// Whether a request from `peer` is handled, by the expected senders and the requests
/// running.
fn admission(
	peer: &PeerId,
	expected: &HashSet<PeerId>,
	in_flight: &HashMap<PeerId, usize>,
) -> Admission {
	if !expected.contains(peer) {
		return Admission::Unexpected;
	}
	let running: usize = in_flight.values().sum();
	if running >= MAX_REQUESTS || in_flight.get(peer).copied().unwrap_or(0) >= MAX_REQUESTS_PER_PEER
	{
		return Admission::Busy;
	}
	Admission::Handle
}

/// A commit or reveal submitted at block `at`, as run `run`.
#[derive(Clone, Copy)]
struct Submission {
	at: BlockNumber,
	run: u64,
}

/// What the worker's spawned tasks report to its loop, or ask of it.
pub(super) enum Completion {
	/// A pipeline this miner drives ended: `attempts` failures before this run, `pipeline`
	/// its miners when it started.
	DriveEnded {
		id: (TaskId, PipelineIndex),
		run: u64,
		role: Role,
		attempts: u32,
		pipeline: Vec<AccountId>,
		outcome: Result<(), WorkerError>,
	},
	/// A stage's result is kept on disk: commit it.
	Kept { key: SlotKey, call: RuntimeCall },
	/// A referee slot's input check is done.
	InputChecked { key: SlotKey, check: Option<InputCheck<Vec<u8>>> },
	/// A request from this peer was answered.
	Handled { peer: PeerId },
	/// A submission is in the pool.
	Submitted { key: SlotKey, stage: Stage, run: u64 },
	/// A submission was refused by the pool, or left it without being included
	/// (dropped, usurped or found invalid): the next best block submits a commit or
	/// reveal again if still due (at once, unless `retry_soon` is false: the account
	/// cannot pay); a claim is forgotten.
	NotIncluded { key: SlotKey, stage: Stage, run: u64, why: String, retry_soon: bool },
	/// A stage of slot `key` found `accused`, the miner of chunk `silent`, silent: the loop
	/// claims so on chain, once, and answers whether the claim is in the pool.
	SilenceFound { key: SlotKey, silent: u32, accused: AccountId, answer: oneshot::Sender<bool> },
}

pub(super) enum Drive {
	/// Run number `run` is under way.
	Running { run: u64 },
	/// Failed `attempts` times, last at block `at`, with these miners in the pipeline.
	Failed { at: BlockNumber, attempts: u32, pipeline: Vec<AccountId> },
}

/// This miner's open slots at a best block, as the block loop last read them, and its
/// silence claims: what the request handlers and the drivers read and wait on instead
/// of asking the chain.
#[derive(Default, Clone)]
pub(super) struct SlotsView {
	/// The best block's number.
	pub(super) number: BlockNumber,
	/// The slots assigned to this miner there.
	pub(super) slots: Vec<Assignment>,
	/// The silence claims in the pool or on chain, by slot and accused chunk, and not
	/// settled by a replacement at this block.
	pub(super) claimed: HashSet<(SlotKey, u32)>,
}

/// The miner worker.
pub struct Worker {
	pub(super) chain: ChainView,
	pub(super) submitter: Submitter,
	pub(super) account: AccountId,
	pub(super) network: Arc<dyn NetworkService>,
	pub(super) model: ServedModel,
	pub(super) store: ResultStore,
	pub(super) metrics: Metrics,
	pub(super) spawner: SpawnTaskHandle,
	pub(super) sessions: Mutex<HashMap<SlotKey, Arc<Mutex<Session>>>>,
	pub(super) checks: Mutex<HashMap<SlotKey, Arc<Mutex<CheckSession>>>>,
	pub(super) peers: Mutex<HashMap<AccountId, PeerId>>,
	/// What each slot received, signed by its senders (evidence for a referee).
	pub(super) inputs: Mutex<HashMap<SlotKey, InputLog>>,
	/// The tokens of the generations this miner drives, for `/dllm/tokens/1`.
	pub(super) token_streams: Arc<TokenStreams>,
	/// Misbehaviour a test asked for (honest without the `test-hooks` feature).
	pub(super) hooks: TestHooks,
	/// Whether the chain stopped accepting the signing key for the expert (its operator
	/// was replaced or removed), as last seen.
	pub(super) signer_revoked: std::sync::atomic::AtomicBool,
	/// This miner's slots at the best block, published by the block loop.
	pub(super) view: tokio::sync::watch::Sender<Arc<SlotsView>>,
	/// Where spawned tasks report to the loop.
	pub(super) completions: futures::channel::mpsc::UnboundedSender<Completion>,
}

/// Waits until `view` changes or `deadline` passes; `false` when it did not change (or
/// the worker is gone).
async fn view_changed(
	view: &mut tokio::sync::watch::Receiver<Arc<SlotsView>>,
	deadline: Instant,
) -> bool {
	let deadline = tokio::time::Instant::from_std(deadline);
	matches!(tokio::time::timeout_at(deadline, view.changed()).await, Ok(Ok(())))
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
	// A panic while holding one of these maps cannot leave it inconsistent (single
	// inserts and removes), so a poisoned lock is used as is.
	mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Worker {
	/// The worker's loop, until the node stops: acts on each new best block, hands each
	/// incoming request to a task of its own, and applies what finished tasks report.
	pub(super) async fn run(
		self: Arc<Self>,
		client: Arc<crate::service::FullClient>,
		requests: async_channel::Receiver<IncomingRequest>,
		completions: futures::channel::mpsc::UnboundedReceiver<Completion>,
	) {
		let mut state = LoopState::default();
		let mut imports = client.import_notification_stream().fuse();
		let mut requests = requests.fuse();
		let mut completions = completions.fuse();
		self.on_best_block(&mut state).await;
		loop {
			futures::select! {
				notification = imports.next() => match notification {
					Some(notification) if notification.is_new_best => {
						self.on_best_block(&mut state).await
					}
					Some(_) => {}
					None => return,
				},
				request = requests.next() => match request {
					Some(request) => self.admit(&mut state, request),
					// The network stopped serving the protocol: no more requests come.
					None => log::warn!(target: LOG_TARGET, "the request channel closed"),
				},
				completion = completions.next() => {
					if let Some(completion) = completion {
						self.complete(&mut state, completion);
					}
				}
				complete => return,
			}
		}
	}

	/// Hands `request` to a task of its own, or refuses it at once (N1).
	fn admit(self: &Arc<Self>, state: &mut LoopState, request: IncomingRequest) {
		let peer = request.peer;
		let (refusal, cost) = match admission(&peer, &state.expected, &state.in_flight) {
			Admission::Handle => {
				*state.in_flight.entry(peer).or_default() += 1;
				let worker = self.clone();
				self.spawner.spawn("dllm-miner-request", Some("dllm-miner"), async move {
					worker.clone().handle(request).await;
					worker.report(Completion::Handled { peer });
				});
				return;
			}
			Admission::Unexpected => (
				Refusal::NotAssigned,
				vec![ReputationChange::new(UNEXPECTED_REQUEST_COST, "dllm: unexpected request")],
			),
			Admission::Busy => (Refusal::Busy, Vec::new()),
		};
		self.metrics.refused();
		let _ = request.pending_response.send(OutgoingResponse {
			result: Ok(StageResponse::Refused(refusal).encode()),
			reputation_changes: cost,
			sent_feedback: None,
		});
	}

	/// Applies what a finished task reports.
	fn complete(self: &Arc<Self>, state: &mut LoopState, completion: Completion) {
		match completion {
			// A drive whose slot closed meanwhile (and maybe opened again, with a new drive)
			// changes nothing.
			Completion::DriveEnded { id, run, .. } if !matches!(state.drives.get(&id), Some(Drive::Running { run: current }) if *current == run) =>
				{}
			Completion::DriveEnded { id, outcome: Ok(()), .. } => {
				state.drives.remove(&id);
			}
			Completion::DriveEnded { id, role, attempts, pipeline, outcome: Err(e), .. } => {
				self.metrics.failure();
				log::warn!(
					target: LOG_TARGET,
					"task {} pipeline {}: {} failed (attempt {} of {DRIVE_ATTEMPTS}): {e}; \
					 the chain reassigns the slots that miss their deadline",
					id.0, id.1, if role == Role::Generator { "generation" } else { "the prefill check" },
					attempts + 1,
				);
				let at = self.chain.best().1;
				state.drives.insert(id, Drive::Failed { at, attempts: attempts + 1, pipeline });
			}
			Completion::Kept { key, call } => {
				// Only while the slot still owes its commit and the chain accepts the key:
				// a refused call pays its fee. Otherwise the kept result waits for the
				// next block's look at the slot.
				let open = slot_in(&self.view.borrow(), key)
					.is_some_and(|slot| slot.state == SlotState::Assigned);
				if open && !self.signer_revoked.load(std::sync::atomic::Ordering::Relaxed) {
					let now = self.chain.best().1;
					self.submit_once(state, key, Stage::Commit, now, call);
				}
			}
			Completion::InputChecked { key, check } => {
				state.input_checks.insert(key, InputCheckState::Ready(check));
			}
			Completion::Handled { peer } => {
				if let Some(running) = state.in_flight.get_mut(&peer) {
					*running = running.saturating_sub(1);
					if *running == 0 {
						state.in_flight.remove(&peer);
					}
				}
			}
			// Only the latest submission's fate counts.
			Completion::Submitted { key, stage, run }
			| Completion::NotIncluded { key, stage, run, .. }
				if state.submitted.get(&(key, stage)).is_none_or(|last| last.run != run) => {}
			Completion::Submitted { key, stage: Stage::SilenceClaim { silent }, .. } => {
				if let Some(claim) = state.claims.get_mut(&(key, silent)) {
					claim.submitted = true;
					let waiting = std::mem::take(&mut claim.waiting);
					log::warn!(
						target: LOG_TARGET,
						"{key}: chunk {silent}'s miner is silent; claimed on chain so that it \
						 alone is blamed and replaced",
					);
					// Published before the waiters hear it: they read the view next.
					self.publish_claims(state);
					waiting.into_iter().for_each(|answer| {
						let _ = answer.send(true);
					});
				}
			}
			Completion::Submitted { .. } => {}
			Completion::NotIncluded {
				key,
				stage: stage @ Stage::SilenceClaim { silent },
				why,
				..
			} => {
				log::warn!(target: LOG_TARGET, "{key}: the {} was {why}", stage.name());
				state.submitted.remove(&(key, stage));
				// Its waiters hear `false` as their answer drops.
				if state.claims.remove(&(key, silent)).is_some_and(|claim| claim.submitted) {
					self.publish_claims(state);
				}
			}
			Completion::NotIncluded { key, stage, why, retry_soon, .. } => {
				if retry_soon {
					log::warn!(
						target: LOG_TARGET,
						"{key}: the {} was {why}; submitted again at the next block if still due",
						stage.name(),
					);
					state.submitted.remove(&(key, stage));
				} else {
					log::warn!(target: LOG_TARGET, "{key}: the {} was {why}", stage.name());
				}
			}
			// A revoked key would only pay for refused calls; the answer drops (`false`).
			Completion::SilenceFound { .. }
				if self.signer_revoked.load(std::sync::atomic::Ordering::Relaxed) => {}
			Completion::SilenceFound { key, silent, accused, answer } => {
				self.claim_silence(state, key, silent, accused, Some(answer))
			}
		}
	}

	/// Publishes the claims in the pool or on chain beside the slots.
	fn publish_claims(&self, state: &LoopState) {
		let claimed = state.claimed();
		self.view.send_modify(|view| Arc::make_mut(view).claimed = claimed);
	}

	/// Reports to the loop (gone only when the node stops).
	pub(super) fn report(&self, completion: Completion) {
		let _ = self.completions.unbounded_send(completion);
	}

	/// Whether the chain still accepts the signing key for the expert: an operator that
	/// `set_operator` replaced would only submit refused calls, and refused calls pay.
	fn signer_current(&self, best: polkadot_sdk::sp_core::H256, number: BlockNumber) -> bool {
		use std::sync::atomic::Ordering;
		let signer = self.submitter.account();
		if signer == self.account {
			return true;
		}
		let current = match self.chain.operator(best, &self.account) {
			Ok(operator) => operator.as_ref() == Some(&signer),
			Err(e) => {
				log::warn!(target: LOG_TARGET, "block #{number}: {e}");
				return true;
			}
		};
		let was_revoked = self.signer_revoked.swap(!current, Ordering::Relaxed);
		if !current && !was_revoked {
			log::error!(
				target: LOG_TARGET,
				"block #{number}: expert {} no longer names {signer} as its operator; the \
				 miner does no work until it does again (restart the node with the new \
				 operator key, docs/operators.md)",
				self.account,
			);
		} else if current && was_revoked {
			log::info!(target: LOG_TARGET, "block #{number}: {signer} signs for {} again", self.account);
		}
		current
	}

	async fn on_best_block(self: &Arc<Self>, state: &mut LoopState) {
		let (best, number) = self.chain.best();
		let assignments = match self.chain.assignments(best, &self.account) {
			Ok(assignments) => assignments,
			Err(e) => {
				log::warn!(target: LOG_TARGET, "block #{number}: {e}");
				return;
			}
		};
		state.settle_claims(&assignments, number);
		let claimed = state.claimed();
		self.view.send_replace(Arc::new(SlotsView { number, slots: assignments.clone(), claimed }));
		// The tasks whose received input this miner keeps, as the best block shows them:
		// their referees may ask for it, and it goes once they end. Read once per block.
		let input_tasks: HashMap<TaskId, Option<super::chain::TaskView>> = {
			let mut tasks: HashSet<TaskId> =
				lock(&self.inputs).keys().map(|key| key.task).collect();
			tasks.extend(self.store.input_keys().into_iter().map(|key| key.task));
			tasks
				.into_iter()
				.map(|task| {
					let view = self.chain.task(best, task).unwrap_or_else(|e| {
						log::warn!(target: LOG_TARGET, "{e}");
						None
					});
					(task, view)
				})
				.collect()
		};
		state.expected = self.expected_senders(&assignments, input_tasks.values().flatten());
		let open: HashSet<SlotKey> = assignments.iter().map(SlotKey::of).collect();
		// Slots that closed (revealed, missed, abandoned) at the best block and at the
		// finalized one: forget their results (L2 of the review: the salt exists nowhere
		// else, and a best block can be reorganised away). Caches go at the best block.
		let kept_results = self.store.keys();
		if kept_results.iter().any(|key| !open.contains(key)) {
			let finalized = self.chain.finalized();
			match self.chain.assignments(finalized, &self.account) {
				Ok(at_finalized) => {
					let open_finalized: HashSet<SlotKey> =
						at_finalized.iter().map(SlotKey::of).collect();
					for key in closed_at_both(&kept_results, &open, &open_finalized) {
						self.store.remove(key);
					}
				}
				Err(e) => log::warn!(target: LOG_TARGET, "finalized block: {e}"),
			}
		}
		let mut closed: Vec<SlotKey> =
			lock(&self.sessions).keys().filter(|key| !open.contains(key)).copied().collect();
		closed.extend(lock(&self.checks).keys().filter(|key| !open.contains(key)).copied());
		// Freeing a cache waits for its shard, which a running pass holds: not on the loop.
		// A closed slot gets no new session, so nothing can race the clean-up.
		if !closed.is_empty() {
			let worker = self.clone();
			tokio::task::spawn_blocking(move || {
				closed.into_iter().for_each(|key| worker.drop_session(key))
			});
		}
		state.submitted.retain(|(key, _), _| open.contains(key));
		// Warnings are given once per open slot; closed slots' entries go (L10).
		state.warned.retain(|key| open.contains(key));
		state.drives.retain(|(task, pipeline), _| {
			open.iter().any(|key| key.task == *task && key.pipeline == *pipeline)
		});

		let mut statuses: HashMap<TaskId, Option<TaskStatus>> = input_tasks
			.iter()
			.map(|(task, view)| (*task, view.as_ref().map(|view| view.task.status)))
			.collect();
		let mut status_of = |task: TaskId| {
			*statuses.entry(task).or_insert_with(|| match self.chain.task_status(best, task) {
				Ok(status) => status,
				Err(e) => {
					log::warn!(target: LOG_TARGET, "{e}");
					None
				}
			})
		};
		// After the clean-up: a key the chain no longer accepts would only pay for
		// refused calls.
		if !self.signer_current(best, number) {
			return;
		}
		for assignment in assignments {
			let key = SlotKey::of(&assignment);
			// Accused of silence while alive: the accuser stopped talking to this miner,
			// or lies; the chain cannot tell, and frees both unblamed.
			if assignment.state == SlotState::Assigned {
				for accuser in &assignment.accused_by {
					let Some(accused) = assignment.pipeline_experts.get(*accuser as usize) else {
						continue;
					};
					self.claim_silence(state, key, *accuser, accused.clone(), None);
				}
			}
			if self.model.shard(assignment.model, assignment.chunk).is_none() {
				if state.warned.insert(key) {
					log::warn!(
						target: LOG_TARGET,
						"task {} assigns chunk {} of model {} to this miner, which does not \
						 serve it from its --model-dir/--serve-chunks",
						assignment.task, assignment.chunk, assignment.model,
					);
				}
				continue;
			}
			let kept = match self.store.load(key) {
				Ok(kept) => kept,
				Err(e) => {
					log::error!(target: LOG_TARGET, "{e}");
					continue;
				}
			};
			match (assignment.state, kept) {
				(SlotState::Assigned, Some(result)) => {
					let call = commit_call(&result);
					self.submit_once(state, key, Stage::Commit, number, call);
					self.start_input_check(state, &assignment, result);
				}
				(SlotState::Assigned, None)
					if assignment.chunk == 0
						&& status_of(assignment.task)
							.is_some_and(|s| drive_due(&assignment, s)) =>
				{
					self.start_drive(state, assignment, number);
				}
				(SlotState::Committed(committed), Some(result))
					if committed == result.commitment =>
				{
					// Not a guard: a result waiting for its stage must not fall through
					// to the missing-result arm below.
					let due =
						status_of(assignment.task).is_some_and(|s| reveal_due(&assignment, s));
					if due {
						self.reveal(state, &assignment, result, number).await;
					}
				}
				(SlotState::Committed(_), _) if state.warned.insert(key) => {
					log::error!(
						target: LOG_TARGET,
						"{key}: committed, but the result to reveal is \
						 not in the miner's directory; the slot will miss its reveal",
					);
				}
				_ => {}
			}
		}
		let kept: HashSet<TaskId> = input_tasks
			.keys()
			.chain(state.input_checks.keys().map(|key| &key.task))
			.copied()
			.collect();
		let kept_statuses: HashMap<TaskId, Option<TaskStatus>> =
			kept.into_iter().map(|task| (task, status_of(task))).collect();
		// The input on disk goes only once its task also ended at the finalized block.
		let finalized = self.chain.finalized();
		let ended_at_finalized = |task: TaskId| match self.chain.task_status(finalized, task) {
			Ok(status) => !status.is_some_and(TaskStatus::is_open),
			Err(e) => {
				log::warn!(target: LOG_TARGET, "finalized block: {e}");
				false
			}
		};
		let status = |task| kept_statuses.get(&task).copied().flatten();
		self.prune_inputs(status, ended_at_finalized);
		state.input_checks.retain(|key, _| status(key.task).is_some_and(TaskStatus::is_open));
	}

	/// The peers that may send this miner requests: the previous stages of its open
	/// `slots` (their profiles read again, a miner may have moved), and the referees of
	/// the disputes over the `input_tasks` whose received input it keeps (they ask for
	/// it).
	fn expected_senders<'a>(
		&self,
		slots: &[Assignment],
		input_tasks: impl Iterator<Item = &'a super::chain::TaskView>,
	) -> HashSet<PeerId> {
		let mut miners: HashSet<AccountId> = slots
			.iter()
			.filter_map(|slot| {
				let previous = slot.chunk.checked_sub(1)?;
				slot.pipeline_experts.get(previous as usize).cloned()
			})
			.collect();
		let disputed = input_tasks.filter(|details| {
			matches!(details.task.status, TaskStatus::Refereeing | TaskStatus::Judging)
		});
		for details in disputed {
			let referees = details.slots.iter().filter(|slot| slot.role == Role::Referee);
			miners.extend(referees.map(|slot| slot.expert.clone()));
		}
		miners.remove(&self.account);
		miners.iter().filter_map(|miner| self.peer_of(miner, true).ok()).collect()
	}

	/// Submits `key`'s commit or reveal unless it was sent recently, in a task of its
	/// own (the loop does not wait on the pool), and follows it until a block finalizes
	/// it; one the pool refuses or lets go without including it is reported to the loop,
	/// so that the next block submits it again, not only [`RESUBMIT_AFTER`] blocks later
	/// (a reveal's stage is shorter).
	pub(super) fn submit_once(
		self: &Arc<Self>,
		state: &mut LoopState,
		key: SlotKey,
		stage: Stage,
		now: BlockNumber,
		call: RuntimeCall,
	) {
		if state.submitted.get(&(key, stage)).is_some_and(|last| now < last.at + RESUBMIT_AFTER) {
			return;
		}
		state.last_run += 1;
		let run = state.last_run;
		state.submitted.insert((key, stage), Submission { at: now, run });
		let worker = self.clone();
		self.spawner.spawn("dllm-miner-submit", Some("dllm-miner"), async move {
			let what = stage.name();
			let (why, retry_soon) = match worker.submitter.submit(call).await {
				Ok(Submitted { hash, nonce, status }) => {
					log::info!(target: LOG_TARGET, "{key}: {what} submitted ({hash:?}, nonce {nonce})");
					worker.report(Completion::Submitted { key, stage, run });
					match not_included(status).await {
						Some(why) => (why.to_string(), true),
						None => return,
					}
				}
				// The account cannot pay: trying again at once would only be refused again.
				Err(e @ super::chain::ChainError::CannotPay { .. }) => {
					worker.metrics.failure();
					(format!("not submitted: {e}"), false)
				}
				Err(e) => {
					worker.metrics.failure();
					(format!("not submitted: {e}"), true)
				}
			};
			worker.report(Completion::NotIncluded { key, stage, run, why, retry_soon });
		});
	}

	fn start_drive(
		self: &Arc<Self>,
		state: &mut LoopState,
		assignment: Assignment,
		now: BlockNumber,
	) {
		let id = (assignment.task, assignment.pipeline);
		let attempts = match state.drives.get(&id) {
			Some(Drive::Running { .. }) => return,
			// The chain replaced a stage (one found silent): start again at once through
			// the replacement.
			Some(Drive::Failed { pipeline, .. }) if *pipeline != assignment.pipeline_experts => 0,
			Some(Drive::Failed { at, attempts, .. }) => {
				// A stage of this pipeline found its neighbour silent: trying the same
				// miners again is futile until the chain replaces it.
				let claimed = state.claims.keys().any(|(key, _)| (key.task, key.pipeline) == id);
				if claimed || *attempts >= DRIVE_ATTEMPTS || now < at + RETRY_DRIVE_AFTER {
					return;
				}
				*attempts
			}
			None => 0,
		};
		state.last_run += 1;
		let run = state.last_run;
		state.drives.insert(id, Drive::Running { run });
		let worker = self.clone();
		self.spawner.spawn("dllm-miner-pipeline", Some("dllm-miner"), async move {
			worker.metrics.task_started();
			let role = assignment.role;
			let pipeline = assignment.pipeline_experts.clone();
			let outcome = match (assignment.mode, role) {
				(VerificationMode::Prefill, Role::Verifier | Role::Referee) => {
					worker.check(assignment).await
				}
				_ => worker.generate(assignment).await,
			};
			worker.metrics.task_ended();
			worker.report(Completion::DriveEnded { id, run, role, attempts, pipeline, outcome });
		});
	}

	/// Drives a pipeline from its first chunk and publishes its tokens as they come.
	async fn generate(self: &Arc<Self>, assignment: Assignment) -> Result<(), WorkerError> {
		let stream = (assignment.task, assignment.pipeline);
		self.token_streams.start(stream);
		let result = self.generate_tokens(&assignment).await;
		let state = if result.is_ok() { StreamState::Finished } else { StreamState::Stopped };
		self.token_streams.end(stream, state);
		result
	}

	/// Tokenizes the prompt, then runs one pass per generated token until the last
	/// chunk's token ends it.
	async fn generate_tokens(self: &Arc<Self>, assignment: &Assignment) -> Result<(), WorkerError> {
		let started = Instant::now();
		let key = SlotKey::of(assignment);
		let mut input = self.model.prompt_tokens(&assignment.prompt)?;
		let prompt_len = input.len();
		let session_id = compute::session_id(assignment.task, assignment.pipeline);
		lock(&self.sessions).insert(key, Arc::new(Mutex::new(Session::new(assignment.clone())?)));
		let mut offset = 0usize;
		let mut first_token = None;
		let mut text = TextStream::new();
		let mut pipeline = assignment.pipeline_experts.clone();
		let mut resumes = 0u32;
		for step in 0u32.. {
			let message = ActivationMessage::tokens(session_id, offset, input.clone())
				.and_then(|message| message.encode())?;
			let (token, done) = loop {
				match self.advance(key, step, message.clone(), None).await {
					Ok(answer) => break answer,
					// A later stage died: once the chain replaces it, the step goes on
					// through the replacement, which first gets the steps before it.
					Err(Refusal::Silent(why)) if resumes < MAX_RESUMES => {
						log::warn!(
							target: LOG_TARGET,
							"task {} pipeline {}: step {step} failed downstream ({why}); \
							 waiting for the chain to replace the stage",
							key.task, key.pipeline,
						);
						match self.wait_for_new_pipeline(key, &pipeline).await {
							Some(current) => {
								pipeline = current;
								resumes += 1;
							}
							None => {
								self.drop_session(key);
								self.abort_downstream(assignment);
								return Err(Refusal::Downstream(why).into());
							}
						}
					}
					Err(refusal) => {
						self.drop_session(key);
						self.abort_downstream(assignment);
						return Err(refusal.into());
					}
				}
			};
			first_token.get_or_insert_with(|| started.elapsed());
			let mut piece = text.push(&self.model.tokenizer, token)?;
			if done {
				piece.push_str(&text.finish(&self.model.tokenizer)?);
			}
			self.token_streams.push(
				(assignment.task, assignment.pipeline),
				step,
				StreamedToken { token, text: piece.into_bytes() },
			);
			if done {
				let generated = step as usize + 1;
				let first = first_token.unwrap_or_default();
				let decode = started.elapsed().saturating_sub(first);
				let speed = if generated > 1 && !decode.is_zero() {
					(generated - 1) as f64 / decode.as_secs_f64()
				} else {
					0.0
				};
				self.metrics.decode_speed(speed);
				// Wall-clock time of the first token, for benchmarks that compare it
				// with the submission's inclusion (scripts/js/bin/bench-miners.mjs).
				let first_at = std::time::SystemTime::now()
					.checked_sub(started.elapsed().saturating_sub(first))
					.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
					.map_or(0, |t| t.as_millis());
				log::info!(
					target: LOG_TARGET,
					"task {} pipeline {}: {prompt_len} prompt tokens, {generated} generated; \
					 first token after {first:?} (unix ms {first_at}), decode {speed:.1} \
					 tokens/s",
					assignment.task, assignment.pipeline,
				);
				return Ok(());
			}
			offset += input.len();
			input = vec![token];
			self.hooks.after_token().await;
		}
		Ok(())
	}

	/// The pipeline of this miner's slot `key` once the chain shows other miners in it
	/// than `old` (it replaced a stage), a second later so that the other stages'
	/// nodes see it too; `None` when the slot closed or its stage ended first.
	async fn wait_for_new_pipeline(
		&self,
		key: SlotKey,
		old: &[AccountId],
	) -> Option<Vec<AccountId>> {
		let mut view = self.view.subscribe();
		loop {
			let (number, current) = {
				let now = view.borrow_and_update();
				(now.number, slot_in(&now, key))
			};
			let current = current.filter(|a| a.state == SlotState::Assigned)?;
			if current.pipeline_experts != old {
				tokio::time::sleep(Duration::from_secs(1)).await;
				return Some(current.pipeline_experts);
			}
			if number > current.deadline {
				return None;
			}
			// A block a minute at the least; none (the chain unreadable): give up.
			if !view_changed(&mut view, Instant::now() + Duration::from_secs(60)).await {
				return None;
			}
		}
	}

	/// Drives a verifier's or referee's pipeline from its first chunk: runs the
	/// published generation (the prompt as this miner tokenizes it, then the generated
	/// tokens) through the pipeline by prefill, piece by piece.
	async fn check(self: &Arc<Self>, assignment: Assignment) -> Result<(), WorkerError> {
		let started = Instant::now();
		let key = SlotKey::of(&assignment);
		let (best, _) = self.chain.best();
		let task = self
			.chain
			.task(best, assignment.task)?
			.ok_or(WorkerError::UnknownTask(assignment.task))?;
		let (session, tokens) = self.open_check(assignment.clone(), &task)?;
		lock(&self.checks).insert(key, Arc::new(Mutex::new(session)));
		let session_id = compute::session_id(assignment.task, assignment.pipeline);
		for (piece, start) in (0..tokens.len()).step_by(PREFILL_PIECE).enumerate() {
			let end = (start + PREFILL_PIECE).min(tokens.len());
			let message = ActivationMessage::tokens(session_id, start, tokens[start..end].to_vec())
				.and_then(|message| message.encode())?;
			self.check_piece(key, piece as u32, message, None)
				.await
				.inspect_err(|_| self.abort_downstream(&assignment))?;
		}
		log::info!(
			target: LOG_TARGET,
			"task {} pipeline {}: {} positions checked by prefill through {} chunks in {:?}",
			assignment.task, assignment.pipeline, tokens.len(), assignment.pipeline_experts.len(),
			started.elapsed(),
		);
		Ok(())
	}

	/// The check session of a stage of a verifier's or referee's pipeline, from the
	/// task as the chain shows it (the published output, the generator's format), with
	/// the tokens the first stage runs.
	fn open_check(
		&self,
		assignment: Assignment,
		task: &super::chain::TaskView,
	) -> Result<(CheckSession, Vec<u32>), WorkerError> {
		let generator = task.task.attested_generator(assignment.role, assignment.pipeline);
		let output = task
			.outputs
			.iter()
			.find(|output| output.pipeline == generator)
			.ok_or(WorkerError::NoOutput(task.id))?;
		let prompt_tokens = self.model.prompt_tokens(&assignment.prompt)?;
		// What the generator claims beside its tokens must follow from them: a wrong
		// prompt length or text is rejected by the last chunk's verdict.
		let decoded = self.model.tokenizer.decode(&output.tokens).ok();
		let claims_consistent = output.prompt_tokens as usize == prompt_tokens.len()
			&& decoded.is_some_and(|text| text.as_bytes() == output.text.as_slice());
		let last = assignment.chunks.saturating_sub(1);
		let profile = self
			.model
			.check_profile(task, (assignment.pipeline, assignment.chunk), (generator, last))
			.ok_or(WorkerError::NotInTask(task.id))?;
		let session = CheckSession::new(
			assignment,
			output.hash,
			prompt_tokens.len(),
			&output.tokens,
			&self.model.config,
			&profile,
			claims_consistent,
		)?;
		// A token outside the vocabulary cannot be embedded; it runs as token 0 and the
		// last chunk's sampling check rejects it.
		let vocab = self.model.config.vocab_size as u32;
		let generated: Vec<u32> =
			output.tokens.iter().map(|t| if *t < vocab { *t } else { 0 }).collect();
		let tokens =
			dllm_inference::verification::StageVerifier::input_tokens(&prompt_tokens, &generated);
		Ok((session, tokens))
	}

	/// Runs prefill piece `piece` of `key`'s check session through this miner's chunk,
	/// keeps the stage's result after its last piece, and passes the piece on to the
	/// rest of the pipeline. A retried piece is passed on again, not run twice.
	fn check_piece(
		self: &Arc<Self>,
		key: SlotKey,
		piece: u32,
		message: Vec<u8>,
		signature: Option<Signature>,
	) -> BoxFuture<'static, Result<(), Refusal>> {
		let worker = self.clone();
		async move {
			let result = worker.check_piece_inner(key, piece, message, signature).await;
			// A refused request (busy, out of order) leaves the session as it was.
			if matches!(
				result,
				Err(Refusal::Failed(_) | Refusal::Downstream(_) | Refusal::Silent(_))
			) {
				worker.drop_session(key);
			}
			result
		}
		.boxed()
	}

	async fn check_piece_inner(
		self: &Arc<Self>,
		key: SlotKey,
		piece: u32,
		message: Vec<u8>,
		signature: Option<Signature>,
	) -> Result<(), Refusal> {
		let session = lock(&self.checks).get(&key).cloned().ok_or_else(no_session)?;
		let (assignment, verifier, retried) = {
			let mut session = lock(&session);
			if session.in_flight == Some(piece) {
				return Err(Refusal::Busy);
			}
			match &session.last_piece {
				Some((last, output)) if *last == piece => {
					(session.assignment.clone(), None, Some(output.clone()))
				}
				Some((last, _)) if piece < *last => return Ok(()),
				last => {
					let expected = last.as_ref().map_or(0, |(last, _)| last + 1);
					if piece != expected {
						return Err(Refusal::BadRequest(format!(
							"prefill piece {piece}, expected {expected}"
						)));
					}
					// Kept before it runs: the piece is what this stage computes on.
					if let Some(signature) = signature {
						let signed =
							SignedMessage { index: piece, message: message.clone(), signature };
						self.record_input(key, &session.assignment, signed)?;
					}
					let verifier = session.verifier.take().ok_or_else(no_session)?;
					session.in_flight = Some(piece);
					(session.assignment.clone(), Some(verifier), None)
				}
			}
		};
		let output = match (verifier, retried) {
			(_, Some(output)) => output,
			(Some(mut verifier), None) => {
				let shard = self
					.model
					.shard(assignment.model, assignment.chunk)
					.ok_or_else(|| Refusal::Failed("this miner does not serve the chunk".into()))?;
				let hooks = self.hooks;
				let stage = assignment.clone();
				let (verifier, output, took) = tokio::task::spawn_blocking(move || {
					let started = Instant::now();
					let output =
						compute::run_check_piece(&shard, &mut verifier, &stage, &message, hooks);
					(verifier, output, started.elapsed())
				})
				.await
				.map_err(|e| Refusal::Failed(format!("the pass panicked: {e}")))?;
				self.metrics.check_pass(took);
				let output = output.map_err(|e| Refusal::Failed(e.to_string()))?;
				let finished = {
					let mut session = lock(&session);
					session.in_flight = None;
					session.last_piece = Some((piece, output.clone()));
					if verifier.is_done() {
						Some(verifier)
					} else {
						session.verifier = Some(verifier);
						None
					}
				};
				// The stage's result does not depend on the stages after it: kept and
				// committed before the piece is passed on.
				if let Some(verifier) = finished {
					self.finish_check(key, &session, verifier).await;
				}
				output
			}
			(None, None) => return Err(no_session()),
		};
		let next_chunk = assignment.chunk + 1;
		if let (Some(hidden), Some(next)) =
			(output, assignment.pipeline_experts.get(next_chunk as usize))
		{
			let next_key = SlotKey { chunk: next_chunk, ..SlotKey::of(&assignment) };
			let signature = self.sign_hop(next_key, piece, &hidden)?;
			if *next == self.account {
				if piece == 0 && !lock(&self.checks).contains_key(&next_key) {
					self.open_check_for(next_key).await?;
				}
				self.check_piece(next_key, piece, hidden, Some(signature)).await?;
			} else {
				let request = StageRequest::Prefill {
					task: assignment.task,
					pipeline: assignment.pipeline,
					chunk: next_chunk,
					piece,
					message: hidden,
					signature,
				};
				match self.send(next, request).await? {
					StageResponse::Prefilled => {}
					_ => return Err(Refusal::Downstream("malformed reply".into())),
				}
			}
		}
		Ok(())
	}

	/// Checks an incoming prefill piece is for a check slot of this miner and comes from
	/// the previous chunk's miner, opening the session at piece 0.
	async fn accept_check(
		self: &Arc<Self>,
		key: SlotKey,
		piece: u32,
		peer: PeerId,
	) -> Result<(), Refusal> {
		let existing = lock(&self.checks).get(&key).cloned();
		if let Some(session) = existing {
			let assignment = lock(&session).assignment.clone();
			return match self.is_previous_miner(&assignment, peer) {
				true => Ok(()),
				false => Err(Refusal::WrongSender),
			};
		}
		if piece != 0 {
			return Err(no_session());
		}
		let (assignment, _) = self.wait_for_check(key).await?;
		if !self.is_previous_miner(&assignment, peer) {
			return Err(Refusal::WrongSender);
		}
		self.open_check_for(key).await
	}

	/// Opens the check session of `key` from the chain (waiting a while for the slot's
	/// stage to show in this node's best block).
	async fn open_check_for(&self, key: SlotKey) -> Result<(), Refusal> {
		let (assignment, task) = self.wait_for_check(key).await?;
		let (session, _) =
			self.open_check(assignment, &task).map_err(|e| Refusal::Failed(e.to_string()))?;
		lock(&self.checks).entry(key).or_insert_with(|| Arc::new(Mutex::new(session)));
		Ok(())
	}

	/// This miner's check slot `key` and its task, once the best block shows the
	/// slot's stage open (the generation published, or the referee round opened).
	async fn wait_for_check(
		&self,
		key: SlotKey,
	) -> Result<(Assignment, super::chain::TaskView), Refusal> {
		let deadline = Instant::now() + ASSIGNMENT_WAIT;
		let mut view = self.view.subscribe();
		loop {
			view.borrow_and_update();
			let assignment = self.wait_for_assignment(key).await?;
			let (best, _) = self.chain.best();
			if let Ok(Some(task)) = self.chain.task(best, key.task) {
				if assignment.role != Role::Generator && drive_due(&assignment, task.task.status) {
					return Ok((assignment, task));
				}
			}
			// Another block may open the stage.
			if !view_changed(&mut view, deadline).await {
				return Err(Refusal::NotAssigned);
			}
		}
	}

	/// A check stage ran its last piece: keep its fingerprint (and, on the model's last
	/// chunk, its sampling verdict) and commit to it. The session stays (without its
	/// verifier) until the slot closes, to answer retried pieces.
	async fn finish_check(
		&self,
		key: SlotKey,
		session: &Arc<Mutex<CheckSession>>,
		verifier: dllm_inference::verification::StageVerifier,
	) {
		self.free_cache_off_loop(key).await;
		let result = Self::check_result(key, session, verifier);
		self.keep_and_commit(key, result, "finish the check").await;
	}

	/// A finished check stage's result: its fingerprint, and on the model's last chunk
	/// its verdict on the published output.
	fn check_result(
		key: SlotKey,
		session: &Arc<Mutex<CheckSession>>,
		verifier: dllm_inference::verification::StageVerifier,
	) -> Result<SlotResult, WorkerError> {
		let (published, claims_consistent) = {
			let session = lock(session);
			(session.published, session.claims_consistent)
		};
		let verdict = verifier.finish(max_fingerprint_bytes())?;
		let (output, output_hash) = match &verdict.sampling {
			Some(sampling) => {
				let accepted = sampling.accepted && claims_consistent;
				log::info!(
					target: LOG_TARGET,
					"task {} pipeline {}: the generation is {}{}",
					key.task, key.pipeline,
					if accepted { "plausible" } else { "rejected" },
					match (&sampling.reason, claims_consistent) {
						(Some(reason), _) => format!(": {reason}"),
						(None, false) => ": its prompt length or text do not follow from its tokens".into(),
						(None, true) => String::new(),
					},
				);
				(
					RevealedOutput::Verdict { accepted },
					pallet_poaw::verdict_hash(published, accepted),
				)
			}
			None => (RevealedOutput::Hash(published), published),
		};
		let fingerprint = verdict.fingerprint.encode();
		let salt: [u8; 32] = rand::random();
		let commitment = pallet_poaw::commitment(
			key.task,
			key.pipeline,
			key.chunk,
			&fingerprint,
			output_hash,
			salt,
		);
		Ok(SlotResult {
			task: key.task,
			pipeline: key.pipeline,
			chunk: key.chunk,
			fingerprint,
			output,
			publish: None,
			output_hash,
			salt,
			commitment,
		})
	}

	/// Keeps `result` on disk (a restarted miner must still reveal it) and commits it;
	/// an error (from what it failed to `what`) is logged and counted.
	async fn keep_and_commit(
		&self,
		key: SlotKey,
		result: Result<SlotResult, WorkerError>,
		what: &str,
	) {
		self.freeze_input(key).await;
		let result = match result {
			Ok(result) => result,
			Err(e) => {
				self.metrics.failure();
				log::error!(
					target: LOG_TARGET,
					"{key}: cannot {what}: {e}",
				);
				return;
			}
		};
		if let Err(e) = self.store.save(&result) {
			self.metrics.failure();
			log::error!(target: LOG_TARGET, "{e}");
			return;
		}
		self.report(Completion::Kept { key, call: commit_call(&result) });
	}

	/// Runs one pass of `key`'s session through this miner's chunk and the rest of the
	/// pipeline; returns the sampled token and whether generation is over.
	fn advance(
		self: &Arc<Self>,
		key: SlotKey,
		step: u32,
		message: Vec<u8>,
		signature: Option<Signature>,
	) -> BoxFuture<'static, Result<(u32, bool), Refusal>> {
		let worker = self.clone();
		async move {
			let result = worker.advance_inner(key, step, message, signature).await;
			// When a later stage went silent, this one's cache is right: kept, so that
			// the step can go on through the chain's replacement of that stage. Any
			// other failure starts the pipeline over.
			if matches!(result, Err(ref refusal) if !matches!(refusal, Refusal::Silent(_))) {
				worker.drop_session(key);
			}
			result
		}
		.boxed()
	}

	async fn advance_inner(
		self: &Arc<Self>,
		key: SlotKey,
		step: u32,
		message: Vec<u8>,
		signature: Option<Signature>,
	) -> Result<(u32, bool), Refusal> {
		let stop = self.model.config.eos_token_ids();
		let session = lock(&self.sessions).get(&key).cloned().ok_or_else(no_session)?;
		let input = BlakeTwo256::hash(&message);
		let (assignment, pending) = {
			let mut session = lock(&session);
			match session.last_reply {
				// A retried request: answer it again.
				Some((last, token)) if last == step => return Ok((token, session.is_done(&stop))),
				_ => {}
			}
			if step as usize != session.tokens.len() {
				return Err(Refusal::BadRequest(format!(
					"step {step}, expected {}",
					session.tokens.len()
				)));
			}
			let pending = match &session.pending {
				Some(pending) if pending.step == step && pending.input != input => {
					return Err(Refusal::BadRequest(format!(
						"step {step} again, on other input than before"
					)))
				}
				Some(pending) if pending.step == step => Some(pending.to.clone()),
				_ => None,
			};
			// Kept before it runs: the step is what this stage computes on.
			if let Some(signature) = signature {
				let signed = SignedMessage { index: step, message: message.clone(), signature };
				self.record_input(key, &session.assignment, signed)?;
			}
			session.live = true;
			(session.assignment.clone(), pending)
		};
		let token = match pending {
			// Run before, not answered downstream: the next stage failed. Go on through
			// the stage the chain has there now.
			Some(failed) => {
				let assignment = self.replaced_downstream(key, &session, &failed).await;
				let hidden = lock(&session).pending.as_ref().map(|p| p.output.clone());
				let hidden = hidden.ok_or_else(no_session)?;
				self.forward(&assignment, &session, step, hidden).await?
			}
			None => {
				let output = self.run_pass(&assignment, &session, message).await?;
				match output {
					PassOutput::Logits(logits) => {
						let params = compute::sampling(&assignment.sampling);
						sample(&logits, &params, step as u64)
							.map_err(|e| Refusal::Failed(e.to_string()))?
					}
					PassOutput::Hidden(hidden) => {
						let to = next_miner(&assignment)?.clone();
						lock(&session).pending =
							Some(PendingStep { step, input, output: hidden.clone(), to });
						self.forward(&assignment, &session, step, hidden).await?
					}
				}
			}
		};
		let done = {
			let mut session = lock(&session);
			if let Some(pending) = session.pending.take() {
				session.sent.push(pending.output);
			}
			session.tokens.push(token);
			session.last_reply = Some((step, token));
			session.is_done(&stop)
		};
		self.metrics.token();
		if done {
			self.finish(key).await;
		}
		Ok((token, done))
	}

	/// Runs `message` through this miner's chunk for `session`, on the blocking pool.
	async fn run_pass(
		&self,
		assignment: &Assignment,
		session: &Arc<Mutex<Session>>,
		message: Vec<u8>,
	) -> Result<PassOutput, Refusal> {
		let shard = self
			.model
			.shard(assignment.model, assignment.chunk)
			.ok_or_else(|| Refusal::Failed("this miner does not serve the chunk".into()))?;
		let max_positions = self.model.config.max_position_embeddings;
		let hooks = self.hooks;
		let session = session.clone();
		let (output, took) = tokio::task::spawn_blocking(move || {
			let started = Instant::now();
			let output = compute::run_pass(&shard, &session, &message, max_positions, hooks);
			(output, started.elapsed())
		})
		.await
		.map_err(|e| Refusal::Failed(format!("the pass panicked: {e}")))?;
		self.metrics.generation_pass(took);
		output.map_err(|e| Refusal::Failed(e.to_string()))
	}

	/// Hands a pass's hidden states to the next chunk's miner (this one, or a peer). A
	/// next miner that did not get the steps before (the chain replaced a dead one)
	/// first gets them again, with their tokens, to rebuild its cache (replay).
	async fn forward(
		self: &Arc<Self>,
		assignment: &Assignment,
		session: &Arc<Mutex<Session>>,
		step: u32,
		message: Vec<u8>,
	) -> Result<u32, Refusal> {
		let next_chunk = assignment.chunk + 1;
		let next = next_miner(assignment)?;
		let next_key = SlotKey { chunk: next_chunk, ..SlotKey::of(assignment) };
		let replay = {
			let session = lock(session);
			match &session.sent_to {
				Some(to) if to == next => None,
				_ if step == 0 => None,
				_ => Some((session.sent.clone(), session.tokens.clone())),
			}
		};
		if let Some((sent, tokens)) = replay {
			self.replay_to(next, next_key, step, sent, tokens).await?;
		}
		lock(session).sent_to = Some(next.clone());
		let signature = self.sign_hop(next_key, step, &message)?;
		if *next == self.account {
			self.open_session(next_key, step).await?;
			return self
				.advance(next_key, step, message, Some(signature))
				.await
				.map(|(token, _)| token);
		}
		let request = StageRequest::Activations {
			task: assignment.task,
			pipeline: assignment.pipeline,
			chunk: next_chunk,
			step,
			message,
			signature,
		};
		match self.send(next, request).await? {
			StageResponse::Token(token) => Ok(token),
			_ => Err(Refusal::Downstream("malformed reply".into())),
		}
	}

	/// Sends steps `0..step` (what this stage sent then, and the tokens sampled) to
	/// `next`, the replacement of the stage that received them.
	async fn replay_to(
		self: &Arc<Self>,
		next: &AccountId,
		next_key: SlotKey,
		step: u32,
		sent: Vec<Vec<u8>>,
		tokens: Vec<u32>,
	) -> Result<(), Refusal> {
		if sent.len() != step as usize || tokens.len() != step as usize {
			return Err(Refusal::Failed(format!(
				"cannot replay {step} steps: {} kept",
				sent.len()
			)));
		}
		let started = Instant::now();
		for (index, (message, token)) in sent.into_iter().zip(tokens).enumerate() {
			let index = index as u32;
			let signature = self.sign_hop(next_key, index, &message)?;
			if *next == self.account {
				if index == 0 {
					self.open_session(next_key, 0).await?;
				}
				self.replay_step(next_key, index, message, signature, token).await?;
				continue;
			}
			let request = StageRequest::Replay {
				task: next_key.task,
				pipeline: next_key.pipeline,
				chunk: next_key.chunk,
				step: index,
				message,
				signature,
				token,
			};
			match self.send(next, request).await? {
				StageResponse::Token(echo) if echo == token => {}
				_ => return Err(Refusal::Downstream("malformed replay reply".into())),
			}
		}
		self.metrics.replayed(step);
		log::info!(
			target: LOG_TARGET,
			"task {} pipeline {}: replayed {step} steps to chunk {}'s new miner {next} in {:?}",
			next_key.task, next_key.pipeline, next_key.chunk, started.elapsed(),
		);
		Ok(())
	}

	/// Runs replayed step `step` of `key`'s session (this miner replaces a stage that
	/// died): the pass rebuilds the cache and the fingerprint; nothing is passed on,
	/// and the token is the one the pipeline sampled then.
	async fn replay_step(
		self: &Arc<Self>,
		key: SlotKey,
		step: u32,
		message: Vec<u8>,
		signature: Signature,
		token: u32,
	) -> Result<u32, Refusal> {
		let session = lock(&self.sessions).get(&key).cloned().ok_or_else(no_session)?;
		let assignment = {
			let session = lock(&session);
			if session.last_reply == Some((step, token)) {
				return Ok(token);
			}
			// Only a new stage is replayed to, and no further than a generation goes.
			if session.live || step as usize >= session.max_new {
				return Err(Refusal::BadRequest(format!(
					"no replay here: this stage already runs (step {step})"
				)));
			}
			if step as usize != session.tokens.len() || session.pending.is_some() {
				return Err(Refusal::BadRequest(format!(
					"replayed step {step}, expected {}",
					session.tokens.len()
				)));
			}
			let signed = SignedMessage { index: step, message: message.clone(), signature };
			self.record_input(key, &session.assignment, signed)?;
			session.assignment.clone()
		};
		let output = match self.run_pass(&assignment, &session, message).await {
			Ok(output) => output,
			Err(refusal) => {
				self.drop_session(key);
				return Err(refusal);
			}
		};
		// The last chunk samples what the dead stage sampled, or the replay is false.
		if let PassOutput::Logits(logits) = &output {
			let params = compute::sampling(&assignment.sampling);
			let sampled =
				sample(logits, &params, step as u64).map_err(|e| Refusal::Failed(e.to_string()))?;
			if sampled != token {
				self.drop_session(key);
				return Err(Refusal::BadRequest(format!(
					"replayed step {step} samples {sampled} here, not {token}"
				)));
			}
		}
		let mut session = lock(&session);
		if let PassOutput::Hidden(hidden) = output {
			// The later stages hold these positions already (from the dead stage).
			session.sent.push(hidden);
			session.sent_to = assignment.pipeline_experts.get(key.chunk as usize + 1).cloned();
		}
		session.tokens.push(token);
		session.last_reply = Some((step, token));
		Ok(token)
	}

	/// `key`'s slot as the chain shows it now, once its next chunk's miner is no longer
	/// `failed` when this stage claimed that one silent (waiting up to
	/// `ASSIGNMENT_WAIT` for this node to see the replacement); the session follows it.
	async fn replaced_downstream(
		&self,
		key: SlotKey,
		session: &Arc<Mutex<Session>>,
		failed: &AccountId,
	) -> Assignment {
		let deadline = Instant::now() + ASSIGNMENT_WAIT;
		let mut view = self.view.subscribe();
		loop {
			let (now, claimed) = {
				let view = view.borrow_and_update();
				(slot_in(&view, key), view.claimed.contains(&(key, key.chunk + 1)))
			};
			let changed = match now {
				Some(current) => {
					let replaced =
						current.pipeline_experts.get(key.chunk as usize + 1) != Some(failed);
					if replaced || !claimed {
						lock(session).assignment = current.clone();
						return current;
					}
					view_changed(&mut view, deadline).await.then_some(()).ok_or(Some(current))
				}
				None => view_changed(&mut view, deadline).await.then_some(()).ok_or(None),
			};
			match changed {
				Ok(()) => continue,
				// Timed out: the slot as last seen, or the session's.
				Err(Some(current)) => {
					lock(session).assignment = current.clone();
					return current;
				}
				Err(None) => return lock(session).assignment.clone(),
			}
		}
	}

	/// Sends `request` to `miner`, retrying unreachable peers and slots not yet
	/// assigned on the receiver's side; returns a `Token` or `Prefilled` answer.
	async fn send(
		&self,
		miner: &AccountId,
		request: StageRequest,
	) -> Result<StageResponse, Refusal> {
		let peer = self.peer_of(miner, false).map_err(|e| Refusal::Downstream(e.to_string()))?;
		let bytes = request.encode();
		let mut last_error = String::new();
		for attempt in 0..SEND_ATTEMPTS {
			if attempt > 0 {
				tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
			}
			self.metrics.sent(bytes.len());
			let reply = self
				.network
				.request(peer, protocol_name(), bytes.clone(), None, IfDisconnected::TryConnect)
				.await;
			match reply.map(|(reply, _)| StageResponse::decode(&mut &reply[..])) {
				Ok(Ok(answer @ (StageResponse::Token(_) | StageResponse::Prefilled))) => {
					return Ok(answer)
				}
				Ok(Ok(StageResponse::Refused(Refusal::NotAssigned))) => {
					last_error = "the slot is not assigned there (yet)".into();
				}
				Ok(Ok(StageResponse::Refused(Refusal::Busy))) => {
					last_error = "the receiver is still running this request".into();
				}
				Ok(Ok(StageResponse::Refused(silent @ Refusal::Silent(_)))) => return Err(silent),
				Ok(Ok(StageResponse::Refused(refusal))) => {
					return Err(Refusal::Downstream(refusal.to_string()))
				}
				Ok(Ok(StageResponse::Aborted | StageResponse::Input { .. })) | Ok(Err(_)) => {
					return Err(Refusal::Downstream("malformed reply".into()))
				}
				Err(e) => last_error = e.to_string(),
			}
			log::debug!(target: LOG_TARGET, "request to {miner} (peer {peer}) failed: {last_error}");
		}
		self.metrics.failure();
		// The next stage left this one waiting: say so on chain, so that the deadline
		// blames it alone and the chain replaces it.
		let why = format!(
			"miner {miner} (peer {peer}) unreachable after {SEND_ATTEMPTS} attempts: {last_error}"
		);
		if let StageRequest::Activations { task, pipeline, chunk, .. }
		| StageRequest::Replay { task, pipeline, chunk, .. } = request
		{
			if let Some(own) = chunk.checked_sub(1) {
				let key = SlotKey { task, pipeline, chunk: own };
				// Claimed on chain: the generation can wait for the replacement.
				if self.claimed_silent(key, chunk, miner.clone()).await {
					return Err(Refusal::Silent(why));
				}
			}
		}
		Err(Refusal::Downstream(why))
	}

	/// Claims on chain that the neighbour `silent` of this miner's slot `key` left it
	/// waiting, once per slot, neighbour and pipeline, and only while both slots still
	/// owe their result (a refused claim would cost a fee); `answer` hears whether the
	/// claim is in the pool.
	fn claim_silence(
		self: &Arc<Self>,
		state: &mut LoopState,
		key: SlotKey,
		silent: u32,
		accused: AccountId,
		answer: Option<oneshot::Sender<bool>>,
	) {
		if let Some(claim) = state.claims.get_mut(&(key, silent)) {
			match answer {
				Some(answer) if claim.submitted => {
					let _ = answer.send(true);
				}
				Some(answer) => claim.waiting.push(answer),
				None => {}
			}
			return;
		}
		// Not claimable: the answer drops, which says `false`.
		let (best, now) = self.chain.best();
		let details = match self.chain.task(best, key.task) {
			Ok(Some(details)) => details,
			Ok(None) => return,
			Err(e) => {
				log::warn!(target: LOG_TARGET, "{key}: {e}");
				return;
			}
		};
		let computing = match (details.task.mode, details.task.status) {
			(VerificationMode::Redundant, TaskStatus::Assigned) => None,
			(VerificationMode::Prefill, TaskStatus::Assigned) => Some(Role::Generator),
			(VerificationMode::Prefill, TaskStatus::Verifying) => Some(Role::Verifier),
			_ => return,
		};
		let waiting = |chunk: u32, expert: &AccountId| {
			details.slots.iter().any(|slot| {
				slot.pipeline == key.pipeline
					&& slot.chunk == chunk
					&& slot.expert == *expert
					&& slot.state == SlotState::Assigned
					&& computing.is_none_or(|role| slot.role == role)
			})
		};
		// The silent chunk must still be the accused's at the best block: the chain may
		// have replaced it already, and a claim names only the chunk.
		if !waiting(key.chunk, &self.account) || !waiting(silent, &accused) {
			return;
		}
		let Some(own) = slot_in(&self.view.borrow(), key) else { return };
		if own.pipeline_experts.get(silent as usize) != Some(&accused) {
			return;
		}
		let pipeline = own.pipeline_experts;
		state.claims.insert(
			(key, silent),
			Claim { pipeline, at: now, submitted: false, waiting: answer.into_iter().collect() },
		);
		let stage = Stage::SilenceClaim { silent };
		state.submitted.remove(&(key, stage));
		let call = RuntimeCall::Poaw(pallet_poaw::Call::claim_silence {
			task: key.task,
			pipeline: key.pipeline,
			chunk: key.chunk,
			silent,
		});
		self.submit_once(state, key, stage, now, call);
	}

	/// Asks the loop to claim that `accused`, the miner of chunk `silent`, left `key`'s
	/// stage waiting; whether the claim is in the pool (or was already).
	async fn claimed_silent(&self, key: SlotKey, silent: u32, accused: AccountId) -> bool {
		let (answer, claimed) = oneshot::channel();
		self.report(Completion::SilenceFound { key, silent, accused, answer });
		claimed.await.unwrap_or(false)
	}

	/// The generation of `key` ended: attest the result, keep it, commit to it.
	async fn finish(&self, key: SlotKey) {
		let Some(session) = lock(&self.sessions).remove(&key) else { return };
		let result = {
			let session = lock(&session);
			self.attest(&session)
		};
		self.free_cache_off_loop(key).await;
		self.keep_and_commit(key, result, "attest the output").await;
	}

	fn attest(&self, session: &Session) -> Result<SlotResult, WorkerError> {
		let assignment = &session.assignment;
		let prompt_tokens = session.prompt_tokens.ok_or(WorkerError::NoPrompt)?;
		let tokens = session.tokens.clone();
		let text = self.model.tokenizer.decode(&tokens)?.into_bytes();
		let output_hash = pallet_poaw::output_hash(prompt_tokens, &tokens, &text);
		let fingerprint = session.fingerprint.finish(max_fingerprint_bytes())?.encode();
		let last = assignment.chunk + 1 == assignment.chunks;
		let full =
			|| RevealedOutput::Full { prompt_tokens, tokens: tokens.clone(), text: text.clone() };
		// Under prefill verification the last chunk publishes the output with its commit
		// (the verifier needs it) and every slot reveals its hash.
		let (output, publish) = match (assignment.mode, last) {
			(VerificationMode::Redundant, true) => (full(), None),
			(VerificationMode::Prefill, true) => (RevealedOutput::Hash(output_hash), Some(full())),
			(_, false) => (RevealedOutput::Hash(output_hash), None),
		};
		let salt: [u8; 32] = rand::random();
		let commitment = pallet_poaw::commitment(
			assignment.task,
			assignment.pipeline,
			assignment.chunk,
			&fingerprint,
			output_hash,
			salt,
		);
		Ok(SlotResult {
			task: assignment.task,
			pipeline: assignment.pipeline,
			chunk: assignment.chunk,
			fingerprint,
			output,
			publish,
			output_hash,
			salt,
			commitment,
		})
	}

	async fn handle(self: Arc<Self>, request: IncomingRequest) {
		self.metrics.received(request.payload.len());
		let response = match StageRequest::decode(&mut &request.payload[..]) {
			Err(e) => {
				// An expected sender that sends what no honest miner encodes.
				let _ = request.pending_response.send(OutgoingResponse {
					result: Ok(StageResponse::Refused(Refusal::BadRequest(e.to_string())).encode()),
					reputation_changes: vec![ReputationChange::new_fatal(
						"dllm: undecodable request",
					)],
					sent_feedback: None,
				});
				return;
			}
			Ok(StageRequest::Activations { task, pipeline, chunk, step, message, signature }) => {
				let key = SlotKey { task, pipeline, chunk };
				match self.accept(key, step, request.peer).await {
					Err(refusal) => StageResponse::Refused(refusal),
					Ok(()) => match self.advance(key, step, message, Some(signature)).await {
						Ok((token, _)) => StageResponse::Token(token),
						Err(refusal) => StageResponse::Refused(refusal),
					},
				}
			}
			Ok(StageRequest::Prefill { task, pipeline, chunk, piece, message, signature }) => {
				let key = SlotKey { task, pipeline, chunk };
				match self.accept_check(key, piece, request.peer).await {
					Err(refusal) => StageResponse::Refused(refusal),
					Ok(()) => match self.check_piece(key, piece, message, Some(signature)).await {
						Ok(()) => StageResponse::Prefilled,
						Err(refusal) => StageResponse::Refused(refusal),
					},
				}
			}
			Ok(StageRequest::Replay { task, pipeline, chunk, step, message, signature, token }) => {
				let key = SlotKey { task, pipeline, chunk };
				match self.accept(key, step, request.peer).await {
					Err(refusal) => StageResponse::Refused(refusal),
					Ok(()) => match self.replay_step(key, step, message, signature, token).await {
						Ok(token) => StageResponse::Token(token),
						Err(refusal) => StageResponse::Refused(refusal),
					},
				}
			}
			Ok(StageRequest::Input { task, pipeline, chunk, from }) => {
				match self.input_page(SlotKey { task, pipeline, chunk }, from, request.peer).await {
					Ok(page) => page,
					Err(refusal) => StageResponse::Refused(refusal),
				}
			}
			Ok(StageRequest::Abort { task, pipeline, chunk }) => {
				let key = SlotKey { task, pipeline, chunk };
				let assignment = self.session_assignment(key);
				if let Some(assignment) = assignment {
					if self.is_previous_miner(&assignment, request.peer) {
						self.drop_session(key);
						self.abort_downstream(&assignment);
					}
				}
				StageResponse::Aborted
			}
		};
		let _ = request.pending_response.send(OutgoingResponse {
			result: Ok(response.encode()),
			reputation_changes: Vec::new(),
			sent_feedback: None,
		});
	}

	/// Checks an incoming pass is for a slot of this miner and comes from the previous
	/// chunk's miner, opening the session at step 0.
	async fn accept(
		self: &Arc<Self>,
		key: SlotKey,
		step: u32,
		peer: PeerId,
	) -> Result<(), Refusal> {
		if lock(&self.checks).contains_key(&key) {
			return Err(Refusal::BadRequest(
				"this slot checks by prefill; it generates nothing".into(),
			));
		}
		let mut existing = self.session_assignment(key);
		if let Some(stale) = &existing {
			if step == 0 && (self.restarted(key) || !self.is_previous_miner(stale, peer)) {
				// The pipeline starts over from its first token (the chain replaced a
				// stage): begin again with the chain's current view of the pipeline,
				// once that view confirms the sender (nobody else may end a running
				// session).
				let current = self.wait_for_assignment(key).await?;
				if !self.is_previous_miner(&current, peer) {
					return Err(Refusal::WrongSender);
				}
				self.drop_session(key);
				existing = None;
			} else if step > 0 && !self.is_previous_miner(stale, peer) {
				// The chain replaced the previous stage, which died: go on with its
				// replacement (the cache is right), once this node's chain confirms it
				// (the sender may have seen the replacement a block earlier).
				let deadline = Instant::now() + ASSIGNMENT_WAIT;
				let mut view = self.view.subscribe();
				let current = loop {
					view.borrow_and_update();
					let current = self.wait_for_assignment(key).await?;
					if self.is_previous_miner(&current, peer) {
						break current;
					}
					if !view_changed(&mut view, deadline).await {
						return Err(Refusal::WrongSender);
					}
				};
				if let Some(session) = lock(&self.sessions).get(&key).cloned() {
					lock(&session).assignment = current.clone();
				}
				existing = Some(current);
			}
		}
		let assignment = match existing {
			Some(assignment) => assignment,
			None if step == 0 => self.wait_for_assignment(key).await?,
			None => return Err(no_session()),
		};
		if assignment.mode == VerificationMode::Prefill && assignment.role != Role::Generator {
			return Err(Refusal::BadRequest(
				"this slot checks by prefill; it generates nothing".into(),
			));
		}
		if !self.is_previous_miner(&assignment, peer) {
			return Err(Refusal::WrongSender);
		}
		self.open_session(key, step).await
	}

	/// Whether `key`'s generation session is past its first step: a step 0 now is the
	/// pipeline starting over, not a retry of the first request.
	fn restarted(&self, key: SlotKey) -> bool {
		let session = lock(&self.sessions).get(&key).cloned();
		session.is_some_and(|session| lock(&session).tokens.len() > 1)
	}

	fn is_previous_miner(&self, assignment: &Assignment, peer: PeerId) -> bool {
		let Some(previous) = assignment
			.chunk
			.checked_sub(1)
			.and_then(|chunk| assignment.pipeline_experts.get(chunk as usize))
		else {
			return false;
		};
		// A profile may have changed since the peer was cached: look once more.
		self.peer_of(previous, false).is_ok_and(|p| p == peer)
			|| self.peer_of(previous, true).is_ok_and(|p| p == peer)
	}

	/// Opens `key`'s session for `step` 0 (kept when a retried step 0 finds it running).
	async fn open_session(self: &Arc<Self>, key: SlotKey, step: u32) -> Result<(), Refusal> {
		let exists = lock(&self.sessions).contains_key(&key);
		if exists {
			return Ok(());
		}
		if step != 0 {
			return Err(no_session());
		}
		let assignment = self.wait_for_assignment(key).await?;
		let session = Session::new(assignment).map_err(|e| Refusal::Failed(e.to_string()))?;
		lock(&self.sessions).entry(key).or_insert_with(|| Arc::new(Mutex::new(session)));
		Ok(())
	}

	/// This miner's slot `key` in its best block, waiting for new blocks for a while.
	async fn wait_for_assignment(&self, key: SlotKey) -> Result<Assignment, Refusal> {
		let deadline = Instant::now() + ASSIGNMENT_WAIT;
		let mut view = self.view.subscribe();
		loop {
			let now = slot_in(&view.borrow_and_update(), key);
			if let Some(assignment) = now.filter(|a| a.state == SlotState::Assigned) {
				return Ok(assignment);
			}
			if !view_changed(&mut view, deadline).await {
				return Err(Refusal::NotAssigned);
			}
		}
	}

	/// The libp2p peer an expert registered.
	pub(super) fn peer_of(&self, miner: &AccountId, refresh: bool) -> Result<PeerId, WorkerError> {
		if !refresh {
			if let Some(peer) = lock(&self.peers).get(miner) {
				return Ok(*peer);
			}
		}
		let (best, _) = self.chain.best();
		let record = self
			.chain
			.expert(best, miner)?
			.ok_or_else(|| WorkerError::NotAnExpert(miner.clone()))?;
		let peer = PeerId::from_bytes(&record.profile.peer_id)
			.map_err(|e| WorkerError::BadPeerId { expert: miner.clone(), reason: e.to_string() })?;
		lock(&self.peers).insert(miner.clone(), peer);
		Ok(peer)
	}

	/// The slot of `key`'s open session (generation or check). The map's lock is
	/// released before the session's is taken: a session stays locked for a whole pass.
	pub(super) fn session_assignment(&self, key: SlotKey) -> Option<Assignment> {
		let session = lock(&self.sessions).get(&key).cloned();
		if let Some(session) = session {
			return Some(lock(&session).assignment.clone());
		}
		let check = lock(&self.checks).get(&key).cloned();
		check.map(|check| lock(&check).assignment.clone())
	}

	/// Frees `key`'s KV cache in its chunk (blocking: waits for a pass on the chunk).
	fn free_cache(&self, key: SlotKey) {
		if let Some(shard) = self.model.shard(self.model.model, key.chunk) {
			compute::end_session(&shard, key.task, key.pipeline);
		}
	}

	/// [`Worker::free_cache`] from async code, on a blocking thread (N2).
	async fn free_cache_off_loop(&self, key: SlotKey) {
		if let Some(shard) = self.model.shard(self.model.model, key.chunk) {
			compute::end_session_off_loop(shard, key.task, key.pipeline).await;
		}
	}

	fn drop_session(&self, key: SlotKey) {
		let generation = lock(&self.sessions).remove(&key).is_some();
		let check = lock(&self.checks).remove(&key).is_some();
		if generation || check {
			self.free_cache(key);
		}
	}

	/// Tells the next miner (best effort, in the background) to free its session.
	fn abort_downstream(self: &Arc<Self>, assignment: &Assignment) {
		let next_chunk = assignment.chunk + 1;
		let Some(next) = assignment.pipeline_experts.get(next_chunk as usize).cloned() else {
			return;
		};
		let key = SlotKey { chunk: next_chunk, ..SlotKey::of(assignment) };
		if next == self.account {
			let assignment = self.session_assignment(key);
			self.drop_session(key);
			if let Some(assignment) = assignment {
				self.abort_downstream(&assignment);
			}
			return;
		}
		let Ok(peer) = self.peer_of(&next, false) else { return };
		let request =
			StageRequest::Abort { task: key.task, pipeline: key.pipeline, chunk: key.chunk }
				.encode();
		let network = self.network.clone();
		self.spawner.spawn("dllm-miner-abort", Some("dllm-miner"), async move {
			let _ = network
				.request(peer, protocol_name(), request, None, IfDisconnected::ImmediateError)
				.await;
		});
	}
}

/// Why a submitted transaction left the pool without a block finalizing it (`None`:
/// finalized, or nothing more is known).
async fn not_included(
	mut status: std::pin::Pin<Box<TransactionStatusStreamFor<super::chain::Pool>>>,
) -> Option<&'static str> {
	while let Some(status) = status.next().await {
		match status {
			TransactionStatus::Finalized(_) | TransactionStatus::FinalityTimeout(_) => return None,
			TransactionStatus::Usurped(_) => return Some("usurped by another transaction"),
			TransactionStatus::Dropped => return Some("dropped from the transaction pool"),
			TransactionStatus::Invalid => return Some("found invalid by the transaction pool"),
			// Ready, broadcast, in a block (which may still be retracted), retracted.
			_ => {}
		}
	}
	None
}

/// The most bytes a fingerprint may take on chain.
pub(super) fn max_fingerprint_bytes() -> usize {
	<<Runtime as pallet_poaw::Config>::MaxFingerprintBytes as Get<u32>>::get() as usize
}

/// The kept results whose slot is open neither at the best block nor at the finalized
/// one: those that may be deleted.
fn closed_at_both<'a>(
	kept: &'a [SlotKey],
	open_best: &'a HashSet<SlotKey>,
	open_finalized: &'a HashSet<SlotKey>,
) -> impl Iterator<Item = SlotKey> + 'a {
	kept.iter().copied().filter(|key| !open_best.contains(key) && !open_finalized.contains(key))
}

/// This miner's slot `key` in `view`.
fn slot_in(view: &SlotsView, key: SlotKey) -> Option<Assignment> {
	view.slots.iter().find(|a| SlotKey::of(a) == key).cloned()
}

/// The miner of the chunk after `assignment`'s in its pipeline.
fn next_miner(assignment: &Assignment) -> Result<&AccountId, Refusal> {
	assignment
		.pipeline_experts
		.get(assignment.chunk as usize + 1)
		.ok_or_else(|| Refusal::Failed("the pipeline has no next miner".into()))
}

/// A pass for a session this stage does not hold (never opened, ended or freed).
pub(super) fn no_session() -> Refusal {
	Refusal::BadRequest("no session here: restart the pipeline at step 0".into())
}

/// Whether the pipeline whose first chunk `assignment` holds runs now: a generator's
/// at once, a verifier's once the output is published, a referee round's once opened.
fn drive_due(assignment: &Assignment, status: TaskStatus) -> bool {
	match (assignment.mode, assignment.role) {
		(VerificationMode::Redundant, _) => status == TaskStatus::Assigned,
		(VerificationMode::Prefill, Role::Generator) => status == TaskStatus::Assigned,
		(VerificationMode::Prefill, Role::Verifier) => status == TaskStatus::Verifying,
		(VerificationMode::Prefill, Role::Referee) => status == TaskStatus::Refereeing,
	}
}

/// Whether a committed slot reveals now.
fn reveal_due(assignment: &Assignment, status: TaskStatus) -> bool {
	match (assignment.mode, assignment.role) {
		(VerificationMode::Prefill, Role::Referee) => status == TaskStatus::Judging,
		_ => status == TaskStatus::Committed,
	}
}

fn commit_call(result: &SlotResult) -> RuntimeCall {
	match &result.publish {
		Some(output) => RuntimeCall::Poaw(pallet_poaw::Call::commit_output {
			task: result.task,
			pipeline: result.pipeline,
			chunk: result.chunk,
			commitment: result.commitment,
			output: output.clone(),
		}),
		None => RuntimeCall::Poaw(pallet_poaw::Call::commit {
			task: result.task,
			pipeline: result.pipeline,
			chunk: result.chunk,
			commitment: result.commitment,
		}),
	}
}

pub(super) fn reveal_call(
	result: SlotResult,
	input_check: Option<InputCheck<Vec<u8>>>,
) -> RuntimeCall {
	RuntimeCall::Poaw(pallet_poaw::Call::reveal {
		task: result.task,
		pipeline: result.pipeline,
		chunk: result.chunk,
		fingerprint: result.fingerprint,
		output: result.output,
		salt: result.salt,
		input_check,
	})
}

#[cfg(test)]
mod tests {
	use super::*;

	fn key(task: TaskId, pipeline: PipelineIndex, chunk: u32) -> SlotKey {
		SlotKey { task, pipeline, chunk }
	}

	/// N1 of the review: requests from a peer that is no previous stage of this miner
	/// (nor a referee asking for input) are refused unread, however many it sends, and
	/// cost it enough reputation that sc-network bans it long before 10 000; an expected
	/// peer gets at most `MAX_REQUESTS_PER_PEER` running at once, and all peers together
	/// `MAX_REQUESTS` (the reputation bound is checked at compile time, beside
	/// `UNEXPECTED_REQUEST_COST`).
	#[test]
	fn unexpected_peers_are_refused_unread_and_running_requests_are_bounded() {
		let (stranger, upstream, other) = (PeerId::random(), PeerId::random(), PeerId::random());
		let expected: HashSet<PeerId> = [upstream, other].into();
		let mut in_flight: HashMap<PeerId, usize> = HashMap::new();
		for _ in 0..10_000 {
			assert_eq!(admission(&stranger, &expected, &in_flight), Admission::Unexpected);
		}
		// 50 concurrent requests from the upstream: the first MAX_REQUESTS_PER_PEER run.
		let admitted = (0..50)
			.filter(|_| {
				let admit = admission(&upstream, &expected, &in_flight) == Admission::Handle;
				if admit {
					*in_flight.entry(upstream).or_default() += 1;
				}
				admit
			})
			.count();
		assert_eq!(admitted, MAX_REQUESTS_PER_PEER);
		assert_eq!(admission(&upstream, &expected, &in_flight), Admission::Busy);
		// Other peers still get in, up to the total: fill it to one short with peers at
		// their own bound, then `other` takes the last place.
		let mut expected = expected;
		let mut left = MAX_REQUESTS - MAX_REQUESTS_PER_PEER - 1;
		while left > 0 {
			let filler = PeerId::random();
			let running = left.min(MAX_REQUESTS_PER_PEER);
			expected.insert(filler);
			in_flight.insert(filler, running);
			left -= running;
		}
		assert_eq!(admission(&other, &expected, &in_flight), Admission::Handle);
		*in_flight.entry(other).or_default() += 1;
		let late = PeerId::random();
		expected.insert(late);
		assert_eq!(admission(&late, &expected, &in_flight), Admission::Busy);
	}

	fn slot(key: SlotKey, pipeline: &[AccountId]) -> Assignment {
		Assignment {
			task: key.task,
			model: 0,
			pipeline: key.pipeline,
			chunk: key.chunk,
			chunks: pipeline.len() as u32,
			state: SlotState::Assigned,
			deadline: 100,
			mode: VerificationMode::Prefill,
			role: Role::Generator,
			pipeline_experts: pipeline.to_vec(),
			prompt: Vec::new(),
			max_tokens: 8,
			sampling: Default::default(),
			threshold: 1,
			accused_by: Vec::new(),
		}
	}

	/// A silence claim is made once per slot, neighbour and pipeline: it stays while the
	/// chain keeps the pipeline, up to `claim_lapses_after()` blocks, (a second find of the same silence is not claimed again,
	/// which would pay a refused call's fee), and goes with its submission's record once
	/// the chain replaced a miner or closed the slot, so that the replacement can be
	/// claimed against in turn. Only claims in the pool are published to the handlers.
	#[test]
	fn claims_are_settled_by_a_replacement_or_the_slot_closing() {
		let miners: Vec<AccountId> = (0..3u8).map(|i| AccountId::new([i; 32])).collect();
		let (claimed, pending, closing) = ((key(1, 0, 0), 1), (key(2, 0, 1), 2), (key(3, 0, 0), 1));
		let mut state = LoopState::default();
		for (run, (slot_key, silent)) in [claimed, pending, closing].into_iter().enumerate() {
			let submitted = slot_key != pending.0;
			state.claims.insert(
				(slot_key, silent),
				Claim { pipeline: miners.clone(), at: 1, submitted, waiting: Vec::new() },
			);
			state.submitted.insert(
				(slot_key, Stage::SilenceClaim { silent }),
				Submission { at: 1, run: run as u64 },
			);
		}
		assert_eq!(state.claimed(), [claimed, closing].into());

		// The same pipelines, one slot gone: only its claim is settled.
		let slots = [slot(claimed.0, &miners), slot(pending.0, &miners)];
		state.settle_claims(&slots, 2);
		assert_eq!(state.claims.len(), 2);
		assert_eq!(state.claimed(), [claimed].into());
		assert!(!state.submitted.contains_key(&(closing.0, Stage::SilenceClaim { silent: 1 })));

		// Chunk 1 of task 1 replaced: its claim is settled, and a new one can be made.
		let mut replaced = miners.clone();
		replaced[1] = AccountId::new([9; 32]);
		state.settle_claims(&[slot(claimed.0, &replaced), slot(pending.0, &miners)], 3);
		assert_eq!(state.claims.keys().copied().collect::<Vec<_>>(), vec![pending]);
		assert!(state.claimed().is_empty());
		assert_eq!(state.submitted.len(), 1);

		// A claim that changed nothing in its period (it failed in its block, or the
		// accused answered) lapses, so the pipeline can be driven again.
		state.settle_claims(&[slot(pending.0, &miners)], 1 + claim_lapses_after());
		assert_eq!(state.claims.len(), 1);
		state.settle_claims(&[slot(pending.0, &miners)], 2 + claim_lapses_after());
		assert!(state.claims.is_empty() && state.submitted.is_empty());
	}

	/// L2 of the review: a slot that left the best block's assignments but is still open
	/// at the finalized block (a fork, or a database behind what the node saw) keeps its
	/// result, the only copy of its salt.
	#[test]
	fn a_result_is_deleted_only_once_its_slot_closed_at_the_finalized_block_too() {
		let kept = [key(1, 0, 0), key(2, 0, 1), key(3, 1, 0)];
		let open_best: HashSet<SlotKey> = [key(3, 1, 0)].into();
		let open_finalized: HashSet<SlotKey> = [key(2, 0, 1), key(3, 1, 0)].into();
		let deleted: Vec<SlotKey> = closed_at_both(&kept, &open_best, &open_finalized).collect();
		assert_eq!(deleted, vec![key(1, 0, 0)]);
	}
}
