//! Seeded, replayable sampling: greedy, temperature, top-k and top-p.
//!
//! A verifier must pick the same token from the same logits, so nothing here depends on
//! the machine: the random number for step `s` is a pure function of `(seed, s)`
//! (SplitMix64), arithmetic is in f64 with the software `libm` exponential, and ties
//! are broken by the lower token id.

use crate::error::{InferenceError, Result};

/// How tokens are chosen.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplingParams {
	/// 0 means greedy (argmax).
	pub temperature: f32,
	/// Keep only the k most likely tokens (None or 0: all).
	pub top_k: Option<usize>,
	/// Keep the smallest set of most likely tokens whose probability reaches p (None: 1).
	pub top_p: Option<f32>,
	/// Seed of the random stream.
	pub seed: u64,
}

impl SamplingParams {
	/// Greedy decoding.
	pub fn greedy() -> Self {
		SamplingParams { temperature: 0.0, top_k: None, top_p: None, seed: 0 }
	}

	/// Checks the parameters.
	pub fn validate(&self) -> Result<()> {
		if !self.temperature.is_finite() || self.temperature < 0.0 {
			return Err(InferenceError::Sampling(format!(
				"temperature {} must be finite and >= 0",
				self.temperature
			)));
		}
		if let Some(p) = self.top_p {
			if !(p > 0.0 && p <= 1.0) {
				return Err(InferenceError::Sampling(format!("top_p {p} must be in (0, 1]")));
			}
		}
		Ok(())
	}
}

/// SplitMix64: a tiny, well-known mixing function; exact on every platform.
fn splitmix64(mut z: u64) -> u64 {
	z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
	z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
	z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
	z ^ (z >> 31)
}

/// The uniform number in [0, 1) used at generation step `step`.
pub fn uniform(seed: u64, step: u64) -> f64 {
	let bits = splitmix64(seed ^ splitmix64(step));
	(bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Picks the token for generation step `step` from `logits`.
pub fn sample(logits: &[f32], params: &SamplingParams, step: u64) -> Result<u32> {
	params.validate()?;
	if logits.is_empty() {
		return Err(InferenceError::Sampling("empty logits".into()));
	}
	if let Some(i) = logits.iter().position(|v| v.is_nan()) {
		return Err(InferenceError::Sampling(format!("logit {i} is NaN")));
	}
	if params.temperature == 0.0 {
		return Ok(argmax(logits));
	}
	// Most likely first; equal logits by lower id.
	let mut order: Vec<u32> = (0..logits.len() as u32).collect();
	order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
	if let Some(k) = params.top_k.filter(|k| *k > 0) {
		order.truncate(k);
	}
	let t = params.temperature as f64;
	let max = logits[order[0] as usize] as f64 / t;
	let mut probs: Vec<f64> =
		order.iter().map(|&i| libm::exp(logits[i as usize] as f64 / t - max)).collect();
	let total: f64 = probs.iter().sum();
	probs.iter_mut().for_each(|p| *p /= total);
	if let Some(top_p) = params.top_p {
		let mut cumulative = 0.0;
		let mut keep = probs.len();
		for (i, p) in probs.iter().enumerate() {
			cumulative += p;
			if cumulative >= top_p as f64 {
				keep = i + 1;
				break;
			}
		}
		probs.truncate(keep);
		order.truncate(keep);
	}
	let total: f64 = probs.iter().sum();
	let target = uniform(params.seed, step) * total;
	let mut cumulative = 0.0;
	for (token, p) in order.iter().zip(&probs) {
		cumulative += p;
		if target < cumulative {
			return Ok(*token);
		}
	}
	Ok(*order.last().unwrap_or(&0))
}

/// Index of the largest logit (the lowest index among equals).
pub fn argmax(logits: &[f32]) -> u32 {
	let mut best = 0;
	for (i, v) in logits.iter().enumerate() {
		if *v > logits[best] {
			best = i;
		}
	}
	best as u32
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn greedy_takes_the_argmax_and_breaks_ties_low() {
		assert_eq!(sample(&[0.1, 3.0, 3.0, -1.0], &SamplingParams::greedy(), 0).unwrap(), 1);
	}

	#[test]
	fn same_inputs_same_token_and_seeds_matter() {
		let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
		let params =
			SamplingParams { temperature: 0.9, top_k: Some(20), top_p: Some(0.95), seed: 7 };
		let a: Vec<u32> = (0..64).map(|s| sample(&logits, &params, s).unwrap()).collect();
		let b: Vec<u32> = (0..64).map(|s| sample(&logits, &params, s).unwrap()).collect();
		assert_eq!(a, b);
		let other = SamplingParams { seed: 8, ..params };
		let c: Vec<u32> = (0..64).map(|s| sample(&logits, &other, s).unwrap()).collect();
		assert_ne!(a, c);
	}

	#[test]
	fn the_random_stream_is_pinned() {
		// Fixed values: a change here breaks replay of every past task.
		assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
		let u = uniform(42, 3);
		assert!((0.0..1.0).contains(&u));
		assert_eq!(u, uniform(42, 3));
	}

	#[test]
	fn top_k_one_is_greedy_and_top_p_cuts_the_tail() {
		let logits = [1.0, 5.0, 2.0, 4.9];
		let k1 = SamplingParams { temperature: 1.0, top_k: Some(1), top_p: None, seed: 1 };
		assert!((0..100).all(|s| sample(&logits, &k1, s).unwrap() == 1));
		let p = SamplingParams { temperature: 1.0, top_k: None, top_p: Some(0.5), seed: 1 };
		assert!((0..100).all(|s| sample(&logits, &p, s).unwrap() == 1));
		let p9 = SamplingParams { top_p: Some(0.9), ..p };
		let picks: std::collections::BTreeSet<u32> =
			(0..200).map(|s| sample(&logits, &p9, s).unwrap()).collect();
		assert_eq!(picks, [1, 3].into_iter().collect());
	}

	#[test]
	fn bad_parameters_and_logits_are_errors() {
		let bad_t = SamplingParams { temperature: -1.0, ..SamplingParams::greedy() };
		assert!(sample(&[1.0], &bad_t, 0).is_err());
		let bad_p =
			SamplingParams { temperature: 1.0, top_p: Some(0.0), ..SamplingParams::greedy() };
		assert!(sample(&[1.0], &bad_p, 0).is_err());
		assert!(sample(&[], &SamplingParams::greedy(), 0).is_err());
		assert!(sample(&[f32::NAN], &SamplingParams::greedy(), 0).is_err());
	}
}
