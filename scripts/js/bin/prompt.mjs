#!/usr/bin/env node
// Submits a prompt and waits for its answer:
//
//   node bin/prompt.mjs [--ws ws://127.0.0.1:9944] [--suri //Alice] [--model 0]
//        [--max-tokens 32] [--temperature 0] [--top-k 0] [--top-p 1] [--seed 0]
//        [--max-fee PLANCK] [--timeout SECONDS] PROMPT
//
// The fee defaults to the chain's current quote. Prints the task id, then the answer
// and what was paid. Exits 0 when the task completed, 1 when the chain refused it or it
// ended without an answer, 2 on bad usage.

import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import { runCli } from '../lib/node.mjs';
import * as tasks from '../lib/tasks.mjs';

function usage(message) {
  console.error(`error: ${message}\nsee the header of bin/prompt.mjs for the options`);
  process.exit(2);
}

function number(text, what, { integer = true } = {}) {
  const pattern = integer ? /^\d+$/ : /^\d+(\.\d+)?$/;
  if (!pattern.test(text ?? '')) usage(`${what} must be a ${integer ? 'whole ' : ''}number, got ${text}`);
  return Number(text);
}

function parse(argv) {
  const options = { ws: 'ws://127.0.0.1:9944', suri: '//Alice', model: 0, maxTokens: 32, temperature: 0, topK: 0, topP: 1, seed: 0, maxFee: null, timeout: 600 };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case '--ws': options.ws = value(); break;
      case '--suri': options.suri = value(); break;
      case '--model': options.model = number(value(), '--model'); break;
      case '--max-tokens': options.maxTokens = number(value(), '--max-tokens'); break;
      case '--temperature': options.temperature = number(value(), '--temperature', { integer: false }); break;
      case '--top-k': options.topK = number(value(), '--top-k'); break;
      case '--top-p': options.topP = number(value(), '--top-p', { integer: false }); break;
      case '--seed': options.seed = number(value(), '--seed'); break;
      case '--max-fee': options.maxFee = BigInt(number(value(), '--max-fee')); break;
      case '--timeout': options.timeout = number(value(), '--timeout'); break;
      default:
        if (flag.startsWith('--')) usage(`unknown option ${flag}`);
        rest.push(flag);
    }
  }
  if (rest.length !== 1) usage('give exactly one PROMPT (quote it)');
  if (options.topP <= 0 || options.topP > 1) usage('--top-p must be in (0, 1]');
  options.prompt = rest[0];
  return options;
}

async function main() {
  const options = parse(process.argv.slice(2));
  await cryptoWaitReady();
  const api = await ApiPromise.create({ provider: new WsProvider(options.ws), noInitWarn: true });
  try {
    const signer = new Keyring({ type: 'sr25519' }).addFromUri(options.suri);
    const maxFee = options.maxFee ?? (await tasks.quote(api, options.model, options.prompt, options.maxTokens)).maxFee;
    const result = await tasks.submitTask(api, signer, {
      model: options.model,
      prompt: options.prompt,
      maxTokens: options.maxTokens,
      maxFee,
      sampling: {
        temperatureMilli: Math.round(options.temperature * 1000),
        topK: options.topK,
        topP: Math.round(options.topP * 1e9),
        seed: options.seed,
      },
    });
    if (!result.ok) {
      console.error(`refused: ${result.error}`);
      return 1;
    }
    console.log(`task ${result.task} submitted (max fee ${maxFee} planck); waiting for miners…`);
    const done = await tasks.waitForResult(api, result.task, options.timeout * 1000);
    if (done.status !== 'Completed') {
      console.error(`task ${result.task} ended ${done.status}`);
      return 1;
    }
    const answer = done.outputs.find((out) => out.hash === done.settlement.outputHash) ?? done.outputs[0];
    console.log(answer.text);
    const s = done.settlement;
    console.log(`paid ${s.fee} planck (miners ${s.miners}, community ${s.community}), refunded ${s.refunded}`);
    return 0;
  } finally {
    await api.disconnect();
  }
}

runCli(main);
