// Prefill verification (PoAW v2) from polkadot-js against a fresh `dllm-node --dev`, with
// the miners played by signed extrinsics: root switches the mode, Eve registers as a
// third expert of both chunks (the referee), an honest task completes and a task whose
// generator lies at the last chunk is refereed, its miner slashed and the requester
// refunded in full, and a task with two generators has each checked by the verifier,
// every balance as docs/protocol.md says. Read through metadata only.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import * as experts from '../lib/experts.mjs';
import { sketch } from '../lib/fingerprint.mjs';
import { sendAndFinalize, startDevNode } from '../lib/node.mjs';
import * as settlement from '../lib/settlement.mjs';
import { MINER_SHARE_PARTS, ceilDiv, feesOf, total } from '../lib/settlement.mjs';
import * as tasks from '../lib/tasks.mjs';

const PROMPT = 'Verify me';
const MAX_TOKENS = 4;
const OUTPUT = { promptTokens: 5, tokens: [11, 12, 13], text: 'abc' };
/** Eve asks more than the genesis experts: she loses their auctions and referees. */
const EVE_PRICE = 12n * 10n ** 6n;
const PREFILL_SHARE_PARTS = 200_000_000n;
let node;
let api;
let keyring;
let signers;

before(async () => {
  await cryptoWaitReady();
  node = await startDevNode();
  api = node.api;
  keyring = new Keyring({ type: 'sr25519' });
  signers = Object.fromEntries(
    ['//Bob', '//Charlie', '//Dave', '//Eve'].map((uri) => {
      const pair = keyring.addFromUri(uri);
      return [pair.address, pair];
    }),
  );
  const alice = keyring.addFromUri('//Alice');
  const { dispatchError } = await sendAndFinalize(
    api.tx.sudo.sudo(api.tx.poaw.setVerificationMode('Prefill')),
    alice,
  );
  assert.equal(dispatchError, undefined);
  await registerBothChunks(keyring.addFromUri('//Eve'), 5);
});

/** Registers `signer` as an expert of both chunks at Eve's price (node key 0x00…0`key`). */
async function registerBothChunks(signer, key) {
  const registered = await experts.registerExpert(api, signer, 10_000n * experts.UNIT, {
    domains: [],
    peerId: `0x00240801122000000000000000000000000000000000000000000000000000000000000000${key.toString(16).padStart(2, '0')}`,
    price: EVE_PRICE,
    capacity: 4,
    commissionPercent: 10,
  });
  assert.ok(registered.ok, registered.error);
  for (const chunk of [0, 1]) {
    const served = await experts.serveChunk(api, signer, 0, chunk);
    assert.ok(served.ok, served.error);
  }
}

after(async () => {
  if (node) assert.equal(await node.stop(), 0, 'the node exits cleanly on SIGTERM');
});

/**
 * Submits the test prompt at twice the quote (for `generators` generators); resolves the
 * task id and the fees paid.
 */
async function submitTask(requester, generators = 1) {
  const q = await tasks.quote(api, 0, PROMPT, MAX_TOKENS, generators);
  assert.equal(q.mode, 'Prefill');
  assert.equal(q.redundancy, generators);
  const fees = new Map();
  const result = await tasks.submitTask(api, requester, {
    model: 0, prompt: PROMPT, maxTokens: MAX_TOKENS, maxFee: q.maxFee * 2n, generators,
  });
  assert.ok(result.ok, result.error);
  feesOf(api, result.events, fees);
  let details;
  for (let i = 0; i < 20; i++) {
    details = await tasks.taskDetails(api, result.task);
    if (details.status === 'Assigned') break;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(details.status, 'Assigned');
  return { task: result.task, fees };
}

/** Commits then reveals every slot of `role` (of the current referee round). */
async function play(task, role, shiftOf, outputHash) {
  const details = await tasks.taskDetails(api, task);
  // The dispute's round n: referee pipelines firstReferee + (n - 1) × refereesPerRound on.
  const dispute = details.task.dispute;
  const perRound = api.consts.poaw.refereesPerRound.toNumber();
  const first = dispute ? dispute.firstReferee + (dispute.rounds - 1) * perRound : 0;
  const inRound = (s) => s.pipeline >= first && s.pipeline < first + perRound;
  const mine = details.slots.filter((s) => s.role === role && (role !== 'Referee' || inRound(s)));
  const secrets = new Map();
  for (const slot of mine) {
    const last = slot.chunk === 1;
    const fingerprint = sketch(last ? { kind: 'logits', width: 320, positions: 3, shift: shiftOf(slot) } : { width: 64, positions: 7, shift: shiftOf(slot) });
    const salt = randomBytes(32);
    const claimed = role !== 'Generator' && last ? tasks.verdictHash(api, outputHash, true) : outputHash;
    const c = tasks.commitment(api, task, slot.pipeline, slot.chunk, fingerprint, claimed, salt);
    const signer = signers[slot.expert];
    const result = role === 'Generator' && last
      ? await tasks.commitOutput(api, signer, task, slot.pipeline, slot.chunk, c, OUTPUT)
      : await tasks.commit(api, signer, task, slot.pipeline, slot.chunk, c);
    assert.ok(result.ok, result.error);
    secrets.set(slot, { fingerprint, salt, output: role !== 'Generator' && last ? { verdict: true } : outputHash });
  }
  return async () => {
    for (const [slot, { fingerprint, salt, output }] of secrets) {
      const result = await tasks.reveal(api, signers[slot.expert], { ...slot, task }, fingerprint, output, salt);
      assert.ok(result.ok, result.error);
    }
  };
}

/**
 * The generators commit (publishing the output), then the verifier; all reveal honestly
 * and the task completes. Resolves its details.
 */
async function playHonestly(task, outputHash) {
  const revealGenerators = await play(task, 'Generator', () => 0, outputHash);
  assert.equal((await tasks.taskDetails(api, task)).status, 'Verifying');
  const revealVerifier = await play(task, 'Verifier', () => 0, outputHash);
  await revealGenerators();
  await revealVerifier();
  const details = await tasks.taskDetails(api, task);
  assert.equal(details.status, 'Completed');
  return details;
}

/** MinerPaid and MinerSlashed amounts of blocks `from..=to`, by expert. */
function moneyEvents(from, to) {
  return settlement.moneyEvents(api, from, to);
}

/** What a slot earns: 2 layers × tokens × threshold, a fifth for prefill work. */
function earned(slot) {
  const generation = 2n * BigInt(OUTPUT.promptTokens + OUTPUT.tokens.length) * slot.threshold;
  return slot.role === 'Generator' ? generation : (generation * PREFILL_SHARE_PARTS) / 1_000_000_000n;
}

function sumBy(slots) {
  const sums = new Map();
  for (const slot of slots) sums.set(slot.expert, (sums.get(slot.expert) ?? 0n) + earned(slot));
  return sums;
}

test('the fee under prefill verification is at most 0.6× that of redundancy 2', async () => {
  const alice = keyring.addFromUri('//Alice');
  const prefill = await tasks.quote(api, 0, PROMPT, MAX_TOKENS);
  const setMode = (mode) => sendAndFinalize(api.tx.sudo.sudo(api.tx.poaw.setVerificationMode(mode)), alice);
  assert.equal((await setMode('Redundant')).dispatchError, undefined);
  const redundant = await tasks.quote(api, 0, PROMPT, MAX_TOKENS);
  assert.equal((await setMode('Prefill')).dispatchError, undefined);
  assert.equal(redundant.redundancy, 2);
  assert.equal(prefill.pricePerTokenLayer, redundant.pricePerTokenLayer);
  // (1 + 20%) against 2 generations of the same token-layers, the verifier's share
  // rounded up to whole token-layers.
  const units = BigInt(prefill.layers * prefill.tokens);
  const verifier = ceilDiv(units * PREFILL_SHARE_PARTS, 1_000_000_000n);
  const miners = prefill.pricePerTokenLayer * (units + verifier);
  assert.equal(prefill.maxFee, ceilDiv(miners * 1_000_000_000n, MINER_SHARE_PARTS));
  const ratio = Number(prefill.maxFee * 10_000n / redundant.maxFee) / 10_000;
  console.log(`quote for ${prefill.tokens} tokens × ${prefill.layers} layers: prefill ${prefill.maxFee}, redundancy 2 ${redundant.maxFee}, ratio ${ratio}`);
  assert.ok(ratio <= 0.605, `ratio ${ratio}`);
});

test('an honest task checked by prefill completes: the generator and the verifier are paid', async () => {
  const requester = keyring.addFromUri('//Ferdie');
  const before = await total(api, requester.address);
  const start = (await api.rpc.chain.getHeader()).number.toNumber();
  const { task, fees } = await submitTask(requester);
  const outputHash = tasks.outputHash(api, OUTPUT.promptTokens, OUTPUT.tokens, OUTPUT.text);
  const roles = (await tasks.taskDetails(api, task)).slots.map((s) => s.role).sort();
  assert.deepEqual(roles, ['Generator', 'Generator', 'Verifier', 'Verifier']);
  const details = await playHonestly(task, outputHash);
  const end = (await api.rpc.chain.getHeader()).number.toNumber();
  const { paid, slashed } = await moneyEvents(start + 1, end);
  assert.equal(slashed.size, 0);
  const expected = sumBy(details.slots);
  assert.deepEqual(paid, expected);
  const miners = [...expected.values()].reduce((a, b) => a + b, 0n);
  const fee = ceilDiv(miners * 1_000_000_000n, MINER_SHARE_PARTS);
  assert.equal(BigInt(details.settlement.fee), fee);
  assert.equal(before - (await total(api, requester.address)), fee + (fees.get(requester.address) ?? 0n));
});

test('a generator lying at the last chunk is refereed: slashed, the requester refunded in full', async () => {
  const requester = keyring.addFromUri('//Ferdie');
  const before = await total(api, requester.address);
  const start = (await api.rpc.chain.getHeader()).number.toNumber();
  const { task, fees } = await submitTask(requester);
  const outputHash = tasks.outputHash(api, OUTPUT.promptTokens, OUTPUT.tokens, OUTPUT.text);
  const lie = (slot) => (slot.chunk === 1 ? 900 : 0);
  const revealGenerator = await play(task, 'Generator', lie, outputHash);
  const revealVerifier = await play(task, 'Verifier', () => 0, outputHash);
  await revealGenerator();
  await revealVerifier();
  let details = await tasks.taskDetails(api, task);
  assert.equal(details.status, 'Refereeing');
  assert.deepEqual(details.task.dispute, { chunk: 1, sampling: false, rounds: 1, pair: 0, firstReferee: 2 });
  const eve = keyring.addFromUri('//Eve').address;
  const referees = details.slots.filter((s) => s.role === 'Referee');
  assert.deepEqual(referees.map((s) => s.expert), [eve, eve]);
  const revealReferees = await play(task, 'Referee', () => 0, outputHash);
  assert.equal((await tasks.taskDetails(api, task)).status, 'Judging');
  await revealReferees();
  details = await tasks.taskDetails(api, task);
  assert.equal(details.status, 'Expired');
  const end = (await api.rpc.chain.getHeader()).number.toNumber();
  // The requester paid its transaction fee only.
  assert.equal(before - (await total(api, requester.address)), fees.get(requester.address) ?? 0n);
  const liar = details.slots.find((s) => s.role === 'Generator' && s.chunk === 1).expert;
  const { paid, slashed } = await moneyEvents(start + 1, end);
  assert.deepEqual([...slashed.keys()], [liar]);
  assert.equal(slashed.get(liar), 1_000n * experts.UNIT, '10% of a 10 000 DLLM bond');
  // The slash pays the verifier's and the referees' prefill work.
  assert.deepEqual(paid, sumBy(details.slots.filter((s) => s.role !== 'Generator')));
});

test('a task with two generators has each checked by the verifier and pays both', async () => {
  // Two generators and the verifier need three experts in each chunk with a full bond
  // (the last test slashed one): Grace joins, funded by Alice.
  const grace = keyring.addFromUri('//Grace');
  signers[grace.address] = grace;
  const funded = await experts.submit(api, api.tx.balances.transferKeepAlive(grace.address, 20_000n * experts.UNIT), keyring.addFromUri('//Alice'));
  assert.ok(funded.ok, funded.error);
  await registerBothChunks(grace, 7);
  const requester = keyring.addFromUri('//Ferdie');
  const before = await total(api, requester.address);
  const start = (await api.rpc.chain.getHeader()).number.toNumber();
  const { task, fees } = await submitTask(requester, 2);
  const outputHash = tasks.outputHash(api, OUTPUT.promptTokens, OUTPUT.tokens, OUTPUT.text);
  const assigned = await tasks.taskDetails(api, task);
  assert.equal(assigned.task.generators, 2);
  // Generators are pipelines 0 and 1; the verifier checks them as pipelines 2 and 3.
  const layout = assigned.slots.map((s) => `${s.pipeline}:${s.role}`);
  assert.deepEqual([...new Set(layout)], ['0:Generator', '1:Generator', '2:Verifier', '3:Verifier']);
  const verifierOf = (p) => assigned.slots.filter((s) => s.pipeline === p).map((s) => s.expert);
  assert.deepEqual(verifierOf(2), verifierOf(3), 'one verifier checks both');
  const details = await playHonestly(task, outputHash);
  const end = (await api.rpc.chain.getHeader()).number.toNumber();
  const compared = [];
  for (let n = start + 1; n <= end; n++) {
    const at = await api.at(await api.rpc.chain.getBlockHash(n));
    for (const { event } of await at.query.system.events()) {
      if (api.events.poaw.WorkCompared.is(event)) compared.push(event.data.pair.toNumber());
    }
  }
  assert.deepEqual(compared.sort(), [0, 1]);
  const { paid, slashed } = await moneyEvents(start + 1, end);
  assert.equal(slashed.size, 0);
  const expected = sumBy(details.slots);
  assert.deepEqual(paid, expected);
  const miners = [...expected.values()].reduce((a, b) => a + b, 0n);
  const fee = ceilDiv(miners * 1_000_000_000n, MINER_SHARE_PARTS);
  assert.equal(BigInt(details.settlement.fee), fee);
  assert.equal(before - (await total(api, requester.address)), fee + (fees.get(requester.address) ?? 0n));
  // `dllm_quote` prices two generators as the runtime API does, and refuses too many.
  const byRpc = (await api.rpc.dllm.quote(0, PROMPT, MAX_TOKENS, 2)).toJSON();
  assert.equal(byRpc.redundancy, 2);
  assert.equal(BigInt(byRpc.maxFee), (await tasks.quote(api, 0, PROMPT, MAX_TOKENS, 2)).maxFee);
  const most = api.consts.poaw.maxGenerators.toNumber();
  await assert.rejects(api.rpc.dllm.quote(0, PROMPT, MAX_TOKENS, most + 1), /1005/);
});
