//! Read-only views for the runtime API (the miners' worker and clients) and for the
//! reputation pallet (`TaskLedger`).

use crate::*;
use alloc::vec::Vec;

/// The most task ids one `recent_tasks` call looks at.
pub const RECENT_TASKS_LIMIT: u32 = 64;

impl<T: Config> Pallet<T> {
	/// A miner's open slots, for its worker.
	pub fn assignments(
		miner: T::AccountId,
	) -> Vec<MinerAssignment<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
		let mut found = Vec::new();
		for task in MinerTasks::<T>::iter_key_prefix(&miner) {
			let Some(info) = Tasks::<T>::get(task) else { continue };
			let chunks = T::Models::chunk_count(info.model).unwrap_or(0);
			let slots = Slots::<T>::get(task);
			let prompt = Prompts::<T>::get(task).map(|p| p.into_inner()).unwrap_or_default();
			let claims =
				SilenceClaims::<T>::get(task).map(|r| r.claims.into_inner()).unwrap_or_default();
			for slot in slots.iter().filter(|s| s.expert == miner && s.state.is_pending()) {
				found.push(MinerAssignment {
					task,
					model: info.model,
					pipeline: slot.pipeline,
					chunk: slot.chunk,
					chunks,
					state: slot.state,
					mode: info.mode,
					role: slot.role,
					deadline: info.deadline,
					pipeline_experts: slots
						.iter()
						.filter(|s| s.pipeline == slot.pipeline)
						.map(|s| s.expert.clone())
						.collect(),
					prompt: prompt.clone(),
					max_tokens: info.max_tokens,
					sampling: info.sampling,
					threshold: slot.threshold,
					accused_by: claims
						.iter()
						.filter(|c| c.pipeline == slot.pipeline && c.silent == slot.chunk)
						.map(|c| c.by)
						.collect(),
				});
			}
		}
		found
	}

	/// The newest tasks still stored, newest first: at most `limit` (capped at
	/// [`RECENT_TASKS_LIMIT`]) of the last `limit` task ids.
	pub fn recent_tasks(limit: u32) -> Vec<TaskId> {
		let next = NextTaskId::<T>::get();
		let limit = limit.min(RECENT_TASKS_LIMIT);
		(next.saturating_sub(TaskId::from(limit))..next)
			.rev()
			.filter(|id| Tasks::<T>::contains_key(id))
			.collect()
	}

	/// A task with its prompt, slots and outputs, for clients.
	pub fn task_details(
		task: TaskId,
	) -> Option<TaskDetails<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
		let info = Tasks::<T>::get(task)?;
		let outputs = Outputs::<T>::iter_prefix(task)
			.map(|(pipeline, out)| OutputView {
				pipeline,
				hash: output_hash(out.prompt_tokens, &out.tokens, &out.text),
				prompt_tokens: out.prompt_tokens,
				tokens: out.tokens.into_inner(),
				text: out.text.into_inner(),
			})
			.collect();
		Some(TaskDetails {
			id: task,
			task: info,
			prompt: Prompts::<T>::get(task).map(|p| p.into_inner()),
			slots: Slots::<T>::get(task).into_inner(),
			outputs,
			fingerprints: Fingerprints::<T>::iter_prefix(task)
				.map(|(index, bytes)| (index, bytes.into_inner()))
				.collect(),
		})
	}
}

impl<T: Config> TaskLedger<T::AccountId> for Pallet<T> {
	fn completed_task(task: TaskId) -> Result<CompletedTask<T::AccountId>, TaskLookupError> {
		let info = Tasks::<T>::get(task).ok_or(TaskLookupError::Unknown)?;
		let accepted = match (&info.status, &info.settlement) {
			(TaskStatus::Completed, Some(Settlement { output_hash: Some(hash), .. })) => *hash,
			_ => return Err(TaskLookupError::NotCompleted),
		};
		let slots = Slots::<T>::get(task);
		if slots.is_empty() {
			return Err(TaskLookupError::Pruned);
		}
		let outputs = Self::pipeline_outputs(&slots, info.pipelines);
		// Prefill: the generator whose output was delivered (the first whose work stood).
		let delivered =
			PairResults::<T>::get(task).iter().position(|result| result.stands()).unwrap_or(0);
		let mut miners: Vec<T::AccountId> = Vec::new();
		for slot in slots.iter() {
			// Redundant: the agreeing pipelines. Prefill: the delivered generator, whose
			// work the requester rates (verifiers and referees checked it).
			let agreed = match info.mode {
				VerificationMode::Redundant => {
					outputs.get(slot.pipeline as usize).copied().flatten() == Some(accepted)
				}
				VerificationMode::Prefill => {
					slot.role == Role::Generator
						&& usize::from(slot.pipeline) == delivered
						&& slot.state == SlotState::Revealed(accepted)
				}
			};
			if agreed && !miners.contains(&slot.expert) {
				miners.push(slot.expert.clone());
			}
		}
		Ok(CompletedTask { requester: info.requester, domain: info.domain, miners })
	}
}
