//! The built-in chain specifications: `dev` and `local`.

use dllm_runtime::{token, WASM_BINARY};
use polkadot_sdk::{sc_service, sc_service::ChainType, sp_genesis_builder};

/// The chain specification of DLLM chains (no extensions).
pub type ChainSpec = sc_service::GenericChainSpec;

/// Chain properties wallets and polkadot-js read: the DLLM token and address format.
fn properties() -> sc_service::Properties {
	let mut properties = sc_service::Properties::new();
	properties.insert("tokenSymbol".into(), token::SYMBOL.into());
	properties.insert("tokenDecimals".into(), token::DECIMALS.into());
	properties.insert("ss58Format".into(), token::SS58_PREFIX.into());
	properties
}

fn wasm_binary() -> Result<&'static [u8], String> {
	WASM_BINARY.ok_or_else(|| {
		"the runtime's wasm binary is not available: this node was built with \
		 SKIP_WASM_BUILD; rebuild without it"
			.to_string()
	})
}

/// `--dev`: one node, Alice authors and finalizes, dev accounts endowed.
pub fn development_chain_spec() -> Result<ChainSpec, String> {
	Ok(ChainSpec::builder(wasm_binary()?, None)
		.with_name("DLLM Development")
		.with_id("dllm_dev")
		.with_chain_type(ChainType::Development)
		.with_genesis_config_preset_name(sp_genesis_builder::DEV_RUNTIME_PRESET)
		.with_properties(properties())
		.build())
}

/// `--chain local`: Alice and Bob run Aura + GRANDPA with 6-second slots.
pub fn local_chain_spec() -> Result<ChainSpec, String> {
	Ok(ChainSpec::builder(wasm_binary()?, None)
		.with_name("DLLM Local Testnet")
		.with_id("dllm_local_testnet")
		.with_chain_type(ChainType::Local)
		.with_genesis_config_preset_name(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET)
		.with_properties(properties())
		.build())
}
