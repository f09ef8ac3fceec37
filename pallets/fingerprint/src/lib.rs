//! Activation fingerprints: what a miner commits to about a chunk's output, and the
//! tolerant comparison of two of them that decides whether a verifier's teacher-forced
//! prefill agrees with a generator's work.
//!
//! A fingerprint sketches rows (hidden states of every position a chunk ran, or the
//! logits of every generated position) in blocks of `block` positions:
//!
//! - per position, the row's RMS on a log scale and its projections on `projections`
//!   fixed pseudo-random ±1 directions, relative to the RMS: every position is covered,
//!   so a single corrupted position shows, and a scaled state shows in the RMS;
//! - per block, the `top_k` largest-magnitude entries of the block's last row (index and
//!   value relative to the RMS), TOPLOC's check of the dominant coordinates.
//!
//! Everything in a fingerprint is an integer. [`compare`] uses integer arithmetic only, so
//! it gives the same verdict on every platform, inside the runtime too, in time linear in
//! the fingerprint's size. The float side (computing a sketch from activations) lives in
//! `dllm-inference`, which calibrates the [`Tolerance`]s.

#![cfg_attr(not(feature = "std"), no_std)]
// Runtime code must not panic or overflow: no `unwrap`, no unchecked indexing or
// arithmetic outside the tests (checked by clippy in CI).
#![cfg_attr(
	not(test),
	deny(clippy::arithmetic_side_effects, clippy::indexing_slicing, clippy::unwrap_used)
)]

extern crate alloc;

mod compare;
mod encoding;
mod params;

pub use compare::{compare, BlockScore, Comparison, Mismatch};
pub use encoding::{DecodeError, Fingerprint, RowKind, HEADER_BYTES, MAGIC, VERSION};
pub use params::{FingerprintParams, ParamsError, Tolerance, VerificationParams};

/// Units of the log-RMS code: `round(log2(rms) * LOG_RMS_SCALE)` (0.034% per unit).
pub const LOG_RMS_SCALE: f64 = 2048.0;
/// Units of a projection code: `round(projection / (sqrt(width) * rms) * PROJECTION_SCALE)`.
pub const PROJECTION_SCALE: f64 = 4096.0;
/// Units of a top-k value code: `round(value / rms * VALUE_SCALE)`.
pub const VALUE_SCALE: f64 = 512.0;

/// SplitMix64, the mixing function of the projection directions (pinned: changing it
/// changes every fingerprint).
pub const fn splitmix64(mut z: u64) -> u64 {
	z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
	z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
	z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
	z ^ (z >> 31)
}

/// Whether coordinate `index` of projection direction `projection` is +1 (else -1).
pub const fn projection_sign(projection: u8, index: u32) -> bool {
	const DOMAIN: u64 = 0x444c_4650_5052_4f4a; // "DLFPPROJ"
	splitmix64(DOMAIN ^ ((projection as u64) << 32) ^ index as u64) & 1 == 1
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn projection_directions_are_pinned_and_balanced() {
		// Fixed values: a change here changes every fingerprint ever committed.
		assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
		let signs: alloc::vec::Vec<bool> = (0..16).map(|i| projection_sign(0, i)).collect();
		assert_eq!(
			signs.iter().map(|s| if *s { '+' } else { '-' }).collect::<alloc::string::String>(),
			PINNED_SIGNS
		);
		for projection in 0..4 {
			let plus = (0..4096).filter(|i| projection_sign(projection, *i)).count();
			assert!((1900..2200).contains(&plus), "direction {projection}: {plus} of 4096");
		}
	}

	const PINNED_SIGNS: &str = "+-+--++--+-+-+++";
}
