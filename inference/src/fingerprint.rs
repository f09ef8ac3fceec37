//! Fingerprints: compact commitments to a chunk's output activations, in the spirit of
//! TOPLOC. For every block of `block` positions, the hidden state of the block's last
//! position is reduced to its `k` largest-magnitude entries (index and f16 value).
//!
//! A verifier recomputes the chunk and accepts when, in every block, enough of the
//! claimed top-k indices are also among its own top-k and the claimed values are close
//! to its own values at those indices. Float noise (thread counts, f16 vs f32) moves
//! values a little and swaps a few near-equal indices; wrong work (other weights, a
//! skipped or swapped layer, another model) changes both wholesale. The thresholds in
//! [`Tolerance::default`] were calibrated by the tests in `tests/fingerprint.rs`.

use crate::error::{InferenceError, Result};
use candle_core::{DType, Tensor};

const MAGIC: &[u8; 4] = b"DLFP";
const VERSION: u8 = 1;

/// How a fingerprint is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FingerprintParams {
	/// Positions per block.
	pub block: usize,
	/// Entries kept per block.
	pub top_k: usize,
}

impl Default for FingerprintParams {
	fn default() -> Self {
		FingerprintParams { block: 32, top_k: 32 }
	}
}

/// Thresholds of [`verify`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
	/// Least share of claimed indices found in the verifier's own top-k, per block.
	pub min_overlap: f32,
	/// Largest mean relative error of the claimed values, per block.
	pub max_mean_error: f32,
}

impl Default for Tolerance {
	fn default() -> Self {
		// Calibrated in tests/fingerprint.rs: honest f16-vs-f32 work stays below 0.0005,
		// a 5% perturbation of one weight matrix above 0.0045, a skipped layer above 0.1.
		Tolerance { min_overlap: 0.8, max_mean_error: 0.0025 }
	}
}

/// The top-k of one block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockEntry {
	/// Indices into the hidden dimension, largest magnitude first.
	pub indices: Vec<u32>,
	/// Values at those indices, rounded to f16.
	pub values: Vec<half::f16>,
}

/// A commitment to hidden states [positions, hidden].
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
	/// Width of the hidden states.
	pub hidden: u32,
	/// Positions covered.
	pub positions: u32,
	/// Positions per block.
	pub block: u16,
	/// One entry per block.
	pub blocks: Vec<BlockEntry>,
}

/// Result of a verification, with the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
	/// Whether the fingerprint matches the recomputation within the tolerance.
	pub accepted: bool,
	/// Lowest index overlap over blocks.
	pub min_overlap: f32,
	/// Highest per-block mean relative error.
	pub worst_mean_error: f32,
}

/// Rows of `hidden` ([1, positions, hidden] or [positions, hidden]) as f32.
fn rows(hidden: &Tensor) -> Result<Vec<Vec<f32>>> {
	let hidden = match hidden.rank() {
		3 => hidden.squeeze(0)?,
		2 => hidden.clone(),
		r => return Err(InferenceError::Fingerprint(format!("hidden states of rank {r}"))),
	};
	Ok(hidden.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

/// The `k` largest-magnitude entries (ties: lower index first).
fn top_k(row: &[f32], k: usize) -> Vec<u32> {
	let mut order: Vec<u32> = (0..row.len() as u32).collect();
	order.sort_by(|&a, &b| row[b as usize].abs().total_cmp(&row[a as usize].abs()).then(a.cmp(&b)));
	order.truncate(k);
	order
}

/// Last position of each block.
fn block_ends(positions: usize, block: usize) -> impl Iterator<Item = usize> {
	(0..positions.div_ceil(block)).map(move |b| ((b + 1) * block).min(positions) - 1)
}

impl Fingerprint {
	/// Fingerprints hidden states [1, positions, hidden].
	pub fn compute(hidden: &Tensor, params: FingerprintParams) -> Result<Self> {
		if params.block == 0 || params.top_k == 0 || params.block > u16::MAX as usize {
			return Err(InferenceError::Fingerprint("block and top_k must be positive".into()));
		}
		let rows = rows(hidden)?;
		let width = rows.first().map_or(0, Vec::len);
		if rows.is_empty() || width == 0 {
			return Err(InferenceError::Fingerprint("no hidden states".into()));
		}
		let k = params.top_k.min(width);
		let blocks = block_ends(rows.len(), params.block)
			.map(|end| {
				let indices = top_k(&rows[end], k);
				let values =
					indices.iter().map(|&i| half::f16::from_f32(rows[end][i as usize])).collect();
				BlockEntry { indices, values }
			})
			.collect();
		Ok(Fingerprint {
			hidden: width as u32,
			positions: rows.len() as u32,
			block: params.block as u16,
			blocks,
		})
	}

	/// Serializes: magic, version, hidden, positions, block, k, then per block k u32
	/// indices and k f16 values (little-endian).
	pub fn encode(&self) -> Vec<u8> {
		let k = self.blocks.first().map_or(0, |b| b.indices.len());
		let mut out = Vec::with_capacity(16 + self.blocks.len() * k * 6);
		out.extend_from_slice(MAGIC);
		out.push(VERSION);
		out.extend_from_slice(&self.hidden.to_le_bytes());
		out.extend_from_slice(&self.positions.to_le_bytes());
		out.extend_from_slice(&self.block.to_le_bytes());
		out.extend_from_slice(&(k as u16).to_le_bytes());
		for entry in &self.blocks {
			entry.indices.iter().for_each(|i| out.extend_from_slice(&i.to_le_bytes()));
			entry.values.iter().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes()));
		}
		out
	}

	/// Parses and checks an encoded fingerprint.
	pub fn decode(bytes: &[u8]) -> Result<Self> {
		let err = |m: &str| InferenceError::Fingerprint(m.to_string());
		if bytes.len() < 17 || &bytes[..4] != MAGIC {
			return Err(err("not a fingerprint"));
		}
		if bytes[4] != VERSION {
			return Err(err("unsupported fingerprint version"));
		}
		let u32_at = |at: usize| {
			u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
		};
		let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
		let (hidden, positions, block, k) = (u32_at(5), u32_at(9), u16_at(13), u16_at(15) as usize);
		if block == 0 || k == 0 || positions == 0 || k > hidden as usize {
			return Err(err("bad fingerprint header"));
		}
		let count = (positions as usize).div_ceil(block as usize);
		let expected = count.checked_mul(k * 6).and_then(|n| n.checked_add(17));
		if expected != Some(bytes.len()) {
			return Err(err("fingerprint length does not match its header"));
		}
		let mut blocks = Vec::with_capacity(count);
		let mut at = 17;
		for _ in 0..count {
			let indices: Vec<u32> = (0..k).map(|j| u32_at(at + 4 * j)).collect();
			at += 4 * k;
			let values: Vec<half::f16> =
				(0..k).map(|j| half::f16::from_bits(u16_at(at + 2 * j))).collect();
			at += 2 * k;
			if indices.iter().any(|i| *i >= hidden) {
				return Err(err("index outside the hidden width"));
			}
			blocks.push(BlockEntry { indices, values });
		}
		Ok(Fingerprint { hidden, positions, block, blocks })
	}
}

/// Checks `claimed` against hidden states the verifier computed itself.
pub fn verify(claimed: &Fingerprint, recomputed: &Tensor, tolerance: Tolerance) -> Result<Verdict> {
	let rows = rows(recomputed)?;
	let width = rows.first().map_or(0, Vec::len);
	if rows.len() != claimed.positions as usize || width != claimed.hidden as usize {
		return Ok(Verdict { accepted: false, min_overlap: 0.0, worst_mean_error: f32::INFINITY });
	}
	let mut min_overlap = 1f32;
	let mut worst = 0f32;
	for (entry, end) in claimed.blocks.iter().zip(block_ends(rows.len(), claimed.block as usize)) {
		let row = &rows[end];
		let k = entry.indices.len();
		let ours = top_k(row, k);
		let overlap = entry.indices.iter().filter(|i| ours.contains(i)).count() as f32 / k as f32;
		// Relative to the row's scale, so entries near zero do not blow the error up.
		let scale = ours.first().map_or(1.0, |&i| row[i as usize].abs()).max(1e-6);
		let mean_error = entry
			.indices
			.iter()
			.zip(&entry.values)
			.map(|(&i, v)| (v.to_f32() - row[i as usize]).abs() / scale)
			.sum::<f32>()
			/ k as f32;
		min_overlap = min_overlap.min(overlap);
		worst = worst.max(mean_error);
	}
	Ok(Verdict {
		accepted: min_overlap >= tolerance.min_overlap && worst <= tolerance.max_mean_error,
		min_overlap,
		worst_mean_error: worst,
	})
}

#[cfg(test)]
mod tests {
	use super::*;
	use candle_core::Device;

	fn hidden(seed: u32) -> Tensor {
		let data: Vec<f32> = (0..5 * 40u32)
			.map(|i: u32| {
				((i ^ seed.wrapping_mul(0x9E37_79B9)).wrapping_mul(2654435761) % 1000) as f32
					/ 100.0 - 5.0
			})
			.collect();
		Tensor::from_vec(data, (1, 5, 40), &Device::Cpu).unwrap()
	}

	#[test]
	fn round_trip_and_self_verification() {
		let params = FingerprintParams { block: 2, top_k: 8 };
		let fp = Fingerprint::compute(&hidden(1), params).unwrap();
		assert_eq!(fp.blocks.len(), 3);
		let bytes = fp.encode();
		assert_eq!(Fingerprint::decode(&bytes).unwrap(), fp);
		assert!(verify(&fp, &hidden(1), Tolerance::default()).unwrap().accepted);
		assert!(!verify(&fp, &hidden(2), Tolerance::default()).unwrap().accepted);
	}

	#[test]
	fn malformed_fingerprints_are_errors() {
		let bytes = Fingerprint::compute(&hidden(1), FingerprintParams { block: 2, top_k: 8 })
			.unwrap()
			.encode();
		for cut in 0..bytes.len() {
			assert!(Fingerprint::decode(&bytes[..cut]).is_err());
		}
		let mut bad = bytes.clone();
		bad[4] = 2;
		assert!(Fingerprint::decode(&bad).is_err());
	}
}
