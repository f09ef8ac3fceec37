//! The pallet's invariants, checked by `try-state` and by the tests after every step.

use crate::*;
use alloc::collections::btree_map::BTreeMap;

impl<T: Config> Pallet<T> {
	/// Invariants: every requester's escrow hold equals the escrow of its open
	/// tasks; the queue holds exactly the queued tasks; every assigned or committed
	/// task has its deadline scheduled; the to-do index matches the pending slots;
	/// the payout account keeps at least the minimum balance; a task checked by prefill
	/// has at most its generators, the verifier's pipeline for each and
	/// `MaxRefereeRounds` rounds of referee pipelines per generator, a result per
	/// generator once compared, and a dispute only while it is refereed or over.
	pub fn do_try_state() -> Result<(), polkadot_sdk::sp_runtime::TryRuntimeError> {
		let mut escrow: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		let queue = Queue::<T>::get();
		for (id, task) in Tasks::<T>::iter() {
			if task.status.is_open() {
				escrow.entry(task.requester.clone()).or_default().saturating_accrue(task.escrow);
			}
			ensure!(
				(task.status == TaskStatus::Queued) == queue.contains(&id),
				"queue differs from queued tasks"
			);
			if task.status == TaskStatus::Queued || task.status.has_duties() {
				ensure!(
					Timeouts::<T>::contains_key(task.deadline, id),
					"open task without its deadline"
				);
			}
			for slot in Slots::<T>::get(id).iter() {
				if task.status.has_duties() && slot.state.is_pending() {
					ensure!(
						MinerTasks::<T>::contains_key(&slot.expert, id),
						"pending slot missing from the miner's list"
					);
				}
			}
		}
		for (id, task) in Tasks::<T>::iter() {
			if task.mode != VerificationMode::Prefill {
				continue;
			}
			let rounds = task.dispute.map_or(0, |d| d.rounds);
			ensure!(rounds <= T::MaxRefereeRounds::get(), "more referee rounds than allowed");
			ensure!(
				(1..=T::MaxGenerators::get()).contains(&task.generators),
				"generators out of range"
			);
			let referee_pipelines = u32::from(task.generators)
				.saturating_mul(u32::from(T::MaxRefereeRounds::get()))
				.saturating_mul(u32::from(T::RefereesPerRound::get()));
			let past_last = u32::from(task.side_pipelines()).saturating_add(referee_pipelines);
			ensure!(
				Slots::<T>::get(id).iter().all(|slot| u32::from(slot.pipeline) < past_last),
				"a slot outside the task's pipelines"
			);
			if let Some(dispute) = task.dispute {
				ensure!(dispute.pair < task.generators, "a dispute over no generator");
				ensure!(
					dispute.first_referee >= task.side_pipelines(),
					"referees among the sides' pipelines"
				);
			}
			let results = PairResults::<T>::get(id);
			ensure!(
				results.is_empty() || results.len() == usize::from(task.generators),
				"pair results of another count than the generators"
			);
			if matches!(task.status, TaskStatus::Refereeing | TaskStatus::Judging) {
				ensure!(task.dispute.is_some(), "refereed without a dispute");
			}
			ensure!(task.status != TaskStatus::Disputed, "a prefill task waits for the admin");
		}
		for (who, id) in MinerTasks::<T>::iter_keys() {
			let task = Tasks::<T>::get(id).ok_or("miner list names an unknown task")?;
			ensure!(
				task.status.has_duties()
					&& Slots::<T>::get(id)
						.iter()
						.any(|slot| slot.expert == who && slot.state.is_pending()),
				"miner list names a slot that is not pending"
			);
		}
		for (id, record) in SilenceClaims::<T>::iter() {
			let task = Tasks::<T>::get(id).ok_or("silence claims of an unknown task")?;
			ensure!(
				matches!(task.status, TaskStatus::Assigned | TaskStatus::Verifying),
				"silence claims outside a commit stage"
			);
			ensure!(task.deadline <= record.stage_deadline, "the stage ends before its claims");
			let slots = Slots::<T>::get(id);
			for claim in record.claims.iter() {
				ensure!(
					task.deadline <= claim.ripe_at,
					"a silence claim ripens after the task's next deadline passed"
				);
				ensure!(
					Self::slot_index(&slots, claim.pipeline, claim.by).is_ok()
						&& Self::slot_index(&slots, claim.pipeline, claim.silent).is_ok(),
					"a silence claim names no slot"
				);
			}
		}
		let mut queued_by: BTreeMap<T::AccountId, u32> = BTreeMap::new();
		for id in queue.iter() {
			let task = Tasks::<T>::get(id).ok_or("queue names an unknown task")?;
			queued_by.entry(task.requester).or_default().saturating_inc();
		}
		ensure!(
			QueuedBy::<T>::iter().collect::<BTreeMap<_, _>>() == queued_by,
			"queued-task counts differ from the queue"
		);
		for (who, amount) in escrow.iter() {
			ensure!(
				T::Currency::balance_on_hold(&HoldReason::Escrow.into(), who) == *amount,
				"escrow held differs from open tasks"
			);
		}
		// At least, not exactly, the minimum: anyone may transfer into the account (the
		// tests check that no fee stays behind, where nobody donates).
		ensure!(
			T::Currency::balance(&Self::payout_account()) >= T::Currency::minimum_balance(),
			"the payout account fell below the minimum balance"
		);
		Ok(())
	}
}
