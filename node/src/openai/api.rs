//! The OpenAI API's request and response bodies (the parts DLLM serves), the Mistral
//! instruct chat template, and the checks that turn a request into a task's arguments.

use pallet_poaw::SamplingParams;
use polkadot_sdk::sp_runtime::Perbill;
use serde::{Deserialize, Serialize};

/// Tokens generated when a request names no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 256;

/// Why a request is refused, as OpenAI's error body and HTTP status say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
	/// The HTTP status.
	pub status: u16,
	/// OpenAI's error `type`.
	pub kind: &'static str,
	/// OpenAI's error `code`.
	pub code: &'static str,
	/// What to fix, for a person.
	pub message: String,
	/// Whether the task was submitted already: a client must not retry (it would pay
	/// for a second task).
	pub submitted: bool,
}

impl ApiError {
	pub fn bad_request(message: impl Into<String>) -> Self {
		ApiError {
			status: 400,
			kind: "invalid_request_error",
			code: "invalid_request",
			message: message.into(),
			submitted: false,
		}
	}

	pub fn new(status: u16, kind: &'static str, code: &'static str, message: String) -> Self {
		ApiError { status, kind, code, message, submitted: false }
	}

	/// The same error, raised after the task was submitted.
	pub fn after_submission(mut self) -> Self {
		self.submitted = true;
		self
	}

	/// The JSON body: `{"error": {"message", "type", "param", "code"}}`.
	pub fn body(&self) -> serde_json::Value {
		serde_json::json!({
			"error": {
				"message": self.message,
				"type": self.kind,
				"param": null,
				"code": self.code,
			}
		})
	}
}

/// `stop`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
	One(String),
	Many(Vec<String>),
}

impl Stop {
	fn strings(&self) -> Vec<String> {
		match self {
			Stop::One(one) => vec![one.clone()],
			Stop::Many(many) => many.clone(),
		}
	}
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
	#[serde(default)]
	pub include_usage: bool,
}

/// A message's content: text, or parts of which the text ones count.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
	Text(String),
	Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
	#[serde(rename = "type")]
	pub kind: String,
	#[serde(default)]
	pub text: Option<String>,
}

/// One chat message.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
	pub role: String,
	#[serde(default)]
	pub content: Option<Content>,
}

/// What both endpoints take besides the prompt.
#[derive(Debug, Clone, Deserialize)]
pub struct Options {
	pub model: String,
	#[serde(default)]
	pub max_tokens: Option<u32>,
	#[serde(default)]
	pub max_completion_tokens: Option<u32>,
	#[serde(default)]
	pub temperature: Option<f64>,
	#[serde(default)]
	pub top_p: Option<f64>,
	#[serde(default)]
	pub seed: Option<i64>,
	#[serde(default)]
	pub stop: Option<Stop>,
	#[serde(default)]
	pub stream: Option<bool>,
	#[serde(default)]
	pub stream_options: Option<StreamOptions>,
	#[serde(default)]
	pub n: Option<u32>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone)]
pub struct ChatRequest {
	pub messages: Vec<ChatMessage>,
	pub options: Options,
}

/// The part of a chat request besides its options.
#[derive(Deserialize)]
struct ChatPart {
	messages: Vec<ChatMessage>,
}

/// The part of a completion request besides its options.
#[derive(Deserialize)]
struct CompletionPart {
	prompt: PromptInput,
}

/// Reads the body in two passes, one for the options and one for the rest (serde's
/// `flatten` cannot take numbers through its buffer).
fn parts<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<(T, Options), String> {
	let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
	let options = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
	let rest = serde_json::from_value(value).map_err(|e| e.to_string())?;
	Ok((rest, options))
}

impl ChatRequest {
	pub fn parse(body: &[u8]) -> Result<Self, String> {
		let (part, options) = parts::<ChatPart>(body)?;
		Ok(ChatRequest { messages: part.messages, options })
	}
}

impl CompletionRequest {
	pub fn parse(body: &[u8]) -> Result<Self, String> {
		let (part, options) = parts::<CompletionPart>(body)?;
		Ok(CompletionRequest { prompt: part.prompt, options })
	}
}

/// `POST /v1/completions`'s prompt: one string (a list of one is taken too).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
	One(String),
	Many(Vec<String>),
}

/// `POST /v1/completions`.
#[derive(Debug, Clone)]
pub struct CompletionRequest {
	pub prompt: PromptInput,
	pub options: Options,
}

/// A request checked: what `submit_task` gets, and what the answer needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
	pub max_tokens: u32,
	pub sampling: SamplingParams,
	pub stop: Vec<String>,
	pub stream: bool,
	pub include_usage: bool,
}

/// Checks the options against the chain's bounds (`most_tokens`: `MaxGeneratedTokens`);
/// `seed` fills in a missing seed.
pub fn generation(options: &Options, most_tokens: u32, seed: u64) -> Result<Generation, ApiError> {
	if options.n.is_some_and(|n| n != 1) {
		return Err(ApiError::bad_request("n: DLLM generates one choice per request"));
	}
	let max_tokens =
		options.max_completion_tokens.or(options.max_tokens).unwrap_or(DEFAULT_MAX_TOKENS);
	if max_tokens == 0 || max_tokens > most_tokens {
		return Err(ApiError::bad_request(format!(
			"max_tokens: {max_tokens} is not between 1 and {most_tokens}"
		)));
	}
	let temperature = options.temperature.unwrap_or(1.0);
	if !(0.0..=2.0).contains(&temperature) {
		return Err(ApiError::bad_request(format!(
			"temperature: {temperature} is not between 0 and 2"
		)));
	}
	let top_p = options.top_p.unwrap_or(1.0);
	if !(top_p > 0.0 && top_p <= 1.0) {
		return Err(ApiError::bad_request(format!("top_p: {top_p} is not in (0, 1]")));
	}
	let stop = options.stop.as_ref().map(Stop::strings).unwrap_or_default();
	if stop.len() > 4 || stop.iter().any(String::is_empty) {
		return Err(ApiError::bad_request("stop: at most 4 non-empty strings"));
	}
	let stream = options.stream.unwrap_or(false);
	Ok(Generation {
		max_tokens,
		sampling: SamplingParams {
			temperature_milli: (temperature * 1000.0).round() as u32,
			top_k: 0,
			top_p: Perbill::from_parts(((top_p * 1e9).round() as u32).clamp(1, 1_000_000_000)),
			seed: options.seed.map_or(seed, |seed| seed as u64),
		},
		stop,
		stream,
		include_usage: stream && options.stream_options.as_ref().is_some_and(|o| o.include_usage),
	})
}

fn text_of(message: &ChatMessage) -> Result<String, ApiError> {
	match &message.content {
		Some(Content::Text(text)) => Ok(text.clone()),
		Some(Content::Parts(parts)) => {
			let mut text = String::new();
			for part in parts {
				match (part.kind.as_str(), &part.text) {
					("text", Some(piece)) => text.push_str(piece),
					(kind, _) => {
						return Err(ApiError::bad_request(format!(
							"messages: content parts of type {kind:?} are not supported (text only)"
						)))
					}
				}
			}
			Ok(text)
		}
		None => Err(ApiError::bad_request(format!(
			"messages: a {} message has no content",
			message.role
		))),
	}
}

/// The Mistral instruct prompt of a conversation, as its v1 template writes it:
/// `<s>[INST] user [/INST] assistant</s>[INST] user [/INST]`. System messages are joined
/// and put before the last user message, separated by a blank line (as Mistral's
/// Hugging Face template for v0.3 does). The conversation must alternate user and
/// assistant turns and end with the user's.
pub fn mistral_prompt(messages: &[ChatMessage]) -> Result<String, ApiError> {
	if messages.is_empty() {
		return Err(ApiError::bad_request("messages: at least one message is required"));
	}
	let mut system = Vec::new();
	let mut turns = Vec::new();
	for message in messages {
		let text = text_of(message)?;
		match message.role.as_str() {
			"system" | "developer" => system.push(text),
			"user" | "assistant" => turns.push((message.role.as_str(), text)),
			other => {
				return Err(ApiError::bad_request(format!(
					"messages: role {other:?} is not supported (system, user, assistant)"
				)))
			}
		}
	}
	for (index, (role, _)) in turns.iter().enumerate() {
		let expected = if index % 2 == 0 { "user" } else { "assistant" };
		if *role != expected {
			return Err(ApiError::bad_request(
				"messages: after the system messages, user and assistant turns must alternate, \
				 starting with the user's",
			));
		}
	}
	if turns.last().is_none_or(|(role, _)| *role != "user") {
		return Err(ApiError::bad_request("messages: the last turn must be the user's"));
	}
	let last_user = turns.len() - 1;
	let mut prompt = String::from("<s>");
	for (index, (role, text)) in turns.iter().enumerate() {
		if *role == "user" {
			prompt.push_str("[INST] ");
			if index == last_user && !system.is_empty() {
				prompt.push_str(&system.join("\n\n"));
				prompt.push_str("\n\n");
			}
			prompt.push_str(text);
			prompt.push_str(" [/INST]");
		} else {
			prompt.push(' ');
			prompt.push_str(text);
			prompt.push_str("</s>");
		}
	}
	Ok(prompt)
}

/// The completion prompt.
pub fn completion_prompt(prompt: &PromptInput) -> Result<String, ApiError> {
	match prompt {
		PromptInput::One(text) => Ok(text.clone()),
		PromptInput::Many(list) if list.len() == 1 => Ok(list[0].clone()),
		PromptInput::Many(_) => Err(ApiError::bad_request("prompt: one prompt per request")),
	}
}

/// `text` cut before the stop string whose first occurrence ends first, and whether one
/// was found. Ending first, not starting first: more text can then never move the cut,
/// so a stream cut as it grows ends where the whole text is cut.
pub fn cut_at_stop(text: &str, stop: &[String]) -> (String, bool) {
	let first =
		stop.iter().filter_map(|s| text.find(s.as_str()).map(|at| (at + s.len(), at))).min();
	match first {
		Some((_, at)) => (text[..at].to_string(), true),
		None => (text.to_string(), false),
	}
}

/// Token counts, as OpenAI reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
	pub prompt_tokens: u32,
	pub completion_tokens: u32,
	pub total_tokens: u32,
}

impl Usage {
	pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
		Usage { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
	}
}

/// What DLLM adds to a response: the task and how the chain settled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DllmInfo {
	/// The task's id on chain.
	pub task: u64,
	/// `Completed` (verified and paid), `Expired` (refunded) or `Forgotten`.
	pub status: String,
	/// Whether the answer is the one the chain verified (streamed deltas before the final
	/// chunk are the generator's preview of it).
	pub verified: bool,
	/// What the requester paid (plancks, a decimal string).
	pub fee: Option<String>,
	/// What went back to the requester from its escrow.
	pub refunded: Option<String>,
}

#[cfg(test)]
mod tests {
	use super::*;

	fn message(role: &str, text: &str) -> ChatMessage {
		ChatMessage { role: role.into(), content: Some(Content::Text(text.into())) }
	}

	#[test]
	fn the_mistral_template_renders_turns_and_puts_the_system_text_last() {
		let one = mistral_prompt(&[message("user", "Hi")]).unwrap();
		assert_eq!(one, "<s>[INST] Hi [/INST]");
		let chat = mistral_prompt(&[
			message("system", "Be brief."),
			message("user", "Hi"),
			message("assistant", "Hello!"),
			message("user", "What is DLLM?"),
		])
		.unwrap();
		assert_eq!(
			chat,
			"<s>[INST] Hi [/INST] Hello!</s>[INST] Be brief.\n\nWhat is DLLM? [/INST]"
		);
	}

	#[test]
	fn conversations_the_template_cannot_take_are_refused_with_what_to_fix() {
		for bad in [
			vec![],
			vec![message("system", "x")],
			vec![message("assistant", "x")],
			vec![message("user", "a"), message("user", "b")],
			vec![message("user", "a"), message("assistant", "b")],
			vec![message("tool", "a")],
			vec![ChatMessage { role: "user".into(), content: None }],
		] {
			let error = mistral_prompt(&bad).unwrap_err();
			assert_eq!(error.status, 400);
			assert!(error.message.starts_with("messages:"), "{}", error.message);
		}
	}

	#[test]
	fn options_map_to_the_chains_sampling_and_bounds() {
		let options: Options = serde_json::from_value(serde_json::json!({
			"model": "m", "max_tokens": 5, "temperature": 0.8, "top_p": 0.95, "seed": 42,
			"stop": "\n", "stream": true, "stream_options": { "include_usage": true }
		}))
		.unwrap();
		let checked = generation(&options, 2048, 7).unwrap();
		assert_eq!(checked.max_tokens, 5);
		assert_eq!(checked.sampling.temperature_milli, 800);
		assert_eq!(checked.sampling.top_p, Perbill::from_percent(95));
		assert_eq!(checked.sampling.seed, 42);
		assert_eq!(checked.stop, vec!["\n".to_string()]);
		assert!(checked.stream && checked.include_usage);
		let defaults: Options =
			serde_json::from_value(serde_json::json!({ "model": "m" })).unwrap();
		let checked = generation(&defaults, 2048, 7).unwrap();
		assert_eq!((checked.max_tokens, checked.sampling.seed), (DEFAULT_MAX_TOKENS, 7));
		for bad in [
			serde_json::json!({ "model": "m", "max_tokens": 0 }),
			serde_json::json!({ "model": "m", "max_tokens": 4096 }),
			serde_json::json!({ "model": "m", "temperature": 3.0 }),
			serde_json::json!({ "model": "m", "top_p": 0.0 }),
			serde_json::json!({ "model": "m", "n": 2 }),
			serde_json::json!({ "model": "m", "stop": ["a", "b", "c", "d", "e"] }),
		] {
			let options: Options = serde_json::from_value(bad.clone()).unwrap();
			assert_eq!(generation(&options, 2048, 7).unwrap_err().status, 400, "{bad}");
		}
	}

	#[test]
	fn a_request_as_the_sdk_sends_it_parses() {
		let body = br#"{"messages":[{"role":"user","content":"hi"}],"model":"m","max_tokens":12,
			"temperature":0.8,"top_p":0.95,"seed":42,"stream":true,"stream_options":{"include_usage":true}}"#;
		let request = ChatRequest::parse(body).unwrap();
		assert_eq!(request.messages.len(), 1);
		assert_eq!(request.options.temperature, Some(0.8));
		assert!(request.options.stream_options.unwrap().include_usage);
		let completion = CompletionRequest::parse(br#"{"model":"m","prompt":"Hello"}"#).unwrap();
		assert!(matches!(completion.prompt, PromptInput::One(ref p) if p == "Hello"));
		assert!(ChatRequest::parse(br#"{"model":"m"}"#).is_err());
	}

	#[test]
	fn stop_strings_cut_the_text_at_the_first_one() {
		let stop = vec!["\n".to_string(), "END".to_string()];
		assert_eq!(cut_at_stop("abc END x\ny", &stop), ("abc ".to_string(), true));
		assert_eq!(cut_at_stop("abc", &stop), ("abc".to_string(), false));
		// "ABCD" starts first but "C" ends first; a stream that saw only "xABC" cut there.
		let overlapping = vec!["ABCD".to_string(), "C".to_string()];
		assert_eq!(cut_at_stop("xABC", &overlapping), ("xAB".to_string(), true));
		assert_eq!(cut_at_stop("xABCDy", &overlapping), ("xAB".to_string(), true));
	}

	#[test]
	fn random_bodies_never_panic() {
		use rand::{rngs::StdRng, Rng, SeedableRng};
		let mut rng = StdRng::seed_from_u64(3);
		let valid = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":3}"#;
		for _ in 0..5_000 {
			let mut bytes = valid.to_vec();
			for _ in 0..rng.gen_range(1..4) {
				let at = rng.gen_range(0..bytes.len());
				bytes[at] = rng.gen();
			}
			if let Ok(request) = ChatRequest::parse(&bytes) {
				let _ = mistral_prompt(&request.messages);
				let _ = generation(&request.options, 2048, 1);
			}
		}
	}
}
