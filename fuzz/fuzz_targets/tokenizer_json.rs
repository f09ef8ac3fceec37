//! `tokenizer.json` bytes: loading, encoding a prompt and a chat, decoding the ids back,
//! streaming them, and the longest token in bytes that the registry records. Any panic
//! is a bug: an operator's bad file must get an error.
#![no_main]

use dllm_inference::tokenizer::{ChatMessage, ChatRole, PromptTokenizer, TextStream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|json: &[u8]| {
	let Ok(tokenizer) = PromptTokenizer::from_tokenizer_json(json) else { return };
	let Ok(ids) = tokenizer.encode("Héllo, [INST] wörld </s> 🙂", true) else { return };
	let _ = tokenizer.decode(&ids);
	let mut stream = TextStream::new();
	for id in &ids {
		let _ = stream.push(&tokenizer, *id);
	}
	let _ = stream.finish(&tokenizer);
	let chat = [ChatMessage { role: ChatRole::User, content: "hi".into() }];
	let _ = tokenizer.encode_chat(&chat);
	let _ = tokenizer.max_token_bytes();
});
