//! Starts `dllm-node --dev`, waits for finality, sends a signed transfer over JSON-RPC and
//! checks it lands, is finalized and moves balances; then stops the node with SIGTERM.

mod common;

use codec::{Decode, Encode};
use common::{hex_number, Node};
use dllm_runtime::{
	AccountId, Balance, BalancesCall, Hash, Nonce, Runtime, RuntimeCall, SignedPayload,
	UncheckedExtrinsic,
};
use polkadot_sdk::{frame_system, pallet_balances, sp_keyring::Sr25519Keyring};
use serde_json::json;
use std::time::{Duration, Instant};

type AccountInfo = frame_system::AccountInfo<Nonce, pallet_balances::AccountData<Balance>>;

fn decode_hex(value: &serde_json::Value) -> Vec<u8> {
	let text = value.as_str().expect("hex string").trim_start_matches("0x");
	(0..text.len())
		.step_by(2)
		.map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex byte"))
		.collect()
}

fn encode_hex(bytes: &[u8]) -> String {
	let mut out = String::from("0x");
	for byte in bytes {
		out.push_str(&format!("{byte:02x}"));
	}
	out
}

/// Free balance of `who` at block `at` (the best block when `None`).
fn free_balance(node: &Node, who: &AccountId, at: Option<&str>) -> Balance {
	let key = frame_system::Account::<Runtime>::hashed_key_for(who);
	let value = node.rpc("state_getStorage", json!([encode_hex(&key), at]));
	if value.is_null() {
		return 0;
	}
	AccountInfo::decode(&mut &decode_hex(&value)[..]).expect("AccountInfo decodes").data.free
}

/// A transfer signed by Alice the way a wallet signs it, against the node's live genesis
/// hash, runtime version and nonce.
fn signed_transfer(node: &Node, dest: &AccountId, amount: Balance) -> UncheckedExtrinsic {
	let alice = Sr25519Keyring::Alice;
	let genesis = Hash::from_slice(&decode_hex(&node.rpc("chain_getBlockHash", json!([0]))));
	let version = node.rpc("state_getRuntimeVersion", json!([]));
	let spec_version = version["specVersion"].as_u64().expect("specVersion") as u32;
	let tx_version = version["transactionVersion"].as_u64().expect("transactionVersion") as u32;
	let nonce = node
		.rpc("system_accountNextIndex", json!([alice.to_account_id().to_string()]))
		.as_u64()
		.expect("nonce") as Nonce;

	let call = RuntimeCall::Balances(BalancesCall::transfer_keep_alive {
		dest: dest.clone().into(),
		value: amount,
	});
	let extension = dllm_runtime::tx_extension(nonce);
	let implicit = ((), spec_version, tx_version, genesis, genesis, (), (), (), None, ());
	let payload = SignedPayload::from_raw(call.clone(), extension.clone(), implicit);
	let signature = payload.using_encoded(|bytes| alice.sign(bytes));
	UncheckedExtrinsic::new_signed(call, alice.to_account_id().into(), signature.into(), extension)
}

/// Scans blocks 1..=`up_to` for the extrinsic; returns the number of the block holding it.
fn find_extrinsic(node: &Node, xt_hex: &str, up_to: u64) -> Option<u64> {
	(1..=up_to).find(|number| {
		let hash = node.rpc("chain_getBlockHash", json!([number]));
		let block = node.rpc("chain_getBlock", json!([hash]));
		block["block"]["extrinsics"]
			.as_array()
			.is_some_and(|xts| xts.iter().any(|xt| xt.as_str() == Some(xt_hex)))
	})
}

#[test]
fn dev_node_finalizes_and_includes_a_signed_transfer() {
	let started = Instant::now();
	let node = Node::start(&["--dev", "--tmp"]);
	let finalized = node.wait_for_finalized(3, Duration::from_secs(60));
	eprintln!("block {finalized} finalized {:?} after start", started.elapsed());

	let alice = Sr25519Keyring::Alice.to_account_id();
	let bob = Sr25519Keyring::Bob.to_account_id();
	let fund = dllm_runtime::community_account();
	let (alice_before, bob_before, fund_before) = (
		free_balance(&node, &alice, None),
		free_balance(&node, &bob, None),
		free_balance(&node, &fund, None),
	);
	assert!(alice_before > 0 && fund_before > 0);

	let amount: Balance = 7 * dllm_runtime::token::UNITS;
	let xt = signed_transfer(&node, &bob, amount);
	let xt_hex = encode_hex(&xt.encode());
	node.rpc("author_submitExtrinsic", json!([xt_hex]));

	// Included in a block that then becomes final.
	let deadline = Instant::now() + Duration::from_secs(60);
	let included = loop {
		let finalized = node.finalized_number();
		if let Some(number) = find_extrinsic(&node, &xt_hex, finalized) {
			break number;
		}
		assert!(Instant::now() < deadline, "transfer not finalized in 60 s:\n{}", node.log_tail());
		std::thread::sleep(Duration::from_millis(300));
	};
	let finalized_hash = node.rpc("chain_getFinalizedHead", json!([]));
	let at = finalized_hash.as_str();
	assert!(hex_number(&node.rpc("chain_getHeader", json!([at]))["number"]) >= included);

	let (alice_after, bob_after, fund_after) = (
		free_balance(&node, &alice, at),
		free_balance(&node, &bob, at),
		free_balance(&node, &fund, at),
	);
	assert_eq!(bob_after, bob_before + amount, "Bob receives the amount");
	let fee = alice_before - amount - alice_after;
	assert!(fee > 0, "Alice pays a fee");
	assert_eq!(fund_after, fund_before + fee, "the fee goes to the community fund");

	let status = node.stop();
	assert!(status.success(), "node exits cleanly on SIGTERM, got {status}");
}
