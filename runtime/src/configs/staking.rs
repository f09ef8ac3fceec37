//! Validators by stake (issue 16): Aura and GRANDPA authorities come from pallet-session,
//! which takes each era's set from pallet-staking's on-chain NPoS election; block authors
//! earn era points, stakers earn era payouts by the inflation curve below, GRANDPA
//! equivocations are slashed through pallet-offences, and a share of every transaction
//! fee goes to the block's author (docs/operators.md, "Validators").

use crate::{
	AccountId, Aura, Balance, Balances, BlockNumber, Historical, Offences, Runtime, RuntimeEvent,
	RuntimeHoldReason, Session, SessionKeys, Staking, Timestamp, HOURS,
};
use polkadot_sdk::{
	frame_election_provider_support::{
		bounds::{ElectionBounds, ElectionBoundsBuilder},
		onchain, SequentialPhragmen,
	},
	frame_support::{
		parameter_types,
		traits::{
			fungible::{Balanced, Credit},
			tokens::imbalance::ResolveTo,
			ConstU32, Imbalance, Nothing, OnUnbalanced,
		},
	},
	frame_system::EnsureRoot,
	pallet_authorship, pallet_grandpa, pallet_offences, pallet_session, pallet_staking,
	pallet_treasury,
	sp_runtime::{
		traits::{ConvertInto, OpaqueKeys, Saturating},
		Perbill, Perquintill,
	},
	sp_staking::{EraIndex, SessionIndex},
};

parameter_types! {
	/// Blocks per session: an hour of 6 s blocks. Read from storage so that a test chain
	/// spec can shorten it (`:SessionPeriod:` in its raw genesis).
	pub storage SessionPeriod: BlockNumber = HOURS;
	/// Sessions per era: an election every 6 hours. In storage for the same reason.
	pub storage SessionsPerEra: SessionIndex = 6;
	pub const SessionOffset: BlockNumber = 0;
	/// Bonded stake leaves after 28 eras: 7 days, long enough to slash for an equivocation
	/// found late.
	pub const BondingDuration: EraIndex = 28;
	/// Slashes apply at once: an equivocation is proven by two signed votes, not judged,
	/// and deferring would need someone (root) to cancel the false ones.
	pub const SlashDeferDuration: EraIndex = 0;
	/// Most validators in an era; Aura's and GRANDPA's `MaxAuthorities`.
	pub const MaxActiveValidators: u32 = 100;
	/// Nominators paid per page of a validator's payout.
	pub const MaxExposurePageSize: u32 = 256;
	/// Eras whose rewards can still be claimed: 21 days.
	pub const HistoryDepth: u32 = 84;
	/// The on-chain election reads at most 20 000 voters and 1 000 candidates.
	pub ElectionBoundsOnChain: ElectionBounds = ElectionBoundsBuilder::default()
		.voters_count(20_000.into())
		.targets_count(1_000.into())
		.build();
	/// An equivocation report is valid for the bonding period (in blocks).
	pub ReportLongevity: u64 = BondingDuration::get() as u64
		* SessionsPerEra::get() as u64
		* SessionPeriod::get() as u64;
	/// Sessions whose GRANDPA set ids are kept for equivocation proofs: the bonding
	/// period at the default era length.
	pub const MaxSetIdSessionEntries: u64 = 28 * 6;
}

impl pallet_authorship::Config for Runtime {
	type FindAuthor = pallet_session::FindAccountFromAuthorIndex<Self, Aura>;
	// Era points: 20 per authored block.
	type EventHandler = Staking;
}

impl pallet_session::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	// A validator is its stash account.
	type ValidatorId = AccountId;
	type ValidatorIdOf = ConvertInto;
	type ShouldEndSession = pallet_session::PeriodicSessions<SessionPeriod, SessionOffset>;
	type NextSessionRotation = pallet_session::PeriodicSessions<SessionPeriod, SessionOffset>;
	type SessionManager =
		ChillOffline<pallet_session::historical::NoteHistoricalRoot<Self, Staking>>;
	type SessionHandler = <SessionKeys as OpaqueKeys>::KeyTypeIdProviders;
	type Keys = SessionKeys;
	// An offender is disabled (cannot author) for the rest of the era, at most a third of
	// the set at once.
	type DisablingStrategy = pallet_session::disabling::UpToLimitWithReEnablingDisablingStrategy;
	type WeightInfo = pallet_session::weights::SubstrateWeight<Runtime>;
	type Currency = Balances;
	type KeyDeposit = ();
}

/// Chills the validators that authored no block in the active era although at least a
/// whole session of it has passed, then hands over to `Inner` (staking, through the
/// historical session roots): a validator whose node is down takes no Aura slot and
/// gives no GRANDPA vote, and more than a third of the set down stalls finality, so it
/// leaves the next election instead of staying elected. Aura gives every validator
/// every n-th slot, so an online validator authors about `SessionPeriod / n` blocks per
/// session (6 an hour with the full 100 validators at 6 s); none in a whole session is
/// its node being down (or far behind). The count is the era's points (staking keeps no
/// per-session count), so a validator that authored earlier in the era and then went
/// down is chilled only after the first session of the next era. Being chilled costs
/// nothing but rewards: `staking.validate` again once back. Staking's `Chilled` event
/// says who.
pub struct ChillOffline<Inner>(core::marker::PhantomData<Inner>);

impl<Inner: pallet_session::SessionManager<AccountId>> pallet_session::SessionManager<AccountId>
	for ChillOffline<Inner>
{
	fn new_session(new_index: SessionIndex) -> Option<alloc::vec::Vec<AccountId>> {
		Inner::new_session(new_index)
	}

	fn new_session_genesis(new_index: SessionIndex) -> Option<alloc::vec::Vec<AccountId>> {
		Inner::new_session_genesis(new_index)
	}

	fn end_session(ending: SessionIndex) {
		// Before staking plans the next election (in `new_session` of this rotation).
		chill_silent_validators();
		Inner::end_session(ending)
	}

	fn start_session(start_index: SessionIndex) {
		Inner::start_session(start_index)
	}
}

/// Chills each validator of the ending session that has no era points in the active
/// era (era points count authored blocks).
fn chill_silent_validators() {
	use polkadot_sdk::sp_staking::StakingInterface;
	// The ending session is a whole session of the active era: an era becomes active as
	// its first session starts.
	let Some(era) = pallet_staking::ActiveEra::<Runtime>::get() else { return };
	let points = pallet_staking::ErasRewardPoints::<Runtime>::get(era.index);
	for validator in pallet_session::Validators::<Runtime>::get() {
		let authored = points.individual.get(&validator).is_some_and(|points| *points > 0);
		if !authored && pallet_staking::Validators::<Runtime>::contains_key(&validator) {
			// Fails only for an account that is no stash, which a validator always is.
			let _ = <Staking as StakingInterface>::chill(&validator);
		}
	}
}

impl pallet_session::historical::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type FullIdentification = ();
	type FullIdentificationOf = pallet_staking::UnitIdentificationOf<Self>;
}

impl pallet_offences::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type IdentificationTuple = pallet_session::historical::IdentificationTuple<Self>;
	type OnOffenceHandler = Staking;
}

/// The election: sequential Phragmén over all validators and nominators, on chain at the
/// end of each era (fine up to the bounds above; a larger network moves to the
/// multi-block election provider).
pub struct OnChainSeqPhragmen;
impl onchain::Config for OnChainSeqPhragmen {
	type Sort = polkadot_sdk::frame_support::traits::ConstBool<true>;
	type System = Runtime;
	type Solver = SequentialPhragmen<AccountId, Perbill>;
	type MaxBackersPerWinner = MaxExposurePageSize;
	type MaxWinnersPerPage = MaxActiveValidators;
	type DataProvider = Staking;
	type WeightInfo =
		polkadot_sdk::frame_election_provider_support::weights::SubstrateWeight<Runtime>;
	type Bounds = ElectionBoundsOnChain;
}

/// Yearly inflation paid to stakers, as a share of the issuance: from
/// [`MIN_INFLATION`] when nothing is staked up to [`MAX_INFLATION`] at [`IDEAL_STAKE`],
/// then falling off (halving every [`FALLOFF`] of stake beyond it) towards the minimum:
/// polkadot-sdk's NPoS curve (`pallet_staking_reward_fn::compute_inflation`). What the
/// maximum leaves unpaid goes to the community fund each era.
pub const MIN_INFLATION: Perquintill = Perquintill::from_parts(25_000_000_000_000_000);
/// 10% a year at the ideal stake.
pub const MAX_INFLATION: Perquintill = Perquintill::from_percent(10);
/// Half of the issuance staked behind validators.
pub const IDEAL_STAKE: Perquintill = Perquintill::from_percent(50);
/// 5%.
pub const FALLOFF: Perquintill = Perquintill::from_percent(5);

/// Era payouts by the curve above.
pub struct InflationCurve;
impl pallet_staking::EraPayout<Balance> for InflationCurve {
	fn era_payout(
		total_staked: Balance,
		total_issuance: Balance,
		era_duration_millis: u64,
	) -> (Balance, Balance) {
		// A Julian year.
		const MILLIS_PER_YEAR: u64 = 1000 * 3600 * 24 * 36525 / 100;
		let stake = Perquintill::from_rational(total_staked, total_issuance.max(1));
		let shape =
			polkadot_sdk::pallet_staking_reward_fn::compute_inflation(stake, IDEAL_STAKE, FALLOFF);
		let yearly =
			MIN_INFLATION.saturating_add(shape * MAX_INFLATION.saturating_sub(MIN_INFLATION));
		let share_of_year = Perquintill::from_rational(era_duration_millis, MILLIS_PER_YEAR);
		let to_stakers = share_of_year * (yearly * total_issuance);
		let most = share_of_year * (MAX_INFLATION * total_issuance);
		(to_stakers, most.saturating_sub(to_stakers))
	}
}

impl pallet_staking::Config for Runtime {
	type OldCurrency = Balances;
	type Currency = Balances;
	type CurrencyBalance = Balance;
	type RuntimeHoldReason = RuntimeHoldReason;
	type UnixTime = Timestamp;
	type CurrencyToVote = polkadot_sdk::sp_staking::currency_to_vote::U128CurrencyToVote;
	type ElectionProvider = onchain::OnChainExecution<OnChainSeqPhragmen>;
	type GenesisElectionProvider = onchain::OnChainExecution<OnChainSeqPhragmen>;
	type NominationsQuota = pallet_staking::FixedNominationsQuota<16>;
	type HistoryDepth = HistoryDepth;
	// What the curve does not pay stakers, and slashed stake, go to the community fund.
	type RewardRemainder = ToCommunityFund;
	type RuntimeEvent = RuntimeEvent;
	type Slash = ToCommunityFund;
	type Reward = ();
	type SessionsPerEra = SessionsPerEra;
	type BondingDuration = BondingDuration;
	type SlashDeferDuration = SlashDeferDuration;
	type AdminOrigin = EnsureRoot<AccountId>;
	type SessionInterface = Self;
	type EraPayout = InflationCurve;
	type NextNewSession = Session;
	type MaxExposurePageSize = MaxExposurePageSize;
	type MaxValidatorSet = MaxActiveValidators;
	// Voters and candidates straight from the staking maps (no bags list): enough for
	// the election bounds above.
	type VoterList = pallet_staking::UseNominatorsAndValidatorsMap<Self>;
	type TargetList = pallet_staking::UseValidatorsMap<Self>;
	type MaxUnlockingChunks = ConstU32<32>;
	type MaxControllersInDeprecationBatch = ConstU32<100>;
	type EventListeners = ();
	type Filter = Nothing;
	type BenchmarkingConfig = StakingBenchmarkingConfig;
	type WeightInfo = pallet_staking::weights::SubstrateWeight<Runtime>;
}

/// Sizes for pallet-staking's own benchmarks.
pub struct StakingBenchmarkingConfig;
impl pallet_staking::BenchmarkingConfig for StakingBenchmarkingConfig {
	type MaxValidators = ConstU32<1000>;
	type MaxNominators = ConstU32<1000>;
}

impl pallet_grandpa::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type WeightInfo = ();
	type MaxAuthorities = MaxActiveValidators;
	type MaxNominators = MaxExposurePageSize;
	type MaxSetIdSessionEntries = MaxSetIdSessionEntries;
	type KeyOwnerProof = polkadot_sdk::sp_session::MembershipProof;
	type EquivocationReportSystem =
		pallet_grandpa::EquivocationReportSystem<Self, Offences, Historical, ReportLongevity>;
}

/// Pays into the community fund (the treasury's account).
pub type ToCommunityFund = ResolveTo<pallet_treasury::TreasuryAccountId<Runtime>, Balances>;

/// The share of a transaction's fee that goes to the block's author; the rest goes to
/// the community fund. Tips go to the author whole.
pub const AUTHOR_FEE_SHARE: Perbill = Perbill::from_percent(20);

/// Splits transaction fees between the block's author and the community fund: the
/// author is paid for including transactions (a fifth: enough that including is worth
/// it, not so much that stuffing its own blocks with fees pays), the fund gets the rest.
pub struct DealWithFees;
impl OnUnbalanced<Credit<AccountId, Balances>> for DealWithFees {
	fn on_unbalanceds(mut fees_then_tips: impl Iterator<Item = Credit<AccountId, Balances>>) {
		let Some(fees) = fees_then_tips.next() else { return };
		let fees_to_author = AUTHOR_FEE_SHARE * fees.peek();
		let (mut to_author, to_fund) = fees.split(fees_to_author);
		if let Some(tips) = fees_then_tips.next() {
			to_author.subsume(tips);
		}
		ToCommunityFund::on_unbalanced(to_fund);
		// No author (a block built outside consensus, in tests), or one that cannot take
		// it: the fund gets it.
		let unpaid = match pallet_authorship::Pallet::<Runtime>::author() {
			Some(author) => Balances::resolve(&author, to_author).err(),
			None => Some(to_author),
		};
		if let Some(unpaid) = unpaid {
			ToCommunityFund::on_unbalanced(unpaid);
		}
	}
}
