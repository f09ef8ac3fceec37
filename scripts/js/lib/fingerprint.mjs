// Activation fingerprints in `dllm-fingerprint`'s encoding (version 2), for tests that
// play miners with signed extrinsics: the chain decodes and compares what they reveal.
// Layout (little endian): "DLFP", version u8, kind u8 (0 hidden, 1 logits), width u32,
// positions u32, block u16, top_k u16, projections u8, index bytes u8; then per block:
// per position log-RMS i16 and `projections` i16, `top_k` indices (u16 when width ≤ 65536,
// else u32), `top_k` value codes i16.

/** The registry's fingerprint parameters (`FingerprintParams::DEFAULT`). */
export const PARAMS = { block: 32, topK: 16, projections: 3 };

/**
 * An encoded fingerprint of `positions` rows of `width` with made-up but well-formed
 * codes; `shift` moves every code (0 and small shifts agree under the tolerance, large
 * ones do not). `kind`: 'hidden' or 'logits'.
 */
export function sketch({ kind = 'hidden', width, positions, shift = 0 }) {
  const { block, projections } = PARAMS;
  const topK = Math.min(PARAMS.topK, width);
  const indexBytes = width <= 1 << 16 ? 2 : 4;
  const bytes = [];
  const u8 = (v) => bytes.push(v & 0xff);
  const u16 = (v) => { u8(v); u8(v >> 8); };
  const u32 = (v) => { u16(v & 0xffff); u16(v >>> 16); };
  for (const c of 'DLFP') u8(c.charCodeAt(0));
  u8(2);
  u8(kind === 'logits' ? 1 : 0);
  u32(width);
  u32(positions);
  u16(block);
  u16(topK);
  u8(projections);
  u8(indexBytes);
  const blocks = Math.ceil(positions / block);
  for (let b = 0; b < blocks; b++) {
    for (let p = b * block; p < Math.min((b + 1) * block, positions); p++) {
      u16(300 + p + shift);
      for (let j = 0; j < projections; j++) u16((p * projections + j) * 7 - 40 + shift);
    }
    for (let i = 0; i < topK; i++) {
      const index = (i * 3 + Math.abs(shift)) % width;
      if (indexBytes === 2) u16(index); else u32(index);
    }
    for (let i = 0; i < topK; i++) u16(400 - i * 5 + shift);
  }
  return Uint8Array.from(bytes);
}
