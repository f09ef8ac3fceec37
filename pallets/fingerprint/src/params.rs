//! How fingerprints are taken and how closely two must agree: the parameters a model's
//! registry entry stores (SCALE-encodable), with the values calibrated by
//! `dllm-inference` (docs/verification.md).

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

/// Largest block (positions per block) a fingerprint may use.
pub const MAX_BLOCK: u16 = 1024;
/// Most top-k entries per block.
pub const MAX_TOP_K: u16 = 256;
/// Most projection directions per position.
pub const MAX_PROJECTIONS: u8 = 16;

/// How a fingerprint is taken.
#[derive(
	Clone,
	Copy,
	Debug,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FingerprintParams {
	/// Positions per block.
	pub block: u16,
	/// Largest-magnitude entries kept of each block's last row (lowered to the row
	/// width for narrow rows).
	pub top_k: u16,
	/// Projection directions per position (at least 1).
	pub projections: u8,
}

/// Why parameters are unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamsError {
	/// `block` is 0 or above [`MAX_BLOCK`].
	Block,
	/// `top_k` is above [`MAX_TOP_K`].
	TopK,
	/// `projections` is 0 or above [`MAX_PROJECTIONS`].
	Projections,
}

impl core::fmt::Display for ParamsError {
	fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
		match self {
			ParamsError::Block => write!(f, "block must be in 1..={MAX_BLOCK}"),
			ParamsError::TopK => write!(f, "top_k must be at most {MAX_TOP_K}"),
			ParamsError::Projections => write!(f, "projections must be in 1..={MAX_PROJECTIONS}"),
		}
	}
}

impl FingerprintParams {
	/// 32 positions per block (TOPLOC's), 3 projections per position and the top 16
	/// entries per block: 320 bytes per block of hidden states.
	pub const DEFAULT: FingerprintParams =
		FingerprintParams { block: 32, top_k: 16, projections: 3 };

	/// Checks the bounds.
	pub fn validate(&self) -> Result<(), ParamsError> {
		if self.block == 0 || self.block > MAX_BLOCK {
			return Err(ParamsError::Block);
		}
		if self.top_k > MAX_TOP_K {
			return Err(ParamsError::TopK);
		}
		if self.projections == 0 || self.projections > MAX_PROJECTIONS {
			return Err(ParamsError::Projections);
		}
		Ok(())
	}

	/// The top-k actually kept for rows of `width`.
	pub fn top_k_for(&self, width: u32) -> u16 {
		(self.top_k as u32).min(width) as u16
	}

	/// Bytes of an encoded fingerprint of `positions` rows of `width` (saturating).
	pub fn encoded_len(&self, positions: u32, width: u32) -> usize {
		let positions = positions as usize;
		let blocks = positions.div_ceil(self.block.max(1) as usize);
		// Small numbers: a u8 of projections, index bytes of 2 or 4, a u16 top-k.
		let per_position = (self.projections as usize).saturating_add(1).saturating_mul(2);
		let per_entry = crate::encoding::index_bytes(width).saturating_add(2);
		let top = blocks.saturating_mul((self.top_k_for(width) as usize).saturating_mul(per_entry));
		crate::HEADER_BYTES
			.saturating_add(positions.saturating_mul(per_position))
			.saturating_add(top)
	}
}

impl Default for FingerprintParams {
	fn default() -> Self {
		Self::DEFAULT
	}
}

/// How closely a claimed fingerprint must match the verifier's, in the fingerprint's
/// integer units (see the `*_SCALE` constants). Every threshold is inclusive.
#[derive(
	Clone,
	Copy,
	Debug,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Tolerance {
	/// Largest difference of a position's log-RMS code (units of 1/2048 of a doubling).
	pub max_log_rms_error: u16,
	/// Largest |mean signed difference| of the log-RMS codes over a block.
	pub max_log_rms_bias: u16,
	/// Largest mean absolute difference of one position's projection codes.
	pub max_position_error: u16,
	/// Largest mean absolute difference of the projection codes over a block.
	pub max_block_error: u16,
	/// Least share (per mille) of claimed top-k indices among the verifier's top-k.
	pub min_top_k_overlap: u16,
	/// Largest mean absolute difference of the top-k value codes both sides share.
	pub max_top_k_error: u16,
}

impl Tolerance {
	/// Hidden states of f32 work (any thread count, shard split, decode vs prefill):
	/// float noise stays under one unit, so a 1% perturbation of one matrix shows.
	pub const F32: Tolerance = Tolerance {
		max_log_rms_error: 4,
		max_log_rms_bias: 2,
		max_position_error: 6,
		max_block_error: 2,
		min_top_k_overlap: 800,
		max_top_k_error: 4,
	};

	/// Hidden states of f32 or f16 work (either side in f16).
	pub const F16: Tolerance = Tolerance {
		max_log_rms_error: 8,
		max_log_rms_bias: 4,
		max_position_error: 64,
		max_block_error: 20,
		min_top_k_overlap: 750,
		max_top_k_error: 8,
	};

	/// Hidden states of f32, f16 or bf16 work (either side in bf16).
	pub const BF16: Tolerance = Tolerance {
		max_log_rms_error: 48,
		max_log_rms_bias: 16,
		max_position_error: 200,
		max_block_error: 96,
		min_top_k_overlap: 750,
		max_top_k_error: 40,
	};
}

/// Everything a verification compares under: stored per model in the registry.
#[derive(
	Clone,
	Copy,
	Debug,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VerificationParams {
	/// How fingerprints are taken.
	pub fingerprint: FingerprintParams,
	/// Tolerance for every chunk's hidden states.
	pub hidden: Tolerance,
	/// Tolerance for the last chunk's logits.
	pub logits: Tolerance,
	/// Largest difference between the generator's and the verifier's logit of one token
	/// that the sampling check allows for, in thousandths of a logit.
	pub max_logit_error_milli: u32,
}

impl VerificationParams {
	/// A model that accepts f32 work only.
	pub const F32: VerificationParams = VerificationParams {
		fingerprint: FingerprintParams::DEFAULT,
		hidden: Tolerance::F32,
		logits: Tolerance::F32,
		max_logit_error_milli: 1,
	};

	/// A model that accepts f32 and f16 work.
	pub const F16: VerificationParams = VerificationParams {
		fingerprint: FingerprintParams::DEFAULT,
		hidden: Tolerance::F16,
		logits: Tolerance::F16,
		max_logit_error_milli: 5,
	};

	/// A model that accepts f32, f16 and bf16 work (the loosest: every honest format
	/// passes, and the smallest perturbations hide in bf16's own rounding noise).
	pub const BF16: VerificationParams = VerificationParams {
		fingerprint: FingerprintParams::DEFAULT,
		hidden: Tolerance::BF16,
		logits: Tolerance::BF16,
		max_logit_error_milli: 30,
	};

	/// Accepts every format.
	pub const DEFAULT: VerificationParams = Self::BF16;

	/// The parameters of a model whose loosest accepted compute format is `name`
	/// (`f32`, `f16` or `bf16`).
	pub fn for_format(name: &str) -> Option<VerificationParams> {
		match name {
			"f32" => Some(Self::F32),
			"f16" => Some(Self::F16),
			"bf16" => Some(Self::BF16),
			_ => None,
		}
	}
}

impl Default for VerificationParams {
	fn default() -> Self {
		Self::DEFAULT
	}
}
