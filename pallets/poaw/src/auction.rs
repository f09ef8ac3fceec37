//! The per-chunk reverse auction, free of storage so that tests and the simulation in
//! `examples/auction_sim.rs` run the very code the pallet runs.
//!
//! Every bidder asks a price per token per layer and carries a weight: its quality
//! (from the reputation pallet) times a small bonus for measured throughput. Its score
//! is `price / weight`, lower is better. Bids above the requester's price cap are out.
//! The `winners` lowest scores win; each winner is paid its threshold price, the
//! highest price at which it would still have won against the same other bids:
//! `weight × (price / weight)` of the best loser. Because what a winner is paid does not
//! depend on its own ask, asking the true cost is a dominant strategy wherever somebody
//! loses (docs/protocol.md). When nobody loses, every winner is paid the highest winning
//! ask: never the requester's cap, which would hand a thin market the requester's whole
//! safety margin.

use alloc::vec::Vec;
use core::cmp::Ordering;
use polkadot_sdk::sp_core::U256;

/// Weight of a bidder with quality 1 and no throughput bonus.
pub const UNIT_WEIGHT: u128 = 1_000_000_000 * 1_000_000_000;

/// One expert's offer in one chunk's auction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Bid<AccountId> {
	/// Who bids.
	pub expert: AccountId,
	/// Asking price per token per layer.
	pub price: u128,
	/// Quality × throughput bonus, in units of 10⁻¹⁸ (see [`weight`]); zero never wins.
	pub weight: u128,
	/// Breaks exact ties of score: lower wins.
	pub tie_key: [u8; 32],
}

/// A winner and what it is paid per token per layer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Award<AccountId> {
	/// The winner.
	pub expert: AccountId,
	/// What it asked.
	pub price: u128,
	/// What it is paid: its threshold price, at least `price`, at most the cap.
	pub threshold: u128,
}

/// A bidder's weight: `quality_parts` (parts per billion, from the reputation pallet)
/// times `1 + bonus × throughput / best_throughput` (parts per billion).
pub fn weight(quality_parts: u32, bonus_parts: u32, throughput: u64, best_throughput: u64) -> u128 {
	let bonus = if best_throughput == 0 {
		0
	} else {
		(bonus_parts as u128)
			.saturating_mul(throughput.min(best_throughput) as u128)
			.checked_div(best_throughput as u128)
			.unwrap_or(0)
	};
	(quality_parts as u128).saturating_mul(1_000_000_000u128.saturating_add(bonus))
}

/// Orders `a` before `b` when its score `price / weight` is lower (by cross
/// multiplication, exact), then by tie key.
fn by_score<A>(a: &Bid<A>, b: &Bid<A>) -> Ordering {
	// Two u128 factors never overflow 256 bits.
	let left = U256::from(a.price).saturating_mul(U256::from(b.weight));
	let right = U256::from(b.price).saturating_mul(U256::from(a.weight));
	left.cmp(&right).then_with(|| a.tie_key.cmp(&b.tie_key))
}

/// `price × weight / loser_weight`, rounded down, saturating at `u128::MAX`.
fn threshold_against(weight: u128, loser_price: u128, loser_weight: u128) -> u128 {
	let Some(value) = U256::from(loser_price)
		.saturating_mul(U256::from(weight))
		.checked_div(U256::from(loser_weight))
	else {
		return u128::MAX;
	};
	if value > U256::from(u128::MAX) {
		u128::MAX
	} else {
		value.as_u128()
	}
}

/// Runs one auction: the eligible bids (weight above zero, price at most `cap`) ranked
/// by score; the first `winners` win at their threshold prices (the highest winning ask
/// when nobody loses). Returns the winners in rank order (fewer when fewer bids are
/// eligible).
pub fn run<A: Clone>(bids: &[Bid<A>], winners: usize, cap: u128) -> Vec<Award<A>> {
	let mut eligible: Vec<&Bid<A>> =
		bids.iter().filter(|bid| bid.weight > 0 && bid.price <= cap).collect();
	eligible.sort_by(|a, b| by_score(a, b));
	let best_loser = eligible.get(winners).copied();
	let highest_winning_ask = eligible.iter().take(winners).map(|bid| bid.price).max().unwrap_or(0);
	eligible
		.iter()
		.take(winners)
		.map(|bid| Award {
			expert: bid.expert.clone(),
			price: bid.price,
			threshold: match best_loser {
				Some(loser) => {
					threshold_against(bid.weight, loser.price, loser.weight).min(cap).max(bid.price)
				}
				None => highest_winning_ask,
			},
		})
		.collect()
}

/// How many bids of a chunk could win under `cap`.
pub fn eligible_count<A>(bids: &[Bid<A>], cap: u128) -> usize {
	bids.iter().filter(|bid| bid.weight > 0 && bid.price <= cap).count()
}

#[cfg(test)]
mod tests {
	use super::*;

	fn bid(expert: u32, price: u128, quality_percent: u32) -> Bid<u32> {
		Bid {
			expert,
			price,
			weight: weight(quality_percent * 10_000_000, 0, 0, 0),
			tie_key: [expert as u8; 32],
		}
	}

	#[test]
	fn equal_quality_pays_the_best_losing_price() {
		let bids = [bid(1, 30, 50), bid(2, 10, 50), bid(3, 20, 50), bid(4, 40, 50)];
		let awards = run(&bids, 2, 1_000);
		assert_eq!(
			awards,
			vec![
				Award { expert: 2, price: 10, threshold: 30 },
				Award { expert: 3, price: 20, threshold: 30 }
			]
		);
	}

	#[test]
	fn quality_scales_the_threshold() {
		// Expert 1 has twice the quality: it wins asking up to twice the loser's price.
		let bids = [bid(1, 15, 100), bid(2, 10, 50)];
		let awards = run(&bids, 1, 1_000);
		assert_eq!(awards, vec![Award { expert: 1, price: 15, threshold: 20 }]);
	}

	#[test]
	fn the_cap_excludes_and_bounds() {
		let bids = [bid(1, 10, 50), bid(2, 500, 50), bid(3, 20, 50)];
		// Expert 2 asks above the cap: out. Nobody loses among the rest: both are paid
		// the highest winning ask, not the cap.
		let awards = run(&bids, 2, 100);
		assert_eq!(awards.iter().map(|a| a.threshold).collect::<Vec<_>>(), vec![20, 20]);
		assert_eq!(eligible_count(&bids, 100), 2);
		// A bid above the cap is no loser: the winner alone gets its own ask.
		let awards = run(&[bid(1, 10, 50), bid(3, 90, 50)], 1, 50);
		assert_eq!(awards, vec![Award { expert: 1, price: 10, threshold: 10 }]);
		// A losing bid under the cap still cannot raise thresholds above it.
		let awards = run(&[bid(1, 10, 50), bid(3, 45, 25)], 1, 50);
		assert_eq!(awards, vec![Award { expert: 1, price: 10, threshold: 50 }]);
	}

	#[test]
	fn ties_follow_the_tie_key_and_zero_weight_never_wins() {
		let bids = [bid(7, 10, 50), bid(3, 10, 50), bid(5, 1, 0)];
		let awards = run(&bids, 1, 100);
		assert_eq!(awards, vec![Award { expert: 3, price: 10, threshold: 10 }]);
	}

	#[test]
	fn throughput_bonus_reorders_only_close_scores() {
		let fast = weight(500_000_000, 50_000_000, 100, 100);
		let slow = weight(500_000_000, 50_000_000, 0, 100);
		let bids = |fast_price| {
			[
				Bid { expert: 1, price: fast_price, weight: fast, tie_key: [1; 32] },
				Bid { expert: 2, price: 100, weight: slow, tie_key: [2; 32] },
			]
		};
		// 4% dearer but 5% faster: wins.
		assert_eq!(run(&bids(104), 1, 1_000)[0].expert, 1);
		// 6% dearer: the bonus does not cover it.
		assert_eq!(run(&bids(106), 1, 1_000)[0].expert, 2);
	}

	/// A requester's cap is never what a winner is paid when it has no competitor: a
	/// lone bidder gets its own ask (R10 of the 2026-12 review).
	#[test]
	fn without_a_loser_the_cap_is_not_paid() {
		let awards = run(&[bid(1, 12, 50)], 1, 1_000_000);
		assert_eq!(awards, vec![Award { expert: 1, price: 12, threshold: 12 }]);
		let awards = run(&[bid(1, 12, 50), bid(2, 30, 90)], 2, 1_000_000);
		assert_eq!(awards.iter().map(|a| a.threshold).collect::<Vec<_>>(), vec![30, 30]);
	}

	/// Truthful asking is dominant wherever somebody can lose: over random auctions
	/// (costs, qualities, throughput, caps, ties) in which the other bids alone fill the
	/// winners, no other ask of any miner ever pays it more than its true cost does.
	#[test]
	fn misreporting_never_raises_utility() {
		let mut rng = crate::mock::Rng(0x0DD_BA11);
		let mut next = move || rng.next();
		for _ in 0..2_000 {
			let miners = 2 + (next() % 6) as usize;
			let winners = 1 + (next() % 3) as usize;
			let cap = 20 + (next() % 80) as u128;
			let best = 1_000;
			let bids: Vec<Bid<usize>> = (0..miners)
				.map(|i| Bid {
					expert: i,
					price: 5 + (next() % 60) as u128,
					weight: weight(
						100_000_000 + (next() % 900_000_000) as u32,
						50_000_000,
						next() % best,
						best,
					),
					tie_key: [(next() % 4) as u8; 32],
				})
				.collect();
			let utility = |bids: &[Bid<usize>], who: usize, cost: u128| -> i128 {
				run(bids, winners, cap)
					.iter()
					.find(|award| award.expert == who)
					.map_or(0, |award| award.threshold as i128 - cost as i128)
			};
			for who in 0..miners {
				let others = bids
					.iter()
					.enumerate()
					.filter(|(i, bid)| *i != who && bid.weight > 0 && bid.price <= cap)
					.count();
				if others < winners {
					continue;
				}
				let cost = bids[who].price;
				let truthful = utility(&bids, who, cost);
				for ask in
					[0, 1, cost / 2, cost.saturating_sub(1), cost + 1, cost * 2, cap, cap + 1]
				{
					let mut lied = bids.clone();
					lied[who].price = ask;
					assert!(
						utility(&lied, who, cost) <= truthful,
						"miner {who} gains by asking {ask} instead of {cost}: {bids:?}"
					);
				}
			}
		}
	}
}
