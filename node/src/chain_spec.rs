//! The built-in chain specifications: `dev` and `local`, and a production network's
//! from its JSON file.

use dllm_runtime::{token, Balance, WASM_BINARY};
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

/// The JSON file a production network's genesis is built from (`--chain
/// production:FILE`; docs/operators.md shows one). Amounts are whole DLLM.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NetworkFile {
	/// The chain's name, shown by wallets.
	name: String,
	/// Its id: the network's protocol id and the base path's directory.
	id: String,
	#[serde(default)]
	boot_nodes: Vec<String>,
	validators: Vec<ValidatorEntry>,
	endowments: Vec<Endowment>,
	/// SS58 address of the sudo key, if any (docs/operators.md: why one, and held how).
	#[serde(default)]
	sudo: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidatorEntry {
	/// SS58 address of the stash account, which bonds and signs as controller.
	stash: String,
	/// SS58 of the Aura (sr25519) and GRANDPA (ed25519) session keys.
	aura: String,
	grandpa: String,
	/// Whole DLLM bonded at genesis.
	bond: u64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Endowment {
	account: String,
	/// Whole DLLM.
	dllm: u64,
}

/// A production network's chain spec from the JSON file at `path`: its validators,
/// endowments and sudo key if it names one, no dev account (`dllm_runtime::genesis_config_presets::
/// production_genesis`).
pub fn production_chain_spec(path: &std::path::Path) -> Result<ChainSpec, String> {
	use dllm_runtime::genesis_config_presets::{production_genesis, Validator};
	use polkadot_sdk::sp_core::{crypto::Ss58Codec, ed25519, sr25519};
	let shown = path.display();
	let text = std::fs::read_to_string(path)
		.map_err(|e| format!("network file `{shown}` cannot be read: {e}"))?;
	let file: NetworkFile = serde_json::from_str(&text)
		.map_err(|e| format!("network file `{shown}` is invalid: {e}"))?;
	let account = |address: &str, what: &str| {
		dllm_runtime::AccountId::from_ss58check(address)
			.map_err(|e| format!("network file `{shown}`: {what} `{address}` is no address: {e:?}"))
	};
	let dllm = |whole: u64| Balance::from(whole).saturating_mul(token::UNITS);
	let validators = file
		.validators
		.iter()
		.map(|v| {
			let aura = sr25519::Public::from_ss58check(&v.aura).map_err(|e| {
				format!("network file `{shown}`: aura key `{}` is no sr25519 key: {e:?}", v.aura)
			})?;
			let grandpa = ed25519::Public::from_ss58check(&v.grandpa).map_err(|e| {
				format!(
					"network file `{shown}`: grandpa key `{}` is no ed25519 key: {e:?}",
					v.grandpa
				)
			})?;
			Ok(Validator {
				stash: account(&v.stash, "stash")?,
				aura: aura.into(),
				grandpa: grandpa.into(),
				bond: dllm(v.bond),
			})
		})
		.collect::<Result<Vec<_>, String>>()?;
	let endowed = file
		.endowments
		.iter()
		.map(|e| Ok((account(&e.account, "account")?, dllm(e.dllm))))
		.collect::<Result<Vec<_>, String>>()?;
	let boot_nodes = file
		.boot_nodes
		.iter()
		.map(|node| {
			node.parse().map_err(|e| {
				format!("network file `{shown}`: boot node `{node}` is no multiaddr with a peer id: {e}")
			})
		})
		.collect::<Result<Vec<_>, String>>()?;
	let root = file.sudo.as_deref().map(|address| account(address, "sudo")).transpose()?;
	let genesis = production_genesis(validators, endowed, root)
		.map_err(|e| format!("network file `{shown}`: {e}"))?;
	Ok(ChainSpec::builder(wasm_binary()?, None)
		.with_name(&file.name)
		.with_id(&file.id)
		.with_protocol_id(&file.id)
		.with_chain_type(ChainType::Live)
		.with_boot_nodes(boot_nodes)
		.with_genesis_config_patch(genesis)
		.with_properties(properties())
		.build())
}
