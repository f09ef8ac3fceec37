//! dllm-inference: runs any contiguous layer range of a Mistral-architecture model with
//! candle, so that a pipeline of machines, each holding one chunk, serves a model too
//! large for one of them.
//!
//! - [`ModelDir`]: a Hugging Face model directory (config, tokenizer, safetensors).
//! - [`Shard`]: the layers `[start, end)` of it, with per-session KV caches.
//! - [`wire`]: the versioned activation message passed between shards.
//! - [`pipeline`]: a driver that runs shards through a [`pipeline::Transport`].
//! - [`sampling`]: seeded, replayable greedy / temperature / top-k / top-p sampling.
//! - [`fingerprint`]: compact, tolerant commitments to a chunk's output activations.
//! - [`record`] and [`verification`]: a generation's record, and its verification by
//!   one teacher-forced prefill.
//! - [`linear`]: the linear layers, with a matrix-vector kernel for decode.
//! - [`memory`]: the allocator setting that keeps freed tensor memory in the process.
//! - [`weight_hash`]: the canonical hash of a chunk's weights.
//! - [`calibration`]: the verification matrix (false rejects and false accepts).
//! - [`tiny`]: random checkpoints of any size for tests and benchmarks.
//!
//! No Substrate dependencies and no network access: models are read from disk only.

pub mod calibration;
pub mod config;
pub mod device;
pub mod error;
pub mod fingerprint;
pub mod layer;
pub mod linear;
pub mod memory;
pub mod model_dir;
pub mod pipeline;
pub mod record;
pub mod rope;
pub mod sampling;
pub mod shard;
pub mod tiny;
pub mod tokenizer;
pub mod verification;
pub mod weight_hash;
pub mod weights;
pub mod wire;

pub use config::MistralConfig;
pub use error::{InferenceError, Result};
pub use model_dir::ModelDir;
pub use shard::{Shard, ShardInput, ShardOutput};

use std::{fmt, str::FromStr};

/// A contiguous range of decoder layers `[start, end)`: one chunk of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LayerRange {
	/// First layer (inclusive).
	pub start: usize,
	/// Last layer (exclusive).
	pub end: usize,
}

impl LayerRange {
	/// `[start, end)`; empty ranges are refused.
	pub fn new(start: usize, end: usize) -> Result<Self> {
		if start >= end {
			return Err(InferenceError::LayerRange(format!("{start}..{end} is empty")));
		}
		Ok(LayerRange { start, end })
	}

	/// Number of layers.
	pub fn len(&self) -> usize {
		self.end - self.start
	}

	/// Never true: ranges are non-empty by construction.
	pub fn is_empty(&self) -> bool {
		self.start >= self.end
	}

	/// The layer indices.
	pub fn layers(&self) -> std::ops::Range<usize> {
		self.start..self.end
	}

	/// Checks the range fits a model with `num_layers` layers.
	pub fn check_within(&self, num_layers: usize) -> Result<()> {
		if self.end > num_layers {
			return Err(InferenceError::LayerRange(format!(
				"{self} is out of bounds: the model has {num_layers} layers"
			)));
		}
		Ok(())
	}

	/// Checks `ranges` cover `0..num_layers` in order, without gaps or overlaps.
	pub fn check_partition(ranges: &[LayerRange], num_layers: usize) -> Result<()> {
		let mut next = 0;
		for range in ranges {
			range.check_within(num_layers)?;
			if range.start < next {
				return Err(InferenceError::LayerRange(format!(
					"{range} overlaps the previous range (which ended at {next})"
				)));
			}
			if range.start > next {
				return Err(InferenceError::LayerRange(format!(
					"gap: layers {next}..{} are in no range",
					range.start
				)));
			}
			next = range.end;
		}
		if next != num_layers {
			return Err(InferenceError::LayerRange(format!(
				"layers {next}..{num_layers} are in no range"
			)));
		}
		Ok(())
	}

	/// Parses a comma-separated list such as `0..2,2..5`.
	pub fn parse_list(text: &str) -> Result<Vec<LayerRange>> {
		text.split(',').map(|part| part.trim().parse()).collect()
	}
}

impl fmt::Display for LayerRange {
	fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
		write!(f, "{}..{}", self.start, self.end)
	}
}

impl FromStr for LayerRange {
	type Err = InferenceError;

	fn from_str(text: &str) -> Result<Self> {
		let bad = || InferenceError::LayerRange(format!("{text:?} is not of the form START..END"));
		let (start, end) = text.split_once("..").ok_or_else(bad)?;
		let start = start.trim().parse().map_err(|_| bad())?;
		let end = end.trim().parse().map_err(|_| bad())?;
		LayerRange::new(start, end)
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn parses_and_checks_partitions() {
		let ranges = LayerRange::parse_list("0..2, 2..5").unwrap();
		assert_eq!(ranges, vec![LayerRange { start: 0, end: 2 }, LayerRange { start: 2, end: 5 }]);
		assert!(LayerRange::check_partition(&ranges, 5).is_ok());
		for (list, layers, message) in [
			("0..2,3..5", 5, "gap"),
			("0..3,2..5", 5, "overlaps"),
			("0..2,2..6", 5, "out of bounds"),
			("0..2", 5, "in no range"),
		] {
			let ranges = LayerRange::parse_list(list).unwrap();
			let error = LayerRange::check_partition(&ranges, layers).unwrap_err().to_string();
			assert!(error.contains(message), "{list}: {error}");
		}
		for bad in ["3..3", "x..2", "5", "2..1", ""] {
			assert!(bad.parse::<LayerRange>().is_err(), "{bad}");
		}
	}
}
