//! The tolerant comparison of a claimed fingerprint with a recomputed one: integer
//! arithmetic only, one pass over the blocks, O(k log k) per block for the top-k sets.

use crate::{encoding::Fingerprint, params::Tolerance};
use alloc::vec::Vec;

/// Why two fingerprints cannot be compared at all (a verdict of rejection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
	/// One covers hidden states, the other logits.
	Kind,
	/// Rows of different widths (another model).
	Width,
	/// A different number of positions (another prompt or generation length).
	Positions,
	/// Taken with different parameters.
	Params,
	/// A fingerprint whose fields disagree (not produced by decoding or by a builder).
	Malformed,
}

/// The numbers of one block (or the worst over blocks), in the fingerprint's units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockScore {
	/// Largest |log-RMS difference| of a position.
	pub log_rms_error: u32,
	/// |Mean signed log-RMS difference| over the block (rounded down): a scaled state
	/// moves every position the same way, float noise does not.
	pub log_rms_bias: u32,
	/// Largest mean |projection difference| of a position (rounded down).
	pub position_error: u32,
	/// Mean |projection difference| over the block (rounded down).
	pub block_error: u32,
	/// Per mille of claimed top-k indices among the recomputed top-k.
	pub top_k_overlap: u32,
	/// Mean |value difference| over the shared top-k indices (rounded down).
	pub top_k_error: u32,
}

/// The outcome of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Comparison {
	/// Whether every block is within the tolerance.
	pub accepted: bool,
	/// The first block outside the tolerance.
	pub first_bad_block: Option<u32>,
	/// That block's numbers.
	pub first_bad: Option<BlockScore>,
	/// Worst numbers over all blocks (largest errors, smallest overlap).
	pub worst: BlockScore,
}

/// Compares `claimed` (the generator's) with `recomputed` (the verifier's).
pub fn compare(
	claimed: &Fingerprint,
	recomputed: &Fingerprint,
	tolerance: &Tolerance,
) -> Result<Comparison, Mismatch> {
	if claimed.kind != recomputed.kind {
		return Err(Mismatch::Kind);
	}
	if claimed.width != recomputed.width {
		return Err(Mismatch::Width);
	}
	if claimed.positions != recomputed.positions {
		return Err(Mismatch::Positions);
	}
	if claimed.params != recomputed.params {
		return Err(Mismatch::Params);
	}
	if claimed.check().is_err() || recomputed.check().is_err() {
		return Err(Mismatch::Malformed);
	}
	let m = claimed.params.projections as usize;
	let k = claimed.params.top_k as usize;
	let mut worst = BlockScore { top_k_overlap: 1000, ..BlockScore::default() };
	let mut first_bad = None;
	let mut pairs_a = Vec::with_capacity(k);
	let mut pairs_b = Vec::with_capacity(k);
	for b in 0..claimed.blocks() {
		let range = claimed.block_range(b);
		let count = range.len() as u64;
		let mut score = BlockScore::default();
		let mut within = true;
		let mut block_sum = 0u64;
		let mut log_sum = 0i64;
		// `check` above guarantees every slice below exists (the `Malformed` returns are
		// never taken), and a block's sums are of at most 1024 positions of at most 16
		// projections of differences below 2^16: the saturating operations never saturate.
		for p in range {
			let (Some(&log_claimed), Some(&log_recomputed)) =
				(claimed.log_rms.get(p), recomputed.log_rms.get(p))
			else {
				return Err(Mismatch::Malformed);
			};
			log_sum = log_sum
				.saturating_add(i64::from(log_claimed).saturating_sub(i64::from(log_recomputed)));
			let log_error = diff(log_claimed, log_recomputed);
			score.log_rms_error = score.log_rms_error.max(log_error);
			within &= log_error <= tolerance.max_log_rms_error as u32;
			let row = p.saturating_mul(m)..p.saturating_add(1).saturating_mul(m);
			let (Some(row_claimed), Some(row_recomputed)) =
				(claimed.projections.get(row.clone()), recomputed.projections.get(row))
			else {
				return Err(Mismatch::Malformed);
			};
			let position_sum = row_claimed
				.iter()
				.zip(row_recomputed)
				.fold(0u64, |sum, (a, b)| sum.saturating_add(diff(*a, *b) as u64));
			block_sum = block_sum.saturating_add(position_sum);
			let mean = position_sum.checked_div(m as u64).unwrap_or(0);
			score.position_error = score.position_error.max(mean as u32);
			within &=
				position_sum <= (tolerance.max_position_error as u64).saturating_mul(m as u64);
		}
		let bias = log_sum.unsigned_abs();
		score.log_rms_bias = bias.checked_div(count).unwrap_or(0) as u32;
		within &= bias <= (tolerance.max_log_rms_bias as u64).saturating_mul(count);
		let samples = count.saturating_mul(m as u64);
		score.block_error = block_sum.checked_div(samples).unwrap_or(0) as u32;
		within &= block_sum <= (tolerance.max_block_error as u64).saturating_mul(samples);
		if k > 0 {
			let entries = b.saturating_mul(k)..b.saturating_add(1).saturating_mul(k);
			let (Some(indices_a), Some(values_a), Some(indices_b), Some(values_b)) = (
				claimed.top_indices.get(entries.clone()),
				claimed.top_values.get(entries.clone()),
				recomputed.top_indices.get(entries.clone()),
				recomputed.top_values.get(entries),
			) else {
				return Err(Mismatch::Malformed);
			};
			let (shared, value_sum) = top_k_agreement(
				indices_a,
				values_a,
				indices_b,
				values_b,
				&mut pairs_a,
				&mut pairs_b,
			);
			let shared_thousandths = (shared as u64).saturating_mul(1000);
			score.top_k_overlap = shared_thousandths.checked_div(k as u64).unwrap_or(0) as u32;
			within &=
				shared_thousandths >= (tolerance.min_top_k_overlap as u64).saturating_mul(k as u64);
			score.top_k_error = value_sum.checked_div(shared as u64).unwrap_or(0) as u32;
			within &= value_sum <= (tolerance.max_top_k_error as u64).saturating_mul(shared as u64);
		} else {
			score.top_k_overlap = 1000;
		}
		worst.log_rms_error = worst.log_rms_error.max(score.log_rms_error);
		worst.log_rms_bias = worst.log_rms_bias.max(score.log_rms_bias);
		worst.position_error = worst.position_error.max(score.position_error);
		worst.block_error = worst.block_error.max(score.block_error);
		worst.top_k_overlap = worst.top_k_overlap.min(score.top_k_overlap);
		worst.top_k_error = worst.top_k_error.max(score.top_k_error);
		if !within && first_bad.is_none() {
			first_bad = Some((b as u32, score));
		}
	}
	Ok(Comparison {
		accepted: first_bad.is_none(),
		first_bad_block: first_bad.map(|(b, _)| b),
		first_bad: first_bad.map(|(_, s)| s),
		worst,
	})
}

fn diff(a: i16, b: i16) -> u32 {
	i32::from(a).abs_diff(i32::from(b))
}

/// Number of indices in both top-k sets and the sum of |value difference| over them
/// (indices are distinct within a set: decoding checks it).
fn top_k_agreement(
	indices_a: &[u32],
	values_a: &[i16],
	indices_b: &[u32],
	values_b: &[i16],
	pairs_a: &mut Vec<(u32, i16)>,
	pairs_b: &mut Vec<(u32, i16)>,
) -> (u32, u64) {
	pairs_a.clear();
	pairs_a.extend(indices_a.iter().copied().zip(values_a.iter().copied()));
	pairs_a.sort_unstable_by_key(|(index, _)| *index);
	pairs_b.clear();
	pairs_b.extend(indices_b.iter().copied().zip(values_b.iter().copied()));
	pairs_b.sort_unstable_by_key(|(index, _)| *index);
	// A merge of the two sorted lists; at most k (a u16) entries each.
	let (mut a, mut b) = (pairs_a.iter().peekable(), pairs_b.iter().peekable());
	let (mut shared, mut sum) = (0u32, 0u64);
	while let (Some(&&(index_a, value_a)), Some(&&(index_b, value_b))) = (a.peek(), b.peek()) {
		match index_a.cmp(&index_b) {
			core::cmp::Ordering::Less => {
				a.next();
			}
			core::cmp::Ordering::Greater => {
				b.next();
			}
			core::cmp::Ordering::Equal => {
				shared = shared.saturating_add(1);
				sum = sum.saturating_add(diff(value_a, value_b) as u64);
				a.next();
				b.next();
			}
		}
	}
	(shared, sum)
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::{FingerprintParams, RowKind};

	fn fingerprint(positions: u32) -> Fingerprint {
		let params = FingerprintParams { block: 4, top_k: 4, projections: 2 };
		let blocks = (positions as usize).div_ceil(4);
		Fingerprint {
			kind: RowKind::Hidden,
			width: 16,
			positions,
			params,
			log_rms: (0..positions).map(|p| 100 + p as i16).collect(),
			projections: (0..positions * 2).map(|i| (i as i16) * 50 - 300).collect(),
			top_indices: (0..blocks).flat_map(|_| [3u32, 1, 7, 12]).collect(),
			top_values: (0..blocks * 4).map(|i| 900 - i as i16).collect(),
		}
	}

	const LOOSE: Tolerance = Tolerance {
		max_log_rms_error: 10,
		max_log_rms_bias: 5,
		max_position_error: 100,
		max_block_error: 40,
		min_top_k_overlap: 750,
		max_top_k_error: 20,
	};

	#[test]
	fn identical_fingerprints_agree() {
		let a = fingerprint(10);
		let result = compare(&a, &a, &LOOSE).unwrap();
		assert!(result.accepted);
		assert_eq!(result.first_bad_block, None);
		assert_eq!(result.worst, BlockScore { top_k_overlap: 1000, ..BlockScore::default() });
	}

	#[test]
	fn each_threshold_rejects_its_own_block() {
		let a = fingerprint(10);
		// Position 5 (block 1) with a log-RMS off by 11 > 10.
		let mut b = a.clone();
		b.log_rms[5] += 11;
		let result = compare(&a, &b, &LOOSE).unwrap();
		assert_eq!((result.accepted, result.first_bad_block), (false, Some(1)));
		assert_eq!(result.first_bad.unwrap().log_rms_error, 11);
		// Within the threshold: accepted.
		b.log_rms[5] -= 1;
		assert!(compare(&a, &b, &LOOSE).unwrap().accepted);
		// Every position of block 0 off by +6: within the per-position error, but the
		// block's mean bias is over 5; alternating signs are not a bias.
		let mut b = a.clone();
		(0..4).for_each(|p| b.log_rms[p] += 6);
		let result = compare(&a, &b, &LOOSE).unwrap();
		assert_eq!(result.first_bad_block, Some(0));
		assert_eq!(result.first_bad.unwrap().log_rms_bias, 6);
		let mut b = a.clone();
		(0..4).for_each(|p| b.log_rms[p] += if p % 2 == 0 { 6 } else { -6 });
		assert!(compare(&a, &b, &LOOSE).unwrap().accepted);
		// One position's projections off by 150 and 60: mean 105 > 100 (block 2).
		let mut b = a.clone();
		b.projections[2 * 9] += 150;
		b.projections[2 * 9 + 1] -= 60;
		let result = compare(&a, &b, &LOOSE).unwrap();
		assert_eq!(result.first_bad_block, Some(2));
		assert_eq!(result.first_bad.unwrap().position_error, 105);
		// Every projection of block 0 off by 41: the block mean is over 40.
		let mut b = a.clone();
		(0..8).for_each(|j| b.projections[j] += 41);
		let result = compare(&a, &b, &LOOSE).unwrap();
		assert_eq!(result.first_bad_block, Some(0));
		assert_eq!(result.first_bad.unwrap().block_error, 41);
		// Two of four top-k indices replaced in block 1: overlap 500 < 750.
		let mut b = a.clone();
		b.top_indices[4] = 0;
		b.top_indices[5] = 2;
		let result = compare(&a, &b, &LOOSE).unwrap();
		assert_eq!(result.first_bad_block, Some(1));
		assert_eq!(result.worst.top_k_overlap, 500);
		// Shared values off by 21 on average (order within the set does not matter).
		let mut b = a.clone();
		b.top_indices[8..12].reverse();
		b.top_values[8..12].reverse();
		(8..12).for_each(|e| b.top_values[e] += 21);
		let result = compare(&a, &b, &LOOSE).unwrap();
		assert_eq!(result.first_bad_block, Some(2));
		assert_eq!(result.first_bad.unwrap().top_k_error, 21);
	}

	#[test]
	fn different_shapes_cannot_be_compared() {
		let a = fingerprint(10);
		assert_eq!(compare(&a, &fingerprint(9), &LOOSE), Err(Mismatch::Positions));
		let mut b = a.clone();
		b.kind = RowKind::Logits;
		assert_eq!(compare(&a, &b, &LOOSE), Err(Mismatch::Kind));
		let mut b = a.clone();
		b.width = 32;
		assert_eq!(compare(&a, &b, &LOOSE), Err(Mismatch::Width));
		let mut b = a.clone();
		b.params.projections = 3;
		assert_eq!(compare(&a, &b, &LOOSE), Err(Mismatch::Params));
		let mut b = a.clone();
		b.log_rms.pop();
		assert_eq!(compare(&a, &b, &LOOSE), Err(Mismatch::Malformed));
	}

	#[test]
	fn extreme_codes_do_not_overflow() {
		let mut a = fingerprint(8);
		let mut b = a.clone();
		a.log_rms.iter_mut().for_each(|v| *v = i16::MIN);
		b.log_rms.iter_mut().for_each(|v| *v = i16::MAX);
		a.projections.iter_mut().for_each(|v| *v = i16::MIN);
		b.projections.iter_mut().for_each(|v| *v = i16::MAX);
		let result = compare(&a, &b, &LOOSE).unwrap();
		assert!(!result.accepted);
		assert_eq!(result.worst.log_rms_error, 65_535);
	}
}
