//! Validators by stake: the election, era payouts by the inflation curve, slashing of a
//! GRANDPA equivocation through pallet-offences, and the session keys it all rests on.

use super::{account, aura_digest, ext_from_preset};
use crate::{
	configs::staking::{
		InflationCurve, SessionPeriod, SessionsPerEra, IDEAL_STAKE, MAX_INFLATION, MIN_INFLATION,
	},
	genesis_config_presets::GENESIS_VALIDATOR_BOND,
	token::UNITS,
	AccountId, Balance, Balances, Executive, Grandpa, Header, Historical, Runtime, RuntimeCall,
	RuntimeOrigin, Session, SessionKeys, Staking, System, UncheckedExtrinsic, SLOT_DURATION,
};
use codec::Encode;
use polkadot_sdk::{
	frame_support::{
		assert_ok,
		traits::{fungible::Inspect, KeyOwnerProofSystem},
	},
	pallet_aura, pallet_session, pallet_staking,
	pallet_staking::{EraPayout, RewardDestination, ValidatorPrefs},
	sp_consensus_grandpa::{self, AuthorityId as GrandpaId},
	sp_core::H256,
	sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET,
	sp_io::TestExternalities,
	sp_keyring::{Ed25519Keyring, Sr25519Keyring},
	sp_keystore::{testing::MemoryKeystore, KeystoreExt},
	sp_runtime::{traits::Header as _, Perbill, Perquintill},
};

/// Blocks per session and sessions per era in these tests: an era is 20 blocks.
const TEST_SESSION_PERIOD: u32 = 10;
const TEST_SESSIONS_PER_ERA: u32 = 2;

/// The local testnet (Alice and Bob validating) with short eras and a keystore for
/// generating session keys.
fn local_chain() -> TestExternalities {
	let mut ext = ext_from_preset(LOCAL_TESTNET_RUNTIME_PRESET);
	ext.register_extension(KeystoreExt::new(MemoryKeystore::new()));
	ext.execute_with(|| {
		SessionPeriod::set(&TEST_SESSION_PERIOD);
		SessionsPerEra::set(&TEST_SESSIONS_PER_ERA);
	});
	ext
}

/// Runs whole blocks, as a node imports them, up to block `number`: each authored in the
/// next Aura slot, with its timestamp inherent.
fn run_to_block(number: u32) {
	run_to_block_without(number, None)
}

/// As [`run_to_block`], but the slots of `offline` pass unused: its node is down.
fn run_to_block_without(number: u32, offline: Option<&AccountId>) {
	while System::block_number() < number {
		let next = System::block_number() + 1;
		let validators = pallet_session::Validators::<Runtime>::get();
		let mut slot = u64::from(pallet_aura::CurrentSlot::<Runtime>::get()) + 1;
		while offline
			.is_some_and(|down| validators.get(slot as usize % validators.len()) == Some(down))
		{
			slot += 1;
		}
		let header = Header::new(
			next,
			Default::default(),
			Default::default(),
			System::parent_hash(),
			aura_digest(slot),
		);
		Executive::initialize_block(&header);
		let timestamp = RuntimeCall::Timestamp(polkadot_sdk::pallet_timestamp::Call::set {
			now: slot * SLOT_DURATION,
		});
		assert_ok!(Executive::apply_extrinsic(UncheckedExtrinsic::new_bare(timestamp))
			.expect("the timestamp inherent applies"));
		Executive::finalize_block();
	}
}

fn active_era() -> u32 {
	pallet_staking::ActiveEra::<Runtime>::get().map(|era| era.index).unwrap_or_default()
}

/// Runs blocks until era `era` is active.
fn run_to_era(era: u32) {
	while active_era() < era {
		run_to_block(System::block_number() + 1);
	}
}

/// `who`'s balance, free and held (bonded stake is held).
fn total(who: Sr25519Keyring) -> Balance {
	Balances::total_balance(&account(who))
}

/// Session keys generated in the keystore from `who`'s dev seed, with the proof that
/// `session.setKeys` asks for: what `author_rotateKeysWithOwner` returns on a node.
fn generate_session_keys(who: Sr25519Keyring) -> (SessionKeys, Vec<u8>) {
	let seed = format!("//{who}").into_bytes();
	let generated = SessionKeys::generate(&account(who).encode(), Some(seed));
	(generated.keys, generated.proof.encode())
}

/// Bonds `stake` of `who`'s and offers it as a validator with its session keys.
fn become_validator(who: Sr25519Keyring, stake: Balance) -> SessionKeys {
	let origin = RuntimeOrigin::signed(account(who));
	assert_ok!(Staking::bond(origin.clone(), stake, RewardDestination::Staked));
	let (keys, proof) = generate_session_keys(who);
	assert_ok!(Session::set_keys(origin.clone(), keys.clone(), proof));
	let prefs = ValidatorPrefs { commission: Perbill::from_percent(5), blocked: false };
	assert_ok!(Staking::validate(origin, prefs));
	keys
}

#[test]
fn an_election_picks_the_bonded_validators_and_their_keys_author_and_finalize() {
	local_chain().execute_with(|| {
		let (alice, bob, charlie) = (
			account(Sr25519Keyring::Alice),
			account(Sr25519Keyring::Bob),
			account(Sr25519Keyring::Charlie),
		);
		let sorted = |mut accounts: Vec<_>| {
			accounts.sort();
			accounts
		};
		assert_eq!(sorted(Session::validators()), sorted(vec![alice.clone(), bob.clone()]));
		let keys = become_validator(Sr25519Keyring::Charlie, 50_000 * UNITS);
		assert_eq!(keys.grandpa, GrandpaId::from(Ed25519Keyring::Charlie.public()));
		// A key proof for another account is refused.
		let (other_keys, proof_for_dave) = generate_session_keys(Sr25519Keyring::Dave);
		assert!(Session::set_keys(
			RuntimeOrigin::signed(charlie.clone()),
			other_keys,
			proof_for_dave
		)
		.is_err());

		// The next era's election takes Charlie in; the session after it makes him an
		// authority of both Aura and GRANDPA.
		run_to_era(1);
		run_to_block(System::block_number() + 1);
		assert_eq!(sorted(Session::validators()), sorted(vec![alice, bob, charlie.clone()]));
		let aura = pallet_aura::Authorities::<Runtime>::get();
		assert!(aura.contains(&keys.aura), "Charlie authors");
		let grandpa = Grandpa::grandpa_authorities();
		assert!(grandpa.iter().any(|(id, _)| *id == keys.grandpa), "Charlie finalizes");
		let exposure = pallet_staking::ErasStakersOverview::<Runtime>::get(1, &charlie)
			.expect("Charlie is exposed in era 1");
		assert_eq!(exposure.own, 50_000 * UNITS);

		// Chilled, he leaves the set at the next election.
		assert_ok!(Staking::chill(RuntimeOrigin::signed(charlie.clone())));
		run_to_era(2);
		run_to_block(System::block_number() + 1);
		assert!(!Session::validators().contains(&charlie));
	});
}

/// The curve at its corners, over a year: 2.5% with nothing staked, 10% at the ideal
/// stake (all to stakers), and less beyond it, the rest of the 10% to the fund.
#[test]
fn era_payouts_follow_the_documented_inflation_curve() {
	const YEAR_MILLIS: u64 = 1000 * 3600 * 24 * 36525 / 100;
	let issuance: Balance = 1_000_000_000 * UNITS;
	let (to_stakers, to_fund) = InflationCurve::era_payout(0, issuance, YEAR_MILLIS);
	assert_eq!(to_stakers, MIN_INFLATION * issuance);
	assert_eq!(to_stakers + to_fund, MAX_INFLATION * issuance);
	let (to_stakers, to_fund) =
		InflationCurve::era_payout(IDEAL_STAKE * issuance, issuance, YEAR_MILLIS);
	assert_eq!(to_stakers, MAX_INFLATION * issuance);
	assert_eq!(to_fund, 0);
	let (beyond, _) = InflationCurve::era_payout(issuance * 3 / 4, issuance, YEAR_MILLIS);
	assert!(beyond < to_stakers && beyond > MIN_INFLATION * issuance, "{beyond}");
	// An era of 6 hours pays its share of the year.
	let era = 6 * 3600 * 1000;
	let (per_era, _) = InflationCurve::era_payout(IDEAL_STAKE * issuance, issuance, era);
	let expected = Perquintill::from_rational(era, YEAR_MILLIS) * (MAX_INFLATION * issuance);
	assert_eq!(per_era, expected);
}

/// An era's reward is split among its validators by era points (one block, 20 points),
/// then between a validator and its nominators by stake, after its commission; what the
/// curve does not pay goes to the community fund.
#[test]
fn an_era_pays_validators_and_nominators_by_the_curve() {
	local_chain().execute_with(|| {
		let dave = Sr25519Keyring::Dave;
		let nominated = 50_000 * UNITS;
		let origin = RuntimeOrigin::signed(account(dave));
		assert_ok!(Staking::bond(origin.clone(), nominated, RewardDestination::Staked));
		assert_ok!(Staking::nominate(origin, vec![account(Sr25519Keyring::Alice).into()]));
		run_to_era(1);
		let fund = crate::community_account();
		let fund_before = Balances::free_balance(&fund);
		let issuance = Balances::total_issuance();
		run_to_era(2);

		let reward = pallet_staking::ErasValidatorReward::<Runtime>::get(1).expect("era 1 paid");
		let staked = pallet_staking::ErasTotalStake::<Runtime>::get(1);
		assert_eq!(staked, 2 * GENESIS_VALIDATOR_BOND + nominated);
		// The era's length on the chain's clock, within a block either way.
		let era_millis = u64::from(TEST_SESSION_PERIOD * TEST_SESSIONS_PER_ERA) * SLOT_DURATION;
		let bounds = [era_millis - SLOT_DURATION, era_millis + SLOT_DURATION]
			.map(|millis| InflationCurve::era_payout(staked, issuance, millis));
		assert!(reward >= bounds[0].0 && reward <= bounds[1].0, "{reward} in {bounds:?}");
		let remainder = Balances::free_balance(&fund) - fund_before;
		assert!(remainder >= bounds[0].1 && remainder <= bounds[1].1, "{remainder} in {bounds:?}");

		// Anyone may ask for the payout; Alice and Dave share hers by stake.
		let points = pallet_staking::ErasRewardPoints::<Runtime>::get(1);
		let alice_points = points.individual.get(&account(Sr25519Keyring::Alice)).copied();
		let alice_part =
			Perbill::from_rational(alice_points.expect("Alice authored"), points.total) * reward;
		let (alice_before, dave_before) = (total(Sr25519Keyring::Alice), total(dave));
		assert_ok!(Staking::payout_stakers(
			RuntimeOrigin::signed(account(Sr25519Keyring::Eve)),
			account(Sr25519Keyring::Alice),
			1
		));
		let (alice_gain, dave_gain) =
			(total(Sr25519Keyring::Alice) - alice_before, total(dave) - dave_before);
		// Genesis validators ask no commission: a third to Dave (50k of 150k), up to the
		// rounding of the Perbill shares.
		let close = |a: Balance, b: Balance| a.abs_diff(b) <= b / 1_000_000;
		assert!(close(dave_gain, alice_part / 3), "{dave_gain} vs {}", alice_part / 3);
		assert!(close(alice_gain + dave_gain, alice_part), "{alice_gain} + {dave_gain}");
		// Paid once.
		assert!(Staking::payout_stakers(
			RuntimeOrigin::signed(account(Sr25519Keyring::Eve)),
			account(Sr25519Keyring::Alice),
			1
		)
		.is_err());
	});
}

/// Two GRANDPA prevotes by Bob for different blocks in one round, signed with his key.
fn bob_equivocates(set_id: u64) -> sp_consensus_grandpa::EquivocationProof<H256, u32> {
	let round = 1;
	let signed_prevote = |hash: H256| {
		let prevote = finality_grandpa::Prevote { target_hash: hash, target_number: 1 };
		let message = finality_grandpa::Message::Prevote(prevote.clone());
		let payload = sp_consensus_grandpa::localized_payload(round, set_id, &message);
		(prevote, Ed25519Keyring::Bob.sign(&payload).into())
	};
	sp_consensus_grandpa::EquivocationProof::new(
		set_id,
		sp_consensus_grandpa::Equivocation::Prevote(finality_grandpa::Equivocation {
			round_number: round,
			identity: Ed25519Keyring::Bob.public().into(),
			first: signed_prevote(H256::repeat_byte(1)),
			second: signed_prevote(H256::repeat_byte(2)),
		}),
	)
}

/// A GRANDPA equivocation, reported with the proof that the key was Bob's in its
/// session, goes through pallet-offences to staking: Bob's bond is slashed, to the
/// community fund. GRANDPA slashes min((3k/n)², 1) of the bond for k offenders of n
/// validators: all of it, here (1 of 2). The reporters' share (the 10% slash reward
/// fraction of staking's first-offence half, 5%) is burned: an unsigned report names no
/// reporter. With two validators none is disabled: the disabling strategy never
/// disables more than a third of the set.
#[test]
fn a_grandpa_equivocation_is_slashed_through_the_offences_pallet() {
	local_chain().execute_with(|| {
		run_to_block(3);
		let bob = account(Sr25519Keyring::Bob);
		let bonded_before = pallet_staking::Ledger::<Runtime>::get(&bob).expect("bonded").active;
		let fund = crate::community_account();
		let fund_before = Balances::free_balance(&fund);
		let set_id = Grandpa::current_set_id();
		let bob_grandpa = GrandpaId::from(Ed25519Keyring::Bob.public());
		let key_owner_proof =
			Historical::prove((sp_consensus_grandpa::KEY_TYPE, bob_grandpa)).expect("Bob's key");

		// Votes of a set that never was prove nothing.
		assert!(Grandpa::report_equivocation_unsigned(
			RuntimeOrigin::none(),
			Box::new(bob_equivocates(set_id + 1)),
			key_owner_proof.clone()
		)
		.is_err());

		assert_ok!(Grandpa::report_equivocation_unsigned(
			RuntimeOrigin::none(),
			Box::new(bob_equivocates(set_id)),
			key_owner_proof.clone()
		));
		// Staking processes the queued offence in the blocks that follow.
		run_to_block(System::block_number() + 3);
		let bonded_after = pallet_staking::Ledger::<Runtime>::get(&bob).expect("bonded").active;
		assert_eq!(bonded_after, 0, "all of Bob's stake is slashed");
		let slashed = bonded_before - bonded_after;
		assert_eq!(Balances::free_balance(&fund) - fund_before, slashed - slashed / 20);
		assert!(pallet_session::DisabledValidators::<Runtime>::get().is_empty());
		// The same offence again is a duplicate.
		assert!(Grandpa::report_equivocation_unsigned(
			RuntimeOrigin::none(),
			Box::new(bob_equivocates(set_id)),
			key_owner_proof
		)
		.is_err());
	});
}

/// A production genesis refuses what would build a broken chain, saying what to fix.
#[test]
fn a_production_genesis_refuses_what_would_break_the_chain() {
	use crate::genesis_config_presets::{
		production_genesis, ProductionGenesisError, Validator, MIN_VALIDATOR_BOND,
	};
	let validator = |who: Sr25519Keyring, bond: Balance| Validator {
		stash: account(who),
		aura: who.public().into(),
		grandpa: Ed25519Keyring::Alice.public().into(),
		bond,
	};
	let endowed = vec![(account(Sr25519Keyring::Alice), 2 * MIN_VALIDATOR_BOND)];
	assert_eq!(
		production_genesis(vec![], endowed.clone(), None),
		Err(ProductionGenesisError::NoValidators)
	);
	let small = MIN_VALIDATOR_BOND - 1;
	assert_eq!(
		production_genesis(vec![validator(Sr25519Keyring::Alice, small)], endowed.clone(), None),
		Err(ProductionGenesisError::BondTooSmall {
			stash: account(Sr25519Keyring::Alice),
			bond: small
		})
	);
	// The whole endowment bonded leaves nothing for the existential deposit.
	let all = 2 * MIN_VALIDATOR_BOND;
	assert!(matches!(
		production_genesis(vec![validator(Sr25519Keyring::Alice, all)], endowed.clone(), None),
		Err(ProductionGenesisError::BondNotEndowed { .. })
	));
	let twice = vec![
		validator(Sr25519Keyring::Alice, MIN_VALIDATOR_BOND),
		validator(Sr25519Keyring::Alice, MIN_VALIDATOR_BOND),
	];
	assert_eq!(
		production_genesis(twice, endowed.clone(), None),
		Err(ProductionGenesisError::Duplicate(account(Sr25519Keyring::Alice)))
	);
	// Two validators with one GRANDPA key.
	let endowed_both =
		[endowed.clone(), vec![(account(Sr25519Keyring::Bob), 2 * MIN_VALIDATOR_BOND)]].concat();
	let shared = vec![
		validator(Sr25519Keyring::Alice, MIN_VALIDATOR_BOND),
		validator(Sr25519Keyring::Bob, MIN_VALIDATOR_BOND),
	];
	assert_eq!(
		production_genesis(shared, endowed_both, None),
		Err(ProductionGenesisError::SharedKey(account(Sr25519Keyring::Bob)))
	);
	let one = || vec![validator(Sr25519Keyring::Alice, MIN_VALIDATOR_BOND)];
	let dust = [endowed.clone(), vec![(account(Sr25519Keyring::Eve), 0)]].concat();
	assert_eq!(
		production_genesis(one(), dust, None),
		Err(ProductionGenesisError::EndowmentTooSmall(account(Sr25519Keyring::Eve)))
	);
	let fund = [endowed.clone(), vec![(crate::community_account(), UNITS)]].concat();
	assert_eq!(production_genesis(one(), fund, None), Err(ProductionGenesisError::FundEndowed));
	let genesis = production_genesis(one(), endowed.clone(), None).expect("a valid genesis");
	assert_eq!(genesis["sudo"]["key"], serde_json::Value::Null);
	let root = account(Sr25519Keyring::Ferdie);
	let genesis = production_genesis(one(), endowed, Some(root.clone())).expect("with a root");
	assert_eq!(genesis["sudo"]["key"], serde_json::to_value(&root).expect("JSON"));
}

/// A validator whose node is down authors nothing: once a whole session of the era has
/// passed without a block of its, it is chilled (staking's `Chilled` event), the next election leaves it out, and
/// the chain goes on with the others. It comes back by validating again.
#[test]
fn a_validator_silent_for_a_session_is_chilled_and_leaves_the_set() {
	local_chain().execute_with(|| {
		let charlie = account(Sr25519Keyring::Charlie);
		become_validator(Sr25519Keyring::Charlie, 50_000 * UNITS);
		run_to_era(1);
		assert!(Session::validators().contains(&charlie));
		let chilled = |who: &AccountId| {
			System::events().iter().any(|record| {
				record.event
					== crate::RuntimeEvent::Staking(pallet_staking::Event::Chilled {
						stash: who.clone(),
					})
			})
		};

		// Charlie's node stops as era 1 begins: a session of blocks by Alice and Bob alone,
		// up to the block that ends it (events are the last block's).
		let until = System::block_number() + TEST_SESSION_PERIOD;
		run_to_block_without(until, Some(&charlie));
		assert!(chilled(&charlie), "Charlie is chilled");
		assert!(
			!chilled(&account(Sr25519Keyring::Alice)) && !chilled(&account(Sr25519Keyring::Bob))
		);
		assert!(!pallet_staking::Validators::<Runtime>::contains_key(&charlie));
		// Out of the set after the next election; the others go on.
		run_to_era(3);
		run_to_block_without(System::block_number() + 1, Some(&charlie));
		assert!(!Session::validators().contains(&charlie));
		assert_eq!(Session::validators().len(), 2);

		// Back online, Charlie validates again.
		let prefs = ValidatorPrefs { commission: Perbill::from_percent(5), blocked: false };
		assert_ok!(Staking::validate(RuntimeOrigin::signed(charlie.clone()), prefs));
		run_to_era(5);
		run_to_block(System::block_number() + 1);
		assert!(Session::validators().contains(&charlie));
	});
}
