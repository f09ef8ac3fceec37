// The expert registry from polkadot-js: register, serve chunks, bond, unbond, delegate,
// withdraw, and read an expert's state. Every action resolves once its block is final,
// with the decoded error name when the chain refused it.

import { describeDispatchError, explainDispatchError, sendAndFinalize } from './node.mjs';

/** 1 DLLM in plancks. */
export const UNIT = 10n ** 12n;

/** Plancks as DLLM for people: `1468235295n` → `0.001468235295 DLLM` (no trailing zeros). */
export function formatDllm(plancks) {
  if (plancks === null || plancks === undefined) return '–';
  const value = BigInt(plancks);
  const fraction = (value % UNIT).toString().padStart(12, '0').replace(/0+$/, '');
  return `${value / UNIT}${fraction ? `.${fraction}` : ''} DLLM`;
}

/**
 * Sends `tx` signed by `signer` and waits for finality.
 * Resolves { ok, error, explanation, events, blockHash }: `error` names a failed
 * dispatch (e.g. `experts.WeightsHashMismatch`), `explanation` adds the error's
 * documentation; `ok` is true when there is none.
 */
export async function submit(api, tx, signer) {
  const result = await sendAndFinalize(tx, signer);
  const error = describeDispatchError(api, result.dispatchError);
  return {
    ok: error === null,
    error,
    explanation: explainDispatchError(api, result.dispatchError),
    events: result.events,
    blockHash: result.blockHash,
  };
}

/** Registers `signer` as an expert. `profile`: { domains, peerId, price, capacity, commissionPercent }. */
export function registerExpert(api, signer, bond, profile) {
  const tx = api.tx.experts.registerExpert(
    bond,
    profile.domains,
    profile.peerId,
    profile.price,
    profile.capacity,
    Math.round(profile.commissionPercent * 10_000_000), // Perbill
  );
  return submit(api, tx, signer);
}

/**
 * Names `operator` (an address, or null to take the right back) as the key that signs
 * `signer`'s duties as a miner: the key its miner node holds instead of the expert's own.
 */
export function setOperator(api, signer, operator) {
  return submit(api, api.tx.experts.setOperator(operator), signer);
}

/** Changes `signer`'s asking price per token per layer, keeping the rest of its profile. */
export async function setPrice(api, signer, price) {
  const { profile } = (await api.query.experts.experts(signer.address)).unwrap();
  const tx = api.tx.experts.updateProfile(
    profile.domains,
    profile.peerId,
    price,
    profile.maxConcurrentTasks,
    profile.commission,
  );
  return submit(api, tx, signer);
}

/** The registered weight hash of a chunk, as hex. */
export async function chunkHash(api, model, chunk) {
  const info = await api.query.models.models(model);
  if (info.isNone) throw new Error(`model ${model} is not registered`);
  const chunks = info.unwrap().spec.chunks;
  if (chunk >= chunks.length) throw new Error(`model ${model} has no chunk ${chunk}`);
  return chunks[chunk].weightsHash.toHex();
}

/**
 * Serves a chunk computed in `format` ('F32', 'F16' or 'Bf16': the miner's `--dtype`, one
 * the model accepts); `weightsHash` defaults to the registered one (what a miner computes).
 */
export async function serveChunk(api, signer, model, chunk, weightsHash, format = 'F32') {
  const hash = weightsHash ?? (await chunkHash(api, model, chunk));
  return submit(api, api.tx.experts.serveChunk(model, chunk, hash, format), signer);
}

/** The chain's name of a `--dtype` (f32, f16, bf16). */
export function formatOf(dtype) {
  const format = { f32: 'F32', f16: 'F16', bf16: 'Bf16' }[String(dtype).toLowerCase()];
  if (!format) throw new Error(`unknown format ${dtype}: expected f32, f16 or bf16`);
  return format;
}

export function stopServing(api, signer, model, chunk) {
  return submit(api, api.tx.experts.stopServing(model, chunk), signer);
}

export function bondExtra(api, signer, amount) {
  return submit(api, api.tx.experts.bondExtra(amount), signer);
}

export function unbond(api, signer, amount) {
  return submit(api, api.tx.experts.unbond(amount), signer);
}

export function withdrawUnbonded(api, signer) {
  return submit(api, api.tx.experts.withdrawUnbonded(), signer);
}

export function delegate(api, signer, expert, amount) {
  return submit(api, api.tx.experts.delegate(expert, amount), signer);
}

export function undelegate(api, signer, expert, amount) {
  return submit(api, api.tx.experts.undelegate(expert, amount), signer);
}

export function deregister(api, signer) {
  return submit(api, api.tx.experts.deregister(), signer);
}

/** An expert's record as plain JSON (`null` if not registered), with its unbonding queue. */
export async function expertState(api, address) {
  const [expert, unbonding] = await Promise.all([
    api.query.experts.experts(address),
    api.query.experts.unbonding(address),
  ]);
  return {
    expert: expert.isSome ? expert.unwrap().toJSON() : null,
    unbonding: unbonding.toJSON(),
  };
}

/** What the experts pallet holds on `address`, by reason: { ExpertBond, Delegation, ... }. */
export async function heldByExperts(api, address) {
  const holds = await api.query.balances.holds(address);
  const out = {};
  for (const hold of holds) {
    if (hold.id.isExperts) out[hold.id.asExperts.type] = hold.amount.toBigInt();
  }
  return out;
}

/** Resolves when the chain's best block is at least `number`. */
export async function waitForBlock(api, number) {
  return new Promise((resolveWait, reject) => {
    let unsubscribe = () => {};
    api.rpc.chain
      .subscribeNewHeads((header) => {
        if (header.number.toNumber() >= number) {
          unsubscribe();
          resolveWait();
        }
      })
      .then((unsub) => {
        unsubscribe = unsub;
      })
      .catch(reject);
  });
}
