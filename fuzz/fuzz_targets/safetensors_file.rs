//! A model directory whose `model.safetensors` is the fuzzer's input, beside a valid
//! `config.json` and `tokenizer.json` of one layer: reading the header, mapping the file,
//! checking names, shapes and dtypes, loading the shard, and one forward pass. Any panic
//! is a bug: a corrupt download must get an error.
#![no_main]

use candle_core::{DType, Device};
use dllm_fuzz::{single_layer_spec, write_model};
use dllm_inference::{
	shard::{LogitsMode, ShardInput},
	LayerRange, ModelDir, Shard,
};
use libfuzzer_sys::fuzz_target;
use std::{path::PathBuf, sync::OnceLock};

static DIR: OnceLock<PathBuf> = OnceLock::new();

fuzz_target!(|weights: &[u8]| {
	let dir = DIR.get_or_init(|| {
		let dir = write_model("safetensors", &single_layer_spec());
		// The single-file layout: no index, one `model.safetensors`.
		for entry in std::fs::read_dir(&dir).expect("the model directory lists") {
			let path = entry.expect("an entry").path();
			let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
			if name.ends_with(".safetensors") || name.ends_with(".index.json") {
				std::fs::remove_file(&path).expect("the generated weights are removed");
			}
		}
		dir
	});
	std::fs::write(dir.join("model.safetensors"), weights).expect("the input is written");
	let Ok(model) = ModelDir::open(dir) else { return };
	let Ok(range) = LayerRange::new(0, 1) else { return };
	for dtype in [DType::F32, DType::F16] {
		let Ok(mut shard) = Shard::load(&model, range, &Device::Cpu, dtype) else { return };
		let _ = shard.forward(0, 0, ShardInput::Tokens(vec![1, 72, 105]), LogitsMode::Last);
	}
	let _ = dllm_inference::weight_hash::chunk_hash(&model, range);
});
