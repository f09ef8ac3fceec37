//! One Mistral decoder layer built from candle-nn parts: RMSNorm, grouped-query
//! attention with RoPE, a KV cache and sliding-window masking, and the SwiGLU MLP.

use crate::{
	config::MistralConfig, device::round_through, error::Result, linear::ShardLinear,
	rope::RotaryEmbedding, weights::ShardTensors,
};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::RmsNorm;

/// Keys and values a layer has cached for one session.
#[derive(Debug, Clone, Default)]
pub struct LayerKvCache {
	/// [1, kv_heads, len, head_dim] keys (after RoPE) and values.
	kv: Option<(Tensor, Tensor)>,
	/// Absolute position of the first cached entry.
	start: usize,
}

impl LayerKvCache {
	/// Number of cached positions.
	pub fn len(&self) -> usize {
		self.kv.as_ref().map_or(0, |(k, _)| k.dims()[2])
	}

	/// Whether nothing is cached.
	pub fn is_empty(&self) -> bool {
		self.len() == 0
	}
}

/// The SwiGLU MLP.
#[derive(Debug, Clone)]
struct Mlp {
	gate_proj: ShardLinear,
	up_proj: ShardLinear,
	down_proj: ShardLinear,
	round: Option<DType>,
}

impl Mlp {
	fn forward(&self, xs: &Tensor) -> Result<Tensor> {
		let r = |t| round_through(t, self.round);
		let gate = r(candle_nn::ops::silu(&r(self.gate_proj.forward(xs)?)?)?)?;
		let up = r(self.up_proj.forward(xs)?)?;
		r(self.down_proj.forward(&r((gate * up)?)?)?)
	}
}

/// Grouped-query self-attention.
#[derive(Debug, Clone)]
struct Attention {
	q_proj: ShardLinear,
	k_proj: ShardLinear,
	v_proj: ShardLinear,
	o_proj: ShardLinear,
	num_heads: usize,
	num_kv_heads: usize,
	head_dim: usize,
	sliding_window: Option<usize>,
	/// Emulated storage dtype of every intermediate result (see `ComputeFormat`).
	round: Option<DType>,
}

impl Attention {
	/// xs: [1, seq, hidden] at positions `offset..offset + seq` -> [1, seq, hidden].
	fn forward(
		&self,
		xs: &Tensor,
		offset: usize,
		rope: &RotaryEmbedding,
		cache: &mut LayerKvCache,
	) -> Result<Tensor> {
		let r = |t| round_through(t, self.round);
		let (batch, seq, _) = xs.dims3()?;
		let q =
			r(self.q_proj.forward(xs)?)?.reshape((batch, seq, self.num_heads, self.head_dim))?;
		let k =
			r(self.k_proj.forward(xs)?)?.reshape((batch, seq, self.num_kv_heads, self.head_dim))?;
		let v =
			r(self.v_proj.forward(xs)?)?.reshape((batch, seq, self.num_kv_heads, self.head_dim))?;
		// [1, heads, seq, head_dim]
		let q = q.transpose(1, 2)?.contiguous()?;
		let k = k.transpose(1, 2)?.contiguous()?;
		let v = v.transpose(1, 2)?.contiguous()?;
		let (q, k) = rope.apply(&q, &k, offset)?;
		let (q, k) = (r(q)?, r(k)?);

		let (keys, values, key_start) = match cache.kv.take() {
			Some((prev_k, prev_v)) => {
				(Tensor::cat(&[&prev_k, &k], 2)?, Tensor::cat(&[&prev_v, &v], 2)?, cache.start)
			}
			None => (k, v, offset),
		};
		let num_keys = keys.dim(2)?;
		let mask = attention_mask(
			seq,
			offset,
			key_start,
			num_keys,
			self.sliding_window,
			q.dtype(),
			q.device(),
		)?;

		let groups = self.num_heads / self.num_kv_heads;
		let keys_rep = repeat_kv(keys.clone(), groups)?;
		let values_rep = repeat_kv(values.clone(), groups)?;
		store_in_cache(cache, keys, values, key_start, offset + seq, self.sliding_window)?;

		let scale = 1f64 / (self.head_dim as f64).sqrt();
		// [1, heads, seq, keys]
		let scores = r((r(q.matmul(&keys_rep.t()?)?)? * scale)?)?;
		let scores = match mask {
			Some(mask) => r(scores.broadcast_add(&mask)?)?,
			None => scores,
		};
		let weights = r(candle_nn::ops::softmax_last_dim(&scores)?)?;
		let out = r(weights.matmul(&values_rep)?)?; // [1, heads, seq, head_dim]
		let out = out.transpose(1, 2)?.reshape((batch, seq, self.num_heads * self.head_dim))?;
		r(self.o_proj.forward(&out)?)
	}
}

/// Each of the `groups`-fold shared key/value heads repeated for its query heads:
/// [b, kv_heads, seq, head_dim] -> [b, kv_heads * groups, seq, head_dim], contiguous.
/// Concatenating along the sequence axis and reshaping puts each head's copies side by
/// side with one contiguous copy (a broadcast would copy strided).
fn repeat_kv(xs: Tensor, groups: usize) -> Result<Tensor> {
	if groups == 1 {
		return Ok(xs.contiguous()?);
	}
	let (batch, kv_heads, seq, head_dim) = xs.dims4()?;
	let copies = vec![&xs; groups];
	Ok(Tensor::cat(&copies, 2)?.reshape((batch, kv_heads * groups, seq, head_dim))?)
}

/// Stores keys/values covering `key_start..end`, dropping entries no future query can
/// see: with window W, a query at position p >= end sees keys after p - W, so only the
/// last W - 1 matter. Trimming copies, so it happens only once the cache holds 2W.
fn store_in_cache(
	cache: &mut LayerKvCache,
	keys: Tensor,
	values: Tensor,
	key_start: usize,
	end: usize,
	window: Option<usize>,
) -> Result<()> {
	let len = keys.dim(2)?;
	let keep = match window {
		Some(w) if len >= 2 * w => w - 1,
		_ => len,
	};
	if keep == 0 {
		cache.kv = None;
		cache.start = end;
	} else if keep < len {
		let drop = len - keep;
		cache.kv = Some((
			keys.narrow(2, drop, keep)?.contiguous()?,
			values.narrow(2, drop, keep)?.contiguous()?,
		));
		cache.start = key_start + drop;
	} else {
		cache.kv = Some((keys, values));
		cache.start = key_start;
	}
	Ok(())
}

/// Additive mask [seq, keys] for queries at `offset..offset + seq` over keys at
/// `key_start..key_start + keys`: a query at p sees key j iff j <= p and p - j < window
/// (Hugging Face's sliding-window rule). `None` when every key is visible.
pub fn attention_mask(
	seq: usize,
	offset: usize,
	key_start: usize,
	keys: usize,
	window: Option<usize>,
	dtype: DType,
	device: &Device,
) -> Result<Option<Tensor>> {
	let visible = |p: usize, j: usize| j <= p && window.is_none_or(|w| p - j < w);
	let all_visible = (0..seq).all(|i| {
		let p = offset + i;
		// Keys are contiguous, so checking both ends of each row suffices.
		visible(p, key_start) && visible(p, key_start + keys - 1)
	});
	if all_visible {
		return Ok(None);
	}
	let mut mask = Vec::with_capacity(seq * keys);
	for i in 0..seq {
		let p = offset + i;
		mask.extend((0..keys).map(|j| {
			if visible(p, key_start + j) {
				0f32
			} else {
				f32::NEG_INFINITY
			}
		}));
	}
	Ok(Some(Tensor::from_vec(mask, (seq, keys), device)?.to_dtype(dtype)?))
}

/// One decoder layer.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
	input_layernorm: RmsNorm,
	self_attn: Attention,
	post_attention_layernorm: RmsNorm,
	mlp: Mlp,
	round: Option<DType>,
}

impl DecoderLayer {
	/// Builds layer `index` from loaded tensors; with `round`, every intermediate result
	/// is rounded to that dtype (emulating a device that stores it).
	pub fn new(
		config: &MistralConfig,
		index: usize,
		tensors: &mut ShardTensors,
		round: Option<DType>,
	) -> Result<Self> {
		let prefix = format!("model.layers.{index}");
		let mut linear = |name: &str| -> Result<ShardLinear> {
			Ok(ShardLinear::new(tensors.take(&format!("{prefix}.{name}.weight"))?))
		};
		let self_attn = Attention {
			q_proj: linear("self_attn.q_proj")?,
			k_proj: linear("self_attn.k_proj")?,
			v_proj: linear("self_attn.v_proj")?,
			o_proj: linear("self_attn.o_proj")?,
			num_heads: config.num_attention_heads,
			num_kv_heads: config.num_kv_heads(),
			head_dim: config.head_dim(),
			sliding_window: config.sliding_window,
			round,
		};
		let mlp = Mlp {
			gate_proj: linear("mlp.gate_proj")?,
			up_proj: linear("mlp.up_proj")?,
			down_proj: linear("mlp.down_proj")?,
			round,
		};
		let eps = config.rms_norm_eps;
		Ok(DecoderLayer {
			input_layernorm: RmsNorm::new(
				tensors.take(&format!("{prefix}.input_layernorm.weight"))?,
				eps,
			),
			self_attn,
			post_attention_layernorm: RmsNorm::new(
				tensors.take(&format!("{prefix}.post_attention_layernorm.weight"))?,
				eps,
			),
			mlp,
			round,
		})
	}

	/// xs: [1, seq, hidden] at positions `offset..` -> [1, seq, hidden].
	pub fn forward(
		&self,
		xs: &Tensor,
		offset: usize,
		rope: &RotaryEmbedding,
		cache: &mut LayerKvCache,
	) -> Result<Tensor> {
		let r = |t| round_through(t, self.round);
		let residual = xs;
		let h = r(self.input_layernorm.forward(xs)?)?;
		let h = self.self_attn.forward(&h, offset, rope, cache)?;
		let h = r((h + residual)?)?;
		let residual = &h;
		let out = self.mlp.forward(&r(self.post_attention_layernorm.forward(&h)?)?)?;
		r((residual + out)?)
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	fn mask_values(
		seq: usize,
		offset: usize,
		start: usize,
		keys: usize,
		w: Option<usize>,
	) -> Option<Vec<Vec<f32>>> {
		attention_mask(seq, offset, start, keys, w, DType::F32, &Device::Cpu)
			.unwrap()
			.map(|m| m.to_vec2().unwrap())
	}

	#[test]
	fn causal_and_sliding_masks() {
		// Prefill of 4 without a window: causal.
		let m = mask_values(4, 0, 0, 4, None).unwrap();
		assert!(m[0][1].is_infinite() && m[3][0] == 0.0 && m[3][3] == 0.0);
		// Window 2: position 3 sees 2 and 3 only.
		let m = mask_values(4, 0, 0, 4, Some(2)).unwrap();
		assert_eq!(
			m[3].iter().map(|v| v.is_finite()).collect::<Vec<_>>(),
			vec![false, false, true, true]
		);
		// Decode of one token over a cache inside the window: no mask needed.
		assert!(mask_values(1, 5, 3, 3, Some(4)).is_none());
		// Decode over a cache longer than the window: the oldest key is hidden.
		let m = mask_values(1, 6, 0, 7, Some(4)).unwrap();
		assert_eq!(m[0].iter().filter(|v| v.is_finite()).count(), 4);
	}
}
