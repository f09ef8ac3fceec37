//! Commit and reveal bookkeeping: the two calls' checks, finding a caller's slot, which
//! slots act in the current stage, opening the next stage, each redundant pipeline's
//! agreed output, and concluding a redundant task on what was revealed.

use crate::*;
use alloc::{collections::btree_map::BTreeMap, vec::Vec};

impl<T: Config> Pallet<T> {
	/// `commit` and `commit_output`: `output` is the generator's published output.
	pub(crate) fn do_commit(
		who: &T::AccountId,
		task: TaskId,
		pipeline: PipelineIndex,
		chunk: ChunkIndex,
		commitment: H256,
		output: Option<RevealedOutput>,
	) -> DispatchResult {
		let mut info = Tasks::<T>::get(task).ok_or(Error::<T>::UnknownTask)?;
		ensure!(
			matches!(
				info.status,
				TaskStatus::Assigned | TaskStatus::Verifying | TaskStatus::Refereeing
			),
			Error::<T>::WrongStage
		);
		let chunks = T::Models::chunk_count(info.model).ok_or(Error::<T>::UnknownModel)?;
		let mut slots = Slots::<T>::get(task);
		let slot = Self::own_slot(slots.as_mut(), &info.requester, who, pipeline, chunk)?;
		ensure!(Self::commits_now(&info, slot), Error::<T>::WrongStage);
		Self::ensure_owes_commit(slot)?;
		let publishes = info.mode == VerificationMode::Prefill
			&& slot.role == Role::Generator
			&& chunk.saturating_add(1) == chunks;
		let published = match (publishes, output) {
			(true, Some(RevealedOutput::Full { prompt_tokens, tokens, text })) => {
				ensure!(!tokens.is_empty(), Error::<T>::OutputRequired);
				Some(Self::bounded_output(&info, prompt_tokens, tokens, text)?)
			}
			(true, _) => return Err(Error::<T>::OutputRequired.into()),
			(false, Some(_)) => return Err(Error::<T>::NotTheOutputSlot.into()),
			(false, None) => None,
		};
		slot.state = SlotState::Committed(commitment);
		let stage_done = !slots
			.iter()
			.any(|slot| Self::commits_now(&info, slot) && slot.state == SlotState::Assigned);
		Slots::<T>::insert(task, &slots);
		if let Some((output_hash, output)) = published {
			Outputs::<T>::insert(task, pipeline, output);
			Self::deposit_event(Event::OutputPublished { task, output_hash });
		}
		Self::deposit_event(Event::Committed { task, pipeline, chunk, expert: who.clone() });
		if stage_done {
			Self::stage_committed(task, &mut info);
			Tasks::<T>::insert(task, info);
		}
		Ok(())
	}

	/// `reveal`.
	/// A claimed output checked against the task's token bound and stored bounds, with
	/// the hash the miners commit to.
	fn bounded_output(
		info: &TaskOf<T>,
		prompt_tokens: u32,
		tokens: Vec<u32>,
		text: Vec<u8>,
	) -> Result<(H256, TaskOutput<T>), DispatchError> {
		ensure!(tokens.len() as u32 <= info.max_tokens, Error::<T>::TooManyTokens);
		let hash = output_hash(prompt_tokens, &tokens, &text);
		let output = TaskOutput::<T> {
			prompt_tokens,
			tokens: tokens.try_into().map_err(|_| Error::<T>::TooManyTokens)?,
			text: text.try_into().map_err(|_| Error::<T>::OutputTooLong)?,
		};
		Ok((hash, output))
	}

	#[allow(clippy::too_many_arguments)]
	pub(crate) fn do_reveal(
		who: &T::AccountId,
		task: TaskId,
		pipeline: PipelineIndex,
		chunk: ChunkIndex,
		fingerprint: Vec<u8>,
		output: RevealedOutput,
		salt: [u8; 32],
		input_check: Option<InputCheck<Vec<u8>>>,
	) -> DispatchResult {
		let info = Tasks::<T>::get(task).ok_or(Error::<T>::UnknownTask)?;
		ensure!(
			matches!(info.status, TaskStatus::Committed | TaskStatus::Judging),
			Error::<T>::WrongStage
		);
		let chunks = T::Models::chunk_count(info.model).ok_or(Error::<T>::UnknownModel)?;
		let mut slots = Slots::<T>::get(task);
		let index = Self::slot_index(&slots, pipeline, chunk)?;
		let slot = slots.get_mut(index).ok_or(Error::<T>::UnknownSlot)?;
		ensure!(Self::signs_for(who, &slot.expert, &info.requester), Error::<T>::NotYourSlot);
		ensure!(Self::reveals_now(&info, slot), Error::<T>::WrongStage);
		let committed = match slot.state {
			SlotState::Committed(committed) => committed,
			SlotState::Missed | SlotState::Abandoned => return Err(Error::<T>::SlotClosed.into()),
			SlotState::Assigned | SlotState::Revealed(_) => {
				return Err(Error::<T>::NotCommitted.into())
			}
		};
		let fingerprint: BoundedVec<u8, T::MaxFingerprintBytes> =
			fingerprint.try_into().map_err(|_| Error::<T>::FingerprintTooLong)?;
		let input_check = match input_check {
			None => None,
			Some(check) => Some(Self::bounded_input_check(&info, slot, check)?),
		};
		let is_last = chunk.saturating_add(1) == chunks;
		let attested = info.attested_generator(slot.role, pipeline);
		let mut full = None;
		let mut verdict = None;
		let hash = match (info.mode, slot.role, is_last, output) {
			(VerificationMode::Redundant, _, false, RevealedOutput::Hash(hash)) => hash,
			(
				VerificationMode::Redundant,
				_,
				true,
				RevealedOutput::Full { prompt_tokens, tokens, text },
			) => {
				let (hash, bounded) = Self::bounded_output(&info, prompt_tokens, tokens, text)?;
				full = Some(bounded);
				hash
			}
			(VerificationMode::Redundant, _, true, _) => {
				return Err(Error::<T>::OutputRequired.into())
			}
			(VerificationMode::Redundant, _, false, _) => {
				return Err(Error::<T>::OutputNotExpected.into())
			}
			// Everyone attests the output the generator published.
			(VerificationMode::Prefill, role, last, RevealedOutput::Hash(hash))
				if role == Role::Generator || !last =>
			{
				ensure!(
					Self::published_output(task, attested) == Some(hash),
					Error::<T>::OutputMismatch
				);
				hash
			}
			(VerificationMode::Prefill, Role::Generator, _, _) => {
				return Err(Error::<T>::OutputNotExpected.into())
			}
			(VerificationMode::Prefill, _, true, RevealedOutput::Verdict { accepted }) => {
				let published =
					Self::published_output(task, attested).ok_or(Error::<T>::OutputMismatch)?;
				verdict = Some(accepted);
				verdict_hash(published, accepted)
			}
			(VerificationMode::Prefill, _, true, _) => {
				return Err(Error::<T>::VerdictRequired.into())
			}
			(VerificationMode::Prefill, _, false, _) => {
				return Err(Error::<T>::OutputNotExpected.into())
			}
		};
		ensure!(
			commitment(task, pipeline, chunk, &fingerprint, hash, salt) == committed,
			Error::<T>::CommitmentMismatch
		);
		slot.state = SlotState::Revealed(hash);
		Fingerprints::<T>::insert(task, index as u32, fingerprint);
		if let Some(output) = full {
			Outputs::<T>::insert(task, pipeline, output);
		}
		if let Some(accepted) = verdict {
			Verdicts::<T>::insert(task, index as u32, accepted);
		}
		if let Some(check) = input_check {
			InputChecks::<T>::insert(task, index as u32, check);
		}
		Self::sync_miner_tasks(task, &slots, &[]);
		let stage_done =
			!slots.iter().any(|slot| Self::reveals_now(&info, slot) && slot.state.is_pending());
		Slots::<T>::insert(task, &slots);
		Self::deposit_event(Event::Revealed {
			task,
			pipeline,
			chunk,
			expert: who.clone(),
			output_hash: hash,
		});
		if stage_done {
			Self::stage_revealed(task, info, slots);
		}
		Ok(())
	}

	/// An input check revealed by `slot`: only the current round's referees of a disputed
	/// chunk past chunk 0 (not a sampling dispute) has one, about one of the disputed
	/// pair's two sides.
	fn bounded_input_check(
		info: &TaskOf<T>,
		slot: &SlotOf<T>,
		check: InputCheck<Vec<u8>>,
	) -> Result<InputCheck<BoundedVec<u8, T::MaxFingerprintBytes>>, DispatchError> {
		let expected = info.status == TaskStatus::Judging
			&& Self::in_referee_round(info, slot.pipeline)
			&& info.dispute.is_some_and(|d| {
				!d.sampling
					&& d.chunk == slot.chunk
					&& d.chunk > 0 && (check.side() == d.pair
					|| check.side() == info.verifier_of(d.pair))
			});
		ensure!(expected, Error::<T>::InputCheckNotExpected);
		let bound = |bytes: Vec<u8>| {
			BoundedVec::<u8, T::MaxFingerprintBytes>::try_from(bytes)
				.map_err(|_| DispatchError::from(Error::<T>::FingerprintTooLong))
		};
		Ok(match check {
			InputCheck::Withheld { side } => InputCheck::Withheld { side },
			InputCheck::Checked { side, recomputed, input } => {
				InputCheck::Checked { side, recomputed: bound(recomputed)?, input: bound(input)? }
			}
		})
	}

	/// The storage write of an input check, which the reveal benchmark (a redundant
	/// task's last reveal) does not make; its bytes are counted by [`Self::revealed_bytes`].
	pub(crate) fn input_check_write(input_check: &Option<InputCheck<Vec<u8>>>) -> Weight {
		match input_check {
			Some(_) => T::DbWeight::get().writes(1),
			None => Weight::zero(),
		}
	}

	/// What a submission is charged up front: the auction bound (`MaxSlots` chunks at
	/// `MaxOffersPerChunk` offers) for a prompt of its length, refunded down to the
	/// model's chunks after dispatch. A task with several generators runs the same
	/// auctions with one more winner each.
	pub(crate) fn submission_weight(prompt: &[u8]) -> Weight {
		T::WeightInfo::submit_task(
			(prompt.len() as u32).min(T::MaxPromptBytes::get()),
			T::MaxSlots::get(),
			T::MaxOffersPerChunk::get(),
		)
		.saturating_add(Self::operator_lookup())
	}

	/// The read of an operator record the benchmarks do not make: the slot's expert's
	/// operator when someone else signs (the commit, reveal and silence claim
	/// benchmarks sign with the expert's own key), or the expert a requester operates
	/// (`submit_task`).
	pub(crate) fn operator_lookup() -> Weight {
		T::DbWeight::get().reads(1)
	}

	/// The fingerprint bytes a reveal carries, as its weight counts them: the
	/// fingerprint and an input check's two, each at most `MaxFingerprintBytes`.
	pub(crate) fn revealed_bytes(
		fingerprint: &[u8],
		input_check: &Option<InputCheck<Vec<u8>>>,
	) -> u32 {
		let max = T::MaxFingerprintBytes::get() as usize;
		let check = input_check.as_ref().map_or(0, |c| c.fingerprint_bytes());
		fingerprint.len().min(max).saturating_add(check.min(max.saturating_mul(2))) as u32
	}

	/// Whether `slot` commits in the task's current stage.
	pub(crate) fn commits_now(info: &TaskOf<T>, slot: &SlotOf<T>) -> bool {
		match (info.mode, info.status) {
			(VerificationMode::Redundant, status) => status == TaskStatus::Assigned,
			(VerificationMode::Prefill, TaskStatus::Assigned) => slot.role == Role::Generator,
			(VerificationMode::Prefill, TaskStatus::Verifying) => slot.role == Role::Verifier,
			(VerificationMode::Prefill, TaskStatus::Refereeing) => {
				Self::in_referee_round(info, slot.pipeline)
			}
			_ => false,
		}
	}

	/// Whether `slot` reveals in the task's current stage.
	pub(crate) fn reveals_now(info: &TaskOf<T>, slot: &SlotOf<T>) -> bool {
		match (info.mode, info.status) {
			(VerificationMode::Redundant, status) => status == TaskStatus::Committed,
			(VerificationMode::Prefill, TaskStatus::Committed) => slot.role != Role::Referee,
			(VerificationMode::Prefill, TaskStatus::Judging) => {
				Self::in_referee_round(info, slot.pipeline)
			}
			_ => false,
		}
	}

	/// Every slot of the current stage committed: the next stage opens.
	pub(crate) fn stage_committed(task: TaskId, info: &mut TaskOf<T>) {
		// Nobody waits on anybody any more.
		SilenceClaims::<T>::remove(task);
		match (info.mode, info.status) {
			(VerificationMode::Prefill, TaskStatus::Assigned) => {
				Self::open_verification(task, info)
			}
			(VerificationMode::Prefill, TaskStatus::Refereeing) => {
				let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
				info.status = TaskStatus::Judging;
				Self::reschedule(task, info, now.saturating_add(T::RevealPeriod::get()));
				Self::deposit_event(Event::RevealsOpened { task, deadline: info.deadline });
			}
			_ => Self::open_reveals(task, info),
		}
	}

	/// Every slot of the current stage revealed (or its deadline passed): the vote of a
	/// redundant task, the comparison of the sides, or the referees' judgement.
	pub(crate) fn stage_revealed(
		task: TaskId,
		info: TaskOf<T>,
		slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
	) {
		match (info.mode, info.status) {
			(VerificationMode::Redundant, _) => Self::conclude(task, info, slots),
			(VerificationMode::Prefill, TaskStatus::Judging) => {
				Self::judge_round(task, info, slots)
			}
			(VerificationMode::Prefill, _) => Self::compare_work(task, info, slots),
		}
	}

	/// The hash of the output generator `generator` published.
	pub(crate) fn published_output(task: TaskId, generator: PipelineIndex) -> Option<H256> {
		Outputs::<T>::get(task, generator)
			.map(|out| output_hash(out.prompt_tokens, &out.tokens, &out.text))
	}

	/// The slot has yet to commit: neither committed nor closed.
	pub(crate) fn ensure_owes_commit(slot: &SlotOf<T>) -> DispatchResult {
		match slot.state {
			SlotState::Assigned => Ok(()),
			SlotState::Committed(_) | SlotState::Revealed(_) => {
				Err(Error::<T>::AlreadyCommitted.into())
			}
			SlotState::Missed | SlotState::Abandoned => Err(Error::<T>::SlotClosed.into()),
		}
	}

	/// Index of the slot of `pipeline` and `chunk`.
	pub(crate) fn slot_index(
		slots: &[SlotOf<T>],
		pipeline: PipelineIndex,
		chunk: ChunkIndex,
	) -> Result<usize, DispatchError> {
		slots
			.iter()
			.position(|slot| slot.pipeline == pipeline && slot.chunk == chunk)
			.ok_or_else(|| Error::<T>::UnknownSlot.into())
	}

	/// Whether `who` may sign `expert`'s duties on `requester`'s task: the expert itself,
	/// or the operator it named in the expert registry (N4: the miner node holds only
	/// that key), unless that operator is the requester: an expert that names the
	/// requester's account after the assignment does not let it work on its own task (R8).
	pub(crate) fn signs_for(
		who: &T::AccountId,
		expert: &T::AccountId,
		requester: &T::AccountId,
	) -> bool {
		who == expert || (who != requester && T::Experts::operator(expert).as_ref() == Some(who))
	}

	/// The slot of `pipeline` and `chunk` of `requester`'s task, which `who` must sign for.
	pub(crate) fn own_slot<'a>(
		slots: &'a mut [SlotOf<T>],
		requester: &T::AccountId,
		who: &T::AccountId,
		pipeline: PipelineIndex,
		chunk: ChunkIndex,
	) -> Result<&'a mut SlotOf<T>, DispatchError> {
		let index = Self::slot_index(slots, pipeline, chunk)?;
		let slot = slots.get_mut(index).ok_or(Error::<T>::UnknownSlot)?;
		ensure!(Self::signs_for(who, &slot.expert, requester), Error::<T>::NotYourSlot);
		Ok(slot)
	}

	/// Every live slot committed: the reveal stage starts.
	pub(crate) fn open_reveals(task: TaskId, info: &mut TaskOf<T>) {
		let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
		info.status = TaskStatus::Committed;
		Self::reschedule(task, info, now.saturating_add(T::RevealPeriod::get()));
		Self::deposit_event(Event::RevealsOpened { task, deadline: info.deadline });
	}

	/// Each pipeline's output: `Some(hash)` when every slot of it revealed the same
	/// hash and the last chunk's output is stored, else `None`.
	pub(crate) fn pipeline_outputs(slots: &[SlotOf<T>], pipelines: u8) -> Vec<Option<H256>> {
		(0..pipelines)
			.map(|p| {
				let mut hashes =
					slots.iter().filter(|slot| slot.pipeline == p).map(|slot| match slot.state {
						SlotState::Revealed(hash) => Some(hash),
						_ => None,
					});
				let first = hashes.next().flatten()?;
				hashes.all(|hash| hash == Some(first)).then_some(first)
			})
			.collect()
	}

	/// All reveals are in (or the reveal deadline passed): complete on a majority of
	/// the complete pipelines, dispute on a split, expire when none is complete.
	pub(crate) fn conclude(
		task: TaskId,
		mut info: TaskOf<T>,
		slots: BoundedVec<SlotOf<T>, T::MaxSlots>,
	) {
		let outputs = Self::pipeline_outputs(&slots, info.pipelines);
		let complete: Vec<H256> = outputs.iter().flatten().copied().collect();
		let mut votes: BTreeMap<H256, u32> = BTreeMap::new();
		for hash in complete.iter() {
			votes.entry(*hash).or_default().saturating_inc();
		}
		let leader = votes.iter().max_by_key(|(_, count)| **count).map(|(h, c)| (*h, *c));
		match leader {
			None => Self::expire(task, info, &slots, Perbill::zero()),
			Some((hash, count)) if count.saturating_mul(2) > complete.len() as u32 => {
				Self::complete(task, info, &slots, hash)
			}
			Some(_) => {
				// Evidence stays; the miners stay assigned (and so slashable) until
				// the admin resolves.
				for slot in slots.iter() {
					MinerTasks::<T>::remove(&slot.expert, task);
				}
				Timeouts::<T>::remove(info.deadline, task);
				info.status = TaskStatus::Disputed;
				Tasks::<T>::insert(task, info);
				Self::deposit_event(Event::TaskDisputed { task });
			}
		}
	}
}
