//! The byte encoding of a fingerprint: versioned and self-describing; decoding checks
//! every field and never panics.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! | --- | --- |
//! | 4 | magic `DLFP` |
//! | 1 | version (2) |
//! | 1 | row kind: 0 hidden states, 1 logits |
//! | 4 | width of a row |
//! | 4 | positions |
//! | 2 | block |
//! | 2 | top_k (after lowering to the width) |
//! | 1 | projections |
//! | 1 | bytes per top-k index: 2 when the width is at most 65 536, else 4 |
//!
//! then per block: per position its log-RMS code (i16) and its projection codes (i16
//! each); then the block's top-k indices and their value codes (i16).

use crate::params::{FingerprintParams, ParamsError};
use alloc::vec::Vec;

/// First bytes of every fingerprint.
pub const MAGIC: [u8; 4] = *b"DLFP";
/// Version of this encoding (1 was the top-k-only format of the first miners).
pub const VERSION: u8 = 2;
/// Bytes before the first block.
pub const HEADER_BYTES: usize = 20;

/// What the rows of a fingerprint are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
	/// A chunk's output hidden states, one row per position it ran.
	Hidden = 0,
	/// The last chunk's logits, one row per generated token.
	Logits = 1,
}

/// A decoded fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
	/// What the rows are.
	pub kind: RowKind,
	/// Width of a row (hidden size or vocabulary).
	pub width: u32,
	/// Rows covered.
	pub positions: u32,
	/// Block size, projections, and the top-k kept per block.
	pub params: FingerprintParams,
	/// Per position: `round(log2(rms) * LOG_RMS_SCALE)`.
	pub log_rms: Vec<i16>,
	/// Per position, `params.projections` codes.
	pub projections: Vec<i16>,
	/// Per block, `params.top_k` indices, largest magnitude first.
	pub top_indices: Vec<u32>,
	/// Value codes of `top_indices`.
	pub top_values: Vec<i16>,
}

/// Why bytes are not a fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
	/// Shorter than the header, or not starting with the magic.
	NotAFingerprint,
	/// A version this code does not read.
	UnsupportedVersion(u8),
	/// An unknown row kind.
	UnknownKind(u8),
	/// Bad parameters in the header.
	Params(ParamsError),
	/// Zero width or zero positions, top_k above the width, or an index width that does
	/// not match the row width.
	BadHeader,
	/// The length is not what the header implies.
	Length,
	/// A top-k index outside the row, or repeated within its block.
	BadIndex,
}

impl core::fmt::Display for DecodeError {
	fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
		match self {
			DecodeError::NotAFingerprint => write!(f, "not a fingerprint"),
			DecodeError::UnsupportedVersion(v) => {
				write!(f, "fingerprint version {v} is not supported (this code reads {VERSION})")
			}
			DecodeError::UnknownKind(k) => write!(f, "unknown fingerprint row kind {k}"),
			DecodeError::Params(e) => write!(f, "fingerprint parameters: {e}"),
			DecodeError::BadHeader => write!(f, "inconsistent fingerprint header"),
			DecodeError::Length => write!(f, "fingerprint length does not match its header"),
			DecodeError::BadIndex => write!(f, "fingerprint top-k index out of range or repeated"),
		}
	}
}

/// Bytes per top-k index for rows of `width`.
pub(crate) fn index_bytes(width: u32) -> usize {
	if width <= 1 << 16 {
		2
	} else {
		4
	}
}

impl Fingerprint {
	/// Number of blocks.
	pub fn blocks(&self) -> usize {
		(self.positions as usize).div_ceil(self.params.block.max(1) as usize)
	}

	/// Positions `start..end` of block `b`.
	pub fn block_range(&self, b: usize) -> core::ops::Range<usize> {
		let block = self.params.block.max(1) as usize;
		let start = b.saturating_mul(block);
		start..start.saturating_add(block).min(self.positions as usize)
	}

	/// Checks the fields agree with each other (what [`Fingerprint::decode`] guarantees).
	pub fn check(&self) -> Result<(), DecodeError> {
		self.params.validate().map_err(DecodeError::Params)?;
		if self.width == 0 || self.positions == 0 || self.params.top_k as u32 > self.width {
			return Err(DecodeError::BadHeader);
		}
		let positions = self.positions as usize;
		let entries = self.blocks().saturating_mul(self.params.top_k as usize);
		if self.log_rms.len() != positions
			|| self.projections.len() != positions.saturating_mul(self.params.projections as usize)
			|| self.top_indices.len() != entries
			|| self.top_values.len() != entries
		{
			return Err(DecodeError::Length);
		}
		let k = self.params.top_k as usize;
		if k > 0 {
			let mut sorted = Vec::with_capacity(k);
			for block in self.top_indices.chunks(k) {
				sorted.clear();
				sorted.extend_from_slice(block);
				sorted.sort_unstable();
				let repeated = sorted.windows(2).any(|pair| matches!(pair, [a, b] if a == b));
				if repeated || sorted.last().is_some_and(|i| *i >= self.width) {
					return Err(DecodeError::BadIndex);
				}
			}
		}
		Ok(())
	}

	/// The encoding described in the module docs.
	pub fn encode(&self) -> Vec<u8> {
		let width_bytes = index_bytes(self.width);
		let mut out =
			Vec::with_capacity(self.params.encoded_len(self.positions, self.width).min(1 << 24));
		out.extend_from_slice(&MAGIC);
		out.push(VERSION);
		out.push(self.kind as u8);
		out.extend_from_slice(&self.width.to_le_bytes());
		out.extend_from_slice(&self.positions.to_le_bytes());
		out.extend_from_slice(&self.params.block.to_le_bytes());
		out.extend_from_slice(&self.params.top_k.to_le_bytes());
		out.push(self.params.projections);
		out.push(width_bytes as u8);
		let m = self.params.projections as usize;
		let k = self.params.top_k as usize;
		for b in 0..self.blocks() {
			for p in self.block_range(b) {
				push_i16(&mut out, self.log_rms.get(p).copied().unwrap_or(0));
				let row = p.saturating_mul(m);
				for j in 0..m {
					let value = self.projections.get(row.saturating_add(j)).copied();
					push_i16(&mut out, value.unwrap_or(0));
				}
			}
			let entries = b.saturating_mul(k)..b.saturating_add(1).saturating_mul(k);
			for e in entries.clone() {
				let index = self.top_indices.get(e).copied().unwrap_or(0);
				if width_bytes == 2 {
					out.extend_from_slice(&(index as u16).to_le_bytes());
				} else {
					out.extend_from_slice(&index.to_le_bytes());
				}
			}
			for e in entries {
				push_i16(&mut out, self.top_values.get(e).copied().unwrap_or(0));
			}
		}
		out
	}

	/// Parses and checks an encoded fingerprint.
	pub fn decode(bytes: &[u8]) -> Result<Fingerprint, DecodeError> {
		if bytes.len() < HEADER_BYTES || bytes.get(..4) != Some(&MAGIC[..]) {
			return Err(DecodeError::NotAFingerprint);
		}
		let mut reader = Reader { bytes, at: 4 };
		let version = reader.u8()?;
		if version != VERSION {
			return Err(DecodeError::UnsupportedVersion(version));
		}
		let kind = match reader.u8()? {
			0 => RowKind::Hidden,
			1 => RowKind::Logits,
			other => return Err(DecodeError::UnknownKind(other)),
		};
		let width = reader.u32()?;
		let positions = reader.u32()?;
		let params = FingerprintParams {
			block: reader.u16()?,
			top_k: reader.u16()?,
			projections: reader.u8()?,
		};
		let width_bytes = reader.u8()? as usize;
		params.validate().map_err(DecodeError::Params)?;
		if width == 0 || positions == 0 || params.top_k as u32 > width {
			return Err(DecodeError::BadHeader);
		}
		if width_bytes != index_bytes(width) {
			return Err(DecodeError::BadHeader);
		}
		// The length is checked before anything is allocated from the header's numbers.
		if params.encoded_len(positions, width) != bytes.len() {
			return Err(DecodeError::Length);
		}
		let (m, k) = (params.projections as usize, params.top_k as usize);
		let mut fingerprint = Fingerprint {
			kind,
			width,
			positions,
			params,
			log_rms: Vec::with_capacity(positions as usize),
			projections: Vec::with_capacity((positions as usize).saturating_mul(m)),
			top_indices: Vec::new(),
			top_values: Vec::new(),
		};
		let blocks = fingerprint.blocks();
		fingerprint.top_indices.reserve(blocks.saturating_mul(k));
		fingerprint.top_values.reserve(blocks.saturating_mul(k));
		for b in 0..blocks {
			for _ in fingerprint.block_range(b) {
				fingerprint.log_rms.push(reader.i16()?);
				for _ in 0..m {
					fingerprint.projections.push(reader.i16()?);
				}
			}
			for _ in 0..k {
				let index = if width_bytes == 2 { reader.u16()? as u32 } else { reader.u32()? };
				fingerprint.top_indices.push(index);
			}
			for _ in 0..k {
				fingerprint.top_values.push(reader.i16()?);
			}
		}
		if reader.at != bytes.len() {
			return Err(DecodeError::Length);
		}
		fingerprint.check()?;
		Ok(fingerprint)
	}
}

fn push_i16(out: &mut Vec<u8>, value: i16) {
	out.extend_from_slice(&value.to_le_bytes());
}

/// Bounds-checked little-endian reads.
struct Reader<'a> {
	bytes: &'a [u8],
	at: usize,
}

impl Reader<'_> {
	fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
		let end = self.at.checked_add(N).ok_or(DecodeError::Length)?;
		let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Length)?;
		let mut out = [0u8; N];
		out.copy_from_slice(slice);
		self.at = end;
		Ok(out)
	}

	fn u8(&mut self) -> Result<u8, DecodeError> {
		let [byte] = self.take::<1>()?;
		Ok(byte)
	}

	fn u16(&mut self) -> Result<u16, DecodeError> {
		Ok(u16::from_le_bytes(self.take()?))
	}

	fn i16(&mut self) -> Result<i16, DecodeError> {
		Ok(i16::from_le_bytes(self.take()?))
	}

	fn u32(&mut self) -> Result<u32, DecodeError> {
		Ok(u32::from_le_bytes(self.take()?))
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use alloc::vec;

	pub(crate) fn sample(positions: u32, width: u32, params: FingerprintParams) -> Fingerprint {
		let blocks = (positions as usize).div_ceil(params.block as usize);
		let k = params.top_k_for(width) as usize;
		let m = params.projections as usize;
		Fingerprint {
			kind: RowKind::Hidden,
			width,
			positions,
			params: FingerprintParams { top_k: k as u16, ..params },
			log_rms: (0..positions).map(|p| p as i16 * 3 - 40).collect(),
			projections: (0..positions as usize * m).map(|i| (i as i16).wrapping_mul(77)).collect(),
			top_indices: (0..blocks)
				.flat_map(|b| (0..k as u32).map(move |j| (j * 7 + b as u32) % width))
				.collect(),
			top_values: (0..blocks * k).map(|i| i as i16 - 100).collect(),
		}
	}

	#[test]
	fn round_trips_and_has_the_size_it_promises() {
		let params = FingerprintParams::DEFAULT;
		for (positions, width) in [(1, 64), (31, 64), (32, 128), (100, 4096), (40, 70_000), (5, 3)]
		{
			let fp = sample(positions, width, params);
			fp.check().unwrap();
			let bytes = fp.encode();
			assert_eq!(bytes.len(), params.encoded_len(positions, width));
			assert_eq!(Fingerprint::decode(&bytes).unwrap(), fp);
		}
		// 320 bytes per full block of hidden states with the defaults.
		let one_block = params.encoded_len(32, 4096) - HEADER_BYTES;
		assert_eq!(one_block, 320);
	}

	#[test]
	fn every_truncation_and_bad_header_is_an_error() {
		let bytes = sample(70, 64, FingerprintParams::DEFAULT).encode();
		for cut in 0..bytes.len() {
			assert!(Fingerprint::decode(&bytes[..cut]).is_err(), "cut at {cut}");
		}
		let mut longer = bytes.clone();
		longer.push(0);
		assert_eq!(Fingerprint::decode(&longer), Err(DecodeError::Length));
		let with = |at: usize, value: u8| {
			let mut bad = bytes.clone();
			bad[at] = value;
			Fingerprint::decode(&bad)
		};
		assert_eq!(with(4, 1), Err(DecodeError::UnsupportedVersion(1)));
		assert_eq!(with(5, 9), Err(DecodeError::UnknownKind(9)));
		assert_eq!(with(19, 4), Err(DecodeError::BadHeader));
		assert!(matches!(with(18, 0), Err(DecodeError::Params(ParamsError::Projections))));
		// A huge position count in the header fails on length before allocating.
		let mut huge = bytes.clone();
		huge[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
		assert_eq!(Fingerprint::decode(&huge), Err(DecodeError::Length));
	}

	#[test]
	fn repeated_or_outside_indices_are_refused() {
		let mut fp = sample(32, 64, FingerprintParams::DEFAULT);
		fp.top_indices[1] = fp.top_indices[0];
		assert_eq!(Fingerprint::decode(&fp.encode()), Err(DecodeError::BadIndex));
		let mut fp = sample(32, 64, FingerprintParams::DEFAULT);
		fp.top_indices[3] = 64;
		assert_eq!(Fingerprint::decode(&fp.encode()), Err(DecodeError::BadIndex));
	}

	#[test]
	fn random_bytes_never_panic() {
		let mut state = 1u64;
		let valid = sample(40, 64, FingerprintParams::DEFAULT).encode();
		for round in 0..20_000u64 {
			state = crate::splitmix64(state ^ round);
			let mut bytes =
				if round % 2 == 0 { valid.clone() } else { vec![0u8; (state % 400) as usize] };
			for _ in 0..(state % 8) {
				state = crate::splitmix64(state);
				let at = (state as usize) % bytes.len().max(1);
				if let Some(byte) = bytes.get_mut(at) {
					*byte = (state >> 40) as u8;
				}
			}
			if round % 3 == 0 && bytes.len() >= 4 {
				bytes[..4].copy_from_slice(&MAGIC);
			}
			let _ = Fingerprint::decode(&bytes);
		}
	}
}
