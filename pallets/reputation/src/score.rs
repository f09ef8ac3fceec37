//! The reputation arithmetic, free of storage so that the pallet and the
//! `reputation-sim` simulation run the very same code.
//!
//! A reputation is a beta distribution over "this expert's next result is good":
//! `positive` and `negative` are the evidence seen so far, in millionths of an
//! observation ([`EVIDENCE_UNIT`]), on top of a prior (`prior_positive`,
//! `prior_negative`). Its score is the beta mean
//!
//! ```text
//! score = (prior_positive + positive) / (prior_positive + prior_negative + positive + negative)
//! ```
//!
//! Evidence is forgotten geometrically: every `decay_period` blocks it keeps `retention`
//! of itself, so an expert that stops working (or stops failing) drifts back to the
//! prior mean. Decay is applied lazily, in whole periods, whenever a record is read or
//! written.

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use dllm_primitives::market::TaskOutcome;
use polkadot_sdk::{
	sp_core::U256,
	sp_runtime::{traits::Saturating, Perbill},
};
use scale_info::TypeInfo;

/// One observation's worth of evidence.
pub const EVIDENCE_UNIT: u64 = 1_000_000;

/// Decay periods after which evidence counts as gone whatever the retention (bounds the
/// exponentiation; 0.999^10000 < 0.0001).
const MAX_DECAY_PERIODS: u32 = 10_000;

/// The constants of the reputation arithmetic. The runtime uses [`ScoreParams::DLLM`];
/// the simulation uses the same value.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
)]
pub struct ScoreParams {
	/// Prior evidence for "good" (beta α₀), in evidence units.
	pub prior_positive: u64,
	/// Prior evidence for "bad" (beta β₀), in evidence units.
	pub prior_negative: u64,
	/// Blocks per decay period.
	pub decay_period: u32,
	/// Share of the evidence kept over one decay period.
	pub retention: Perbill,
	/// Evidence for "good" from a verified completion.
	pub verified: u64,
	/// Evidence for "bad" from a missed deadline.
	pub missed_deadline: u64,
	/// Evidence for "bad" from being outvoted (on the losing side of a disagreement).
	pub outvoted: u64,
	/// Evidence one requester rating carries, split between good and bad by its stars.
	pub requester_rating: u64,
	/// Evidence one round of validators' consensus carries, split by the consensus.
	pub validator_rating: u64,
	/// Below this score a proven expert gets no work.
	pub exclusion_threshold: Perbill,
	/// Below this score an expert on probation gets no work.
	pub probation_threshold: Perbill,
	/// Verified completions that end an expert's probation.
	pub probation_tasks: u32,
}

impl ScoreParams {
	/// DLLM's parameters: a beta(1, 1) prior (neutral 50%); evidence keeps 90% of itself
	/// per hour of 6-second blocks (half-life about 6.6 hours); being outvoted weighs
	/// four missed deadlines; probation lasts 3 verified tasks, during which the
	/// quality is capped at the prior mean and one failure (score 1/3) excludes.
	pub const DLLM: ScoreParams = ScoreParams {
		prior_positive: EVIDENCE_UNIT,
		prior_negative: EVIDENCE_UNIT,
		decay_period: 600,
		retention: Perbill::from_percent(90),
		verified: EVIDENCE_UNIT,
		missed_deadline: EVIDENCE_UNIT,
		outvoted: 4 * EVIDENCE_UNIT,
		requester_rating: 2 * EVIDENCE_UNIT,
		validator_rating: 3 * EVIDENCE_UNIT,
		exclusion_threshold: Perbill::from_percent(30),
		probation_threshold: Perbill::from_percent(40),
		probation_tasks: 3,
	};

	/// The score of an expert nobody knows anything about.
	pub fn prior_mean(&self) -> Perbill {
		beta_mean(self.prior_positive, self.prior_negative, 0, 0)
	}

	/// The decay period a block falls in.
	pub fn period_of(&self, block: u32) -> u32 {
		block.checked_div(self.decay_period).unwrap_or(0)
	}

	/// Evidence of how a task ended for a miner: a verified completion is good (and
	/// counts toward the end of probation), a missed deadline bad, being outvoted worse.
	pub fn outcome_evidence(&self, outcome: TaskOutcome) -> Evidence {
		match outcome {
			TaskOutcome::Verified => {
				Evidence { positive: self.verified, negative: 0, verified: true }
			}
			TaskOutcome::MissedDeadline => {
				Evidence { positive: 0, negative: self.missed_deadline, verified: false }
			}
			TaskOutcome::Outvoted => {
				Evidence { positive: 0, negative: self.outvoted, verified: false }
			}
		}
	}

	/// Evidence of a requester's rating of 1–5 stars (clamped): 5 stars is all
	/// positive, 1 star all negative, 3 stars half and half.
	pub fn stars_evidence(&self, stars: u8) -> Evidence {
		let good = u64::from(stars.clamp(1, 5).saturating_sub(1));
		let positive = self.requester_rating.saturating_mul(good) / 4;
		Evidence {
			positive,
			negative: self.requester_rating.saturating_sub(positive),
			verified: false,
		}
	}

	/// Evidence of a validators' consensus quality.
	pub fn consensus_evidence(&self, consensus: Perbill) -> Evidence {
		let positive = consensus.mul_floor(self.validator_rating);
		Evidence {
			positive,
			negative: self.validator_rating.saturating_sub(positive),
			verified: false,
		}
	}
}

/// Evidence from one event, in evidence units.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Evidence {
	/// For "good".
	pub positive: u64,
	/// For "bad".
	pub negative: u64,
	/// Whether it is a verified completion (ends probation).
	pub verified: bool,
}

/// What is known about an expert (overall or in one domain).
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
	Default,
)]
pub struct Reputation {
	/// Evidence for "good", decayed to `period`.
	pub positive: u64,
	/// Evidence for "bad", decayed to `period`.
	pub negative: u64,
	/// The decay period the evidence was last brought to.
	pub period: u32,
	/// Verified completions ever (not decayed): ends probation.
	pub verified: u32,
}

impl Reputation {
	/// A record with no evidence, as of `period`.
	pub fn new(period: u32) -> Self {
		Self { positive: 0, negative: 0, period, verified: 0 }
	}

	/// The record as of `period`: evidence decayed by the periods passed since its last
	/// update (a `period` in the past changes nothing).
	pub fn decayed(&self, period: u32, params: &ScoreParams) -> Self {
		let passed = period.saturating_sub(self.period);
		if passed == 0 {
			return *self;
		}
		let (positive, negative) = if passed >= MAX_DECAY_PERIODS {
			(0, 0)
		} else {
			let kept = params.retention.saturating_pow(passed as usize);
			(kept.mul_floor(self.positive), kept.mul_floor(self.negative))
		};
		Self { positive, negative, period, verified: self.verified }
	}

	/// Adds evidence (the record must be decayed to now first).
	pub fn observe(&mut self, positive: u64, negative: u64) {
		self.positive = self.positive.saturating_add(positive);
		self.negative = self.negative.saturating_add(negative);
	}

	/// The record after `evidence` arrives in `period`: decayed to it, then added to.
	pub fn updated(&self, period: u32, params: &ScoreParams, evidence: Evidence) -> Self {
		let mut record = self.decayed(period, params);
		record.observe(evidence.positive, evidence.negative);
		if evidence.verified {
			record.verified = record.verified.saturating_add(1);
		}
		record
	}

	/// The beta mean of prior plus evidence.
	pub fn score(&self, params: &ScoreParams) -> Perbill {
		beta_mean(params.prior_positive, params.prior_negative, self.positive, self.negative)
	}

	/// Whether the expert is still on probation.
	pub fn on_probation(&self, params: &ScoreParams) -> bool {
		self.verified < params.probation_tasks
	}

	/// Whether the record holds no evidence and no history (it can be deleted: a missing
	/// record reads the same).
	pub fn is_blank(&self) -> bool {
		self.positive == 0 && self.negative == 0 && self.verified == 0
	}
}

fn beta_mean(prior_positive: u64, prior_negative: u64, positive: u64, negative: u64) -> Perbill {
	// Sums of four u64 never overflow a u128.
	let good = u128::from(prior_positive).saturating_add(u128::from(positive));
	let total =
		good.saturating_add(u128::from(prior_negative)).saturating_add(u128::from(negative));
	if total == 0 {
		return Perbill::from_percent(50);
	}
	Perbill::from_rational(good, total)
}

/// The quality the task pallet's auction uses, or `None` when the expert must get no
/// work: `record` is the expert's overall reputation (`None`: never seen), `domain`
/// its reputation in the task's domain if it has one; both decayed to `period`.
///
/// Eligibility needs both scores at or above the threshold (the probation threshold
/// while fewer than `probation_tasks` completions are verified). The quality is the
/// domain score when there is one, else the overall score; on probation it is capped at
/// the prior mean, so a newcomer never outranks a proven expert.
pub fn auction_quality(
	record: Option<&Reputation>,
	domain: Option<&Reputation>,
	period: u32,
	params: &ScoreParams,
) -> Option<Perbill> {
	let overall =
		record.copied().unwrap_or_else(|| Reputation::new(period)).decayed(period, params);
	let on_probation = overall.on_probation(params);
	let threshold =
		if on_probation { params.probation_threshold } else { params.exclusion_threshold };
	let overall_score = overall.score(params);
	if overall_score < threshold {
		return None;
	}
	let score = match domain {
		Some(domain) => {
			let domain_score = domain.decayed(period, params).score(params);
			if domain_score < threshold {
				return None;
			}
			domain_score
		}
		None => overall_score,
	};
	let quality = if on_probation { score.min(params.prior_mean()) } else { score };
	// The auction treats zero as "never wins"; a positive prior keeps scores above it.
	(!quality.is_zero()).then_some(quality)
}

/// Validators' consensus on one expert, as Yuma consensus forms it: the stake-weighted
/// median of the ratings is the consensus value; every rating above it is clipped down
/// to it; the result is the stake-weighted mean of the clipped ratings. Raters holding
/// less than half the stake cannot raise it at all, and can lower it by at most their
/// share of the stake times the median. `None` when no rater has stake.
pub fn consensus(ratings: &[(u128, Perbill)]) -> Option<Perbill> {
	// At most 2^32 u128 stakes: the sums stay far below 2^256.
	let total: U256 =
		ratings.iter().fold(U256::zero(), |sum, (stake, _)| sum.saturating_add(U256::from(*stake)));
	if total.is_zero() {
		return None;
	}
	let mut sorted: alloc::vec::Vec<(u128, Perbill)> = ratings.to_vec();
	sorted.sort_by_key(|(_, rating)| *rating);
	// The lowest rating such that raters at or below it hold at least half the stake.
	let mut below = U256::zero();
	let mut median = Perbill::zero();
	for (stake, rating) in sorted.iter() {
		below = below.saturating_add(U256::from(*stake));
		if below.saturating_mul(U256::from(2)) >= total {
			median = *rating;
			break;
		}
	}
	let clipped_sum = sorted.iter().fold(U256::zero(), |sum, (stake, rating)| {
		sum.saturating_add(
			U256::from(*stake).saturating_mul(U256::from((*rating).min(median).deconstruct())),
		)
	});
	let parts = clipped_sum.checked_div(total).unwrap_or_default();
	// At most the median's parts, so it fits.
	Some(Perbill::from_parts(parts.low_u32()))
}

/// A round's consensus on one subject. Bonded stake that did not rate the subject
/// (`total_stake` minus the raters' stake) counts as rating it at its current score,
/// `status_quo`: abstaining keeps things as they are, so raters with less than half of
/// all bonded stake cannot raise a score even when nobody else rated it. `None` when
/// no rater with stake rated.
pub fn round_consensus(
	ratings: &[(u128, Perbill)],
	total_stake: u128,
	status_quo: Perbill,
) -> Option<Perbill> {
	let rated = ratings.iter().fold(0u128, |sum, (stake, _)| sum.saturating_add(*stake));
	if rated == 0 {
		return None;
	}
	let mut all = ratings.to_vec();
	all.push((total_stake.saturating_sub(rated), status_quo));
	consensus(&all)
}

#[cfg(test)]
mod tests {
	use super::*;

	const P: ScoreParams = ScoreParams::DLLM;

	#[test]
	fn a_new_expert_has_the_prior_mean() {
		assert_eq!(Reputation::new(0).score(&P), Perbill::from_percent(50));
		assert_eq!(P.prior_mean(), Perbill::from_percent(50));
		assert_eq!(auction_quality(None, None, 7, &P), Some(Perbill::from_percent(50)));
	}

	#[test]
	fn evidence_moves_the_beta_mean() {
		let mut record = Reputation::new(0);
		record.observe(3 * EVIDENCE_UNIT, EVIDENCE_UNIT);
		// (1 + 3) / (2 + 4)
		assert_eq!(record.score(&P), Perbill::from_rational(4u32, 6u32));
	}

	#[test]
	fn evidence_decays_toward_the_prior() {
		let mut record = Reputation::new(10);
		record.observe(0, 10 * EVIDENCE_UNIT);
		let later = record.decayed(12, &P);
		assert_eq!(later.negative, 8_100_000);
		assert_eq!(later.period, 12);
		assert!(later.score(&P) > record.score(&P));
		let much_later = record.decayed(10 + MAX_DECAY_PERIODS, &P);
		assert_eq!(much_later.score(&P), P.prior_mean());
		// Decay never runs backwards.
		assert_eq!(record.decayed(3, &P), record);
	}

	#[test]
	fn stars_split_the_rating_evidence() {
		let split = |evidence: Evidence| (evidence.positive, evidence.negative);
		assert_eq!(split(P.stars_evidence(5)), (2 * EVIDENCE_UNIT, 0));
		assert_eq!(split(P.stars_evidence(3)), (EVIDENCE_UNIT, EVIDENCE_UNIT));
		assert_eq!(split(P.stars_evidence(1)), (0, 2 * EVIDENCE_UNIT));
		assert_eq!(P.stars_evidence(0), P.stars_evidence(1));
		assert_eq!(split(P.consensus_evidence(Perbill::from_percent(80))), (2_400_000, 600_000));
		assert!(!P.stars_evidence(5).verified);
		assert!(P.outcome_evidence(TaskOutcome::Verified).verified);
		assert_eq!(split(P.outcome_evidence(TaskOutcome::Outvoted)), (0, 4 * EVIDENCE_UNIT));
	}

	#[test]
	fn probation_caps_quality_and_excludes_after_one_failure() {
		let mut newcomer = Reputation::new(0);
		newcomer.observe(EVIDENCE_UNIT, 0);
		// Score 2/3, capped at the prior mean while on probation.
		assert_eq!(auction_quality(Some(&newcomer), None, 0, &P), Some(Perbill::from_percent(50)));
		let mut failed = Reputation::new(0);
		failed.observe(0, P.missed_deadline);
		// 1/3 is below the probation threshold (40%) ...
		assert_eq!(auction_quality(Some(&failed), None, 0, &P), None);
		// ... but not below the threshold of a proven expert (30%).
		failed.verified = P.probation_tasks;
		assert_eq!(
			auction_quality(Some(&failed), None, 0, &P),
			Some(Perbill::from_rational(1u32, 3u32))
		);
	}

	#[test]
	fn an_excluded_expert_recovers_as_its_failures_decay() {
		let mut record = Reputation { verified: 10, ..Reputation::new(0) };
		record.observe(0, 2 * P.outvoted);
		assert_eq!(auction_quality(Some(&record), None, 0, &P), None);
		let back =
			(1..200).find(|period| auction_quality(Some(&record), None, *period, &P).is_some());
		// 8 units of bad evidence must fall to 1/0.3 - 2 = 1.333 units: 0.9^17 × 8 = 1.334,
		// 0.9^18 × 8 = 1.20.
		assert_eq!(back, Some(18));
	}

	#[test]
	fn a_bad_domain_record_excludes_from_that_domain_only() {
		let overall = Reputation { verified: 5, positive: 5 * EVIDENCE_UNIT, ..Reputation::new(0) };
		let mut domain = Reputation::new(0);
		domain.observe(0, P.outvoted);
		assert_eq!(auction_quality(Some(&overall), Some(&domain), 0, &P), None);
		assert_eq!(
			auction_quality(Some(&overall), None, 0, &P),
			Some(Perbill::from_rational(6u32, 7u32))
		);
		let good_domain = Reputation { positive: EVIDENCE_UNIT, ..Reputation::new(0) };
		assert_eq!(
			auction_quality(Some(&overall), Some(&good_domain), 0, &P),
			Some(Perbill::from_rational(2u32, 3u32))
		);
	}

	fn pct(value: u32) -> Perbill {
		Perbill::from_percent(value)
	}

	#[test]
	fn consensus_clips_ratings_above_the_stake_weighted_median() {
		// Honest majority (70% of stake) rates 40%; a colluding minority rates 100%.
		let ratings = [(30, pct(40)), (25, pct(40)), (15, pct(40)), (20, pct(100)), (10, pct(100))];
		assert_eq!(consensus(&ratings), Some(pct(40)));
		// Bad-mouthing by 30% of the stake lowers it by at most 30% of the median.
		let ratings = [(70, pct(80)), (30, pct(0))];
		assert_eq!(consensus(&ratings), Some(pct(56)));
		// A majority decides.
		let ratings = [(40, pct(80)), (60, pct(20))];
		assert_eq!(consensus(&ratings), Some(pct(20)));
		assert_eq!(consensus(&[]), None);
		assert_eq!(consensus(&[(0, pct(90))]), None);
		// Huge stakes do not overflow.
		assert_eq!(consensus(&[(u128::MAX, pct(90)), (u128::MAX, pct(90))]), Some(pct(90)));
	}

	#[test]
	fn abstaining_stake_keeps_the_status_quo() {
		// A colluding 30% alone rates 100%: the abstaining 70% keeps the score at 50%.
		assert_eq!(round_consensus(&[(30, pct(100))], 100, pct(50)), Some(pct(50)));
		// An honest 60% rating 20% decides.
		assert_eq!(round_consensus(&[(30, pct(100)), (60, pct(20))], 100, pct(50)), Some(pct(20)));
		// A small honest rater lowers it in proportion to its stake.
		assert_eq!(round_consensus(&[(10, pct(0))], 100, pct(50)), Some(pct(45)));
		assert_eq!(round_consensus(&[(0, pct(0))], 100, pct(50)), None);
		assert_eq!(round_consensus(&[], 100, pct(50)), None);
	}

	#[test]
	fn an_update_decays_then_adds() {
		let mut record = Reputation::new(0);
		record.observe(0, 10 * EVIDENCE_UNIT);
		let next = record.updated(1, &P, P.outcome_evidence(TaskOutcome::Verified));
		assert_eq!(
			(next.positive, next.negative, next.verified, next.period),
			(EVIDENCE_UNIT, 9 * EVIDENCE_UNIT, 1, 1)
		);
	}

	#[test]
	fn consensus_of_identical_ratings_is_that_rating() {
		for value in [0, 1, 33, 50, 99, 100] {
			assert_eq!(consensus(&[(1, pct(value)), (5, pct(value))]), Some(pct(value)));
		}
	}
}
