//! Silent stages: a pipeline that stalls because one stage stopped answering blames
//! that stage only.
//!
//! The chain cannot see the network, so the stuck stage says who left it waiting
//! (`claim_silence`), and the accused has `SilenceClaimPeriod` blocks to answer: by
//! committing (it was not silent) or by claiming the same of its accuser (then the
//! chain cannot tell which of the two stopped, frees both unblamed and replaces them).
//! An accusation that stands blames and replaces the accused alone; the pipeline's
//! other stages, late only because they waited on it, are excused and given a new
//! deadline, so that the pipeline continues through the replacement.

use crate::*;
use alloc::vec::Vec;

/// What the ripe claims of a task decide at one deadline.
#[derive(Default, Debug, PartialEq, Eq)]
pub(crate) struct SilenceVerdict {
	/// Slots (indices) found silent: blamed and replaced.
	pub blamed: Vec<usize>,
	/// Slots of mutual claims: freed unblamed and replaced.
	pub released: Vec<usize>,
	/// Pipelines whose stall is explained: their other late slots are excused.
	pub explained: Vec<PipelineIndex>,
}

impl<T: Config> Pallet<T> {
	/// `claim_silence`.
	pub(crate) fn do_claim_silence(
		who: &T::AccountId,
		task: TaskId,
		pipeline: PipelineIndex,
		chunk: ChunkIndex,
		silent: ChunkIndex,
	) -> DispatchResult {
		let mut info = Tasks::<T>::get(task).ok_or(Error::<T>::UnknownTask)?;
		ensure!(
			matches!(info.status, TaskStatus::Assigned | TaskStatus::Verifying),
			Error::<T>::WrongStage
		);
		let mut slots = Slots::<T>::get(task);
		let own = Self::own_slot(slots.as_mut(), &info.requester, who, pipeline, chunk)?;
		ensure!(Self::commits_now(&info, own), Error::<T>::WrongStage);
		Self::ensure_owes_commit(own)?;
		ensure!(
			Some(silent) == chunk.checked_add(1) || Some(silent) == chunk.checked_sub(1),
			Error::<T>::NotANeighbour
		);
		let accused =
			Self::slot_index(&slots, pipeline, silent).map_err(|_| Error::<T>::NotANeighbour)?;
		ensure!(
			slots.get(accused).is_some_and(|slot| slot.state == SlotState::Assigned),
			Error::<T>::NeighbourNotSilent
		);
		let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
		let ripe_at = now.saturating_add(T::SilenceClaimPeriod::get());
		let mut record = SilenceClaims::<T>::get(task)
			.unwrap_or(SilenceRecord { stage_deadline: info.deadline, claims: Default::default() });
		ensure!(
			!record
				.claims
				.iter()
				.any(|c| c.pipeline == pipeline && c.by == chunk && c.silent == silent),
			Error::<T>::AlreadyClaimed
		);
		record
			.claims
			.try_push(SilenceClaim { pipeline, by: chunk, silent, ripe_at })
			.map_err(|_| Error::<T>::TooManyClaims)?;
		// The accused always gets its time to answer, even from the stage's last block.
		record.stage_deadline = record.stage_deadline.max(ripe_at);
		let next = Self::next_silence_deadline(&record);
		Self::reschedule(task, &mut info, next);
		SilenceClaims::<T>::insert(task, record);
		Tasks::<T>::insert(task, info);
		Self::deposit_event(Event::SilenceClaimed { task, pipeline, chunk, silent, ripe_at });
		Ok(())
	}

	/// When the task's deadline must come: its stage's, or a claim's ripening first.
	pub(crate) fn next_silence_deadline(record: &SilenceRecordOf<T>) -> BlockNumberFor<T> {
		record
			.claims
			.iter()
			.map(|claim| claim.ripe_at)
			.fold(record.stage_deadline, |earliest, at| earliest.min(at))
	}

	/// Decides the claims ripe at `now` against `slots`; the rest stay open.
	pub(crate) fn silence_verdict(
		slots: &[SlotOf<T>],
		claims: &[SilenceClaimOf<T>],
		now: BlockNumberFor<T>,
	) -> (SilenceVerdict, Vec<SilenceClaimOf<T>>) {
		let mut verdict = SilenceVerdict::default();
		let mut open = Vec::new();
		let assigned = |pipeline, chunk| {
			Self::slot_index(slots, pipeline, chunk)
				.ok()
				.filter(|index| slots.get(*index).is_some_and(|s| s.state == SlotState::Assigned))
		};
		for claim in claims {
			if claim.ripe_at > now {
				open.push(claim.clone());
				continue;
			}
			// The accuser itself must still be waiting, and the accused still silent.
			let (Some(accuser), Some(accused)) =
				(assigned(claim.pipeline, claim.by), assigned(claim.pipeline, claim.silent))
			else {
				continue;
			};
			let answered = claims.iter().any(|other| {
				other.pipeline == claim.pipeline
					&& other.by == claim.silent
					&& other.silent == claim.by
			});
			if answered {
				for index in [accuser, accused] {
					if !verdict.released.contains(&index) {
						verdict.released.push(index);
					}
				}
			} else if !verdict.blamed.contains(&accused) {
				verdict.blamed.push(accused);
			}
			if !verdict.explained.contains(&claim.pipeline) {
				verdict.explained.push(claim.pipeline);
			}
		}
		// A slot both released (mutual claim) and accused by a third stage stays
		// released: the chain cannot tell which of its neighbours stopped.
		verdict.blamed.retain(|index| !verdict.released.contains(index));
		// Claims on slots decided now fall with them.
		let decided = |claim: &SilenceClaimOf<T>| {
			[claim.by, claim.silent].iter().any(|chunk| {
				Self::slot_index(slots, claim.pipeline, *chunk).is_ok_and(|index| {
					verdict.blamed.contains(&index) || verdict.released.contains(&index)
				})
			})
		};
		open.retain(|claim| !decided(claim));
		(verdict, open)
	}

	/// A late slot freed without blame: its neighbour and it claimed each other silent.
	pub(crate) fn release(task: TaskId, slot: &mut SlotOf<T>) {
		T::Experts::note_finished(&slot.expert);
		Self::deposit_event(Event::SlotReleased {
			task,
			pipeline: slot.pipeline,
			chunk: slot.chunk,
			expert: slot.expert.clone(),
		});
		slot.state = SlotState::Missed;
	}
}
