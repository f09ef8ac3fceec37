//! The committed chain specs in `chain-spec/` must be what this node generates; a
//! production network's spec is built from its network file.
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

/// A network file (docs/operators.md, "A new network") for Alice and Bob as validators
/// and Charlie endowed, with `validators[0].bond` set to `alice_bond` DLLM.
fn network_file(dir: &std::path::Path, alice_bond: u64) -> PathBuf {
	use polkadot_sdk::{
		sp_core::crypto::Ss58Codec,
		sp_keyring::{Ed25519Keyring, Sr25519Keyring},
	};
	let validator = |sr: Sr25519Keyring, ed: Ed25519Keyring, bond: u64| {
		serde_json::json!({
			"stash": sr.to_account_id().to_ss58check(),
			"aura": sr.public().to_ss58check(),
			"grandpa": ed.public().to_ss58check(),
			"bond": bond,
		})
	};
	let endow = |sr: Sr25519Keyring, dllm: u64| serde_json::json!({ "account": sr.to_account_id().to_ss58check(), "dllm": dllm });
	let file = serde_json::json!({
		"name": "DLLM Test Network",
		"id": "dllm_test",
		"bootNodes": ["/ip4/127.0.0.1/tcp/30333/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"],
		"validators": [
			validator(Sr25519Keyring::Alice, Ed25519Keyring::Alice, alice_bond),
			validator(Sr25519Keyring::Bob, Ed25519Keyring::Bob, 50_000),
		],
		"endowments": [
			endow(Sr25519Keyring::Alice, 200_000),
			endow(Sr25519Keyring::Bob, 100_000),
			endow(Sr25519Keyring::Charlie, 1_000),
		],
	});
	let path = dir.join(format!("network-{alice_bond}.json"));
	std::fs::write(&path, serde_json::to_vec_pretty(&file).expect("JSON")).expect("written");
	path
}

/// D1 of the review and issue 16: a production network's genesis comes from its network
/// file and holds no sudo key, no dev endowment and no dev market; a file that would
/// build a broken chain is refused with a one-line error.
#[test]
fn a_production_spec_has_its_validators_and_endowments_and_no_sudo() {
	let dir = std::env::temp_dir().join(format!("dllm-production-spec-{}", std::process::id()));
	std::fs::create_dir_all(&dir).expect("temp dir");
	let chain = format!("production:{}", network_file(&dir, 100_000).display());
	let spec = generated(&chain);
	assert_eq!(spec["name"], "DLLM Test Network");
	assert_eq!(spec["chainType"], "Live");
	assert_eq!(spec["bootNodes"].as_array().map(Vec::len), Some(1));
	let genesis = &spec["genesis"]["runtimeGenesis"]["patch"];
	assert_eq!(genesis["sudo"]["key"], Value::Null, "no sudo key");
	let balances = genesis["balances"]["balances"].as_array().expect("balances");
	// Alice, Bob, Charlie and the community fund: no other dev account.
	assert_eq!(balances.len(), 4, "{balances:?}");
	assert_eq!(genesis["staking"]["stakers"].as_array().map(Vec::len), Some(2));
	assert_eq!(genesis["session"]["keys"].as_array().map(Vec::len), Some(2));
	assert_eq!(genesis["models"]["models"].as_array().map(Vec::len), Some(0), "no dev model");
	assert_eq!(genesis["experts"]["experts"].as_array().map(Vec::len), Some(0), "no dev expert");

	// Alice bonds more than she holds: refused, saying so.
	let chain = format!("production:{}", network_file(&dir, 300_000).display());
	let output = Command::new(common::node_binary())
		.args(["build-spec", "--chain", &chain])
		.output()
		.expect("dllm-node runs");
	assert!(!output.status.success());
	let stderr = String::from_utf8_lossy(&output.stderr);
	assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
	assert!(stderr.contains("bonds 300000 DLLM but is endowed with 200000 DLLM"), "{stderr}");
	// An unreadable file, likewise.
	let output = Command::new(common::node_binary())
		.args(["build-spec", "--chain", "production:/no/such/network.json"])
		.output()
		.expect("dllm-node runs");
	assert!(!output.status.success());
	assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be read"));
	let _ = std::fs::remove_dir_all(&dir);
}
