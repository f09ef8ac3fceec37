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
/// Magic, version, hidden, positions, block, k.
const HEADER_BYTES: usize = 17;

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
		if bytes.len() < HEADER_BYTES || &bytes[..4] != MAGIC {
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
		let expected = count.checked_mul(k * 6).and_then(|n| n.checked_add(HEADER_BYTES));
		if expected != Some(bytes.len()) {
			return Err(err("fingerprint length does not match its header"));
		}
		let mut blocks = Vec::with_capacity(count);
		let mut at = HEADER_BYTES;
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

/// Builds the fingerprint of a chunk's output as it is produced, one pass at a time
/// (the prompt, then one position per generated token), keeping only the rows that end
/// a block and the latest row: memory stays at `positions / block` rows.
///
/// The result equals [`Fingerprint::compute`] over all rows at once with the same
/// `block` and the `top_k` that [`FingerprintBuilder::finish`] settles on.
#[derive(Debug, Clone)]
pub struct FingerprintBuilder {
	block: usize,
	top_k: usize,
	width: usize,
	positions: usize,
	/// Rows at positions `block - 1`, `2 * block - 1`, ...
	block_rows: Vec<Vec<f32>>,
	/// The latest row, when it does not end a block.
	tail: Option<Vec<f32>>,
}

impl FingerprintBuilder {
	/// A builder for `params`.
	pub fn new(params: FingerprintParams) -> Result<Self> {
		if params.block == 0 || params.top_k == 0 || params.block > u16::MAX as usize {
			return Err(InferenceError::Fingerprint("block and top_k must be positive".into()));
		}
		Ok(FingerprintBuilder {
			block: params.block,
			top_k: params.top_k,
			width: 0,
			positions: 0,
			block_rows: Vec::new(),
			tail: None,
		})
	}

	/// Positions seen so far.
	pub fn positions(&self) -> usize {
		self.positions
	}

	/// Appends the rows of `hidden` ([1, n, width] or [n, width]).
	pub fn push(&mut self, hidden: &Tensor) -> Result<()> {
		let hidden = match hidden.rank() {
			3 => hidden.squeeze(0)?,
			2 => hidden.clone(),
			r => return Err(InferenceError::Fingerprint(format!("hidden states of rank {r}"))),
		};
		let (n, _) = hidden.dims2()?;
		for start in 0..n {
			let position = self.positions + start;
			// Only rows that end a block, and the very last row, are kept.
			if (position + 1).is_multiple_of(self.block) || start + 1 == n {
				let row = hidden.get(start)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
				self.push_row_at(position, row)?;
			}
		}
		self.positions += n;
		Ok(())
	}

	/// Appends one row (e.g. the logits a token was sampled from).
	pub fn push_row(&mut self, row: &[f32]) -> Result<()> {
		self.push_row_at(self.positions, row.to_vec())?;
		self.positions += 1;
		Ok(())
	}

	fn push_row_at(&mut self, position: usize, row: Vec<f32>) -> Result<()> {
		if row.is_empty() || (self.width != 0 && row.len() != self.width) {
			return Err(InferenceError::Fingerprint(format!(
				"row of width {} after rows of width {}",
				row.len(),
				self.width
			)));
		}
		self.width = row.len();
		if (position + 1).is_multiple_of(self.block) {
			self.block_rows.push(row);
			self.tail = None;
		} else {
			self.tail = Some(row);
		}
		Ok(())
	}

	/// The fingerprint, with `top_k` lowered as far as needed (to 1 at least) for its
	/// encoding to fit in `max_bytes`; an error when even that does not fit.
	pub fn finish(&self, max_bytes: usize) -> Result<Fingerprint> {
		if self.positions == 0 {
			return Err(InferenceError::Fingerprint("no hidden states".into()));
		}
		let rows: Vec<&Vec<f32>> = self.block_rows.iter().chain(self.tail.iter()).collect();
		let per_entry = rows.len() * 6;
		let fits = max_bytes.saturating_sub(HEADER_BYTES) / per_entry;
		let k = self.top_k.min(self.width).min(fits);
		if k == 0 {
			return Err(InferenceError::Fingerprint(format!(
				"{} blocks do not fit in {max_bytes} bytes even with one entry each",
				rows.len()
			)));
		}
		let blocks = rows
			.iter()
			.map(|row| {
				let indices = top_k(row, k);
				let values =
					indices.iter().map(|&i| half::f16::from_f32(row[i as usize])).collect();
				BlockEntry { indices, values }
			})
			.collect();
		Ok(Fingerprint {
			hidden: self.width as u32,
			positions: self.positions as u32,
			block: self.block as u16,
			blocks,
		})
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
	fn builder_matches_compute_and_fits_the_budget() {
		let all = hidden(3);
		let params = FingerprintParams { block: 2, top_k: 8 };
		// A prompt of 3 positions, then two single positions, as a pipeline produces them.
		let mut builder = FingerprintBuilder::new(params).unwrap();
		builder.push(&all.narrow(1, 0, 3).unwrap()).unwrap();
		builder.push(&all.narrow(1, 3, 1).unwrap()).unwrap();
		builder.push(&all.narrow(1, 4, 1).unwrap()).unwrap();
		assert_eq!(builder.positions(), 5);
		let expected = Fingerprint::compute(&all, params).unwrap();
		assert_eq!(builder.finish(usize::MAX).unwrap(), expected);
		// Row by row gives the same.
		let rows = all.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
		let mut by_row = FingerprintBuilder::new(params).unwrap();
		rows.iter().for_each(|row| by_row.push_row(row).unwrap());
		assert_eq!(by_row.finish(usize::MAX).unwrap(), expected);
		// A tight budget lowers k: 3 blocks of k entries take 17 + 18k bytes.
		let small = builder.finish(17 + 18 * 3).unwrap();
		assert_eq!(small.blocks[0].indices.len(), 3);
		assert!(small.encode().len() <= 17 + 18 * 3);
		assert_eq!(
			small,
			Fingerprint::compute(&all, FingerprintParams { block: 2, top_k: 3 }).unwrap()
		);
		assert!(builder.finish(17 + 17).is_err());
		assert!(FingerprintBuilder::new(params).unwrap().finish(1000).is_err());
		assert!(by_row.push_row(&[1.0]).is_err(), "width changes are refused");
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
