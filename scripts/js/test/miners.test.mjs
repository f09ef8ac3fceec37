// End to end on loopback, under the redundant protocol (root switches to it; the dev
// chain verifies by prefill, see prefill-miners.test.mjs): a validator and miner nodes
// (`dllm-node --miner`) answer prompts submitted from polkadot-js. The answer must be what `dllm-infer generate`
// prints for the same model, prompt and sampling, and every balance must move as
// docs/protocol.md says: with all miners up, with one miner down, and with one miner
// that returns wrong activations.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import { sendAndFinalize } from '../lib/node.mjs';
import { expectedPayout, feesInBlocks, palletAccount } from '../lib/settlement.mjs';
import * as tasks from '../lib/tasks.mjs';
import { referenceGeneration, registerDevMiner, startTestnet } from '../lib/testnet.mjs';

const PROMPT = 'What is DLLM?';
const MAX_TOKENS = 12;
// Seeded temperature sampling: the last chunk's miner must replay dllm-infer exactly.
const SAMPLING = { temperatureMilli: 800, topK: 40, topP: 950_000_000, seed: 42 };
const REFERENCE_SAMPLING = { temperature: 0.8, topK: 40, topP: 0.95, seed: 42 };

await cryptoWaitReady();
const keyring = new Keyring({ type: 'sr25519' });
const account = (name) => keyring.addFromUri(`//${name[0].toUpperCase()}${name.slice(1)}`);

/** Free plus held balance of each address at block `hash`. */
async function balancesAt(api, hash, addresses) {
  const at = await api.at(hash);
  const entries = await Promise.all(addresses.map(async (address) => {
    const { data } = await at.query.system.account(address);
    return [address, data.free.toBigInt() + data.reserved.toBigInt()];
  }));
  return new Map(entries);
}

async function bestBlock(api) {
  const header = await api.rpc.chain.getHeader();
  return { number: header.number.toNumber(), hash: header.hash.toHex() };
}

/**
 * Submits PROMPT from Ferdie, waits for the task to end and checks the balances of
 * the requester, the community fund and `watched` miners against docs/protocol.md,
 * paying the pipelines in `agreeing(details)`. Returns the task's details.
 */
async function runTask(net, watchedMiners, { timeoutMs = 120_000, agreeing, afterSubmit } = {}) {
  const { api } = net;
  const requester = account('ferdie');
  const community = palletAccount(api, api.consts.treasury.palletId);
  const minerAddresses = watchedMiners.map((name) => account(name).address);
  const watched = [requester.address, community, ...minerAddresses];
  const start = await bestBlock(api);
  const before = await balancesAt(api, start.hash, watched);

  const q = await tasks.quote(api, 0, PROMPT, MAX_TOKENS);
  const submitted = await tasks.submitTask(api, requester, {
    model: 0, prompt: PROMPT, maxTokens: MAX_TOKENS, maxFee: q.maxFee, sampling: SAMPLING,
  });
  assert.ok(submitted.ok, submitted.error);
  if (afterSubmit) await afterSubmit(submitted.task);
  const details = await tasks.waitForResult(api, submitted.task, timeoutMs);
  const end = await bestBlock(api);
  const after = await balancesAt(api, end.hash, watched);
  const fees = await feesInBlocks(api, start.number + 1, end.number);

  assert.equal(details.status, 'Completed', details.slots.map((s) => `${s.pipeline}/${s.chunk} ${s.expert}: ${s.state}`).join('; '));
  const pipelines = agreeing(details);
  const payout = await expectedPayout(api, details, pipelines);
  assert.deepEqual(
    {
      fee: BigInt(details.settlement.fee),
      miners: BigInt(details.settlement.miners),
      community: BigInt(details.settlement.community),
      refunded: BigInt(details.settlement.refunded),
    },
    { fee: payout.fee, miners: payout.miners, community: payout.community, refunded: q.maxFee - payout.fee },
  );
  const expected = new Map([
    [requester.address, before.get(requester.address) - payout.fee - (fees.get(requester.address) ?? 0n)],
    // Four fifths of the transaction fees go to the community fund too (a fifth to the
    // blocks' authors, counted in `fees` as a negative cost).
    [community, before.get(community) + payout.community + fees.toFund],
    ...minerAddresses.map((a) => [a, before.get(a) + (payout.earned.get(a) ?? 0n) - (fees.get(a) ?? 0n)]),
  ]);
  for (const [address, amount] of expected) {
    assert.equal(after.get(address), amount, `balance of ${address}`);
  }
  return { details, payout, start, end };
}

/** The task pallet's events about `expert` in blocks `from..=to`, by name. */
async function poawEventsOf(api, expert, from, to) {
  const counts = {};
  for (let number = from; number <= to; number++) {
    const events = await api.query.system.events.at(await api.rpc.chain.getBlockHash(number));
    for (const { event } of events) {
      if (event.section === 'poaw' && event.data.expert?.toString() === expert) {
        counts[event.method] = (counts[event.method] ?? 0) + 1;
      }
    }
  }
  return counts;
}

/** The pipelines that revealed the accepted output (the majority). */
function majority(details) {
  const counts = new Map();
  for (const out of details.outputs) counts.set(out.hash, (counts.get(out.hash) ?? 0) + 1);
  const [hash] = [...counts].sort((a, b) => b[1] - a[1])[0];
  return details.outputs.filter((out) => out.hash === hash).map((out) => out.pipeline);
}

test('miners answer a prompt with what dllm-infer generates, and are paid as docs/protocol.md says', async () => {
  const net = await startTestnet({ mode: 'Redundant' });
  try {
    const { details } = await runTask(net, ['bob', 'charlie', 'dave'], { agreeing: majority });
    const reference = await referenceGeneration(net.modelDir, PROMPT, MAX_TOKENS, REFERENCE_SAMPLING);
    assert.equal(details.outputs.length, 2, 'both pipelines revealed');
    for (const out of details.outputs) {
      assert.equal(out.promptTokens, reference.prompt_tokens.length);
      assert.deepEqual(out.tokens, reference.tokens, `pipeline ${out.pipeline}'s tokens`);
      assert.equal(out.text, reference.text);
    }
    const slots = details.slots.map((s) => `${s.pipeline}/${s.chunk}:${s.state}`).sort();
    assert.deepEqual(slots, ['0/0:Revealed', '0/1:Revealed', '1/0:Revealed', '1/1:Revealed']);
  } finally {
    await net.stop();
  }
});

test('a miner that is down when its slot comes is not paid; a restarted miner reveals once; the task completes', async () => {
  const net = await startTestnet({ mode: 'Redundant' });
  try {
    const { api } = net;
    const dave = account('dave').address;
    // Charlie's node crashes after the chain registered it: the auction still gives it
    // chunk 1 of the Bob → Charlie pipeline. Bob cannot reach it, neither commits, and
    // at the commit deadline the chain finds no free replacement (Dave is in the other
    // pipeline) and abandons that pipeline; Dave's completes the task.
    await net.miners.charlie.kill();
    // Dave commits both his slots, then his node is killed and restarted on the same
    // base path while the reveals wait for the commit deadline: it must reveal what it
    // committed (the salt is only in its miner directory) and commit nothing twice.
    const restartDave = async (task) => {
      for (let i = 0; ; i++) {
        const slots = (await tasks.assignments(api, dave)).filter((a) => a.task === task);
        if (slots.length === 2 && slots.every((a) => a.state === 'Committed')) break;
        assert.ok(i < 120, 'Dave commits within a minute');
        await new Promise((r) => setTimeout(r, 500));
      }
      await net.miners.dave.kill();
      await net.startMiner('dave');
    };
    const { details, payout, start, end } = await runTask(net, ['bob', 'charlie', 'dave'], {
      timeoutMs: 300_000,
      agreeing: majority,
      afterSubmit: restartDave,
    });
    const charlie = account('charlie').address;
    const bob = account('bob').address;
    assert.equal(payout.earned.get(charlie), undefined, 'Charlie earned nothing');
    assert.equal(payout.earned.get(bob), undefined, 'Bob, whose pipeline could not finish, earned nothing');
    assert.ok(payout.earned.get(dave) > 0n, 'Dave was paid');
    const charlieSlot = details.slots.find((s) => s.expert === charlie);
    assert.equal(charlieSlot.state, 'Missed');
    const reference = await referenceGeneration(net.modelDir, PROMPT, MAX_TOKENS, REFERENCE_SAMPLING);
    assert.deepEqual(details.outputs.map((o) => o.tokens), [reference.tokens]);
    assert.match(net.miners.bob.log.join('\n'), /unreachable after 5 attempts/);
    const daves = await poawEventsOf(api, dave, start.number + 1, end.number);
    assert.equal(daves.Committed, 2, 'Dave committed each slot once');
    assert.equal(daves.Revealed, 2, 'Dave revealed each slot once, after his restart');
  } finally {
    await net.stop();
  }
});

test('a miner that returns wrong activations is outvoted (redundancy 3) and not paid', async () => {
  const net = await startTestnet({ mode: 'Redundant', perturb: ['dave'] });
  try {
    const { api } = net;
    // A third disjoint pipeline: Eve registers for both chunks with her node's peer id.
    await registerDevMiner(api, 'eve', account('eve'));
    const { dispatchError } = await sendAndFinalize(api.tx.sudo.sudo(api.tx.poaw.setRedundancy(3)), account('alice'));
    assert.equal(dispatchError, undefined);
    await net.startMiner('eve');

    const { details, payout } = await runTask(net, ['bob', 'charlie', 'dave', 'eve'], { agreeing: majority });
    const dave = account('dave').address;
    assert.equal(details.outputs.length, 3, 'three pipelines revealed');
    const davesPipeline = details.slots.find((s) => s.expert === dave).pipeline;
    const davesOutput = details.outputs.find((o) => o.pipeline === davesPipeline);
    const others = details.outputs.filter((o) => o.pipeline !== davesPipeline);
    assert.equal(others[0].hash, others[1].hash, 'the honest pipelines agree');
    assert.notEqual(davesOutput.hash, others[0].hash, 'the perturbed pipeline disagrees');
    const reference = await referenceGeneration(net.modelDir, PROMPT, MAX_TOKENS, REFERENCE_SAMPLING);
    assert.deepEqual(others[0].tokens, reference.tokens);
    assert.equal(payout.earned.get(dave), undefined, 'Dave earned nothing');
    for (const name of ['bob', 'charlie', 'eve']) {
      assert.ok(payout.earned.get(account(name).address) > 0n, `${name} was paid`);
    }
  } finally {
    await net.stop();
  }
});

test('miners run several tasks at once, each with its own answer', async () => {
  const net = await startTestnet({ mode: 'Redundant' });
  try {
    const { api } = net;
    const prompts = [['ferdie', 'What is DLLM?'], ['eve', 'Tell me about GPUs.'], ['alice', 'Why pipelines?']];
    // Three requesters in parallel: their tasks are assigned in the same blocks, so each
    // miner holds several pipelines at once (capacity 4).
    const submitted = await Promise.all(prompts.map(async ([who, prompt]) => {
      const q = await tasks.quote(api, 0, prompt, MAX_TOKENS);
      const result = await tasks.submitTask(api, account(who), {
        model: 0, prompt, maxTokens: MAX_TOKENS, maxFee: q.maxFee, sampling: SAMPLING,
      });
      assert.ok(result.ok, result.error);
      return { prompt, task: result.task };
    }));
    const pipelines = [];
    for (const { prompt, task } of submitted) {
      const details = await tasks.waitForResult(api, task, 120_000);
      pipelines.push(details.task.pipelines);
      assert.equal(details.status, 'Completed');
      const reference = await referenceGeneration(net.modelDir, prompt, MAX_TOKENS, REFERENCE_SAMPLING);
      // The auction forms fewer pipelines when the experts' capacity runs out (Dave's
      // two slots per task count twice against his 4).
      assert.equal(details.outputs.length, details.task.pipelines, `${prompt}: every pipeline revealed`);
      for (const out of details.outputs) assert.deepEqual(out.tokens, reference.tokens, `${prompt}`);
    }
    assert.ok(pipelines.reduce((a, b) => a + b, 0) >= 4, `pipelines per task: ${pipelines}`);
  } finally {
    await net.stop();
  }
});
