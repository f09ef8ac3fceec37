//! Rotary position embeddings (the "rotate half" layout of Hugging Face Mistral).

use crate::{config::MistralConfig, error::Result};
use candle_core::{DType, Device, Tensor};

/// Precomputed cos/sin tables for every position up to the model's maximum.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
	/// [max_positions, head_dim / 2]
	cos: Tensor,
	/// [max_positions, head_dim / 2]
	sin: Tensor,
}

impl RotaryEmbedding {
	/// Builds the tables in f32 (as transformers does) and stores them in `dtype`.
	pub fn new(config: &MistralConfig, dtype: DType, device: &Device) -> Result<Self> {
		let dim = config.head_dim();
		let theta = config.rope_theta()? as f32;
		let positions = config.max_position_embeddings;
		let inv_freq: Vec<f32> =
			(0..dim).step_by(2).map(|i| 1f32 / theta.powf(i as f32 / dim as f32)).collect();
		let half = inv_freq.len();
		let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
		let t = Tensor::arange(0u32, positions as u32, device)?
			.to_dtype(DType::F32)?
			.reshape((positions, 1))?;
		let freqs = t.matmul(&inv_freq)?;
		Ok(RotaryEmbedding {
			cos: freqs.cos()?.to_dtype(dtype)?,
			sin: freqs.sin()?.to_dtype(dtype)?,
		})
	}

	/// The tables rounded to `dtype` and back (a bf16 device stores them in bf16).
	pub fn rounded(self, dtype: Option<DType>) -> Result<Self> {
		use crate::device::round_through;
		Ok(RotaryEmbedding {
			cos: round_through(self.cos, dtype)?,
			sin: round_through(self.sin, dtype)?,
		})
	}

	/// Rotates q [b, heads, seq, d] and k [b, kv_heads, seq, d] for positions
	/// `offset..offset + seq`.
	pub fn apply(&self, q: &Tensor, k: &Tensor, offset: usize) -> Result<(Tensor, Tensor)> {
		let seq = q.dim(2)?;
		let cos = self.cos.narrow(0, offset, seq)?;
		let sin = self.sin.narrow(0, offset, seq)?;
		let q = candle_nn::rotary_emb::rope(&q.contiguous()?, &cos, &sin)?;
		let k = candle_nn::rotary_emb::rope(&k.contiguous()?, &cos, &sin)?;
		Ok((q, k))
	}
}
