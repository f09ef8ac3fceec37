//! Chunk weight hashes: stable, specific to the chunk and its bytes, and reproducible
//! from the generator's seed.

mod common;

use common::{tiny_model, TempDir};
use dllm_inference::{
	tiny::{write_tiny_model, TinySpec},
	weight_hash::{chunk_hash, to_hex},
	LayerRange, ModelDir,
};

fn range(a: usize, b: usize) -> LayerRange {
	LayerRange::new(a, b).unwrap()
}

#[test]
fn hashes_are_stable_and_specific() {
	let spec = TinySpec::default();
	let (_a, model) = tiny_model("hash-a", &spec);
	let (_b, same_seed) = tiny_model("hash-b", &spec);
	let (_c, other_seed) = tiny_model("hash-c", &TinySpec { seed: 1, ..spec.clone() });

	let h = chunk_hash(&model, range(0, 2)).unwrap();
	assert_eq!(h, chunk_hash(&model, range(0, 2)).unwrap());
	assert_eq!(h, chunk_hash(&same_seed, range(0, 2)).unwrap(), "same seed, same bytes, same hash");
	assert_ne!(h, chunk_hash(&other_seed, range(0, 2)).unwrap());
	assert_ne!(h, chunk_hash(&model, range(0, 1)).unwrap());
	assert_ne!(chunk_hash(&model, range(1, 2)).unwrap(), chunk_hash(&model, range(2, 3)).unwrap());
	assert_eq!(to_hex(&h).len(), 66);
	assert!(chunk_hash(&model, range(3, 5)).is_err());
}

#[test]
fn changing_one_weight_changes_the_hash() {
	let spec = TinySpec::default();
	let dir = TempDir::new("hash-edit");
	write_tiny_model(dir.path(), &spec).unwrap();
	let before = chunk_hash(&ModelDir::open(dir.path()).unwrap(), range(0, 4)).unwrap();
	// Flip one byte near the end of the last file (lm_head / norm data).
	let file = dir.path().join("model-00003-of-00003.safetensors");
	let mut bytes = std::fs::read(&file).unwrap();
	let at = bytes.len() - 3;
	bytes[at] ^= 1;
	std::fs::write(&file, bytes).unwrap();
	let after = chunk_hash(&ModelDir::open(dir.path()).unwrap(), range(0, 4)).unwrap();
	assert_ne!(before, after);
}
