#!/usr/bin/env node
// Times requests through the OpenAI-compatible API on a local testnet (the validator
// serves it; Bob, Charlie and Dave mine the tiny dev model):
//
//   node bin/bench-openai.mjs [--requests 3] [--max-tokens 32]
//
// For each streamed chat completion: time from the HTTP request to the first streamed
// text and to the verified answer, the completion's tokens, the rate at the client
// between its first and last streamed text, and the generator's decode rate
// (`dllm_miner_decode_tokens_per_second` of the chunk-0 miner). Prints a table.

import OpenAI from 'openai';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import { freePort, runCli, scrape } from '../lib/node.mjs';
import { startTestnet } from '../lib/testnet.mjs';

function parse(argv) {
  const options = { requests: 3, maxTokens: 32 };
  for (let i = 0; i < argv.length; i += 2) {
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
  const net = await startTestnet({ validatorArgs: ['--openai', '--openai-port', String(port)], prometheus });
  try {
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
    console.log('| request | first text (s) | verified answer (s) | tokens | client tokens/s | generator decode tokens/s |');
    console.log('| --- | --- | --- | --- | --- | --- |');
    for (let r = 0; r < options.requests; r++) {
      const started = performance.now();
      const stream = await client.chat.completions.create({
        model: 'dllm-tiny-mistral', max_tokens: options.maxTokens, seed: r, stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: `Question ${r}: what is DLLM?` }],
      });
      let first = null;
      let last = null;
      let usage = null;
      let dllm = null;
      for await (const chunk of stream) {
        const text = chunk.choices?.[0]?.delta?.content ?? '';
        if (text && !chunk.dllm) {
          first ??= performance.now();
          last = performance.now();
        }
        if (chunk.usage) usage = chunk.usage;
        if (chunk.dllm) dllm = chunk.dllm;
      }
      const done = performance.now();
      const tokens = usage?.completion_tokens ?? 0;
      const clientRate = first !== null && last > first ? ((tokens - 1) / ((last - first) / 1000)).toFixed(1) : 'n/a';
      const task = await net.api.call.poawApi.task(dllm.task);
      const driver = task.unwrap().slots.find((s) => s.role.type === 'Generator' && s.chunk.toNumber() === 0).expert.toString();
      const name = Object.keys(prometheus).find((n) => addresses[n] === driver);
      const decode = await scrape(prometheus[name], 'dllm_miner_decode_tokens_per_second');
      const seconds = (t) => (t === null ? 'n/a' : ((t - started) / 1000).toFixed(2));
      console.log(`| ${r} | ${seconds(first)} | ${seconds(done)} | ${tokens} | ${clientRate} | ${decode.toFixed(1)} |`);
    }
  } finally {
    await net.stop();
  }
  return 0;
});
