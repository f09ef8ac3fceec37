//! The shard's linear layers (`y = x Wᵀ`, no bias).
//!
//! Decode multiplies one row by each weight matrix, so its speed is how fast the weights
//! stream from memory. candle's CPU matmul (gemm) is built for blocks of rows and reaches
//! well under half of that bound on a single row (docs/benchmarks.md). A one-row product
//! of f32 on the CPU therefore goes through [`RowTimesMatrix`], which reads each weight
//! row once, contiguously, and splits the rows over candle's thread pool; every other
//! product (prefill, other dtypes, GPUs) stays with candle's matmul.
//!
//! Each output element is one dot product summed in a fixed order (16 interleaved
//! partial sums, then those in a fixed tree), whatever the thread count, the grouping of
//! rows or the SIMD width the CPU offers: the linear layers of a decode step give the
//! same bits on every x86-64 or ARM machine, and across shard splits. (The rest of the
//! step, attention's matmul and the activations, is candle's, which picks its kernels by
//! CPU.)

use candle_core::{CpuStorage, DType, Device, Layout, Module, Shape, Tensor};
use rayon::prelude::*;

/// Partial sums per dot product: four 128-bit (or one 512-bit) vectors' worth of lanes.
const LANES: usize = 16;

/// Rows per parallel task at least: fewer would make the thread hand-off cost more than
/// the rows themselves.
const MIN_ROWS_PER_TASK: usize = 16;

/// A linear layer without bias over a `[out_features, in_features]` weight.
#[derive(Debug, Clone)]
pub struct ShardLinear {
	weight: Tensor,
	/// candle's layer over the same weight, for everything but one-row products.
	batched: candle_nn::Linear,
}

impl ShardLinear {
	/// The layer over `weight` (`[out_features, in_features]`).
	pub fn new(weight: Tensor) -> Self {
		ShardLinear { batched: candle_nn::Linear::new(weight.clone(), None), weight }
	}

	/// The weight, `[out_features, in_features]`.
	pub fn weight(&self) -> &Tensor {
		&self.weight
	}

	/// Whether `xs` takes the matrix-vector path.
	fn streams(&self, xs: &Tensor) -> bool {
		let rows = xs.dims().iter().rev().skip(1).product::<usize>();
		rows == 1
			&& matches!(xs.device(), Device::Cpu)
			&& xs.dtype() == DType::F32
			&& self.weight.dtype() == DType::F32
			&& self.weight.is_contiguous()
	}
}

impl Module for ShardLinear {
	fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
		if self.streams(xs) {
			xs.contiguous()?.apply_op2_no_bwd(&self.weight, &RowTimesMatrix)
		} else {
			self.batched.forward(xs)
		}
	}
}

/// `x Wᵀ` for a single row `x` (`[.., in]` with one row) and `W` `[out, in]`, on the CPU
/// in f32: the result has `x`'s shape with `out` as its last dimension.
#[derive(Debug, Clone, Copy)]
pub struct RowTimesMatrix;

impl candle_core::CustomOp2 for RowTimesMatrix {
	fn name(&self) -> &'static str {
		"row-times-matrix"
	}

	fn cpu_fwd(
		&self,
		x_storage: &CpuStorage,
		x_layout: &Layout,
		w_storage: &CpuStorage,
		w_layout: &Layout,
	) -> candle_core::Result<(CpuStorage, Shape)> {
		let (out_features, in_features) = w_layout.shape().dims2()?;
		let x_dims = x_layout.dims();
		if x_dims.last() != Some(&in_features) || x_layout.shape().elem_count() != in_features {
			return Err(candle_core::Error::Msg(format!(
				"row-times-matrix: a row of {in_features} values expected, got shape {:?}",
				x_dims
			)));
		}
		let (Some((x_start, x_end)), Some((w_start, w_end))) =
			(x_layout.contiguous_offsets(), w_layout.contiguous_offsets())
		else {
			return Err(candle_core::Error::Msg(
				"row-times-matrix: both operands must be contiguous".into(),
			));
		};
		let x = &x_storage.as_slice::<f32>()?[x_start..x_end];
		let w = &w_storage.as_slice::<f32>()?[w_start..w_end];
		let mut out = vec![0f32; out_features];
		row_times_matrix(x, w, &mut out);
		let mut dims = x_dims.to_vec();
		if let Some(last) = dims.last_mut() {
			*last = out_features;
		}
		Ok((CpuStorage::F32(out), Shape::from(dims)))
	}
}

/// `out[r] = Σ_i x[i] · w[r · n + i]` for every row `r` of the row-major `w`
/// (`out.len()` rows of `n = x.len()` values), the rows split over the thread pool. Rows
/// that `w` is too short to hold come out 0.
pub fn row_times_matrix(x: &[f32], w: &[f32], out: &mut [f32]) {
	let n = x.len();
	let rows = w.len().checked_div(n).map_or(0, |held| held.min(out.len()));
	let (out, missing) = out.split_at_mut(rows);
	missing.fill(0.0);
	if rows == 0 {
		return;
	}
	let threads = rayon::current_num_threads().max(1);
	// A few tasks per thread, so that a thread slowed by others still finishes with them.
	let per_task =
		out.len().div_ceil(threads * 4).max(MIN_ROWS_PER_TASK).next_multiple_of(ROWS_AT_ONCE);
	out.par_chunks_mut(per_task).zip(w.par_chunks(per_task * n)).for_each(|(out, rows)| {
		if n < MIN_COLUMNS_AT_ONCE {
			// Short rows stream best as one contiguous sweep, row after row.
			for (value, row) in out.iter_mut().zip(rows.chunks_exact(n)) {
				*value = dot(row, x);
			}
			return;
		}
		let mut outs = out.chunks_exact_mut(ROWS_AT_ONCE);
		let mut row_groups = rows.chunks_exact(n * ROWS_AT_ONCE);
		for (values, group) in (&mut outs).zip(&mut row_groups) {
			values.copy_from_slice(&dot_rows(group, x));
		}
		for (value, row) in
			outs.into_remainder().iter_mut().zip(row_groups.remainder().chunks_exact(n))
		{
			*value = dot(row, x);
		}
	});
}

/// Row length from which rows are taken [`ROWS_AT_ONCE`] at a time (measured on the mid
/// model and Mistral-7B's shapes, docs/benchmarks.md: rows of 1024 lost 10% that way,
/// rows of 4096 and more gained 60%).
const MIN_COLUMNS_AT_ONCE: usize = 2048;

/// Rows multiplied in one pass over `x`: each block of `x` is loaded once for all of
/// them, and their partial sums give the CPU independent additions to overlap.
const ROWS_AT_ONCE: usize = 4;

/// [`dot`] of each of the [`ROWS_AT_ONCE`] rows of `rows` (row-major, `x.len()` values
/// each) with `x`, each summed in exactly the order [`dot`] uses.
pub fn dot_rows(rows: &[f32], x: &[f32]) -> [f32; ROWS_AT_ONCE] {
	#[cfg(target_arch = "x86_64")]
	{
		if std::arch::is_x86_feature_detected!("avx2") {
			// SAFETY: the CPU has AVX2, the only feature `dot_rows_avx2` is compiled for.
			return unsafe { dot_rows_avx2(rows, x) };
		}
	}
	dot_rows_portable(rows, x)
}

/// [`dot_rows_portable`] compiled with 256-bit vectors (the same sums, as for [`dot`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_rows_avx2(rows: &[f32], x: &[f32]) -> [f32; ROWS_AT_ONCE] {
	dot_rows_portable(rows, x)
}

#[inline(always)]
fn dot_rows_portable(rows: &[f32], x: &[f32]) -> [f32; ROWS_AT_ONCE] {
	let n = x.len();
	let rows: [&[f32]; ROWS_AT_ONCE] =
		std::array::from_fn(|r| rows.get(r * n..(r + 1) * n).unwrap_or(&[]));
	if rows.iter().any(|row| row.len() != n) {
		// Not reached from `row_times_matrix`; short input still gets defined sums.
		return rows.map(|row| dot_portable(row, x));
	}
	let mut lanes = [[0f32; LANES]; ROWS_AT_ONCE];
	let (x_blocks, x_tail) = x.as_chunks::<LANES>();
	let blocks: [&[[f32; LANES]]; ROWS_AT_ONCE] = rows.map(|row| row.as_chunks::<LANES>().0);
	for (block, x_block) in x_blocks.iter().enumerate() {
		for r in 0..ROWS_AT_ONCE {
			for lane in 0..LANES {
				lanes[r][lane] += blocks[r][block][lane] * x_block[lane];
			}
		}
	}
	let tail_start = x_blocks.len() * LANES;
	for r in 0..ROWS_AT_ONCE {
		for (lane, (w, x)) in rows[r][tail_start..].iter().zip(x_tail).enumerate() {
			lanes[r][lane] += w * x;
		}
	}
	lanes.map(fold_lanes)
}

/// The dot product of two equally long slices, in the fixed order the module describes.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
	#[cfg(target_arch = "x86_64")]
	{
		if std::arch::is_x86_feature_detected!("avx2") {
			// SAFETY: the CPU has AVX2, the only feature `dot_avx2` is compiled for.
			return unsafe { dot_avx2(a, b) };
		}
	}
	dot_portable(a, b)
}

/// [`dot_portable`] compiled with 256-bit vectors. Without FMA contraction (Rust never
/// contracts), the sums are those of [`dot_portable`], bit for bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
	dot_portable(a, b)
}

/// The dot product with [`LANES`] interleaved partial sums, which the compiler keeps in
/// vector registers, folded pairwise at the end; the tail adds to the first lanes.
#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
	let len = a.len().min(b.len());
	let (a, b) = (&a[..len], &b[..len]);
	let mut lanes = [0f32; LANES];
	let (a_blocks, a_tail) = a.as_chunks::<LANES>();
	let (b_blocks, b_tail) = b.as_chunks::<LANES>();
	for (a_block, b_block) in a_blocks.iter().zip(b_blocks) {
		for lane in 0..LANES {
			lanes[lane] += a_block[lane] * b_block[lane];
		}
	}
	for (lane, (a, b)) in a_tail.iter().zip(b_tail).enumerate() {
		lanes[lane] += a * b;
	}
	fold_lanes(lanes)
}

/// The partial sums folded pairwise: lane `i` takes lane `i + width` for width 8, 4, 2, 1.
#[inline(always)]
fn fold_lanes(mut lanes: [f32; LANES]) -> f32 {
	let mut width = LANES;
	while width > 1 {
		width /= 2;
		for lane in 0..width {
			lanes[lane] += lanes[lane + width];
		}
	}
	lanes[0]
}

#[cfg(test)]
mod tests {
	use super::*;

	fn pseudo_random(len: usize, seed: u32) -> Vec<f32> {
		let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
		(0..len)
			.map(|_| {
				state ^= state << 13;
				state ^= state >> 17;
				state ^= state << 5;
				(state as f32 / u32::MAX as f32) - 0.5
			})
			.collect()
	}

	#[test]
	fn the_streamed_product_matches_candles_matmul_on_every_shape() {
		for (rows, cols) in [(1, 1), (3, 7), (17, 16), (64, 33), (100, 1024), (257, 15)] {
			let x = pseudo_random(cols, rows as u32);
			let w = pseudo_random(rows * cols, cols as u32);
			let xt = Tensor::from_vec(x.clone(), (1, 1, cols), &Device::Cpu).unwrap();
			let wt = Tensor::from_vec(w.clone(), (rows, cols), &Device::Cpu).unwrap();
			let linear = ShardLinear::new(wt.clone());
			assert!(linear.streams(&xt));
			let streamed: Vec<f32> =
				linear.forward(&xt).unwrap().flatten_all().unwrap().to_vec1().unwrap();
			let batched: Vec<f32> = xt
				.broadcast_matmul(&wt.t().unwrap())
				.unwrap()
				.flatten_all()
				.unwrap()
				.to_vec1()
				.unwrap();
			assert_eq!(streamed.len(), rows);
			for (s, b) in streamed.iter().zip(&batched) {
				assert!((s - b).abs() <= 1e-5 * (1.0 + b.abs()), "{rows}x{cols}: {s} vs {b}");
			}
		}
	}

	#[test]
	fn every_path_sums_in_the_same_order() {
		let a = pseudo_random(1000, 1);
		let b = pseudo_random(1000, 2);
		assert_eq!(dot(&a, &b).to_bits(), dot_portable(&a, &b).to_bits());
		// The order is the documented one: lane sums, then the pairwise fold.
		let mut lanes = [0f32; LANES];
		for (i, (x, y)) in a.iter().zip(&b).enumerate().take(1000 / LANES * LANES) {
			lanes[i % LANES] += x * y;
		}
		for (i, (x, y)) in
			a[1000 / LANES * LANES..].iter().zip(&b[1000 / LANES * LANES..]).enumerate()
		{
			lanes[i] += x * y;
		}
		for width in [8, 4, 2, 1] {
			for lane in 0..width {
				lanes[lane] += lanes[lane + width];
			}
		}
		assert_eq!(dot(&a, &b).to_bits(), lanes[0].to_bits());
	}

	#[test]
	fn rows_taken_together_sum_as_one_row_alone() {
		// Rows of 2048 and more go four at a time, shorter ones one by one.
		for (rows, cols) in [(4, 16), (9, 1000), (13, 33), (64, 7), (9, 2081), (70, 4096)] {
			let x = pseudo_random(cols, 3);
			let w = pseudo_random(rows * cols, 4);
			let mut out = vec![0f32; rows];
			row_times_matrix(&x, &w, &mut out);
			for (r, value) in out.iter().enumerate() {
				let alone = dot(&w[r * cols..(r + 1) * cols], &x);
				assert_eq!(value.to_bits(), alone.to_bits(), "{rows}x{cols} row {r}");
				assert_eq!(
					alone.to_bits(),
					dot_portable(&w[r * cols..(r + 1) * cols], &x).to_bits()
				);
			}
			let together = dot_rows(&w[..ROWS_AT_ONCE * cols], &x);
			for (r, value) in together.iter().enumerate() {
				let alone = dot(&w[r * cols..(r + 1) * cols], &x);
				assert_eq!(value.to_bits(), alone.to_bits(), "{cols} columns, row {r} of four");
			}
		}
	}

	#[test]
	fn a_short_weight_leaves_the_missing_rows_zero() {
		let x = pseudo_random(8, 1);
		let w = pseudo_random(8 * 3 + 5, 2);
		let mut out = vec![1f32; 5];
		row_times_matrix(&x, &w, &mut out);
		assert_eq!(&out[3..], &[0.0, 0.0]);
		assert_eq!(out[2].to_bits(), dot(&w[16..24], &x).to_bits());
	}

	#[test]
	fn the_thread_count_does_not_change_a_bit() {
		for (rows, cols) in [(333, 96), (37, 2500)] {
			thread_counts_agree(rows, cols);
		}
	}

	fn thread_counts_agree(rows: usize, cols: usize) {
		let x = pseudo_random(cols, 5);
		let w = pseudo_random(rows * cols, 6);
		let run = |threads| {
			let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
			let mut out = vec![0f32; rows];
			pool.install(|| row_times_matrix(&x, &w, &mut out));
			out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
		};
		assert_eq!(run(1), run(2));
		assert_eq!(run(1), run(7));
	}

	#[test]
	fn more_rows_or_another_device_dtype_take_candles_matmul() {
		let w = Tensor::zeros((4, 8), DType::F32, &Device::Cpu).unwrap();
		let linear = ShardLinear::new(w);
		let two_rows = Tensor::zeros((1, 2, 8), DType::F32, &Device::Cpu).unwrap();
		assert!(!linear.streams(&two_rows));
		let half = Tensor::zeros((1, 1, 8), DType::BF16, &Device::Cpu).unwrap();
		assert!(!linear.streams(&half));
		assert_eq!(linear.forward(&two_rows).unwrap().dims(), &[1, 2, 4]);
	}
}
