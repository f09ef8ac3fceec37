//! Prefill verification: the verifier's stage, the chain's comparison of the two sides'
//! fingerprints, referee rounds on the first disagreeing chunk, and how a dispute ends.
//!
//! The generator's pipeline is pipeline 0, the verifier's pipeline 1, and referee round
//! `n` (from 1) holds up to `RefereesPerRound` pipelines from `2 + (n - 1) ×
//! RefereesPerRound` on, each covering chunks `0..=k` of the disputed chunk `k`: a
//! referee recomputes the prefix by prefill, and only its chunk `k` decides. A round
//! settles only when all its referees agree.

use crate::*;
use alloc::vec::Vec;
use dllm_fingerprint::{Fingerprint, RowKind, VerificationParams};

/// The generator's pipeline.
pub(crate) const GENERATOR: PipelineIndex = 0;
/// The verifier's pipeline.
pub(crate) const VERIFIER: PipelineIndex = 1;

impl<T: Config> Pallet<T> {
	/// Whether `pipeline` is one of the current referee round's, if a dispute is open.
	pub(crate) fn in_referee_round(info: &TaskOf<T>, pipeline: PipelineIndex) -> bool {
		info.dispute.is_some_and(|dispute| {
			dispute.round_pipelines(T::RefereesPerRound::get()).contains(&pipeline)
		})
	}

	/// The generator committed (its last chunk published the output): the verifier's
	/// miners recompute it.
	pub(crate) fn open_verification(task: TaskId, info: &mut TaskOf<T>) {
		let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
		info.status = TaskStatus::Verifying;
		Self::reschedule(task, info, now.saturating_add(T::CommitPeriod::get()));
		Self::deposit_event(Event::VerificationOpened { task, deadline: info.deadline });
	}

	/// Whether the revealed fingerprints of slots `a` and `b` agree under the model's
	/// profile for the looser of their two formats. Anything that does not decode, or
	/// was taken with other parameters than the registry's, disagrees.
	pub(crate) fn fingerprints_agree(
		task: TaskId,
		info: &TaskOf<T>,
		slots: &[SlotOf<T>],
		a: usize,
		b: usize,
	) -> bool {
		let (Some(slot_a), Some(slot_b)) = (slots.get(a), slots.get(b)) else { return false };
		let (Some(bytes_a), Some(bytes_b)) =
			(Fingerprints::<T>::get(task, a as u32), Fingerprints::<T>::get(task, b as u32))
		else {
			return false;
		};
		Self::bytes_agree(info, slot_a.format.max(slot_b.format), &bytes_a, &bytes_b)
	}

	/// Whether two encoded fingerprints agree under the model's profile for `format`.
	fn bytes_agree(info: &TaskOf<T>, format: NumericFormat, a: &[u8], b: &[u8]) -> bool {
		let params =
			T::Models::verification(info.model, format).unwrap_or(VerificationParams::DEFAULT);
		let decode = |bytes: &[u8]| {
			Fingerprint::decode(bytes).ok().filter(|fingerprint| {
				let registered = params.fingerprint;
				fingerprint.params
					== dllm_fingerprint::FingerprintParams {
						top_k: registered.top_k_for(fingerprint.width),
						..registered
					}
			})
		};
		let (Some(fp_a), Some(fp_b)) = (decode(a), decode(b)) else { return false };
		let tolerance = match fp_a.kind {
			RowKind::Hidden => params.hidden,
			RowKind::Logits => params.logits,
		};
		dllm_fingerprint::compare(&fp_a, &fp_b, &tolerance).is_ok_and(|c| c.accepted)
	}

	/// Whether the revealed fingerprint of slot `index` agrees with `bytes`, taken in
	/// `format`.
	fn agrees_with(
		task: TaskId,
		info: &TaskOf<T>,
		slots: &[SlotOf<T>],
		index: Option<usize>,
		format: NumericFormat,
		bytes: &[u8],
	) -> bool {
		let Some((index, slot)) = index.and_then(|i| slots.get(i).map(|slot| (i, slot))) else {
			return false;
		};
		Fingerprints::<T>::get(task, index as u32)
			.is_some_and(|own| Self::bytes_agree(info, slot.format.max(format), &own, bytes))
	}

	/// The slot to blame when the referee `referee` of chunk `k` disagrees with side
	/// `side`, whose stage at `k` is `stage`: that stage, unless the referee's input
	/// check shows that the stage's output follows from the input its upstream sent
	/// (the recomputation agrees with the stage's fingerprint) and that this input does
	/// not follow from the prefix (it disagrees with the referee's and the other side's
	/// chunk `k - 1`): then the upstream stage. `None`: the evidence contradicts itself
	/// (the stage's input and its output both check out), and the round is inconclusive.
	fn blamed_stage(
		task: TaskId,
		info: &TaskOf<T>,
		slots: &[SlotOf<T>],
		k: ChunkIndex,
		side: PipelineIndex,
		stage: usize,
		referee: usize,
	) -> Option<usize> {
		let check = InputChecks::<T>::get(task, referee as u32).filter(|c| c.side() == side);
		let (Some(upstream_chunk), Some(InputCheck::Checked { recomputed, input, .. })) =
			(k.checked_sub(1), check)
		else {
			return Some(stage);
		};
		let referee_slot = slots.get(referee)?;
		if !Self::agrees_with(task, info, slots, Some(stage), referee_slot.format, &recomputed) {
			return Some(stage);
		}
		let other = if side == GENERATOR { VERIFIER } else { GENERATOR };
		let upstream = Self::revealed(slots, side, upstream_chunk)?;
		let pipeline = referee_slot.pipeline;
		// The input was computed in the upstream stage's format.
		let sent_format = slots.get(upstream)?.format;
		let follows =
			|index: Option<usize>| Self::agrees_with(task, info, slots, index, sent_format, &input);
		let against_referee = follows(Self::revealed(slots, pipeline, upstream_chunk));
		let against_other = follows(Self::revealed(slots, other, upstream_chunk));
		if against_referee || against_other {
			return None;
		}
		Some(upstream)
	}

	/// The index of the slot of `pipeline` and `chunk`, if it revealed.
	fn revealed(slots: &[SlotOf<T>], pipeline: PipelineIndex, chunk: ChunkIndex) -> Option<usize> {
		slots.iter().position(|slot| {
			slot.pipeline == pipeline
				&& slot.chunk == chunk
				&& matches!(slot.state, SlotState::Revealed(_))
		})
	}

	/// The generator and the verifier revealed (or the reveal deadline passed): the
	/// chain compares them chunk by chunk. Agreement with an accepting sampling verdict
	/// completes the task; the first disagreement (or a rejected sampling) opens a
	/// referee round; a side that did not reveal ends the task with a full refund.
	pub(crate) fn compare_work(
		task: TaskId,
		info: TaskOf<T>,
		mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
	) {
		let chunks = T::Models::chunk_count(info.model).unwrap_or(0);
		let incomplete = slots.iter().any(|slot| {
			slot.role != Role::Referee && !matches!(slot.state, SlotState::Revealed(_))
		});
		if incomplete || chunks == 0 {
			Self::release_idle(&info, slots.as_mut());
			Slots::<T>::insert(task, &slots);
			return Self::expire(task, info, &slots, Perbill::zero());
		}
		let disagreement = (0..chunks).find(|chunk| {
			match (
				Self::revealed(&slots, GENERATOR, *chunk),
				Self::revealed(&slots, VERIFIER, *chunk),
			) {
				(Some(g), Some(v)) => !Self::fingerprints_agree(task, &info, &slots, g, v),
				_ => true,
			}
		});
		let last = chunks.saturating_sub(1);
		let sampling_accepted = Self::revealed(&slots, VERIFIER, last)
			.and_then(|v| Verdicts::<T>::get(task, v as u32))
			.unwrap_or(false);
		Self::deposit_event(Event::WorkCompared { task, disagreement, sampling_accepted });
		match disagreement {
			None if sampling_accepted => {
				let paid: Vec<usize> = (0..slots.len()).collect();
				Self::complete_prefill(task, info, &slots, &paid, None, &[]);
			}
			None => Self::open_referee_round(task, info, slots, last, true),
			Some(chunk) => Self::open_referee_round(task, info, slots, chunk, false),
		}
	}

	/// Assigns the next referee round for `chunk` (`sampling`: the sampling is
	/// disputed): up to `RefereesPerRound` pipelines, each the chunk's auction and those
	/// of the chunks before it, among experts not yet in the task and disjoint from each
	/// other. Without a referee pipeline, or past `MaxRefereeRounds`, the task is
	/// refunded and nobody is slashed.
	///
	/// The task's price cap does not bound the referees' asks: a requester paying the
	/// quote has its winners' own asks as its cap, which would leave every dearer
	/// expert out and let a lying side escape unsettled. Referees are paid from the
	/// loser's slash (scaled down to it), or, when both sides stand, by the requester
	/// at most at its cap.
	pub(crate) fn open_referee_round(
		task: TaskId,
		mut info: TaskOf<T>,
		mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
		chunk: ChunkIndex,
		sampling: bool,
	) {
		let round = info.dispute.map_or(0, |d| d.rounds).saturating_add(1);
		let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
		let dispute = Dispute { chunk, sampling, rounds: round.min(T::MaxRefereeRounds::get()) };
		let mut excluded: Vec<T::AccountId> = LateMiners::<T>::get(task).into_inner();
		excluded.push(info.requester.clone());
		excluded.extend(slots.iter().map(|slot| slot.expert.clone()));
		let mut referees: Vec<SlotOf<T>> = Vec::new();
		let mut pipelines = 0u8;
		if round <= T::MaxRefereeRounds::get() {
			for pipeline in dispute.round_pipelines(T::RefereesPerRound::get()) {
				let room = (T::MaxSlots::get() as usize)
					.saturating_sub(slots.len())
					.saturating_sub(referees.len());
				let Some(picked) =
					Self::referee_pipeline(&info, pipeline, chunk, &excluded, room, now)
				else {
					break;
				};
				excluded.extend(picked.iter().map(|slot| slot.expert.clone()));
				referees.extend(picked);
				pipelines.saturating_inc();
			}
		}
		info.dispute = Some(dispute);
		if referees.is_empty() {
			Self::deposit_event(Event::DisputeSettled {
				task,
				chunk,
				outcome: DisputeOutcome::Unsettled,
			});
			Slots::<T>::insert(task, &slots);
			return Self::expire(task, info, &slots, Perbill::zero());
		}
		for slot in referees {
			MinerTasks::<T>::insert(&slot.expert, task, ());
			Self::deposit_event(Event::SlotAssigned {
				task,
				pipeline: slot.pipeline,
				chunk: slot.chunk,
				expert: slot.expert.clone(),
				threshold: slot.threshold,
			});
			// Room was checked when the pipeline was picked.
			let _ = slots.try_push(slot);
		}
		info.status = TaskStatus::Refereeing;
		Self::reschedule(task, &mut info, now.saturating_add(T::CommitPeriod::get()));
		Self::deposit_event(Event::RefereesAssigned {
			task,
			chunk,
			sampling,
			round,
			referees: pipelines,
			deadline: info.deadline,
		});
		Slots::<T>::insert(task, &slots);
		Tasks::<T>::insert(task, info);
	}

	/// One referee pipeline for chunks `0..=chunk`: each chunk's best bid among experts
	/// not in `excluded`, whatever it asks, noted as assigned. `None` (nothing noted)
	/// when a chunk has no bidder or the pipeline needs more than `room` slots.
	fn referee_pipeline(
		info: &TaskOf<T>,
		pipeline: PipelineIndex,
		chunk: ChunkIndex,
		excluded: &[T::AccountId],
		room: usize,
		now: BlockNumberFor<T>,
	) -> Option<Vec<SlotOf<T>>> {
		if (chunk as usize).saturating_add(1) > room {
			return None;
		}
		polkadot_sdk::frame_support::storage::with_storage_layer(|| {
			let mut picked = Vec::new();
			for c in 0..=chunk {
				let bids: Vec<_> =
					Self::bids(info.model, c, info.domain.as_ref(), info.tie_seed, excluded)
						.into_iter()
						.map(|(bid, _, _)| bid)
						.collect();
				let award = auction::run(&bids, 1, u128::MAX)
					.into_iter()
					.next()
					.ok_or(Error::<T>::NoMinersAvailable)?;
				T::Experts::note_assigned(&award.expert)?;
				let format = Self::offered_format(info.model, c, &award.expert);
				picked.push(Slot {
					pipeline,
					chunk: c,
					expert: award.expert,
					role: Role::Referee,
					format,
					threshold: award.threshold.saturated_into(),
					assigned_at: now,
					state: SlotState::Assigned,
				});
			}
			Ok::<_, DispatchError>(picked)
		})
		.ok()
	}

	/// What one referee pipeline of the round found: the outcome and the slot that lost
	/// (`usize::MAX` when both sides stand), or `None` when it is inconclusive (silent,
	/// matching neither side, or evidence that contradicts itself).
	fn referee_verdict(
		task: TaskId,
		info: &TaskOf<T>,
		slots: &[SlotOf<T>],
		dispute: Dispute,
		pipeline: PipelineIndex,
		generator: Option<usize>,
		verifier: Option<usize>,
	) -> Option<(DisputeOutcome, usize)> {
		let k = dispute.chunk;
		let (r, g, v) = (Self::revealed(slots, pipeline, k)?, generator?, verifier?);
		if dispute.sampling {
			// Both sides' fingerprints agreed, so a referee that computed the same logits
			// agrees with them too; then its own sampling verdict decides.
			if !Self::fingerprints_agree(task, info, slots, r, g) {
				return None;
			}
			return match Verdicts::<T>::get(task, r as u32)? {
				true => Some((DisputeOutcome::VerifierLost, v)),
				false => Some((DisputeOutcome::GeneratorLost, g)),
			};
		}
		let with_generator = Self::fingerprints_agree(task, info, slots, r, g);
		let with_verifier = Self::fingerprints_agree(task, info, slots, r, v);
		let blame = |side, stage| Self::blamed_stage(task, info, slots, k, side, stage, r);
		match (with_generator, with_verifier) {
			(true, false) => blame(VERIFIER, v).map(|loser| (DisputeOutcome::VerifierLost, loser)),
			(false, true) => {
				blame(GENERATOR, g).map(|loser| (DisputeOutcome::GeneratorLost, loser))
			}
			(true, true) => Some((DisputeOutcome::BothAgreed, usize::MAX)),
			(false, false) => None,
		}
	}

	/// The current referee round revealed (or its deadline passed): each of its
	/// pipelines' chunk-`k` referee fingerprint (or sampling verdict) is set against
	/// both sides. The round settles only when every one of its referees reached the
	/// same conclusion, blaming the same slot; otherwise the next round is tried.
	pub(crate) fn judge_round(
		task: TaskId,
		info: TaskOf<T>,
		mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
	) {
		let Some(dispute) = info.dispute else {
			Slots::<T>::insert(task, &slots);
			return Self::expire(task, info, &slots, Perbill::zero());
		};
		let k = dispute.chunk;
		let round = dispute.round_pipelines(T::RefereesPerRound::get());
		let pipelines: Vec<PipelineIndex> =
			round.clone().filter(|p| slots.iter().any(|slot| slot.pipeline == *p)).collect();
		let generator = Self::revealed(&slots, GENERATOR, k);
		let verifier = Self::revealed(&slots, VERIFIER, k);
		let verdicts: Vec<Option<(DisputeOutcome, usize)>> = pipelines
			.iter()
			.map(|p| Self::referee_verdict(task, &info, &slots, dispute, *p, generator, verifier))
			.collect();
		let unanimous = verdicts
			.first()
			.copied()
			.flatten()
			.filter(|first| verdicts.iter().all(|verdict| *verdict == Some(*first)));
		let Some((outcome, loser)) = unanimous else {
			// Inconclusive: this round's referees are released unpaid (a silent one was
			// already blamed) and the next round is tried.
			for slot in slots.iter_mut().filter(|slot| round.contains(&slot.pipeline)) {
				if slot.state != SlotState::Missed {
					T::Experts::note_finished(&slot.expert);
					slot.state = SlotState::Abandoned;
				}
			}
			Self::sync_miner_tasks(task, &slots, &[]);
			Self::deposit_event(Event::RefereeRoundFailed { task, round: dispute.rounds });
			return Self::open_referee_round(task, info, slots, k, dispute.sampling);
		};
		let disputed_stage = match outcome {
			DisputeOutcome::GeneratorLost => generator,
			DisputeOutcome::VerifierLost => verifier,
			_ => None,
		};
		if let Some(traced) = disputed_stage.filter(|stage| *stage != loser).and(slots.get(loser)) {
			Self::deposit_event(Event::BlameTraced {
				task,
				pipeline: traced.pipeline,
				chunk: traced.chunk,
			});
		}
		Self::deposit_event(Event::DisputeSettled { task, chunk: k, outcome });
		let winner = match outcome {
			DisputeOutcome::GeneratorLost => verifier,
			_ => generator,
		};
		let referee = pipelines.first().and_then(|p| Self::revealed(&slots, *p, k));
		if let (Some(winner), Some(referee)) = (winner, referee) {
			let first = *round.start();
			Self::report_failed_referees(task, &info, &slots, dispute, first, winner, referee);
		}
		let referees: Vec<usize> = (0..slots.len())
			.filter(|i| slots.get(*i).is_some_and(|s| round.contains(&s.pipeline)))
			.collect();
		match outcome {
			DisputeOutcome::BothAgreed => {
				// A disagreement at the tolerance's edge: everybody's work stands. The
				// requester pays the referees at most at its price cap (its escrow's bound).
				let paid: Vec<usize> = (0..slots.len())
					.filter(|i| {
						slots
							.get(*i)
							.is_some_and(|s| s.role != Role::Referee || round.contains(&s.pipeline))
					})
					.collect();
				let capped: Vec<SlotOf<T>> = slots
					.iter()
					.cloned()
					.map(|mut slot| {
						if slot.role == Role::Referee {
							slot.threshold = slot.threshold.min(info.price_cap);
						}
						slot
					})
					.collect();
				Self::complete_prefill(task, info, &capped, &paid, None, &[]);
			}
			DisputeOutcome::VerifierLost => {
				// The generator's work stands, and the verifier's chunks before `k` agreed
				// (but the loser's, when the blame was traced upstream).
				let paid: Vec<usize> = (0..slots.len())
					.filter(|i| {
						*i != loser
							&& slots.get(*i).is_some_and(|s| {
								s.role == Role::Generator
									|| (s.role == Role::Verifier && s.chunk < k)
							})
					})
					.collect();
				Self::complete_prefill(task, info, &slots, &paid, Some(loser), &referees);
			}
			DisputeOutcome::GeneratorLost | DisputeOutcome::Unsettled => {
				Self::reject_generation(task, info, slots, loser, &referees)
			}
		}
	}

	/// A conclusive round settled the dispute: the referees of earlier rounds that
	/// revealed a chunk-`k` result agreeing with neither side lost against both the
	/// winning side and this round's referee: reported `Outvoted` (not slashed: a
	/// referee's stake is not what the requester relied on).
	fn report_failed_referees(
		task: TaskId,
		info: &TaskOf<T>,
		slots: &[SlotOf<T>],
		dispute: Dispute,
		current: PipelineIndex,
		winner: usize,
		referee: usize,
	) {
		let verdict = Verdicts::<T>::get(task, referee as u32);
		for (index, slot) in slots.iter().enumerate() {
			let earlier = slot.role == Role::Referee && slot.pipeline < current;
			if !earlier || slot.chunk != dispute.chunk || slot.state == SlotState::Missed {
				continue;
			}
			if !Fingerprints::<T>::contains_key(task, index as u32) {
				continue;
			}
			let lost = if dispute.sampling {
				Verdicts::<T>::get(task, index as u32) != verdict
					|| !Self::fingerprints_agree(task, info, slots, index, winner)
			} else {
				!Self::fingerprints_agree(task, info, slots, index, winner)
			};
			if lost {
				T::Quality::report(&slot.expert, info.domain.as_ref(), TaskOutcome::Outvoted);
			}
		}
	}

	/// Completes a task checked by prefill: the requester pays the slots at `paid`;
	/// `loser` (if any) is slashed and its slash pays the `from_slash` slots (the
	/// referees), the rest of it going to the community fund.
	pub(crate) fn complete_prefill(
		task: TaskId,
		info: TaskOf<T>,
		slots: &[SlotOf<T>],
		paid: &[usize],
		loser: Option<usize>,
		from_slash: &[usize],
	) {
		let output = Outputs::<T>::get(task, GENERATOR);
		let accepted = output
			.as_ref()
			.map(|out| output_hash(out.prompt_tokens, &out.tokens, &out.text))
			.unwrap_or_default();
		let tokens = Self::paid_tokens(&info, output.as_ref());
		if let Some(loser) = loser {
			Self::slash_loser(task, &info, slots, loser, from_slash, tokens);
		}
		let owed = Self::owed(&info, slots, paid, tokens);
		let outcomes = Self::prefill_outcomes(slots, paid, loser, from_slash);
		Self::pay_and_finish(task, info, slots, owed, &outcomes, accepted, tokens);
	}

	/// The generator lost (or nothing was settled, `loser` out of range): the requester
	/// is refunded in full; a losing generator miner is slashed and its slash pays the
	/// verifier's miners and the referees.
	fn reject_generation(
		task: TaskId,
		info: TaskOf<T>,
		mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
		loser: usize,
		referees: &[usize],
	) {
		if slots.get(loser).is_some() {
			let output = Outputs::<T>::get(task, GENERATOR);
			let tokens = Self::paid_tokens(&info, output.as_ref());
			let mut from_slash: Vec<usize> = (0..slots.len())
				.filter(|i| slots.get(*i).is_some_and(|s| s.role == Role::Verifier))
				.collect();
			from_slash.extend_from_slice(referees);
			Self::slash_loser(task, &info, &slots, loser, &from_slash, tokens);
			let outcomes = Self::prefill_outcomes(&slots, &from_slash, Some(loser), &[]);
			for (index, slot) in slots.iter().enumerate() {
				if let Some(outcome) = outcomes.get(index).copied().flatten() {
					T::Quality::report(&slot.expert, info.domain.as_ref(), outcome);
				}
			}
		}
		// Nobody else is blamed: the remaining slots are freed without a report.
		for slot in slots.iter_mut() {
			if !matches!(slot.state, SlotState::Missed | SlotState::Abandoned) {
				T::Experts::note_finished(&slot.expert);
				slot.state = SlotState::Abandoned;
			}
		}
		Slots::<T>::insert(task, &slots);
		Self::expire(task, info, &slots, Perbill::zero());
	}

	/// Slashes the miner of slot `loser` by `DisputeSlash` into the payout account, pays
	/// the `from_slash` slots their work from it (scaled down alike if it falls short)
	/// and sends the rest to the community fund.
	fn slash_loser(
		task: TaskId,
		info: &TaskOf<T>,
		slots: &[SlotOf<T>],
		loser: usize,
		from_slash: &[usize],
		tokens: u32,
	) {
		let Some(slot) = slots.get(loser) else { return };
		let payout = Self::payout_account();
		let slashed = T::Experts::slash_to(&slot.expert, T::DisputeSlash::get(), &payout);
		Self::deposit_event(Event::MinerSlashed {
			task,
			expert: slot.expert.clone(),
			amount: slashed,
		});
		let available: u128 = slashed.saturated_into();
		let mut owed = Self::owed(info, slots, from_slash, tokens);
		let total: u128 = owed.iter().fold(0u128, |sum, (_, a)| sum.saturating_add(*a));
		if total > available {
			let scale = Perbill::from_rational(available, total);
			owed.iter_mut().for_each(|(_, amount)| *amount = scale.mul_floor(*amount));
		}
		let community = T::CommunityAccount::get();
		let mut unpaid = BalanceOf::<T>::zero();
		let paid = Self::pay_miners(task, &payout, &community, owed, &mut unpaid);
		let rest = slashed.saturating_sub(paid).saturating_sub(unpaid);
		if !rest.is_zero() {
			let _ = T::Currency::transfer(&payout, &community, rest, Preservation::Preserve);
		}
	}

	/// Reports of a settled prefill task, per slot: `paid` and `vindicated` slots
	/// verified, `loser` outvoted, nobody else reported (a silent miner already was).
	fn prefill_outcomes(
		slots: &[SlotOf<T>],
		paid: &[usize],
		loser: Option<usize>,
		vindicated: &[usize],
	) -> Vec<Option<TaskOutcome>> {
		(0..slots.len())
			.map(|i| {
				if Some(i) == loser {
					Some(TaskOutcome::Outvoted)
				} else if paid.contains(&i) || vindicated.contains(&i) {
					Some(TaskOutcome::Verified)
				} else {
					None
				}
			})
			.collect()
	}

	/// Frees, unreported, the slots that still owe something but are not due in the
	/// task's current stage (a verifier whose generator never finished): the task is
	/// about to end without them.
	pub(crate) fn release_idle(info: &TaskOf<T>, slots: &mut [SlotOf<T>]) {
		if info.mode != VerificationMode::Prefill {
			return;
		}
		for slot in slots.iter_mut() {
			let due = Self::commits_now(info, slot) || Self::reveals_now(info, slot);
			if slot.state.is_pending() && !due {
				T::Experts::note_finished(&slot.expert);
				slot.state = SlotState::Abandoned;
			}
		}
	}
}
