//! Parity with Hugging Face transformers' `MistralForCausalLM` on a committed random
//! checkpoint (grouped-query attention, three safetensors files, an 8-token sliding
//! window that the 20-token prompt crosses). The fixture and its expected values come
//! from `scripts/reference/make_mistral_fixture.py`.

mod common;

use candle_core::{DType, Device};
use dllm_inference::{
	sampling::SamplingParams,
	shard::{LogitsMode, Shard, ShardInput, ShardOutput},
	LayerRange, ModelDir,
};
use std::path::PathBuf;

const TOLERANCE: f32 = 1e-4;

/// The fixture of the checkout this test runs in (cargo sets `CARGO_MANIFEST_DIR` at run
/// time too): a binary reused from another checkout sharing the target directory would
/// name that one at compile time.
fn fixture() -> PathBuf {
	std::env::var_os("CARGO_MANIFEST_DIR")
		.map(PathBuf::from)
		.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
		.join("tests/fixtures/reference")
}

struct Expected {
	prompt: Vec<u32>,
	generated: Vec<u32>,
	prompt_logits: Vec<Vec<f32>>,
	generated_logits: Vec<Vec<f32>>,
}

fn expected() -> Expected {
	let json: serde_json::Value =
		serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap())
			.unwrap();
	let ids = |key: &str| -> Vec<u32> {
		json[key].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
	};
	let tensors =
		candle_core::safetensors::load(fixture().join("expected.safetensors"), &Device::Cpu)
			.unwrap();
	let rows = |key: &str| tensors[key].to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap();
	Expected {
		prompt: ids("prompt"),
		generated: ids("generated"),
		prompt_logits: rows("prompt_logits"),
		generated_logits: rows("generated_logits"),
	}
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
	assert_eq!(a.len(), b.len());
	a.iter()
		.zip(b)
		.flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
		.fold(0.0, f32::max)
}

const SPLITS: [&str; 4] = ["0..4", "0..2,2..4", "0..1,1..3,3..4", "0..1,1..2,2..3,3..4"];

#[test]
fn prompt_logits_match_transformers_for_every_split() {
	let model = ModelDir::open(fixture()).expect("fixture opens");
	let expected = expected();
	for split in SPLITS {
		let ranges = LayerRange::parse_list(split).unwrap();
		let mut hidden = None;
		let mut logits = None;
		for range in ranges {
			let mut shard = Shard::load(&model, range, &Device::Cpu, DType::F32).unwrap();
			let input = match hidden.take() {
				None => ShardInput::Tokens(expected.prompt.clone()),
				Some(h) => ShardInput::Hidden(h),
			};
			match shard.forward(1, 0, input, LogitsMode::All).unwrap() {
				ShardOutput::Hidden(h) => hidden = Some(h),
				ShardOutput::Logits(l) => logits = Some(l.to_vec2::<f32>().unwrap()),
			}
		}
		let diff = max_abs_diff(&logits.unwrap(), &expected.prompt_logits);
		eprintln!("{split}: max |ours - transformers| over the prompt = {diff:e}");
		assert!(diff < TOLERANCE, "{split}: prompt logits differ by {diff}");
	}
}

#[test]
fn greedy_generation_matches_transformers_for_every_split() {
	let model = ModelDir::open(fixture()).expect("fixture opens");
	let expected = expected();
	for split in SPLITS {
		let out = common::run(
			&model,
			split,
			&expected.prompt,
			expected.generated.len(),
			SamplingParams::greedy(),
		);
		assert_eq!(out.tokens, expected.generated, "{split}: greedy tokens differ");
		let diff = max_abs_diff(&out.logits, &expected.generated_logits);
		eprintln!("{split}: max |ours - transformers| over generation = {diff:e}");
		assert!(diff < TOLERANCE, "{split}: generation logits differ by {diff}");
	}
}
