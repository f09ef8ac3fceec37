//! KV-cache decoding equals recomputing the whole sequence, past the sliding window and
//! past the point where the cache is trimmed; and sessions do not disturb each other.

mod common;

use candle_core::{DType, Device};
use common::{prompt, tiny_model};
use dllm_inference::{
	sampling::argmax,
	shard::{CacheLimits, LogitsMode, Shard, ShardInput, ShardOutput},
	tiny::TinySpec,
	LayerRange,
};

fn last_logits(out: ShardOutput) -> Vec<f32> {
	match out {
		ShardOutput::Logits(l) => {
			let rows = l.dim(0).unwrap();
			l.get(rows - 1).unwrap().to_vec1().unwrap()
		}
		ShardOutput::Hidden(_) => panic!("expected logits"),
	}
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
	a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn cached_decode_matches_full_recompute_past_the_window() {
	let spec = TinySpec { layers: 3, sliding_window: Some(6), ..TinySpec::default() };
	let (_dir, model) = tiny_model("window", &spec);
	let range = LayerRange::new(0, 3).unwrap();
	let mut cached = Shard::load(&model, range, &Device::Cpu, DType::F32).unwrap();
	let mut fresh = Shard::load(&model, range, &Device::Cpu, DType::F32).unwrap();

	let mut sequence = prompt(5, spec.vocab, 3);
	let mut logits = last_logits(
		cached.forward(1, 0, ShardInput::Tokens(sequence.clone()), LogitsMode::Last).unwrap(),
	);
	let mut worst = 0f32;
	// 40 decode steps: 7 window lengths, several cache trims (at 2 * window).
	for _ in 0..40 {
		let token = argmax(&logits);
		let position = sequence.len();
		sequence.push(token);
		logits = last_logits(
			cached.forward(1, position, ShardInput::Tokens(vec![token]), LogitsMode::Last).unwrap(),
		);
		let full = last_logits(
			fresh.forward(2, 0, ShardInput::Tokens(sequence.clone()), LogitsMode::Last).unwrap(),
		);
		worst = worst.max(max_abs_diff(&logits, &full));
	}
	eprintln!("max |cached - recomputed| over 40 steps: {worst:e}");
	assert!(worst < 1e-4, "cached decode drifted from recompute by {worst}");
}

#[test]
fn chunked_prefill_matches_one_prefill() {
	let spec = TinySpec { layers: 2, sliding_window: Some(5), ..TinySpec::default() };
	let (_dir, model) = tiny_model("chunked", &spec);
	let range = LayerRange::new(0, 2).unwrap();
	let mut shard = Shard::load(&model, range, &Device::Cpu, DType::F32).unwrap();
	let tokens = prompt(23, spec.vocab, 5);
	let whole = last_logits(
		shard.forward(1, 0, ShardInput::Tokens(tokens.clone()), LogitsMode::Last).unwrap(),
	);
	let mut offset = 0;
	let mut last = Vec::new();
	for chunk in tokens.chunks(7) {
		last = last_logits(
			shard.forward(2, offset, ShardInput::Tokens(chunk.to_vec()), LogitsMode::Last).unwrap(),
		);
		offset += chunk.len();
	}
	assert!(max_abs_diff(&whole, &last) < 1e-4);
}

#[test]
fn sessions_are_independent_and_bounded() {
	let spec = TinySpec { layers: 2, ..TinySpec::default() };
	let (_dir, model) = tiny_model("sessions", &spec);
	let range = LayerRange::new(0, 2).unwrap();
	let limits = CacheLimits { max_sessions: 2, max_cached_positions: 1000 };
	let mut shard =
		Shard::load(&model, range, &Device::Cpu, DType::F32).unwrap().with_limits(limits);
	let a = prompt(6, spec.vocab, 1);
	let b = prompt(9, spec.vocab, 2);
	// Interleaved sessions give the same logits as one session alone.
	let la =
		last_logits(shard.forward(1, 0, ShardInput::Tokens(a.clone()), LogitsMode::Last).unwrap());
	shard.forward(2, 0, ShardInput::Tokens(b), LogitsMode::Last).unwrap();
	let la2 =
		last_logits(shard.forward(1, 6, ShardInput::Tokens(vec![7]), LogitsMode::Last).unwrap());
	let mut alone = Shard::load(&model, range, &Device::Cpu, DType::F32).unwrap();
	alone.forward(9, 0, ShardInput::Tokens(a), LogitsMode::Last).unwrap();
	let alone2 =
		last_logits(alone.forward(9, 6, ShardInput::Tokens(vec![7]), LogitsMode::Last).unwrap());
	assert_eq!(la2, alone2);
	assert_ne!(la, la2);

	// A third session evicts the least recently used one (session 2).
	shard.forward(3, 0, ShardInput::Tokens(vec![1, 5]), LogitsMode::Last).unwrap();
	assert_eq!(shard.cached_sessions(), 2);
	let error = shard.forward(2, 9, ShardInput::Tokens(vec![4]), LogitsMode::Last).unwrap_err();
	assert!(error.to_string().contains("evicted"), "{error}");
	// Out-of-step positions are refused.
	let error = shard.forward(1, 3, ShardInput::Tokens(vec![4]), LogitsMode::Last).unwrap_err();
	assert!(error.to_string().contains("position 7"), "{error}");
	// Ending a session frees it.
	shard.end_session(1);
	assert_eq!(shard.cached_sessions(), 1);
}

#[test]
fn shard_inputs_are_checked() {
	let spec = TinySpec { layers: 2, max_positions: 16, ..TinySpec::default() };
	let (_dir, model) = tiny_model("inputs", &spec);
	let mut first =
		Shard::load(&model, LayerRange::new(0, 1).unwrap(), &Device::Cpu, DType::F32).unwrap();
	let mut last =
		Shard::load(&model, LayerRange::new(1, 2).unwrap(), &Device::Cpu, DType::F32).unwrap();
	let err = |r: dllm_inference::Result<ShardOutput>| r.map(|_| ()).unwrap_err().to_string();
	assert!(err(first.forward(1, 0, ShardInput::Tokens(vec![1, 320]), LogitsMode::Last))
		.contains("outside the vocabulary"));
	assert!(err(first.forward(1, 0, ShardInput::Tokens(vec![1; 17]), LogitsMode::Last))
		.contains("maximum of 16"));
	assert!(err(first.forward(1, 0, ShardInput::Tokens(vec![]), LogitsMode::Last))
		.contains("no positions"));
	assert!(err(last.forward(1, 0, ShardInput::Tokens(vec![1]), LogitsMode::Last))
		.contains("hidden states"));
	let wrong = candle_core::Tensor::zeros((1, 2, 7), DType::F32, &Device::Cpu).unwrap();
	assert!(err(last.forward(1, 0, ShardInput::Hidden(wrong), LogitsMode::Last))
		.contains("expected [1, positions, 64]"));
}

/// Review L3: one session (a previous stage sending a long input for its own task) made
/// the shard evict every other session's cache. Now a session may evict others only
/// while it holds no more than its share of the cache (`max_cached_positions /
/// max_sessions`); beyond that it uses free space only, and is refused when there is
/// none.
#[test]
fn one_session_cannot_evict_the_others_beyond_its_share() {
	let spec = TinySpec { layers: 1, sliding_window: None, ..TinySpec::default() };
	let (_dir, model) = tiny_model("quota", &spec);
	let range = LayerRange::new(0, 1).unwrap();
	// A share of 64 / 4 = 16 positions per session.
	let limits = CacheLimits { max_sessions: 4, max_cached_positions: 64 };
	let mut shard =
		Shard::load(&model, range, &Device::Cpu, DType::F32).unwrap().with_limits(limits);
	let tokens = |n: usize, seed: u64| ShardInput::Tokens(prompt(n, spec.vocab, seed));
	shard.forward(1, 0, tokens(10, 1), LogitsMode::Last).unwrap();
	shard.forward(2, 0, tokens(10, 2), LogitsMode::Last).unwrap();
	// 40 positions fit beside the others' 20: free space may be used beyond the share.
	shard.forward(3, 0, tokens(40, 3), LogitsMode::Last).unwrap();
	// 10 more would need another's cache: refused, and nothing is evicted.
	let error = shard.forward(3, 40, tokens(10, 4), LogitsMode::Last).unwrap_err();
	assert!(error.to_string().contains("share"), "{error}");
	assert_eq!(shard.cached_sessions(), 3);
	shard.forward(1, 10, tokens(1, 5), LogitsMode::Last).unwrap();
	shard.forward(2, 10, tokens(1, 6), LogitsMode::Last).unwrap();
	// The refused session is where it was, and continues once there is room.
	shard.end_session(2);
	shard.forward(3, 40, tokens(10, 4), LogitsMode::Last).unwrap();
	// A session within its share still evicts the least recently used one when full.
	shard.forward(4, 0, tokens(8, 7), LogitsMode::Last).unwrap();
	assert_eq!(shard.cached_sessions(), 2);
	let error = shard.forward(1, 11, tokens(1, 8), LogitsMode::Last).unwrap_err();
	assert!(error.to_string().contains("evicted"), "{error}");
}
