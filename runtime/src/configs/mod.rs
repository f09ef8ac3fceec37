//! Configuration of every pallet in the runtime.

pub mod staking;

use crate::{
	token::{EXISTENTIAL_DEPOSIT, MICRO_UNITS, MILLI_UNITS, SS58_PREFIX, UNITS},
	AccountId, Aura, Balance, Balances, Block, BlockNumber, Experts, Hash, Models, Nonce,
	OriginCaller, PalletInfo, Poaw, Reputation, Runtime, RuntimeCall, RuntimeEvent,
	RuntimeFreezeReason, RuntimeHoldReason, RuntimeOrigin, RuntimeTask, System, DAYS, MINUTES,
	SLOT_DURATION, VERSION,
};
use polkadot_sdk::{
	frame_support::{
		derive_impl,
		dispatch::DispatchClass,
		parameter_types,
		traits::{
			tokens::{pay::PayFromAccount, UnityAssetBalanceConversion},
			ConstBool, ConstU32, ConstU64, ConstU8, VariantCountOf,
		},
		weights::{
			constants::{ParityDbWeight, WEIGHT_REF_TIME_PER_SECOND},
			ConstantMultiplier, IdentityFee, Weight,
		},
		PalletId,
	},
	frame_system::{
		self,
		limits::{BlockLength, BlockWeights},
		EnsureRoot, EnsureRootWithSuccess,
	},
	pallet_aura, pallet_balances, pallet_multisig, pallet_sudo, pallet_timestamp,
	pallet_transaction_payment::{self, FungibleAdapter, Multiplier, TargetedFeeAdjustment},
	pallet_treasury, pallet_utility,
	sp_consensus_aura::sr25519::AuthorityId as AuraId,
	sp_runtime::{
		traits::{Bounded, IdentityLookup, One},
		FixedPointNumber, Perbill, Permill, Perquintill,
	},
	sp_version::RuntimeVersion,
};

/// Share of a block's weight and length that normal (non-operational) transactions may use.
const NORMAL_DISPATCH_RATIO: Perbill = Perbill::from_percent(75);
/// Largest block, in bytes.
const MAX_BLOCK_LENGTH: u32 = 5 * 1024 * 1024;

parameter_types! {
	pub const BlockHashCount: BlockNumber = 2400;
	pub const Version: RuntimeVersion = VERSION;
	/// Two seconds of compute per six-second block.
	pub RuntimeBlockWeights: BlockWeights = BlockWeights::with_sensible_defaults(
		Weight::from_parts(2u64 * WEIGHT_REF_TIME_PER_SECOND, u64::MAX),
		NORMAL_DISPATCH_RATIO,
	);
	/// 5 MiB blocks, of which normal transactions may fill 75%.
	pub RuntimeBlockLength: BlockLength = BlockLength::builder()
		.max_length(MAX_BLOCK_LENGTH)
		.modify_max_length_for_class(DispatchClass::Normal, |max| {
			*max = NORMAL_DISPATCH_RATIO * MAX_BLOCK_LENGTH
		})
		.build();
	pub const SS58Prefix: u16 = SS58_PREFIX;
}

#[derive_impl(frame_system::config_preludes::SolochainDefaultConfig)]
impl frame_system::Config for Runtime {
	type Block = Block;
	type BlockWeights = RuntimeBlockWeights;
	type BlockLength = RuntimeBlockLength;
	type AccountId = AccountId;
	type Nonce = Nonce;
	type Hash = Hash;
	type BlockHashCount = BlockHashCount;
	// The node stores state in ParityDB.
	type DbWeight = ParityDbWeight;
	type Version = Version;
	type AccountData = pallet_balances::AccountData<Balance>;
	type SS58Prefix = SS58Prefix;
	type MaxConsumers = ConstU32<16>;
}

impl pallet_aura::Config for Runtime {
	type AuthorityId = AuraId;
	// A validator disabled for an offence authors no blocks for the rest of the era.
	type DisabledValidators = crate::Session;
	type MaxAuthorities = staking::MaxActiveValidators;
	type AllowMultipleBlocksPerSlot = ConstBool<false>;
	type SlotDuration = pallet_aura::MinimumPeriodTimesTwo<Runtime>;
}

impl pallet_timestamp::Config for Runtime {
	/// Milliseconds since the unix epoch.
	type Moment = u64;
	type OnTimestampSet = Aura;
	type MinimumPeriod = ConstU64<{ SLOT_DURATION / 2 }>;
	type WeightInfo = ();
}

parameter_types! {
	pub const ExistentialDeposit: Balance = EXISTENTIAL_DEPOSIT;
}

impl pallet_balances::Config for Runtime {
	type MaxLocks = ConstU32<50>;
	type MaxReserves = ConstU32<50>;
	type ReserveIdentifier = [u8; 8];
	type Balance = Balance;
	type RuntimeEvent = RuntimeEvent;
	type DustRemoval = ();
	type ExistentialDeposit = ExistentialDeposit;
	type AccountStore = System;
	type WeightInfo = pallet_balances::weights::SubstrateWeight<Runtime>;
	type FreezeIdentifier = RuntimeFreezeReason;
	type MaxFreezes = VariantCountOf<RuntimeFreezeReason>;
	type RuntimeHoldReason = RuntimeHoldReason;
	type RuntimeFreezeReason = RuntimeFreezeReason;
	type DoneSlashHandler = ();
}

parameter_types! {
	/// 0.00001 DLLM per byte of transaction.
	pub const TransactionByteFee: Balance = 10 * MICRO_UNITS;
	/// Congestion pricing (R12 of the 2026-12 review): the weight fee's multiplier rises
	/// while blocks carry more than a quarter of their normal weight and falls while they
	/// carry less, as polkadot-sdk runtimes do it.
	pub const TargetBlockFullness: Perquintill = Perquintill::from_percent(25);
	/// Full blocks double the multiplier in about 50 blocks (5 minutes at 6 s):
	/// (1 + v × 0.75)^50 ≈ 2 with v = 0.0185. Polkadot's 0.000075 would take 5 days, and
	/// stuffing this chain's blocks is what it has to price.
	pub AdjustmentVariable: Multiplier = Multiplier::saturating_from_rational(185, 10_000);
	/// Never below the base fee: an idle chain does not make spam cheap.
	pub MinimumMultiplier: Multiplier = Multiplier::one();
	pub MaximumMultiplier: Multiplier = Bounded::max_value();
}

impl pallet_transaction_payment::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	// A fifth of each fee, and the tips, to the block's author; the rest to the fund.
	type OnChargeTransaction = FungibleAdapter<Balances, staking::DealWithFees>;
	type OperationalFeeMultiplier = ConstU8<5>;
	// One plank per picosecond of reference execution time.
	type WeightToFee = IdentityFee<Balance>;
	type LengthToFee = ConstantMultiplier<Balance, TransactionByteFee>;
	type FeeMultiplierUpdate = TargetedFeeAdjustment<
		Self,
		TargetBlockFullness,
		AdjustmentVariable,
		MinimumMultiplier,
		MaximumMultiplier,
	>;
	type WeightInfo = pallet_transaction_payment::weights::SubstrateWeight<Runtime>;
}

impl pallet_sudo::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeCall = RuntimeCall;
	type WeightInfo = pallet_sudo::weights::SubstrateWeight<Runtime>;
}

parameter_types! {
	pub const TreasuryPalletId: PalletId = PalletId(*b"dllm/cfd");
	pub TreasuryAccount: AccountId = pallet_treasury::Pallet::<Runtime>::account_id();
	pub const SpendPeriod: BlockNumber = DAYS;
	pub const PayoutPeriod: BlockNumber = 30 * DAYS;
	/// The community fund keeps what it does not spend.
	pub const Burn: Permill = Permill::zero();
	/// Root may approve any spend; governance comes later.
	pub const MaxSpend: Balance = Balance::MAX;
	pub const MaxApprovals: u32 = 100;
}

impl pallet_treasury::Config for Runtime {
	type Currency = Balances;
	type RejectOrigin = EnsureRoot<AccountId>;
	type RuntimeEvent = RuntimeEvent;
	type SpendPeriod = SpendPeriod;
	type Burn = Burn;
	type PalletId = TreasuryPalletId;
	type BurnDestination = ();
	type WeightInfo = pallet_treasury::weights::SubstrateWeight<Runtime>;
	type SpendFunds = ();
	type MaxApprovals = MaxApprovals;
	type SpendOrigin = EnsureRootWithSuccess<AccountId, MaxSpend>;
	// Spends are paid in DLLM from the treasury's own account.
	type AssetKind = ();
	type Beneficiary = AccountId;
	type BeneficiaryLookup = IdentityLookup<AccountId>;
	type Paymaster = PayFromAccount<Balances, TreasuryAccount>;
	type BalanceConverter = UnityAssetBalanceConversion;
	type PayoutPeriod = PayoutPeriod;
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = ();
	type BlockNumberProvider = System;
}

impl pallet_utility::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeCall = RuntimeCall;
	type PalletsOrigin = OriginCaller;
	type WeightInfo = pallet_utility::weights::SubstrateWeight<Runtime>;
}

parameter_types! {
	/// Held from whoever opens a multisig operation: its record's 88 bytes, at 10 milli-DLLM
	/// a byte plus 1 DLLM per item stored, back once it executes or is cancelled.
	pub const MultisigDepositBase: Balance = UNITS + 88 * 10 * MILLI_UNITS;
	/// Held per approval stored (32 bytes of account each).
	pub const MultisigDepositFactor: Balance = 32 * 10 * MILLI_UNITS;
}

/// Multi-signature accounts: an account derived from its signatories and threshold that
/// dispatches a call once that many of them approve it (polkadot-js apps' multisig
/// accounts). A production network's sudo key can be one (docs/operators.md).
impl pallet_multisig::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeCall = RuntimeCall;
	type Currency = Balances;
	type DepositBase = MultisigDepositBase;
	type DepositFactor = MultisigDepositFactor;
	type MaxSignatories = ConstU32<100>;
	type WeightInfo = pallet_multisig::weights::SubstrateWeight<Runtime>;
	type BlockNumberProvider = System;
}

/// Genesis endowment of the community fund, so it exists (holds more than the existential
/// deposit) before the first fee arrives.
pub const COMMUNITY_FUND_GENESIS: Balance = 1_000 * UNITS;

impl pallet_models::Config for Runtime {
	type RegistrarOrigin = EnsureRoot<AccountId>;
	type MaxNameLength = ConstU32<64>;
	type MaxChunks = ConstU32<64>;
	type MaxDomains = ConstU32<8>;
	type WeightInfo = pallet_models::weights::SubstrateWeight<Runtime>;
}

parameter_types! {
	/// An expert stakes at least 1000 DLLM of its own.
	pub const MinExpertBond: Balance = 1_000 * UNITS;
	pub const MinDelegation: Balance = 10 * UNITS;
	/// Covers an expert's record (profile, delegation bookkeeping).
	pub const ExpertDeposit: Balance = UNITS;
	/// Covers one entry in an expert's served chunks and in the chunk's server list.
	pub const ChunkDeposit: Balance = 100 * MILLI_UNITS;
	/// Long enough to slash a miner for work found bad after it asked to leave.
	pub const DefaultUnbondingPeriod: BlockNumber = 7 * DAYS;
	pub const MaxCommission: Perbill = Perbill::from_percent(50);
}

impl pallet_experts::Config for Runtime {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Models = Models;
	type SlashDestination = TreasuryAccount;
	type AdminOrigin = EnsureRoot<AccountId>;
	type MinExpertBond = MinExpertBond;
	type MinDelegation = MinDelegation;
	type ExpertDeposit = ExpertDeposit;
	type ChunkDeposit = ChunkDeposit;
	type DefaultUnbondingPeriod = DefaultUnbondingPeriod;
	type MaxCommission = MaxCommission;
	type MaxDomains = ConstU32<8>;
	// A libp2p PeerId is 38 bytes for an ed25519 key; room for other key types.
	type MaxPeerIdLength = ConstU32<64>;
	type MaxChunksServed = ConstU32<16>;
	type MaxExpertsPerChunk = ConstU32<64>;
	type MaxDelegatorsPerExpert = ConstU32<64>;
	type MaxUnbondingChunks = ConstU32<16>;
	type WeightInfo = pallet_experts::weights::SubstrateWeight<Runtime>;
}

parameter_types! {
	pub const PoawPalletId: PalletId = PalletId(*b"dllm/poa");
	pub const MinerShare: Perbill = Perbill::from_percent(85);
	pub const ThroughputBonus: Perbill = Perbill::from_percent(5);
	pub const DisputeSlash: Perbill = Perbill::from_percent(10);
	pub const QueueExpiryFee: Perbill = Perbill::from_percent(2);
	/// A verifier's or referee's prefill is paid a fifth of generating the same tokens
	/// (docs/protocol.md: one batched pass instead of one pass per token).
	pub const PrefillShare: Perbill = Perbill::from_percent(20);
	/// Deadlines and auctions use at most a fifth of the block (400 ms).
	pub PoawHooksWeight: Weight = Perbill::from_percent(20) * RuntimeBlockWeights::get().max_block;
}

impl pallet_poaw::Config for Runtime {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Models = Models;
	type Experts = Experts;
	type Quality = Reputation;
	type CommunityAccount = TreasuryAccount;
	type AdminOrigin = EnsureRoot<AccountId>;
	type PalletId = PoawPalletId;
	type MaxPromptBytes = ConstU32<8192>;
	type MaxGeneratedTokens = ConstU32<2048>;
	type MaxOutputBytes = ConstU32<16384>;
	type MaxFingerprintBytes = ConstU32<16384>;
	type DefaultRedundancy = ConstU8<2>;
	type MaxRedundancy = ConstU8<3>;
	/// Two generators, the verifier's pipeline for each and room for one referee
	/// pipeline fit `MaxSlots` for models of up to 4 chunks; more generators would leave
	/// only smaller models able to ask.
	type MaxGenerators = ConstU8<2>;
	// 24 slots: a model in up to 8 chunks (Mistral-7B's 32 layers in 8 chunks of 4) runs
	// with a generator, a verifier and a referee round over every chunk, or redundancy 3.
	// The benchmarks cover it all.
	type MaxSlots = ConstU32<24>;
	// The expert registry's `MaxExpertsPerChunk`.
	type MaxOffersPerChunk = ConstU32<64>;
	type MinerShare = MinerShare;
	type ThroughputBonus = ThroughputBonus;
	type AssignmentTimeout = ConstU32<{ 10 * MINUTES }>;
	type CommitPeriod = ConstU32<{ 5 * MINUTES }>;
	type RevealPeriod = ConstU32<{ 2 * MINUTES }>;
	type MaxReassignments = ConstU32<4>;
	type ResultRetention = ConstU32<{ 7 * DAYS }>;
	type MaxQueuedTasks = ConstU32<256>;
	// A requester cannot hold more than 1/32 of the queue; a task that expires unassigned
	// leaves 2% of its escrow to the community fund (R2 of the 2026-12 review).
	type MaxQueuedPerRequester = ConstU32<8>;
	type QueueExpiryFee = QueueExpiryFee;
	type MaxAssignmentsPerBlock = ConstU32<8>;
	type MaxTimeoutsPerBlock = ConstU32<10>;
	// Deadlines and auctions are charged their own worst case and stop at a fifth of the
	// block; with the reputation rounds that fits beside a full block of transactions
	// (the runtime test of the heaviest block's hooks checks it).
	type HooksWeight = PoawHooksWeight;
	type DisputeSlash = DisputeSlash;
	type PrefillShare = PrefillShare;
	type MaxRefereeRounds = ConstU8<2>;
	/// Two independent referees per round: one lying or lazy referee cannot settle a
	/// dispute alone. Two referee pipelines over chunks `0..=k` fit beside the two sides
	/// in `MaxSlots` for models of up to 6 chunks (and for early chunks of larger ones);
	/// otherwise the round gets one.
	type RefereesPerRound = ConstU8<2>;
	/// A stage accused of silence answers within 3 blocks (18 s at 6 s blocks).
	type SilenceClaimPeriod = ConstU32<3>;
	type WeightInfo = pallet_poaw::weights::SubstrateWeight<Runtime>;
}

parameter_types! {
	/// The reputation arithmetic (prior, decay, evidence weights, thresholds); the
	/// simulation in `reputation-sim` runs with the same value.
	pub const ReputationParams: pallet_reputation::ScoreParams = pallet_reputation::ScoreParams::DLLM;
	/// A rater stakes at least 100 DLLM: the weight of its ratings.
	pub const MinRaterBond: Balance = 100 * UNITS;
}

impl pallet_reputation::Config for Runtime {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Experts = Experts;
	type Tasks = Poaw;
	type Params = ReputationParams;
	// Rounds of 10 minutes.
	type RatingPeriod = ConstU32<{ 10 * MINUTES }>;
	type MinRaterBond = MinRaterBond;
	type MaxRaters = ConstU32<64>;
	type MaxSubjectsPerRound = ConstU32<256>;
	type MaxAggregationsPerBlock = ConstU32<16>;
	// The task pallet's `MaxSlots`.
	type MaxRatedMiners = ConstU32<16>;
	type WeightInfo = pallet_reputation::weights::SubstrateWeight<Runtime>;
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = ReputationBenchmarkHelper;
}

/// Registered experts and completed tasks for the reputation pallet's benchmarks.
#[cfg(feature = "runtime-benchmarks")]
pub struct ReputationBenchmarkHelper;
#[cfg(feature = "runtime-benchmarks")]
impl pallet_reputation::BenchmarkHelper<AccountId> for ReputationBenchmarkHelper {
	fn make_expert(who: &AccountId) {
		use dllm_primitives::market::{ExpertRegistry, ModelRegistry};
		let model = <Models as ModelRegistry>::register_for_benchmark(1);
		<Experts as ExpertRegistry<AccountId, Balance>>::register_for_benchmark(
			who, model, 0, UNITS,
		);
	}
	fn completed_task(
		requester: &AccountId,
		domain: Option<pallet_reputation::Domain>,
		miners: &[AccountId],
	) -> pallet_reputation::TaskId {
		Poaw::completed_for_benchmark(requester, domain, miners)
	}
}
