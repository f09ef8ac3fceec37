// Validators by stake on a `--chain local` network on loopback (issue 16), with sessions
// of 8 blocks and an election every session (`shortEraSpec`): Alice and Bob validate
// from genesis; Charlie and Dave each run a validator node, bond, set their node's
// session keys and validate with `dllm stake validate`; Eve nominates Charlie. Charlie
// is elected, authors blocks and votes in GRANDPA; Eve pays out his era and both are
// paid; then Charlie's node stops, he is chilled and the chain keeps finalizing.
//
// Dave is there because GRANDPA finalizes with more than two thirds of the set: with
// Alice, Bob and Charlie alone, Charlie's stop would stall finality, and the set change
// that drops him needs finality (docs/operators.md, "A validator").

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import { runDllm, startNode } from '../lib/node.mjs';
import { blockAuthor } from '../lib/settlement.mjs';
import * as staking from '../lib/staking.mjs';
import { shortEraSpec, startTestnet } from '../lib/testnet.mjs';

const SESSION_BLOCKS = 8;
// Node keys of the validator nodes: not 0x00…03 and 0x00…04, which the local genesis
// registers as Charlie's and Dave's miners' peer ids.
const VALIDATOR_NODE_KEYS = { charlie: '8'.padStart(64, '0'), dave: '9'.padStart(64, '0') };
const UNIT = 10n ** 12n;
const VALIDATOR_BOND = 20_000n;
const NOMINATOR_BOND = 5_000n;
const COMMISSION_PERCENT = 5n;

let root;
let net;
let api;
const validators = {};
let charlie;
let dave;
let eve;
// The era whose rewards are paid: Charlie authored in it, with Eve's stake behind him.
let paidEra;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Calls `check(hash, number)` on each finalized block from `from` on, in order, until it
 * returns something; resolves that. Throws, naming `what`, after `seconds`.
 */
async function scanFinalized(from, check, { seconds, what }) {
  const deadline = Date.now() + seconds * 1000;
  let next = from;
  while (Date.now() < deadline) {
    const head = await finalizedNumber();
    for (; next <= head; next++) {
      const hash = await api.rpc.chain.getBlockHash(next);
      const found = await check(hash, next);
      if (found) return found;
    }
    await sleep(1000);
  }
  throw new Error(`${what}: not within ${seconds} s (finalized up to #${next - 1})`);
}

async function finalizedNumber() {
  return (await api.rpc.chain.getHeader(await api.rpc.chain.getFinalizedHead())).number.toNumber();
}

async function activeBond(stash) {
  return (await staking.ledger(api, stash)).active.toBigInt();
}

before(async () => {
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519' });
  [charlie, dave, eve] = ['//Charlie', '//Dave', '//Eve'].map((uri) => keyring.addFromUri(uri));
  root = process.env.DLLM_TEST_DIR ? join(process.env.DLLM_TEST_DIR, `validators-${Date.now()}`) : mkdtempSync(join(tmpdir(), 'dllm-validators-'));
  mkdirSync(root, { recursive: true });
  const spec = await shortEraSpec(join(root, 'local-short-eras.json'), { sessionBlocks: SESSION_BLOCKS, sessionsPerEra: 1 });
  net = await startTestnet({ chain: spec, miners: [], dir: root });
  api = net.api;
  // A validator node as an operator runs one: no dev keys in its keystore, only the
  // session keys that `dllm stake validate` makes in it.
  for (const name of ['charlie', 'dave']) {
    validators[name] = await startNode([
      '--chain', spec, '--validator', '--name', `${name}-validator`, '--base-path', join(root, name),
      '--no-mdns', '--node-key', VALIDATOR_NODE_KEYS[name], '--bootnodes', net.bootnode,
    ], { logFile: join(root, `${name}-validator.log`) });
  }
});

after(async () => {
  for (const node of Object.values(validators)) await node.stop().catch(() => node.kill());
  await net?.stop();
  if (!process.env.DLLM_TEST_DIR) rmSync(root, { recursive: true, force: true });
});

test('Charlie and Dave bond, set their own nodes\' new session keys and validate; Eve nominates Charlie', async () => {
  const runs = await Promise.all(['charlie', 'dave'].map((name) => runDllm(
    validators[name].wsUrl, '--suri', `//${name[0].toUpperCase()}${name.slice(1)}`,
    'stake', 'validate', '--bond', String(VALIDATOR_BOND), '--commission', String(COMMISSION_PERCENT),
  )));
  for (const run of runs) assert.equal(run.code, 0, run.stderr);
  const run = await runDllm(net.validator.wsUrl, '--suri', '//Eve', 'stake', 'nominate', '--bond', String(NOMINATOR_BOND), charlie.address);
  assert.equal(run.code, 0, run.stderr);
  for (const [name, account] of [['charlie', charlie], ['dave', dave]]) {
    const keys = (await api.query.session.nextKeys(account.address)).unwrap().toHex();
    assert.ok((await validators[name].api.rpc.author.hasSessionKeys(keys)).isTrue, `${name}'s node holds his session keys`);
    assert.equal((await api.query.staking.validators(account.address)).commission.toNumber(), Number(COMMISSION_PERCENT) * 10_000_000);
  }
  assert.deepEqual((await api.query.staking.nominators(eve.address)).unwrap().targets.map(String), [charlie.address]);
});

test('after the next election Charlie authors blocks and GRANDPA finalizes with his votes', async () => {
  const start = await finalizedNumber();
  // The first block Charlie authors in an era where Eve's stake backs him.
  paidEra = await scanFinalized(start, async (hash) => {
    if ((await blockAuthor(api, hash)) !== charlie.address) return null;
    const era = (await api.query.staking.activeEra.at(hash)).unwrap().index.toNumber();
    const backing = await api.query.staking.erasStakersPaged(era, charlie.address, 0);
    const nominators = backing.isSome ? backing.unwrap().others.map((o) => o.who.toString()) : [];
    return nominators.includes(eve.address) ? era : null;
  }, { seconds: 360, what: 'a block by Charlie in an era Eve backs' });
  const sessionValidators = (await api.query.session.validators()).map(String);
  for (const account of [charlie, dave]) assert.ok(sessionValidators.includes(account.address), `${account.address} validates`);

  // Every block Charlie's node finalizes comes with its justification: the precommits
  // that finalized it. One with his own precommit shows that he is in the voter set and
  // that his votes finalize blocks.
  const grandpaKey = (await api.query.session.nextKeys(charlie.address)).unwrap().grandpa.toHex();
  const charlieApi = validators.charlie.api;
  let seen = 0;
  const voted = await new Promise((resolveVote, reject) => {
    let unsubscribe = () => {};
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no precommit of Charlie's in ${seen} justifications within 120 s`));
    }, 120_000);
    charlieApi.rpc.grandpa.subscribeJustifications((encoded) => {
      seen++;
      const justification = charlieApi.createType('GrandpaJustification', encoded);
      if (justification.commit.precommits.some((p) => p.id.toHex() === grandpaKey)) {
        clearTimeout(timer);
        unsubscribe();
        resolveVote(justification.commit.targetNumber.toNumber());
      }
    }).then((unsub) => { unsubscribe = unsub; }, reject);
  });
  assert.ok(voted > start);
});

test('Eve pays out Charlie\'s era: he is paid his commission and his share, she hers', async () => {
  await scanFinalized(await finalizedNumber(), async (hash) =>
    (await api.query.staking.activeEra.at(hash)).unwrap().index.toNumber() > paidEra, { seconds: 120, what: `era ${paidEra} ending` });
  const before = { charlie: await activeBond(charlie.address), eve: await activeBond(eve.address) };
  const run = await runDllm(net.validator.wsUrl, '--suri', '//Eve', 'stake', 'payout', charlie.address, String(paidEra));
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, new RegExp(`paid ${charlie.address}'s stakers for era ${paidEra}`));
  // Rewards are restaked (both bonded with the `Staked` destination).
  const paid = { charlie: (await activeBond(charlie.address)) - before.charlie, eve: (await activeBond(eve.address)) - before.eve };
  assert.ok(paid.charlie > 0n && paid.eve > 0n, `both paid: ${paid.charlie}, ${paid.eve}`);

  // The validator's part of the era's payout is its share of the era points; of it, the
  // commission goes to the validator and the rest to its backers by stake.
  const total = (await api.query.staking.erasValidatorReward(paidEra)).unwrap().toBigInt();
  const points = await api.query.staking.erasRewardPoints(paidEra);
  const own = [...points.individual.entries()].find(([who]) => who.toString() === charlie.address)[1].toBigInt();
  const part = (total * own) / points.total.toBigInt();
  const afterCommission = part - (part * COMMISSION_PERCENT) / 100n;
  const backing = (await api.query.staking.erasStakersOverview(paidEra, charlie.address)).unwrap();
  const expectedEve = (afterCommission * NOMINATOR_BOND * UNIT) / backing.total.toBigInt();
  const close = (got, want) => got * 10_000n >= want * 9_999n && got * 10_000n <= want * 10_001n;
  assert.ok(close(paid.eve, expectedEve), `Eve paid ${paid.eve}, expected about ${expectedEve}`);
  assert.ok(close(paid.charlie + paid.eve, part), `paid ${paid.charlie + paid.eve} in all, expected about ${part}`);

  // Without an era: every era not paid yet (Charlie's eras before Eve backed him, the
  // one after), then none is left.
  let status = await runDllm(net.validator.wsUrl, 'stake', 'status', charlie.address);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /validating at 5% commission/);
  assert.doesNotMatch(status.stdout, new RegExp(`unpaid eras: .*\\b${paidEra}\\b`));
  const active = await staking.activeEra(api);
  const rest = await runDllm(net.validator.wsUrl, '--suri', '//Eve', 'stake', 'payout', charlie.address);
  assert.equal(rest.code, 0, rest.stderr);
  assert.match(rest.stdout, /^(paid .* for eras? [\d, ]+ \(final in block|nothing to pay: )/m);
  status = await runDllm(net.validator.wsUrl, 'stake', 'status', charlie.address);
  // Only an era that ended since (a session here) can be unpaid now.
  const unpaid = (status.stdout.match(/unpaid eras: ([\d, ]+)/)?.[1] ?? '').split(', ').filter(Boolean).map(Number);
  assert.ok(unpaid.every((era) => era >= active), `unpaid after paying all: ${unpaid}`);

  // Dave has no nominator: his own stake is his one page, paid all the same.
  status = await runDllm(net.validator.wsUrl, 'stake', 'status', dave.address);
  assert.match(status.stdout, /unpaid eras: \d/);
  const daveBefore = await activeBond(dave.address);
  const paidDave = await runDllm(net.validator.wsUrl, '--suri', '//Eve', 'stake', 'payout', dave.address);
  assert.equal(paidDave.code, 0, paidDave.stderr);
  assert.match(paidDave.stdout, new RegExp(`^paid ${dave.address}'s stakers for eras? \\d`, 'm'));
  assert.ok((await activeBond(dave.address)) > daveBefore, 'Dave paid');

  // Paid once.
  const again = await runDllm(net.validator.wsUrl, '--suri', '//Eve', 'stake', 'payout', charlie.address, String(paidEra));
  assert.equal(again.code, 1);
  assert.match(again.stderr, /refused: staking\.\w+/);
});

test('Charlie\'s node stops: he is chilled, the next set leaves him out, and the chain keeps finalizing', async () => {
  await validators.charlie.stop();
  delete validators.charlie;
  const chilled = await scanFinalized(await finalizedNumber(), async (hash, number) => {
    const events = await api.query.system.events.at(hash);
    const found = events.some(({ event }) => api.events.staking.Chilled.is(event) && event.data[0].toString() === charlie.address);
    return found ? { hash, number } : null;
  }, { seconds: 300, what: 'Charlie chilled' });
  const status = await runDllm(net.validator.wsUrl, 'stake', 'status', charlie.address);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /neither validating nor nominating \(chilled\)/);
  // The election in the same session change already left him out.
  const planned = (await api.query.staking.currentEra.at(chilled.hash)).unwrap().toNumber();
  assert.ok((await api.query.staking.erasStakersOverview(planned, charlie.address)).isNone);

  // Finality goes on with three of four voters until the set without him is active
  // (the change takes effect only once final), and the new set finalizes.
  const without = await scanFinalized(chilled.number, async (hash, number) => {
    const set = (await api.query.session.validators.at(hash)).map(String);
    return set.includes(charlie.address) ? null : { number, set };
  }, { seconds: 240, what: 'a finalized block of the set without Charlie' });
  assert.ok(without.set.includes(dave.address));
  await scanFinalized(without.number + 2, async () => true, { seconds: 60, what: 'finality after Charlie left' });
});
