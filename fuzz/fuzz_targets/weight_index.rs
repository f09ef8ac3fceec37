//! `model.safetensors.index.json` text: the tensor-to-file map, which must never name a
//! file outside the model directory. Any panic, or an accepted path that leaves the
//! directory, is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
	let Ok(map) = dllm_inference::model_dir::parse_index(text) else { return };
	for file in map.values() {
		let path = std::path::Path::new(file);
		assert!(
			path.components().count() == 1
				&& matches!(path.components().next(), Some(std::path::Component::Normal(_))),
			"the index named {file:?}, which is not a file inside the model directory"
		);
	}
});
