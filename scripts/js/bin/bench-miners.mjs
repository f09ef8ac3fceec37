#!/usr/bin/env node
// Measures prompts answered by miner nodes on loopback against one dllm-infer process:
//
//   node bin/bench-miners.mjs [--size tiny|mid] [--tasks 3] [--max-tokens 32] [--dir DIR]
//                             [--chain dev|local] [--verify [--kill-at N [--token-delay-ms 100]]]
//
// `tiny` is the dev chain's model 0 (4 layers, hidden 64). `mid` is a random Mistral of
// 8 layers, hidden 1024, vocabulary 32000 (175 M parameters, docs/benchmarks.md),
// written to DIR/mid once and registered here as model 1 in chunks 0..4 and 4..8.
// Redundancy is set to 1 and Dave stops serving, so every task runs in one pipeline of
// two miners, Bob (chunk 0) → Charlie (chunk 1), on loopback. `--chain local`: the
// two-authority local chain (Alice and Bob author 6 s blocks) instead of the dev chain.
// `--verify`: prefill verification instead; Dave keeps serving both chunks, asking more,
// so Bob → Charlie generate and Dave verifies; each task also reports the time the
// verifier's chunks spent in their prefill passes against the time the generator's
// chunks spent generating (Prometheus `dllm_miner_check_seconds_total` and
// `dllm_miner_generation_seconds_total`).
//
// `--kill-at N` (with `--verify`): a replacement mid-generation. Ferdie serves chunk 1
// too, asking most, so he is the chain's next best for it; Bob pauses `--token-delay-ms`
// after each token (so that the kill lands mid-generation whatever the model's speed).
// After the `--tasks` honest tasks, one more task is submitted and Charlie's node is
// killed when its token N is streamed: Bob claims Charlie silent, the chain puts Ferdie
// on chunk 1, Bob replays the steps so far to him and generation goes on. Prints, from
// Bob's log, the kill → claim, claim → replay and replay times, and the task's time to
// its result against the honest tasks'. The decode figures of such a run include the
// pauses.
//
// Per task: inclusion of submit_task → first token (the driver logs the first token's
// wall-clock time), inclusion → result on chain (seen by this client), decode tokens/s
// through the two miners, activation bytes Bob sent per generated token (Prometheus).
// Then `dllm-infer bench` on the same model, prompt length and token count in one
// process, and the ratio. Prints a Markdown table.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import * as experts from '../lib/experts.mjs';
import { freePort, runCli, scrape, sendAndFinalize } from '../lib/node.mjs';
import * as tasks from '../lib/tasks.mjs';
import { inferBinary, registerDevMiner, startTestnet } from '../lib/testnet.mjs';

const run = promisify(execFile);
const PROMPT = 'The quick brown fox jumps over the lazy dog. What does the fox do next?';

function usage(message) {
  console.error(`error: ${message}\nsee the header of bin/bench-miners.mjs for the options`);
  process.exit(2);
}

function parse(argv) {
  const options = { size: 'tiny', tasks: 3, maxTokens: 32, dir: null, chain: 'dev', verify: false, killAt: null, tokenDelayMs: 100 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${flag} needs a value`);
      return argv[++i];
    };
    const count = (text) => {
      if (!/^\d+$/.test(text) || Number(text) < 1) usage(`${flag} must be a positive whole number, got ${text}`);
      return Number(text);
    };
    switch (flag) {
      case '--size': options.size = value(); if (!['tiny', 'mid'].includes(options.size)) usage('--size is tiny or mid'); break;
      case '--tasks': options.tasks = count(value()); break;
      case '--max-tokens': options.maxTokens = count(value()); break;
      case '--dir': options.dir = value(); break;
      case '--chain': options.chain = value(); if (!['dev', 'local'].includes(options.chain)) usage('--chain is dev or local'); break;
      case '--verify': options.verify = true; break;
      case '--kill-at': options.killAt = count(value()); break;
      case '--token-delay-ms': options.tokenDelayMs = count(value()); break;
      default: usage(`unknown option ${flag}`);
    }
  }
  if (options.killAt !== null && !options.verify) usage('--kill-at needs --verify');
  if (options.killAt !== null && options.killAt >= options.maxTokens) usage('--kill-at must be below --max-tokens');
  return options;
}

const MID = ['--layers', '8', '--hidden', '1024', '--heads', '16', '--kv-heads', '4', '--intermediate', '3584',
  '--vocab', '32000', '--sliding-window', '4096', '--max-positions', '4096', '--files', '4', '--seed', '1'];

/** Writes the mid model once; returns its directory and chunk hashes. */
async function midModel(dir) {
  const modelDir = join(dir, 'mid');
  if (!existsSync(join(modelDir, 'config.json'))) {
    await run(inferBinary(), ['make-tiny', '--out', modelDir, ...MID], { maxBuffer: 1 << 24 });
  }
  const { stdout } = await run(inferBinary(), ['hash-chunks', '--model', modelDir, '--shards', '0..4,4..8']);
  return { modelDir, hashes: stdout };
}

/** Registers the mid model as model 1 (root), activates it, Bob serves chunk 0 and Charlie chunk 1. */
// `VerificationParams::F32` of dllm-fingerprint (docs/verification.md): the bench miners run f32.
const F32_TOLERANCE = {
  maxLogRmsError: 4, maxLogRmsBias: 2, maxPositionError: 6, maxBlockError: 2, minTopKOverlap: 800, maxTopKError: 4,
};
const F32_VERIFICATION = {
  fingerprint: { block: 32, topK: 16, projections: 3 },
  hidden: F32_TOLERANCE, logits: F32_TOLERANCE, maxLogitErrorMilli: 1,
};

async function registerMid(api, hashText, keyring, servers) {
  const hex = (label) => {
    const line = hashText.split('\n').find((l) => l.includes(label));
    const match = line && line.match(/[0-9a-f]{64}/);
    if (!match) throw new Error(`no hash for ${label} in:\n${hashText}`);
    return `0x${match[0]}`;
  };
  const spec = {
    name: 'bench-mid', version: 1, architecture: 'Mistral', numLayers: 8, hiddenSize: 1024,
    vocabSize: 32000, maxContext: 4096,
    maxTokenBytes: Number(hashText.match(/max-token-bytes (\d+)/)?.[1] ?? 64),
    chunks: [
      { startLayer: 0, endLayer: 4, weightsHash: hex('0..4') },
      { startLayer: 4, endLayer: 8, weightsHash: hex('4..8') },
    ],
    tokenizerHash: hex('tokenizer'), configHash: hex('config'),
    numerics: [{ format: 'F32', verification: F32_VERIFICATION }], domains: [],
  };
  const alice = keyring.addFromUri('//Alice');
  for (const call of [api.tx.models.registerModel(spec), api.tx.models.activateModel(1)]) {
    const { events } = await sendAndFinalize(api.tx.sudo.sudo(call), alice);
    const sudid = events.find(({ event }) => api.events.sudo.Sudid.is(event));
    if (!sudid || sudid.event.data[0].isErr) throw new Error(`sudo ${call.method.method} failed`);
  }
  for (const [who, chunk] of servers) {
    const result = await experts.serveChunk(api, keyring.addFromUri(who), 1, chunk);
    if (!result.ok) throw new Error(`serve_chunk(1, ${chunk}) by ${who}: ${result.error}`);
  }
}

/** Submits PROMPT greedily; resolves the task and when the block including it arrived. */
function submitTimed(api, signer, model, maxTokens, maxFee) {
  let included;
  return new Promise((resolveTx, reject) => {
    api.tx.poaw.submitTask(model, PROMPT, maxTokens, tasks.GREEDY, maxFee, null)
      .signAndSend(signer, ({ status, events }) => {
        if ((status.isInBlock || status.isFinalized) && included === undefined) {
          included = Date.now();
          const event = events.find(({ event: e }) => api.events.poaw.TaskSubmitted.is(e));
          if (event) resolveTx({ task: event.event.data.task.toNumber(), included });
          else reject(new Error('submit_task was refused'));
        }
      })
      .catch(reject);
  });
}

/** The wall-clock time of a node log line (`2026-12-07 17:05:01.123 ...` with
 * `--detailed-log-output`), in ms. */
function logTime(line) {
  const match = line?.match(/^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{3})?)/);
  if (!match) throw new Error(`no time in log line: ${line}`);
  return new Date(match[1].replace(' ', 'T')).getTime();
}

/**
 * Submits one more task and kills Charlie's node (chunk 1) when token `options.killAt`
 * is streamed; checks the task completes with Ferdie on chunk 1 and returns the
 * replacement's timings from Bob's log.
 */
async function killMidGeneration(net, model, options, keyring, step) {
  const { api } = net;
  const q = await tasks.quote(api, model, PROMPT, options.maxTokens);
  // Twice the quote: a replacement is held to the task's price cap.
  const { task, included } = await submitTimed(api, keyring.addFromUri('//Eve'), model, options.maxTokens, q.maxFee * 2n);
  step(`task ${task} included; Charlie dies at token ${options.killAt}`);
  let killedAt = null;
  let killed = null;
  const streamed = tasks.streamTask(api, task, {
    onToken: (token) => {
      if (token.index === options.killAt && !killed) {
        killedAt = Date.now();
        killed = net.miners.charlie.kill();
      }
    },
  });
  const details = await tasks.waitForResult(api, task, 600_000);
  const done = Date.now();
  await streamed;
  if (!killed) throw new Error(`task ${task}: token ${options.killAt} was never streamed`);
  await killed;
  if (details.status !== 'Completed') throw new Error(`task ${task} ended ${details.status}`);
  const ferdie = keyring.addFromUri('//Ferdie').address;
  const chunk1 = details.slots.find((s) => s.role === 'Generator' && s.chunk === 1);
  if (chunk1?.expert !== ferdie) throw new Error(`task ${task}: chunk 1 generated by ${chunk1?.expert}, not Ferdie`);
  const log = net.miners.bob.log;
  const claim = log.find((l) => l.includes(`task ${task} pipeline 0 chunk 0: chunk 1's miner is silent`));
  const replay = log.find((l) => l.includes(`task ${task} pipeline 0: replayed`));
  const match = replay?.trim().match(/replayed (\d+) steps .* in ([\d.]+)(ms|µs|s)$/);
  if (!claim || !match) throw new Error(`task ${task}: no claim or replay line in Bob's log`);
  const unit = { ms: 1, µs: 0.001, s: 1000 }[match[3]];
  return {
    task,
    killToClaim: logTime(claim) - killedAt,
    claimToReplay: logTime(replay) - logTime(claim),
    replayed: Number(match[1]),
    replayMs: (Number(match[2]) * unit).toFixed(1),
    result: done - included,
  };
}

runCli(async () => {
  const options = parse(process.argv.slice(2));
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519' });
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'dllm-bench-'));
  const mid = options.size === 'mid' ? await midModel(dir) : null;
  const prometheus = { bob: await freePort(), charlie: await freePort(), dave: await freePort() };
  const killing = options.killAt !== null;

  // Miners start after the model is registered (a miner refuses unknown weights).
  const mode = options.verify ? 'Prefill' : 'Redundant';
  // Bob's log, with milliseconds, times the replacement.
  const extraArgs = killing
    ? { bob: ['--miner-token-delay-ms', String(options.tokenDelayMs), '--detailed-log-output'] }
    : {};
  const net = await startTestnet({ miners: [], dir, modelDir: mid?.modelDir, mode, chain: options.chain, extraArgs });
  try {
    const { api } = net;
    const alice = keyring.addFromUri('//Alice');
    const dave = keyring.addFromUri('//Dave');
    const step = (text) => console.error(`[bench] ${text}`);
    const servers = [['//Bob', 0], ['//Charlie', 1]];
    if (options.verify) {
      step('Dave asks more: he verifies');
      const priced = await experts.setPrice(api, dave, 20n * 10n ** 6n);
      if (!priced.ok) throw new Error(`set_price: ${priced.error}`);
      servers.push(['//Dave', 0], ['//Dave', 1]);
      if (killing) {
        step('Ferdie serves chunk 1, asking most: the next best for it');
        await registerDevMiner(api, 'ferdie', keyring.addFromUri('//Ferdie'), {
          price: 25n * 10n ** 6n, chunks: mid ? [] : [1],
        });
        servers.push(['//Ferdie', 1]);
      }
    } else {
      step('Dave stops serving; redundancy 1');
      for (const chunk of [0, 1]) await experts.stopServing(api, dave, 0, chunk);
      await sendAndFinalize(api.tx.sudo.sudo(api.tx.poaw.setRedundancy(1)), alice);
    }
    const model = mid ? 1 : 0;
    if (mid) await registerMid(api, mid.hashes, keyring, servers);
    step('starting the miners');
    await net.startMiner('bob', { prometheusPort: prometheus.bob });
    await net.startMiner('charlie', { prometheusPort: prometheus.charlie });
    if (options.verify) await net.startMiner('dave', { prometheusPort: prometheus.dave });
    if (killing) {
      prometheus.ferdie = await freePort();
      await net.startMiner('ferdie', { prometheusPort: prometheus.ferdie });
    }
    const seconds = async (metric) => Object.fromEntries(
      await Promise.all(Object.keys(net.miners).map(async (name) => [name, await scrape(prometheus[name], metric)])),
    );

    const requester = keyring.addFromUri(killing ? '//Eve' : '//Ferdie');
    const rows = [];
    for (let i = 0; i < options.tasks; i++) {
      const bytesBefore = await scrape(prometheus.bob, 'dllm_miner_activation_bytes_sent_total');
      const generatingBefore = await seconds('dllm_miner_generation_seconds_total');
      const checkingBefore = await seconds('dllm_miner_check_seconds_total');
      const q = await tasks.quote(api, model, PROMPT, options.maxTokens);
      const { task: submitted, included } = await submitTimed(api, requester, model, options.maxTokens, q.maxFee);
      step(`task ${submitted} included`);
      const details = await tasks.waitForResult(api, submitted, 600_000);
      const done = Date.now();
      if (details.status !== 'Completed') throw new Error(`task ${submitted} ended ${details.status}`);
      const line = net.miners.bob.log.find((l) => l.includes(`task ${submitted} pipeline 0:`) && l.includes('unix ms'));
      const match = line?.match(/(\d+) prompt tokens, (\d+) generated; .*unix ms (\d+)\), decode ([\d.]+) tokens\/s/);
      if (!match) throw new Error(`no driver log line for task ${submitted}`);
      const [, promptTokens, generated, firstAt, decode] = match.map(Number);
      const bytes = (await scrape(prometheus.bob, 'dllm_miner_activation_bytes_sent_total')) - bytesBefore;
      const row = { promptTokens, generated, firstToken: firstAt - included, result: done - included, decode, bytesPerToken: bytes / generated };
      if (options.verify) {
        const roles = new Map(details.slots.map((slot) => [slot.expert, slot.role]));
        const names = { bob: '//Bob', charlie: '//Charlie', dave: '//Dave' };
        const role = (name) => roles.get(keyring.addFromUri(names[name]).address);
        if (role('bob') !== 'Generator' || role('charlie') !== 'Generator' || role('dave') !== 'Verifier') {
          throw new Error(`task ${submitted}: roles ${JSON.stringify([...roles])}, not Bob → Charlie generating and Dave verifying`);
        }
        const generatingAfter = await seconds('dllm_miner_generation_seconds_total');
        const checkingAfter = await seconds('dllm_miner_check_seconds_total');
        row.generation = (generatingAfter.bob - generatingBefore.bob) + (generatingAfter.charlie - generatingBefore.charlie);
        row.verification = checkingAfter.dave - checkingBefore.dave;
        row.verifyRatio = row.verification / row.generation;
      }
      rows.push(row);
    }

    const replacement = killing ? await killMidGeneration(net, model, options, keyring, step) : null;

    // The same work in one process: prompt length and generated tokens as the miners ran.
    const { promptTokens, generated } = rows[0];
    const { stdout } = await run(inferBinary(), ['bench', '--model', net.modelDir, '--prompt-len', String(promptTokens), '--gen', String(generated)]);
    const reference = Number(stdout.match(/\| decode \(\d+ tokens\) \| ([\d.]+) tokens\/s/)[1]);

    const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
    const range = (key, digits) => `${median(rows.map((r) => r[key])).toFixed(digits)} [${Math.min(...rows.map((r) => r[key])).toFixed(digits)}–${Math.max(...rows.map((r) => r[key])).toFixed(digits)}]`;
    console.log(`\nmodel: ${options.size} (${net.modelDir}), chain ${options.chain}, ${rows.length} tasks, prompt ${promptTokens} tokens, ${generated} generated, greedy\n`);
    console.log('| measure | median [min–max] |');
    console.log('| --- | --- |');
    console.log(`| inclusion of submit_task → first token (ms) | ${range('firstToken', 0)} |`);
    console.log(`| inclusion of submit_task → result on chain (ms) | ${range('result', 0)} |`);
    console.log(`| decode tokens/s, Bob → Charlie on loopback | ${range('decode', 1)} |`);
    console.log(`| decode tokens/s, dllm-infer bench, one process | ${reference.toFixed(1)} |`);
    console.log(`| ratio miners / one process | ${(median(rows.map((r) => r.decode)) / reference).toFixed(2)} |`);
    console.log(`| activation bytes sent per generated token | ${range('bytesPerToken', 0)} |`);
    if (options.verify) {
      console.log(`| generation passes, Bob + Charlie (s) | ${range('generation', 3)} |`);
      console.log(`| verification prefill passes, Dave (s) | ${range('verification', 3)} |`);
      console.log(`| verification / generation | ${range('verifyRatio', 3)} |`);
    }
    if (replacement) {
      const honest = median(rows.map((r) => r.result));
      console.log(`\nReplacement mid-generation: Charlie killed at token ${options.killAt} of task ${replacement.task}, Bob pausing ${options.tokenDelayMs} ms per token\n`);
      console.log('| measure | value |');
      console.log('| --- | --- |');
      console.log(`| kill → Bob's silence claim submitted (ms) | ${replacement.killToClaim} |`);
      console.log(`| claim → replay to Ferdie done (ms) | ${replacement.claimToReplay} |`);
      console.log(`| steps replayed, replay time (ms) | ${replacement.replayed}, ${replacement.replayMs} |`);
      console.log(`| inclusion → result, this task (ms) | ${replacement.result} |`);
      console.log(`| inclusion → result, honest tasks' median (ms) | ${honest} |`);
      console.log(`| time lost to the replacement (ms) | ${replacement.result - honest} |`);
    }
    return 0;
  } finally {
    await net.stop();
  }
});
