//! Benchmarks of the experts pallet's calls, each in its most expensive case.

use super::*;
use polkadot_sdk::{
	frame_benchmarking::v2::*,
	frame_support::traits::fungible::Mutate,
	frame_system::{Pallet as System, RawOrigin},
};

/// An account funded well beyond any bond the benchmarks hold.
fn funded<T: Config>(name: &'static str, index: u32) -> T::AccountId {
	let who: T::AccountId = account(name, index, 0);
	let amount = T::MinExpertBond::get()
		.saturating_add(T::MinDelegation::get())
		.saturating_add(T::ExpertDeposit::get())
		.saturating_add(T::ChunkDeposit::get().saturating_mul(T::MaxChunksServed::get().into()))
		.saturating_mul(100u32.into());
	T::Currency::set_balance(&who, amount);
	who
}

/// The longest arguments `register_expert` and `update_profile` accept.
fn profile_args<T: Config>() -> (Vec<Vec<u8>>, Vec<u8>) {
	let domains = (0..T::MaxDomains::get())
		.map(|i| {
			let mut tag = alloc::vec![b'd'; dllm_primitives::market::MAX_DOMAIN_LEN as usize - 4];
			tag.extend_from_slice(&i.to_le_bytes());
			tag
		})
		.collect();
	(domains, alloc::vec![7u8; T::MaxPeerIdLength::get() as usize])
}

fn expert<T: Config>(index: u32) -> T::AccountId {
	let who = funded::<T>("expert", index);
	let (domains, peer_id) = profile_args::<T>();
	let profile = Pallet::<T>::profile(domains, peer_id, 1u32.into(), 4, T::MaxCommission::get())
		.expect("benchmark profile is valid");
	Pallet::<T>::do_register(&who, T::MinExpertBond::get(), profile).expect("expert registers");
	who
}

/// `expert` serves `chunks` chunks of a fresh model.
fn serve<T: Config>(expert: &T::AccountId, chunks: u32) -> ModelId {
	let model = T::Models::register_for_benchmark(chunks.max(1));
	for chunk in 0..chunks {
		let hash = T::Models::chunk_weights_hash(model, chunk).expect("chunk exists");
		Pallet::<T>::do_serve_chunk(expert, model, chunk, hash, NumericFormat::F32)
			.expect("expert serves");
	}
	model
}

/// `who`, funded here, registered with the widest capacity, `MaxDelegatorsPerExpert`
/// delegators (so that paying or slashing it costs the most) and serving `chunk` of
/// `model` at `price` (or just adding the chunk when already registered): the task
/// pallet's benchmarks build their auctions from this.
pub(crate) fn register_for_benchmark<T: Config>(
	who: &T::AccountId,
	model: ModelId,
	chunk: ChunkIndex,
	price: BalanceOf<T>,
) {
	if !Experts::<T>::contains_key(who) {
		let amount = T::MinExpertBond::get()
			.saturating_add(T::ExpertDeposit::get())
			.saturating_add(T::ChunkDeposit::get().saturating_mul(T::MaxChunksServed::get().into()))
			.saturating_mul(100u32.into());
		T::Currency::set_balance(who, amount);
		let (domains, peer_id) = profile_args::<T>();
		let profile = Pallet::<T>::profile(domains, peer_id, price, u32::MAX, Perbill::zero())
			.expect("benchmark profile is valid");
		Pallet::<T>::do_register(who, T::MinExpertBond::get(), profile).expect("expert registers");
		delegators::<T>(who, T::MaxDelegatorsPerExpert::get());
	}
	let hash = T::Models::chunk_weights_hash(model, chunk).expect("chunk exists");
	Pallet::<T>::do_serve_chunk(who, model, chunk, hash, NumericFormat::F32)
		.expect("expert serves");
}

/// `count` delegators of `expert`.
fn delegators<T: Config>(expert: &T::AccountId, count: u32) -> Vec<T::AccountId> {
	(0..count)
		.map(|i| {
			let who = funded::<T>("delegator", i);
			Pallet::<T>::delegate(
				RawOrigin::Signed(who.clone()).into(),
				expert.clone(),
				T::MinDelegation::get(),
			)
			.expect("delegation works");
			who
		})
		.collect()
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn register_expert() {
		let who = funded::<T>("expert", 0);
		let (domains, peer_id) = profile_args::<T>();
		#[extrinsic_call]
		_(
			RawOrigin::Signed(who.clone()),
			T::MinExpertBond::get(),
			domains,
			peer_id,
			1u32.into(),
			4,
			T::MaxCommission::get(),
		);
		assert!(Experts::<T>::contains_key(&who));
	}

	#[benchmark]
	fn update_profile() {
		let who = expert::<T>(0);
		let (domains, peer_id) = profile_args::<T>();
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), domains, peer_id, 2u32.into(), 8, Perbill::zero());
		assert_eq!(Experts::<T>::get(&who).map(|e| e.profile.max_concurrent_tasks), Some(8));
	}

	/// The expert serves all but one of its allowed chunks; the chunk has all but one of
	/// its allowed servers.
	#[benchmark]
	fn serve_chunk() {
		let who = expert::<T>(0);
		serve::<T>(&who, T::MaxChunksServed::get().saturating_sub(1));
		let target = T::Models::register_for_benchmark(1);
		for i in 1..T::MaxExpertsPerChunk::get() {
			let other = expert::<T>(i);
			let hash = T::Models::chunk_weights_hash(target, 0).expect("chunk exists");
			Pallet::<T>::do_serve_chunk(&other, target, 0, hash, NumericFormat::F32)
				.expect("other serves");
		}
		let hash = T::Models::chunk_weights_hash(target, 0).expect("chunk exists");
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), target, 0, hash, NumericFormat::Bf16);
		assert!(ChunkServers::<T>::get(target, 0).contains(&who));
	}

	#[benchmark]
	fn stop_serving() {
		let who = expert::<T>(0);
		let model = serve::<T>(&who, T::MaxChunksServed::get());
		let last = T::MaxChunksServed::get() - 1;
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), model, last);
		assert!(!ChunkServers::<T>::get(model, last).contains(&who));
	}

	#[benchmark]
	fn bond_extra() {
		let who = expert::<T>(0);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), T::MinDelegation::get());
		assert!(Experts::<T>::get(&who).is_some_and(|e| e.bond > T::MinExpertBond::get()));
	}

	/// A new entry in a queue that is one short of full.
	#[benchmark]
	fn unbond() {
		let who = expert::<T>(0);
		let amount = T::MinDelegation::get();
		let pending = T::MaxUnbondingChunks::get().saturating_sub(1);
		Pallet::<T>::bond_extra(
			RawOrigin::Signed(who.clone()).into(),
			amount.saturating_mul((pending + 1).into()),
		)
		.expect("bond extra works");
		for block in 0..pending {
			System::<T>::set_block_number(block.into());
			Pallet::<T>::unbond(RawOrigin::Signed(who.clone()).into(), amount)
				.expect("unbond works");
		}
		System::<T>::set_block_number(pending.into());
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), amount);
		assert_eq!(Unbonding::<T>::get(&who).len() as u32, pending + 1);
	}

	/// `u` pending entries, all matured.
	#[benchmark]
	fn withdraw_unbonded(u: Linear<1, { T::MaxUnbondingChunks::get() }>) {
		let who = expert::<T>(0);
		let amount = T::MinDelegation::get();
		Pallet::<T>::bond_extra(
			RawOrigin::Signed(who.clone()).into(),
			amount.saturating_mul(u.into()),
		)
		.expect("bond extra works");
		for block in 0..u {
			System::<T>::set_block_number(block.into());
			Pallet::<T>::unbond(RawOrigin::Signed(who.clone()).into(), amount)
				.expect("unbond works");
		}
		System::<T>::set_block_number(UnbondingPeriod::<T>::get().saturating_add(u.into()));
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()));
		assert!(!Unbonding::<T>::contains_key(&who));
	}

	/// `c` served chunks and `d` delegators.
	#[benchmark]
	fn deregister(
		c: Linear<0, { T::MaxChunksServed::get() }>,
		d: Linear<0, { T::MaxDelegatorsPerExpert::get() }>,
	) {
		let who = expert::<T>(0);
		serve::<T>(&who, c);
		delegators::<T>(&who, d);
		let operator: T::AccountId = account("operator", 0, 0);
		Pallet::<T>::set_operator(RawOrigin::Signed(who.clone()).into(), Some(operator.clone()))
			.expect("the operator is free");
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()));
		assert!(!Experts::<T>::contains_key(&who));
		assert!(!OperatedExperts::<T>::contains_key(&operator));
	}

	/// A new delegator of an expert that has all but one of its allowed delegators.
	#[benchmark]
	fn delegate() {
		let who = expert::<T>(0);
		delegators::<T>(&who, T::MaxDelegatorsPerExpert::get().saturating_sub(1));
		let delegator = funded::<T>("new-delegator", 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(delegator.clone()), who.clone(), T::MinDelegation::get());
		assert!(Delegations::<T>::contains_key(&who, &delegator));
	}

	/// Undelegating everything removes the delegation.
	#[benchmark]
	fn undelegate() {
		let who = expert::<T>(0);
		let delegator = delegators::<T>(&who, 1).remove(0);
		#[extrinsic_call]
		_(RawOrigin::Signed(delegator.clone()), who.clone(), T::MinDelegation::get());
		assert!(!Delegations::<T>::contains_key(&who, &delegator));
	}

	#[benchmark]
	fn set_unbonding_period() -> Result<(), BenchmarkError> {
		let origin =
			T::AdminOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, 7u32.into());
		assert_eq!(UnbondingPeriod::<T>::get(), 7u32.into());
		Ok(())
	}

	/// Replacing an operator: the old one's entry is removed, the new one's written.
	#[benchmark]
	fn set_operator() {
		let who = expert::<T>(0);
		let (old, new): (T::AccountId, T::AccountId) =
			(account("operator", 0, 0), account("operator", 1, 0));
		Pallet::<T>::set_operator(RawOrigin::Signed(who.clone()).into(), Some(old.clone()))
			.expect("the operator is free");
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), Some(new.clone()));
		assert_eq!(Operators::<T>::get(&who), Some(new));
		assert!(!OperatedExperts::<T>::contains_key(&old));
	}

	impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}
