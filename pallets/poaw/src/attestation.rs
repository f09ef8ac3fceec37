//! Commit and reveal bookkeeping: finding a caller's slot, opening the reveal stage,
//! each pipeline's agreed output, and concluding a task on what was revealed.

use crate::*;
use alloc::{collections::btree_map::BTreeMap, vec::Vec};

impl<T: Config> Pallet<T> {
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

	/// The slot of `pipeline` and `chunk`, which must be `who`'s.
	pub(crate) fn own_slot<'a>(
		slots: &'a mut [SlotOf<T>],
		who: &T::AccountId,
		pipeline: PipelineIndex,
		chunk: ChunkIndex,
	) -> Result<&'a mut SlotOf<T>, DispatchError> {
		let index = Self::slot_index(slots, pipeline, chunk)?;
		let slot = slots.get_mut(index).ok_or(Error::<T>::UnknownSlot)?;
		ensure!(&slot.expert == who, Error::<T>::NotYourSlot);
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
