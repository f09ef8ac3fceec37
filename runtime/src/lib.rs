//! The DLLM runtime: the DLLM token, Aura + GRANDPA consensus with validators elected by
//! stake (NPoS), the community fund (treasury) and the LLM market pallets.

#![cfg_attr(not(feature = "std"), no_std)]
// `construct_runtime` and `impl_runtime_apis` expand to large types.
#![recursion_limit = "256"]

#[cfg(feature = "std")]
include!(concat!(env!("OUT_DIR"), "/wasm_binary.rs"));

extern crate alloc;

// Before `apis`: its benchmark API uses the macros `define_benchmarks!` makes here.
#[cfg(feature = "runtime-benchmarks")]
#[macro_use]
mod benchmarks;

pub mod apis;
pub mod configs;
pub mod genesis_config_presets;
#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use polkadot_sdk::{
	frame_support::runtime,
	frame_system, pallet_aura, pallet_authorship, pallet_balances, pallet_grandpa, pallet_offences,
	pallet_session, pallet_staking, pallet_sudo, pallet_timestamp, pallet_transaction_payment,
	pallet_treasury, pallet_utility,
	sp_runtime::{generic, impl_opaque_keys, traits::BlakeTwo256, MultiAddress},
	sp_version::{runtime_version, RuntimeVersion},
	*,
};

pub use dllm_primitives::{
	time::*, token, AccountId, Balance, BlockNumber, Hash, Nonce, Signature,
};
pub use frame_system::Call as SystemCall;
pub use pallet_balances::Call as BalancesCall;
pub use pallet_treasury::Call as TreasuryCall;
#[cfg(any(feature = "std", test))]
pub use polkadot_sdk::sp_runtime::BuildStorage;

/// Types the node needs without knowing the runtime's extrinsic format.
pub mod opaque {
	use super::*;
	pub use polkadot_sdk::sp_runtime::OpaqueExtrinsic as UncheckedExtrinsic;

	/// Opaque block header type.
	pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
	/// Opaque block type.
	pub type Block = generic::Block<Header, UncheckedExtrinsic>;
	/// Opaque block identifier type.
	pub type BlockId = generic::BlockId<Block>;

	pub use super::SessionKeys;
}

impl_opaque_keys! {
	/// Keys a validator registers (`session.setKeys`): Aura for authoring, GRANDPA for
	/// finality.
	pub struct SessionKeys {
		pub aura: Aura,
		pub grandpa: Grandpa,
	}
}

#[runtime_version]
pub const VERSION: RuntimeVersion = RuntimeVersion {
	spec_name: alloc::borrow::Cow::Borrowed("dllm"),
	impl_name: alloc::borrow::Cow::Borrowed("dllm-node"),
	authoring_version: 1,
	// Bump on every change of runtime logic; the node refuses nothing on mismatch, but
	// clients (polkadot-js) re-read metadata when it changes.
	spec_version: 107,
	impl_version: 1,
	apis: apis::RUNTIME_API_VERSIONS,
	// Bump when the encoding of existing calls or transaction extensions changes.
	transaction_version: 1,
	system_version: 1,
};

/// The address format for describing accounts.
pub type Address = MultiAddress<AccountId, ()>;
/// Block header type as expected by this runtime.
pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
/// Block type as expected by this runtime.
pub type Block = generic::Block<Header, UncheckedExtrinsic>;

/// The transaction extensions, in the order polkadot-js expects the standard ones.
pub type TxExtension = (
	frame_system::CheckNonZeroSender<Runtime>,
	frame_system::CheckSpecVersion<Runtime>,
	frame_system::CheckTxVersion<Runtime>,
	frame_system::CheckGenesis<Runtime>,
	frame_system::CheckEra<Runtime>,
	frame_system::CheckNonce<Runtime>,
	frame_system::CheckWeight<Runtime>,
	pallet_transaction_payment::ChargeTransactionPayment<Runtime>,
	frame_metadata_hash_extension::CheckMetadataHash<Runtime>,
	frame_system::WeightReclaim<Runtime>,
);

/// The transaction extensions of a transaction from an account at `nonce`, immortal,
/// without tip or metadata hash. Native signers (tests) use this to build exactly what
/// the runtime checks.
pub fn tx_extension(nonce: Nonce) -> TxExtension {
	tx_extension_in_era(nonce, generic::Era::Immortal)
}

/// Blocks a transaction of the node's miner worker stays valid: one stuck in the pool
/// lapses after 6.4 minutes instead of landing much later (L9 in the December security
/// review); wallets use the same period.
pub const MINER_TX_MORTALITY: u64 = 64;

/// [`tx_extension`], valid only in `era`: a mortal era also puts the hash of its birth
/// block (`era.birth(current)`) in the signed payload.
pub fn tx_extension_in_era(nonce: Nonce, era: generic::Era) -> TxExtension {
	(
		frame_system::CheckNonZeroSender::new(),
		frame_system::CheckSpecVersion::new(),
		frame_system::CheckTxVersion::new(),
		frame_system::CheckGenesis::new(),
		frame_system::CheckEra::from(era),
		frame_system::CheckNonce::from(nonce),
		frame_system::CheckWeight::new(),
		pallet_transaction_payment::ChargeTransactionPayment::from(0),
		frame_metadata_hash_extension::CheckMetadataHash::new(false),
		frame_system::WeightReclaim::new(),
	)
}

/// Unchecked extrinsic type as expected by this runtime.
pub type UncheckedExtrinsic =
	generic::UncheckedExtrinsic<Address, RuntimeCall, Signature, TxExtension>;
/// The payload being signed in transactions.
pub type SignedPayload = generic::SignedPayload<RuntimeCall, TxExtension>;

/// Unsigned transactions the runtime makes itself: GRANDPA equivocation reports, which
/// the node submits through `submit_report_equivocation_unsigned_extrinsic`.
impl<LocalCall> frame_system::offchain::CreateTransactionBase<LocalCall> for Runtime
where
	RuntimeCall: From<LocalCall>,
{
	type Extrinsic = UncheckedExtrinsic;
	type RuntimeCall = RuntimeCall;
}

impl<LocalCall> frame_system::offchain::CreateBare<LocalCall> for Runtime
where
	RuntimeCall: From<LocalCall>,
{
	fn create_bare(call: RuntimeCall) -> UncheckedExtrinsic {
		UncheckedExtrinsic::new_bare(call)
	}
}

/// Migrations to run on the next runtime upgrade, besides the pallets' own.
type Migrations = (pallet_poaw::migrations::v2::MigrateV1ToV2<Runtime>,);

/// Dispatches blocks and transactions to the pallets.
pub type Executive = frame_executive::Executive<
	Runtime,
	Block,
	frame_system::ChainContext<Runtime>,
	Runtime,
	AllPalletsWithSystem,
	Migrations,
>;

#[runtime]
mod runtime {
	#[runtime::runtime]
	#[runtime::derive(
		RuntimeCall,
		RuntimeEvent,
		RuntimeError,
		RuntimeOrigin,
		RuntimeFreezeReason,
		RuntimeHoldReason,
		RuntimeSlashReason,
		RuntimeLockId,
		RuntimeTask,
		RuntimeViewFunction
	)]
	pub struct Runtime;

	#[runtime::pallet_index(0)]
	pub type System = frame_system;

	#[runtime::pallet_index(1)]
	pub type Timestamp = pallet_timestamp;

	#[runtime::pallet_index(2)]
	pub type Aura = pallet_aura;

	#[runtime::pallet_index(3)]
	pub type Grandpa = pallet_grandpa;

	#[runtime::pallet_index(4)]
	pub type Balances = pallet_balances;

	#[runtime::pallet_index(5)]
	pub type TransactionPayment = pallet_transaction_payment;

	#[runtime::pallet_index(6)]
	pub type Sudo = pallet_sudo;

	#[runtime::pallet_index(7)]
	pub type Treasury = pallet_treasury;

	#[runtime::pallet_index(8)]
	pub type Utility = pallet_utility;

	#[runtime::pallet_index(9)]
	pub type Models = pallet_models;

	#[runtime::pallet_index(10)]
	pub type Experts = pallet_experts;

	#[runtime::pallet_index(11)]
	pub type Poaw = pallet_poaw;

	#[runtime::pallet_index(12)]
	pub type Reputation = pallet_reputation;

	// Validators by stake. Staking before Session: the session's genesis asks staking
	// for the first validator set.
	#[runtime::pallet_index(13)]
	pub type Authorship = pallet_authorship;

	#[runtime::pallet_index(14)]
	pub type Staking = pallet_staking;

	#[runtime::pallet_index(15)]
	pub type Offences = pallet_offences;

	#[runtime::pallet_index(16)]
	pub type Historical = pallet_session::historical;

	#[runtime::pallet_index(17)]
	pub type Session = pallet_session;

	#[runtime::pallet_index(18)]
	pub type Multisig = pallet_multisig;
}

/// The community fund: the treasury's account. It receives transaction fees, the
/// community share of every task fee and slashed stake.
pub fn community_account() -> AccountId {
	configs::TreasuryAccount::get()
}
