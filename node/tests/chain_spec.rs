//! The committed chain specs in `chain-spec/` must be what this node generates.
//! Regenerate them with `scripts/generate-chain-specs.sh`.

mod common;

use serde_json::Value;
use std::{path::PathBuf, process::Command};

fn generated(chain: &str) -> Value {
	let output = Command::new(common::node_binary())
		.args(["build-spec", "--chain", chain, "--disable-default-bootnode"])
		.output()
		.expect("dllm-node runs");
	assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
	serde_json::from_slice(&output.stdout).expect("build-spec prints JSON")
}

fn committed(name: &str) -> Value {
	// The checkout this test runs in (cargo sets it at run time): a binary reused from
	// another checkout sharing the target directory would name that one at compile time.
	let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
		.map(PathBuf::from)
		.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
	let path = manifest.join("../chain-spec").join(name);
	let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
		panic!("{} is missing ({e}); run scripts/generate-chain-specs.sh", path.display())
	});
	serde_json::from_str(&text).expect("committed spec is JSON")
}

fn check(chain: &str, file: &str) {
	let (fresh, saved) = (generated(chain), committed(file));
	assert!(
		fresh == saved,
		"chain-spec/{file} differs from what `dllm-node build-spec --chain {chain}` prints; \
		 run scripts/generate-chain-specs.sh and commit the result"
	);
	let code = fresh["genesis"]["runtimeGenesis"]["code"].as_str().expect("runtime code");
	// Plain wasm (`\0asm`) or the zstd-compressed blob sp-maybe-compressed-blob writes.
	assert!(
		code.starts_with("0x0061736d") || code.starts_with("0x52bc537646db8e05"),
		"the spec carries a wasm runtime: {}",
		&code[..code.len().min(20)]
	);
	assert_eq!(fresh["properties"]["tokenSymbol"], "DLLM");
	assert_eq!(fresh["properties"]["tokenDecimals"], 12);
}

#[test]
fn committed_dev_spec_matches_the_node() {
	check("dev", "dev.json");
}

#[test]
fn committed_local_spec_matches_the_node() {
	check("local", "local.json");
}
