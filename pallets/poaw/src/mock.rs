//! A runtime with System, Balances, the real model registry, the real expert registry and
//! the task pallet. Accounts 1–12 start with START_BALANCE; account 100 is the community
//! fund.

use crate as pallet_poaw;
use dllm_primitives::market::{Domain, ExpertQuality, TaskOutcome};
use polkadot_sdk::{
	frame_support::{derive_impl, parameter_types, weights::Weight, PalletId},
	frame_system::{self, EnsureRoot},
	pallet_balances,
	sp_core::H256,
	sp_io,
	sp_runtime::{BoundedVec, BuildStorage, Perbill},
};
use std::{cell::RefCell, collections::BTreeMap};

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

	#[runtime::pallet_index(4)]
	pub type Poaw = pallet_poaw;
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
	type MaxChunks = ConstU32<12>;
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
pub const START_BALANCE: u64 = 100_000;

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
	type MaxExpertsPerChunk = ConstU32<8>;
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
		balances: (1..=12).map(|a| (a, START_BALANCE)).chain([(COMMUNITY, 1)]).collect(),
		..Default::default()
	}
	.assimilate_storage(&mut storage)
	.unwrap();
	pallet_models::GenesisConfig::<Test> { models: vec![model_spec(0, 2), model_spec(1, 4)] }
		.assimilate_storage(&mut storage)
		.unwrap();
	// The tests of the redundant protocol run in its mode; the prefill tests switch.
	pallet_poaw::GenesisConfig::<Test> {
		verification: Some(pallet_poaw::VerificationMode::Redundant),
		..Default::default()
	}
	.assimilate_storage(&mut storage)
	.unwrap();
	QUALITY.with(|q| q.borrow_mut().clear());
	REPORTS.with(|r| r.borrow_mut().clear());
	let mut ext = sp_io::TestExternalities::new(storage);
	ext.execute_with(|| System::set_block_number(1));
	ext
}

thread_local! {
	/// Quality per expert the tests set (`None`: barred); unset experts are neutral.
	pub static QUALITY: RefCell<BTreeMap<u64, Option<Perbill>>> = const { RefCell::new(BTreeMap::new()) };
	/// Every outcome reported, in order.
	pub static REPORTS: RefCell<Vec<(u64, TaskOutcome)>> = const { RefCell::new(Vec::new()) };
}

/// A reputation source the tests steer, recording what it is told.
pub struct TestQuality;
impl ExpertQuality<u64> for TestQuality {
	fn quality(expert: &u64, _: Option<&Domain>) -> Option<Perbill> {
		QUALITY.with(|q| q.borrow().get(expert).copied().unwrap_or(Some(Perbill::from_percent(50))))
	}
	fn report(expert: &u64, _: Option<&Domain>, outcome: TaskOutcome) {
		REPORTS.with(|r| r.borrow_mut().push((*expert, outcome)));
	}
}

pub const MINER_SHARE: Perbill = Perbill::from_percent(85);
pub const ASSIGNMENT_TIMEOUT: u64 = 5;
pub const COMMIT_PERIOD: u64 = 4;
pub const REVEAL_PERIOD: u64 = 3;
pub const RETENTION: u64 = 10;
pub const MAX_PROMPT: u32 = 64;
pub const MAX_TOKENS: u32 = 16;
pub const MAX_OUTPUT: u32 = 64;
pub const MAX_FINGERPRINT: u32 = 512;
pub const DISPUTE_SLASH: Perbill = Perbill::from_percent(10);
pub const MAX_QUEUED_PER_REQUESTER: u32 = 4;
pub const QUEUE_EXPIRY_FEE: Perbill = Perbill::from_percent(2);
pub const PREFILL_SHARE: Perbill = Perbill::from_percent(20);
pub const MAX_REFEREE_ROUNDS: u8 = 2;
pub const SILENCE_PERIOD: u64 = 2;

parameter_types! {
	pub const PoawPalletId: PalletId = PalletId(*b"dllm/poa");
	pub const MinerShare: Perbill = MINER_SHARE;
	pub const ThroughputBonus: Perbill = Perbill::from_percent(5);
	pub const DisputeSlash: Perbill = DISPUTE_SLASH;
	pub const QueueExpiryFee: Perbill = QUEUE_EXPIRY_FEE;
	pub const PrefillShare: Perbill = PREFILL_SHARE;
	/// Unbounded unless a test lowers it (`HooksWeight::set`).
	pub static HooksWeight: Weight = Weight::MAX;
	/// `COMMIT_PERIOD` unless a test changes it.
	pub static CommitBlocks: u64 = COMMIT_PERIOD;
	/// One referee pipeline per round unless a test asks for more.
	pub static RefereesPerRound: u8 = 1;
	/// 8 unless a test needs room for more pipelines (several generators).
	pub static MaxSlots: u32 = 8;
}

impl pallet_poaw::Config for Test {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Models = Models;
	type Experts = Experts;
	type Quality = TestQuality;
	type CommunityAccount = Community;
	type AdminOrigin = EnsureRoot<u64>;
	type PalletId = PoawPalletId;
	type MaxPromptBytes = ConstU32<MAX_PROMPT>;
	type MaxGeneratedTokens = ConstU32<MAX_TOKENS>;
	type MaxOutputBytes = ConstU32<MAX_OUTPUT>;
	type MaxFingerprintBytes = ConstU32<MAX_FINGERPRINT>;
	type DefaultRedundancy = polkadot_sdk::frame_support::traits::ConstU8<2>;
	type MaxRedundancy = polkadot_sdk::frame_support::traits::ConstU8<3>;
	type MaxGenerators = polkadot_sdk::frame_support::traits::ConstU8<3>;
	type MaxSlots = MaxSlots;
	type MaxOffersPerChunk = ConstU32<8>;
	type MinerShare = MinerShare;
	type ThroughputBonus = ThroughputBonus;
	type AssignmentTimeout = polkadot_sdk::frame_support::traits::ConstU64<ASSIGNMENT_TIMEOUT>;
	type CommitPeriod = CommitBlocks;
	type RevealPeriod = polkadot_sdk::frame_support::traits::ConstU64<REVEAL_PERIOD>;
	type MaxReassignments = ConstU32<2>;
	type ResultRetention = polkadot_sdk::frame_support::traits::ConstU64<RETENTION>;
	type MaxQueuedTasks = ConstU32<8>;
	type MaxQueuedPerRequester = ConstU32<MAX_QUEUED_PER_REQUESTER>;
	type QueueExpiryFee = QueueExpiryFee;
	type MaxAssignmentsPerBlock = ConstU32<4>;
	type MaxTimeoutsPerBlock = ConstU32<8>;
	type HooksWeight = HooksWeight;
	type DisputeSlash = DisputeSlash;
	type PrefillShare = PrefillShare;
	type MaxRefereeRounds = polkadot_sdk::frame_support::traits::ConstU8<MAX_REFEREE_ROUNDS>;
	type RefereesPerRound = RefereesPerRound;
	type SilenceClaimPeriod = polkadot_sdk::frame_support::traits::ConstU64<SILENCE_PERIOD>;
	type WeightInfo = ();
}

/// A small deterministic generator (xorshift64*) for the random tests.
pub struct Rng(pub u64);
impl Rng {
	pub fn next(&mut self) -> u64 {
		self.0 ^= self.0 >> 12;
		self.0 ^= self.0 << 25;
		self.0 ^= self.0 >> 27;
		self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
	}
	/// Uniform in `0..n`.
	pub fn below(&mut self, n: u64) -> u64 {
		self.next() % n
	}
}
