//! Two validators, Alice and Bob, on `--chain local` over loopback: Aura authoring and
//! GRANDPA finality need both, so finality advancing proves they formed a network.

mod common;

use common::Node;
use std::time::Duration;

/// Node key whose PeerId is well known, so Bob can be told where Alice is.
const ALICE_NODE_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";
/// Authorities must have a stable network key; Bob's is fixed too.
const BOB_NODE_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000002";
const ALICE_PEER_ID: &str = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp";

#[test]
fn alice_and_bob_finalize_together() {
	let alice =
		Node::start(&["--chain", "local", "--alice", "--tmp", "--node-key", ALICE_NODE_KEY]);
	let bootnode = format!("/ip4/127.0.0.1/tcp/{}/p2p/{ALICE_PEER_ID}", alice.p2p_port);
	let bob = Node::start(&[
		"--chain",
		"local",
		"--bob",
		"--tmp",
		"--node-key",
		BOB_NODE_KEY,
		"--bootnodes",
		&bootnode,
	]);

	// 6-second slots: block 4 is final after roughly half a minute.
	let timeout = Duration::from_secs(180);
	let alice_final = alice.wait_for_finalized(4, timeout);
	let bob_final = bob.wait_for_finalized(4, timeout);
	assert!(alice_final > 3 && bob_final > 3);

	let peers = bob.rpc("system_health", serde_json::json!([]))["peers"].as_u64();
	assert_eq!(peers, Some(1), "Bob is connected to Alice");

	assert!(bob.stop().success());
	assert!(alice.stop().success());
}
