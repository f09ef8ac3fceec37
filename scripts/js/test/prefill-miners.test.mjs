// Prefill verification (PoAW v2, the dev chain's mode from genesis) on real miner nodes,
// on loopback: one pipeline of `dllm-node --miner` nodes generates, a disjoint one
// recomputes the published generation by prefill and checks its sampling, and the chain
// compares their fingerprints. A miner that distorts its activations
// (`--miner-perturb-activations`) is caught whichever side it is on: a referee node
// settles the dispute, the liar is slashed and nobody else is blamed; no root call
// anywhere. A stage that corrupts only what it sends is blamed instead of its downstream
// (the referee reruns the downstream stage on its signed input). Miners in f16 and f32
// agree. A miner killed mid-generation is claimed silent by its upstream, blamed alone
// and replaced; its upstream replays the steps so far to the replacement, and the token
// stream continues without a gap. With two generators, the verifier checks each: the one
// that distorts its work is settled by a referee node and slashed, the other answers.
// Balances move as docs/protocol.md says.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import * as experts from '../lib/experts.mjs';
import { freePort, scrape, sendAndFinalize } from '../lib/node.mjs';
import {
  MINER_SHARE_PARTS, ceilDiv, feesInBlocks, moneyEvents, prefillEarned, prefillShareParts, total,
} from '../lib/settlement.mjs';
import * as tasks from '../lib/tasks.mjs';
import { referenceGeneration, registerDevMiner, startTestnet, verifyRecord } from '../lib/testnet.mjs';

const PROMPT = 'What is DLLM?';
const MAX_TOKENS = 12;
const SAMPLING = { temperatureMilli: 800, topK: 40, topP: 950_000_000, seed: 42 };
const REFERENCE_SAMPLING = { temperature: 0.8, topK: 40, topP: 0.95, seed: 42 };
/** Below the genesis experts' 10 µDLLM per token per layer: the auction's first picks. */
const CHEAPEST = 4n * 10n ** 6n;
const CHEAPER = 6n * 10n ** 6n;

await cryptoWaitReady();
const keyring = new Keyring({ type: 'sr25519' });
const account = (name) => keyring.addFromUri(`//${name[0].toUpperCase()}${name.slice(1)}`);

/** With DLLM_TEST_DIR set, a test's nodes keep their logs in a directory of it. */
function logDir(name) {
  return process.env.DLLM_TEST_DIR ? join(process.env.DLLM_TEST_DIR, `${name}-${Date.now()}`) : undefined;
}

async function bestNumber(api) {
  return (await api.rpc.chain.getHeader()).number.toNumber();
}

/** The dev chain verifies by prefill from genesis. */
async function usePrefill(api) {
  assert.equal((await api.query.poaw.verification()).toString(), 'Prefill');
}

/** Registers and starts the miner nodes of `cheap` ({ name: price }), in order, in `dtype`. */
async function addMiners(net, cheap, dtype = 'f32') {
  for (const [name, price] of Object.entries(cheap)) {
    await registerDevMiner(net.api, name, account(name), { price, dtype });
    await net.startMiner(name, { dtype });
  }
}

/**
 * Submits PROMPT from `requester` (with `generators` generators) and waits for the task
 * to end; returns its details, the money events and transaction fees of the blocks it
 * took, and the requester's balance change. `afterSubmit(task)` runs while the task is
 * under way.
 */
async function runTask(api, requester, { afterSubmit = async () => {}, generators = 1 } = {}) {
  const start = await bestNumber(api);
  const before = await total(api, requester.address);
  const q = await tasks.quote(api, 0, PROMPT, MAX_TOKENS, generators);
  assert.equal(q.mode, 'Prefill');
  // Exactly the quote: its cap is the cheap winners' ask, yet the dearer genesis experts
  // referee (referees are paid from the loser's slash, not held to the cap).
  const submitted = await tasks.submitTask(api, requester, {
    model: 0, prompt: PROMPT, maxTokens: MAX_TOKENS, maxFee: q.maxFee, sampling: SAMPLING, generators,
  });
  assert.ok(submitted.ok, submitted.error);
  // Followed two ways: the node's token stream and the chain's record.
  const streamed = tasks.streamTask(api, submitted.task, { timeoutMs: 240_000 });
  await afterSubmit(submitted.task);
  const details = await tasks.waitForResult(api, submitted.task, 240_000);
  const stream = await streamed;
  assert.equal(stream.final.status, details.status, 'the stream ends with the chain\'s verdict');
  const end = await bestNumber(api);
  const money = await moneyEvents(api, start + 1, end);
  const fees = await feesInBlocks(api, start + 1, end);
  const spent = before - (await total(api, requester.address));
  return { task: submitted.task, details, money, fees, spent, start, end, stream };
}

/** The layers of each chunk of the dev model. */
async function chunkLayers(api) {
  const model = (await api.query.models.models(0)).unwrap();
  return model.spec.chunks.map((c) => c.endLayer.toNumber() - c.startLayer.toNumber());
}

/** What each expert earns for `slots` (at generator `pair`'s output), by docs/protocol.md. */
async function earnings(api, details, slots, pair = 0) {
  const layers = await chunkLayers(api);
  const output = details.outputs.find((o) => o.pipeline === pair);
  const tokens = output.promptTokens + output.tokens.length;
  const share = prefillShareParts(api);
  const sums = new Map();
  for (const slot of slots) {
    sums.set(slot.expert, (sums.get(slot.expert) ?? 0n) + prefillEarned(slot, layers, tokens, share));
  }
  return sums;
}

/**
 * Eve (chunk 0) and Ferdie (chunk 1), asking least, generate on two miner nodes; Dave
 * (both chunks), re-priced to ask next, verifies; Bob and Charlie are left over.
 */
async function splitGenerator(net) {
  const priced = await experts.setPrice(net.api, account('dave'), CHEAPER);
  assert.ok(priced.ok, priced.error);
  for (const [name, chunk] of [['eve', 0], ['ferdie', 1]]) {
    await registerDevMiner(net.api, name, account(name), { price: CHEAPEST, chunks: [chunk] });
    await net.startMiner(name);
  }
}

/** The poaw events of blocks `from..=to`, as `{ method, ...fields }`. */
async function poawEvents(api, from, to) {
  const found = [];
  for (let number = from; number <= to; number++) {
    const events = await api.query.system.events.at(await api.rpc.chain.getBlockHash(number));
    for (const { event } of events) {
      if (event.section !== 'poaw') continue;
      const names = event.meta.fields.map((f) => f.name.toString());
      found.push({ method: event.method, ...Object.fromEntries(names.map((n, i) => [n, event.data[i].toJSON()])) });
    }
  }
  return found;
}

/** The dispute settlements among `events`, as [chunk, outcome]. */
function settlements(events) {
  return events.filter((e) => e.method === 'DisputeSettled').map((e) => [e.chunk, e.outcome]);
}

function describe(details, events = []) {
  const slots = details.slots.map((s) => `${s.role} ${s.pipeline}/${s.chunk} ${s.expert}: ${s.state}`);
  const flow = events.filter((e) => !['Committed', 'Revealed', 'SlotAssigned', 'MinerPaid'].includes(e.method));
  return `${slots.join('; ')}\n${flow.map((e) => JSON.stringify(e)).join('\n')}`;
}

test('one pipeline generates, a disjoint one verifies by prefill: the answer is dllm-infer\'s and both are paid, no miner pays a fee', async () => {
  // Charlie's node holds only an operator key (N4): his own key, which controls his
  // stake, stays in his wallet. He funds it for its existence and names it on chain.
  const operator = keyring.addFromUri('//Charlie//operator');
  const net = await startTestnet({ operators: { charlie: '//Charlie//operator' } });
  try {
    const { api } = net;
    await usePrefill(api);
    const charlie = account('charlie');
    const funded = await sendAndFinalize(api.tx.balances.transferKeepAlive(operator.address, experts.UNIT), charlie);
    assert.ok(!funded.dispatchError, String(funded.dispatchError));
    const named = await experts.setOperator(api, charlie, operator.address);
    assert.ok(named.ok, named.error);
    const charlieNode = net.miners.charlie.api;
    assert.equal((await charlieNode.rpc.author.hasKey(u8aToHex(charlie.publicKey), 'dllm')).toJSON(), false);
    assert.equal((await charlieNode.rpc.author.hasKey(u8aToHex(operator.publicKey), 'dllm')).toJSON(), true);
    const operatorBefore = await total(api, operator.address);

    const requester = account('ferdie');
    const { task, details, money, fees, spent, stream, start, end } = await runTask(api, requester);
    assert.equal(details.status, 'Completed', describe(details));

    // The miners sign mortal transactions, valid 64 blocks from their best block (L9).
    const duties = [];
    for (let number = start; number <= end; number++) {
      const block = await api.rpc.chain.getBlock(await api.rpc.chain.getBlockHash(number));
      for (const ex of block.block.extrinsics) {
        if (ex.isSigned && ex.method.section === 'poaw' && ex.signer.toString() !== requester.address) duties.push(ex);
      }
    }
    assert.ok(duties.length >= 4, `the miners' duties: ${duties.length}`);
    for (const ex of duties) {
      assert.ok(ex.era.isMortalEra, `${ex.method.method} by ${ex.signer} is mortal`);
      assert.equal(ex.era.asMortalEra.period.toNumber(), 64);
    }

    const reference = await referenceGeneration(net.modelDir, PROMPT, MAX_TOKENS, REFERENCE_SAMPLING);
    // The miners' record as the chain keeps it (the output and the generator's revealed
    // fingerprints) passes dllm-infer's own verification by prefill.
    const record = await tasks.generationRecord(api, task, reference.prompt_tokens);
    const audit = await verifyRecord(net.modelDir, record);
    assert.equal(audit.code, 0, JSON.stringify(audit.report));
    assert.equal(audit.report.chunks.length, 2);
    assert.ok(audit.report.chunks.every((c) => c.accepted), JSON.stringify(audit.report));
    assert.equal(audit.report.sampling.accepted, true);
    assert.equal(details.outputs.length, 1, 'only the generator publishes an output');
    const [output] = details.outputs;
    assert.equal(output.promptTokens, reference.prompt_tokens.length);
    assert.deepEqual(output.tokens, reference.tokens);
    assert.equal(output.text, reference.text);
    // The tokens streamed from the generator's first-chunk miner (through the validator
    // node the client is connected to) are the published output, in order, no gap.
    assert.deepEqual(stream.tokens.map((t) => t.index), reference.tokens.map((_, i) => i));
    assert.deepEqual(stream.tokens.map((t) => t.token), output.tokens);
    assert.equal(stream.text, output.text);
    assert.equal(stream.final.output, output.text);
    assert.deepEqual(stream.final.tokens, output.tokens);
    assert.equal(stream.final.fee, BigInt(details.settlement.fee).toString());

    const roles = details.slots.map((s) => `${s.role} ${s.pipeline}/${s.chunk}:${s.state}`).sort();
    assert.deepEqual(roles, ['Generator 0/0:Revealed', 'Generator 0/1:Revealed', 'Verifier 1/0:Revealed', 'Verifier 1/1:Revealed']);
    const generators = details.slots.filter((s) => s.role === 'Generator').map((s) => s.expert);
    const verifiers = details.slots.filter((s) => s.role === 'Verifier').map((s) => s.expert);
    assert.ok(verifiers.every((v) => !generators.includes(v)), 'the verifier checks work not its own');

    const expected = await earnings(api, details, details.slots);
    assert.deepEqual(money.paid, expected);
    assert.equal(money.slashed.size, 0);
    const miners = [...expected.values()].reduce((a, b) => a + b, 0n);
    const fee = ceilDiv(miners * 1_000_000_000n, MINER_SHARE_PARTS);
    assert.equal(BigInt(details.settlement.fee), fee);
    assert.equal(spent, fee + (fees.get(requester.address) ?? 0n));
    for (const slot of details.slots) {
      assert.equal(fees.get(slot.expert) ?? 0n, 0n, `${slot.expert} paid no transaction fee for its duties`);
    }
    // Charlie's operator signed his duties (his node has no other key), free; the pay
    // went to Charlie.
    assert.ok(details.slots.some((s) => s.expert === charlie.address && s.state.startsWith('Revealed')), describe(details));
    assert.ok(money.paid.get(charlie.address) > 0n);
    assert.equal(fees.get(operator.address) ?? 0n, 0n, 'the operator paid no transaction fee');
    assert.equal(await total(api, operator.address), operatorBefore);
  } finally {
    await net.stop();
  }
});

test('a generator that distorts its activations is caught by the verifier, settled by a referee node, slashed; the requester is refunded in full', async () => {
  // Eve asks least: she generates both chunks, distorting what she computes. Ferdie
  // serves both chunks at the genesis price, so that chunk 0 has a referee whichever
  // miner verifies it.
  const net = await startTestnet({ perturb: ['eve'] });
  try {
    const { api } = net;
    await usePrefill(api);
    await addMiners(net, { eve: CHEAPEST, ferdie: 10n * 10n ** 6n });
    const eve = account('eve').address;
    const requester = account('alice');
    const { details, money, fees, spent, start, end } = await runTask(api, requester);
    const events = await poawEvents(api, start + 1, end);
    assert.equal(details.status, 'Expired', describe(details, events));
    assert.ok(details.slots.filter((s) => s.role === 'Generator').every((s) => s.expert === eve), describe(details));
    assert.deepEqual(settlements(events), [[0, 'GeneratorLost']], describe(details, events));
    const referees = details.slots.filter((s) => s.role === 'Referee');
    // The refunded task frees every slot (Abandoned); the referees' reveals are in the
    // events, from as many referee pipelines as the market could form (at most 2).
    assert.ok(referees.length > 0, describe(details, events));
    const assigned = events.find((e) => e.method === 'RefereesAssigned');
    console.log(`referee pipelines: ${assigned?.referees} (${new Set(referees.map((s) => s.pipeline)).size} in the slots)`);
    for (const referee of referees) {
      assert.ok(events.some((e) => e.method === 'Revealed' && e.pipeline === referee.pipeline && e.chunk === referee.chunk), describe(details, events));
    }
    // Only Eve's bond is touched, and her slash pays the verifier's and the referees'
    // prefill work.
    assert.deepEqual([...money.slashed.keys()], [eve]);
    assert.equal(money.slashed.get(eve), 1_000n * experts.UNIT, '10% of a 10 000 DLLM bond');
    assert.deepEqual(money.paid, await earnings(api, details, details.slots.filter((s) => s.role !== 'Generator')));
    assert.equal(spent, fees.get(requester.address) ?? 0n, 'the requester paid its transaction fee only');
  } finally {
    await net.stop();
  }
});

test('a verifier that distorts its activations loses against the referee node: slashed, the task completes and the generator is paid', async () => {
  // Ferdie asks least and generates honestly; Eve asks next and verifies, distorting.
  const net = await startTestnet({ perturb: ['eve'] });
  try {
    const { api } = net;
    await usePrefill(api);
    await addMiners(net, { ferdie: CHEAPEST, eve: CHEAPER });
    const eve = account('eve').address;
    const ferdie = account('ferdie').address;
    const requester = account('alice');
    const { details, money, fees, spent, start, end } = await runTask(api, requester);
    const events = await poawEvents(api, start + 1, end);
    assert.equal(details.status, 'Completed', describe(details, events));
    assert.ok(details.slots.filter((s) => s.role === 'Generator').every((s) => s.expert === ferdie), describe(details));
    assert.ok(details.slots.filter((s) => s.role === 'Verifier').every((s) => s.expert === eve), describe(details));

    const reference = await referenceGeneration(net.modelDir, PROMPT, MAX_TOKENS, REFERENCE_SAMPLING);
    assert.deepEqual(details.outputs.map((o) => o.tokens), [reference.tokens]);
    assert.deepEqual(settlements(events), [[0, 'VerifierLost']], describe(details, events));
    assert.deepEqual([...money.slashed.keys()], [eve]);
    // The requester pays the generation; the referees are paid from Eve's slash.
    const generation = await earnings(api, details, details.slots.filter((s) => s.role === 'Generator'));
    const referees = await earnings(api, details, details.slots.filter((s) => s.role === 'Referee'));
    const expected = new Map([...generation]);
    for (const [who, amount] of referees) expected.set(who, (expected.get(who) ?? 0n) + amount);
    assert.deepEqual(money.paid, expected);
    const miners = [...generation.values()].reduce((a, b) => a + b, 0n);
    assert.equal(spent, ceilDiv(miners * 1_000_000_000n, MINER_SHARE_PARTS) + (fees.get(requester.address) ?? 0n));
  } finally {
    await net.stop();
  }
});

test('a generator stage that sends what it did not fingerprint is slashed; its downstream, fed that input, is not blamed', async () => {
  // Eve serves chunk 0 only and Ferdie chunk 1 only, both asking least: they generate.
  // Dave (both chunks) asks next and verifies; Bob (chunk 0) and Charlie (chunk 1) are
  // left to referee. Eve fingerprints her honest hidden states but sends distorted ones
  // (`--miner-corrupt-sent`), so only Ferdie's chunk 1 disagrees with the verifier. The
  // referee of chunk 1 reruns Ferdie's stage on the input Eve signed and sent him: his
  // output follows from it, the input does not follow from chunk 0, and the blame moves
  // to Eve. Ferdie's node is killed as soon as it submits its commit (by then the input
  // it computed on is on disk) and restarted: it reveals from its miner directory, and
  // the input the referee asks for comes back from there.
  const net = await startTestnet({ corruptSent: ['eve'], dir: logDir('corrupt-sent') });
  try {
    const { api } = net;
    await usePrefill(api);
    await splitGenerator(net);
    const eve = account('eve').address;
    const ferdie = account('ferdie').address;
    const requester = account('alice');
    const restartFerdie = async (task) => {
      const committed = `task ${task} pipeline 0 chunk 1: commit submitted`;
      for (let i = 0; !net.miners.ferdie.log.some((l) => l.includes(committed)); i++) {
        assert.ok(i < 1200, 'Ferdie commits within a minute');
        await new Promise((r) => setTimeout(r, 50));
      }
      await net.miners.ferdie.kill();
      await net.startMiner('ferdie');
    };
    const { details, money, fees, spent, start, end } = await runTask(api, requester, { afterSubmit: restartFerdie });
    const events = await poawEvents(api, start + 1, end);
    assert.equal(details.status, 'Expired', describe(details, events));
    const generator = details.slots.filter((s) => s.role === 'Generator').map((s) => [s.chunk, s.expert]);
    assert.deepEqual(generator.sort(), [[0, eve], [1, ferdie]], describe(details));
    const compared = events.find((e) => e.method === 'WorkCompared');
    assert.equal(compared?.disagreement, 1, describe(details, events));
    assert.ok(events.some((e) => e.method === 'BlameTraced' && e.pipeline === 0 && e.chunk === 0), describe(details, events));
    assert.deepEqual(settlements(events), [[1, 'GeneratorLost']], describe(details, events));
    assert.deepEqual([...money.slashed.keys()], [eve]);
    assert.ok(!money.paid.has(ferdie), 'the downstream stage is neither paid nor slashed');
    // The referee asked for Ferdie's input after his restart (the dispute opens only
    // once the verifier has run) and got it: withheld, it would have blamed him, not Eve.
    assert.equal(spent, fees.get(requester.address) ?? 0n, 'the requester paid its transaction fee only');
  } finally {
    await net.stop();
  }
});

test('the chunk-1 miner killed mid-generation is claimed silent, blamed alone and replaced, which rebuilds its cache from the replayed steps; the stream has no gap and the answer is dllm-infer\'s', async () => {
  // Eve (chunk 0) and Ferdie (chunk 1) ask least and generate, Eve pausing 400 ms
  // after each token so that the kill lands mid-generation; Dave asks next and
  // verifies; Charlie (chunk 1) is the next best for Ferdie's chunk.
  const prometheus = { eve: await freePort() };
  const net = await startTestnet({
    extraArgs: { eve: ['--miner-token-delay-ms', '400'] }, prometheus, dir: logDir('killed'),
  });
  try {
    const { api } = net;
    await usePrefill(api);
    await splitGenerator(net);
    const [eve, ferdie, charlie] = ['eve', 'ferdie', 'charlie'].map((name) => account(name).address);
    const requester = account('alice');
    const start = await bestNumber(api);
    // Twice the quote: the price cap then covers Charlie's ask (a replacement is held
    // to the task's cap).
    const q = await tasks.quote(api, 0, PROMPT, MAX_TOKENS);
    const submitted = await tasks.submitTask(api, requester, {
      model: 0, prompt: PROMPT, maxTokens: MAX_TOKENS, maxFee: q.maxFee * 2n, sampling: SAMPLING,
    });
    assert.ok(submitted.ok, submitted.error);
    let killed = null;
    const streamed = tasks.streamTask(api, submitted.task, {
      timeoutMs: 300_000,
      onToken: (token) => {
        if (token.index === 2 && !killed) killed = net.miners.ferdie.kill();
      },
    });
    const details = await tasks.waitForResult(api, submitted.task, 300_000);
    const stream = await streamed;
    assert.ok(killed, 'Ferdie was killed after the third streamed token');
    await killed;
    const end = await bestNumber(api);
    const events = await poawEvents(api, start + 1, end);
    const money = await moneyEvents(api, start + 1, end);
    assert.equal(details.status, 'Completed', describe(details, events));
    // Eve said Ferdie left her waiting; Ferdie alone was blamed, and Charlie took his
    // chunk while Eve kept hers.
    assert.ok(
      events.some((e) => e.method === 'SilenceClaimed' && e.pipeline === 0 && e.chunk === 0 && e.silent === 1),
      describe(details, events),
    );
    assert.deepEqual(events.filter((e) => e.method === 'DeadlineMissed').map((e) => e.expert), [ferdie], describe(details, events));
    assert.ok(events.some((e) => e.method === 'SlotReassigned' && e.chunk === 1 && e.expert === charlie), describe(details, events));
    const generator = details.slots.filter((s) => s.role === 'Generator').map((s) => [s.chunk, s.expert]);
    assert.deepEqual(generator.sort(), [[0, eve], [1, charlie]], describe(details));
    // The answer is dllm-infer's, and the stream delivered it whole, in order, once.
    const reference = await referenceGeneration(net.modelDir, PROMPT, MAX_TOKENS, REFERENCE_SAMPLING);
    assert.deepEqual(details.outputs[0].tokens, reference.tokens);
    assert.deepEqual(stream.tokens.map((t) => t.index), reference.tokens.map((_, i) => i));
    assert.deepEqual(stream.tokens.map((t) => t.token), reference.tokens);
    assert.equal(stream.text, reference.text);
    assert.equal(stream.final.status, 'Completed');
    // The killed miner is unpaid; the others are paid; nobody is slashed.
    assert.ok(!money.paid.has(ferdie), 'the killed miner is not paid');
    assert.ok(money.paid.has(eve) && money.paid.has(charlie), describe(details, events));
    assert.equal(money.slashed.size, 0);
    // Eve did not start over: she ran each of the 12 steps once and replayed the steps
    // Ferdie had run (at least the three streamed before the kill) to Charlie, who
    // rebuilt his cache from them and went on.
    assert.equal(await scrape(prometheus.eve, 'dllm_miner_tokens_total'), reference.tokens.length);
    const replayed = await scrape(prometheus.eve, 'dllm_miner_replayed_steps_total');
    assert.ok(replayed >= 3 && replayed < reference.tokens.length, `replayed ${replayed} steps`);
  } finally {
    await net.stop();
  }
});

test('a generator computing in f16 and verifiers in f32 agree on 10 prompts of 32 tokens: no dispute', async () => {
  // Eve asks least and runs f16; the genesis experts verify in f32.
  const net = await startTestnet();
  try {
    const { api } = net;
    await usePrefill(api);
    await addMiners(net, { eve: CHEAPEST }, 'f16');
    const eve = account('eve').address;
    const requesters = ['alice', 'ferdie'].map(account);
    const start = await bestNumber(api);
    // Eve holds two slots per task against her capacity of 4 (and submissions need a
    // free generator): two tasks at a time.
    const generated = [];
    for (let batch = 0; batch < 5; batch++) {
      const submitted = await Promise.all([0, 1].map(async (j) => {
        const i = batch * 2 + j;
        const prompt = `Prompt number ${i}: tell me about ${['GPUs', 'pipelines', 'tokens', 'stakes', 'blocks'][i % 5]}.`;
        const q = await tasks.quote(api, 0, prompt, 32);
        const result = await tasks.submitTask(api, requesters[j], {
          model: 0, prompt, maxTokens: 32, maxFee: q.maxFee * 2n,
          sampling: { ...SAMPLING, temperatureMilli: j ? 800 : 0, seed: i },
        });
        assert.ok(result.ok, result.error);
        return result.task;
      }));
      for (const task of submitted) {
        const details = await tasks.waitForResult(api, task, 240_000);
        assert.equal(details.status, 'Completed', describe(details));
        assert.ok(details.slots.filter((s) => s.role === 'Generator').every((s) => s.expert === eve && s.format === 'F16'), describe(details));
        assert.ok(details.slots.filter((s) => s.role === 'Verifier').every((s) => s.format === 'F32'), describe(details));
        generated.push(details.outputs[0].tokens.length);
      }
    }
    const events = await poawEvents(api, start + 1, await bestNumber(api));
    const compared = events.filter((e) => e.method === 'WorkCompared');
    assert.equal(compared.length, 10);
    assert.ok(compared.every((e) => e.disagreement === null && e.sampling_accepted), JSON.stringify(compared));
    assert.equal(events.filter((e) => e.method === 'RefereesAssigned').length, 0);
    console.log(`f16 generator, f32 verifiers: 10 tasks, generated tokens ${generated.join(', ')}, no dispute`);
  } finally {
    await net.stop();
  }
});

test('two generators on miner nodes: the verifier checks each, the one that distorts its work is settled by a referee node and slashed, the other\'s answer (dllm-infer\'s) is delivered', async () => {
  const net = await startTestnet({ perturb: ['ferdie'] });
  try {
    const { api } = net;
    await usePrefill(api);
    // Eve and Ferdie ask least and generate; Dave, re-priced to ask next, verifies both;
    // Bob and Charlie are left to referee.
    const priced = await experts.setPrice(api, account('dave'), 8n * 10n ** 6n);
    assert.ok(priced.ok, priced.error);
    await addMiners(net, { eve: CHEAPEST, ferdie: CHEAPER });
    const [eve, ferdie, dave] = ['eve', 'ferdie', 'dave'].map((name) => account(name).address);
    const requester = account('alice');
    const { details, money, fees, spent, start, end, stream } = await runTask(api, requester, { generators: 2 });
    const events = await poawEvents(api, start + 1, end);
    assert.equal(details.status, 'Completed', describe(details, events));
    assert.equal(details.task.generators, 2);
    const expertsOf = (pipeline) => [...new Set(details.slots.filter((s) => s.pipeline === pipeline).map((s) => s.expert))];
    assert.deepEqual([0, 1, 2, 3].map(expertsOf), [[eve], [ferdie], [dave], [dave]], describe(details, events));
    // Each pair compared; Ferdie's (pair 1) disputed at its first chunk and lost.
    assert.deepEqual(events.filter((e) => e.method === 'WorkCompared').map((e) => e.pair).sort(), [0, 1]);
    const disputes = events.filter((e) => e.method === 'DisputeSettled').map((e) => [e.pair, e.chunk, e.outcome]);
    assert.deepEqual(disputes, [[1, 0, 'GeneratorLost']], describe(details, events));
    assert.deepEqual([...money.slashed.keys()], [ferdie]);
    // The answer is Eve's, which is dllm-infer's, and it is what the stream carried.
    const reference = await referenceGeneration(net.modelDir, PROMPT, MAX_TOKENS, REFERENCE_SAMPLING);
    const answer = details.outputs.find((o) => o.pipeline === 0);
    assert.deepEqual(answer.tokens, reference.tokens);
    assert.equal(answer.text, reference.text);
    assert.equal(stream.final.output, answer.text);
    assert.deepEqual(stream.tokens.map((t) => t.token), answer.tokens);
    // The requester pays Eve's generation and Dave's check of it; Ferdie's slash paid
    // Dave's check of Ferdie and the referee.
    const pairZero = details.slots.filter((s) => s.pipeline === 0 || s.pipeline === 2);
    const owed = await earnings(api, details, pairZero, 0);
    const miners = [...owed.values()].reduce((a, b) => a + b, 0n);
    const fee = ceilDiv(miners * 1_000_000_000n, MINER_SHARE_PARTS);
    assert.equal(BigInt(details.settlement.fee), fee);
    assert.equal(spent, fee + (fees.get(requester.address) ?? 0n));
    assert.equal(money.paid.get(eve), owed.get(eve));
    assert.ok(money.paid.get(dave) > owed.get(dave), 'Dave is also paid from the slash for checking Ferdie');
    assert.equal(money.paid.get(ferdie) ?? 0n, 0n);
  } finally {
    await net.stop();
  }
});
