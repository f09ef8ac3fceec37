//! Bad input on the command line: a clear one-line error and a non-zero exit.

mod common;

use std::process::Command;

#[test]
fn missing_chain_spec_file_is_a_one_line_error() {
	let output = Command::new(common::node_binary())
		.args(["--chain", "missing.json", "--tmp"])
		.output()
		.expect("dllm-node runs");
	assert!(!output.status.success(), "exits non-zero");
	let stderr = String::from_utf8_lossy(&output.stderr);
	let lines: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
	assert_eq!(lines.len(), 1, "exactly one line on stderr, got:\n{stderr}");
	assert!(lines[0].contains("missing.json") && lines[0].contains("not found"), "{stderr}");
	assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

/// D1 of the review: a node started without `--chain` used to join `local`, whose sudo
/// key (Alice) is a public dev key. It now refuses, saying what to pass.
#[test]
fn no_chain_is_refused_not_local() {
	let output = Command::new(common::node_binary()).arg("--tmp").output().expect("dllm-node runs");
	assert!(!output.status.success(), "exits non-zero");
	let stderr = String::from_utf8_lossy(&output.stderr);
	let lines: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
	assert_eq!(lines.len(), 1, "exactly one line on stderr, got:\n{stderr}");
	assert!(lines[0].contains("no chain given") && lines[0].contains("--dev"), "{stderr}");
	// `build-spec` without `--chain` refuses as well: no spec of `local` by default.
	let output = Command::new(common::node_binary()).arg("build-spec").output().expect("runs");
	assert!(!output.status.success(), "build-spec exits non-zero");
	assert!(output.stdout.is_empty(), "no chain spec printed");
}

#[test]
fn unknown_flag_exits_non_zero() {
	let output =
		Command::new(common::node_binary()).arg("--no-such-flag").output().expect("dllm-node runs");
	assert!(!output.status.success());
	assert!(String::from_utf8_lossy(&output.stderr).contains("--no-such-flag"));
}

#[test]
fn version_names_the_node() {
	let output = Command::new(common::node_binary()).arg("--version").output().expect("runs");
	assert!(output.status.success());
	assert!(String::from_utf8_lossy(&output.stdout).starts_with("dllm-node"));
}

/// `dllm-node` with `args` plus free ports; waits for it to exit (60 s at most).
fn run_node(args: &[&str]) -> (bool, String) {
	let (p2p, rpc) = (common::free_port().to_string(), common::free_port().to_string());
	let mut child = Command::new(common::node_binary())
		.args(args)
		.args(["--port", &p2p, "--rpc-port", &rpc, "--no-prometheus", "--no-telemetry"])
		.stdout(std::process::Stdio::null())
		.stderr(std::process::Stdio::piped())
		.spawn()
		.expect("dllm-node runs");
	let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
	while child.try_wait().expect("wait").is_none() {
		if std::time::Instant::now() > deadline {
			let _ = child.kill();
			panic!("dllm-node {args:?} kept running; expected an error exit");
		}
		std::thread::sleep(std::time::Duration::from_millis(100));
	}
	let output = child.wait_with_output().expect("output");
	(output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn miner_refuses_bad_options_weights_and_keys_with_a_clear_error() {
	let dir = std::env::temp_dir().join(format!("dllm-miner-cli-{}", std::process::id()));
	let _ = std::fs::remove_dir_all(&dir);
	let good = dir.join("dev-model");
	let other = dir.join("other-weights");
	dllm_inference::tiny::write_tiny_model(&good, &Default::default()).expect("dev model");
	let reseeded = dllm_inference::tiny::TinySpec { seed: 7, ..Default::default() };
	dllm_inference::tiny::write_tiny_model(&other, &reseeded).expect("other model");
	let (good, other) = (good.to_str().expect("utf-8"), other.to_str().expect("utf-8"));
	// Bob's registered peer id is the one of node key 0x00…02.
	let bob_key = format!("{:064x}", 2);
	let other_key = format!("{:064x}", 9);

	let owned = |args: &[&str]| args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>();
	// Bob's node on the dev chain as a miner with `node_key` and `model`, plus `extra`.
	let bob_miner = |node_key: &str, model: &str, extra: &[&str]| {
		let base = ["--chain", "dev", "--bob", "--tmp", "--node-key", node_key, "--miner"];
		owned(&[&base[..], &["--model-dir", model], extra].concat())
	};

	let cases: Vec<(Vec<String>, &str)> = vec![
		(owned(&["--dev", "--tmp", "--miner"]), "--model-dir"),
		(owned(&["--dev", "--tmp", "--model-dir", good]), "--miner"),
		(
			owned(&["--dev", "--tmp", "--miner", "--model-dir", "/nonexistent/model"]),
			"/nonexistent/model",
		),
		(owned(&["--chain", "dev", "--tmp", "--miner", "--model-dir", good]), "no miner key"),
		(bob_miner(&bob_key, good, &["--serve-chunks", "x"]), "--serve-chunks"),
		(bob_miner(&bob_key, good, &["--serve-chunks", "1"]), "does not serve chunk 1"),
		(bob_miner(&bob_key, other, &[]), "refusing to serve other weights"),
		(
			bob_miner(&other_key, good, &[]),
			"registered the peer id 12D3KooWHdiAxVd8uMQR1hGWXccidmfCwLqcMpGwR6QcTP6QRMuD",
		),
		(bob_miner(&bob_key, good, &["--device", "tpu"]), "--device"),
	];
	for (args, expected) in cases {
		let args: Vec<&str> = args.iter().map(String::as_str).collect();
		let (success, stderr) = run_node(&args);
		assert!(!success, "{args:?} must fail");
		assert!(stderr.contains(expected), "{args:?}: expected {expected:?} in:\n{stderr}");
		assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
		let error_lines = stderr.lines().filter(|line| line.starts_with("Error:")).count();
		let usage_error = stderr.lines().any(|line| line.starts_with("error:"));
		assert!(error_lines == 1 || usage_error, "{args:?}: one error line:\n{stderr}");
	}
	let _ = std::fs::remove_dir_all(&dir);
}
