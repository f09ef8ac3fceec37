//! Types and constants shared by the DLLM runtime, its pallets and the node.
//!
//! Everything here is plain data: no storage, no pallet logic. Pallets depend on this
//! crate (and FRAME) only, so the node and the runtime agree on the token and the
//! account types without the pallets depending on the runtime.

#![cfg_attr(not(feature = "std"), no_std)]

use polkadot_sdk::{
	sp_core::H256,
	sp_runtime::{
		traits::{IdentifyAccount, Verify},
		MultiSignature,
	},
};

/// An index to a block.
pub type BlockNumber = u32;
/// Signature of a transaction: sr25519, ed25519 or ecdsa, as polkadot-js signs.
pub type Signature = MultiSignature;
/// An account on the chain: the public key of the signing scheme.
pub type AccountId = <<Signature as Verify>::Signer as IdentifyAccount>::AccountId;
/// An amount of DLLM in its smallest unit (10^-12 DLLM).
pub type Balance = u128;
/// Number of transactions an account has sent.
pub type Nonce = u32;
/// A hash of some data used by the chain.
pub type Hash = H256;

/// The DLLM token as wallets show it.
pub mod token {
	use super::Balance;

	/// Symbol shown by wallets and polkadot-js (`tokenSymbol` chain property).
	pub const SYMBOL: &str = "DLLM";
	/// Decimal places of one DLLM (`tokenDecimals` chain property).
	pub const DECIMALS: u8 = 12;
	/// One DLLM in the smallest unit.
	pub const UNITS: Balance = 10u128.pow(DECIMALS as u32);
	/// 0.001 DLLM.
	pub const MILLI_UNITS: Balance = UNITS / 1_000;
	/// 0.000001 DLLM.
	pub const MICRO_UNITS: Balance = UNITS / 1_000_000;
	/// The least balance an account must keep to exist (0.001 DLLM).
	pub const EXISTENTIAL_DEPOSIT: Balance = MILLI_UNITS;
	/// SS58 address prefix. 42 is the generic Substrate prefix, which every wallet knows.
	pub const SS58_PREFIX: u16 = 42;
}

/// Block times.
pub mod time {
	use super::BlockNumber;

	/// Target block time of real networks (Aura slot), in milliseconds.
	pub const MILLISECS_PER_BLOCK: u64 = 6_000;
	/// Aura slot length. Changing it on a running chain stops block production.
	pub const SLOT_DURATION: u64 = MILLISECS_PER_BLOCK;
	/// Blocks per minute at the target block time.
	pub const MINUTES: BlockNumber = 60_000 / (MILLISECS_PER_BLOCK as BlockNumber);
	/// Blocks per hour at the target block time.
	pub const HOURS: BlockNumber = MINUTES * 60;
	/// Blocks per day at the target block time.
	pub const DAYS: BlockNumber = HOURS * 24;
}

#[cfg(test)]
mod tests {
	use super::token::*;

	#[test]
	fn token_units_are_consistent() {
		assert_eq!(UNITS, 1_000_000_000_000);
		assert_eq!(MILLI_UNITS * 1_000, UNITS);
		assert_eq!(MICRO_UNITS * 1_000_000, UNITS);
		assert!(EXISTENTIAL_DEPOSIT > 0);
	}
}
