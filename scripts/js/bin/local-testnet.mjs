#!/usr/bin/env node
// Starts a local testnet on loopback and keeps it running until Ctrl-C:
//
//   node bin/local-testnet.mjs [--dir DIR] [--rpc-port 9944] [--openai-port 8080]
//                              [--miners bob,charlie,dave]
//                              [--chain local [--session-blocks N] [--sessions-per-era M]]
//
// The validator is the dev chain's authority (Alice) with RPC on --rpc-port and the
// OpenAI-compatible API on 127.0.0.1:--openai-port (`0`: none), paid by Alice. With
// `--chain local`, Alice and Bob validate, elected by stake every era; with
// --session-blocks or --sessions-per-era (defaults 600 and 6), on a `local` spec with
// shorter sessions and eras, written to DIR/local.json for more nodes to join (docs/operators.md,
// "Try it: become a validator"). `--miners ''` starts no miner. Each miner
// is a `dllm-node --miner` for a genesis expert (Bob: chunk 0, Charlie: chunk 1, Dave:
// both) with the node key the dev genesis registered for it, serving a tiny model
// generated on the spot (`dllm-infer make-tiny`, the dev model's weights). Logs and the
// model go to --dir (a new temporary directory by default). Exit codes: 0 after Ctrl-C,
// 1 when a node fails to start, 2 on bad usage.

import { runCli } from '../lib/node.mjs';
import { NODE_KEY_INDEX, shortEraSpec, startTestnet } from '../lib/testnet.mjs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function usage(message) {
  console.error(`error: ${message}\nsee the header of bin/local-testnet.mjs for the options`);
  process.exit(2);
}

function parse(argv) {
  const options = {
    dir: null, rpcPort: 9944, openaiPort: 8080, miners: ['bob', 'charlie', 'dave'],
    chain: 'dev', sessionBlocks: null, sessionsPerEra: null,
  };
  const count = (flag, text) => {
    if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 0xffff_ffff) usage(`${flag} must be a whole number of at least 1, got ${text}`);
    return Number(text);
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case '--dir': options.dir = value(); break;
      case '--rpc-port': {
        const port = value();
        if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) usage(`--rpc-port must be a port number, got ${port}`);
        options.rpcPort = Number(port);
        break;
      }
      case '--openai-port': {
        const port = value();
        if (!/^\d+$/.test(port) || Number(port) > 65535) usage(`--openai-port must be a port number or 0, got ${port}`);
        options.openaiPort = Number(port);
        break;
      }
      case '--chain': {
        options.chain = value();
        if (!['dev', 'local'].includes(options.chain)) usage(`--chain must be dev or local, got ${options.chain}`);
        break;
      }
      case '--session-blocks': options.sessionBlocks = count(flag, value()); break;
      case '--sessions-per-era': options.sessionsPerEra = count(flag, value()); break;
      case '--miners': {
        options.miners = value().split(',').map((name) => name.trim().toLowerCase()).filter((name) => name);
        const bad = options.miners.find((name) => !NODE_KEY_INDEX[name] || name === 'alice');
        if (bad !== undefined) usage(`--miners: ${bad} is not one of bob, charlie, dave, eve, ferdie`);
        break;
      }
      default: usage(`unknown option ${flag}`);
    }
  }
  if ((options.sessionBlocks || options.sessionsPerEra) && options.chain !== 'local') {
    usage('--session-blocks and --sessions-per-era need --chain local (the dev chain runs no elections)');
  }
  return options;
}

runCli(async () => {
  const options = parse(process.argv.slice(2));
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'dllm-testnet-'));
  let chain = options.chain;
  if (options.sessionBlocks || options.sessionsPerEra) {
    chain = await shortEraSpec(join(dir, 'local.json'), {
      sessionBlocks: options.sessionBlocks ?? 600,
      sessionsPerEra: options.sessionsPerEra ?? 6,
    });
    console.log(`chain spec: ${chain}`);
  }
  const validators = options.chain === 'local' ? 'the validators (Alice, Bob)' : 'the validator (Alice)';
  console.log(`starting ${validators} and miners (${options.miners.join(', ') || 'none'}); logs in ${dir}`);
  const validatorArgs = options.openaiPort ? ['--openai', '--openai-port', String(options.openaiPort)] : [];
  const net = await startTestnet({ miners: options.miners, dir, rpcPort: options.rpcPort, validatorArgs, chain });
  console.log(`validator RPC: ws://127.0.0.1:${options.rpcPort}`);
  console.log(`bootnode: ${net.bootnode}`);
  console.log(`polkadot-js apps: https://polkadot.js.org/apps/?rpc=ws%3A%2F%2F127.0.0.1%3A${options.rpcPort}`);
  if (options.openaiPort) {
    console.log(`chat page: http://127.0.0.1:${options.openaiPort}/`);
    console.log(`OpenAI-compatible API: http://127.0.0.1:${options.openaiPort}/v1 (model dllm-tiny-mistral, paid by Alice)`);
  }
  const ws = options.rpcPort === 9944 ? '' : ` --ws ws://127.0.0.1:${options.rpcPort}`;
  if (options.miners.length) {
    console.log(`model: ${net.modelDir}`);
    console.log(`submit a prompt:  scripts/dllm${ws} chat "What is DLLM?"`);
  }
  if (options.chain === 'local') console.log(`staking:  scripts/dllm${ws} --suri //Alice stake status`);
  console.log('Ctrl-C stops every node');
  await new Promise((resolveStop) => {
    process.once('SIGINT', resolveStop);
    process.once('SIGTERM', resolveStop);
  });
  console.log('stopping…');
  await net.stop();
  return 0;
});
