//! The simulated market: experts with hidden quality, requesters, raters, and one
//! selection policy. Scores, decay, probation, exclusion, the raters' consensus and
//! the auction are the pallets' own code (`pallet_reputation::score`,
//! `pallet_poaw::auction`); only the world around them is modelled here.

use dllm_primitives::market::{TaskOutcome, NEUTRAL_QUALITY};
use pallet_poaw::auction::{self, Bid};
use pallet_reputation::score::{self, Reputation, ScoreParams};
use polkadot_sdk::sp_runtime::Perbill;
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// The runtime's reputation parameters.
pub const PARAMS: ScoreParams = ScoreParams::DLLM;
/// Blocks per round: the runtime's rating round (10 minutes of 6-second blocks).
pub const BLOCKS_PER_ROUND: u32 = 100;
/// Miners the auction picks per task: a generator and a verifier (prefill verification,
/// the task pallet's `VerificationMode::Prefill`).
const SIDES: usize = 2;
/// Referee rounds of a dispute: the runtime's `MaxRefereeRounds`.
const REFEREE_ROUNDS: usize = 2;
/// Referees per round: the runtime's `RefereesPerRound`.
const REFEREES_PER_ROUND: usize = 2;

/// What kind of expert someone is (hidden from the chain).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
	/// Runs the model properly.
	Good,
	/// Cuts corners (a cheaper, worse model or hardware that corrupts results).
	LowQuality,
	/// Malicious and colluding: returns one agreed wrong answer, so two of them in one
	/// task agree; its group's raters rate it up and honest experts down.
	Colluder,
}

impl Kind {
	/// Whether the expert is one of the bad ones.
	pub fn is_bad(self) -> bool {
		self != Kind::Good
	}
}

/// How experts are picked for a task.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Policy {
	/// DLLM: the task pallet's auction weighted by the reputation pallet's quality.
	Reputation,
	/// Any experts with free capacity, uniformly.
	Random,
	/// The same auction with neutral quality for everyone: the cheapest win.
	PriceOnly,
}

impl Policy {
	/// All policies, in table order.
	pub const ALL: [Policy; 3] = [Policy::Reputation, Policy::Random, Policy::PriceOnly];

	/// Its name in tables and files.
	pub fn name(self) -> &'static str {
		match self {
			Policy::Reputation => "reputation",
			Policy::Random => "random",
			Policy::PriceOnly => "price-only",
		}
	}
}

/// The market's make-up.
#[derive(Clone, Debug)]
pub struct Scenario {
	/// Number of experts.
	pub experts: usize,
	/// Share of bad experts (half low-quality, half colluding; colluders get the odd one).
	pub bad_share: f64,
	/// Rounds (each `BLOCKS_PER_ROUND` blocks).
	pub rounds: u32,
	/// Tasks per round.
	pub tasks_per_round: usize,
	/// Tasks an expert takes per round.
	pub capacity: u32,
	/// Honest raters (they re-execute samples and rate what they see).
	pub honest_raters: usize,
	/// Raters of the colluding group.
	pub colluding_raters: usize,
	/// Share of the raters' stake the colluding group holds.
	pub colluder_stake: f64,
	/// Experts each rater rates per round.
	pub ratings_per_rater: usize,
	/// Chance that a requester rates a delivered answer.
	pub requester_rating_chance: f64,
}

impl Scenario {
	/// The scenario of docs/protocol.md with `bad_share` bad experts.
	pub fn standard(bad_share: f64, rounds: u32) -> Self {
		Scenario {
			experts: 40,
			bad_share,
			rounds,
			tasks_per_round: 20,
			capacity: 2,
			honest_raters: 7,
			colluding_raters: 3,
			colluder_stake: 0.3,
			ratings_per_rater: 4,
			requester_rating_chance: 0.5,
		}
	}
}

/// One round's measurements.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundStats {
	/// Share of tasks whose requester got a correct answer in time (the pipelines agreed
	/// on it; a disputed or expired task delivers nothing in time).
	pub delivered_quality: f64,
	/// Share of assigned slots that went to bad experts.
	pub bad_share: f64,
	/// Share of assigned slots that went to colluders.
	pub colluder_share: f64,
}

struct Expert {
	kind: Kind,
	/// Chance its answer is right.
	quality: f64,
	/// Chance it misses its deadline.
	miss: f64,
	/// Asking price per token per layer (micro-units).
	price: u128,
	record: Reputation,
}

/// An answer a miner returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Answer {
	Correct,
	/// A wrong answer of its own.
	Wrong(u64),
	/// The colluders' agreed wrong answer.
	Colluded,
}

/// Draws the scenario's experts; the same seed gives the same experts to every policy.
fn population(scenario: &Scenario, rng: &mut ChaCha8Rng) -> Vec<Expert> {
	let bad = (scenario.experts as f64 * scenario.bad_share).round() as usize;
	let low_quality = bad / 2;
	let colluders = bad - low_quality;
	(0..scenario.experts)
		.map(|index| {
			let kind = if index < colluders {
				Kind::Colluder
			} else if index < colluders + low_quality {
				Kind::LowQuality
			} else {
				Kind::Good
			};
			// Bad experts undercut: cutting corners is cheaper.
			let (quality, miss, price) = match kind {
				Kind::Good => (rng.gen_range(0.80..0.97), 0.01, rng.gen_range(9.0..12.0)),
				Kind::LowQuality => (rng.gen_range(0.25..0.50), 0.10, rng.gen_range(5.0..8.0)),
				Kind::Colluder => (rng.gen_range(0.05..0.20), 0.02, rng.gen_range(4.0..7.0)),
			};
			Expert {
				kind,
				quality,
				miss,
				price: (price * 1000.0) as u128,
				record: Reputation::new(0),
			}
		})
		.collect()
}

/// Picks up to `count` experts among `candidates` for one task.
fn select(
	policy: Policy,
	experts: &[Expert],
	candidates: &[usize],
	count: usize,
	period: u32,
	rng: &mut ChaCha8Rng,
) -> Vec<usize> {
	let bid = |index: usize, quality: Perbill, rng: &mut ChaCha8Rng| Bid {
		expert: index,
		price: experts[index].price,
		weight: auction::weight(quality.deconstruct(), 0, 0, 0),
		tie_key: rng.gen(),
	};
	let bids: Vec<Bid<usize>> = match policy {
		Policy::Random => {
			return candidates.choose_multiple(rng, count).copied().collect();
		}
		Policy::PriceOnly => {
			candidates.iter().map(|&index| bid(index, NEUTRAL_QUALITY, rng)).collect()
		}
		Policy::Reputation => candidates
			.iter()
			.filter_map(|&index| {
				score::auction_quality(Some(&experts[index].record), None, period, &PARAMS)
					.map(|quality| bid(index, quality, rng))
			})
			.collect(),
	};
	auction::run(&bids, count, u128::MAX).into_iter().map(|award| award.expert).collect()
}

/// How a task checked by prefill ended, as the task pallet settles it: `generator` and
/// `verifier` are the two sides' answers (`None`: silent); `referees(n)` draws up to `n`
/// referees for the next round (fewer when fewer are free), called only while needed. A
/// round settles when every one of its referees answered and all match the same side.
/// Returns each miner's outcome and the delivered answer, if any.
fn settle(
	generator: (usize, Option<Answer>),
	verifier: (usize, Option<Answer>),
	mut referees: impl FnMut(usize) -> Vec<(usize, Option<Answer>)>,
) -> (Vec<(usize, TaskOutcome)>, Option<Answer>) {
	let mut outcomes = Vec::new();
	let (g, v) = match (generator.1, verifier.1) {
		(Some(g), Some(v)) => (g, v),
		// A silent side: refunded; only the silent one is blamed.
		(g, v) => {
			for (index, answer) in [(generator.0, g), (verifier.0, v)] {
				if answer.is_none() {
					outcomes.push((index, TaskOutcome::MissedDeadline));
				}
			}
			return (outcomes, None);
		}
	};
	if g == v {
		outcomes.push((generator.0, TaskOutcome::Verified));
		outcomes.push((verifier.0, TaskOutcome::Verified));
		return (outcomes, Some(g));
	}
	// Earlier rounds' referees that answered: reported outvoted once a later round
	// settles against their answer.
	let mut earlier: Vec<(usize, Answer)> = Vec::new();
	for _ in 0..REFEREE_ROUNDS {
		let round = referees(REFEREES_PER_ROUND);
		if round.is_empty() {
			break;
		}
		for (index, answer) in &round {
			if answer.is_none() {
				outcomes.push((*index, TaskOutcome::MissedDeadline));
			}
		}
		let first = round[0].1;
		let unanimous = first.filter(|r| {
			(*r == g || *r == v) && round.iter().all(|(_, answer)| *answer == Some(*r))
		});
		if let Some(r) = unanimous {
			// r == g: the verifier lost, the generator's answer is delivered; else the
			// generator lost: refunded, nothing delivered.
			let (won, lost) =
				if r == g { (generator.0, verifier.0) } else { (verifier.0, generator.0) };
			outcomes.push((won, TaskOutcome::Verified));
			outcomes.push((lost, TaskOutcome::Outvoted));
			outcomes.extend(round.iter().map(|(index, _)| (*index, TaskOutcome::Verified)));
			outcomes.extend(
				earlier
					.iter()
					.filter(|(_, answer)| *answer != r)
					.map(|(index, _)| (*index, TaskOutcome::Outvoted)),
			);
			return (outcomes, (r == g).then_some(g));
		}
		// Silent, split, or matching neither side: the round fails, unpaid.
		earlier.extend(round.iter().filter_map(|(index, answer)| answer.map(|a| (*index, a))));
	}
	(outcomes, None)
}

/// Runs one policy through the scenario; returns each round's measurements.
pub fn run(scenario: &Scenario, policy: Policy, seed: u64) -> Vec<RoundStats> {
	let mut rng = ChaCha8Rng::seed_from_u64(seed);
	let mut experts = population(scenario, &mut rng);
	let mut wrong_answers = 0u64;
	// Stake in millionths of the raters' total.
	let honest_stake =
		((1.0 - scenario.colluder_stake) / scenario.honest_raters as f64 * 1e6) as u128;
	let colluder_stake = (scenario.colluder_stake / scenario.colluding_raters as f64 * 1e6) as u128;
	let total_stake = honest_stake * scenario.honest_raters as u128
		+ colluder_stake * scenario.colluding_raters as u128;
	let colluders: Vec<usize> =
		(0..experts.len()).filter(|&i| experts[i].kind == Kind::Colluder).collect();
	let others: Vec<usize> =
		(0..experts.len()).filter(|&i| experts[i].kind != Kind::Colluder).collect();
	let all: Vec<usize> = (0..experts.len()).collect();

	let mut stats = Vec::with_capacity(scenario.rounds as usize);
	for round in 0..scenario.rounds {
		let period = PARAMS.period_of(round * BLOCKS_PER_ROUND + 1);
		let mut load = vec![0u32; experts.len()];
		let (mut delivered, mut slots, mut bad_slots, mut colluder_slots) = (0usize, 0, 0, 0);
		for _ in 0..scenario.tasks_per_round {
			let candidates: Vec<usize> =
				(0..experts.len()).filter(|&i| load[i] < scenario.capacity).collect();
			let chosen = select(policy, &experts, &candidates, SIDES, period, &mut rng);
			let mut work = |index: usize, load: &mut [u32], rng: &mut ChaCha8Rng| {
				let expert = &experts[index];
				load[index] += 1;
				slots += 1;
				bad_slots += usize::from(expert.kind.is_bad());
				colluder_slots += usize::from(expert.kind == Kind::Colluder);
				if rng.gen_bool(expert.miss) {
					return (index, None);
				}
				let answer = if rng.gen_bool(expert.quality) {
					Answer::Correct
				} else if expert.kind == Kind::Colluder {
					Answer::Colluded
				} else {
					wrong_answers += 1;
					Answer::Wrong(wrong_answers)
				};
				(index, Some(answer))
			};
			let (outcomes, answer) = match chosen.as_slice() {
				[g, v] => {
					let generator = work(*g, &mut load, &mut rng);
					let verifier = work(*v, &mut load, &mut rng);
					let mut taken = vec![*g, *v];
					let referees = |count: usize| {
						let free: Vec<usize> = (0..experts.len())
							.filter(|i| load[*i] < scenario.capacity && !taken.contains(i))
							.collect();
						let picked = select(policy, &experts, &free, count, period, &mut rng);
						taken.extend(&picked);
						picked.into_iter().map(|pick| work(pick, &mut load, &mut rng)).collect()
					};
					settle(generator, verifier, referees)
				}
				// Fewer than two miners free: the task waits and expires unanswered.
				_ => (Vec::new(), None),
			};
			for (index, outcome) in outcomes.iter() {
				let record = &mut experts[*index].record;
				*record = record.updated(period, &PARAMS, PARAMS.outcome_evidence(*outcome));
			}
			delivered += usize::from(answer == Some(Answer::Correct));
			// The requester sees whether the answer is any good and sometimes says so.
			if let Some(answer) = answer {
				if rng.gen_bool(scenario.requester_rating_chance) {
					let stars = match (answer == Answer::Correct, rng.gen_bool(0.3)) {
						(true, false) => 5,
						(true, true) => 4,
						(false, true) => 2,
						(false, false) => 1,
					};
					for (index, outcome) in outcomes.iter() {
						if *outcome == TaskOutcome::Verified {
							let record = &mut experts[*index].record;
							*record = record.updated(period, &PARAMS, PARAMS.stars_evidence(stars));
						}
					}
				}
			}
		}

		// The raters' round.
		let mut ratings: BTreeMap<usize, Vec<(u128, Perbill)>> = BTreeMap::new();
		for _ in 0..scenario.honest_raters {
			for &index in all.choose_multiple(&mut rng, scenario.ratings_per_rater) {
				let seen = (experts[index].quality + rng.gen_range(-0.05..0.05)).clamp(0.0, 1.0);
				let rating = Perbill::from_rational((seen * 1e6) as u32, 1_000_000);
				ratings.entry(index).or_default().push((honest_stake, rating));
			}
		}
		for _ in 0..scenario.colluding_raters {
			for &index in colluders.iter() {
				ratings.entry(index).or_default().push((colluder_stake, Perbill::one()));
			}
			for &index in others.choose_multiple(&mut rng, scenario.ratings_per_rater) {
				ratings.entry(index).or_default().push((colluder_stake, Perbill::zero()));
			}
		}
		let round_end = PARAMS.period_of((round + 1) * BLOCKS_PER_ROUND);
		for (index, subject_ratings) in ratings {
			let record = &mut experts[index].record;
			let status_quo = record.decayed(round_end, &PARAMS).score(&PARAMS);
			if let Some(consensus) =
				score::round_consensus(&subject_ratings, total_stake, status_quo)
			{
				*record = record.updated(round_end, &PARAMS, PARAMS.consensus_evidence(consensus));
			}
		}

		let tasks = scenario.tasks_per_round.max(1) as f64;
		let slots = slots.max(1) as f64;
		stats.push(RoundStats {
			delivered_quality: delivered as f64 / tasks,
			bad_share: bad_slots as f64 / slots,
			colluder_share: colluder_slots as f64 / slots,
		});
	}
	stats
}

/// Per-round means over seeds `0..seeds`.
pub fn mean_over_seeds(scenario: &Scenario, policy: Policy, seeds: u64) -> Vec<RoundStats> {
	let mut sum = vec![RoundStats::default(); scenario.rounds as usize];
	for seed in 0..seeds {
		for (total, round) in sum.iter_mut().zip(run(scenario, policy, seed)) {
			total.delivered_quality += round.delivered_quality;
			total.bad_share += round.bad_share;
			total.colluder_share += round.colluder_share;
		}
	}
	let seeds = seeds.max(1) as f64;
	for total in sum.iter_mut() {
		total.delivered_quality /= seeds;
		total.bad_share /= seeds;
		total.colluder_share /= seeds;
	}
	sum
}

/// The first round from which the 10-round trailing mean of the bad experts' share of
/// slots stays at or below `limit` to the end; `None` if it never does.
pub fn rounds_to_push_out(stats: &[RoundStats], limit: f64) -> Option<usize> {
	const WINDOW: usize = 10;
	let trailing: Vec<f64> = (0..stats.len())
		.map(|end| {
			let start = (end + 1).saturating_sub(WINDOW);
			let window = &stats[start..=end];
			window.iter().map(|round| round.bad_share).sum::<f64>() / window.len() as f64
		})
		.collect();
	let last_above = trailing.iter().rposition(|share| *share > limit);
	match last_above {
		None => Some(0),
		Some(index) if index + 1 < trailing.len() => Some(index + 1),
		Some(_) => None,
	}
}

/// Mean of a measurement over rounds `from..`.
pub fn tail_mean(stats: &[RoundStats], from: usize, field: fn(&RoundStats) -> f64) -> f64 {
	let tail = &stats[from.min(stats.len())..];
	if tail.is_empty() {
		return 0.0;
	}
	tail.iter().map(field).sum::<f64>() / tail.len() as f64
}

#[cfg(test)]
mod tests {
	use super::*;

	/// Referee rounds drawn in order, one `Vec` per round.
	fn rounds(
		rounds: Vec<Vec<(usize, Option<Answer>)>>,
	) -> impl FnMut(usize) -> Vec<(usize, Option<Answer>)> {
		let mut rounds = rounds.into_iter();
		move |count| {
			let round = rounds.next().unwrap_or_default();
			assert!(round.len() <= count);
			round
		}
	}

	#[test]
	fn referees_settle_disagreements_as_the_task_pallet_does() {
		use Answer::*;
		let none = || rounds(vec![]);
		// Agreement delivers, also when two colluders agree on their wrong answer.
		assert_eq!(
			settle((0, Some(Correct)), (1, Some(Correct)), none()),
			(vec![(0, TaskOutcome::Verified), (1, TaskOutcome::Verified)], Some(Correct))
		);
		assert_eq!(settle((0, Some(Colluded)), (1, Some(Colluded)), none()).1, Some(Colluded));
		// A silent side refunds; only it is blamed.
		assert_eq!(
			settle((0, None), (1, Some(Correct)), none()),
			(vec![(0, TaskOutcome::MissedDeadline)], None)
		);
		// A lying generator loses to two agreeing referees: nothing delivered.
		assert_eq!(
			settle(
				(0, Some(Wrong(1))),
				(1, Some(Correct)),
				rounds(vec![vec![(2, Some(Correct)), (3, Some(Correct))]])
			),
			(
				vec![
					(1, TaskOutcome::Verified),
					(0, TaskOutcome::Outvoted),
					(2, TaskOutcome::Verified),
					(3, TaskOutcome::Verified)
				],
				None
			)
		);
		// A lying verifier loses (to the one referee a thin market gives): the
		// generator's answer is delivered.
		assert_eq!(
			settle((0, Some(Correct)), (1, Some(Wrong(1))), rounds(vec![vec![(2, Some(Correct))]]))
				.1,
			Some(Correct)
		);
		// A referee siding with the liar beside an honest one fails the round; the next
		// settles and the first round's liar is outvoted, the honest one not.
		assert_eq!(
			settle(
				(0, Some(Correct)),
				(1, Some(Colluded)),
				rounds(vec![
					vec![(2, Some(Colluded)), (3, Some(Correct))],
					vec![(4, Some(Correct)), (5, Some(Correct))],
				])
			)
			.0,
			vec![
				(0, TaskOutcome::Verified),
				(1, TaskOutcome::Outvoted),
				(4, TaskOutcome::Verified),
				(5, TaskOutcome::Verified),
				(2, TaskOutcome::Outvoted)
			]
		);
		// A silent referee, then a round matching neither side: unsettled, nothing
		// delivered, nobody outvoted.
		assert_eq!(
			settle(
				(0, Some(Correct)),
				(1, Some(Wrong(1))),
				rounds(vec![
					vec![(2, None), (3, Some(Correct))],
					vec![(4, Some(Wrong(9))), (5, Some(Wrong(9)))],
				])
			),
			(vec![(2, TaskOutcome::MissedDeadline)], None)
		);
	}

	#[test]
	fn reputation_keeps_quality_where_random_and_price_only_do_not() {
		let scenario = Scenario::standard(0.3, 120);
		let from = 60;
		let quality = |policy| {
			let stats = mean_over_seeds(&scenario, policy, 2);
			(
				tail_mean(&stats, from, |round| round.delivered_quality),
				tail_mean(&stats, from, |round| round.bad_share),
			)
		};
		let (reputation, reputation_bad) = quality(Policy::Reputation);
		let (random, random_bad) = quality(Policy::Random);
		let (price_only, price_only_bad) = quality(Policy::PriceOnly);
		assert!(reputation > random + 0.1, "reputation {reputation} vs random {random}");
		assert!(reputation > price_only + 0.1, "reputation {reputation} vs price {price_only}");
		assert!(reputation_bad < 0.1, "bad experts keep {reputation_bad} of the slots");
		assert!(random_bad > 0.2 && price_only_bad > 0.2);
	}

	#[test]
	fn trailing_push_out_round() {
		let shares = |values: &[f64]| -> Vec<RoundStats> {
			values.iter().map(|&bad_share| RoundStats { bad_share, ..Default::default() }).collect()
		};
		assert_eq!(rounds_to_push_out(&shares(&[0.0; 5]), 0.05), Some(0));
		assert_eq!(rounds_to_push_out(&shares(&[0.5; 5]), 0.05), None);
		let mut values = vec![0.5; 3];
		values.extend([0.0; 30]);
		// Round 11's window (rounds 2..=11) holds one bad round of ten: 0.05, the limit.
		assert_eq!(rounds_to_push_out(&shares(&values), 0.05), Some(11));
	}
}
