use crate::{
	mock::*,
	score::{ScoreParams, EVIDENCE_UNIT},
	Cause, Error, Event, OpenRounds, RaterCount, Raters, RatingSubject, RoundRatings,
	RoundSubjects, Scores, TaskRatings,
};
use dllm_primitives::market::{Domain, ExpertQuality, TaskOutcome, NEUTRAL_QUALITY};
use polkadot_sdk::{
	frame_support::{
		assert_noop, assert_ok,
		traits::fungible::{Inspect, InspectHold},
	},
	sp_runtime::{DispatchError, Perbill},
};

const P: ScoreParams = ScoreParams::DLLM;

fn domain(bytes: &[u8]) -> Domain {
	Domain::truncate_from(bytes.to_vec())
}

fn pct(value: u32) -> Perbill {
	Perbill::from_percent(value)
}

fn origin(who: u64) -> RuntimeOrigin {
	RuntimeOrigin::signed(who)
}

fn last_event() -> RuntimeEvent {
	System::events().pop().expect("an event").event
}

fn check() {
	Reputation::do_try_state().expect("invariants hold");
}

/// Blocks per decay period, as block numbers.
const DECAY: u64 = P.decay_period as u64;

#[test]
fn an_unknown_expert_has_neutral_quality() {
	new_test_ext().execute_with(|| {
		assert_eq!(<Reputation as ExpertQuality<u64>>::quality(&1, None), Some(NEUTRAL_QUALITY));
		assert_eq!(
			<Reputation as ExpertQuality<u64>>::quality(&1, Some(&domain(b"code"))),
			Some(NEUTRAL_QUALITY)
		);
		assert_eq!(Reputation::score(&1), NEUTRAL_QUALITY);
	});
}

#[test]
fn reports_move_the_score_overall_and_in_the_domain() {
	new_test_ext().execute_with(|| {
		let code = domain(b"code");
		<Reputation as ExpertQuality<u64>>::report(&1, Some(&code), TaskOutcome::Verified);
		let record = Scores::<Test>::get(1).expect("a record");
		assert_eq!((record.positive, record.negative, record.verified), (EVIDENCE_UNIT, 0, 1));
		let in_code = crate::DomainScores::<Test>::get(1, &code).expect("a domain record");
		assert_eq!(in_code.verified, 1);
		assert_eq!(
			last_event(),
			RuntimeEvent::Reputation(Event::ReputationUpdated {
				expert: 1,
				domain: Some(code.clone()),
				cause: Cause::Task(TaskOutcome::Verified),
				score: Perbill::from_rational(2u32, 3u32),
				domain_score: Some(Perbill::from_rational(2u32, 3u32)),
			})
		);
		<Reputation as ExpertQuality<u64>>::report(&1, None, TaskOutcome::MissedDeadline);
		let record = Scores::<Test>::get(1).expect("a record");
		assert_eq!((record.positive, record.negative), (EVIDENCE_UNIT, P.missed_deadline));
		// A report without a domain leaves the domain record alone.
		assert_eq!(crate::DomainScores::<Test>::get(1, &code), Some(in_code));
		<Reputation as ExpertQuality<u64>>::report(&1, None, TaskOutcome::Outvoted);
		assert_eq!(
			Scores::<Test>::get(1).expect("a record").negative,
			P.missed_deadline + P.outvoted
		);
		check();
	});
}

#[test]
fn a_failing_newcomer_is_excluded_and_comes_back_as_its_record_decays() {
	new_test_ext().execute_with(|| {
		<Reputation as ExpertQuality<u64>>::report(&2, None, TaskOutcome::MissedDeadline);
		assert_eq!(<Reputation as ExpertQuality<u64>>::quality(&2, None), None);
		// 1/(2 + 0.9^k) ≥ 0.4 once 0.9^k ≤ 0.5: k = 7 periods.
		System::set_block_number(1 + 6 * DECAY);
		assert_eq!(<Reputation as ExpertQuality<u64>>::quality(&2, None), None);
		System::set_block_number(7 * DECAY);
		assert!(<Reputation as ExpertQuality<u64>>::quality(&2, None).is_some());
	});
}

#[test]
fn a_proven_expert_ranks_above_newcomers_and_an_outvoted_one_drops_out() {
	new_test_ext().execute_with(|| {
		for _ in 0..5 {
			<Reputation as ExpertQuality<u64>>::report(&3, None, TaskOutcome::Verified);
		}
		let proven = <Reputation as ExpertQuality<u64>>::quality(&3, None).expect("eligible");
		assert_eq!(proven, Perbill::from_rational(6u32, 7u32));
		assert!(proven > NEUTRAL_QUALITY);
		<Reputation as ExpertQuality<u64>>::report(&3, None, TaskOutcome::Outvoted);
		<Reputation as ExpertQuality<u64>>::report(&3, None, TaskOutcome::Outvoted);
		// (1 + 5) / (2 + 5 + 8) = 40%: still eligible (threshold 30%).
		assert_eq!(<Reputation as ExpertQuality<u64>>::quality(&3, None), Some(pct(40)));
		<Reputation as ExpertQuality<u64>>::report(&3, None, TaskOutcome::Outvoted);
		// 6 / 19 = 31.6%, then 6 / 23 = 26%.
		assert!(<Reputation as ExpertQuality<u64>>::quality(&3, None).is_some());
		<Reputation as ExpertQuality<u64>>::report(&3, None, TaskOutcome::Outvoted);
		assert_eq!(<Reputation as ExpertQuality<u64>>::quality(&3, None), None);
	});
}

#[test]
fn requesters_rate_their_completed_tasks_once() {
	new_test_ext().execute_with(|| {
		record_task(7, completed(25, Some(b"law"), &[1, 2]));
		assert_ok!(Reputation::rate_task(origin(25), 7, 5));
		assert_eq!(TaskRatings::<Test>::get(7), Some(5));
		for miner in [1, 2] {
			let record = Scores::<Test>::get(miner).expect("rated");
			assert_eq!(
				(record.positive, record.negative, record.verified),
				(2 * EVIDENCE_UNIT, 0, 0)
			);
			let in_law = crate::DomainScores::<Test>::get(miner, domain(b"law")).expect("rated");
			assert_eq!(in_law.positive, 2 * EVIDENCE_UNIT);
		}
		assert_eq!(
			last_event(),
			RuntimeEvent::Reputation(Event::TaskRated { task: 7, requester: 25, stars: 5 })
		);
		assert!(System::events().iter().any(|record| record.event
			== RuntimeEvent::Reputation(Event::ReputationUpdated {
				expert: 2,
				domain: Some(domain(b"law")),
				cause: Cause::RequesterRating(5),
				score: pct(75),
				domain_score: Some(pct(75)),
			})));
		assert_noop!(Reputation::rate_task(origin(25), 7, 1), Error::<Test>::AlreadyRated);
		check();
	});
}

#[test]
fn a_one_star_rating_counts_against_the_miners() {
	new_test_ext().execute_with(|| {
		record_task(8, completed(26, None, &[4]));
		assert_ok!(Reputation::rate_task(origin(26), 8, 1));
		assert_eq!(Reputation::score(&4), pct(25));
		// 25% is below the probation threshold: no more work until it recovers.
		assert_eq!(<Reputation as ExpertQuality<u64>>::quality(&4, None), None);
	});
}

#[test]
fn bad_task_ratings_are_refused_and_change_nothing() {
	new_test_ext().execute_with(|| {
		record_task(1, LedgerEntry::Open);
		record_task(2, LedgerEntry::Pruned);
		record_task(3, completed(25, None, &[1]));
		for stars in [0, 6, 255] {
			assert_noop!(Reputation::rate_task(origin(25), 3, stars), Error::<Test>::InvalidStars);
		}
		assert_noop!(Reputation::rate_task(origin(25), 99, 3), Error::<Test>::UnknownTask);
		assert_noop!(Reputation::rate_task(origin(25), 1, 3), Error::<Test>::TaskNotCompleted);
		assert_noop!(Reputation::rate_task(origin(25), 2, 3), Error::<Test>::ResultPruned);
		assert_noop!(Reputation::rate_task(origin(26), 3, 3), Error::<Test>::NotRequester);
		assert_noop!(Reputation::rate_task(RuntimeOrigin::none(), 3, 3), DispatchError::BadOrigin);
		assert_eq!(Scores::<Test>::get(1), None);
	});
}

#[test]
fn raters_bond_more_and_leave() {
	new_test_ext().execute_with(|| {
		assert_ok!(Reputation::bond_rater(origin(21), MIN_RATER_BOND));
		assert_ok!(Reputation::bond_rater(origin(21), 500));
		assert_eq!(Raters::<Test>::get(21), Some(MIN_RATER_BOND + 500));
		assert_eq!(
			Balances::balance_on_hold(&crate::HoldReason::RaterBond.into(), &21),
			MIN_RATER_BOND + 500
		);
		assert_eq!(
			last_event(),
			RuntimeEvent::Reputation(Event::RaterBonded {
				rater: 21,
				amount: 500,
				total: MIN_RATER_BOND + 500
			})
		);
		assert_eq!(RaterCount::<Test>::get(), 1);
		check();
		assert_ok!(Reputation::unbond_rater(origin(21)));
		assert_eq!(Raters::<Test>::get(21), None);
		assert_eq!(RaterCount::<Test>::get(), 0);
		assert_eq!(Balances::balance(&21), START_BALANCE);
		assert_eq!(
			last_event(),
			RuntimeEvent::Reputation(Event::RaterUnbonded {
				rater: 21,
				amount: MIN_RATER_BOND + 500
			})
		);
		check();
	});
}

#[test]
fn bad_bonds_are_refused_and_change_nothing() {
	new_test_ext().execute_with(|| {
		assert_noop!(Reputation::bond_rater(origin(21), 0), Error::<Test>::ZeroAmount);
		assert_noop!(
			Reputation::bond_rater(origin(21), MIN_RATER_BOND - 1),
			Error::<Test>::BondTooSmall
		);
		assert_noop!(
			Reputation::bond_rater(origin(21), START_BALANCE + 1),
			Error::<Test>::InsufficientBalance
		);
		assert_noop!(Reputation::unbond_rater(origin(21)), Error::<Test>::NotRater);
		for rater in 21..21 + MAX_RATERS as u64 {
			assert_ok!(Reputation::bond_rater(origin(rater), MIN_RATER_BOND));
		}
		assert_noop!(
			Reputation::bond_rater(origin(29), MIN_RATER_BOND),
			Error::<Test>::TooManyRaters
		);
		// A rater already in the set may still bond more.
		assert_ok!(Reputation::bond_rater(origin(21), 1));
		check();
	});
}

#[test]
fn bad_expert_ratings_are_refused_and_change_nothing() {
	new_test_ext().execute_with(|| {
		assert_noop!(
			Reputation::rate_expert(origin(21), 1, None, pct(50)),
			Error::<Test>::NotRater
		);
		assert_ok!(Reputation::bond_rater(origin(21), MIN_RATER_BOND));
		assert_noop!(
			Reputation::rate_expert(origin(21), 25, None, pct(50)),
			Error::<Test>::NotAnExpert
		);
		// The round takes MAX_SUBJECTS subjects.
		for expert in 1..=MAX_SUBJECTS as u64 {
			assert_ok!(Reputation::rate_expert(origin(21), expert, None, pct(50)));
		}
		assert_noop!(
			Reputation::rate_expert(origin(21), 1, Some(domain(b"x")), pct(50)),
			Error::<Test>::RoundFull
		);
		check();
	});
}

#[test]
fn a_subject_takes_at_most_max_raters_ratings_per_round() {
	new_test_ext().execute_with(|| {
		for rater in 21..21 + MAX_RATERS as u64 {
			assert_ok!(Reputation::bond_rater(origin(rater), MIN_RATER_BOND));
			assert_ok!(Reputation::rate_expert(origin(rater), 1, None, pct(50)));
		}
		assert_ok!(Reputation::unbond_rater(origin(21)));
		assert_ok!(Reputation::bond_rater(origin(29), MIN_RATER_BOND));
		assert_noop!(
			Reputation::rate_expert(origin(29), 1, None, pct(50)),
			Error::<Test>::TooManyRatings
		);
		// Rating again replaces a rater's rating (no new entry).
		assert_ok!(Reputation::rate_expert(origin(22), 1, None, pct(90)));
		let ratings = RoundRatings::<Test>::get(0, RatingSubject { expert: 1, domain: None });
		assert_eq!(ratings.len(), MAX_RATERS as usize);
		assert!(ratings.contains(&(22, pct(90))));
		check();
	});
}

#[test]
fn rounds_that_are_not_combined_hold_back_new_ratings() {
	new_test_ext().execute_with(|| {
		assert_ok!(Reputation::bond_rater(origin(21), MIN_RATER_BOND));
		// Hooks do not run here, so every round stays open.
		for round in 0..4u64 {
			System::set_block_number(round * RATING_PERIOD as u64 + 1);
			assert_ok!(Reputation::rate_expert(origin(21), 1, None, pct(50)));
		}
		System::set_block_number(4 * RATING_PERIOD as u64 + 1);
		assert_noop!(
			Reputation::rate_expert(origin(21), 1, None, pct(50)),
			Error::<Test>::RoundsBacklogged
		);
		assert_eq!(OpenRounds::<Test>::get().into_inner(), vec![0, 1, 2, 3]);
		check();
	});
}

#[test]
fn a_colluding_minority_cannot_raise_a_score() {
	new_test_ext().execute_with(|| {
		// Honest raters hold 7 000 of stake, colluders 3 000.
		for (rater, bond) in [(21, 4_000), (22, 3_000), (23, 2_000), (24, 1_000)] {
			assert_ok!(Reputation::bond_rater(origin(rater), bond));
		}
		// Expert 5 is poor: the honest majority says 20%; colluders say 100%.
		for (rater, quality) in [(21, 20), (22, 20), (23, 100), (24, 100)] {
			assert_ok!(Reputation::rate_expert(origin(rater), 5, None, pct(quality)));
		}
		run_to_block(RATING_PERIOD as u64);
		let record = Scores::<Test>::get(5).expect("combined");
		assert_eq!(record.positive, pct(20).mul_floor(P.validator_rating));
		assert!(System::events().iter().any(|record| record.event
			== RuntimeEvent::Reputation(Event::ReputationUpdated {
				expert: 5,
				domain: None,
				cause: Cause::ValidatorConsensus(pct(20)),
				score: Perbill::from_rational(1_000_000 + 600_000u64, 2_000_000 + 3_000_000u64),
				domain_score: None,
			})));
		assert!(OpenRounds::<Test>::get().is_empty());
		assert_eq!(RoundRatings::<Test>::iter().count(), 0);
		check();
	});
}

#[test]
fn a_minority_rating_alone_keeps_the_score_where_it_is() {
	new_test_ext().execute_with(|| {
		assert_ok!(Reputation::bond_rater(origin(21), 7_000));
		assert_ok!(Reputation::bond_rater(origin(22), 3_000));
		// Only the 30% rater rates expert 6 (at 100%); the abstaining 70% count at its
		// current score, 50%.
		assert_ok!(Reputation::rate_expert(origin(22), 6, None, pct(100)));
		run_to_block(RATING_PERIOD as u64);
		assert_eq!(Reputation::score(&6), pct(50));
		assert!(System::events().iter().any(|record| matches!(
			record.event,
			RuntimeEvent::Reputation(Event::ReputationUpdated {
				expert: 6,
				cause: Cause::ValidatorConsensus(consensus),
				..
			}) if consensus == pct(50)
		)));
		check();
	});
}

#[test]
fn rounds_are_combined_a_few_subjects_per_block() {
	new_test_ext().execute_with(|| {
		assert_ok!(Reputation::bond_rater(origin(21), MIN_RATER_BOND));
		for expert in 1..=5u64 {
			assert_ok!(Reputation::rate_expert(origin(21), expert, None, pct(80)));
		}
		assert_ok!(Reputation::rate_expert(origin(21), 1, Some(domain(b"code")), pct(60)));
		// The round ends at block 10: 6 subjects, 2 per block.
		run_to_block(RATING_PERIOD as u64);
		assert_eq!(RoundSubjects::<Test>::get(0).len(), 4);
		run_to_block(RATING_PERIOD as u64 + 1);
		assert_eq!(RoundSubjects::<Test>::get(0).len(), 2);
		// Ratings in the new round wait for their own round's end.
		assert_ok!(Reputation::rate_expert(origin(21), 9, None, pct(80)));
		assert_eq!(OpenRounds::<Test>::get().into_inner(), vec![0, 1]);
		check();
		run_to_block(RATING_PERIOD as u64 + 2);
		assert_eq!(OpenRounds::<Test>::get().into_inner(), vec![1]);
		for expert in 1..=5u64 {
			assert!(Scores::<Test>::get(expert).is_some());
		}
		let in_code = crate::DomainScores::<Test>::get(1, domain(b"code")).expect("combined");
		assert_eq!(in_code.positive, pct(60).mul_floor(P.validator_rating));
		assert_eq!(Scores::<Test>::get(9), None);
		run_to_block(2 * RATING_PERIOD as u64);
		assert!(Scores::<Test>::get(9).is_some());
		assert!(OpenRounds::<Test>::get().is_empty());
		check();
	});
}

#[test]
fn ratings_of_raters_that_left_do_not_count() {
	new_test_ext().execute_with(|| {
		assert_ok!(Reputation::bond_rater(origin(21), MIN_RATER_BOND));
		assert_ok!(Reputation::bond_rater(origin(22), 100 * MIN_RATER_BOND));
		assert_ok!(Reputation::rate_expert(origin(21), 1, None, pct(90)));
		assert_ok!(Reputation::rate_expert(origin(22), 1, None, pct(10)));
		assert_ok!(Reputation::rate_expert(origin(22), 2, None, pct(10)));
		assert_ok!(Reputation::unbond_rater(origin(22)));
		run_to_block(RATING_PERIOD as u64);
		// Only rater 21's rating is left for expert 1.
		assert_eq!(
			Scores::<Test>::get(1).expect("combined").positive,
			pct(90).mul_floor(P.validator_rating)
		);
		// Nobody bonded rated expert 2.
		assert_eq!(Scores::<Test>::get(2), None);
		assert!(System::events().iter().any(|record| record.event
			== RuntimeEvent::Reputation(Event::RatingsDropped {
				round: 0,
				expert: 2,
				domain: None
			})));
		check();
	});
}

#[test]
fn random_sequences_keep_the_invariants() {
	let mut seed = 0x9E37_79B9_7F4A_7C15u64;
	let mut next = move |n: u64| {
		seed ^= seed >> 12;
		seed ^= seed << 25;
		seed ^= seed >> 27;
		seed.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
	};
	for _ in 0..20 {
		new_test_ext().execute_with(|| {
			let mut task = 0u64;
			for _ in 0..200 {
				let who = 21 + next(8);
				let expert = 1 + next(22);
				let quality = pct(next(101) as u32);
				let in_domain = (next(3) == 0).then(|| domain(b"code"));
				match next(8) {
					0 => {
						let _ = Reputation::bond_rater(origin(who), next(3 * MIN_RATER_BOND));
					}
					1 => {
						let _ = Reputation::unbond_rater(origin(who));
					}
					2 | 3 => {
						let _ = Reputation::rate_expert(origin(who), expert, in_domain, quality);
					}
					4 => {
						task += 1;
						let miners: Vec<u64> = (0..next(4)).map(|_| 1 + next(20)).collect();
						record_task(task, completed(who, None, &miners));
						let _ = Reputation::rate_task(
							origin(21 + next(8)),
							next(task + 2),
							next(7) as u8,
						);
					}
					5 => {
						let outcome = [
							TaskOutcome::Verified,
							TaskOutcome::MissedDeadline,
							TaskOutcome::Outvoted,
						][next(3) as usize];
						<Reputation as ExpertQuality<u64>>::report(
							&expert,
							in_domain.as_ref(),
							outcome,
						);
					}
					_ => run_to_block(System::block_number() + 1 + next(2 * RATING_PERIOD as u64)),
				}
				check();
				// Bonds are all that is held, and free + held is what each account had.
				for account in 21..=30u64 {
					let held = Raters::<Test>::get(account).unwrap_or_default();
					assert_eq!(
						Balances::balance_on_hold(&crate::HoldReason::RaterBond.into(), &account),
						held
					);
					assert_eq!(Balances::total_balance(&account), START_BALANCE);
				}
				let quality = <Reputation as ExpertQuality<u64>>::quality(&expert, None);
				assert!(quality.is_none_or(|quality| quality > Perbill::zero()));
			}
		});
	}
}
