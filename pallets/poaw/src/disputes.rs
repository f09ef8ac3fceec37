//! Prefill verification: the verifier's stage, the chain's comparison of each
//! generator with the verifier's check of it, referee rounds on the first disagreeing
//! chunk, how a dispute ends, and how the task settles once every pair is decided.
//!
//! With `g` generators (1 unless the requester asked for more), generator `i` is
//! pipeline `i` and the verifier's check of it pipeline `g + i` (a pair); referees come
//! after. Pairs that disagree are disputed one after another. A dispute's round `n`
//! (from 1) holds up to `RefereesPerRound` pipelines from `first_referee + (n - 1) ×
//! RefereesPerRound` on, each covering chunks `0..=k` of the disputed chunk `k`: a
//! referee recomputes the prefix by prefill, and only its chunk `k` decides. A round
//! settles only when all its referees agree.

use crate::*;
use alloc::vec::Vec;
use dllm_fingerprint::{Fingerprint, RowKind, VerificationParams};

impl<T: Config> Pallet<T> {
	/// Whether `pipeline` is one of the current referee round's, if a dispute is open.
	pub(crate) fn in_referee_round(info: &TaskOf<T>, pipeline: PipelineIndex) -> bool {
		info.dispute.is_some_and(|dispute| {
			dispute.round_pipelines(T::RefereesPerRound::get()).contains(&pipeline)
		})
	}

	/// The generators committed (their last chunks published the outputs): the
	/// verifier's miners recompute each.
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
		let pair = info.dispute.map_or(0, |dispute| dispute.pair);
		let other = if side == pair { info.verifier_of(pair) } else { pair };
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

	/// The generators and the verifier revealed (or the reveal deadline passed): the
	/// chain compares each generator with the verifier's check of it, chunk by chunk. A
	/// pair agrees when every chunk does and the sampling verdict accepts; the first
	/// disagreement (or a rejected sampling) is the pair's dispute; a pair one of whose
	/// pipelines did not reveal is incomplete. Then the disputes are refereed one after
	/// another, and the task settles ([`Self::settle_pairs`]); with no complete pair it
	/// ends with a full refund.
	pub(crate) fn compare_work(
		task: TaskId,
		info: TaskOf<T>,
		mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
	) {
		let chunks = T::Models::chunk_count(info.model).unwrap_or(0);
		let last = chunks.saturating_sub(1);
		let complete = |slots: &[SlotOf<T>], pipeline: PipelineIndex| {
			let mut own = slots.iter().filter(|slot| slot.pipeline == pipeline).peekable();
			own.peek().is_some() && own.all(|slot| matches!(slot.state, SlotState::Revealed(_)))
		};
		let mut results: BoundedVec<PairResult, GeneratorBound<T>> = BoundedVec::new();
		for pair in 0..info.generator_count() {
			let verifier = info.verifier_of(pair);
			let result = if chunks == 0 || !complete(&slots, pair) || !complete(&slots, verifier) {
				PairResult::Incomplete
			} else {
				let disagreement = (0..chunks).find(|chunk| {
					match (
						Self::revealed(&slots, pair, *chunk),
						Self::revealed(&slots, verifier, *chunk),
					) {
						(Some(g), Some(v)) => !Self::fingerprints_agree(task, &info, &slots, g, v),
						_ => true,
					}
				});
				let sampling_accepted = Self::revealed(&slots, verifier, last)
					.and_then(|v| Verdicts::<T>::get(task, v as u32))
					.unwrap_or(false);
				Self::deposit_event(Event::WorkCompared {
					task,
					pair,
					disagreement,
					sampling_accepted,
				});
				match disagreement {
					None if sampling_accepted => PairResult::Agreed,
					None => PairResult::Disagreed { chunk: last, sampling: true },
					Some(chunk) => PairResult::Disagreed { chunk, sampling: false },
				}
			};
			let _ = results.try_push(result);
		}
		if results.iter().all(|result| *result == PairResult::Incomplete) {
			Self::release_idle(&info, slots.as_mut());
			Slots::<T>::insert(task, &slots);
			return Self::expire(task, info, &slots, Perbill::zero());
		}
		PairResults::<T>::insert(task, results);
		Self::next_dispute(task, info, slots)
	}

	/// Opens the dispute of the first pair still disagreeing, or settles the task when
	/// every pair is decided.
	fn next_dispute(task: TaskId, info: TaskOf<T>, slots: BoundedVec<SlotOf<T>, T::MaxSlots>) {
		let disputed =
			PairResults::<T>::get(task).into_iter().enumerate().find_map(|(pair, r)| match r {
				PairResult::Disagreed { chunk, sampling } => Some((pair, chunk, sampling)),
				_ => None,
			});
		let Some((pair, chunk, sampling)) = disputed else {
			return Self::settle_pairs(task, info, slots);
		};
		// Past the sides and every referee pipeline of the task's earlier disputes, those
		// of their last rounds included even where a round was short of pipelines.
		let planned = info.dispute.map_or(0, |dispute| {
			dispute.round_pipelines(T::RefereesPerRound::get()).end().saturating_add(1)
		});
		let first_referee = slots
			.iter()
			.map(|slot| slot.pipeline.saturating_add(1))
			.fold(info.side_pipelines().max(planned), |first, next| first.max(next));
		let dispute =
			Dispute { chunk, sampling, rounds: 1, pair: pair as PipelineIndex, first_referee };
		Self::open_referee_round(task, info, slots, dispute)
	}

	/// Records how the dispute of `pair` ended.
	fn record_pair(task: TaskId, pair: PipelineIndex, result: PairResult) {
		PairResults::<T>::mutate(task, |results| {
			if let Some(entry) = results.get_mut(pair as usize) {
				*entry = result;
			}
		});
	}

	/// Assigns round `dispute.rounds` of the dispute on `dispute.chunk` (`sampling`: the
	/// sampling is disputed): up to `RefereesPerRound` pipelines, each the chunk's
	/// auction and those of the chunks before it, among experts not yet in the task and
	/// disjoint from each other. Without a referee pipeline, or past
	/// `MaxRefereeRounds`, the pair's dispute ends unsettled: nobody is slashed and the
	/// pair's work is not paid.
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
		dispute: Dispute,
	) {
		let round = dispute.rounds;
		let Dispute { chunk, sampling, pair, .. } = dispute;
		let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
		let dispute = Dispute { rounds: round.min(T::MaxRefereeRounds::get()), ..dispute };
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
				pair,
				chunk,
				outcome: DisputeOutcome::Unsettled,
			});
			let unsettled = PairResult::Settled {
				outcome: DisputeOutcome::Unsettled,
				chunk,
				loser: u32::MAX,
				first_referee: 1,
				last_referee: 0,
			};
			Self::record_pair(task, pair, unsettled);
			return Self::next_dispute(task, info, slots);
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
			pair,
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
		let (generator_side, verifier_side) = (dispute.pair, info.verifier_of(dispute.pair));
		match (with_generator, with_verifier) {
			(true, false) => {
				blame(verifier_side, v).map(|loser| (DisputeOutcome::VerifierLost, loser))
			}
			(false, true) => {
				blame(generator_side, g).map(|loser| (DisputeOutcome::GeneratorLost, loser))
			}
			(true, true) => Some((DisputeOutcome::BothAgreed, usize::MAX)),
			(false, false) => None,
		}
	}

	/// The current referee round revealed (or its deadline passed): each of its
	/// pipelines' chunk-`k` referee fingerprint (or sampling verdict) is set against
	/// both sides of the disputed pair. The round settles only when every one of its
	/// referees reached the same conclusion, blaming the same slot; otherwise the next
	/// round is tried. A settled dispute slashes the loser at once (its slash pays the
	/// referees, and the verifier's check when the generator lost); then the next
	/// disagreeing pair is disputed, or the task settles.
	pub(crate) fn judge_round(
		task: TaskId,
		info: TaskOf<T>,
		mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
	) {
		let Some(dispute) = info.dispute else {
			Slots::<T>::insert(task, &slots);
			return Self::expire(task, info, &slots, Perbill::zero());
		};
		let (k, pair) = (dispute.chunk, dispute.pair);
		let round = dispute.round_pipelines(T::RefereesPerRound::get());
		let pipelines: Vec<PipelineIndex> =
			round.clone().filter(|p| slots.iter().any(|slot| slot.pipeline == *p)).collect();
		let generator = Self::revealed(&slots, pair, k);
		let verifier = Self::revealed(&slots, info.verifier_of(pair), k);
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
			let next = Dispute { rounds: dispute.rounds.saturating_add(1), ..dispute };
			return Self::open_referee_round(task, info, slots, next);
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
		Self::deposit_event(Event::DisputeSettled { task, pair, chunk: k, outcome });
		let winner = match outcome {
			DisputeOutcome::GeneratorLost => verifier,
			_ => generator,
		};
		let referee = pipelines.first().and_then(|p| Self::revealed(&slots, *p, k));
		if let (Some(winner), Some(referee)) = (winner, referee) {
			Self::report_failed_referees(
				task,
				&info,
				&slots,
				dispute,
				*round.start(),
				winner,
				referee,
			);
		}
		let referees: Vec<usize> = (0..slots.len())
			.filter(|i| slots.get(*i).is_some_and(|s| round.contains(&s.pipeline)))
			.collect();
		let output = Outputs::<T>::get(task, pair);
		let tokens = Self::paid_tokens(&info, output.as_ref());
		match outcome {
			DisputeOutcome::VerifierLost => {
				Self::slash_loser(task, &info, &slots, loser, &referees, tokens)
			}
			DisputeOutcome::GeneratorLost => {
				let mut from_slash = Self::pipeline_slots(&slots, info.verifier_of(pair));
				from_slash.extend_from_slice(&referees);
				Self::slash_loser(task, &info, &slots, loser, &from_slash, tokens);
			}
			// Everybody's work stands; the requester pays the referees when the task
			// settles.
			DisputeOutcome::BothAgreed | DisputeOutcome::Unsettled => {}
		}
		// The round's pipelines as assigned (a round may have had room for fewer).
		let settled = PairResult::Settled {
			outcome,
			chunk: k,
			loser: u32::try_from(loser).unwrap_or(u32::MAX),
			first_referee: *round.start(),
			last_referee: pipelines.last().copied().unwrap_or(*round.start()),
		};
		Self::record_pair(task, pair, settled);
		Slots::<T>::insert(task, &slots);
		Self::next_dispute(task, info, slots)
	}

	/// The indices of `pipeline`'s slots.
	fn pipeline_slots(slots: &[SlotOf<T>], pipeline: PipelineIndex) -> Vec<usize> {
		(0..slots.len()).filter(|i| slots.get(*i).is_some_and(|s| s.pipeline == pipeline)).collect()
	}

	/// A conclusive round settled the dispute: the referees of the dispute's earlier
	/// rounds that revealed a chunk-`k` result agreeing with neither side lost against
	/// both the winning side and this round's referee: reported `Outvoted` (not slashed:
	/// a referee's stake is not what the requester relied on).
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
			let earlier = slot.role == Role::Referee
				&& (dispute.first_referee..current).contains(&slot.pipeline);
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

	/// Every pair is decided: the task settles. The requester pays, each at its own
	/// output's tokens, the pairs whose work stands (the generator's slots, and the
	/// verifier's but the loser's and those past the disputed chunk when the verifier
	/// lost) and the referees of a dispute both sides survived (at most at its price
	/// cap); the answer is the first standing generator's output. Without one the
	/// requester is refunded in full. Losers are reported outvoted, everyone paid (or
	/// paid from a slash) verified, and every slot is freed.
	pub(crate) fn settle_pairs(
		task: TaskId,
		info: TaskOf<T>,
		mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
	) {
		let results = PairResults::<T>::get(task);
		// Slots the requester pays, with the generator whose output sets their tokens.
		let mut paid: Vec<(usize, PipelineIndex)> = Vec::new();
		// Slots whose work checked out but a loser's slash paid (reported verified).
		let mut vindicated: Vec<usize> = Vec::new();
		let mut losers: Vec<usize> = Vec::new();
		for (pair, result) in results.iter().enumerate() {
			let pair = pair as PipelineIndex;
			let generator = Self::pipeline_slots(&slots, pair);
			let verifier = Self::pipeline_slots(&slots, info.verifier_of(pair));
			let Some(settled) = (match *result {
				PairResult::Agreed => {
					paid.extend(generator.iter().chain(verifier.iter()).map(|i| (*i, pair)));
					None
				}
				PairResult::Settled { outcome, chunk, loser, first_referee, last_referee } => {
					Some((outcome, chunk, loser as usize, first_referee..=last_referee))
				}
				PairResult::Incomplete | PairResult::Disagreed { .. } => None,
			}) else {
				continue;
			};
			let (outcome, k, loser, round) = settled;
			let referees: Vec<usize> = (0..slots.len())
				.filter(|i| slots.get(*i).is_some_and(|s| round.contains(&s.pipeline)))
				.collect();
			match outcome {
				DisputeOutcome::BothAgreed => paid.extend(
					generator
						.iter()
						.chain(verifier.iter())
						.chain(referees.iter())
						.map(|i| (*i, pair)),
				),
				DisputeOutcome::VerifierLost => {
					// The generator's work stands, and the verifier's chunks before `k`
					// agreed (but the loser's, when the blame was traced upstream).
					let verified_before =
						verifier.iter().filter(|i| slots.get(**i).is_some_and(|s| s.chunk < k));
					paid.extend(
						generator
							.iter()
							.chain(verified_before)
							.filter(|i| **i != loser)
							.map(|i| (*i, pair)),
					);
					vindicated.extend(referees);
					losers.push(loser);
				}
				DisputeOutcome::GeneratorLost => {
					vindicated
						.extend(verifier.iter().chain(referees.iter()).filter(|i| **i != loser));
					losers.push(loser);
				}
				DisputeOutcome::Unsettled => {}
			}
		}
		let outcomes: Vec<Option<TaskOutcome>> = (0..slots.len())
			.map(|i| {
				if losers.contains(&i) {
					Some(TaskOutcome::Outvoted)
				} else if paid.iter().any(|(p, _)| *p == i) || vindicated.contains(&i) {
					Some(TaskOutcome::Verified)
				} else {
					None
				}
			})
			.collect();
		let delivered = results.iter().position(|result| result.stands());
		let Some(delivered) = delivered.map(|pair| pair as PipelineIndex) else {
			// Nothing stands: the requester is refunded in full, nobody else is blamed.
			for (index, slot) in slots.iter_mut().enumerate() {
				if matches!(slot.state, SlotState::Missed | SlotState::Abandoned) {
					continue;
				}
				if let Some(outcome) = outcomes.get(index).copied().flatten() {
					T::Quality::report(&slot.expert, info.domain.as_ref(), outcome);
				}
				T::Experts::note_finished(&slot.expert);
				slot.state = SlotState::Abandoned;
			}
			Slots::<T>::insert(task, &slots);
			return Self::expire(task, info, &slots, Perbill::zero());
		};
		let output = Outputs::<T>::get(task, delivered);
		let accepted = output
			.as_ref()
			.map(|out| output_hash(out.prompt_tokens, &out.tokens, &out.text))
			.unwrap_or_default();
		let tokens = Self::paid_tokens(&info, output.as_ref());
		// Referees the requester pays are paid at most at its price cap.
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
		let mut owed: Vec<(T::AccountId, u128)> = Vec::new();
		for pair in 0..info.generator_count() {
			let of_pair: Vec<usize> =
				paid.iter().filter(|(_, p)| *p == pair).map(|(i, _)| *i).collect();
			if of_pair.is_empty() {
				continue;
			}
			let pair_tokens = Self::paid_tokens(&info, Outputs::<T>::get(task, pair).as_ref());
			for (who, amount) in Self::owed(&info, &capped, &of_pair, pair_tokens) {
				match owed.iter_mut().find(|(payee, _)| *payee == who) {
					Some((_, sum)) => *sum = sum.saturating_add(amount),
					None => owed.push((who, amount)),
				}
			}
		}
		Self::pay_and_finish(task, info, &slots, owed, &outcomes, accepted, tokens);
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
