// Validators and nominators (pallet-staking and pallet-session; docs/operators.md, "A
// validator"): what `dllm stake validate|nominate|payout` and the tests call.

import { submit } from './experts.mjs';

/**
 * New session keys in the keystore of the node behind `api`, with the proof that
 * `owner` holds them (`author_rotateKeysWithOwner`, an unsafe RPC: the node must allow
 * it, as a node does for loopback clients by default; `rpc: DLLM_RPC` declares it).
 * Resolves { keys, proof } as hex.
 */
export async function rotateKeys(api, owner) {
  const generated = (await api.rpc.author.rotateKeysWithOwner(api.createType('AccountId', owner).toHex())).toJSON();
  return { keys: generated.keys, proof: generated.proof };
}

/** The stash's bonded ledger, or null. */
export async function ledger(api, stash) {
  const found = await api.query.staking.ledger(stash);
  return found.isSome ? found.unwrap() : null;
}

/**
 * Makes `signer` a validator candidate in one transaction: bonds `bond` (or adds it to
 * an existing bond; none: bonds nothing more), sets its session keys with their proof,
 * and asks to validate at `commissionPercent`.
 */
export async function validate(api, signer, { bond, keys, proof, commissionPercent }) {
  const calls = [...(await bondCalls(api, signer.address, bond))];
  calls.push(api.tx.session.setKeys(keys, proof));
  calls.push(api.tx.staking.validate({ commission: Math.round(commissionPercent * 10_000_000), blocked: false }));
  return submit(api, api.tx.utility.batchAll(calls), signer);
}

/** Backs `targets` with `signer`'s stake, bonding `bond` first (or adding it). */
export async function nominate(api, signer, { bond, targets }) {
  const calls = [...(await bondCalls(api, signer.address, bond)), api.tx.staking.nominate(targets)];
  return submit(api, api.tx.utility.batchAll(calls), signer);
}

/** Pays `validator` and its nominators their rewards of `era` (anyone may ask). */
export function payout(api, signer, validator, era) {
  return submit(api, api.tx.staking.payoutStakers(validator, era), signer);
}

async function bondCalls(api, stash, bond) {
  if (bond === undefined || bond === 0n) return [];
  if (await ledger(api, stash)) return [api.tx.staking.bondExtra(bond)];
  return [api.tx.staking.bond(bond, 'Staked')];
}
