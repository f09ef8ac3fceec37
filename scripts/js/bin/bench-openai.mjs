#!/usr/bin/env node
// Times requests through the OpenAI-compatible API on a local testnet (the validator
// serves it; Bob, Charlie and Dave mine the tiny dev model):
//
//   node bin/bench-openai.mjs [--requests 3] [--max-tokens 32] [--tokenizer mistral]
//                             [--chain dev|local]
//
// `--chain local` runs the two-authority local chain (Alice and Bob author, 6 s blocks,
// GRANDPA) instead of the dev chain's block on every transaction.
// `--tokenizer mistral` runs a tiny model around Mistral's real v1 tokenizer instead of
// the dev model (registered as a new model before the miners start): its text streams
// token by token, where the dev model's byte tokens come in bursts.
//
// For each streamed chat completion: time from the HTTP request to the first streamed
// text and to the verified answer, the completion's tokens, the streamed text pieces
// and their rate at the client between the first and the last before the verdict, the
// generator's decode rate (`dllm_miner_decode_tokens_per_second` of the chunk-0 miner)
// and the ratio of the two. Prints a table.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI from 'openai';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import { freePort, runCli, scrape } from '../lib/node.mjs';
import { MISTRAL_V1_TOKENIZER, makeTinyModel, registerTinyModel, startTestnet } from '../lib/testnet.mjs';

function parse(argv) {
  const options = { requests: 3, maxTokens: 32, tokenizer: null, chain: 'dev' };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--chain') {
      if (!['dev', 'local'].includes(argv[i + 1])) throw new Error('--chain takes dev or local');
      options.chain = argv[i + 1];
      continue;
    }
    if (argv[i] === '--tokenizer') {
      if (argv[i + 1] !== 'mistral') throw new Error('--tokenizer takes `mistral` (the committed Mistral v1 tokenizer)');
      options.tokenizer = MISTRAL_V1_TOKENIZER;
      continue;
    }
    const value = Number(argv[i + 1]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${argv[i]} needs a positive integer`);
    if (argv[i] === '--requests') options.requests = value;
    else if (argv[i] === '--max-tokens') options.maxTokens = value;
    else throw new Error(`unknown option ${argv[i]}`);
  }
  return options;
}

runCli(async () => {
  const options = parse(process.argv.slice(2));
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519' });
  // The genesis experts that serve chunk 0 and so may drive a generation.
  const addresses = { bob: keyring.addFromUri('//Bob').address, dave: keyring.addFromUri('//Dave').address };
  const port = await freePort();
  const prometheus = { bob: await freePort(), dave: await freePort() };
  let model = 'dllm-tiny-mistral';
  let modelDir;
  let beforeMiners;
  if (options.tokenizer) {
    model = 'dllm-tiny-mistral-v1-tokenizer';
    modelDir = await makeTinyModel(join(mkdtempSync(join(tmpdir(), 'dllm-bench-')), 'model'), { tokenizer: options.tokenizer });
    const servers = ['//Bob', '//Charlie', '//Dave'].map((suri) => keyring.addFromUri(suri));
    beforeMiners = (api) => registerTinyModel(api, modelDir, model, servers);
  }
  const net = await startTestnet({
    validatorArgs: ['--openai', '--openai-port', String(port), '--openai-suri', '//Alice'],
    prometheus, modelDir, beforeMiners, chain: options.chain,
  });
  try {
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
    console.log('| request | first text (s) | verified answer (s) | tokens | streamed deltas | client deltas/s | generator decode tokens/s | ratio |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (let r = 0; r < options.requests; r++) {
      const started = performance.now();
      const stream = await client.chat.completions.create({
        model, max_tokens: options.maxTokens, seed: r, stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: `Question ${r}: what is DLLM?` }],
      });
      let first = null;
      let last = null;
      let deltas = 0;
      let usage = null;
      let dllm = null;
      for await (const chunk of stream) {
        const text = chunk.choices?.[0]?.delta?.content ?? '';
        if (text && !chunk.dllm) {
          first ??= performance.now();
          last = performance.now();
          deltas += 1;
        }
        if (chunk.usage) usage = chunk.usage;
        if (chunk.dllm) dllm = chunk.dllm;
      }
      const done = performance.now();
      const tokens = usage?.completion_tokens ?? 0;
      // Streamed pieces per second between the first and the last one before the verdict.
      const clientRate = first !== null && last > first ? (deltas - 1) / ((last - first) / 1000) : null;
      const task = await net.api.call.poawApi.task(dllm.task);
      const driver = task.unwrap().slots.find((s) => s.role.type === 'Generator' && s.chunk.toNumber() === 0).expert.toString();
      const name = Object.keys(prometheus).find((n) => addresses[n] === driver);
      const decode = await scrape(prometheus[name], 'dllm_miner_decode_tokens_per_second');
      const seconds = (t) => (t === null ? 'n/a' : ((t - started) / 1000).toFixed(2));
      const ratio = clientRate === null ? 'n/a' : (clientRate / decode).toFixed(2);
      console.log(`| ${r} | ${seconds(first)} | ${seconds(done)} | ${tokens} | ${deltas} | ${clientRate === null ? 'n/a' : clientRate.toFixed(1)} | ${decode.toFixed(1)} | ${ratio} |`);
    }
  } finally {
    await net.stop();
  }
  return 0;
});
