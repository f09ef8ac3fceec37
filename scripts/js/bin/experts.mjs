#!/usr/bin/env node
// Expert registry from the command line, against a running node:
//
//   node bin/experts.mjs [--ws ws://127.0.0.1:9944] [--suri //Alice] COMMAND ARGS...
//
// Commands (amounts in DLLM, decimals allowed):
//   register BOND PEER_ID_HEX PRICE_PLANCK CAPACITY COMMISSION_PERCENT [DOMAIN...]
//   serve MODEL CHUNK [f32|f16|bf16] [WEIGHTS_HASH]
//                                        (default: f32, the registered hash)
//   stop-serving MODEL CHUNK
//   bond AMOUNT | unbond AMOUNT | withdraw | deregister
//   delegate EXPERT_ADDRESS AMOUNT | undelegate EXPERT_ADDRESS AMOUNT
//   show ADDRESS
// Exits 0 on success; on a refused call prints the error name (e.g.
// experts.BondBelowMinimum) and exits 1; on bad usage exits 2.

import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import * as experts from '../lib/experts.mjs';
import { runCli } from '../lib/node.mjs';

function usage(message) {
  console.error(`error: ${message}\nsee the header of bin/experts.mjs for the commands`);
  process.exit(2);
}

/** "12.5" DLLM → plancks, refusing anything that is not a plain decimal. */
function dllm(text) {
  if (!/^\d+(\.\d{1,12})?$/.test(text ?? '')) usage(`not an amount of DLLM: ${text}`);
  const [whole, fraction = ''] = text.split('.');
  return BigInt(whole) * experts.UNIT + BigInt(fraction.padEnd(12, '0'));
}

function integer(text, what) {
  if (!/^\d+$/.test(text ?? '')) usage(`${what} must be a whole number, got ${text}`);
  return Number(text);
}

async function main() {
  const args = process.argv.slice(2);
  let ws = 'ws://127.0.0.1:9944';
  let suri = '//Alice';
  while (args[0]?.startsWith('--')) {
    const flag = args.shift();
    const value = args.shift();
    if (value === undefined) usage(`${flag} needs a value`);
    if (flag === '--ws') ws = value;
    else if (flag === '--suri') suri = value;
    else usage(`unknown option ${flag}`);
  }
  const [command, ...rest] = args;
  if (!command) usage('no command');

  await cryptoWaitReady();
  const signer = new Keyring({ type: 'sr25519' }).addFromUri(suri);
  const api = await ApiPromise.create({ provider: new WsProvider(ws), noInitWarn: true });
  try {
    let result;
    switch (command) {
      case 'register': {
        const [bond, peerId, price, capacity, commission, ...domains] = rest;
        if (!/^(0x)?[0-9a-fA-F]+$/.test(peerId ?? '')) usage('PEER_ID_HEX must be hex bytes');
        result = await experts.registerExpert(api, signer, dllm(bond), {
          domains,
          peerId: peerId.startsWith('0x') ? peerId : `0x${peerId}`,
          price: BigInt(integer(price, 'PRICE_PLANCK')),
          capacity: integer(capacity, 'CAPACITY'),
          commissionPercent: Number(commission),
        });
        break;
      }
      case 'serve': {
        const hasFormat = /^(f32|f16|bf16)$/i.test(rest[2] ?? '');
        result = await experts.serveChunk(
          api,
          signer,
          integer(rest[0], 'MODEL'),
          integer(rest[1], 'CHUNK'),
          hasFormat ? rest[3] : rest[2],
          hasFormat ? experts.formatOf(rest[2]) : 'F32',
        );
        break;
      }
      case 'stop-serving':
        result = await experts.stopServing(api, signer, integer(rest[0], 'MODEL'), integer(rest[1], 'CHUNK'));
        break;
      case 'bond':
        result = await experts.bondExtra(api, signer, dllm(rest[0]));
        break;
      case 'unbond':
        result = await experts.unbond(api, signer, dllm(rest[0]));
        break;
      case 'withdraw':
        result = await experts.withdrawUnbonded(api, signer);
        break;
      case 'deregister':
        result = await experts.deregister(api, signer);
        break;
      case 'delegate':
        result = await experts.delegate(api, signer, rest[0], dllm(rest[1]));
        break;
      case 'undelegate':
        result = await experts.undelegate(api, signer, rest[0], dllm(rest[1]));
        break;
      case 'show':
        console.log(JSON.stringify(await experts.expertState(api, rest[0] ?? signer.address), null, 2));
        return 0;
      default:
        usage(`unknown command ${command}`);
    }
    if (!result.ok) {
      console.error(`refused: ${result.error}`);
      return 1;
    }
    console.log(`ok: final in ${result.blockHash}`);
    return 0;
  } finally {
    await api.disconnect();
  }
}

runCli(main);
