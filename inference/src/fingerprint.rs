//! Fingerprints of a chunk's activations, the float side: sketching rows (hidden states
//! or logits) as they are produced, and quantizing the sketch into the integer
//! [`Fingerprint`] of the `dllm-fingerprint` crate, whose [`compare`] the runtime runs.
//!
//! Per position the sketch keeps the row's RMS and its projections on
//! `params.projections` fixed ±1 directions (divided by `sqrt(width) * rms`, so about
//! N(0, 1)); per block of `params.block` positions the top-k largest-magnitude entries of
//! the block's last row (divided by the RMS). [`compare_float`] is the same comparison
//! on the unquantized sketches: the reference the integer comparison is checked against.

use crate::error::{InferenceError, Result};
use candle_core::{DType, Tensor};
pub use dllm_fingerprint::{
	compare, projection_sign, BlockScore, Comparison, Fingerprint, FingerprintParams, Mismatch,
	RowKind, Tolerance, VerificationParams, HEADER_BYTES, LOG_RMS_SCALE, PROJECTION_SCALE,
	VALUE_SCALE,
};

/// The unquantized sketch of a sequence of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatSketch {
	/// What the rows are.
	pub kind: RowKind,
	/// Row width.
	pub width: usize,
	/// Block size and projections; `top_k` as kept (at most the width).
	pub params: FingerprintParams,
	/// Per position, the row's RMS.
	pub rms: Vec<f64>,
	/// Per position, `params.projections` normalized projections.
	pub projections: Vec<f64>,
	/// Per block, the top-k `(index, value / rms)` of its last row, largest first.
	pub top: Vec<Vec<(u32, f64)>>,
}

/// The sketch of one row.
fn sketch_row(row: &[f32], signs: &[Vec<f32>], projections: &mut Vec<f64>) -> Result<f64> {
	if let Some(i) = row.iter().position(|v| !v.is_finite()) {
		return Err(InferenceError::Fingerprint(format!(
			"entry {i} of an activation row is {}",
			row[i]
		)));
	}
	let sum_sq: f64 = row.iter().map(|v| (*v as f64) * (*v as f64)).sum();
	let width = row.len() as f64;
	let rms = libm::sqrt(sum_sq / width);
	let norm = libm::sqrt(width) * rms;
	for direction in signs {
		let dot: f64 = row.iter().zip(direction).map(|(v, s)| (*v * *s) as f64).sum();
		projections.push(if norm > 0.0 { dot / norm } else { 0.0 });
	}
	Ok(rms)
}

/// The `k` largest-magnitude entries of `row` (ties: lower index first), divided by `rms`.
fn top_entries(row: &[f32], k: usize, rms: f64) -> Vec<(u32, f64)> {
	let mut order: Vec<u32> = (0..row.len() as u32).collect();
	let by_magnitude =
		|a: &u32, b: &u32| row[*b as usize].abs().total_cmp(&row[*a as usize].abs()).then(a.cmp(b));
	if k < order.len() {
		order.select_nth_unstable_by(k, by_magnitude);
		order.truncate(k);
	}
	order.sort_unstable_by(by_magnitude);
	let scale = if rms > 0.0 { 1.0 / rms } else { 0.0 };
	order.into_iter().map(|i| (i, row[i as usize] as f64 * scale)).collect()
}

/// Builds the fingerprint of a chunk's rows as they are produced, one pass at a time (a
/// prompt, then one position per generated token, or a verifier's prefill in pieces).
/// Memory: a few numbers per position, plus the top-k of each block.
#[derive(Debug, Clone)]
pub struct FingerprintBuilder {
	params: FingerprintParams,
	signs: Vec<Vec<f32>>,
	sketch: FloatSketch,
	/// The latest row, when it does not end a block: its top-k is taken at the end.
	tail: Option<Vec<f32>>,
}

impl FingerprintBuilder {
	/// A builder of hidden-state fingerprints.
	pub fn new(params: FingerprintParams) -> Result<Self> {
		Self::for_rows(params, RowKind::Hidden)
	}

	/// A builder for rows of `kind`.
	pub fn for_rows(params: FingerprintParams, kind: RowKind) -> Result<Self> {
		params.validate().map_err(|e| InferenceError::Fingerprint(e.to_string()))?;
		Ok(FingerprintBuilder {
			params,
			signs: Vec::new(),
			sketch: FloatSketch {
				kind,
				width: 0,
				params,
				rms: Vec::new(),
				projections: Vec::new(),
				top: Vec::new(),
			},
			tail: None,
		})
	}

	/// Positions seen so far.
	pub fn positions(&self) -> usize {
		self.sketch.rms.len()
	}

	/// Appends the rows of `rows` ([1, n, width] or [n, width], any float dtype).
	pub fn push(&mut self, rows: &Tensor) -> Result<()> {
		let rows = match rows.rank() {
			3 => rows.squeeze(0)?,
			2 => rows.clone(),
			r => return Err(InferenceError::Fingerprint(format!("rows of rank {r}"))),
		};
		for row in rows.to_dtype(DType::F32)?.to_vec2::<f32>()? {
			self.push_row(&row)?;
		}
		Ok(())
	}

	/// Appends one row.
	pub fn push_row(&mut self, row: &[f32]) -> Result<()> {
		if row.is_empty() || (self.sketch.width != 0 && row.len() != self.sketch.width) {
			return Err(InferenceError::Fingerprint(format!(
				"row of width {} after rows of width {}",
				row.len(),
				self.sketch.width
			)));
		}
		if self.sketch.width == 0 {
			self.start(row.len());
		}
		let rms = sketch_row(row, &self.signs, &mut self.sketch.projections)?;
		self.sketch.rms.push(rms);
		if self.positions().is_multiple_of(self.params.block as usize) {
			let k = self.sketch.params.top_k as usize;
			self.sketch.top.push(top_entries(row, k, rms));
			self.tail = None;
		} else {
			self.tail = Some(row.to_vec());
		}
		Ok(())
	}

	fn start(&mut self, width: usize) {
		self.sketch.width = width;
		self.sketch.params.top_k = self.params.top_k_for(width as u32);
		self.signs = (0..self.params.projections)
			.map(|j| {
				(0..width as u32).map(|i| if projection_sign(j, i) { 1.0 } else { -1.0 }).collect()
			})
			.collect();
	}

	/// The float sketch of every row so far.
	pub fn sketch(&self) -> Result<FloatSketch> {
		if self.positions() == 0 {
			return Err(InferenceError::Fingerprint("no rows to fingerprint".into()));
		}
		let mut sketch = self.sketch.clone();
		if let Some(row) = &self.tail {
			let rms = sketch.rms.last().copied().unwrap_or(0.0);
			sketch.top.push(top_entries(row, sketch.params.top_k as usize, rms));
		}
		Ok(sketch)
	}

	/// The fingerprint, with `top_k` and then `projections` lowered as far as needed for
	/// its encoding to fit in `max_bytes` (`usize::MAX`: the full parameters); an error
	/// when even one projection and no top-k do not fit.
	pub fn finish(&self, max_bytes: usize) -> Result<Fingerprint> {
		let sketch = self.sketch()?;
		let (positions, width) = (sketch.rms.len() as u32, sketch.width as u32);
		let mut params = sketch.params;
		while params.encoded_len(positions, width) > max_bytes {
			if params.top_k > 0 {
				params.top_k -= 1;
			} else if params.projections > 1 {
				params.projections -= 1;
			} else {
				return Err(InferenceError::Fingerprint(format!(
					"{positions} positions do not fit in {max_bytes} bytes"
				)));
			}
		}
		Ok(quantize(&sketch, params))
	}
}

fn clamp_i16(value: f64) -> i16 {
	libm::round(value).clamp(i16::MIN as f64, i16::MAX as f64) as i16
}

fn log_rms_code(rms: f64) -> i16 {
	if rms > 0.0 {
		clamp_i16(libm::log2(rms) * LOG_RMS_SCALE)
	} else {
		i16::MIN
	}
}

/// The integer fingerprint of `sketch` under `params` (its projections and top-k may
/// be fewer than the sketch's: the first ones are kept).
fn quantize(sketch: &FloatSketch, params: FingerprintParams) -> Fingerprint {
	let m_all = sketch.params.projections as usize;
	let m = params.projections as usize;
	let k = params.top_k as usize;
	Fingerprint {
		kind: sketch.kind,
		width: sketch.width as u32,
		positions: sketch.rms.len() as u32,
		params,
		log_rms: sketch.rms.iter().map(|r| log_rms_code(*r)).collect(),
		projections: sketch
			.projections
			.chunks(m_all)
			.flat_map(|p| p[..m].iter().map(|v| clamp_i16(v * PROJECTION_SCALE)))
			.collect(),
		top_indices: sketch.top.iter().flat_map(|t| t[..k].iter().map(|(i, _)| *i)).collect(),
		top_values: sketch
			.top
			.iter()
			.flat_map(|t| t[..k].iter().map(|(_, v)| clamp_i16(v * VALUE_SCALE)))
			.collect(),
	}
}

impl FloatSketch {
	/// Sketches all rows of `rows` ([1, n, width] or [n, width]) at once.
	pub fn compute(rows: &Tensor, params: FingerprintParams, kind: RowKind) -> Result<Self> {
		let mut builder = FingerprintBuilder::for_rows(params, kind)?;
		builder.push(rows)?;
		builder.sketch()
	}
}

impl FloatSketch {
	/// The sketch a fingerprint stands for (its codes back in float units).
	pub fn dequantize(fp: &Fingerprint) -> FloatSketch {
		let k = fp.params.top_k as usize;
		FloatSketch {
			kind: fp.kind,
			width: fp.width as usize,
			params: fp.params,
			rms: fp
				.log_rms
				.iter()
				.map(|c| if *c == i16::MIN { 0.0 } else { libm::exp2(*c as f64 / LOG_RMS_SCALE) })
				.collect(),
			projections: fp.projections.iter().map(|c| *c as f64 / PROJECTION_SCALE).collect(),
			top: (0..fp.blocks())
				.map(|b| {
					(b * k..(b + 1) * k)
						.map(|e| (fp.top_indices[e], fp.top_values[e] as f64 / VALUE_SCALE))
						.collect()
				})
				.collect(),
		}
	}
}

/// The verdict of [`compare_float`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloatComparison {
	/// Whether every block is within the tolerance.
	pub accepted: bool,
	/// The first block outside it.
	pub first_bad_block: Option<usize>,
}

/// The comparison of [`compare`] on unquantized sketches, thresholds converted to
/// floats: the reference that the integer comparison must agree with.
pub fn compare_float(
	claimed: &FloatSketch,
	recomputed: &FloatSketch,
	tolerance: &Tolerance,
) -> FloatComparison {
	let rejected = FloatComparison { accepted: false, first_bad_block: Some(0) };
	if claimed.kind != recomputed.kind
		|| claimed.width != recomputed.width
		|| claimed.params != recomputed.params
		|| claimed.rms.len() != recomputed.rms.len()
	{
		return rejected;
	}
	let block = claimed.params.block as usize;
	let m = claimed.params.projections as usize;
	let k = claimed.params.top_k as usize;
	let log2 = |r: f64| if r > 0.0 { libm::log2(r) } else { f64::NEG_INFINITY };
	for (b, (top_a, top_b)) in claimed.top.iter().zip(&recomputed.top).enumerate() {
		let range = b * block..((b + 1) * block).min(claimed.rms.len());
		let mut within = true;
		let mut block_sum = 0.0;
		let mut log_sum = 0.0;
		for p in range.clone() {
			let signed = (log2(claimed.rms[p]) - log2(recomputed.rms[p])) * LOG_RMS_SCALE;
			log_sum += signed;
			within &= signed.abs() <= tolerance.max_log_rms_error as f64;
			let sum: f64 = (p * m..(p + 1) * m)
				.map(|j| {
					(claimed.projections[j] - recomputed.projections[j]).abs() * PROJECTION_SCALE
				})
				.sum();
			block_sum += sum;
			within &= sum / m as f64 <= tolerance.max_position_error as f64;
		}
		within &= block_sum / (range.len() * m) as f64 <= tolerance.max_block_error as f64;
		within &= (log_sum / range.len() as f64).abs() <= tolerance.max_log_rms_bias as f64;
		if k > 0 {
			let shared: Vec<(f64, f64)> = top_a
				.iter()
				.filter_map(|(i, a)| top_b.iter().find(|(j, _)| j == i).map(|(_, b)| (*a, *b)))
				.collect();
			within &= shared.len() as f64 * 1000.0 / k as f64 >= tolerance.min_top_k_overlap as f64;
			if !shared.is_empty() {
				let error: f64 =
					shared.iter().map(|(a, b)| (a - b).abs() * VALUE_SCALE).sum::<f64>()
						/ shared.len() as f64;
				within &= error <= tolerance.max_top_k_error as f64;
			}
		}
		if !within {
			return FloatComparison { accepted: false, first_bad_block: Some(b) };
		}
	}
	FloatComparison { accepted: true, first_bad_block: None }
}

#[cfg(test)]
mod tests {
	use super::*;
	use candle_core::Device;

	fn rows(seed: u32, positions: usize, width: usize) -> Tensor {
		let data: Vec<f32> = (0..(positions * width) as u32)
			.map(|i| {
				((i ^ seed.wrapping_mul(0x9E37_79B9)).wrapping_mul(2_654_435_761) % 1000) as f32
					/ 100.0 - 5.0
			})
			.collect();
		Tensor::from_vec(data, (1, positions, width), &Device::Cpu).unwrap()
	}

	const PARAMS: FingerprintParams = FingerprintParams { block: 4, top_k: 8, projections: 3 };

	#[test]
	fn incremental_equals_all_at_once_and_round_trips() {
		let all = rows(3, 10, 40);
		let mut builder = FingerprintBuilder::new(PARAMS).unwrap();
		builder.push(&all.narrow(1, 0, 3).unwrap()).unwrap();
		for p in 3..10 {
			builder.push(&all.narrow(1, p, 1).unwrap()).unwrap();
		}
		let whole = FloatSketch::compute(&all, PARAMS, RowKind::Hidden).unwrap();
		assert_eq!(builder.sketch().unwrap(), whole);
		assert_eq!(whole.top.len(), 3);
		let fp = builder.finish(usize::MAX).unwrap();
		assert_eq!(Fingerprint::decode(&fp.encode()).unwrap(), fp);
		let same = compare(&fp, &fp, &Tolerance::BF16).unwrap();
		assert!(same.accepted);
		assert!(compare_float(&whole, &whole, &Tolerance::BF16).accepted);
	}

	#[test]
	fn other_rows_are_rejected_by_both_comparisons() {
		let a =
			FingerprintBuilder::new(PARAMS).and_then(|mut b| b.push(&rows(1, 9, 40)).map(|_| b));
		let b =
			FingerprintBuilder::new(PARAMS).and_then(|mut b| b.push(&rows(2, 9, 40)).map(|_| b));
		let (a, b) = (a.unwrap(), b.unwrap());
		let verdict = compare(
			&a.finish(usize::MAX).unwrap(),
			&b.finish(usize::MAX).unwrap(),
			&Tolerance::BF16,
		)
		.unwrap();
		assert_eq!(verdict.first_bad_block, Some(0));
		let float = compare_float(&a.sketch().unwrap(), &b.sketch().unwrap(), &Tolerance::BF16);
		assert_eq!(float.first_bad_block, Some(0));
	}

	#[test]
	fn a_scaled_row_shows_in_its_log_rms_only() {
		let base = rows(5, 4, 64);
		let scaled = (&base * 1.01).unwrap();
		let a = FloatSketch::compute(&base, PARAMS, RowKind::Hidden).unwrap();
		let b = FloatSketch::compute(&scaled, PARAMS, RowKind::Hidden).unwrap();
		let fa = quantize(&a, a.params);
		let fb = quantize(&b, b.params);
		let verdict = compare(&fa, &fb, &Tolerance::BF16).unwrap();
		assert!(!verdict.accepted);
		// log2(1.01) * 2048 = 29.4, rounded on each side.
		assert!((29..=30).contains(&verdict.worst.log_rms_error));
		assert!(verdict.worst.block_error <= 1);
	}

	#[test]
	fn budget_lowers_top_k_then_projections() {
		let mut builder = FingerprintBuilder::new(PARAMS).unwrap();
		builder.push(&rows(7, 8, 40)).unwrap();
		let full = builder.finish(usize::MAX).unwrap();
		assert_eq!(full.encode().len(), 20 + 8 * 8 + 2 * 8 * 4);
		let no_top = builder.finish(20 + 64).unwrap();
		assert_eq!((no_top.params.top_k, no_top.params.projections), (0, 3));
		let one = builder.finish(20 + 8 * 4).unwrap();
		assert_eq!((one.params.top_k, one.params.projections), (0, 1));
		assert!(builder.finish(20 + 8 * 4 - 1).is_err());
		assert!(FingerprintBuilder::new(PARAMS).unwrap().finish(1000).is_err());
		assert!(builder.push_row(&[1.0]).is_err(), "width changes are refused");
		assert!(builder.push_row(&[f32::NAN; 40]).is_err(), "non-finite rows are refused");
	}
}
