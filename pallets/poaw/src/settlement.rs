//! Where money moves: paying the agreeing pipelines and the community fund, refunds
//! and expiry, and the record a finished task keeps.

use crate::*;
use alloc::vec::Vec;

impl<T: Config> Pallet<T> {
	/// The account fees pass through on their way to miners and the community fund.
	pub fn payout_account() -> T::AccountId {
		T::PalletId::get().into_account_truncating()
	}

	/// Pays the pipelines whose output is `accepted`, reports every miner, refunds
	/// the rest of the escrow (redundant verification).
	pub(crate) fn complete(task: TaskId, info: TaskOf<T>, slots: &[SlotOf<T>], accepted: H256) {
		let outputs = Self::pipeline_outputs(slots, info.pipelines);
		let agreeing: Vec<PipelineIndex> = outputs
			.iter()
			.enumerate()
			.filter(|(_, hash)| **hash == Some(accepted))
			.map(|(p, _)| p as PipelineIndex)
			.collect();
		let output = agreeing.first().and_then(|p| Outputs::<T>::get(task, p));
		let tokens = Self::paid_tokens(&info, output.as_ref());
		let paid: Vec<usize> = (0..slots.len())
			.filter(|i| slots.get(*i).is_some_and(|slot| agreeing.contains(&slot.pipeline)))
			.collect();
		let owed = Self::owed(&info, slots, &paid, tokens);
		let outcomes: Vec<Option<TaskOutcome>> = slots
			.iter()
			.map(|slot| match slot.state {
				SlotState::Revealed(hash)
					if agreeing.contains(&slot.pipeline) && hash == accepted =>
				{
					Some(TaskOutcome::Verified)
				}
				SlotState::Revealed(hash) if hash != accepted => Some(TaskOutcome::Outvoted),
				SlotState::Assigned | SlotState::Committed(_) => Some(TaskOutcome::MissedDeadline),
				_ => None,
			})
			.collect();
		Self::pay_and_finish(task, info, slots, owed, &outcomes, accepted, tokens);
	}

	/// Tokens a task's miners are paid for: the prompt (at most its bound) and the
	/// generated tokens of `output`.
	pub(crate) fn paid_tokens(info: &TaskOf<T>, output: Option<&TaskOutput<T>>) -> u32 {
		output
			.map(|out| {
				out.prompt_tokens
					.min(prompt_token_bound(info.prompt_bytes))
					.saturating_add(out.tokens.len() as u32)
			})
			.unwrap_or(0)
	}

	/// What the slots at `paid` that revealed earned, per miner in slot order: layers of their chunk
	/// × `tokens` × their threshold price, times `PrefillShare` for prefill work
	/// (verifiers, referees).
	pub(crate) fn owed(
		info: &TaskOf<T>,
		slots: &[SlotOf<T>],
		paid: &[usize],
		tokens: u32,
	) -> Vec<(T::AccountId, u128)> {
		let layers = T::Models::chunk_layers(info.model).unwrap_or_default();
		let mut owed: Vec<(T::AccountId, u128)> = Vec::new();
		let revealed = paid.iter().filter_map(|i| slots.get(*i));
		for slot in revealed.filter(|slot| matches!(slot.state, SlotState::Revealed(_))) {
			let chunk_layers = layers.get(slot.chunk as usize).copied().unwrap_or(0);
			let work = (chunk_layers as u128)
				.saturating_mul(tokens as u128)
				.saturating_mul(slot.threshold.saturated_into::<u128>());
			let amount = match slot.role {
				Role::Generator => work,
				Role::Verifier | Role::Referee => T::PrefillShare::get().mul_floor(work),
			};
			match owed.iter_mut().find(|(who, _)| *who == slot.expert) {
				Some((_, sum)) => *sum = sum.saturating_add(amount),
				None => owed.push((slot.expert.clone(), amount)),
			}
		}
		owed
	}

	/// Charges the requester for `owed` (grossed up so that the community fund gets
	/// its share; scaled down alike if the escrow cannot cover it), pays the miners
	/// through the expert registry, refunds the rest, reports `outcomes` (per slot),
	/// frees every slot's capacity and records the task Completed with `accepted`.
	pub(crate) fn pay_and_finish(
		task: TaskId,
		mut info: TaskOf<T>,
		slots: &[SlotOf<T>],
		mut owed: Vec<(T::AccountId, u128)>,
		outcomes: &[Option<TaskOutcome>],
		accepted: H256,
		tokens: u32,
	) {
		let escrow: u128 = info.escrow.saturated_into();
		let mut miners: u128 = owed.iter().fold(0u128, |sum, (_, a)| sum.saturating_add(*a));
		// The auction's price cap keeps this within the escrow; were it not, every
		// miner is scaled down alike rather than the requester overcharged.
		let budget = T::MinerShare::get().mul_floor(escrow);
		if miners > budget {
			let scale = Perbill::from_rational(budget, miners);
			for (_, amount) in owed.iter_mut() {
				*amount = scale.mul_floor(*amount);
			}
			miners = owed.iter().fold(0u128, |sum, (_, a)| sum.saturating_add(*a));
		}
		let fee = T::MinerShare::get().saturating_reciprocal_mul_ceil(miners).min(escrow);
		let community = fee.saturating_sub(miners);
		let refund = escrow.saturating_sub(fee);
		let mut refunded: BalanceOf<T> = refund.saturated_into();
		let _ = T::Currency::release(
			&HoldReason::Escrow.into(),
			&info.requester,
			refunded,
			Precision::BestEffort,
		);
		let payout = Self::payout_account();
		let moved = T::Currency::transfer_on_hold(
			&HoldReason::Escrow.into(),
			&info.requester,
			&payout,
			fee.saturated_into(),
			Precision::Exact,
			Restriction::Free,
			Fortitude::Force,
		);
		let (mut paid_miners, mut paid_community) = (BalanceOf::<T>::zero(), Zero::zero());
		if moved.is_ok() {
			paid_miners = Self::pay_miners(task, &payout, &info.requester, owed, &mut refunded);
			let community_amount: BalanceOf<T> = community.saturated_into();
			let community_account = T::CommunityAccount::get();
			if !community_amount.is_zero() {
				if T::Currency::transfer(
					&payout,
					&community_account,
					community_amount,
					Preservation::Preserve,
				)
				.is_ok()
				{
					paid_community = community_amount;
				} else {
					Self::pay_back(
						task,
						&payout,
						&info.requester,
						&community_account,
						community_amount,
					);
					refunded.saturating_accrue(community_amount);
				}
			}
		} else {
			// Cannot happen with the escrow held; if it did, nothing is lost.
			let rest = T::Currency::balance_on_hold(&HoldReason::Escrow.into(), &info.requester)
				.min(fee.saturated_into());
			let _ = T::Currency::release(
				&HoldReason::Escrow.into(),
				&info.requester,
				rest,
				Precision::BestEffort,
			);
			refunded.saturating_accrue(rest);
			Self::deposit_event(Event::PaymentFailed {
				task,
				to: payout,
				amount: fee.saturated_into(),
			});
		}
		Self::report_and_free(task, &info, slots, outcomes, tokens);
		let paid_fee = paid_miners.saturating_add(paid_community);
		Self::finish(
			task,
			&mut info,
			TaskStatus::Completed,
			Settlement {
				output_hash: Some(accepted),
				tokens,
				fee: paid_fee,
				miners: paid_miners,
				community: paid_community,
				refunded,
			},
		);
		Self::deposit_event(Event::TaskCompleted {
			task,
			output_hash: accepted,
			fee: paid_fee,
			miners: paid_miners,
			community: paid_community,
			refunded,
		});
	}

	/// Pays `owed` from `payout` through the expert registry; what cannot be paid goes
	/// to `back_to` (and is added to `returned`). Returns what was paid.
	pub(crate) fn pay_miners(
		task: TaskId,
		payout: &T::AccountId,
		back_to: &T::AccountId,
		owed: Vec<(T::AccountId, u128)>,
		returned: &mut BalanceOf<T>,
	) -> BalanceOf<T> {
		let mut paid = BalanceOf::<T>::zero();
		for (expert, amount) in owed {
			let amount: BalanceOf<T> = amount.saturated_into();
			if amount.is_zero() {
				continue;
			}
			if T::Experts::pay(&expert, payout, amount).is_ok() {
				paid.saturating_accrue(amount);
				Self::deposit_event(Event::MinerPaid { task, expert, amount });
			} else {
				Self::pay_back(task, payout, back_to, &expert, amount);
				returned.saturating_accrue(amount);
			}
		}
		paid
	}

	/// Reports `outcomes` (per slot) to the reputation source, folds verified slots
	/// into the throughput average and frees every slot still counted against its
	/// miner's capacity.
	pub(crate) fn report_and_free(
		task: TaskId,
		info: &TaskOf<T>,
		slots: &[SlotOf<T>],
		outcomes: &[Option<TaskOutcome>],
		tokens: u32,
	) {
		let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
		for slot in slots.iter() {
			MinerTasks::<T>::remove(&slot.expert, task);
		}
		for (index, slot) in slots.iter().enumerate() {
			if matches!(slot.state, SlotState::Missed | SlotState::Abandoned) {
				continue;
			}
			let outcome = outcomes.get(index).copied().flatten();
			if let Some(outcome) = outcome {
				T::Quality::report(&slot.expert, info.domain.as_ref(), outcome);
			}
			if outcome == Some(TaskOutcome::Verified) && slot.role == Role::Generator {
				Self::note_throughput(&slot.expert, tokens, slot.assigned_at, now);
			}
			T::Experts::note_finished(&slot.expert);
		}
	}

	/// A payment that failed goes from the payout account back to the requester.
	pub(crate) fn pay_back(
		task: TaskId,
		payout: &T::AccountId,
		requester: &T::AccountId,
		to: &T::AccountId,
		amount: BalanceOf<T>,
	) {
		let _ = T::Currency::transfer(payout, requester, amount, Preservation::Preserve);
		Self::deposit_event(Event::PaymentFailed { task, to: to.clone(), amount });
	}

	/// Ends a task without a result: the escrow goes back less `fee_share` of it (to
	/// the community fund); miners that owed work are reported and freed.
	pub(crate) fn expire(
		task: TaskId,
		mut info: TaskOf<T>,
		slots: &[SlotOf<T>],
		fee_share: Perbill,
	) {
		let fee = fee_share.mul_floor(info.escrow);
		let queueing_fee = if fee.is_zero() {
			Zero::zero()
		} else {
			T::Currency::transfer_on_hold(
				&HoldReason::Escrow.into(),
				&info.requester,
				&T::CommunityAccount::get(),
				fee,
				Precision::BestEffort,
				Restriction::Free,
				Fortitude::Force,
			)
			.unwrap_or_default()
		};
		let refunded = T::Currency::release(
			&HoldReason::Escrow.into(),
			&info.requester,
			info.escrow.saturating_sub(queueing_fee),
			Precision::BestEffort,
		)
		.unwrap_or_default();
		for slot in slots.iter() {
			MinerTasks::<T>::remove(&slot.expert, task);
		}
		for slot in slots.iter() {
			match slot.state {
				SlotState::Missed | SlotState::Abandoned => continue,
				SlotState::Assigned | SlotState::Committed(_) => T::Quality::report(
					&slot.expert,
					info.domain.as_ref(),
					TaskOutcome::MissedDeadline,
				),
				SlotState::Revealed(_) => {}
			}
			T::Experts::note_finished(&slot.expert);
		}
		Self::finish(
			task,
			&mut info,
			TaskStatus::Expired,
			Settlement {
				output_hash: None,
				tokens: 0,
				fee: queueing_fee,
				miners: Zero::zero(),
				community: queueing_fee,
				refunded,
			},
		);
		Self::deposit_event(Event::TaskExpired { task, refunded, queueing_fee });
	}

	/// Records the end of a task and schedules the removal of its data.
	pub(crate) fn finish(
		task: TaskId,
		info: &mut TaskOf<T>,
		status: TaskStatus,
		settlement: Settlement<BalanceOf<T>>,
	) {
		let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
		Timeouts::<T>::remove(info.deadline, task);
		T::Models::release(info.model);
		info.status = status;
		info.settlement = Some(settlement);
		info.deadline = now.saturating_add(T::ResultRetention::get());
		RetentionEnds::<T>::insert(info.deadline, task, ());
		Tasks::<T>::insert(task, &*info);
	}

	/// Folds a verified slot into the miner's throughput average (weight 1/4).
	pub(crate) fn note_throughput(
		expert: &T::AccountId,
		tokens: u32,
		since: BlockNumberFor<T>,
		now: BlockNumberFor<T>,
	) {
		let blocks: u64 = now.saturating_sub(since).saturated_into::<u64>().max(1);
		let sample = (tokens as u64).saturating_mul(1000).checked_div(blocks).unwrap_or_default();
		Throughput::<T>::mutate(expert, |average| {
			*average = if *average == 0 {
				sample
			} else {
				average.saturating_mul(3).saturating_add(sample) / 4
			};
		});
	}
}
