//! `config.json` text: parsing and validation, then what a miner derives from an
//! accepted config (head width, RoPE base, special tokens, the shapes of a shard's
//! tensors). Any panic is a bug: an operator's bad file must get an error that says what
//! to fix.
#![no_main]

use dllm_inference::{
	model_dir::shard_tensor_names, weights::expected_shape, LayerRange, MistralConfig,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
	let Ok(config) = MistralConfig::from_json(text) else { return };
	let _ = (config.head_dim(), config.num_kv_heads(), config.eos_token_ids(), config.rope_theta());
	// The first two layers and the last: every tensor name a shard can ask for.
	let layers = config.num_hidden_layers;
	for (start, end) in [(0, layers.min(2)), (layers - 1, layers)] {
		let Ok(range) = LayerRange::new(start, end) else { continue };
		for name in shard_tensor_names(&config, range) {
			let _ = expected_shape(&config, &name);
		}
	}
});
