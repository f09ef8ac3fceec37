//! Activation messages from a peer, through decode into a shard's forward pass: up to
//! eight messages, each to the first, a middle or the last shard of a three-layer model,
//! in any session and at any offset. Any panic is a bug: a miner must answer bad input
//! with an error.
#![no_main]

use arbitrary::Arbitrary;
use dllm_fuzz::{decode_and_forward, MessageFields, Pipeline};
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;

#[derive(Arbitrary, Debug)]
struct Step {
	stage: u8,
	message: MessageFields,
}

static PIPELINE: Mutex<Option<Pipeline>> = Mutex::new(None);

fuzz_target!(|steps: Vec<Step>| {
	let mut pipeline = PIPELINE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
	let pipeline = pipeline.get_or_insert_with(Pipeline::load);
	let hidden = dllm_fuzz::pipeline_spec().hidden;
	for step in steps.iter().take(8) {
		let shard = &mut pipeline.shards[usize::from(step.stage % 3)];
		decode_and_forward(shard, &step.message.encode(hidden));
	}
	// Each input starts from empty caches, so that a crash replays from its input alone.
	for shard in &mut pipeline.shards {
		for session in 0..4 {
			shard.end_session(session);
		}
	}
});
