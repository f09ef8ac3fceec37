// Proof-of-AI-work tasks from polkadot-js: quote, submit a prompt, follow it to its
// result; and, for miners (and tests that play them), read assignments, commit and
// reveal. Everything goes through metadata: runtime API `PoawApi` via `api.call`,
// calls via `api.tx.poaw`, storage via `api.query.poaw`.

import { blake2AsU8a } from '@polkadot/util-crypto';
import { stringToU8a, u8aConcat, u8aToHex } from '@polkadot/util';

import { submit } from './experts.mjs';

/** Tokens the chain counts for a prompt of `bytes` bytes (it cannot tokenize). */
export function promptTokenBound(bytes) {
  return bytes + 2;
}

/** UTF-8 length of a prompt. */
export function byteLength(prompt) {
  return new TextEncoder().encode(prompt).length;
}

/**
 * The least `max_fee` `submit_task` accepts now for `prompt` and `maxTokens` (with
 * `generators` above 1, `submit_task_with_generators` for that many):
 * { maxFee, redundancy, pricePerTokenLayer, tokens, layers } (BigInt amounts), or throws
 * with the QuoteError name (UnknownModel, ModelNotActive, NoMinersAvailable).
 */
export async function quote(api, model, prompt, maxTokens, generators = 1) {
  const tokens = promptTokenBound(byteLength(prompt));
  const result =
    generators === 1
      ? await api.call.poawApi.quote(model, tokens, maxTokens)
      : await api.call.poawApi.quoteGenerators(model, tokens, maxTokens, generators);
  if (result.isErr) throw new Error(`no quote: ${result.asErr.type}`);
  const q = result.asOk;
  return {
    maxFee: q.maxFee.toBigInt(),
    redundancy: q.redundancy.toNumber(),
    pricePerTokenLayer: q.pricePerTokenLayer.toBigInt(),
    tokens: q.tokens.toNumber(),
    layers: q.layers.toNumber(),
    mode: q.mode.type,
  };
}

/** Greedy sampling with a seed: what a test or a first try wants. */
export const GREEDY = { temperatureMilli: 0, topK: 0, topP: 1_000_000_000, seed: 0 };

/**
 * Submits a task. `options`: { model, prompt, maxTokens, sampling, maxFee, domain,
 * generators } (`generators` above 1: that many generators, each checked by the verifier).
 * Resolves { ok, error, task, events }: `task` is the new id when accepted.
 */
export async function submitTask(api, signer, options) {
  const sampling = { ...GREEDY, ...(options.sampling ?? {}) };
  const args = [
    options.model,
    options.prompt,
    options.maxTokens,
    sampling,
    options.maxFee,
    options.domain ?? null,
  ];
  const generators = options.generators ?? 1;
  const tx =
    generators === 1
      ? api.tx.poaw.submitTask(...args)
      : api.tx.poaw.submitTaskWithGenerators(...args, generators);
  const result = await submit(api, tx, signer);
  const submitted = result.events.find(({ event }) => api.events.poaw.TaskSubmitted.is(event));
  return { ...result, task: submitted ? submitted.event.data.task.toNumber() : null };
}

/** A task with prompt, slots and outputs (text decoded), or null. */
export async function taskDetails(api, task) {
  const details = await api.call.poawApi.task(task);
  if (details.isNone) return null;
  const d = details.unwrap();
  return {
    status: d.task.status.type,
    task: d.task.toJSON(),
    settlement: d.task.settlement.isSome ? d.task.settlement.unwrap().toJSON() : null,
    slots: d.slots.map((slot) => ({
      pipeline: slot.pipeline.toNumber(),
      chunk: slot.chunk.toNumber(),
      expert: slot.expert.toString(),
      role: slot.role.type,
      format: slot.format.type,
      threshold: slot.threshold.toBigInt(),
      state: slot.state.type,
    })),
    outputs: d.outputs.map((out) => ({
      pipeline: out.pipeline.toNumber(),
      promptTokens: out.promptTokens.toNumber(),
      tokens: out.tokens.map((t) => t.toNumber()),
      text: new TextDecoder().decode(out.text.toU8a(true)),
      // `out.hash` would be the codec's own hash of the whole struct, not the field.
      hash: out.toJSON().hash,
    })),
  };
}

const FINAL = new Set(['Completed', 'Expired', 'Disputed']);

/**
 * The generation record (`dllm-infer generate --record`'s JSON, docs/verification.md) of
 * a prefill task whose generator revealed, built from what the chain keeps while the
 * result is retained: the model's shape and chunks, the task's sampling, the generator's
 * published output and its slots' revealed fingerprints (the last chunk's covers its
 * logits only). `promptTokens` are the prompt's token ids: the chain keeps only their
 * count, and checks it. `dllm-infer verify --model DIR --record FILE` audits the result.
 */
export async function generationRecord(api, task, promptTokens) {
  const found = await api.call.poawApi.task(task);
  if (found.isNone) throw new Error(`task ${task} is not on chain`);
  const details = found.unwrap();
  const info = details.task;
  const model = (await api.query.models.models(info.model)).unwrap().spec;
  const output = details.outputs.find((out) => out.pipeline.toNumber() === 0);
  if (!output) throw new Error(`task ${task} has no published output`);
  if (output.promptTokens.toNumber() !== promptTokens.length) {
    throw new Error(`the chain counts ${output.promptTokens.toNumber()} prompt tokens, not ${promptTokens.length}`);
  }
  const chunkCount = model.chunks.length;
  const fingerprints = [];
  for (const [index, slot] of details.slots.entries()) {
    if (slot.role.type !== 'Generator' || !slot.state.isRevealed) continue;
    const bytes = await api.query.poaw.fingerprints(task, index);
    if (bytes.isNone) throw new Error(`slot ${index} of task ${task}: no fingerprint kept`);
    fingerprints[slot.chunk.toNumber()] = { hex: bytes.unwrap().toHex(), format: slot.format.type };
  }
  const chunks = model.chunks.map((chunk, i) => {
    const fingerprint = fingerprints[i];
    if (!fingerprint) throw new Error(`task ${task}: the generator's chunk ${i} did not reveal`);
    const last = i === chunkCount - 1;
    return {
      layers: `${chunk.startLayer.toNumber()}..${chunk.endLayer.toNumber()}`,
      weight_hash: chunk.weightsHash.toHex(),
      ...(last ? { logits: fingerprint.hex } : { hidden: fingerprint.hex }),
    };
  });
  const format = fingerprints[0].format;
  const profile = model.numerics.find((n) => n.format.type === format) ?? model.numerics[0];
  const params = profile.verification.fingerprint;
  const sampling = info.sampling;
  const tokens = output.tokens.map((t) => t.toNumber());
  const maxTokens = info.maxTokens.toNumber();
  const topP = sampling.topP.toNumber();
  return {
    format: 'dllm-generation-record',
    version: 1,
    model: {
      num_layers: model.numLayers.toNumber(),
      hidden_size: model.hiddenSize.toNumber(),
      vocab_size: model.vocabSize.toNumber(),
    },
    chunks,
    prompt_tokens: promptTokens,
    generated_tokens: tokens,
    // As the miners map the chain's sampling (node/src/miner/compute.rs `sampling`).
    sampling: {
      temperature: sampling.temperatureMilli.toNumber() / 1000,
      top_k: sampling.topK.toNumber() > 0 ? sampling.topK.toNumber() : null,
      top_p: topP < 1_000_000_000 ? topP / 1_000_000_000 : null,
      seed: sampling.seed.toNumber(),
      max_tokens: maxTokens,
    },
    stop: tokens.length >= maxTokens ? 'max_tokens' : 'eos',
    fingerprint: {
      block: params.block.toNumber(),
      top_k: params.topK.toNumber(),
      projections: params.projections.toNumber(),
    },
    compute: format.toLowerCase(),
  };
}

/** Waits (following finalized blocks) until the task is Completed, Expired or Disputed. */
export async function waitForResult(api, task, timeoutMs = 600_000) {
  return new Promise((resolveResult, reject) => {
    let unsubscribe = () => {};
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`task ${task} not finished after ${timeoutMs / 1000} s`));
    }, timeoutMs);
    api.rpc.chain
      .subscribeFinalizedHeads(async () => {
        const details = await taskDetails(api, task);
        if (details && FINAL.has(details.status)) {
          clearTimeout(timer);
          unsubscribe();
          resolveResult(details);
        }
      })
      .then((unsub) => {
        unsubscribe = unsub;
      })
      .catch(reject);
  });
}

/**
 * Follows `task` through `dllm_subscribeTask`: calls `onToken({ index, token, text })` for
 * each streamed token; resolves { tokens, text, final } once the chain's verdict comes
 * (`final`: { status, fee, refunded, miners, community, output, tokens }), or rejects
 * with the node's error (an unknown task) or after `timeoutMs`.
 */
export function streamTask(api, task, { onToken = () => {}, timeoutMs = 600_000 } = {}) {
  // The node ends the subscription after the verdict; unsubscribing then may fail.
  const stop = (unsub) => Promise.resolve().then(unsub).catch(() => {});
  return new Promise((resolveStream, reject) => {
    const tokens = [];
    let unsubscribe = null;
    let done = false;
    const finish = (outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (unsubscribe) stop(unsubscribe);
      outcome();
    };
    const timer = setTimeout(
      () => finish(() => reject(new Error(`task ${task}: no verdict streamed after ${timeoutMs / 1000} s`))),
      timeoutMs,
    );
    api.rpc.dllm
      .subscribeTask(task, (event) => {
        const item = event.toJSON();
        if (item.type === 'token') {
          if (item.index !== tokens.length) {
            finish(() => reject(new Error(`task ${task}: token ${item.index} streamed after ${tokens.length} tokens`)));
            return;
          }
          tokens.push(item);
          onToken(item);
        } else if (item.type === 'final') {
          finish(() => resolveStream({ tokens, text: tokens.map((t) => t.text).join(''), final: item }));
        }
      })
      .then((unsub) => {
        unsubscribe = unsub;
        if (done) stop(unsub);
      })
      .catch((error) => finish(() => reject(error)));
  });
}

/** Slots `address` still has to commit or reveal. */
export async function assignments(api, address) {
  const list = await api.call.poawApi.assignments(address);
  return list.map((a) => ({
    task: a.task.toNumber(),
    pipeline: a.pipeline.toNumber(),
    chunk: a.chunk.toNumber(),
    chunks: a.chunks.toNumber(),
    state: a.state.type,
    mode: a.mode.type,
    role: a.role.type,
    prompt: new TextDecoder().decode(a.prompt.toU8a(true)),
    maxTokens: a.maxTokens.toNumber(),
    threshold: a.threshold.toBigInt(),
  }));
}

/** The hash a pipeline's miners attest: blake2-256 of SCALE (u32, Vec<u32>, Vec<u8>). */
export function outputHash(api, promptTokens, tokens, text) {
  const encoded = api.createType('(u32, Vec<u32>, Bytes)', [promptTokens, tokens, text]).toU8a();
  return u8aToHex(blake2AsU8a(encoded, 256));
}

/**
 * A miner's commitment: blake2-256 of SCALE (task u64, pipeline u8, chunk u32,
 * blake2-256(fingerprint), output hash, salt [u8; 32]).
 */
export function commitment(api, task, pipeline, chunk, fingerprint, outputHashHex, salt) {
  const parts = [
    api.createType('u64', task).toU8a(),
    api.createType('u8', pipeline).toU8a(),
    api.createType('u32', chunk).toU8a(),
    blake2AsU8a(fingerprint, 256),
    api.createType('H256', outputHashHex).toU8a(),
    salt,
  ];
  return u8aToHex(blake2AsU8a(u8aConcat(...parts), 256));
}

/** Bytes (Uint8Array, Buffer or hex) as hex, which polkadot-js encodes unambiguously. */
function hex(bytes) {
  return typeof bytes === 'string' ? bytes : u8aToHex(Uint8Array.from(bytes));
}

/**
 * What a verifier's or referee's last chunk commits to instead of the output hash:
 * blake2-256 of SCALE (b"dllm-verdict" as 12 raw bytes, output hash, accepted bool).
 */
export function verdictHash(api, outputHashHex, accepted) {
  const encoded = u8aConcat(
    stringToU8a('dllm-verdict'),
    api.createType('H256', outputHashHex).toU8a(),
    Uint8Array.of(accepted ? 1 : 0),
  );
  return u8aToHex(blake2AsU8a(encoded, 256));
}

export function commit(api, signer, task, pipeline, chunk, hash) {
  return submit(api, api.tx.poaw.commit(task, pipeline, chunk, hash), signer);
}

/** The generator's last chunk (prefill verification): commits and publishes the output. */
export function commitOutput(api, signer, task, pipeline, chunk, hash, output) {
  const full = { Full: { promptTokens: output.promptTokens, tokens: output.tokens, text: output.text } };
  return submit(api, api.tx.poaw.commitOutput(task, pipeline, chunk, hash, full), signer);
}

/**
 * Reveals a slot; `output` is { promptTokens, tokens, text } for a redundant last chunk,
 * { verdict: bool } for a verifier's or referee's last chunk, else the output hash.
 * `inputCheck` (the disputed chunk's referee only): { Withheld: { side } } or
 * { Checked: { side, recomputed, input } }, else null.
 */
export function reveal(api, signer, slot, fingerprint, output, salt, inputCheck = null) {
  const claim =
    typeof output === 'string'
      ? { Hash: output }
      : output.verdict !== undefined
        ? { Verdict: { accepted: output.verdict } }
        : { Full: { promptTokens: output.promptTokens, tokens: output.tokens, text: output.text } };
  const tx = api.tx.poaw.reveal(slot.task, slot.pipeline, slot.chunk, hex(fingerprint), claim, hex(salt), inputCheck);
  return submit(api, tx, signer);
}
