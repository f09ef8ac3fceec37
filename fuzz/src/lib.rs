//! Shared pieces of the fuzz targets: small random models written once per process, and
//! activation messages built field by field with a correct CRC, so that the fuzzer's
//! inputs get past the checksum into the shape checks and the forward pass.

use arbitrary::Arbitrary;
use candle_core::{DType, Device};
use dllm_inference::{
	shard::{LogitsMode, ShardInput},
	tiny::{write_tiny_model, TinySpec},
	wire::{ActivationMessage, Payload, MAGIC, VERSION},
	LayerRange, ModelDir, Shard,
};
use std::path::PathBuf;

/// The model the activation target runs: three layers, so that it has a first, a middle
/// and a last shard; 64 positions, so that the position bound is reachable.
pub fn pipeline_spec() -> TinySpec {
	TinySpec {
		layers: 3,
		hidden: 16,
		heads: 2,
		kv_heads: 1,
		head_dim: None,
		intermediate: 32,
		vocab: 259,
		sliding_window: Some(8),
		max_positions: 64,
		rope_theta: 10_000.0,
		files: 1,
		dtype: DType::F32,
		seed: 0,
	}
}

/// The model whose `model.safetensors` the safetensors target replaces: one layer in f16
/// (22 KiB of weights, a seed the fuzzer can mutate quickly). The committed seed
/// `fuzz/seeds/safetensors_file/tiny-f16` is its weights file, as
/// `dllm-infer make-tiny --layers 1 --hidden 16 --heads 2 --kv-heads 1 --intermediate 32
/// --vocab 259 --files 1 --dtype f16` writes it.
pub fn single_layer_spec() -> TinySpec {
	TinySpec {
		layers: 1,
		sliding_window: Some(16),
		max_positions: 512,
		dtype: DType::F16,
		..pipeline_spec()
	}
}

/// A scratch directory of this process (targets run one process each).
pub fn scratch_dir(name: &str) -> PathBuf {
	let dir = std::env::temp_dir().join(format!("dllm-fuzz-{}-{name}", std::process::id()));
	std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
	dir
}

/// Writes `spec` into a scratch directory named `name` and returns its path.
pub fn write_model(name: &str, spec: &TinySpec) -> PathBuf {
	let dir = scratch_dir(name);
	write_tiny_model(&dir, spec).expect("the fuzz model is written");
	dir
}

/// The three shards of [`pipeline_spec`], loaded once.
pub struct Pipeline {
	pub shards: [Shard; 3],
}

impl Pipeline {
	pub fn load() -> Pipeline {
		let dir = ModelDir::open(write_model("pipeline", &pipeline_spec()))
			.expect("the fuzz model opens");
		let shard = |start, end| {
			let range = LayerRange::new(start, end).expect("a non-empty range");
			Shard::load(&dir, range, &Device::Cpu, DType::F32).expect("the shard loads")
		};
		Pipeline { shards: [shard(0, 1), shard(1, 2), shard(2, 3)] }
	}
}

/// One activation message, field by field. `fit` makes the dimensions and payload agree
/// with the model, as an honest sender's would, so the fuzzer also explores what lies
/// past the layout checks: the values, positions and sessions.
#[derive(Arbitrary, Debug)]
pub struct MessageFields {
	pub version: u8,
	pub kind: u8,
	pub dtype: u8,
	pub dims: Vec<u32>,
	pub session: u8,
	pub position_offset: u32,
	pub num_positions: u8,
	pub payload: Vec<u8>,
	pub fit: bool,
	pub bad_magic: bool,
	pub bad_crc: bool,
	pub length_delta: i8,
}

impl MessageFields {
	/// The bytes on the wire.
	pub fn encode(&self, hidden: usize) -> Vec<u8> {
		let mut dims = self.dims.clone();
		dims.truncate(6);
		let positions = u32::from(self.num_positions);
		let mut payload = self.payload.clone();
		let (mut kind, mut dtype) = (self.kind, self.dtype);
		if self.fit {
			kind %= 3;
			dtype %= 4;
			let (shape, width): (Vec<u32>, usize) = match kind {
				0 => {
					dtype = 0;
					(vec![positions], 4)
				}
				1 => {
					dtype = dtype.max(1);
					(vec![1, positions, hidden as u32], if dtype == 1 { 4 } else { 2 })
				}
				_ => {
					dtype = 1;
					(vec![positions.clamp(1, 2), 259], 4)
				}
			};
			let elements: usize = shape.iter().map(|d| *d as usize).product();
			dims = shape;
			payload.resize(elements * width, 0);
		}
		let mut out = Vec::with_capacity(40 + payload.len());
		out.extend_from_slice(if self.bad_magic { b"DLLMACT?" } else { MAGIC });
		let version = if self.fit { VERSION } else { self.version };
		out.extend_from_slice(&[version, kind, dtype, dims.len() as u8]);
		out.extend_from_slice(&u64::from(self.session % 4).to_le_bytes());
		out.extend_from_slice(&self.position_offset.to_le_bytes());
		out.extend_from_slice(&positions.to_le_bytes());
		for dim in &dims {
			out.extend_from_slice(&dim.to_le_bytes());
		}
		let claimed = (payload.len() as i64 + i64::from(self.length_delta)).max(0) as u64;
		out.extend_from_slice(&claimed.to_le_bytes());
		out.extend_from_slice(&payload);
		let crc = crc32fast::hash(&out) ^ u32::from(self.bad_crc);
		out.extend_from_slice(&crc.to_le_bytes());
		out
	}
}

/// Decodes `bytes` and runs them through `shard` as a miner's stage does: refusing
/// logits, starting at the message's own offset. Every failure must be an error.
pub fn decode_and_forward(shard: &mut Shard, bytes: &[u8]) {
	let Ok(message) = ActivationMessage::decode(bytes, &Device::Cpu) else { return };
	let input = match message.payload {
		Payload::Tokens(tokens) => ShardInput::Tokens(tokens),
		Payload::Hidden(hidden) => ShardInput::Hidden(hidden),
		Payload::Logits(_) => return,
	};
	let offset = message.position_offset as usize;
	if let Ok(output) = shard.forward(message.session, offset, input, LogitsMode::Last) {
		// What a stage does next with its output: encode it for the next stage.
		if let dllm_inference::ShardOutput::Hidden(hidden) = output {
			let reply = ActivationMessage::hidden(message.session, offset, hidden)
				.and_then(|reply| reply.encode());
			assert!(reply.is_ok(), "a forward pass's output encodes: {reply:?}");
		}
	}
}
