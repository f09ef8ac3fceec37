//! Calibration of the fingerprint verifier: it must accept the same computation under
//! float noise (f16 vs f32 compute, chunked prefill, KV-cache decode) and reject wrong
//! work (a perturbed weight, a skipped layer, swapped layers, another model). The test
//! prints the rates it measured; docs/benchmarks.md records them.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{prompt, tiny_model, TempDir};
use dllm_inference::{
	fingerprint::{verify, Fingerprint, FingerprintParams, Tolerance, Verdict},
	shard::{LogitsMode, Shard, ShardInput, ShardOutput},
	tiny::{write_tiny_model, TinySpec},
	LayerRange, ModelDir,
};
use std::collections::HashMap;

fn spec() -> TinySpec {
	TinySpec {
		layers: 4,
		hidden: 128,
		heads: 8,
		kv_heads: 2,
		intermediate: 256,
		sliding_window: Some(32),
		..TinySpec::default()
	}
}

fn load(model: &ModelDir, a: usize, b: usize, dtype: DType) -> Shard {
	Shard::load(model, LayerRange::new(a, b).unwrap(), &Device::Cpu, dtype).unwrap()
}

fn hidden(out: ShardOutput) -> Tensor {
	match out {
		ShardOutput::Hidden(h) => h,
		ShardOutput::Logits(_) => panic!("expected hidden states"),
	}
}

/// Runs `shards` in order on `input` ([1, n, hidden], f32) in one prefill.
fn run(shards: &mut [&mut Shard], input: &Tensor) -> Tensor {
	let mut x = input.clone();
	for shard in shards.iter_mut() {
		x = hidden(shard.forward(1, 0, ShardInput::Hidden(x.clone()), LogitsMode::Last).unwrap());
	}
	x.to_dtype(DType::F32).unwrap()
}

/// Runs `shard` position by position (a KV-cache decode of the whole input).
fn run_stepwise(shard: &mut Shard, input: &Tensor) -> Tensor {
	let n = input.dim(1).unwrap();
	let outs: Vec<Tensor> = (0..n)
		.map(|i| {
			hidden(
				shard
					.forward(
						2,
						i,
						ShardInput::Hidden(input.narrow(1, i, 1).unwrap()),
						LogitsMode::Last,
					)
					.unwrap(),
			)
		})
		.collect();
	Tensor::cat(&outs, 1).unwrap().to_dtype(DType::F32).unwrap()
}

/// A copy of `model` with one weight matrix of layer 2 perturbed by relative noise
/// `scale`; the noise is the same matrix of another seed's model (deterministic).
fn perturbed_copy(model: &ModelDir, noise_source: &ModelDir, scale: f32) -> (TempDir, ModelDir) {
	let dir = TempDir::new("fp-perturbed");
	for entry in std::fs::read_dir(model.root()).unwrap() {
		let entry = entry.unwrap();
		std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
	}
	let name = "model.layers.2.mlp.down_proj.weight";
	let file = model.file_of(name).unwrap();
	let mut tensors: HashMap<String, Tensor> =
		candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
	let w = &tensors[name];
	let source =
		candle_core::safetensors::load(noise_source.file_of(name).unwrap(), &Device::Cpu).unwrap();
	let noise = &source[name];
	let rms = |t: &Tensor| {
		t.sqr().unwrap().mean_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap()
	};
	let factor = (rms(w) * scale / rms(noise)) as f64;
	let perturbed = (w + (noise * factor).unwrap()).unwrap();
	tensors.insert(name.to_string(), perturbed);
	candle_core::safetensors::save(&tensors, dir.path().join(file.file_name().unwrap())).unwrap();
	let copy = ModelDir::open(dir.path()).unwrap();
	(dir, copy)
}

#[derive(Default)]
struct Tally {
	accepted: usize,
	trials: usize,
	worst_overlap: f32,
	worst_error: f32,
	best_error: f32,
}

impl Tally {
	fn add(&mut self, v: Verdict) {
		if self.trials == 0 {
			self.worst_overlap = 1.0;
			self.best_error = f32::INFINITY;
		}
		self.trials += 1;
		self.accepted += v.accepted as usize;
		self.worst_overlap = self.worst_overlap.min(v.min_overlap);
		self.worst_error = self.worst_error.max(v.worst_mean_error);
		self.best_error = self.best_error.min(v.worst_mean_error);
	}

	fn rate(&self) -> f64 {
		self.accepted as f64 / self.trials as f64
	}
}

#[test]
fn verifier_accepts_noise_and_rejects_wrong_work() {
	let spec = spec();
	let (_dir, model) = tiny_model("fp", &spec);
	let (_other_dir, other_model) = tiny_model("fp-other", &TinySpec { seed: 1, ..spec.clone() });
	let (_small_dir, small_perturbation) = perturbed_copy(&model, &other_model, 0.01);
	let (_big_dir, big_perturbation) = perturbed_copy(&model, &other_model, 0.05);
	let params = FingerprintParams::default();
	let tolerance = Tolerance::default();

	let mut embed = load(&model, 0, 1, DType::F32);
	let mut chunk = load(&model, 1, 3, DType::F32);
	let mut chunk_f16 = load(&model, 1, 3, DType::F16);
	let mut chunk_steps = load(&model, 1, 3, DType::F32);
	let mut layer1 = load(&model, 1, 2, DType::F32);
	let mut layer2 = load(&model, 2, 3, DType::F32);
	let mut other = load(&other_model, 1, 3, DType::F32);
	let mut small = load(&small_perturbation, 1, 3, DType::F32);
	let mut big = load(&big_perturbation, 1, 3, DType::F32);

	let names = [
		"f32 again",
		"f16 compute",
		"kv-cache decode",
		"perturbed 1%",
		"perturbed 5%",
		"skipped layer",
		"swapped layers",
		"other model",
	];
	let mut tallies: Vec<Tally> = names.iter().map(|_| Tally::default()).collect();
	for trial in 0..12u64 {
		let tokens = prompt(40 + 5 * trial as usize, spec.vocab, trial + 100);
		let input =
			hidden(embed.forward(1, 0, ShardInput::Tokens(tokens), LogitsMode::Last).unwrap());
		let truth = run(&mut [&mut chunk], &input);
		let claims = [
			run(&mut [&mut chunk], &input),
			run(&mut [&mut chunk_f16], &input.to_dtype(DType::F16).unwrap()),
			run_stepwise(&mut chunk_steps, &input),
			run(&mut [&mut small], &input),
			run(&mut [&mut big], &input),
			run(&mut [&mut layer1], &input),
			run(&mut [&mut layer2, &mut layer1], &input),
			run(&mut [&mut other], &input),
		];
		for (tally, claim) in tallies.iter_mut().zip(&claims) {
			let fingerprint = Fingerprint::compute(claim, params).unwrap();
			let decoded = Fingerprint::decode(&fingerprint.encode()).unwrap();
			tally.add(verify(&decoded, &truth, tolerance).unwrap());
		}
	}
	for (name, t) in names.iter().zip(&tallies) {
		eprintln!(
			"{name:>16}: accepted {}/{} ({:.0}%), lowest overlap {:.2}, block mean error {:.4}..{:.4}",
			t.accepted,
			t.trials,
			100.0 * t.rate(),
			t.worst_overlap,
			t.best_error,
			t.worst_error
		);
	}
	// Honest work under float noise: no false rejects.
	for t in &tallies[..3] {
		assert_eq!(t.rate(), 1.0);
	}
	// Wrong work: no false accepts (the 1% perturbation is below what the tolerance can
	// tell from f16 noise; it is reported, not asserted).
	for t in &tallies[4..] {
		assert_eq!(t.rate(), 0.0);
	}
}

#[test]
fn fingerprint_is_compact() {
	let (_dir, model) = tiny_model("fp-size", &spec());
	let mut embed = load(&model, 0, 1, DType::F32);
	let input = hidden(
		embed.forward(1, 0, ShardInput::Tokens(prompt(128, 320, 1)), LogitsMode::Last).unwrap(),
	);
	let fp = Fingerprint::compute(&input, FingerprintParams::default()).unwrap();
	// 4 blocks of 32 positions, 32 entries of 6 bytes each, plus a 17-byte header.
	assert_eq!(fp.encode().len(), 17 + 4 * 32 * 6);
	let _ = write_tiny_model;
}
