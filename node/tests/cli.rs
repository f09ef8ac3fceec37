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
