//! The activation wire format between shards: versioned and self-describing.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | magic `DLLMACT\0` |
//! | 1 | version (1) |
//! | 1 | kind: 0 token ids, 1 hidden states, 2 logits |
//! | 1 | dtype: 0 u32, 1 f32, 2 f16, 3 bf16 |
//! | 1 | number of dimensions `n` |
//! | 8 | session id |
//! | 4 | position offset |
//! | 4 | number of positions |
//! | 4·n | dimensions |
//! | 8 | payload length in bytes |
//! | … | payload, row-major |
//! | 4 | CRC-32 of everything above |
//!
//! Token ids: shape [positions]. Hidden states: [1, positions, hidden]. Logits:
//! [rows, vocab] in f32. Decoding checks every field and never panics.

use crate::{
	error::{InferenceError, Result},
	shard::SessionId,
};
use candle_core::{DType, Device, Tensor};

/// Magic bytes opening every message.
pub const MAGIC: &[u8; 8] = b"DLLMACT\0";
/// Current version.
pub const VERSION: u8 = 1;
const HEADER_FIXED: usize = 8 + 1 + 1 + 1 + 1 + 8 + 4 + 4;

/// What a message carries.
#[derive(Debug, Clone)]
pub enum Payload {
	/// Token ids for the first shard.
	Tokens(Vec<u32>),
	/// Hidden states [1, positions, hidden].
	Hidden(Tensor),
	/// Logits [rows, vocab], f32.
	Logits(Tensor),
}

/// One message between pipeline stages.
#[derive(Debug, Clone)]
pub struct ActivationMessage {
	/// The session (task pipeline) it belongs to.
	pub session: SessionId,
	/// Absolute position of the first position carried.
	pub position_offset: u32,
	/// Number of positions carried.
	pub num_positions: u32,
	/// The data.
	pub payload: Payload,
}

fn wire_err(message: impl Into<String>) -> InferenceError {
	InferenceError::Wire(message.into())
}

fn dtype_code(dtype: DType) -> Result<u8> {
	match dtype {
		DType::U32 => Ok(0),
		DType::F32 => Ok(1),
		DType::F16 => Ok(2),
		DType::BF16 => Ok(3),
		other => Err(wire_err(format!("dtype {other:?} cannot be sent"))),
	}
}

impl ActivationMessage {
	/// Token ids starting at `offset`.
	pub fn tokens(session: SessionId, offset: usize, tokens: Vec<u32>) -> Result<Self> {
		Ok(ActivationMessage {
			session,
			position_offset: to_u32(offset, "position offset")?,
			num_positions: to_u32(tokens.len(), "number of positions")?,
			payload: Payload::Tokens(tokens),
		})
	}

	/// Hidden states [1, positions, hidden] starting at `offset`.
	pub fn hidden(session: SessionId, offset: usize, hidden: Tensor) -> Result<Self> {
		let positions = hidden.dims().get(1).copied().unwrap_or(0);
		Ok(ActivationMessage {
			session,
			position_offset: to_u32(offset, "position offset")?,
			num_positions: to_u32(positions, "number of positions")?,
			payload: Payload::Hidden(hidden),
		})
	}

	/// Logits [rows, vocab] for positions ending at `offset + positions`.
	pub fn logits(
		session: SessionId,
		offset: usize,
		positions: usize,
		logits: Tensor,
	) -> Result<Self> {
		Ok(ActivationMessage {
			session,
			position_offset: to_u32(offset, "position offset")?,
			num_positions: to_u32(positions, "number of positions")?,
			payload: Payload::Logits(logits),
		})
	}

	/// Checks the message belongs to `session` and starts at `offset`.
	pub fn expect(&self, session: SessionId, offset: usize) -> Result<()> {
		if self.session != session {
			return Err(wire_err(format!(
				"message is for session {}, expected {session}",
				self.session
			)));
		}
		if self.position_offset as usize != offset {
			return Err(wire_err(format!(
				"message starts at position {}, expected {offset}",
				self.position_offset
			)));
		}
		Ok(())
	}

	/// Serializes the message.
	pub fn encode(&self) -> Result<Vec<u8>> {
		let (kind, dtype, dims, payload): (u8, u8, Vec<usize>, Vec<u8>) = match &self.payload {
			Payload::Tokens(tokens) => {
				(0, 0, vec![tokens.len()], tokens.iter().flat_map(|t| t.to_le_bytes()).collect())
			}
			Payload::Hidden(t) => (1, dtype_code(t.dtype())?, t.dims().to_vec(), tensor_bytes(t)?),
			Payload::Logits(t) => (2, dtype_code(t.dtype())?, t.dims().to_vec(), tensor_bytes(t)?),
		};
		let mut out = Vec::with_capacity(HEADER_FIXED + 4 * dims.len() + 12 + payload.len());
		out.extend_from_slice(MAGIC);
		out.extend_from_slice(&[VERSION, kind, dtype, dims.len() as u8]);
		out.extend_from_slice(&self.session.to_le_bytes());
		out.extend_from_slice(&self.position_offset.to_le_bytes());
		out.extend_from_slice(&self.num_positions.to_le_bytes());
		for dim in &dims {
			out.extend_from_slice(&to_u32(*dim, "dimension")?.to_le_bytes());
		}
		out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
		out.extend_from_slice(&payload);
		let crc = crc32fast::hash(&out);
		out.extend_from_slice(&crc.to_le_bytes());
		// Re-validate so a sender can never emit what a receiver would refuse.
		Self::check_layout(&out)?;
		Ok(out)
	}

	/// Parses and checks a message; tensors are placed on `device`.
	pub fn decode(bytes: &[u8], device: &Device) -> Result<Self> {
		let layout = Self::check_layout(bytes)?;
		let payload = &bytes[layout.payload.clone()];
		let payload = match layout.kind {
			0 => Payload::Tokens(
				payload
					.chunks_exact(4)
					.map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
					.collect(),
			),
			1 => Payload::Hidden(tensor_from_bytes(payload, layout.dtype, &layout.dims, device)?),
			_ => Payload::Logits(tensor_from_bytes(payload, layout.dtype, &layout.dims, device)?),
		};
		Ok(ActivationMessage {
			session: layout.session,
			position_offset: layout.position_offset,
			num_positions: layout.num_positions,
			payload,
		})
	}

	fn check_layout(bytes: &[u8]) -> Result<Layout> {
		if bytes.len() < HEADER_FIXED + 12 {
			return Err(wire_err(format!("{} bytes is too short for a message", bytes.len())));
		}
		if &bytes[..8] != MAGIC {
			return Err(wire_err("not an activation message (bad magic)"));
		}
		let (version, kind, dtype, ndim) = (bytes[8], bytes[9], bytes[10], bytes[11] as usize);
		if version != VERSION {
			return Err(wire_err(format!(
				"version {version} is not supported (this node speaks {VERSION})"
			)));
		}
		let dtype = match dtype {
			0 => DType::U32,
			1 => DType::F32,
			2 => DType::F16,
			3 => DType::BF16,
			other => return Err(wire_err(format!("unknown dtype code {other}"))),
		};
		let read_u32 = |at: usize| {
			u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
		};
		let read_u64 = |at: usize| {
			let mut b = [0u8; 8];
			b.copy_from_slice(&bytes[at..at + 8]);
			u64::from_le_bytes(b)
		};
		let session = read_u64(12);
		let position_offset = read_u32(20);
		let num_positions = read_u32(24);
		let dims_end = HEADER_FIXED + 4 * ndim;
		if ndim == 0 || ndim > 4 || bytes.len() < dims_end + 12 {
			return Err(wire_err(format!("bad number of dimensions {ndim}")));
		}
		let dims: Vec<usize> = (0..ndim).map(|i| read_u32(HEADER_FIXED + 4 * i) as usize).collect();
		let payload_len = read_u64(dims_end);
		let payload_start = dims_end + 8;
		let expected_total =
			(payload_start as u64).checked_add(payload_len).and_then(|n| n.checked_add(4));
		if expected_total != Some(bytes.len() as u64) {
			return Err(wire_err(format!(
				"length mismatch: header says {payload_len} payload bytes, message has {}",
				bytes.len()
			)));
		}
		let crc_at = bytes.len() - 4;
		if crc32fast::hash(&bytes[..crc_at]) != read_u32(crc_at) {
			return Err(wire_err("checksum mismatch: the message is corrupt"));
		}
		match (kind, dtype, ndim) {
			(0, DType::U32, 1)
			| (1, DType::F32 | DType::F16 | DType::BF16, 3)
			| (2, DType::F32, 2) => {}
			_ => {
				return Err(wire_err(format!(
					"kind {kind} with dtype {dtype:?} and {ndim} dimensions"
				)))
			}
		}
		let positions = num_positions as usize;
		let shape_ok = match kind {
			0 => dims[0] == positions,
			1 => dims[0] == 1 && dims[1] == positions && dims[2] > 0,
			_ => dims[0] >= 1 && dims[0] <= positions.max(1) && dims[1] > 0,
		};
		if !shape_ok || positions == 0 {
			return Err(wire_err(format!("shape {dims:?} does not fit {positions} positions")));
		}
		let elements = dims.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d));
		let expected_bytes = elements.and_then(|e| e.checked_mul(dtype.size_in_bytes()));
		if expected_bytes != Some(payload_len as usize) {
			return Err(wire_err(format!(
				"payload of {payload_len} bytes does not match shape {dims:?} in {dtype:?}"
			)));
		}
		if (position_offset as u64) + (num_positions as u64) > u32::MAX as u64 {
			return Err(wire_err("positions overflow"));
		}
		Ok(Layout {
			kind,
			dtype,
			dims,
			session,
			position_offset,
			num_positions,
			payload: payload_start..crc_at,
		})
	}
}

struct Layout {
	kind: u8,
	dtype: DType,
	dims: Vec<usize>,
	session: SessionId,
	position_offset: u32,
	num_positions: u32,
	payload: std::ops::Range<usize>,
}

fn to_u32(value: usize, what: &str) -> Result<u32> {
	u32::try_from(value).map_err(|_| wire_err(format!("{what} {value} does not fit in 32 bits")))
}

fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>> {
	let flat = t.flatten_all()?;
	Ok(match t.dtype() {
		DType::F32 => flat.to_vec1::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
		DType::F16 => {
			flat.to_vec1::<half::f16>()?.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect()
		}
		DType::BF16 => {
			flat.to_vec1::<half::bf16>()?.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect()
		}
		other => return Err(wire_err(format!("dtype {other:?} cannot be sent"))),
	})
}

fn tensor_from_bytes(
	bytes: &[u8],
	dtype: DType,
	dims: &[usize],
	device: &Device,
) -> Result<Tensor> {
	let tensor = match dtype {
		DType::F32 => Tensor::from_vec(
			bytes
				.chunks_exact(4)
				.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
				.collect::<Vec<_>>(),
			dims,
			device,
		)?,
		DType::F16 => Tensor::from_vec(
			bytes
				.chunks_exact(2)
				.map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
				.collect::<Vec<_>>(),
			dims,
			device,
		)?,
		DType::BF16 => Tensor::from_vec(
			bytes
				.chunks_exact(2)
				.map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])))
				.collect::<Vec<_>>(),
			dims,
			device,
		)?,
		other => return Err(wire_err(format!("dtype {other:?} cannot be received"))),
	};
	Ok(tensor)
}

#[cfg(test)]
mod tests {
	use super::*;

	fn hidden_message() -> ActivationMessage {
		let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
		let t = Tensor::from_vec(data, (1, 3, 8), &Device::Cpu).unwrap();
		ActivationMessage::hidden(42, 7, t).unwrap()
	}

	#[test]
	fn round_trips_every_kind_and_dtype() {
		let msg = hidden_message();
		let bytes = msg.encode().unwrap();
		let back = ActivationMessage::decode(&bytes, &Device::Cpu).unwrap();
		back.expect(42, 7).unwrap();
		assert_eq!(back.num_positions, 3);
		let (Payload::Hidden(a), Payload::Hidden(b)) = (&msg.payload, &back.payload) else {
			panic!()
		};
		assert_eq!(a.to_vec3::<f32>().unwrap(), b.to_vec3::<f32>().unwrap());

		for dtype in [DType::F16, DType::BF16] {
			let Payload::Hidden(t) = &msg.payload else { panic!() };
			let m = ActivationMessage::hidden(1, 0, t.to_dtype(dtype).unwrap()).unwrap();
			let back = ActivationMessage::decode(&m.encode().unwrap(), &Device::Cpu).unwrap();
			let Payload::Hidden(b) = back.payload else { panic!() };
			assert_eq!(b.dtype(), dtype);
		}
		let tokens = ActivationMessage::tokens(9, 0, vec![1, 2, 3]).unwrap();
		let back = ActivationMessage::decode(&tokens.encode().unwrap(), &Device::Cpu).unwrap();
		assert!(matches!(back.payload, Payload::Tokens(ref t) if t == &vec![1, 2, 3]));
	}

	#[test]
	fn refuses_malformed_and_mismatched_messages() {
		let bytes = hidden_message().encode().unwrap();
		let decode = |b: &[u8]| {
			ActivationMessage::decode(b, &Device::Cpu).map(|_| ()).unwrap_err().to_string()
		};
		assert!(decode(&bytes[..10]).contains("too short"));
		let mut bad = bytes.clone();
		bad[0] = b'X';
		assert!(decode(&bad).contains("magic"));
		let mut bad = bytes.clone();
		bad[8] = 9;
		assert!(decode(&bad).contains("version"));
		let mut bad = bytes.clone();
		let last = bad.len() - 6;
		bad[last] ^= 0xff;
		assert!(decode(&bad).contains("checksum"));
		assert!(decode(&bytes[..bytes.len() - 1]).contains("length"));
		let msg = ActivationMessage::decode(&bytes, &Device::Cpu).unwrap();
		assert!(msg.expect(43, 7).is_err());
		assert!(msg.expect(42, 8).is_err());
	}

	#[test]
	fn never_panics_on_truncations_and_bit_flips() {
		let bytes = hidden_message().encode().unwrap();
		for cut in 0..bytes.len() {
			let _ = ActivationMessage::decode(&bytes[..cut], &Device::Cpu);
		}
		for at in 0..bytes.len() {
			for bit in 0..8 {
				let mut b = bytes.clone();
				b[at] ^= 1 << bit;
				assert!(ActivationMessage::decode(&b, &Device::Cpu).is_err(), "flip at {at}:{bit}");
			}
		}
	}
}
