//! Shared helpers: temporary directories and tiny random models.

#![allow(dead_code)]

use candle_core::{DType, Device};
use dllm_inference::{
	pipeline::{generate, GenerationOutput, GenerationRequest, LocalTransport},
	sampling::SamplingParams,
	shard::Shard,
	tiny::{write_tiny_model, TinySpec},
	LayerRange, ModelDir,
};
use std::path::PathBuf;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
	pub fn new(tag: &str) -> Self {
		use std::sync::atomic::{AtomicUsize, Ordering};
		static COUNTER: AtomicUsize = AtomicUsize::new(0);
		let n = COUNTER.fetch_add(1, Ordering::SeqCst);
		let path =
			std::env::temp_dir().join(format!("dllm-inference-{tag}-{}-{n}", std::process::id()));
		let _ = std::fs::remove_dir_all(&path);
		std::fs::create_dir_all(&path).expect("temp dir");
		TempDir(path)
	}

	pub fn path(&self) -> &std::path::Path {
		&self.0
	}
}

impl Drop for TempDir {
	fn drop(&mut self) {
		let _ = std::fs::remove_dir_all(&self.0);
	}
}

/// Writes a tiny model for `spec` into a fresh temp dir.
pub fn tiny_model(tag: &str, spec: &TinySpec) -> (TempDir, ModelDir) {
	let dir = TempDir::new(tag);
	write_tiny_model(dir.path(), spec).expect("tiny model");
	let model = ModelDir::open(dir.path()).expect("model opens");
	(dir, model)
}

/// Loads `ranges` of `model` as a local pipeline.
pub fn pipeline(model: &ModelDir, ranges: &str, dtype: DType) -> LocalTransport {
	let shards = LayerRange::parse_list(ranges)
		.expect("ranges")
		.into_iter()
		.map(|r| Shard::load(model, r, &Device::Cpu, dtype).expect("shard loads"))
		.collect();
	LocalTransport::new(shards).expect("valid pipeline")
}

/// Generates through `ranges` and keeps the logits.
pub fn run(
	model: &ModelDir,
	ranges: &str,
	prompt: &[u32],
	max_tokens: usize,
	sampling: SamplingParams,
) -> GenerationOutput {
	let mut transport = pipeline(model, ranges, DType::F32);
	let request = GenerationRequest {
		session: 11,
		prompt: prompt.to_vec(),
		max_tokens,
		sampling,
		stop_tokens: vec![],
		keep_logits: true,
	};
	generate(&mut transport, &request, &Device::Cpu).expect("generation runs")
}

/// A deterministic prompt of `len` ids below `vocab`, starting with BOS.
pub fn prompt(len: usize, vocab: usize, salt: u64) -> Vec<u32> {
	let mut ids = vec![1u32];
	ids.extend(
		(1..len).map(|i| {
			(((i as u64 + salt) * 2654435761 + salt * 97) % (vocab as u64 - 3) + 3) as u32
		}),
	);
	ids
}
