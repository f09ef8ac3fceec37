//! A runtime with only System and the model registry; root registers.

use crate as pallet_models;
use polkadot_sdk::{
	frame_support::{derive_impl, parameter_types},
	frame_system::{self, EnsureRoot},
	sp_io,
	sp_runtime::BuildStorage,
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
	pub type Models = pallet_models;
}

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
	type Block = Block;
}

parameter_types! {
	pub const MaxNameLength: u32 = 32;
	pub const MaxChunks: u32 = 8;
	pub const MaxDomains: u32 = 4;
}

impl pallet_models::Config for Test {
	type RegistrarOrigin = EnsureRoot<u64>;
	type MaxNameLength = MaxNameLength;
	type MaxChunks = MaxChunks;
	type MaxDomains = MaxDomains;
	type WeightInfo = ();
}

pub fn new_test_ext() -> sp_io::TestExternalities {
	let storage = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	let mut ext = sp_io::TestExternalities::new(storage);
	ext.execute_with(|| System::set_block_number(1));
	ext
}
