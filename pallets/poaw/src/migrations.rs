//! Storage migrations of the task pallet.

/// Version 2: a task records how many generators it has, a dispute which generator
/// (pair) it is about and where its referee pipelines start. Every task stored before
/// had one generator, and its dispute (if any) was about it, with referees from
/// pipeline 2.
pub mod v2 {
	use crate::*;
	use alloc::vec::Vec;
	use polkadot_sdk::frame_support::{
		migrations::VersionedMigration, traits::UncheckedOnRuntimeUpgrade,
	};

	/// A dispute as version 1 stored it.
	#[derive(Encode, Decode, Clone, Copy)]
	pub struct DisputeV1 {
		/// The disputed chunk.
		pub chunk: ChunkIndex,
		/// Whether the sampling was disputed.
		pub sampling: bool,
		/// Referee rounds opened so far.
		pub rounds: u8,
	}

	/// A task as version 1 stored it.
	#[derive(Encode, Decode, Clone)]
	pub struct TaskInfoV1<AccountId, Balance, BlockNumber> {
		/// Who asked and pays.
		pub requester: AccountId,
		/// The model.
		pub model: ModelId,
		/// The domain.
		pub domain: Option<Domain>,
		/// Blake2-256 of the prompt.
		pub prompt_hash: H256,
		/// Prompt length in bytes.
		pub prompt_bytes: u32,
		/// Most tokens to generate.
		pub max_tokens: u32,
		/// Sampling parameters.
		pub sampling: SamplingParams,
		/// The escrow.
		pub escrow: Balance,
		/// Where it stands.
		pub status: TaskStatus,
		/// Block of submission.
		pub submitted_at: BlockNumber,
		/// End of the current stage.
		pub deadline: BlockNumber,
		/// The price cap.
		pub price_cap: Balance,
		/// Number of pipelines.
		pub pipelines: u8,
		/// Replacements made so far.
		pub reassignments: u32,
		/// How the work is checked.
		pub mode: VerificationMode,
		/// The dispute.
		pub dispute: Option<DisputeV1>,
		/// Tie-break seed.
		pub tie_seed: H256,
		/// Set when the task is finished.
		pub settlement: Option<Settlement<Balance>>,
	}

	impl<AccountId, Balance, BlockNumber> From<TaskInfoV1<AccountId, Balance, BlockNumber>>
		for TaskInfo<AccountId, Balance, BlockNumber>
	{
		fn from(old: TaskInfoV1<AccountId, Balance, BlockNumber>) -> Self {
			TaskInfo {
				requester: old.requester,
				model: old.model,
				domain: old.domain,
				prompt_hash: old.prompt_hash,
				prompt_bytes: old.prompt_bytes,
				max_tokens: old.max_tokens,
				sampling: old.sampling,
				escrow: old.escrow,
				status: old.status,
				submitted_at: old.submitted_at,
				deadline: old.deadline,
				price_cap: old.price_cap,
				pipelines: old.pipelines,
				generators: 1,
				reassignments: old.reassignments,
				mode: old.mode,
				dispute: old.dispute.map(|d| Dispute {
					chunk: d.chunk,
					sampling: d.sampling,
					rounds: d.rounds,
					pair: 0,
					first_referee: 2,
				}),
				tie_seed: old.tie_seed,
				settlement: old.settlement,
			}
		}
	}

	/// A version 1 task record of runtime `T`.
	pub type TaskOfV1<T> = TaskInfoV1<
		<T as polkadot_sdk::frame_system::Config>::AccountId,
		BalanceOf<T>,
		BlockNumberFor<T>,
	>;

	/// Rewrites every task record (finished ones stay on chain, so this is one read and
	/// one write per task ever submitted: fine for the chains that exist, which are
	/// young; a long-lived chain would want it as a multi-block migration). A record that
	/// does not decode as version 1 is dropped by `translate`, which logs it; the
	/// `try-runtime` checks fail then.
	pub struct InnerMigrateV1ToV2<T>(core::marker::PhantomData<T>);

	impl<T: Config> UncheckedOnRuntimeUpgrade for InnerMigrateV1ToV2<T> {
		fn on_runtime_upgrade() -> Weight {
			let mut translated = 0u64;
			let mut refereed: Vec<(TaskId, DisputeV1)> = Vec::new();
			Tasks::<T>::translate::<TaskOfV1<T>, _>(|id, old| {
				translated.saturating_inc();
				if let Some(dispute) = old.dispute.filter(|_| old.status.has_duties()) {
					refereed.push((id, dispute));
				}
				Some(old.into())
			});
			// A dispute under way settles through its pair's result: its one generator
			// disagreed at the disputed chunk.
			for (task, dispute) in refereed.iter() {
				let disagreed =
					PairResult::Disagreed { chunk: dispute.chunk, sampling: dispute.sampling };
				PairResults::<T>::insert(task, BoundedVec::truncate_from(alloc::vec![disagreed]));
			}
			let seeded = refereed.len() as u64;
			T::DbWeight::get()
				.reads_writes(translated.saturating_add(1), translated.saturating_add(seeded))
		}

		#[cfg(feature = "try-runtime")]
		fn pre_upgrade() -> Result<Vec<u8>, polkadot_sdk::sp_runtime::TryRuntimeError> {
			let count = Tasks::<T>::iter_keys().count() as u64;
			Ok(count.encode())
		}

		#[cfg(feature = "try-runtime")]
		fn post_upgrade(state: Vec<u8>) -> Result<(), polkadot_sdk::sp_runtime::TryRuntimeError> {
			let before = u64::decode(&mut state.as_slice()).map_err(|_| "pre-upgrade count")?;
			let mut after = 0u64;
			for task in Tasks::<T>::iter_values() {
				ensure!(task.generators == 1, "a migrated task with other than one generator");
				after.saturating_inc();
			}
			ensure!(before == after, "tasks lost in the migration");
			Ok(())
		}
	}

	/// The migration from version 1 to 2, run only while the stored version is 1.
	pub type MigrateV1ToV2<T> = VersionedMigration<
		1,
		2,
		InnerMigrateV1ToV2<T>,
		Pallet<T>,
		<T as polkadot_sdk::frame_system::Config>::DbWeight,
	>;
}
