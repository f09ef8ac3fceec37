//! Every call's success path and every named error (with storage unchanged), the
//! registry trait the task pallet uses, and the hold invariants after each test.

use crate::mock::{Experts, Models};
use crate::{mock::*, *};
use polkadot_sdk::{
	frame_support::{
		assert_noop, assert_ok,
		traits::fungible::{Inspect, InspectHold},
	},
	frame_system::RawOrigin,
	sp_runtime::{DispatchError, Perbill},
};

type Registry = Pallet<Test>;

/// Runs a test, then checks the pallet's invariants.
fn run(test: impl FnOnce()) {
	new_test_ext().execute_with(|| {
		test();
		Registry::do_try_state().expect("invariants hold");
		pallet_models::Pallet::<Test>::do_try_state().expect("model invariants hold");
	});
}

fn signed(who: u64) -> RuntimeOrigin {
	RawOrigin::Signed(who).into()
}

fn peer() -> Vec<u8> {
	// A CIDv0-style multihash PeerId: 0x00 (identity) 0x24 (36 bytes) ...
	let mut id = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
	id.extend([7u8; 32]);
	id
}

fn register_with(who: u64, bond: u64, commission: Perbill) -> DispatchResult {
	Experts::register_expert(
		signed(who),
		bond,
		vec![b"code".to_vec(), b"medicine".to_vec()],
		peer(),
		3,
		2,
		commission,
	)
}

fn register(who: u64) {
	assert_ok!(register_with(who, MIN_BOND, Perbill::from_percent(10)));
}

fn held(reason: HoldReason, who: u64) -> u64 {
	Balances::balance_on_hold(&reason.into(), &who)
}

fn free(who: u64) -> u64 {
	Balances::balance(&who)
}

fn expert(who: u64) -> ExpertInfo<Test> {
	crate::Experts::<Test>::get(who).expect("registered")
}

fn model_references(model: u32) -> u32 {
	pallet_models::Models::<Test>::get(model).map(|m| m.references).unwrap_or_default()
}

#[test]
fn register_holds_bond_and_deposit() {
	run(|| {
		register(1);
		let info = expert(1);
		assert_eq!(info.bond, MIN_BOND);
		assert_eq!(info.deposit, EXPERT_DEPOSIT);
		assert_eq!(info.profile.domains.len(), 2);
		assert_eq!(info.profile.peer_id.to_vec(), peer());
		assert_eq!(info.profile.max_concurrent_tasks, 2);
		assert_eq!(held(HoldReason::ExpertBond, 1), MIN_BOND);
		assert_eq!(held(HoldReason::Deposit, 1), EXPERT_DEPOSIT);
		assert_eq!(free(1), START_BALANCE - MIN_BOND - EXPERT_DEPOSIT);
		System::assert_last_event(Event::ExpertRegistered { expert: 1, bond: MIN_BOND }.into());
	});
}

#[test]
fn register_refuses_bad_input() {
	run(|| {
		let ok_domains = || vec![b"code".to_vec()];
		let call = |who, bond, domains, peer_id: Vec<u8>, capacity, commission| {
			Experts::register_expert(signed(who), bond, domains, peer_id, 3, capacity, commission)
		};
		let ten = Perbill::from_percent(10);
		assert_noop!(
			call(1, MIN_BOND - 1, ok_domains(), peer(), 2, ten),
			Error::<Test>::BondBelowMinimum
		);
		assert_noop!(
			call(1, MIN_BOND, ok_domains(), peer(), 2, Perbill::from_percent(51)),
			Error::<Test>::CommissionTooHigh
		);
		assert_noop!(call(1, MIN_BOND, ok_domains(), peer(), 0, ten), Error::<Test>::ZeroCapacity);
		let four = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()];
		assert_noop!(call(1, MIN_BOND, four, peer(), 2, ten), Error::<Test>::TooManyDomains);
		assert_noop!(
			call(1, MIN_BOND, vec![b"a".to_vec(), b"a".to_vec()], peer(), 2, ten),
			Error::<Test>::InvalidDomain
		);
		assert_noop!(call(1, MIN_BOND, vec![vec![]], peer(), 2, ten), Error::<Test>::InvalidDomain);
		assert_noop!(
			call(1, MIN_BOND, vec![vec![b'x'; 33]], peer(), 2, ten),
			Error::<Test>::InvalidDomain
		);
		assert_noop!(call(1, MIN_BOND, ok_domains(), vec![], 2, ten), Error::<Test>::InvalidPeerId);
		assert_noop!(
			call(1, MIN_BOND, ok_domains(), vec![1; 65], 2, ten),
			Error::<Test>::InvalidPeerId
		);
		assert_noop!(
			call(1, START_BALANCE, ok_domains(), peer(), 2, ten),
			Error::<Test>::InsufficientBalance
		);
		// Unfunded account.
		assert_noop!(
			call(50, MIN_BOND, ok_domains(), peer(), 2, ten),
			Error::<Test>::InsufficientBalance
		);
		register(1);
		assert_noop!(
			call(1, MIN_BOND, ok_domains(), peer(), 2, ten),
			Error::<Test>::AlreadyRegistered
		);
	});
}

#[test]
fn update_profile_replaces_it() {
	run(|| {
		register(1);
		assert_ok!(Experts::update_profile(
			signed(1),
			vec![b"law".to_vec()],
			vec![1, 2, 3],
			9,
			5,
			Perbill::from_percent(50)
		));
		let profile = expert(1).profile;
		assert_eq!(profile.domains.into_inner(), vec![Domain::truncate_from(b"law".to_vec())]);
		assert_eq!(profile.price_per_token_layer, 9);
		assert_eq!(profile.max_concurrent_tasks, 5);
		System::assert_last_event(Event::ProfileUpdated { expert: 1 }.into());
		assert_noop!(
			Experts::update_profile(signed(1), vec![], vec![1], 9, 5, Perbill::from_percent(60)),
			Error::<Test>::CommissionTooHigh
		);
		assert_noop!(
			Experts::update_profile(signed(2), vec![], vec![1], 9, 5, Perbill::zero()),
			Error::<Test>::NotAnExpert
		);
	});
}

#[test]
fn serve_chunk_checks_the_registered_hash() {
	run(|| {
		register(1);
		assert_ok!(Experts::serve_chunk(signed(1), 0, 1, chunk_hash(0, 1), NumericFormat::F32));
		assert_eq!(
			expert(1).serving.into_inner(),
			vec![ServedChunk { model: 0, chunk: 1, format: NumericFormat::F32 }]
		);
		assert_eq!(ChunkServers::<Test>::get(0, 1).into_inner(), vec![1]);
		assert_eq!(expert(1).deposit, EXPERT_DEPOSIT + CHUNK_DEPOSIT);
		assert_eq!(held(HoldReason::Deposit, 1), EXPERT_DEPOSIT + CHUNK_DEPOSIT);
		assert_eq!(model_references(0), 1);
		System::assert_last_event(
			Event::ChunkServed { expert: 1, model: 0, chunk: 1, format: NumericFormat::F32 }.into(),
		);

		assert_noop!(
			Experts::serve_chunk(signed(1), 0, 0, chunk_hash(0, 1), NumericFormat::F32),
			Error::<Test>::WeightsHashMismatch
		);
		assert_noop!(
			Experts::serve_chunk(signed(1), 0, 2, chunk_hash(0, 2), NumericFormat::F32),
			pallet_models::Error::<Test>::UnknownChunk
		);
		assert_noop!(
			Experts::serve_chunk(signed(1), 9, 0, chunk_hash(9, 0), NumericFormat::F32),
			pallet_models::Error::<Test>::UnknownModel
		);
		assert_noop!(
			Experts::serve_chunk(signed(1), 0, 1, chunk_hash(0, 1), NumericFormat::F32),
			Error::<Test>::AlreadyServing
		);
		// The test model accepts f32 work only (N5 of the 2026-12 review: the registry,
		// not each miner, decides the numerics).
		assert_noop!(
			Experts::serve_chunk(signed(1), 0, 0, chunk_hash(0, 0), NumericFormat::Bf16),
			Error::<Test>::FormatNotAccepted
		);
		assert_noop!(
			Experts::serve_chunk(signed(2), 0, 1, chunk_hash(0, 1), NumericFormat::F32),
			Error::<Test>::NotAnExpert
		);
	});
}

#[test]
fn serve_chunk_respects_bounds_and_model_status() {
	run(|| {
		register(1);
		for chunk in 0..3 {
			assert_ok!(Experts::serve_chunk(
				signed(1),
				1,
				chunk,
				chunk_hash(1, chunk),
				NumericFormat::F32
			));
		}
		assert_noop!(
			Experts::serve_chunk(signed(1), 1, 3, chunk_hash(1, 3), NumericFormat::F32),
			Error::<Test>::TooManyChunksServed
		);
		for who in 2..=5 {
			register(who);
			assert_ok!(Experts::serve_chunk(
				signed(who),
				0,
				0,
				chunk_hash(0, 0),
				NumericFormat::F32
			));
		}
		register(6);
		assert_noop!(
			Experts::serve_chunk(signed(6), 0, 0, chunk_hash(0, 0), NumericFormat::F32),
			Error::<Test>::TooManyExpertsOnChunk
		);
		// A deprecated model takes no new miners.
		assert_ok!(Models::deprecate_model(RawOrigin::Root.into(), 0, None));
		assert_noop!(
			Experts::serve_chunk(signed(6), 0, 1, chunk_hash(0, 1), NumericFormat::F32),
			Error::<Test>::ModelNotServable
		);
	});
}

#[test]
fn stop_serving_releases_deposit_and_reference() {
	run(|| {
		register(1);
		assert_ok!(Experts::serve_chunk(signed(1), 0, 0, chunk_hash(0, 0), NumericFormat::F32));
		assert_ok!(Experts::stop_serving(signed(1), 0, 0));
		assert!(expert(1).serving.is_empty());
		assert!(!ChunkServers::<Test>::contains_key(0, 0));
		assert_eq!(held(HoldReason::Deposit, 1), EXPERT_DEPOSIT);
		assert_eq!(model_references(0), 0);
		System::assert_last_event(Event::ChunkDropped { expert: 1, model: 0, chunk: 0 }.into());
		assert_noop!(Experts::stop_serving(signed(1), 0, 0), Error::<Test>::NotServing);
		assert_noop!(Experts::stop_serving(signed(2), 0, 0), Error::<Test>::NotAnExpert);
	});
}

#[test]
fn retired_model_leaves_when_its_last_server_stops() {
	run(|| {
		register(1);
		assert_ok!(Experts::serve_chunk(signed(1), 0, 0, chunk_hash(0, 0), NumericFormat::F32));
		assert_ok!(Models::deprecate_model(RawOrigin::Root.into(), 0, None));
		assert_ok!(Models::retire_model(RawOrigin::Root.into(), 0));
		assert!(pallet_models::Models::<Test>::contains_key(0));
		assert_ok!(Experts::stop_serving(signed(1), 0, 0));
		assert!(!pallet_models::Models::<Test>::contains_key(0));
	});
}

#[test]
fn bond_extra_adds_to_the_hold() {
	run(|| {
		register(1);
		assert_ok!(Experts::bond_extra(signed(1), 500));
		assert_eq!(expert(1).bond, MIN_BOND + 500);
		assert_eq!(held(HoldReason::ExpertBond, 1), MIN_BOND + 500);
		System::assert_last_event(Event::Bonded { expert: 1, amount: 500 }.into());
		assert_noop!(Experts::bond_extra(signed(1), 0), Error::<Test>::ZeroAmount);
		assert_noop!(
			Experts::bond_extra(signed(1), START_BALANCE),
			Error::<Test>::InsufficientBalance
		);
		assert_noop!(Experts::bond_extra(signed(2), 5), Error::<Test>::NotAnExpert);
	});
}

#[test]
fn unbond_then_withdraw_after_the_period() {
	run(|| {
		register(1);
		assert_ok!(Experts::bond_extra(signed(1), 600));
		assert_ok!(Experts::unbond(signed(1), 400));
		let unlock_at = 1 + UNBONDING;
		System::assert_last_event(Event::Unbonded { who: 1, amount: 400, unlock_at }.into());
		assert_eq!(expert(1).bond, MIN_BOND + 200);
		assert_eq!(held(HoldReason::ExpertBond, 1), MIN_BOND + 200);
		assert_eq!(held(HoldReason::Unbonding, 1), 400);

		assert_noop!(Experts::withdraw_unbonded(signed(1)), Error::<Test>::NothingToWithdraw);
		System::set_block_number(unlock_at);
		let before = free(1);
		assert_ok!(Experts::withdraw_unbonded(signed(1)));
		assert_eq!(free(1), before + 400);
		assert_eq!(held(HoldReason::Unbonding, 1), 0);
		assert!(!Unbonding::<Test>::contains_key(1));
		System::assert_last_event(Event::Withdrawn { who: 1, amount: 400 }.into());
	});
}

#[test]
fn unbond_refuses_bad_amounts() {
	run(|| {
		register(1);
		assert_ok!(Experts::bond_extra(signed(1), 100));
		assert_noop!(Experts::unbond(signed(1), 0), Error::<Test>::ZeroAmount);
		assert_noop!(Experts::unbond(signed(1), MIN_BOND + 101), Error::<Test>::InsufficientBond);
		assert_noop!(Experts::unbond(signed(1), 101), Error::<Test>::BondBelowMinimum);
		assert_noop!(Experts::unbond(signed(2), 1), Error::<Test>::NotAnExpert);
	});
}

#[test]
fn unbonding_queue_is_bounded() {
	run(|| {
		register(1);
		assert_ok!(Experts::bond_extra(signed(1), 100));
		for block in 1..=3 {
			System::set_block_number(block);
			assert_ok!(Experts::unbond(signed(1), 10));
		}
		// Same block: merged into the newest entry.
		assert_ok!(Experts::unbond(signed(1), 10));
		assert_eq!(Unbonding::<Test>::get(1).len(), 3);
		System::set_block_number(4);
		assert_noop!(Experts::unbond(signed(1), 10), Error::<Test>::TooManyUnbondingChunks);
		// Only the matured entries are released.
		System::set_block_number(2 + UNBONDING);
		assert_ok!(Experts::withdraw_unbonded(signed(1)));
		assert_eq!(Unbonding::<Test>::get(1).len(), 1);
		assert_eq!(held(HoldReason::Unbonding, 1), 20);
	});
}

#[test]
fn delegate_and_undelegate() {
	run(|| {
		register(1);
		assert_ok!(Experts::delegate(signed(2), 1, 300));
		assert_ok!(Experts::delegate(signed(2), 1, 50));
		assert_eq!(Delegations::<Test>::get(1, 2), Some(350));
		assert_eq!(expert(1).delegated, 350);
		assert_eq!(expert(1).delegators, 1);
		assert_eq!(held(HoldReason::Delegation, 2), 350);
		System::assert_last_event(Event::Delegated { delegator: 2, expert: 1, amount: 50 }.into());

		assert_ok!(Experts::undelegate(signed(2), 1, 250));
		assert_eq!(Delegations::<Test>::get(1, 2), Some(100));
		assert_eq!(held(HoldReason::Unbonding, 2), 250);
		assert_ok!(Experts::undelegate(signed(2), 1, 100));
		assert_eq!(Delegations::<Test>::get(1, 2), None);
		assert_eq!(expert(1).delegators, 0);
		assert_eq!(expert(1).delegated, 0);
		System::set_block_number(1 + UNBONDING);
		assert_ok!(Experts::withdraw_unbonded(signed(2)));
		assert_eq!(free(2), START_BALANCE);
	});
}

#[test]
fn delegation_refuses_bad_input() {
	run(|| {
		register(1);
		assert_noop!(Experts::delegate(signed(1), 1, 500), Error::<Test>::SelfDelegation);
		assert_noop!(Experts::delegate(signed(2), 3, 500), Error::<Test>::NotAnExpert);
		assert_noop!(Experts::delegate(signed(2), 1, 0), Error::<Test>::ZeroAmount);
		assert_noop!(
			Experts::delegate(signed(2), 1, MIN_DELEGATION - 1),
			Error::<Test>::DelegationBelowMinimum
		);
		assert_noop!(
			Experts::delegate(signed(2), 1, START_BALANCE),
			Error::<Test>::InsufficientBalance
		);
		for who in 2..=4 {
			assert_ok!(Experts::delegate(signed(who), 1, MIN_DELEGATION));
		}
		assert_noop!(
			Experts::delegate(signed(5), 1, MIN_DELEGATION),
			Error::<Test>::TooManyDelegators
		);
		assert_noop!(Experts::undelegate(signed(5), 1, 10), Error::<Test>::NotDelegating);
		assert_noop!(Experts::undelegate(signed(2), 1, 0), Error::<Test>::ZeroAmount);
		assert_noop!(
			Experts::undelegate(signed(2), 1, MIN_DELEGATION + 1),
			Error::<Test>::InsufficientDelegation
		);
		assert_ok!(Experts::delegate(signed(2), 1, 50));
		assert_noop!(Experts::undelegate(signed(2), 1, 100), Error::<Test>::DelegationBelowMinimum);
	});
}

#[test]
fn deregister_unbonds_bond_and_delegations() {
	run(|| {
		register(1);
		assert_ok!(Experts::serve_chunk(signed(1), 0, 0, chunk_hash(0, 0), NumericFormat::F32));
		assert_ok!(Experts::serve_chunk(signed(1), 0, 1, chunk_hash(0, 1), NumericFormat::F32));
		assert_ok!(Experts::delegate(signed(2), 1, 200));
		assert_ok!(Experts::deregister(signed(1)));
		assert!(!crate::Experts::<Test>::contains_key(1));
		assert!(!ChunkServers::<Test>::contains_key(0, 0));
		assert_eq!(model_references(0), 0);
		assert_eq!(held(HoldReason::Deposit, 1), 0);
		assert_eq!(held(HoldReason::ExpertBond, 1), 0);
		assert_eq!(held(HoldReason::Unbonding, 1), MIN_BOND);
		assert_eq!(held(HoldReason::Delegation, 2), 0);
		assert_eq!(held(HoldReason::Unbonding, 2), 200);
		assert_eq!(Delegations::<Test>::iter_prefix(1).count(), 0);
		System::assert_last_event(Event::ExpertDeregistered { expert: 1 }.into());
		System::set_block_number(1 + UNBONDING);
		assert_ok!(Experts::withdraw_unbonded(signed(1)));
		assert_ok!(Experts::withdraw_unbonded(signed(2)));
		assert_eq!(free(1), START_BALANCE);
		assert_eq!(free(2), START_BALANCE);
		assert_noop!(Experts::deregister(signed(1)), Error::<Test>::NotAnExpert);
	});
}

#[test]
fn deregister_merges_into_a_full_unbonding_queue() {
	run(|| {
		register(1);
		assert_ok!(Experts::bond_extra(signed(1), 30));
		for block in 1..=3 {
			System::set_block_number(block);
			assert_ok!(Experts::unbond(signed(1), 10));
		}
		System::set_block_number(4);
		assert_ok!(Experts::deregister(signed(1)));
		let queue = Unbonding::<Test>::get(1);
		assert_eq!(queue.len(), 3);
		assert_eq!(queue[2].amount, 10 + MIN_BOND);
		assert_eq!(queue[2].unlock_at, 4 + UNBONDING);
	});
}

#[test]
fn deregister_is_refused_while_work_is_assigned() {
	run(|| {
		register(1);
		assert_ok!(Registry::note_assigned(&1));
		assert_noop!(Experts::deregister(signed(1)), Error::<Test>::HasAssignedWork);
		Registry::note_finished(&1);
		assert_ok!(Experts::deregister(signed(1)));
	});
}

/// R4 of the 2026-12 review: stake cannot be moved out of a slash's reach while the
/// expert has work that may still be slashed.
#[test]
fn unbond_and_undelegate_are_refused_while_work_is_assigned() {
	run(|| {
		register(1);
		assert_ok!(Experts::bond_extra(signed(1), 600));
		assert_ok!(Experts::delegate(signed(2), 1, 500));
		assert_ok!(Registry::note_assigned(&1));
		assert_noop!(Experts::unbond(signed(1), 600), Error::<Test>::HasAssignedWork);
		assert_noop!(Experts::undelegate(signed(2), 1, 500), Error::<Test>::HasAssignedWork);
		// The slash for that work takes its share of everything that was at stake.
		let taken = Registry::slash(&1, Perbill::from_percent(10));
		assert_eq!(taken, (MIN_BOND + 600 + 500) / 10);
		Registry::note_finished(&1);
		assert_ok!(Experts::unbond(signed(1), 100));
		assert_ok!(Experts::undelegate(signed(2), 1, 450));
	});
}

#[test]
fn capacity_is_enforced() {
	run(|| {
		register(1);
		assert_ok!(Registry::note_assigned(&1));
		assert_ok!(Registry::note_assigned(&1));
		assert_noop!(Registry::note_assigned(&1), Error::<Test>::AtCapacity);
		assert_noop!(Registry::note_assigned(&2), Error::<Test>::NotAnExpert);
		Registry::note_finished(&1);
		assert_eq!(expert(1).active_tasks, 1);
	});
}

#[test]
fn offers_list_servers_with_free_capacity() {
	run(|| {
		register(1);
		register(2);
		assert_ok!(Experts::serve_chunk(signed(1), 0, 0, chunk_hash(0, 0), NumericFormat::F32));
		assert_ok!(Experts::serve_chunk(signed(2), 0, 0, chunk_hash(0, 0), NumericFormat::F32));
		assert_ok!(Experts::delegate(signed(3), 2, 500));
		let offers = Registry::offers(0, 0);
		assert_eq!(offers.len(), 2);
		assert_eq!(
			offers[1],
			ChunkOffer {
				expert: 2,
				price_per_token_layer: 3,
				free_capacity: 2,
				stake: MIN_BOND + 500,
				format: NumericFormat::F32,
			}
		);
		assert_ok!(Registry::note_assigned(&1));
		assert_ok!(Registry::note_assigned(&1));
		let offers = Registry::offers(0, 0);
		assert_eq!(offers.iter().map(|o| o.expert).collect::<Vec<_>>(), vec![2]);
		assert!(Registry::offers(0, 1).is_empty());
	});
}

#[test]
fn pay_splits_commission_and_stake_pro_rata() {
	run(|| {
		// Bond 1000, delegations 3000 (account 2) and 1000 (account 3): stake 5000.
		assert_ok!(register_with(1, MIN_BOND, Perbill::from_percent(10)));
		assert_ok!(Experts::delegate(signed(2), 1, 3_000));
		assert_ok!(Experts::delegate(signed(3), 1, 1_000));
		let (before1, before2, before3, payer) = (free(1), free(2), free(3), free(9));
		assert_ok!(Registry::pay(&1, &9, 1_000));
		// Commission 100; 900 over the stake: 540 to 2, 180 to 3, 180 to the bond.
		assert_eq!(free(2) - before2, 540);
		assert_eq!(free(3) - before3, 180);
		assert_eq!(free(1) - before1, 280);
		assert_eq!(payer - free(9), 1_000);
		System::assert_last_event(
			Event::ExpertPaid { expert: 1, commission: 100, to_stake: 900 }.into(),
		);
		// A payer that cannot pay changes nothing.
		assert_noop!(
			Registry::pay(&1, &50, 1_000),
			polkadot_sdk::sp_runtime::TokenError::FundsUnavailable
		);
		assert_noop!(Registry::pay(&7, &9, 1_000), Error::<Test>::NotAnExpert);
	});
}

#[test]
fn slash_takes_bond_and_delegations_to_the_community() {
	run(|| {
		register(1);
		assert_ok!(Experts::delegate(signed(2), 1, 400));
		assert_ok!(Experts::delegate(signed(3), 1, 200));
		let community = free(COMMUNITY);
		let taken = Registry::slash(&1, Perbill::from_percent(50));
		assert_eq!(taken, 500 + 200 + 100);
		assert_eq!(free(COMMUNITY) - community, 800);
		assert_eq!(expert(1).bond, 500);
		assert_eq!(expert(1).delegated, 300);
		assert_eq!(held(HoldReason::ExpertBond, 1), 500);
		assert_eq!(held(HoldReason::Delegation, 2), 200);
		assert_eq!(Delegations::<Test>::get(1, 3), Some(100));
		System::assert_last_event(
			Event::ExpertSlashed { expert: 1, from_bond: 500, from_delegations: 300 }.into(),
		);
		// Below the minimum bond: no more offers until it bonds again.
		assert_ok!(Experts::serve_chunk(signed(1), 0, 0, chunk_hash(0, 0), NumericFormat::F32));
		assert!(Registry::offers(0, 0).is_empty());
		// A full slash empties the delegations.
		Registry::slash(&1, Perbill::one());
		assert_eq!(expert(1).delegators, 0);
		assert_eq!(Registry::slash(&7, Perbill::one()), 0);
	});
}

#[test]
fn set_unbonding_period_needs_root() {
	run(|| {
		assert_ok!(Experts::set_unbonding_period(RawOrigin::Root.into(), 3));
		assert_eq!(UnbondingPeriod::<Test>::get(), 3);
		System::assert_last_event(Event::UnbondingPeriodSet { blocks: 3 }.into());
		assert_noop!(Experts::set_unbonding_period(signed(1), 3), DispatchError::BadOrigin);
	});
}

#[test]
fn an_operator_signs_for_one_expert_and_can_be_replaced_or_removed() {
	run(|| {
		register(1);
		register(2);
		assert_ok!(Experts::set_operator(signed(1), Some(7)));
		System::assert_last_event(Event::OperatorSet { expert: 1, operator: Some(7) }.into());
		assert_eq!(Registry::operator(&1), Some(7));
		assert_eq!(Registry::operated_expert(&7), Some(1));
		assert_eq!(Registry::operated_expert(&1), None);
		// Setting it again is harmless; a new one replaces it both ways.
		assert_ok!(Experts::set_operator(signed(1), Some(7)));
		assert_ok!(Experts::set_operator(signed(1), Some(8)));
		assert_eq!(Registry::operated_expert(&7), None);
		assert_eq!((Registry::operator(&1), Registry::operated_expert(&8)), (Some(8), Some(1)));
		// The operator holds no stake: it cannot move the expert's.
		let bond = held(HoldReason::ExpertBond, 1);
		assert_noop!(Experts::unbond(signed(8), 10), Error::<Test>::NotAnExpert);
		assert_noop!(Experts::deregister(signed(8)), Error::<Test>::NotAnExpert);
		assert_eq!(held(HoldReason::ExpertBond, 1), bond);
		assert_ok!(Experts::set_operator(signed(1), None));
		System::assert_last_event(Event::OperatorSet { expert: 1, operator: None }.into());
		assert_eq!((Registry::operator(&1), Registry::operated_expert(&8)), (None, None));
	});
}

#[test]
fn set_operator_refuses_experts_shared_operators_and_non_experts() {
	run(|| {
		register(1);
		register(2);
		assert_noop!(Experts::set_operator(signed(3), Some(7)), Error::<Test>::NotAnExpert);
		assert_noop!(Experts::set_operator(signed(1), Some(1)), Error::<Test>::OperatorIsExpert);
		assert_noop!(Experts::set_operator(signed(1), Some(2)), Error::<Test>::OperatorIsExpert);
		assert_ok!(Experts::set_operator(signed(1), Some(7)));
		assert_noop!(Experts::set_operator(signed(2), Some(7)), Error::<Test>::OperatorInUse);
		// An operator cannot become an expert as well (its key would play two parts).
		assert_noop!(
			register_with(7, MIN_BOND, Perbill::from_percent(10)),
			Error::<Test>::IsAnOperator
		);
	});
}

#[test]
fn deregistering_frees_the_operator() {
	run(|| {
		register(1);
		assert_ok!(Experts::set_operator(signed(1), Some(7)));
		assert_ok!(Experts::deregister(signed(1)));
		assert_eq!((Registry::operator(&1), Registry::operated_expert(&7)), (None, None));
		assert!(System::events().iter().any(|record| record.event
			== RuntimeEvent::Experts(Event::OperatorSet { expert: 1, operator: None })));
		// The account is free again, to operate another expert or to register itself.
		register(2);
		assert_ok!(Experts::set_operator(signed(2), Some(7)));
	});
}

#[test]
fn genesis_registers_experts_serving_chunks() {
	let mut ext = new_test_ext();
	ext.execute_with(|| {
		let genesis = GenesisConfig::<Test> {
			experts: vec![GenesisExpert {
				account: 4,
				bond: 2_000,
				domains: vec![b"code".to_vec()],
				peer_id: peer(),
				price_per_token_layer: 1,
				max_concurrent_tasks: 4,
				commission: Perbill::from_percent(5),
				serving: vec![
					ServedChunk { model: 0, chunk: 0, format: NumericFormat::F32 },
					ServedChunk { model: 0, chunk: 1, format: NumericFormat::F32 },
				],
			}],
			unbonding_period: Some(5),
		};
		polkadot_sdk::frame_support::traits::BuildGenesisConfig::build(&genesis);
		assert_eq!(expert(4).bond, 2_000);
		assert_eq!(expert(4).serving.len(), 2);
		assert_eq!(UnbondingPeriod::<Test>::get(), 5);
		assert_eq!(held(HoldReason::ExpertBond, 4), 2_000);
		Registry::do_try_state().unwrap();
	});
}

#[test]
fn try_state_catches_a_hold_without_a_record() {
	run(|| {
		register(1);
		use polkadot_sdk::frame_support::traits::fungible::MutateHold;
		// Account 1 has records (its bond), but delegates nothing.
		assert_ok!(Balances::hold(&HoldReason::Delegation.into(), &1, 10));
		assert!(Registry::do_try_state().is_err());
		assert_ok!(Balances::release(
			&HoldReason::Delegation.into(),
			&1,
			10,
			polkadot_sdk::frame_support::traits::tokens::Precision::Exact
		));
	});
}

/// Thousands of random calls from random accounts with random arguments: none panics, a
/// refused call changes no storage, and the hold invariants hold after every call.
#[test]
fn random_calls_never_panic_and_keep_the_invariants() {
	use polkadot_sdk::{
		frame_support::{dispatch::GetDispatchInfo, traits::UnfilteredDispatchable},
		sp_io::storage::root,
		sp_runtime::StateVersion,
	};
	let mut state = 0x5eed_u64;
	let mut next = move |bound: u64| {
		// SplitMix64: enough spread for picking arguments, no dependency.
		state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
		let mut z = state;
		z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
		z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
		(z ^ (z >> 31)) % bound
	};
	run(|| {
		let (mut refused, mut done) = (0, 0);
		for step in 0..3_000u64 {
			System::set_block_number(1 + step / 20);
			let who = 1 + next(6);
			let amounts = [
				0,
				1,
				50,
				MIN_DELEGATION,
				MIN_DELEGATION,
				MIN_BOND,
				MIN_BOND,
				3_000,
				START_BALANCE,
			];
			let amount = amounts[next(amounts.len() as u64) as usize];
			let (model, chunk) = (next(3) as u32, next(5) as u32);
			let hash = if next(4) == 0 { chunk_hash(9, 9) } else { chunk_hash(model, chunk) };
			// Mostly valid: distinct non-empty tags; now and then too many or an empty one.
			let domains =
				(0..next(5)).map(|i| vec![b'a' + i as u8; (next(12) != 0) as usize]).collect();
			let call: crate::Call<Test> = match next(12) {
				0 => crate::Call::register_expert {
					bond: amount,
					domains,
					peer_id: vec![1; next(70) as usize],
					price_per_token_layer: next(10),
					max_concurrent_tasks: next(4) as u32,
					commission: Perbill::from_percent(next(60) as u32),
				},
				1 => crate::Call::update_profile {
					domains,
					peer_id: peer(),
					price_per_token_layer: 1,
					max_concurrent_tasks: next(3) as u32,
					commission: Perbill::from_percent(next(70) as u32),
				},
				2 | 3 => crate::Call::serve_chunk {
					model,
					chunk,
					weights_hash: hash,
					// Mostly the accepted format, sometimes another.
					format: if next(4) == 0 { NumericFormat::Bf16 } else { NumericFormat::F32 },
				},
				4 => crate::Call::stop_serving { model, chunk },
				5 => crate::Call::bond_extra { amount },
				6 => crate::Call::unbond { amount },
				7 => crate::Call::withdraw_unbonded {},
				8 => crate::Call::deregister {},
				9 => crate::Call::delegate { expert: 1 + next(6), amount },
				10 => crate::Call::set_operator { operator: (next(3) != 0).then(|| 1 + next(9)) },
				_ => crate::Call::undelegate { expert: 1 + next(6), amount },
			};
			let _ = call.get_dispatch_info();
			let before = root(StateVersion::V1);
			match call.dispatch_bypass_filter(signed(who)) {
				Ok(_) => done += 1,
				Err(_) => {
					refused += 1;
					assert_eq!(root(StateVersion::V1), before, "a refused call changed storage");
				}
			}
			if next(10) == 0 {
				// The task pallet's side: work assigned, finished, paid, slashed.
				let expert = 1 + next(6);
				match next(4) {
					0 => {
						let _ = Registry::note_assigned(&expert);
					}
					1 => Registry::note_finished(&expert),
					2 => {
						let _ = Registry::pay(&expert, &(1 + next(9)), next(500));
					}
					_ => {
						Registry::slash(&expert, Perbill::from_percent(next(30) as u32));
					}
				}
			}
			Registry::do_try_state().expect("invariants hold after every call");
			pallet_models::Pallet::<Test>::do_try_state().expect("model invariants hold");
		}
		// The sequence exercises both outcomes, not just refusals (unbonding under
		// assigned work and formats the model does not take are refused often).
		assert!(done > 200 && refused > 300, "done {done}, refused {refused}");
	});
}
