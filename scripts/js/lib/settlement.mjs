// Balances around a task: transaction fees, pallet accounts and the payout that
// docs/protocol.md specifies, for tests and benchmarks that check money moved exactly.

import { stringToU8a, u8aConcat } from '@polkadot/util';
import { encodeAddress } from '@polkadot/util-crypto';

/** The task pallet's miner share: 85% as Perbill parts. */
export const MINER_SHARE_PARTS = 850_000_000n;

export function ceilDiv(a, b) {
  return (a + b - 1n) / b;
}

/** Free plus reserved (held) balance. */
export async function total(api, address) {
  const { data } = await api.query.system.account(address);
  return data.free.toBigInt() + data.reserved.toBigInt();
}

/**
 * The part of a transaction fee that goes to its block's author: the runtime's
 * `AUTHOR_FEE_SHARE` (20%, a Perbill, rounded to the nearest planck, halves down); the
 * rest goes to the community fund. Tips go to the author whole.
 */
export function authorShare(fee) {
  return fee / 5n + (fee % 5n >= 3n ? 1n : 0n);
}

/**
 * Transaction fees by account (a Map: address → net cost) and `toFund`, what of them the
 * community fund received.
 */
export class Fees extends Map {
  toFund = 0n;
}

/**
 * Adds the transaction fees in `events` to `into`: each payer's fee (its `actualFee`,
 * the tip included) as a cost; four fifths of the fee without the tip to `toFund`
 * (every block of these chains has an author); the author's fifth and the tip, when
 * `author` is given, as its negative cost.
 */
export function feesOf(api, events, into = new Fees(), author = undefined) {
  for (const { event } of events) {
    if (api.events.transactionPayment.TransactionFeePaid.is(event)) {
      const who = event.data.who.toString();
      const [paid, tip] = [event.data.actualFee.toBigInt(), event.data.tip.toBigInt()];
      const inclusion = paid - tip;
      into.set(who, (into.get(who) ?? 0n) + paid);
      if (author) into.set(author, (into.get(author) ?? 0n) - authorShare(inclusion) - tip);
      if (into instanceof Fees) into.toFund += inclusion - authorShare(inclusion);
    }
  }
  return into;
}

/** The author of block `hash` (from its Aura slot and the session's validators). */
export async function blockAuthor(api, hash) {
  return (await api.derive.chain.getHeader(hash))?.author?.toString();
}

/**
 * Transaction fees in blocks `from..=to` ([`Fees`]): each account's fees paid less the
 * fee shares it received as a block's author, and what the community fund received.
 */
export async function feesInBlocks(api, from, to) {
  const fees = new Fees();
  for (let number = from; number <= to; number++) {
    const hash = await api.rpc.chain.getBlockHash(number);
    feesOf(api, await api.query.system.events.at(hash), fees, await blockAuthor(api, hash));
  }
  return fees;
}

/** The account of a pallet id (`modl` + id, zero-padded), as pallet-treasury derives it. */
export function palletAccount(api, palletId) {
  const bytes = new Uint8Array(32);
  bytes.set(u8aConcat(stringToU8a('modl'), palletId.toU8a()));
  return encodeAddress(bytes, api.registry.chainSS58);
}

/**
 * What docs/protocol.md says a completed task pays: each slot of an agreeing pipeline
 * earns its chunk's layers × (prompt + generated tokens) × its threshold; the fee is
 * the miners' total over 85% (rounded up); the community gets the difference.
 * Returns { earned: Map(address → amount), miners, fee, community }.
 */
export async function expectedPayout(api, details, agreeingPipelines) {
  const model = (await api.query.models.models(details.task.model)).unwrap();
  const layers = model.spec.chunks.map((c) => BigInt(c.endLayer.toNumber() - c.startLayer.toNumber()));
  const output = details.outputs.find((out) => agreeingPipelines.includes(out.pipeline));
  const tokens = BigInt(output.promptTokens + output.tokens.length);
  const earned = new Map();
  for (const slot of details.slots.filter((s) => agreeingPipelines.includes(s.pipeline))) {
    const amount = layers[slot.chunk] * tokens * slot.threshold;
    earned.set(slot.expert, (earned.get(slot.expert) ?? 0n) + amount);
  }
  const miners = [...earned.values()].reduce((a, b) => a + b, 0n);
  const fee = ceilDiv(miners * 1_000_000_000n, MINER_SHARE_PARTS);
  return { earned, miners, fee, community: fee - miners };
}

/** The task pallet's share of a generation's pay that prefill work earns, as Perbill parts. */
export function prefillShareParts(api) {
  return BigInt(api.consts.poaw.prefillShare.toString());
}

/**
 * What a slot of a task checked by prefill earns (docs/protocol.md): its chunk's layers
 * × `tokens` (prompt + generated) × its threshold for generating, the prefill share of
 * that for verifying or refereeing.
 */
export function prefillEarned(slot, layers, tokens, shareParts) {
  const generation = BigInt(layers[slot.chunk]) * BigInt(tokens) * BigInt(slot.threshold);
  return slot.role === 'Generator' ? generation : (generation * shareParts) / 1_000_000_000n;
}

/** MinerPaid and MinerSlashed amounts in blocks `from..=to`, by expert. */
export async function moneyEvents(api, from, to) {
  const paid = new Map();
  const slashed = new Map();
  for (let number = from; number <= to; number++) {
    const events = await api.query.system.events.at(await api.rpc.chain.getBlockHash(number));
    for (const { event } of events) {
      const into = api.events.poaw.MinerPaid.is(event) ? paid : api.events.poaw.MinerSlashed.is(event) ? slashed : null;
      if (!into) continue;
      const who = event.data.expert.toString();
      into.set(who, (into.get(who) ?? 0n) + event.data.amount.toBigInt());
    }
  }
  return { paid, slashed };
}
