//! A runtime with System, Balances and the reputation pallet. Experts are accounts
//! 1–20; accounts 21–30 are raters-to-be with START_BALANCE each; tasks are recorded by
//! the tests in a task ledger kept here.

use crate as pallet_reputation;
use dllm_primitives::market::{CompletedTask, Domain, TaskId, TaskLedger, TaskLookupError};
use polkadot_sdk::{
	frame_support::{
		derive_impl, parameter_types,
		traits::{ConstU32, Contains},
	},
	frame_system, pallet_balances, sp_io,
	sp_runtime::BuildStorage,
};
use std::{
	cell::RefCell,
	collections::{BTreeMap, BTreeSet},
};

type Block = frame_system::mocking::MockBlock<Test>;

#[polkadot_sdk::frame_support::runtime]
mod runtime {
	#[runtime::runtime]
	#[runtime::derive(
		RuntimeCall,
		RuntimeEvent,
		RuntimeError,
		RuntimeOrigin,
		RuntimeFreezeReason,
		RuntimeHoldReason,
		RuntimeSlashReason,
		RuntimeLockId,
		RuntimeTask,
		RuntimeViewFunction
	)]
	pub struct Test;

	#[runtime::pallet_index(0)]
	pub type System = frame_system;

	#[runtime::pallet_index(1)]
	pub type Balances = pallet_balances;

	#[runtime::pallet_index(2)]
	pub type Reputation = pallet_reputation;
}

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
	type Block = Block;
	type AccountData = pallet_balances::AccountData<u64>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
	type AccountStore = System;
	type RuntimeHoldReason = RuntimeHoldReason;
}

pub const START_BALANCE: u64 = 1_000_000;
pub const MIN_RATER_BOND: u64 = 1_000;
pub const RATING_PERIOD: u32 = 10;
pub const MAX_RATERS: u32 = 5;
pub const MAX_SUBJECTS: u32 = 6;
pub const AGGREGATIONS_PER_BLOCK: u32 = 2;

/// Experts are the accounts 1–20 and those the benchmarks make.
pub struct MockExperts;
impl Contains<u64> for MockExperts {
	fn contains(who: &u64) -> bool {
		(1..=20).contains(who) || BENCHMARK_EXPERTS.with(|experts| experts.borrow().contains(who))
	}
}

/// A task as the mock ledger knows it.
#[derive(Clone)]
pub enum LedgerEntry {
	Open,
	Completed(CompletedTask<u64>),
	Pruned,
}

thread_local! {
	pub static TASKS: RefCell<BTreeMap<TaskId, LedgerEntry>> = const { RefCell::new(BTreeMap::new()) };
	pub static BENCHMARK_EXPERTS: RefCell<BTreeSet<u64>> = const { RefCell::new(BTreeSet::new()) };
}

/// Records a task in the mock ledger.
pub fn record_task(task: TaskId, entry: LedgerEntry) {
	TASKS.with(|tasks| tasks.borrow_mut().insert(task, entry));
}

/// A completed task of `requester` whose accepted work came from `miners`.
pub fn completed(requester: u64, domain: Option<&[u8]>, miners: &[u64]) -> LedgerEntry {
	LedgerEntry::Completed(CompletedTask {
		requester,
		domain: domain.map(|bytes| Domain::truncate_from(bytes.to_vec())),
		miners: miners.to_vec(),
	})
}

pub struct MockTasks;
impl TaskLedger<u64> for MockTasks {
	fn completed_task(task: TaskId) -> Result<CompletedTask<u64>, TaskLookupError> {
		match TASKS.with(|tasks| tasks.borrow().get(&task).cloned()) {
			None => Err(TaskLookupError::Unknown),
			Some(LedgerEntry::Open) => Err(TaskLookupError::NotCompleted),
			Some(LedgerEntry::Pruned) => Err(TaskLookupError::Pruned),
			Some(LedgerEntry::Completed(task)) => Ok(task),
		}
	}
}

#[cfg(feature = "runtime-benchmarks")]
pub struct MockBenchmarkHelper;
#[cfg(feature = "runtime-benchmarks")]
impl crate::BenchmarkHelper<u64> for MockBenchmarkHelper {
	fn make_expert(who: &u64) {
		BENCHMARK_EXPERTS.with(|experts| experts.borrow_mut().insert(*who));
	}
	fn completed_task(requester: &u64, domain: Option<Domain>, miners: &[u64]) -> TaskId {
		let task = TASKS.with(|tasks| tasks.borrow().len() as TaskId + 1000);
		record_task(
			task,
			LedgerEntry::Completed(CompletedTask {
				requester: *requester,
				domain,
				miners: miners.to_vec(),
			}),
		);
		task
	}
}

parameter_types! {
	pub const Params: crate::ScoreParams = crate::ScoreParams::DLLM;
}

impl pallet_reputation::Config for Test {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Experts = MockExperts;
	type Tasks = MockTasks;
	type Params = Params;
	type RatingPeriod = ConstU32<RATING_PERIOD>;
	type MinRaterBond = ConstU64<MIN_RATER_BOND>;
	type MaxRaters = ConstU32<MAX_RATERS>;
	type MaxSubjectsPerRound = ConstU32<MAX_SUBJECTS>;
	type MaxAggregationsPerBlock = ConstU32<AGGREGATIONS_PER_BLOCK>;
	type MaxRatedMiners = ConstU32<16>;
	type WeightInfo = ();
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = MockBenchmarkHelper;
}

use polkadot_sdk::frame_support::traits::ConstU64;

pub fn new_test_ext() -> sp_io::TestExternalities {
	TASKS.with(|tasks| tasks.borrow_mut().clear());
	BENCHMARK_EXPERTS.with(|experts| experts.borrow_mut().clear());
	let mut storage = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	pallet_balances::GenesisConfig::<Test> {
		balances: (1..=30).map(|who| (who, START_BALANCE)).collect(),
		..Default::default()
	}
	.assimilate_storage(&mut storage)
	.unwrap();
	let mut ext = sp_io::TestExternalities::new(storage);
	ext.execute_with(|| System::set_block_number(1));
	ext
}

/// Runs the pallet's hooks up to block `n`.
pub fn run_to_block(n: u64) {
	use polkadot_sdk::frame_support::traits::Hooks;
	while System::block_number() < n {
		let next = System::block_number() + 1;
		System::set_block_number(next);
		Reputation::on_initialize(next);
	}
}
