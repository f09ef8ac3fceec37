//! Every stage's deadline: the per-block timeout queue, what happens to miners that
//! let a deadline pass, and the removal of old results.

use crate::*;
use alloc::vec::Vec;

impl<T: Config> Pallet<T> {
	/// Moves the task's deadline (and its entry in `Timeouts`) to `deadline`.
	pub(crate) fn reschedule(task: TaskId, info: &mut TaskOf<T>, deadline: BlockNumberFor<T>) {
		Timeouts::<T>::remove(info.deadline, task);
		info.deadline = deadline;
		Timeouts::<T>::insert(deadline, task, ());
	}

	/// Handles the deadlines due by `now`, at most `MaxTimeoutsPerBlock` of them and as
	/// many as `budget` holds, each charged its own worst case before it runs; the rest
	/// stay queued for the next block.
	pub(crate) fn handle_timeouts(now: BlockNumberFor<T>, budget: Weight) -> Weight {
		let mut weight = T::WeightInfo::hooks_base();
		let mut count = T::MaxTimeoutsPerBlock::get();
		let mut cursor = TimeoutCursor::<T>::get();
		'blocks: while cursor <= now && count > 0 {
			let due: Vec<TaskId> =
				Timeouts::<T>::iter_key_prefix(cursor).take(count as usize).collect();
			if due.is_empty() {
				cursor.saturating_inc();
				weight.saturating_accrue(T::DbWeight::get().reads(1));
				continue;
			}
			for task in due {
				let info = Tasks::<T>::get(task);
				let slots = Slots::<T>::get(task);
				let cost = T::DbWeight::get()
					.reads(2)
					.saturating_add(Self::deadline_weight(info.as_ref(), slots.len() as u32));
				if weight.saturating_add(cost).any_gt(budget) {
					break 'blocks;
				}
				weight.saturating_accrue(cost);
				count.saturating_dec();
				Timeouts::<T>::remove(cursor, task);
				if let Some(info) = info {
					Self::handle_timeout(task, info, slots, now);
				}
			}
		}
		TimeoutCursor::<T>::put(cursor);
		weight
	}

	/// The worst case of handling the deadline of a task in `info`'s state with `slots`
	/// slots (the two reads of task and slots not included).
	pub(crate) fn deadline_weight(info: Option<&TaskOf<T>>, slots: u32) -> Weight {
		info.map_or(Weight::zero(), |info| Self::stage_end_weight(info.status, info.mode, slots))
	}

	/// The worst case of ending a stage in `status` of a task checked in `mode`.
	fn stage_end_weight(status: TaskStatus, mode: VerificationMode, slots: u32) -> Weight {
		match status {
			TaskStatus::Queued => T::WeightInfo::expire_queued(),
			// Measured with a full record of silence claims.
			TaskStatus::Assigned | TaskStatus::Verifying => T::WeightInfo::end_commit_stage(slots),
			TaskStatus::Committed | TaskStatus::Judging | TaskStatus::Refereeing => {
				let judgement = match mode {
					VerificationMode::Prefill => Self::judgement_weight(slots),
					VerificationMode::Redundant => Weight::zero(),
				};
				T::WeightInfo::end_reveal_stage(slots).saturating_add(judgement)
			}
			_ => Weight::zero(),
		}
	}

	/// The heaviest deadline any task can have: what a block's budget must hold.
	pub fn heaviest_deadline() -> Weight {
		let slots = T::MaxSlots::get();
		let heaviest = [TaskStatus::Queued, TaskStatus::Assigned, TaskStatus::Committed]
			.into_iter()
			.map(|status| Self::stage_end_weight(status, VerificationMode::Prefill, slots))
			.fold(Weight::zero(), |heaviest, weight| heaviest.max(weight));
		T::DbWeight::get().reads(2).saturating_add(heaviest)
	}

	/// A task's stage ended without everyone acting.
	pub(crate) fn handle_timeout(
		task: TaskId,
		mut info: TaskOf<T>,
		slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
		now: BlockNumberFor<T>,
	) {
		match info.status {
			TaskStatus::Queued => {
				Queue::<T>::mutate(|queue| queue.retain(|id| *id != task));
				Self::left_queue(&info.requester);
				Self::expire(task, info, &slots, T::QueueExpiryFee::get());
			}
			TaskStatus::Assigned | TaskStatus::Verifying => {
				Self::end_commit_stage(task, &mut info, slots, now)
			}
			TaskStatus::Committed | TaskStatus::Judging => {
				Self::end_reveal_stage(task, info, slots)
			}
			TaskStatus::Refereeing => Self::end_referee_stage(task, info, slots),
			_ => {}
		}
	}

	/// The commit deadline passed, or a silence claim ripened: slots that did not
	/// commit are replaced by the auction's next best or their pipeline is abandoned.
	/// With silence claims (silence.rs) only the stage found silent is blamed; the late
	/// stages that waited on it are excused and keep their slots.
	pub(crate) fn end_commit_stage(
		task: TaskId,
		info: &mut TaskOf<T>,
		mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
		now: BlockNumberFor<T>,
	) {
		let record = SilenceClaims::<T>::take(task);
		let stage_deadline = record.as_ref().map_or(now, |record| record.stage_deadline);
		let stage_over = now >= stage_deadline;
		let (verdict, open_claims) = match &record {
			Some(record) => Self::silence_verdict(&slots, &record.claims, now),
			None => Default::default(),
		};
		let late = |info: &TaskOf<T>, slots: &[SlotOf<T>], index: usize| {
			slots.get(index).is_some_and(|slot| {
				slot.state == SlotState::Assigned && Self::commits_now(info, slot)
			})
		};
		let mut missed: Vec<usize> =
			verdict.blamed.iter().chain(verdict.released.iter()).copied().collect();
		let mut excused: Vec<usize> = Vec::new();
		if stage_over {
			for index in 0..slots.len() {
				if !late(info, &slots, index) || missed.contains(&index) {
					continue;
				}
				let explained =
					slots.get(index).is_some_and(|slot| verdict.explained.contains(&slot.pipeline));
				if explained {
					excused.push(index);
				} else {
					missed.push(index);
				}
			}
		}
		let mut replaced = LateMiners::<T>::get(task);
		// Everyone late is blamed (or released) and freed first, so that abandoning a
		// pipeline below cannot hide a second late miner.
		for index in missed.iter() {
			let Some(slot) = slots.get_mut(*index) else { continue };
			if verdict.released.contains(index) {
				Self::release(task, slot);
			} else {
				Self::blame(task, info, slot);
			}
			let _ = replaced.try_push(slot.expert.clone());
		}
		let mut dead: Vec<PipelineIndex> = Vec::new();
		for index in missed.iter().copied() {
			let Some(slot) = slots.get(index).cloned() else { continue };
			if dead.contains(&slot.pipeline) {
				continue;
			}
			let replacement = if info.reassignments < T::MaxReassignments::get() {
				Self::replacement(info, &slots, &replaced, &slot)
			} else {
				None
			};
			match replacement {
				Some(award) => {
					info.reassignments.saturating_inc();
					let threshold: BalanceOf<T> = award.threshold.saturated_into();
					Self::deposit_event(Event::SlotReassigned {
						task,
						pipeline: slot.pipeline,
						chunk: slot.chunk,
						expert: award.expert.clone(),
						threshold,
						deadline: now.saturating_add(T::CommitPeriod::get()),
					});
					let format = Self::offered_format(info.model, slot.chunk, &award.expert);
					if let Some(entry) = slots.get_mut(index) {
						*entry = Slot {
							pipeline: slot.pipeline,
							chunk: slot.chunk,
							expert: award.expert,
							role: slot.role,
							format,
							threshold,
							assigned_at: now,
							state: SlotState::Assigned,
						};
					}
				}
				None => {
					Self::abandon(task, slots.as_mut(), slot.pipeline);
					dead.push(slot.pipeline);
				}
			}
		}
		// With prefill verification a generator is worth nothing without the verifier's
		// check of it, and the other way round: a pair that lost a pipeline is abandoned
		// whole (unpaid, nobody else blamed), and without a whole pair the task ends
		// with a full refund.
		let mut pairs_left = true;
		if info.mode == VerificationMode::Prefill && !dead.is_empty() {
			let g = info.generator_count();
			for pipeline in dead.clone() {
				let partner = if pipeline < g {
					info.verifier_of(pipeline)
				} else {
					pipeline.saturating_sub(g)
				};
				if !dead.contains(&partner) {
					Self::abandon(task, slots.as_mut(), partner);
					dead.push(partner);
				}
			}
			pairs_left = (0..g).any(|pair| !dead.contains(&pair));
		}
		Self::sync_miner_tasks(task, &slots, &replaced);
		LateMiners::<T>::insert(task, replaced);
		let live = slots.iter().any(|slot| slot.state.is_pending());
		if !live || !pairs_left {
			Self::release_idle(info, slots.as_mut());
			Slots::<T>::insert(task, &slots);
			Self::expire(task, info.clone(), &slots, Perbill::zero());
			return;
		}
		let waiting = (0..slots.len()).any(|index| late(info, &slots, index));
		if !waiting {
			Self::stage_committed(task, info);
		} else {
			// A replacement, or a stage excused after waiting on one, gets a whole
			// period; a claim decided early leaves the stage's own deadline.
			let stage_deadline = if stage_over || !missed.is_empty() {
				stage_deadline.max(now.saturating_add(T::CommitPeriod::get()))
			} else {
				stage_deadline
			};
			for index in excused {
				if let Some(slot) = slots.get(index) {
					Self::deposit_event(Event::StageExcused {
						task,
						pipeline: slot.pipeline,
						chunk: slot.chunk,
						deadline: stage_deadline,
					});
				}
			}
			let open_claims: Vec<SilenceClaimOf<T>> =
				open_claims.into_iter().filter(|claim| !dead.contains(&claim.pipeline)).collect();
			let next = if open_claims.is_empty() {
				stage_deadline
			} else {
				let record = SilenceRecord {
					stage_deadline,
					claims: BoundedVec::truncate_from(open_claims),
				};
				let next = Self::next_silence_deadline(&record);
				SilenceClaims::<T>::insert(task, record);
				next
			};
			Self::reschedule(task, info, next);
		}
		Slots::<T>::insert(task, &slots);
		Tasks::<T>::insert(task, &*info);
	}

	/// Lists the task among the to-dos of exactly those of `slots`' miners (and of
	/// `others`) that still owe a commit or reveal in it.
	pub(crate) fn sync_miner_tasks(task: TaskId, slots: &[SlotOf<T>], others: &[T::AccountId]) {
		for who in slots.iter().map(|slot| &slot.expert).chain(others.iter()) {
			if slots.iter().any(|slot| &slot.expert == who && slot.state.is_pending()) {
				MinerTasks::<T>::insert(who, task, ());
			} else {
				MinerTasks::<T>::remove(who, task);
			}
		}
	}

	/// A miner let its slot's deadline pass: it is reported, freed and never paid for
	/// this task.
	pub(crate) fn blame(task: TaskId, info: &TaskOf<T>, slot: &mut SlotOf<T>) {
		T::Quality::report(&slot.expert, info.domain.as_ref(), TaskOutcome::MissedDeadline);
		T::Experts::note_finished(&slot.expert);
		Self::deposit_event(Event::DeadlineMissed {
			task,
			pipeline: slot.pipeline,
			chunk: slot.chunk,
			expert: slot.expert.clone(),
		});
		slot.state = SlotState::Missed;
	}

	/// A pipeline that cannot be completed: its miners are freed, unpaid and not
	/// blamed (the one that missed its deadline already was).
	pub(crate) fn abandon(task: TaskId, slots: &mut [SlotOf<T>], pipeline: PipelineIndex) {
		for slot in slots.iter_mut().filter(|slot| slot.pipeline == pipeline) {
			if slot.state.is_pending() {
				T::Experts::note_finished(&slot.expert);
			}
			if slot.state != SlotState::Missed {
				slot.state = SlotState::Abandoned;
			}
		}
		Self::deposit_event(Event::PipelineAbandoned { task, pipeline });
	}

	/// The reveal deadline passed: slots of the stage that did not reveal are blamed
	/// and marked missed, and the stage concludes on what was revealed.
	pub(crate) fn end_reveal_stage(
		task: TaskId,
		info: TaskOf<T>,
		mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
	) {
		for slot in slots.iter_mut() {
			if matches!(slot.state, SlotState::Committed(_)) && Self::reveals_now(&info, slot) {
				Self::blame(task, &info, slot);
			}
		}
		Self::sync_miner_tasks(task, &slots, &[]);
		Slots::<T>::insert(task, &slots);
		Self::stage_revealed(task, info, slots);
	}

	/// A referee round's commit deadline passed: its silent referees are blamed and the
	/// round fails (a referee is never replaced inside a round: the next round is).
	pub(crate) fn end_referee_stage(
		task: TaskId,
		info: TaskOf<T>,
		mut slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
	) {
		for slot in slots.iter_mut() {
			if slot.state == SlotState::Assigned && Self::commits_now(&info, slot) {
				Self::blame(task, &info, slot);
			}
		}
		Self::sync_miner_tasks(task, &slots, &[]);
		Slots::<T>::insert(task, &slots);
		Self::judge_round(task, info, slots);
	}

	/// What concluding a prefill stage of a task with `slots` slots can cost beyond the
	/// bookkeeping, as the `compare_work` benchmark measures it: `c` fingerprint
	/// comparisons and the auctions of `c` referee slots. The comparison of the sides
	/// compares one generator slot with one verifier slot per chunk and pair (at most
	/// `slots / 2`); a judgement compares, per referee pipeline, the referee with both
	/// sides and an input check's three, and one earlier referee per earlier round.
	/// Either may then assign a referee round (the next one, or the first of the next
	/// pair's dispute): at most `RefereesPerRound` pipelines of at most `slots / 2`
	/// chunks, tried for each generator in turn when earlier pairs' disputes find no
	/// referee.
	pub fn judgement_weight(slots: u32) -> Weight {
		let per_round = u32::from(T::RefereesPerRound::get());
		let judgement =
			per_round.saturating_mul(5u32.saturating_add(T::MaxRefereeRounds::get().into()));
		let round = per_round
			.saturating_mul(slots.min(T::MaxSlots::get()) / 2)
			.saturating_mul(T::MaxGenerators::get().into());
		// Each measured step compares once and auctions one referee slot, so the
		// larger count covers both.
		T::WeightInfo::compare_work(
			judgement.max(round),
			T::MaxFingerprintBytes::get(),
			T::MaxOffersPerChunk::get(),
		)
	}

	/// Removes the prompt, output and evidence of tasks whose retention ended, as
	/// far as `remaining` weight allows.
	pub(crate) fn remove_old_results(now: BlockNumberFor<T>, remaining: Weight) -> Weight {
		// The benchmark predates input checks and pair results: one more prefix (at most
		// one entry per round) and one more entry.
		let per_task = T::WeightInfo::remove_result(T::MaxSlots::get()).saturating_add(
			T::DbWeight::get().writes(u64::from(T::MaxRefereeRounds::get()).saturating_add(1)),
		);
		let mut weight = T::DbWeight::get().reads_writes(1, 1);
		if remaining.any_lt(weight.saturating_add(per_task)) {
			return Weight::zero();
		}
		let mut cursor = RetentionCursor::<T>::get();
		while cursor <= now {
			let next = RetentionEnds::<T>::iter_key_prefix(cursor).next();
			let Some(task) = next else {
				cursor.saturating_inc();
				weight.saturating_accrue(T::DbWeight::get().reads(1));
				if remaining.any_lt(weight.saturating_add(per_task)) {
					break;
				}
				continue;
			};
			if remaining.any_lt(weight.saturating_add(per_task)) {
				break;
			}
			RetentionEnds::<T>::remove(cursor, task);
			Prompts::<T>::remove(task);
			Slots::<T>::remove(task);
			LateMiners::<T>::remove(task);
			let _ = Fingerprints::<T>::clear_prefix(task, T::MaxSlots::get(), None);
			let _ = Verdicts::<T>::clear_prefix(task, T::MaxSlots::get(), None);
			let _ = InputChecks::<T>::clear_prefix(task, T::MaxSlots::get(), None);
			let pipelines = T::MaxRedundancy::get().max(T::MaxGenerators::get());
			let _ = Outputs::<T>::clear_prefix(task, pipelines.into(), None);
			PairResults::<T>::remove(task);
			weight.saturating_accrue(per_task);
			Self::deposit_event(Event::ResultRemoved { task });
		}
		RetentionCursor::<T>::put(cursor);
		weight
	}
}
