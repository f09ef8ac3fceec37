// Proof-of-AI-work tasks from polkadot-js against a fresh `dllm-node --dev`: the fee
// quote, refused submissions with their decoded errors and untouched balances, and a
// prompt carried to completion by the genesis experts (Bob, Charlie, Dave) played here
// with signed commit and reveal extrinsics, with every balance moving as
// docs/protocol.md says, then rated by its requester (the reputation pallet).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import { UNIT, formatDllm, submit } from '../lib/experts.mjs';
import { Fees, MINER_SHARE_PARTS, ceilDiv, feesOf as feesIn, palletAccount as palletAccountOf } from '../lib/settlement.mjs';
import { runDllm, sendAndFinalize, startDevNode } from '../lib/node.mjs';
import * as tasks from '../lib/tasks.mjs';

const PROMPT = 'What is DLLM?';
const MAX_TOKENS = 8;
let node;
let api;
let keyring;
/** The task the genesis experts complete below; its requester rates it afterwards. */
let completedTask;

before(async () => {
  await cryptoWaitReady();
  node = await startDevNode();
  api = node.api;
  keyring = new Keyring({ type: 'sr25519' });
  // These tests play the redundant protocol's miners (verification.test.mjs plays the
  // prefill roles the dev chain starts with).
  const { dispatchError } = await sendAndFinalize(
    api.tx.sudo.sudo(api.tx.poaw.setVerificationMode('Redundant')),
    keyring.addFromUri('//Alice'),
  );
  assert.equal(dispatchError, undefined);
});

after(async () => {
  if (node) assert.equal(await node.stop(), 0, 'the node exits cleanly on SIGTERM');
});

const account = (uri) => keyring.addFromUri(uri);

const feesOf = (events, into) => feesIn(api, events, into);
const palletAccount = (palletId) => palletAccountOf(api, palletId);

async function total(address) {
  const { data } = await api.query.system.account(address);
  return data.free.toBigInt() + data.reserved.toBigInt();
}

async function free(address) {
  return (await api.query.system.account(address)).data.free.toBigInt();
}

async function escrowHeld(address) {
  const holds = await api.query.balances.holds(address);
  return holds
    .filter((hold) => hold.id.toJSON().poaw !== undefined)
    .reduce((sum, hold) => sum + hold.amount.toBigInt(), 0n);
}

/** Bob, Charlie and Dave do their slots of `task`: every slot commits, then reveals. */
async function playMiners(task, output, hash, fees = new Map()) {
  const miners = Object.fromEntries(['//Bob', '//Charlie', '//Dave'].map((uri) => {
    const pair = account(uri);
    return [pair.address, pair];
  }));
  const secrets = new Map();
  const bySigner = new Map();
  for (const address of Object.keys(miners)) {
    bySigner.set(address, (await tasks.assignments(api, address)).filter((a) => a.task === task));
  }
  await Promise.all([...bySigner].map(async ([address, slots]) => {
    for (const slot of slots) {
      const fingerprint = randomBytes(48);
      const salt = randomBytes(32);
      secrets.set(`${slot.pipeline}/${slot.chunk}`, { fingerprint, salt });
      const c = tasks.commitment(api, task, slot.pipeline, slot.chunk, fingerprint, hash, salt);
      const result = await tasks.commit(api, miners[address], task, slot.pipeline, slot.chunk, c);
      assert.ok(result.ok, result.error);
      feesOf(result.events, fees);
    }
  }));
  assert.equal((await tasks.taskDetails(api, task)).status, 'Committed');
  await Promise.all([...bySigner].map(async ([address, slots]) => {
    for (const slot of slots) {
      const { fingerprint, salt } = secrets.get(`${slot.pipeline}/${slot.chunk}`);
      const last = slot.chunk === slot.chunks - 1;
      const result = await tasks.reveal(api, miners[address], { ...slot, task }, fingerprint, last ? output : hash, salt);
      assert.ok(result.ok, result.error);
      feesOf(result.events, fees);
    }
  }));
}

test('the quote is the second-cheapest ask × 2 pipelines × layers × tokens, over 85%', async () => {
  const q = await tasks.quote(api, 0, PROMPT, MAX_TOKENS);
  const tokens = BigInt(tasks.promptTokenBound(PROMPT.length) + MAX_TOKENS);
  const price = 10n * 10n ** 6n; // the genesis experts ask 10 µDLLM per token per layer
  assert.equal(q.redundancy, 2);
  assert.equal(q.pricePerTokenLayer, price);
  assert.equal(q.layers, 4);
  assert.equal(BigInt(q.tokens), tokens);
  assert.equal(q.maxFee, ceilDiv(price * 2n * 4n * tokens * 1_000_000_000n, MINER_SHARE_PARTS));
  await assert.rejects(tasks.quote(api, 9, PROMPT, MAX_TOKENS), /UnknownModel/);
});

test('bad submissions are refused with their error names and leave balances alone', async () => {
  const eve = account('//Eve');
  const q = await tasks.quote(api, 0, PROMPT, MAX_TOKENS);
  const poor = account('//DllmPoorRequester');
  const funded = await submit(api, api.tx.balances.transferKeepAlive(poor.address, UNIT), account('//Alice'));
  assert.ok(funded.ok);
  const cases = [
    ['poaw.UnknownModel', eve, { model: 9, prompt: PROMPT, maxTokens: MAX_TOKENS, maxFee: q.maxFee }],
    ['poaw.PromptTooLong', eve, { model: 0, prompt: 'x'.repeat(8193), maxTokens: MAX_TOKENS, maxFee: 10n * UNIT }],
    ['poaw.ZeroMaxTokens', eve, { model: 0, prompt: PROMPT, maxTokens: 0, maxFee: q.maxFee }],
    // The dev model's context is 512 tokens; 600 bytes count as 602.
    ['poaw.ExceedsContext', eve, { model: 0, prompt: 'x'.repeat(600), maxTokens: MAX_TOKENS, maxFee: 10n * UNIT }],
    ['poaw.FeeBelowQuote', eve, { model: 0, prompt: PROMPT, maxTokens: MAX_TOKENS, maxFee: q.maxFee - 1n }],
    ['poaw.InsufficientBalance', poor, { model: 0, prompt: PROMPT, maxTokens: MAX_TOKENS, maxFee: 5n * UNIT }],
  ];
  for (const [expected, signer, options] of cases) {
    const before = await free(signer.address);
    const result = await tasks.submitTask(api, signer, options);
    assert.equal(result.error, expected);
    assert.equal(result.task, null);
    const fee = feesOf(result.events).get(signer.address) ?? 0n;
    assert.ok(fee > 0n, 'the transaction fee is paid');
    assert.equal(await free(signer.address), before - fee, `${expected}: only the fee left`);
    assert.equal(await escrowHeld(signer.address), 0n, `${expected}: nothing held`);
  }
  assert.equal((await api.query.poaw.nextTaskId()).toNumber(), 0, 'no task was created');
});

test('dllm_quote prices a prompt given as text exactly as the runtime API does, and says why not', async () => {
  const byRpc = (await api.rpc.dllm.quote(0, PROMPT, MAX_TOKENS)).toJSON();
  const byApi = await tasks.quote(api, 0, PROMPT, MAX_TOKENS);
  assert.deepEqual(byRpc, {
    maxFee: byApi.maxFee.toString(),
    redundancy: byApi.redundancy,
    pricePerTokenLayer: byApi.pricePerTokenLayer.toString(),
    tokens: byApi.tokens,
    layers: byApi.layers,
    mode: byApi.mode,
  });
  // A multi-byte prompt counts its UTF-8 bytes.
  assert.equal((await api.rpc.dllm.quote(0, 'héllo', 4)).toJSON().tokens, tasks.promptTokenBound(6) + 4);
  await assert.rejects(api.rpc.dllm.quote(9, PROMPT, MAX_TOKENS), /1003: UnknownModel/);
  await assert.rejects(api.rpc.dllm.quote(0, '', MAX_TOKENS), /1004: the prompt has 0 bytes/);
  const tooLong = 'x'.repeat(api.consts.poaw.maxPromptBytes.toNumber() + 1);
  await assert.rejects(api.rpc.dllm.quote(0, tooLong, MAX_TOKENS), /1004/);
});

test('dllm_subscribeTask refuses an unknown task with a JSON-RPC error', async () => {
  await assert.rejects(
    tasks.streamTask(api, 987_654, { timeoutMs: 10_000 }),
    (error) => /1001: unknown task 987654/.test(error.message),
  );
});

test('a prompt is assigned to the genesis experts and completes with exact payouts', async () => {
  const eve = account('//Eve');
  const miners = Object.fromEntries(['//Bob', '//Charlie', '//Dave'].map((uri) => {
    const pair = account(uri);
    return [pair.address, pair];
  }));
  const community = palletAccount(api.consts.treasury.palletId);
  const payout = palletAccount(api.consts.poaw.palletId);
  const watched = [eve.address, community, ...Object.keys(miners)];
  const start = new Map(await Promise.all(watched.map(async (a) => [a, await total(a)])));
  const fees = new Fees();

  const q = await tasks.quote(api, 0, PROMPT, MAX_TOKENS);
  const submitted = await tasks.submitTask(api, eve, { model: 0, prompt: PROMPT, maxTokens: MAX_TOKENS, maxFee: q.maxFee });
  assert.ok(submitted.ok, submitted.error);
  feesOf(submitted.events, fees);
  const task = submitted.task;
  assert.equal(await escrowHeld(eve.address), q.maxFee);
  // No miner node runs here (the miners are played by extrinsics): the stream has no
  // tokens, and still ends with the chain's verdict.
  const streamed = tasks.streamTask(api, task, { timeoutMs: 60_000 });

  // The next block runs the auction.
  let details;
  for (let i = 0; i < 30; i++) {
    details = await tasks.taskDetails(api, task);
    if (details.status === 'Assigned') break;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(details.status, 'Assigned');
  const pipelines = [0, 1].map((p) => details.slots.filter((s) => s.pipeline === p).map((s) => s.expert));
  const [bob, charlie, dave] = ['//Bob', '//Charlie', '//Dave'].map((uri) => account(uri).address);
  assert.deepEqual(
    pipelines.map((p) => p.join()).sort(),
    [[bob, charlie].join(), [dave, dave].join()].sort(),
    'two disjoint pipelines: Bob → Charlie and Dave → Dave',
  );
  const bobsWork = await tasks.assignments(api, bob);
  assert.equal(bobsWork.length, 1);
  assert.equal(bobsWork[0].prompt, PROMPT);
  assert.equal(bobsWork[0].state, 'Assigned');

  // The miners' (simulated) work.
  const output = { promptTokens: 6, tokens: [11, 12, 13], text: 'abc' };
  const hash = tasks.outputHash(api, output.promptTokens, output.tokens, output.text);
  await playMiners(task, output, hash, fees);

  const done = await tasks.waitForResult(api, task, 60_000);
  assert.ok(done.slots.every((slot) => slot.threshold === 10n * 10n ** 6n), 'paid the asks: the requester sent the quote');
  assert.equal(done.status, 'Completed');
  assert.equal(done.outputs[0].text, 'abc');

  // docs/protocol.md: each slot earns layers × (prompt + generated tokens) × its
  // threshold; the fee is that total over 85% (rounded up); the community gets the
  // difference; the rest of the escrow returns.
  const model = (await api.query.models.models(0)).unwrap();
  const layers = model.spec.chunks.map((c) => BigInt(c.endLayer.toNumber() - c.startLayer.toNumber()));
  const tokens = BigInt(output.promptTokens + output.tokens.length);
  const earned = new Map();
  for (const slot of done.slots) {
    const amount = layers[slot.chunk] * tokens * slot.threshold;
    earned.set(slot.expert, (earned.get(slot.expert) ?? 0n) + amount);
  }
  const miners_ = [...earned.values()].reduce((a, b) => a + b, 0n);
  const fee = ceilDiv(miners_ * 1_000_000_000n, MINER_SHARE_PARTS);
  assert.deepEqual(
    { fee: BigInt(done.settlement.fee), miners: BigInt(done.settlement.miners), community: BigInt(done.settlement.community), refunded: BigInt(done.settlement.refunded) },
    { fee, miners: miners_, community: fee - miners_, refunded: q.maxFee - fee },
  );
  // Four fifths of the transaction fees go to the fund (a fifth to the blocks' author,
  // Alice, who is not watched).
  const expected = new Map([
    [eve.address, start.get(eve.address) - fee - (fees.get(eve.address) ?? 0n)],
    [community, start.get(community) + (fee - miners_) + fees.toFund],
    ...Object.keys(miners).map((a) => [a, start.get(a) + (earned.get(a) ?? 0n) - (fees.get(a) ?? 0n)]),
  ]);
  for (const [address, amount] of expected) {
    assert.equal(await total(address), amount, `balance of ${address}`);
  }
  assert.equal(await escrowHeld(eve.address), 0n);
  assert.equal(await free(payout), api.consts.balances.existentialDeposit.toBigInt(), 'nothing stays in the payout account');
  const stream = await streamed;
  assert.deepEqual(stream.tokens, []);
  assert.deepEqual(stream.final, {
    type: 'final',
    task,
    status: 'Completed',
    fee: fee.toString(),
    refunded: (q.maxFee - fee).toString(),
    miners: miners_.toString(),
    community: (fee - miners_).toString(),
    output: 'abc',
    tokens: [11, 12, 13],
    promptTokens: output.promptTokens,
  });
  assert.deepEqual(await tasks.assignments(api, bob), []);
  completedTask = task;
});

test('the requester rates its completed task once, and the miners\' reputation moves', async () => {
  assert.notEqual(completedTask, undefined, 'the task of the previous test completed');
  const eve = account('//Eve');
  const bob = account('//Bob');
  const before = await api.query.reputation.scores(bob.address);
  assert.ok(before.isSome, 'the task pallet reported Bob\'s verified work');
  assert.ok(before.unwrap().verified.toNumber() >= 1);

  const notMine = await submit(api, api.tx.reputation.rateTask(completedTask, 5), bob);
  assert.equal(notMine.error, 'reputation.NotRequester');
  const badStars = await submit(api, api.tx.reputation.rateTask(completedTask, 6), eve);
  assert.equal(badStars.error, 'reputation.InvalidStars');
  const unknown = await submit(api, api.tx.reputation.rateTask(9_999, 5), eve);
  assert.equal(unknown.error, 'reputation.UnknownTask');
  assert.deepEqual(await api.query.reputation.scores(bob.address).then((s) => s.toJSON()), before.toJSON(), 'refusals change nothing');

  const rated = await submit(api, api.tx.reputation.rateTask(completedTask, 5), eve);
  assert.ok(rated.ok, rated.error);
  assert.ok(rated.events.some(({ event }) => api.events.reputation.TaskRated.is(event) && event.data.stars.toNumber() === 5));
  assert.equal((await api.query.reputation.taskRatings(completedTask)).unwrap().toNumber(), 5);
  // docs/protocol.md: 5 stars add 2 observations of good evidence to every miner of the
  // accepted result (no decay within the first hour of the chain).
  const after = (await api.query.reputation.scores(bob.address)).unwrap();
  assert.equal(after.positive.toBigInt(), before.unwrap().positive.toBigInt() + 2_000_000n);
  assert.equal(after.negative.toBigInt(), before.unwrap().negative.toBigInt());

  const again = await submit(api, api.tx.reputation.rateTask(completedTask, 1), eve);
  assert.equal(again.error, 'reputation.AlreadyRated');
});

/** Runs `dllm chat` against the test node. */
const promptCli = (args) => runDllm(node.wsUrl, 'chat', ...args);

test('dllm chat submits at the quote, shows progress and prints the miners\' answer', async () => {
  const next = (await api.query.poaw.nextTaskId()).toNumber();
  const running = promptCli(['--suri', '//Ferdie', '--max-tokens', '8', PROMPT]);
  let assigned = false;
  for (let i = 0; i < 60 && !assigned; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const details = await tasks.taskDetails(api, next);
    assigned = details?.status === 'Assigned';
  }
  assert.ok(assigned, 'the CLI\'s task was assigned');
  const output = { promptTokens: 6, tokens: [21, 22], text: 'DLLM is a chain' };
  await playMiners(next, output, tasks.outputHash(api, output.promptTokens, output.tokens, output.text));
  const run = await running;
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, new RegExp(`task ${next} submitted \\(max fee [\\d.]+ DLLM\\)`));
  assert.match(run.stderr, new RegExp(`task ${next}: (waiting for miners|Assigned) · \\d+ s`), 'progress while waiting');
  assert.match(run.stdout, /^DLLM is a chain$/m);
  const paid = /verified: paid ([\d.]+) DLLM \(miners [\d.]+ DLLM, community [\d.]+ DLLM\), refunded ([\d.]+|0) DLLM/.exec(run.stdout);
  assert.ok(paid, run.stdout);
  const { settlement } = await tasks.taskDetails(api, next);
  assert.equal(`${paid[1]} DLLM`, formatDllm(BigInt(settlement.fee)));
});

test('dllm chat exits 1 on a refused task with the error explained and 2 on bad usage', async () => {
  const refused = await promptCli(['--max-fee', '0.000000000001', PROMPT]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refused: poaw\.FeeBelowQuote: \S+/);
  const unknown = await promptCli(['--model', '9', PROMPT]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no model 9 on this chain/);
  const usage = await promptCli(['--max-tokens', 'many', PROMPT]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--max-tokens must be a whole number/);
  assert.equal((await promptCli([])).code, 2);
  assert.equal((await promptCli(['--frobnicate', PROMPT])).code, 2);
});
