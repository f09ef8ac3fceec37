//! `dllm-infer` from the command line: the happy paths and every kind of bad input
//! (a one-line error, a non-zero exit, no panic).

mod common;

use common::TempDir;
use std::{path::Path, process::Command};

fn infer(args: &[&str]) -> std::process::Output {
	Command::new(env!("CARGO_BIN_EXE_dllm-infer")).args(args).output().expect("dllm-infer runs")
}

/// `generate` of one token from prompt `[1]` on the model in `dir`.
fn generate_one(dir: &Path) -> std::process::Output {
	infer(&[
		"generate",
		"--model",
		dir.to_str().unwrap(),
		"--prompt-tokens",
		"1",
		"--max-tokens",
		"1",
	])
}

fn make_tiny(dir: &Path) {
	let out = infer(&["make-tiny", "--out", dir.to_str().unwrap(), "--layers", "4", "--seed", "3"]);
	assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
	assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
	serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Fails with exactly one `error: ...` line that mentions `needle`.
fn assert_clean_failure(out: &std::process::Output, needle: &str) {
	let stderr = String::from_utf8_lossy(&out.stderr);
	assert!(!out.status.success(), "should fail: {needle}");
	let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
	assert_eq!(lines.len(), 1, "one line expected, got:\n{stderr}");
	assert!(lines[0].starts_with("error: "), "{stderr}");
	assert!(lines[0].contains(needle), "expected {needle:?} in {stderr}");
	assert!(!stderr.contains("panicked"));
}

#[test]
fn generate_with_json_splits_and_logits() {
	let dir = TempDir::new("cli-gen");
	make_tiny(dir.path());
	let model = dir.path().to_str().unwrap();
	let base =
		["generate", "--model", model, "--prompt", "Hello, DLLM!", "--max-tokens", "6", "--json"];
	let single = json_of(&infer(&base));
	assert_eq!(single["tokens"].as_array().unwrap().len(), 6);
	assert!(single["text"].is_string());
	assert_eq!(single["prompt_tokens"][0], 1, "BOS first");

	let split = json_of(&infer(&[&base[..], &["--shards", "0..1,1..4"]].concat()));
	assert_eq!(split["tokens"], single["tokens"]);

	let chat = json_of(&infer(&[&base[..], &["--chat"]].concat()));
	assert!(
		chat["prompt_tokens"].as_array().unwrap().len()
			> single["prompt_tokens"].as_array().unwrap().len()
	);

	let sampled = json_of(&infer(
		&[&base[..], &["--temperature", "0.9", "--top-k", "50", "--top-p", "0.9", "--seed", "5"]]
			.concat(),
	));
	let again = json_of(&infer(
		&[&base[..], &["--temperature", "0.9", "--top-k", "50", "--top-p", "0.9", "--seed", "5"]]
			.concat(),
	));
	assert_eq!(sampled["tokens"], again["tokens"], "same seed, same tokens");

	let logits_path = dir.path().join("logits.safetensors");
	let with_logits =
		json_of(&infer(&[&base[..], &["--logits-out", logits_path.to_str().unwrap()]].concat()));
	let tensors = candle_core::safetensors::load(&logits_path, &candle_core::Device::Cpu).unwrap();
	assert_eq!(tensors["logits"].dims(), &[6, 320]);
	assert_eq!(with_logits["tokens"], single["tokens"]);

	let by_ids = json_of(&infer(&[
		"generate",
		"--model",
		model,
		"--prompt-tokens",
		"1,5,9",
		"--max-tokens",
		"3",
		"--json",
	]));
	assert_eq!(by_ids["prompt_tokens"], serde_json::json!([1, 5, 9]));
}

#[test]
fn hash_chunks_prints_one_hash_per_chunk() {
	let dir = TempDir::new("cli-hash");
	make_tiny(dir.path());
	let out =
		infer(&["hash-chunks", "--model", dir.path().to_str().unwrap(), "--shards", "0..2,2..4"]);
	assert!(out.status.success());
	let text = String::from_utf8_lossy(&out.stdout);
	let lines: Vec<&str> = text.lines().collect();
	assert_eq!(lines.len(), 3);
	assert!(
		lines[0].starts_with("0..2 0x")
			&& lines[1].starts_with("2..4 0x")
			&& lines[2].starts_with("tokenizer 0x")
	);
}

#[test]
fn bad_input_is_a_one_line_error() {
	let dir = TempDir::new("cli-bad");
	make_tiny(dir.path());
	let model = dir.path().to_str().unwrap();
	let gen = |extra: &[&str]| {
		let mut args =
			vec!["generate", "--model", model, "--prompt-tokens", "1,2,3", "--max-tokens", "2"];
		args.extend_from_slice(extra);
		infer(&args)
	};
	assert_clean_failure(
		&infer(&[
			"generate",
			"--model",
			"/nonexistent/model",
			"--prompt",
			"x",
			"--max-tokens",
			"1",
		]),
		"missing file",
	);
	assert_clean_failure(&gen(&["--shards", "0..2,3..4"]), "gap");
	assert_clean_failure(&gen(&["--shards", "0..3,2..4"]), "overlaps");
	assert_clean_failure(&gen(&["--shards", "0..2,2..9"]), "out of bounds");
	assert_clean_failure(&gen(&["--shards", "zero..two"]), "START..END");
	assert_clean_failure(&gen(&["--device", "tpu"]), "unknown device");
	assert_clean_failure(&gen(&["--dtype", "bf16"]), "bf16 is not supported on cpu");
	assert_clean_failure(
		&infer(&["generate", "--model", model, "--prompt-tokens", "1,999", "--max-tokens", "2"]),
		"outside the vocabulary",
	);
	assert_clean_failure(
		&infer(&["generate", "--model", model, "--prompt-tokens", "1,x", "--max-tokens", "2"]),
		"not a token id",
	);
	assert_clean_failure(
		&infer(&["generate", "--model", model, "--prompt-tokens", "1,2", "--max-tokens", "600"]),
		"positions",
	);

	// Corrupt weights: a truncated file.
	let broken = TempDir::new("cli-corrupt");
	make_tiny(broken.path());
	let file = broken.path().join("model-00002-of-00003.safetensors");
	let bytes = std::fs::read(&file).unwrap();
	std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
	let out = generate_one(broken.path());
	assert_clean_failure(&out, "weights");

	// A missing weights file.
	std::fs::remove_file(&file).unwrap();
	let out = generate_one(broken.path());
	assert_clean_failure(&out, "missing file");

	// Config and weights disagree.
	let mismatch = TempDir::new("cli-mismatch");
	make_tiny(mismatch.path());
	let config_path = mismatch.path().join("config.json");
	let config = std::fs::read_to_string(&config_path)
		.unwrap()
		.replace("\"intermediate_size\": 128", "\"intermediate_size\": 96");
	std::fs::write(&config_path, config).unwrap();
	let out = generate_one(mismatch.path());
	assert_clean_failure(&out, "config.json implies");

	// A corrupt config.
	std::fs::write(&config_path, "{ not json").unwrap();
	let out = generate_one(mismatch.path());
	assert_clean_failure(&out, "config.json");

	// Unsupported architecture.
	let llama = TempDir::new("cli-llama");
	make_tiny(llama.path());
	let config_path = llama.path().join("config.json");
	let config = std::fs::read_to_string(&config_path)
		.unwrap()
		.replace("MistralForCausalLM", "LlamaForCausalLM")
		.replace("\"mistral\"", "\"llama\"");
	std::fs::write(&config_path, config).unwrap();
	let out = generate_one(llama.path());
	assert_clean_failure(&out, "unsupported model");
}

#[test]
fn thread_count_does_not_change_tokens_or_logits() {
	let dir = TempDir::new("cli-threads");
	make_tiny(dir.path());
	let model = dir.path().to_str().unwrap();
	let run = |threads: &str| {
		let logits = dir.path().join(format!("logits-{threads}.safetensors"));
		let out = Command::new(env!("CARGO_BIN_EXE_dllm-infer"))
			.env("RAYON_NUM_THREADS", threads)
			.args([
				"generate",
				"--model",
				model,
				"--prompt",
				"thread noise?",
				"--max-tokens",
				"8",
				"--json",
			])
			.args(["--shards", "0..2,2..4", "--logits-out", logits.to_str().unwrap()])
			.output()
			.expect("dllm-infer runs");
		(json_of(&out)["tokens"].clone(), std::fs::read(logits).unwrap())
	};
	let (tokens_1, logits_1) = run("1");
	let (tokens_2, logits_2) = run("2");
	assert_eq!(tokens_1, tokens_2);
	assert!(logits_1 == logits_2, "logits differ between 1 and 2 threads");
}
