//! A runtime with System, Balances, the real model registry and the experts pallet.
//! Accounts 1–9 start with 10_000; account 100 is the community fund.

use crate as pallet_experts;
use polkadot_sdk::{
	frame_support::{derive_impl, parameter_types},
	frame_system::{self, EnsureRoot},
	pallet_balances,
	sp_core::H256,
	sp_io,
	sp_runtime::{BoundedVec, BuildStorage, Perbill},
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
	pub type Models = pallet_models;

	#[runtime::pallet_index(3)]
	pub type Experts = pallet_experts;
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

impl pallet_models::Config for Test {
	type RegistrarOrigin = EnsureRoot<u64>;
	type MaxNameLength = ConstU32<32>;
	type MaxChunks = ConstU32<8>;
	type MaxDomains = ConstU32<4>;
	type WeightInfo = ();
}

use polkadot_sdk::frame_support::traits::ConstU32;

/// The community fund.
pub const COMMUNITY: u64 = 100;
pub const MIN_BOND: u64 = 1_000;
pub const MIN_DELEGATION: u64 = 100;
pub const EXPERT_DEPOSIT: u64 = 10;
pub const CHUNK_DEPOSIT: u64 = 5;
pub const UNBONDING: u64 = 10;
pub const START_BALANCE: u64 = 10_000;

parameter_types! {
	pub const Community: u64 = COMMUNITY;
	pub const MaxCommission: Perbill = Perbill::from_percent(50);
}

impl pallet_experts::Config for Test {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Models = Models;
	type SlashDestination = Community;
	type AdminOrigin = EnsureRoot<u64>;
	type MinExpertBond = polkadot_sdk::frame_support::traits::ConstU64<MIN_BOND>;
	type MinDelegation = polkadot_sdk::frame_support::traits::ConstU64<MIN_DELEGATION>;
	type ExpertDeposit = polkadot_sdk::frame_support::traits::ConstU64<EXPERT_DEPOSIT>;
	type ChunkDeposit = polkadot_sdk::frame_support::traits::ConstU64<CHUNK_DEPOSIT>;
	type DefaultUnbondingPeriod = polkadot_sdk::frame_support::traits::ConstU64<UNBONDING>;
	type MaxCommission = MaxCommission;
	type MaxDomains = ConstU32<3>;
	type MaxPeerIdLength = ConstU32<64>;
	type MaxChunksServed = ConstU32<3>;
	type MaxExpertsPerChunk = ConstU32<4>;
	type MaxDelegatorsPerExpert = ConstU32<3>;
	type MaxUnbondingChunks = ConstU32<3>;
	type WeightInfo = ();
}

/// Weight hash of chunk `i` of the test models.
pub fn chunk_hash(model: u32, chunk: u32) -> H256 {
	H256::from_low_u64_be(((model as u64) << 32) | (chunk as u64 + 1))
}

/// A 4-layer model in `chunks` equal chunks with `chunk_hash` hashes.
pub fn model_spec(model: u32, chunks: u32) -> pallet_models::ModelSpecOf<Test> {
	let per = 4 / chunks;
	pallet_models::ModelSpec {
		name: BoundedVec::truncate_from(b"tiny".to_vec()),
		version: model,
		architecture: pallet_models::Architecture::Mistral,
		num_layers: 4,
		hidden_size: 64,
		vocab_size: 320,
		max_context: 512,
		max_token_bytes: 4,
		chunks: BoundedVec::truncate_from(
			(0..chunks)
				.map(|i| pallet_models::ChunkSpec {
					start_layer: i * per,
					end_layer: (i + 1) * per,
					weights_hash: chunk_hash(model, i),
				})
				.collect(),
		),
		tokenizer_hash: H256::repeat_byte(7),
		config_hash: H256::repeat_byte(8),
		numerics: BoundedVec::truncate_from(vec![pallet_models::NumericProfile {
			format: pallet_models::NumericFormat::F32,
			verification: pallet_models::VerificationParams::F32,
		}]),
		domains: Default::default(),
	}
}

/// Model 0 (2 chunks) and model 1 (4 chunks), both active.
pub fn new_test_ext() -> sp_io::TestExternalities {
	let mut storage = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	pallet_balances::GenesisConfig::<Test> {
		balances: (1..=9).map(|a| (a, START_BALANCE)).chain([(COMMUNITY, 1)]).collect(),
		..Default::default()
	}
	.assimilate_storage(&mut storage)
	.unwrap();
	pallet_models::GenesisConfig::<Test> { models: vec![model_spec(0, 2), model_spec(1, 4)] }
		.assimilate_storage(&mut storage)
		.unwrap();
	let mut ext = sp_io::TestExternalities::new(storage);
	ext.execute_with(|| System::set_block_number(1));
	ext
}
