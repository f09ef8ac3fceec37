//! # Reputation
//!
//! What the chain knows about how good each expert is, overall and per domain, and how
//! that keeps bad experts out of the task pallet's auctions (LLM-Net's reputation
//! mechanism).
//!
//! A score is the mean of a beta distribution whose evidence decays toward the prior
//! (the arithmetic is in [`score`], shared with the `reputation-sim` simulation):
//!
//! - the task pallet reports every miner's outcome through [`ExpertQuality::report`]: a
//!   verified completion is good evidence, a missed deadline bad, being outvoted (on
//!   the losing side of a disagreement) four times as bad;
//! - a task's requester rates its completed task once, 1–5 stars (`rate_task`), which
//!   counts for every miner whose work was accepted;
//! - raters (validators who bond stake here) rate experts' quality (`rate_expert`); at
//!   the end of each rating round the ratings of an expert are combined as Yuma
//!   consensus does: the stake-weighted median, with every rating above it clipped to
//!   it, then the stake-weighted mean; bonded stake that did not rate the expert counts
//!   as rating it at its current score. Raters holding less than half of the bonded
//!   stake cannot raise a score.
//!
//! New experts start at the prior mean on probation (their quality capped at the prior,
//! a stricter threshold) until some of their work is verified. Below the threshold an
//! expert gets no work; as its bad evidence decays it comes back.

#![cfg_attr(not(feature = "std"), no_std)]
// Runtime code must not panic or overflow: no `unwrap`, no unchecked indexing or
// arithmetic outside the tests (checked by clippy in CI).
#![cfg_attr(
	not(test),
	deny(clippy::arithmetic_side_effects, clippy::indexing_slicing, clippy::unwrap_used)
)]

extern crate alloc;

pub use pallet::*;

#[cfg(feature = "runtime-benchmarks")]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing, clippy::unwrap_used)]
mod benchmarking;
#[cfg(test)]
mod mock;
pub mod score;
#[cfg(test)]
mod tests;
pub mod weights;

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
pub use dllm_primitives::market::{
	CompletedTask, Domain, ExpertQuality, TaskId, TaskLedger, TaskLookupError, TaskOutcome,
};
use polkadot_sdk::{
	frame_support::{
		pallet_prelude::*,
		traits::{
			fungible::{Inspect, Mutate, MutateHold},
			tokens::Precision,
			Contains,
		},
	},
	frame_system::pallet_prelude::BlockNumberFor,
	sp_runtime::{
		traits::{Saturating, Zero},
		Perbill, SaturatedConversion,
	},
};
use scale_info::TypeInfo;
pub use score::{Evidence, Reputation, ScoreParams};
pub use weights::WeightInfo;

/// Amounts in the staking currency.
pub type BalanceOf<T> = <<T as Config>::Currency as Inspect<
	<T as polkadot_sdk::frame_system::Config>::AccountId,
>>::Balance;

/// Index of a rating round (`block / RatingPeriod`).
pub type RoundIndex = u32;

/// What raters rate: an expert, overall or in one domain.
#[derive(
	Clone, PartialEq, Eq, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, Debug,
)]
pub struct RatingSubject<AccountId> {
	/// The expert.
	pub expert: AccountId,
	/// The domain, or `None` for its overall quality.
	pub domain: Option<Domain>,
}

/// Why a reputation changed.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
)]
pub enum Cause {
	/// The task pallet reported an outcome.
	Task(TaskOutcome),
	/// The requester of a task the expert worked on rated it (stars).
	RequesterRating(u8),
	/// A rating round closed with this consensus quality.
	ValidatorConsensus(Perbill),
}

/// Helpers the runtime provides for this pallet's benchmarks.
#[cfg(feature = "runtime-benchmarks")]
pub trait BenchmarkHelper<AccountId> {
	/// Makes `who` a registered expert.
	fn make_expert(who: &AccountId);
	/// Records a completed task of `requester` in `domain` whose accepted work came from
	/// `miners`, with its result still on chain.
	fn completed_task(
		requester: &AccountId,
		domain: Option<Domain>,
		miners: &[AccountId],
	) -> TaskId;
}

#[polkadot_sdk::frame_support::pallet]
pub mod pallet {
	use super::*;
	use polkadot_sdk::frame_system::pallet_prelude::*;

	/// The layout of this pallet's storage. 0: as first released; a change of layout
	/// raises it, with a versioned migration in the runtime's `Migrations`.
	pub const STORAGE_VERSION: StorageVersion = StorageVersion::new(0);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	/// Why this pallet holds funds.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// A rater's stake: the weight of its ratings.
		RaterBond,
	}

	#[pallet::config]
	pub trait Config: polkadot_sdk::frame_system::Config<RuntimeEvent: From<Event<Self>>> {
		/// The staking currency (DLLM).
		type Currency: Mutate<Self::AccountId>
			+ MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;
		/// The runtime's hold reasons.
		type RuntimeHoldReason: From<HoldReason>;
		/// Registered experts (the ones raters may rate).
		type Experts: Contains<Self::AccountId>;
		/// Completed tasks, for requesters' ratings.
		type Tasks: TaskLedger<Self::AccountId>;
		/// The reputation arithmetic's constants.
		#[pallet::constant]
		type Params: Get<ScoreParams>;
		/// Blocks per rating round; raters' ratings are combined when a round ends.
		#[pallet::constant]
		type RatingPeriod: Get<u32>;
		/// Least stake a rater bonds.
		#[pallet::constant]
		type MinRaterBond: Get<BalanceOf<Self>>;
		/// Most raters at once (and ratings of one subject per round).
		#[pallet::constant]
		type MaxRaters: Get<u32>;
		/// Most subjects (expert, domain) rated in one round.
		#[pallet::constant]
		type MaxSubjectsPerRound: Get<u32>;
		/// Most subjects whose ratings are combined per block.
		#[pallet::constant]
		type MaxAggregationsPerBlock: Get<u32>;
		/// Most miners whose work one task's result contains (the task pallet's slots).
		#[pallet::constant]
		type MaxRatedMiners: Get<u32>;
		/// Weights of this pallet's calls and hooks.
		type WeightInfo: WeightInfo;
		/// Sets up experts and tasks for the benchmarks.
		#[cfg(feature = "runtime-benchmarks")]
		type BenchmarkHelper: BenchmarkHelper<Self::AccountId>;
	}

	/// Rounds with ratings not yet combined, oldest first (a short backlog: rounds are
	/// combined within a few blocks of their end).
	pub type MaxOpenRounds = ConstU32<4>;

	/// Experts' overall reputations.
	#[pallet::storage]
	pub type Scores<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, Reputation>;

	/// Experts' reputations per domain (from tasks and ratings in that domain).
	#[pallet::storage]
	pub type DomainScores<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Blake2_128Concat, Domain, Reputation>;

	/// Stars given to rated tasks (each task is rated once).
	#[pallet::storage]
	pub type TaskRatings<T: Config> = StorageMap<_, Twox64Concat, TaskId, u8>;

	/// Raters and their bonded stake (held as `RaterBond`).
	#[pallet::storage]
	pub type Raters<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, BalanceOf<T>>;

	/// Number of raters.
	#[pallet::storage]
	pub type RaterCount<T: Config> = StorageValue<_, u32, ValueQuery>;

	/// Sum of the raters' bonds.
	#[pallet::storage]
	pub type TotalRaterStake<T: Config> = StorageValue<_, BalanceOf<T>, ValueQuery>;

	/// Ratings of a round: (round, subject) → (rater, quality).
	#[pallet::storage]
	pub type RoundRatings<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		RoundIndex,
		Blake2_128Concat,
		RatingSubject<T::AccountId>,
		BoundedVec<(T::AccountId, Perbill), T::MaxRaters>,
		ValueQuery,
	>;

	/// Subjects rated in a round and not yet combined.
	#[pallet::storage]
	pub type RoundSubjects<T: Config> = StorageMap<
		_,
		Twox64Concat,
		RoundIndex,
		BoundedVec<RatingSubject<T::AccountId>, T::MaxSubjectsPerRound>,
		ValueQuery,
	>;

	/// Rounds with ratings not yet combined, oldest first.
	#[pallet::storage]
	pub type OpenRounds<T: Config> =
		StorageValue<_, BoundedVec<RoundIndex, MaxOpenRounds>, ValueQuery>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// An expert's reputation changed; `score` is the overall score after it,
		/// `domain_score` the score in `domain` when there is one.
		ReputationUpdated {
			expert: T::AccountId,
			domain: Option<Domain>,
			cause: Cause,
			score: Perbill,
			domain_score: Option<Perbill>,
		},
		/// A requester rated its task.
		TaskRated { task: TaskId, requester: T::AccountId, stars: u8 },
		/// An account bonded stake as a rater (`total`: its bond now).
		RaterBonded { rater: T::AccountId, amount: BalanceOf<T>, total: BalanceOf<T> },
		/// A rater left; its bond is released.
		RaterUnbonded { rater: T::AccountId, amount: BalanceOf<T> },
		/// A rater rated an expert for the current round.
		ExpertRated {
			rater: T::AccountId,
			round: RoundIndex,
			expert: T::AccountId,
			domain: Option<Domain>,
			quality: Perbill,
		},
		/// A round's ratings of a subject were dropped: none of its raters is still bonded.
		RatingsDropped { round: RoundIndex, expert: T::AccountId, domain: Option<Domain> },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// Stars must be 1 to 5.
		InvalidStars,
		/// The task was rated already.
		AlreadyRated,
		/// No such task.
		UnknownTask,
		/// The task has not completed (open, disputed or expired).
		TaskNotCompleted,
		/// The task's result was removed after its retention; it can no longer be rated.
		ResultPruned,
		/// Only the task's requester rates it.
		NotRequester,
		/// A new rater bonds at least `MinRaterBond`.
		BondTooSmall,
		/// Nothing to bond.
		ZeroAmount,
		/// The rater set is full.
		TooManyRaters,
		/// The caller is not a rater.
		NotRater,
		/// The account is not a registered expert.
		NotAnExpert,
		/// The free balance cannot cover the bond.
		InsufficientBalance,
		/// This round has all the subjects it can take; rate in the next round.
		RoundFull,
		/// This subject has all the ratings a round can take.
		TooManyRatings,
		/// Earlier rounds are still being combined; rate again in a few blocks.
		RoundsBacklogged,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn on_initialize(now: BlockNumberFor<T>) -> Weight {
			Self::combine_closed_rounds(now)
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(
			_: BlockNumberFor<T>,
		) -> Result<(), polkadot_sdk::sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}

		fn integrity_test() {
			let params = T::Params::get();
			assert!(params.decay_period > 0, "a decay period has blocks");
			assert!(
				params.prior_positive > 0 && params.prior_negative > 0,
				"the prior has evidence both ways (scores stay strictly between 0 and 1)"
			);
			assert!(
				params.probation_threshold <= params.prior_mean()
					&& params.exclusion_threshold <= params.prior_mean(),
				"a new expert must be eligible"
			);
			assert!(T::RatingPeriod::get() > 0, "a rating round has blocks");
			assert!(T::MaxAggregationsPerBlock::get() > 0, "rounds must get combined");
			assert!(T::MaxRaters::get() > 0 && T::MaxSubjectsPerRound::get() > 0);
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Rates a completed task (1–5 stars); only its requester, once, while its result
		/// is on chain. Every miner whose work was accepted gets the rating as evidence,
		/// overall and in the task's domain.
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::rate_task(T::MaxRatedMiners::get()))]
		pub fn rate_task(
			origin: OriginFor<T>,
			task: TaskId,
			stars: u8,
		) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			ensure!((1..=5).contains(&stars), Error::<T>::InvalidStars);
			ensure!(!TaskRatings::<T>::contains_key(task), Error::<T>::AlreadyRated);
			let completed = T::Tasks::completed_task(task).map_err(|error| match error {
				TaskLookupError::Unknown => Error::<T>::UnknownTask,
				TaskLookupError::NotCompleted => Error::<T>::TaskNotCompleted,
				TaskLookupError::Pruned => Error::<T>::ResultPruned,
			})?;
			ensure!(completed.requester == who, Error::<T>::NotRequester);
			TaskRatings::<T>::insert(task, stars);
			let evidence = T::Params::get().stars_evidence(stars);
			let miners = completed.miners.len() as u32;
			for miner in completed.miners.iter() {
				Self::observe(
					miner,
					completed.domain.as_ref(),
					evidence,
					Cause::RequesterRating(stars),
				);
			}
			Self::deposit_event(Event::TaskRated { task, requester: who, stars });
			Ok(Some(T::WeightInfo::rate_task(miners.min(T::MaxRatedMiners::get()))).into())
		}

		/// Bonds `amount` more as a rater; a new rater bonds at least `MinRaterBond`. A
		/// rating counts with the rater's bond when its round is combined.
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::bond_rater())]
		pub fn bond_rater(origin: OriginFor<T>, amount: BalanceOf<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(!amount.is_zero(), Error::<T>::ZeroAmount);
			let current = Raters::<T>::get(&who);
			if current.is_none() {
				ensure!(amount >= T::MinRaterBond::get(), Error::<T>::BondTooSmall);
				ensure!(RaterCount::<T>::get() < T::MaxRaters::get(), Error::<T>::TooManyRaters);
			}
			T::Currency::hold(&HoldReason::RaterBond.into(), &who, amount)
				.map_err(|_| Error::<T>::InsufficientBalance)?;
			let total = current.unwrap_or_default().saturating_add(amount);
			Raters::<T>::insert(&who, total);
			TotalRaterStake::<T>::mutate(|stake| stake.saturating_accrue(amount));
			if current.is_none() {
				RaterCount::<T>::mutate(|count| count.saturating_inc());
			}
			Self::deposit_event(Event::RaterBonded { rater: who, amount, total });
			Ok(())
		}

		/// Leaves the raters; the whole bond is released now. Ratings of rounds not yet
		/// combined no longer count.
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::unbond_rater())]
		pub fn unbond_rater(origin: OriginFor<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let bond = Raters::<T>::take(&who).ok_or(Error::<T>::NotRater)?;
			RaterCount::<T>::mutate(|count| count.saturating_dec());
			TotalRaterStake::<T>::mutate(|stake| stake.saturating_reduce(bond));
			let released = T::Currency::release(
				&HoldReason::RaterBond.into(),
				&who,
				bond,
				Precision::BestEffort,
			)
			.unwrap_or_default();
			Self::deposit_event(Event::RaterUnbonded { rater: who, amount: released });
			Ok(())
		}

		/// Rates an expert's quality (overall, or in `domain`) for the current round; a
		/// second rating of the same subject in a round replaces the first.
		#[pallet::call_index(3)]
		#[pallet::weight(
			T::WeightInfo::rate_expert_new_subject()
				.max(T::WeightInfo::rate_expert_rated_subject())
		)]
		pub fn rate_expert(
			origin: OriginFor<T>,
			expert: T::AccountId,
			domain: Option<Domain>,
			quality: Perbill,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(Raters::<T>::contains_key(&who), Error::<T>::NotRater);
			ensure!(T::Experts::contains(&expert), Error::<T>::NotAnExpert);
			let round = Self::current_round();
			let subject = RatingSubject { expert: expert.clone(), domain: domain.clone() };
			let mut ratings = RoundRatings::<T>::get(round, &subject);
			if ratings.is_empty() {
				let mut subjects = RoundSubjects::<T>::get(round);
				if subjects.is_empty() {
					let mut open = OpenRounds::<T>::get();
					open.try_push(round).map_err(|_| Error::<T>::RoundsBacklogged)?;
					OpenRounds::<T>::put(open);
				}
				subjects.try_push(subject.clone()).map_err(|_| Error::<T>::RoundFull)?;
				RoundSubjects::<T>::insert(round, subjects);
			}
			match ratings.iter_mut().find(|(rater, _)| *rater == who) {
				Some(rating) => rating.1 = quality,
				None => ratings
					.try_push((who.clone(), quality))
					.map_err(|_| Error::<T>::TooManyRatings)?,
			}
			RoundRatings::<T>::insert(round, &subject, ratings);
			Self::deposit_event(Event::ExpertRated { rater: who, round, expert, domain, quality });
			Ok(())
		}
	}

	impl<T: Config> Pallet<T> {
		/// The decay period of the current block.
		pub fn current_period() -> u32 {
			let now: u32 = polkadot_sdk::frame_system::Pallet::<T>::block_number().saturated_into();
			T::Params::get().period_of(now)
		}

		/// The rating round of the current block.
		pub fn current_round() -> RoundIndex {
			let now: u32 = polkadot_sdk::frame_system::Pallet::<T>::block_number().saturated_into();
			now.checked_div(T::RatingPeriod::get()).unwrap_or(0)
		}

		/// An expert's overall reputation decayed to now (the prior for an unknown one).
		pub fn reputation(expert: &T::AccountId) -> Reputation {
			let period = Self::current_period();
			Scores::<T>::get(expert)
				.unwrap_or_else(|| Reputation::new(period))
				.decayed(period, &T::Params::get())
		}

		/// An expert's overall score now.
		pub fn score(expert: &T::AccountId) -> Perbill {
			Self::reputation(expert).score(&T::Params::get())
		}

		/// Adds evidence to an expert's overall record and, with a domain, to its record
		/// in that domain.
		pub(crate) fn observe(
			expert: &T::AccountId,
			domain: Option<&Domain>,
			evidence: Evidence,
			cause: Cause,
		) {
			let params = T::Params::get();
			let period = Self::current_period();
			let update = |record: Option<Reputation>| {
				record.unwrap_or_else(|| Reputation::new(period)).updated(period, &params, evidence)
			};
			let overall = update(Scores::<T>::get(expert));
			Scores::<T>::insert(expert, overall);
			let domain_score = domain.map(|domain| {
				let record = update(DomainScores::<T>::get(expert, domain));
				DomainScores::<T>::insert(expert, domain, record);
				record.score(&params)
			});
			Self::deposit_event(Event::ReputationUpdated {
				expert: expert.clone(),
				domain: domain.cloned(),
				cause,
				score: overall.score(&params),
				domain_score,
			});
		}

		/// Combines the ratings of rounds that have ended, at most
		/// `MaxAggregationsPerBlock` subjects per block, oldest round first.
		fn combine_closed_rounds(now: BlockNumberFor<T>) -> Weight {
			let now: u32 = now.saturated_into();
			let current = now.checked_div(T::RatingPeriod::get()).unwrap_or(0);
			let mut open = OpenRounds::<T>::get();
			// Most blocks: nothing to combine, one read.
			let Some(&round) = open.first() else {
				return T::DbWeight::get().reads(1);
			};
			if round >= current {
				return T::DbWeight::get().reads(1);
			}
			let mut subjects = RoundSubjects::<T>::get(round);
			let budget = T::MaxAggregationsPerBlock::get() as usize;
			let take = subjects.len().min(budget);
			let batch: Vec<RatingSubject<T::AccountId>> =
				subjects.drain(subjects.len().saturating_sub(take)..).collect();
			for subject in batch.iter() {
				Self::combine(round, subject);
			}
			if subjects.is_empty() {
				RoundSubjects::<T>::remove(round);
				open.remove(0);
				OpenRounds::<T>::put(open);
			} else {
				RoundSubjects::<T>::insert(round, subjects);
			}
			T::WeightInfo::combine_ratings(take as u32)
		}

		/// Combines one subject's ratings of a round into evidence (Yuma-style consensus,
		/// weighted by the raters' bonds now).
		fn combine(round: RoundIndex, subject: &RatingSubject<T::AccountId>) {
			let ratings = RoundRatings::<T>::take(round, subject);
			let weighted: Vec<(u128, Perbill)> = ratings
				.iter()
				.map(|(rater, quality)| {
					let stake: u128 = Raters::<T>::get(rater).unwrap_or_default().saturated_into();
					(stake, *quality)
				})
				.collect();
			let params = T::Params::get();
			let period = Self::current_period();
			let record = match &subject.domain {
				Some(domain) => DomainScores::<T>::get(&subject.expert, domain),
				None => Scores::<T>::get(&subject.expert),
			};
			let status_quo = record
				.unwrap_or_else(|| Reputation::new(period))
				.decayed(period, &params)
				.score(&params);
			let total: u128 = TotalRaterStake::<T>::get().saturated_into();
			match score::round_consensus(&weighted, total, status_quo) {
				Some(consensus) => {
					Self::observe(
						&subject.expert,
						subject.domain.as_ref(),
						params.consensus_evidence(consensus),
						Cause::ValidatorConsensus(consensus),
					);
				}
				None => Self::deposit_event(Event::RatingsDropped {
					round,
					expert: subject.expert.clone(),
					domain: subject.domain.clone(),
				}),
			}
		}

		/// Checks the pallet's invariants: every rater's bond is what is held from it,
		/// the rater count matches, and every open round has subjects with ratings.
		/// Also run by the runtime's tests on its genesis state.
		pub fn do_try_state() -> Result<(), polkadot_sdk::sp_runtime::TryRuntimeError> {
			use polkadot_sdk::frame_support::traits::fungible::InspectHold;
			let mut raters = 0u32;
			let mut stake = BalanceOf::<T>::zero();
			for (rater, bond) in Raters::<T>::iter() {
				raters.saturating_inc();
				stake.saturating_accrue(bond);
				ensure!(
					T::Currency::balance_on_hold(&HoldReason::RaterBond.into(), &rater) == bond,
					"a rater's bond differs from what is held"
				);
				ensure!(!bond.is_zero(), "a rater has no bond");
			}
			ensure!(raters == RaterCount::<T>::get(), "rater count differs from the raters");
			ensure!(
				stake == TotalRaterStake::<T>::get(),
				"total rater stake differs from the bonds"
			);
			ensure!(raters <= T::MaxRaters::get(), "more raters than allowed");
			let open = OpenRounds::<T>::get();
			ensure!(
				open.windows(2).all(|pair| matches!(pair, [a, b] if a < b)),
				"open rounds out of order"
			);
			for round in open.iter() {
				let subjects = RoundSubjects::<T>::get(round);
				ensure!(!subjects.is_empty(), "an open round has no subjects");
				for subject in subjects.iter() {
					ensure!(
						!RoundRatings::<T>::get(round, subject).is_empty(),
						"a rated subject has no ratings"
					);
				}
			}
			for (round, _) in RoundSubjects::<T>::iter() {
				ensure!(open.contains(&round), "subjects of a round that is not open");
			}
			Ok(())
		}
	}
}

impl<T: Config> ExpertQuality<T::AccountId> for Pallet<T> {
	fn quality(expert: &T::AccountId, domain: Option<&Domain>) -> Option<Perbill> {
		let params = T::Params::get();
		let overall = Scores::<T>::get(expert);
		let in_domain = domain.and_then(|domain| DomainScores::<T>::get(expert, domain));
		score::auction_quality(
			overall.as_ref(),
			in_domain.as_ref(),
			Self::current_period(),
			&params,
		)
	}

	fn report(expert: &T::AccountId, domain: Option<&Domain>, outcome: TaskOutcome) {
		let evidence = T::Params::get().outcome_evidence(outcome);
		Self::observe(expert, domain, evidence, Cause::Task(outcome));
	}
}
