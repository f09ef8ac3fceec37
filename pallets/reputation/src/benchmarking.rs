//! Benchmarks of the reputation pallet's calls and of its per-block work (combining a
//! closed round's ratings), each in its most expensive case.

use super::*;
use alloc::vec;
use polkadot_sdk::{
	frame_benchmarking::v2::*,
	frame_support::traits::{fungible::Mutate, Hooks},
	frame_system::{Pallet as System, RawOrigin},
	sp_runtime::traits::Bounded,
};

fn funded<T: Config>(name: &'static str, index: u32) -> T::AccountId {
	let who: T::AccountId = account(name, index, 0);
	T::Currency::set_balance(&who, BalanceOf::<T>::max_value() / 1024u32.into());
	who
}

fn rater<T: Config>(index: u32) -> T::AccountId {
	let who = funded::<T>("rater", index);
	Pallet::<T>::bond_rater(RawOrigin::Signed(who.clone()).into(), T::MinRaterBond::get())
		.expect("a funded account bonds");
	who
}

fn expert<T: Config>(index: u32) -> T::AccountId {
	let who = funded::<T>("expert", index);
	T::BenchmarkHelper::make_expert(&who);
	who
}

/// The longest domain tag.
fn long_domain() -> Domain {
	Domain::truncate_from(vec![b'd'; dllm_primitives::market::MAX_DOMAIN_LEN as usize])
}

/// Every expert already has an overall and a domain record, so the benchmark decays and
/// rewrites existing records.
fn with_records<T: Config>(experts: &[T::AccountId], domain: &Domain) {
	for expert in experts {
		Pallet::<T>::observe(
			expert,
			Some(domain),
			Evidence { positive: 1, negative: 1, verified: true },
			Cause::Task(TaskOutcome::Verified),
		);
	}
}

#[benchmarks]
mod benchmarks {
	use super::*;

	/// A requester rates a task whose accepted work came from `m` miners, in a domain.
	#[benchmark]
	fn rate_task(m: Linear<1, { T::MaxRatedMiners::get() }>) {
		let requester = funded::<T>("requester", 0);
		let miners: Vec<T::AccountId> = (0..m).map(expert::<T>).collect();
		let domain = long_domain();
		with_records::<T>(&miners, &domain);
		let task = T::BenchmarkHelper::completed_task(&requester, Some(domain), &miners);
		// Records are a decay period old.
		System::<T>::set_block_number(T::Params::get().decay_period.into());

		#[extrinsic_call]
		_(RawOrigin::Signed(requester), task, 4);

		assert_eq!(TaskRatings::<T>::get(task), Some(4));
	}

	/// A new rater joins.
	#[benchmark]
	fn bond_rater() {
		for index in 1..T::MaxRaters::get() {
			rater::<T>(index);
		}
		let who = funded::<T>("rater", 0);

		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), T::MinRaterBond::get());

		assert!(Raters::<T>::contains_key(&who));
	}

	#[benchmark]
	fn unbond_rater() {
		let who = rater::<T>(0);

		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()));

		assert!(!Raters::<T>::contains_key(&who));
	}

	/// The first rating of a subject in a round whose subject list is nearly full (the
	/// list is read and written).
	#[benchmark]
	fn rate_expert_new_subject() {
		let who = rater::<T>(0);
		let target = expert::<T>(0);
		let round = Pallet::<T>::current_round();
		let others: Vec<RatingSubject<T::AccountId>> = (1..T::MaxSubjectsPerRound::get())
			.map(|index| RatingSubject {
				expert: account("expert", index, 0),
				domain: Some(long_domain()),
			})
			.collect();
		for subject in others.iter() {
			RoundRatings::<T>::insert(
				round,
				subject,
				BoundedVec::truncate_from(vec![(who.clone(), Perbill::one())]),
			);
		}
		RoundSubjects::<T>::insert(round, BoundedVec::truncate_from(others));
		OpenRounds::<T>::put(BoundedVec::truncate_from(vec![round]));

		#[extrinsic_call]
		rate_expert(
			RawOrigin::Signed(who),
			target.clone(),
			Some(long_domain()),
			Perbill::from_percent(70),
		);

		let subject = RatingSubject { expert: target, domain: Some(long_domain()) };
		assert_eq!(RoundRatings::<T>::get(round, subject).len(), 1);
	}

	/// A rating of a subject that all other raters rated already this round (the
	/// ratings are scanned and written).
	#[benchmark]
	fn rate_expert_rated_subject() {
		let raters: Vec<T::AccountId> = (0..T::MaxRaters::get()).map(rater::<T>).collect();
		let target = expert::<T>(0);
		for other in raters.iter().skip(1) {
			Pallet::<T>::rate_expert(
				RawOrigin::Signed(other.clone()).into(),
				target.clone(),
				Some(long_domain()),
				Perbill::from_percent(50),
			)
			.expect("a rater rates an expert");
		}
		let who = raters[0].clone();

		#[extrinsic_call]
		rate_expert(
			RawOrigin::Signed(who),
			target.clone(),
			Some(long_domain()),
			Perbill::from_percent(70),
		);

		let subject = RatingSubject { expert: target, domain: Some(long_domain()) };
		let round = Pallet::<T>::current_round();
		assert_eq!(RoundRatings::<T>::get(round, subject).len() as u32, T::MaxRaters::get());
	}

	/// The block after a round ends: `s` subjects (each rated by every rater, in a
	/// domain, with existing records) are combined; `s = 0` is a block with nothing to
	/// combine.
	#[benchmark]
	fn combine_ratings(s: Linear<0, { T::MaxAggregationsPerBlock::get() }>) {
		let raters: Vec<T::AccountId> = (0..T::MaxRaters::get()).map(rater::<T>).collect();
		let experts: Vec<T::AccountId> = (0..s).map(expert::<T>).collect();
		with_records::<T>(&experts, &long_domain());
		for target in experts.iter() {
			for (index, who) in raters.iter().enumerate() {
				Pallet::<T>::rate_expert(
					RawOrigin::Signed(who.clone()).into(),
					target.clone(),
					Some(long_domain()),
					Perbill::from_percent(10 + index as u32 % 90),
				)
				.expect("a rater rates an expert");
			}
		}
		let round = Pallet::<T>::current_round();
		let next_round = round.saturating_add(1).saturating_mul(T::RatingPeriod::get());
		System::<T>::set_block_number(next_round.into());

		#[block]
		{
			Pallet::<T>::on_initialize(next_round.into());
		}

		assert!(RoundSubjects::<T>::get(round).is_empty());
	}

	impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}
