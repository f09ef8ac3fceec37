//! Genesis presets: `development` (one validator, Alice, and no elections) and
//! `local_testnet` (Alice and Bob, elected by stake every era). The node builds its
//! `dev` and `local` chain specs from these. Aura's and GRANDPA's authorities come from
//! the session pallet, which takes them from the genesis stakers.

use crate::{
	configs::COMMUNITY_FUND_GENESIS,
	token::{MICRO_UNITS, UNITS},
	AccountId, Balance, BalancesConfig, BlockNumber, ExpertsConfig, ModelsConfig, PoawConfig,
	RuntimeGenesisConfig, SessionConfig, SessionKeys, StakingConfig, SudoConfig,
};
use alloc::{vec, vec::Vec};
use dllm_primitives::dev_model;
use pallet_experts::{GenesisExpert, ServedChunk};
use pallet_models::{
	Architecture, ChunkSpec, ModelSpec, NumericFormat, NumericProfile, VerificationParams,
};
use polkadot_sdk::{
	frame_support::build_struct_json_patch,
	pallet_staking::{Forcing, StakerStatus},
	sp_consensus_aura::sr25519::AuthorityId as AuraId,
	sp_consensus_grandpa::AuthorityId as GrandpaId,
	sp_core::H256,
	sp_genesis_builder::{self, PresetId},
	sp_keyring::{Ed25519Keyring, Sr25519Keyring},
	sp_runtime::{BoundedVec, Perbill},
};
use serde_json::Value;

/// What each well-known dev account holds at genesis: one million DLLM.
pub const DEV_ENDOWMENT: Balance = 1_000_000 * UNITS;
/// Bond of each dev expert.
pub const DEV_EXPERT_BOND: Balance = 10_000 * UNITS;
/// Price per token per layer the dev experts ask.
pub const DEV_EXPERT_PRICE: Balance = 10 * MICRO_UNITS;
/// Unbonding period of the dev chain, so that unbonding can be tried in a minute.
pub const DEV_UNBONDING_PERIOD: BlockNumber = 10;
/// What each genesis validator bonds.
pub const GENESIS_VALIDATOR_BOND: Balance = 100_000 * UNITS;
/// The least a validator bonds to be a candidate (`staking.validate`).
pub const MIN_VALIDATOR_BOND: Balance = 10_000 * UNITS;
/// The least a nominator bonds.
pub const MIN_NOMINATOR_BOND: Balance = 100 * UNITS;
/// Validators an era's election picks, at most.
pub const VALIDATOR_COUNT: u32 = 20;

/// A genesis validator: its stash (which also signs as controller), session keys and
/// bond.
pub struct Validator {
	pub stash: AccountId,
	pub aura: AuraId,
	pub grandpa: GrandpaId,
	pub bond: Balance,
}

/// The dev experts: who, the libp2p PeerId bytes of the node key `--node-key 0x00…0N`
/// its node uses, and the chunks of the dev model it serves. Bob and Charlie form one
/// pipeline, Dave a whole second one.
fn dev_experts() -> Vec<(Sr25519Keyring, [u8; 38], Vec<u32>)> {
	vec![
		(
			Sr25519Keyring::Bob,
			// 12D3KooWHdiAxVd8uMQR1hGWXccidmfCwLqcMpGwR6QcTP6QRMuD (node key …02)
			const {
				dllm_primitives::hex_array(
					"0024080112207422b9887598068e32c4448a949adb290d0f4e35b9e01b0ee5f1a1e600fe2674",
				)
			},
			vec![0],
		),
		(
			Sr25519Keyring::Charlie,
			// 12D3KooWSCufgHzV4fCwRijfH2k3abrpAJxTKxEvN1FDuRXA2U9x (node key …03)
			const {
				dllm_primitives::hex_array(
					"002408011220f381626e41e7027ea431bfe3009e94bdd25a746beec468948d6c3c7c5dc9a54b",
				)
			},
			vec![1],
		),
		(
			Sr25519Keyring::Dave,
			// 12D3KooWSsChzF81YDUKpe9Uk5AHV5oqAaXAcWNSPYgoLauUk4st (node key …04)
			const {
				dllm_primitives::hex_array(
					"002408011220fd50b8e3b144ea244fbf7737f550bc8dd0c2650bbc1aada833ca17ff8dbf329b",
				)
			},
			vec![0, 1],
		),
	]
}

/// The dev model as the registry stores it.
pub fn dev_model_spec() -> pallet_models::ModelSpecOf<crate::Runtime> {
	ModelSpec {
		name: BoundedVec::truncate_from(dev_model::NAME.to_vec()),
		version: 1,
		architecture: Architecture::Mistral,
		num_layers: dev_model::LAYERS,
		hidden_size: dev_model::HIDDEN_SIZE,
		vocab_size: dev_model::VOCAB_SIZE,
		max_context: dev_model::MAX_CONTEXT,
		max_token_bytes: dev_model::MAX_TOKEN_BYTES,
		chunks: BoundedVec::truncate_from(
			dev_model::CHUNKS
				.iter()
				.map(|(start, end, hash)| ChunkSpec {
					start_layer: *start,
					end_layer: *end,
					weights_hash: H256(*hash),
				})
				.collect(),
		),
		tokenizer_hash: H256(dev_model::TOKENIZER_HASH),
		config_hash: H256(dev_model::CONFIG_HASH),
		// Miners may run f32, f16 or bf16; work is compared under the profile of the
		// looser format of the two sides (docs/verification.md).
		numerics: BoundedVec::truncate_from(vec![
			NumericProfile { format: NumericFormat::F32, verification: VerificationParams::F32 },
			NumericProfile { format: NumericFormat::F16, verification: VerificationParams::F16 },
			NumericProfile { format: NumericFormat::Bf16, verification: VerificationParams::BF16 },
		]),
		domains: BoundedVec::new(),
	}
}

/// The dev model and experts, or nothing, for `genesis`.
struct Market {
	models: Vec<pallet_models::ModelSpecOf<crate::Runtime>>,
	experts: Vec<GenesisExpert<crate::Runtime>>,
	unbonding_period: Option<BlockNumber>,
}

fn dev_market() -> Market {
	let experts = dev_experts()
		.into_iter()
		.map(|(who, peer_id, chunks)| GenesisExpert {
			account: who.to_account_id(),
			bond: DEV_EXPERT_BOND,
			domains: vec![b"general".to_vec()],
			peer_id: peer_id.to_vec(),
			price_per_token_layer: DEV_EXPERT_PRICE,
			max_concurrent_tasks: 4,
			commission: Perbill::from_percent(10),
			serving: chunks
				.into_iter()
				.map(|chunk| ServedChunk { model: 0, chunk, format: NumericFormat::F32 })
				.collect(),
		})
		.collect();
	Market { models: vec![dev_model_spec()], experts, unbonding_period: Some(DEV_UNBONDING_PERIOD) }
}

/// Whether eras (and so elections and payouts) run.
enum Eras {
	/// Elections every era: the validators change with the stake.
	Elect,
	/// No new era: the genesis validators stay (`--dev`: no staking ceremony).
	Frozen,
}

fn genesis(
	validators: Vec<Validator>,
	eras: Eras,
	endowed: Vec<(AccountId, Balance)>,
	root: Option<AccountId>,
	market: Market,
) -> Value {
	let community_fund = crate::community_account();
	let mut balances = endowed;
	balances.push((community_fund, COMMUNITY_FUND_GENESIS));

	let session_keys = validators
		.iter()
		.map(|v| {
			let keys = SessionKeys { aura: v.aura.clone(), grandpa: v.grandpa.clone() };
			(v.stash.clone(), v.stash.clone(), keys)
		})
		.collect::<Vec<_>>();
	let stakers = validators
		.iter()
		.map(|v| (v.stash.clone(), v.stash.clone(), v.bond, StakerStatus::Validator))
		.collect::<Vec<_>>();
	let force_era = match eras {
		Eras::Elect => Forcing::NotForcing,
		Eras::Frozen => Forcing::ForceNone,
	};

	build_struct_json_patch!(RuntimeGenesisConfig {
		balances: BalancesConfig { balances },
		session: SessionConfig { keys: session_keys },
		staking: StakingConfig {
			validator_count: VALIDATOR_COUNT,
			minimum_validator_count: 1,
			force_era,
			slash_reward_fraction: Perbill::from_percent(10),
			stakers,
			min_validator_bond: MIN_VALIDATOR_BOND,
			min_nominator_bond: MIN_NOMINATOR_BOND,
		},
		sudo: SudoConfig { key: root },
		models: ModelsConfig { models: market.models },
		experts: ExpertsConfig {
			experts: market.experts,
			unbonding_period: market.unbonding_period
		},
		// Generate once, verify by prefill (the miners' worker plays generator, verifier
		// and referee); the admin may switch to the redundant protocol with
		// `poaw.setVerificationMode`.
		poaw: PoawConfig { verification: Some(pallet_poaw::VerificationMode::Prefill) },
	})
}

/// A dev account as a validator, with the Aura (sr25519) and GRANDPA (ed25519) keys that
/// `--alice` / `--bob` put into a node's keystore.
fn dev_validator(sr25519: Sr25519Keyring, ed25519: Ed25519Keyring) -> Validator {
	Validator {
		stash: sr25519.to_account_id(),
		aura: sr25519.public().into(),
		grandpa: ed25519.public().into(),
		bond: GENESIS_VALIDATOR_BOND,
	}
}

fn dev_accounts() -> Vec<(AccountId, Balance)> {
	Sr25519Keyring::well_known().map(|k| (k.to_account_id(), DEV_ENDOWMENT)).collect()
}

/// Why a production genesis cannot be built.
#[cfg(feature = "std")]
#[derive(Debug, PartialEq, Eq)]
pub enum ProductionGenesisError {
	/// No validator: no block would ever be authored.
	NoValidators,
	/// A validator's bond is below the least a validator bonds.
	BondTooSmall { stash: AccountId, bond: Balance },
	/// A validator's stash is not endowed with its bond plus the existential deposit.
	BondNotEndowed { stash: AccountId, bond: Balance, endowed: Balance },
	/// An account is endowed twice, or a validator listed twice.
	Duplicate(AccountId),
	/// A validator's session key is another's too.
	SharedKey(AccountId),
	/// An endowment below the existential deposit (the account would not exist).
	EndowmentTooSmall(AccountId),
	/// The community fund is endowed by the genesis itself.
	FundEndowed,
	/// More validators than an election picks.
	TooManyValidators { listed: usize },
}

#[cfg(feature = "std")]
impl core::fmt::Display for ProductionGenesisError {
	fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
		use crate::token::SYMBOL;
		let units = |amount: &Balance| amount / UNITS;
		match self {
			Self::NoValidators => write!(f, "no validators: list at least one"),
			Self::BondTooSmall { stash, bond } => write!(
				f,
				"validator {stash} bonds {} {SYMBOL}, less than the least, {} {SYMBOL}",
				units(bond),
				units(&MIN_VALIDATOR_BOND),
			),
			Self::BondNotEndowed { stash, bond, endowed } => write!(
				f,
				"validator {stash} bonds {} {SYMBOL} but is endowed with {} {SYMBOL}: endow \
				 it with its bond and more",
				units(bond),
				units(endowed),
			),
			Self::Duplicate(who) => write!(f, "{who} is listed twice"),
			Self::SharedKey(who) => {
				write!(f, "validator {who}'s session key is another validator's too")
			}
			Self::EndowmentTooSmall(who) => write!(
				f,
				"{who} is endowed with less than the existential deposit ({} planck)",
				crate::token::EXISTENTIAL_DEPOSIT
			),
			Self::FundEndowed => {
				write!(f, "the community fund is endowed by the genesis itself: leave it out")
			}
			Self::TooManyValidators { listed } => {
				write!(f, "{listed} validators listed; an election picks at most {VALIDATOR_COUNT}")
			}
		}
	}
}

/// A production network's genesis: the given validators (elected by stake every era
/// from the first), the given endowments and the community fund, the sudo key `root` if
/// given (until the chain has governance, the only origin of runtime upgrades and model
/// registrations; docs/operators.md argues for one), and nothing else: no dev account,
/// no model or expert. The node builds it from a JSON file at `build-spec` time
/// (`--chain production:FILE`, docs/operators.md).
#[cfg(feature = "std")]
pub fn production_genesis(
	validators: Vec<Validator>,
	endowed: Vec<(AccountId, Balance)>,
	root: Option<AccountId>,
) -> Result<Value, ProductionGenesisError> {
	use alloc::collections::BTreeSet;
	if validators.is_empty() {
		return Err(ProductionGenesisError::NoValidators);
	}
	if validators.len() > VALIDATOR_COUNT as usize {
		return Err(ProductionGenesisError::TooManyValidators { listed: validators.len() });
	}
	let mut seen = BTreeSet::new();
	for (who, amount) in &endowed {
		if *who == crate::community_account() {
			return Err(ProductionGenesisError::FundEndowed);
		}
		if !seen.insert(who.clone()) {
			return Err(ProductionGenesisError::Duplicate(who.clone()));
		}
		if *amount < crate::token::EXISTENTIAL_DEPOSIT {
			return Err(ProductionGenesisError::EndowmentTooSmall(who.clone()));
		}
	}
	let (mut stashes, mut auras, mut grandpas) =
		(BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
	for validator in &validators {
		let stash = validator.stash.clone();
		if !stashes.insert(stash.clone()) {
			return Err(ProductionGenesisError::Duplicate(stash));
		}
		if !auras.insert(validator.aura.clone()) || !grandpas.insert(validator.grandpa.clone()) {
			return Err(ProductionGenesisError::SharedKey(stash));
		}
		if validator.bond < MIN_VALIDATOR_BOND {
			return Err(ProductionGenesisError::BondTooSmall { stash, bond: validator.bond });
		}
		let endowment = endowed.iter().find(|(who, _)| *who == stash).map(|(_, b)| *b);
		let endowment = endowment.unwrap_or_default();
		if endowment < validator.bond.saturating_add(crate::token::EXISTENTIAL_DEPOSIT) {
			return Err(ProductionGenesisError::BondNotEndowed {
				stash,
				bond: validator.bond,
				endowed: endowment,
			});
		}
	}
	let no_market = Market { models: Vec::new(), experts: Vec::new(), unbonding_period: None };
	Ok(genesis(validators, Eras::Elect, endowed, root, no_market))
}

/// `development`: Alice is the only validator (no new eras, so no election ever replaces
/// her) and sudo; all dev accounts are endowed; the tiny dev model is active and Bob,
/// Charlie and Dave serve its chunks.
pub fn development_config_genesis() -> Value {
	genesis(
		vec![dev_validator(Sr25519Keyring::Alice, Ed25519Keyring::Alice)],
		Eras::Frozen,
		dev_accounts(),
		Some(Sr25519Keyring::Alice.to_account_id()),
		dev_market(),
	)
}

/// `local_testnet`: Alice and Bob are the genesis validators (6 s blocks), and each era
/// elects the validators by stake, so others can bond and join; Alice is sudo; the same
/// market as `development` (the tiny dev model, Bob, Charlie and Dave serving it), so
/// that miners can answer on a chain with real block times.
pub fn local_config_genesis() -> Value {
	genesis(
		vec![
			dev_validator(Sr25519Keyring::Alice, Ed25519Keyring::Alice),
			dev_validator(Sr25519Keyring::Bob, Ed25519Keyring::Bob),
		],
		Eras::Elect,
		dev_accounts(),
		Some(Sr25519Keyring::Alice.to_account_id()),
		dev_market(),
	)
}

/// The JSON patch of a preset, or `None` for an unknown name.
pub fn get_preset(id: &PresetId) -> Option<Vec<u8>> {
	let patch = match id.as_ref() {
		sp_genesis_builder::DEV_RUNTIME_PRESET => development_config_genesis(),
		sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET => local_config_genesis(),
		_ => return None,
	};
	serde_json::to_vec(&patch).ok()
}

/// Names of the presets this runtime offers.
pub fn preset_names() -> Vec<PresetId> {
	vec![
		PresetId::from(sp_genesis_builder::DEV_RUNTIME_PRESET),
		PresetId::from(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET),
	]
}
