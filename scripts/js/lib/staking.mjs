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

/**
 * The eras whose rewards `validator` can still have paid: within the last
 * `staking.historyDepth` eras before the active one, it was elected, earned era
 * points, and a page of its stakers is not paid yet. Resolves [{ era, pages }] (the
 * pages left), oldest first.
 */
export async function unclaimedEras(api, validator) {
  const active = await activeEra(api);
  if (active === null) return [];
  const depth = api.consts.staking.historyDepth.toNumber();
  const unclaimed = [];
  for (let era = Math.max(0, active - depth); era < active; era++) {
    const points = await api.query.staking.erasRewardPoints(era);
    const earned = [...points.individual.entries()].some(([who, p]) => who.toString() === validator && p.toNumber() > 0);
    if (!earned) continue;
    // The runtime's count: a validator without nominators still has one page, its own
    // stake (the overview's `pageCount` is then 0).
    const pageCount = (await api.call.stakingApi.erasStakersPageCount(era, validator)).toNumber();
    const claimed = (await api.query.staking.claimedRewards(era, validator)).map((page) => page.toNumber());
    const pages = [];
    for (let page = 0; page < pageCount; page++) if (!claimed.includes(page)) pages.push(page);
    if (pages.length) unclaimed.push({ era, pages });
  }
  return unclaimed;
}

/** The active era's index, or null before the first. */
export async function activeEra(api) {
  const era = await api.query.staking.activeEra();
  return era.isSome ? era.unwrap().index.toNumber() : null;
}

/**
 * Payouts per transaction: each is weighed as a full page (256 nominators, about 70 ms),
 * so ten stay well inside a transaction's weight limit.
 */
export const PAYOUTS_PER_TRANSACTION = 10;

/**
 * The pages of `unclaimed` (`unclaimedEras`) in transactions of at most
 * `PAYOUTS_PER_TRANSACTION` payouts: [{ eras, calls }], oldest first.
 */
export function payoutBatches(api, validator, unclaimed) {
  const pages = unclaimed.flatMap(({ era, pages: left }) => left.map((page) => ({ era, page })));
  const batches = [];
  for (let i = 0; i < pages.length; i += PAYOUTS_PER_TRANSACTION) {
    const chunk = pages.slice(i, i + PAYOUTS_PER_TRANSACTION);
    const calls = chunk.map(({ era, page }) => api.tx.staking.payoutStakersByPage(validator, era, page));
    batches.push({ eras: [...new Set(chunk.map(({ era }) => era))], calls });
  }
  return batches;
}

/** Sends one of `payoutBatches`, all its payouts or none. */
export function payoutBatch(api, signer, { calls }) {
  return submit(api, calls.length === 1 ? calls[0] : api.tx.utility.batchAll(calls), signer);
}

/**
 * What `stash` does in staking: { era (active), bonded: { total, active, unlocking } or
 * null, validating (commission percent) or null, nominating (targets) or null, elected
 * (in the active era: { total, own, nominators }) or null, points (this era's) }.
 */
export async function stakerState(api, stash) {
  const era = await activeEra(api);
  const found = await ledger(api, stash);
  const bonded = found && {
    total: found.total.toBigInt(),
    active: found.active.toBigInt(),
    unlocking: found.unlocking.map((chunk) => ({ value: chunk.value.toBigInt(), era: chunk.era.toNumber() })),
  };
  // `staking.validators` reads default preferences for a non-candidate: the stored
  // size tells them apart.
  const validating = (await api.query.staking.validators.size(stash)).toNumber() > 0
    ? (await api.query.staking.validators(stash)).commission.toNumber() / 10_000_000
    : null;
  const nominations = await api.query.staking.nominators(stash);
  const nominating = nominations.isSome ? nominations.unwrap().targets.map(String) : null;
  let elected = null;
  let points = 0;
  if (era !== null) {
    const overview = await api.query.staking.erasStakersOverview(era, stash);
    if (overview.isSome) {
      const o = overview.unwrap();
      elected = { total: o.total.toBigInt(), own: o.own.toBigInt(), nominators: o.nominatorCount.toNumber() };
    }
    const eraPoints = await api.query.staking.erasRewardPoints(era);
    const mine = [...eraPoints.individual.entries()].find(([who]) => who.toString() === stash);
    points = mine ? mine[1].toNumber() : 0;
  }
  return { era, bonded, validating, nominating, elected, points };
}
