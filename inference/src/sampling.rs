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

/// Whether the seeded sampler could have drawn `token` at generation step `step` from
/// logits that differ from `logits` by at most `epsilon` each (a generator's logits on
/// other hardware): the verifier's sampling check.
///
/// Greedy: `token`'s logit is within `2 * epsilon` of the largest. Sampling: the step's
/// uniform draw lies in `token`'s interval of the sampler's cumulative distribution,
/// widened to cover every ordering, top-k / top-p cut and probability that logits
/// within `epsilon` can produce (each weight moves by at most a factor `e^(epsilon/T)`;
/// two tokens can swap only when their logits are within `2 * epsilon`).
pub fn is_plausible_sample(
	logits: &[f32],
	params: &SamplingParams,
	step: u64,
	token: u32,
	epsilon: f32,
) -> Result<bool> {
	params.validate()?;
	if logits.is_empty() || logits.iter().any(|v| v.is_nan()) {
		return Err(InferenceError::Sampling("empty logits or a NaN logit".into()));
	}
	if !(epsilon.is_finite() && epsilon >= 0.0) {
		return Err(InferenceError::Sampling(format!("tolerance {epsilon} must be >= 0")));
	}
	let Some(&own) = logits.get(token as usize) else { return Ok(false) };
	let (own, e2) = (own as f64, 2.0 * epsilon as f64);
	if params.temperature == 0.0 {
		let max = logits.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) as f64;
		return Ok(own >= max - e2);
	}
	let mut sorted: Vec<f64> = logits.iter().map(|v| *v as f64).collect();
	sorted.sort_unstable_by(|a, b| b.total_cmp(a));
	let n = sorted.len();
	let k = params.top_k.filter(|k| *k > 0).map_or(n, |k| k.min(n));
	// Top-k membership under noise: possibly in when within 2ε of the k-th logit,
	// definitely in when more than 2ε above the first one left out.
	let possibly_in = |x: f64| k == n || x >= sorted[k - 1] - e2;
	let definitely_in = |x: f64| k == n || x > sorted[k] + e2;
	if !possibly_in(own) {
		return Ok(false);
	}
	let t = params.temperature as f64;
	let a = libm::exp(epsilon as f64 / t);
	let weights: Vec<f64> = sorted.iter().map(|x| libm::exp((x - sorted[0]) / t)).collect();
	// Prefix sums over the sorted order of the weights definitely / possibly in top-k.
	let mut definite = vec![0.0; n + 1];
	let mut possible = vec![0.0; n + 1];
	for i in 0..n {
		definite[i + 1] = definite[i] + if definitely_in(sorted[i]) { weights[i] } else { 0.0 };
		possible[i + 1] = possible[i] + if possibly_in(sorted[i]) { weights[i] } else { 0.0 };
	}
	// Sorted indices of the logits above y, and of those at or above y.
	let above = |y: f64| sorted.partition_point(|x| *x > y);
	let at_or_above = |y: f64| sorted.partition_point(|x| *x >= y);
	let ratio = |num: f64, rest: f64| if num + rest > 0.0 { num / (num + rest) } else { 0.0 };
	// Least share of the top-k mass that can come before a token of logit x: only the
	// tokens surely before it and surely in, shrunk, against every other possible one.
	let least_before = |x: f64| {
		let before = above(x + e2);
		ratio(definite[before] / a, (possible[n] - possible[before]) * a)
	};
	// Most share: every token possibly before it, grown, against those surely after it.
	let most_before = |x: f64, weight: f64| {
		let before = at_or_above(x - e2);
		let num = (possible[before] - if possibly_in(x) { weight } else { 0.0 }) * a;
		ratio(num, (definite[n] - definite[before]) / a + weight / a)
	};
	let top_p = params.top_p.map(f64::from).filter(|p| *p < 1.0);
	let (possibly_kept, surely_kept) = match top_p {
		None => (n, n),
		Some(p) => {
			if least_before(own) >= p {
				return Ok(false);
			}
			// Both bounds grow along the sorted order, so the kept sets are prefixes.
			let possibly = (0..n).find(|&i| least_before(sorted[i]) >= p).unwrap_or(n);
			let surely = (0..n).find(|&i| most_before(sorted[i], weights[i]) >= p).unwrap_or(n);
			(possibly, surely.min(possibly))
		}
	};
	// The token's interval [start, end) of the kept distribution, at its widest. Every
	// token before a kept one is kept, so "before" needs no top-p condition.
	let before = above(own + e2);
	let start = ratio(
		definite[before] / a,
		(possible[possibly_kept] - possible[before.min(possibly_kept)]) * a,
	);
	let through = at_or_above(own - e2);
	let after = definite[surely_kept] - definite[through.min(surely_kept)];
	let end = ratio(possible[through] * a, after / a);
	let u = uniform(params.seed, step);
	// Slack for the sampler's own rounding in f64.
	Ok(start - 1e-9 <= u && u < end + 1e-9)
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

	/// Logits of a peaked or flat distribution over `n` tokens.
	fn logits(seed: u64, n: usize, spread: f64) -> Vec<f32> {
		(0..n as u64).map(|i| ((uniform(seed, i) - 0.5) * spread) as f32).collect()
	}

	#[test]
	fn every_drawn_token_is_plausible_under_noise_and_others_mostly_not() {
		let settings = [
			SamplingParams::greedy(),
			SamplingParams { temperature: 0.8, top_k: None, top_p: None, seed: 3 },
			SamplingParams { temperature: 1.0, top_k: Some(5), top_p: None, seed: 4 },
			SamplingParams { temperature: 0.7, top_k: Some(40), top_p: Some(0.9), seed: 5 },
			SamplingParams { temperature: 1.3, top_k: None, top_p: Some(0.5), seed: 6 },
		];
		let epsilon = 0.02f32;
		let (mut others, mut others_accepted) = (0, 0);
		for (s, params) in settings.iter().enumerate() {
			for step in 0..300u64 {
				let spread = [2.0, 8.0, 20.0][step as usize % 3];
				let verifier = logits(step * 31 + s as u64, 200, spread);
				// The generator's logits: within epsilon of the verifier's.
				let generator: Vec<f32> = verifier
					.iter()
					.enumerate()
					.map(|(i, v)| v + epsilon * (2.0 * uniform(step + 999, i as u64) as f32 - 1.0))
					.collect();
				let drawn = sample(&generator, params, step).unwrap();
				assert!(
					is_plausible_sample(&verifier, params, step, drawn, epsilon).unwrap(),
					"{params:?} step {step}: drawn {drawn} refused"
				);
				assert!(is_plausible_sample(&generator, params, step, drawn, 0.0).unwrap());
				let other = (drawn + 1 + (step as u32 % 7)) % 200;
				others += 1;
				others_accepted +=
					is_plausible_sample(&verifier, params, step, other, epsilon).unwrap() as usize;
			}
		}
		// A replaced token passes only when it is nearly tied with the drawn one, or in a
		// flat distribution where ±ε on every logit moves the CDF by several tokens' worth
		// (2.1% of these cases; the fingerprints of the following positions catch them).
		assert!(
			others_accepted * 20 < others,
			"{others_accepted} of {others} replaced tokens passed"
		);
		assert!(!is_plausible_sample(&[1.0, 2.0], &settings[1], 0, 7, 0.1).unwrap());
		assert!(is_plausible_sample(&[1.0], &settings[1], 0, 0, -1.0).is_err());
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
