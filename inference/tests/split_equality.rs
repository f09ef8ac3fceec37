//! For any split of the layers, the pipeline's tokens and logits equal the single-shard
//! run bit for bit (CPU, f32), including past the sliding window.

mod common;

use common::{prompt, run, tiny_model};
use dllm_inference::{sampling::SamplingParams, tiny::TinySpec};

#[test]
fn every_split_matches_the_single_shard_bitwise() {
	let spec = TinySpec { layers: 5, sliding_window: Some(8), ..TinySpec::default() };
	let (_dir, model) = tiny_model("split", &spec);
	// 20 prompt tokens + 16 generated: well past the 8-token window.
	let prompt = prompt(20, spec.vocab, 1);
	for sampling in [
		SamplingParams::greedy(),
		SamplingParams { temperature: 0.8, top_k: Some(40), top_p: Some(0.9), seed: 99 },
	] {
		let reference = run(&model, "0..5", &prompt, 16, sampling);
		assert_eq!(reference.tokens.len(), 16);
		for split in
			["0..1,1..5", "0..2,2..5", "0..4,4..5", "0..1,1..2,2..3,3..4,4..5", "0..3,3..5"]
		{
			let out = run(&model, split, &prompt, 16, sampling);
			assert_eq!(out.tokens, reference.tokens, "tokens differ for {split}");
			for (step, (a, b)) in out.logits.iter().zip(&reference.logits).enumerate() {
				let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
				assert!(same, "logits differ bitwise at step {step} for {split}");
			}
		}
	}
}
