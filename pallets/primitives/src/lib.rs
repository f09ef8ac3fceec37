//! Types and constants shared by the DLLM runtime, its pallets and the node.
//!
//! Everything here is plain data: no storage, no pallet logic. Pallets depend on this
//! crate (and FRAME) only, so the node and the runtime agree on the token and the
//! account types without the pallets depending on the runtime.

#![cfg_attr(not(feature = "std"), no_std)]
// Runtime code must not panic or overflow: no `unwrap`, no unchecked indexing or
// arithmetic outside the tests (checked by clippy in CI).
#![cfg_attr(
	not(test),
	deny(clippy::arithmetic_side_effects, clippy::indexing_slicing, clippy::unwrap_used)
)]

extern crate alloc;

pub mod market;

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
		const { assert!(EXISTENTIAL_DEPOSIT > 0) };
	}
}

/// The tiny random model that a fresh `--dev` chain registers: what
/// `dllm-infer make-tiny --out DIR` writes (its defaults, seed 0), chunked as layers 0..2
/// and 2..4. The runtime tests regenerate it and check these hashes.
pub mod dev_model {
	/// Registered name.
	pub const NAME: &[u8] = b"dllm-tiny-mistral";
	/// Seed of `dllm-infer make-tiny`.
	pub const SEED: u64 = 0;
	/// Decoder layers.
	pub const LAYERS: u32 = 4;
	/// Residual width.
	pub const HIDDEN_SIZE: u32 = 64;
	/// Vocabulary (3 special tokens, 256 bytes, padding).
	pub const VOCAB_SIZE: u32 = 320;
	/// Longest sequence.
	pub const MAX_CONTEXT: u32 = 512;
	/// Most bytes one token adds to the decoded text: the filler tokens decode to their
	/// names (`<extra_319>`, 11 bytes); a lone byte token decodes to at most U+FFFD (3).
	pub const MAX_TOKEN_BYTES: u32 = 11;
	/// The chunks: layer range and `dllm-infer hash-chunks` hash.
	pub const CHUNKS: [(u32, u32, [u8; 32]); 2] = [
		(
			0,
			2,
			super::hex_array("6dfbcaf29b68c7ffc1a5d2680331bcc793243c1f0f6a5c633aea146b88f88d39"),
		),
		(
			2,
			4,
			super::hex_array("95669854d5f4f35dcf04e3b3561175680efd0162ab46917de85ec63c633d8d70"),
		),
	];
	/// `dllm-infer hash-chunks`' config hash (the engine's fields of its `config.json`).
	pub const CONFIG_HASH: [u8; 32] =
		super::hex_array("b68649411180381b2e48b963ba5a81c8b89cc088de98795db26a76651e54719b");
	/// SHA-256 of its `tokenizer.json`.
	pub const TOKENIZER_HASH: [u8; 32] =
		super::hex_array("d29d502943a8ef708fc913bfe3f23b35f725787ea971f6a585adb00525603cca");
}

/// `2N` lowercase hex digits to `N` bytes, at compile time: use it in a `const`, where a bad
/// literal fails the build.
// Evaluated by the compiler: an index or digit out of range is a build error, not a panic.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
pub const fn hex_array<const N: usize>(hex: &str) -> [u8; N] {
	const fn digit(c: u8) -> u8 {
		match c {
			b'0'..=b'9' => c - b'0',
			b'a'..=b'f' => c - b'a' + 10,
			_ => panic!("not a lowercase hex digit"),
		}
	}
	let bytes = hex.as_bytes();
	assert!(bytes.len() == 2 * N, "wrong number of hex digits");
	let mut out = [0u8; N];
	let mut i = 0;
	while i < N {
		out[i] = digit(bytes[2 * i]) * 16 + digit(bytes[2 * i + 1]);
		i += 1;
	}
	out
}
