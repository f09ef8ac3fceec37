#!/usr/bin/env node
// dllm: the DLLM chain from the command line (a requester's and a staker's tool).
// `dllm help` lists the commands; `scripts/dllm` runs this file from anywhere.
//
// Exit codes: 0 done; 1 the chain refused (the error's name and what it means are
// printed) or the task ended without a verified answer; 2 bad usage.

import { createConnection } from 'node:net';
import { parseArgs } from 'node:util';

import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { isHex, u8aToHex } from '@polkadot/util';
import {
  base58Decode, createKeyMulti, cryptoWaitReady, decodeAddress, encodeAddress, mnemonicGenerate,
} from '@polkadot/util-crypto';

import * as experts from '../lib/experts.mjs';
import * as staking from '../lib/staking.mjs';
import { runCli } from '../lib/node.mjs';
import { DLLM_RPC } from '../lib/rpc.mjs';
import * as tasks from '../lib/tasks.mjs';

const GLOBAL = {
  ws: { type: 'string', default: process.env.DLLM_WS || 'ws://127.0.0.1:9944' },
  suri: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const SAMPLING = {
  model: { type: 'string', default: '0' },
  'max-tokens': { type: 'string', default: '32' },
  // More than one: that many generators, each checked by the verifier (prefill verification).
  generators: { type: 'string', default: '1' },
};

const COMMANDS = {
  chat: {
    args: 'PROMPT',
    about: 'submit a prompt at the quote, stream the answer, then print the verified answer, the fee and the refund',
    options: {
      ...SAMPLING,
      temperature: { type: 'string', default: '0' },
      'top-k': { type: 'string', default: '0' },
      'top-p': { type: 'string', default: '1' },
      seed: { type: 'string', default: '0' },
      'max-fee': { type: 'string' },
      timeout: { type: 'string', default: '600' },
    },
  },
  'new-account': { args: '', about: 'make a new account: prints its mnemonic (keep it secret) and address', options: {} },
  'multisig-address': {
    args: 'THRESHOLD ADDRESS...',
    about: 'the address of the multisig account of these signatories (any order) and threshold (pallet-multisig; polkadot-js apps\' multisig accounts)',
    options: {},
  },
  transfer: { args: 'TO AMOUNT', about: 'send AMOUNT DLLM to the address TO', options: {} },
  quote: { args: 'PROMPT', about: 'what a prompt costs now at most (the least max fee the chain accepts)', options: SAMPLING },
  status: {
    args: '[ADDRESS]',
    about: 'models, experts with reputation and chunks, open tasks; with ADDRESS (or --suri) that account too',
    options: {},
  },
  'register-expert': {
    args: '',
    about: 'register the signer as an expert (a miner) with its own bond',
    options: {
      bond: { type: 'string' },
      'peer-id': { type: 'string' },
      price: { type: 'string' },
      capacity: { type: 'string', default: '2' },
      commission: { type: 'string', default: '5' },
      domain: { type: 'string', multiple: true, default: [] },
      serve: { type: 'string', multiple: true, default: [] },
    },
  },
  serve: { args: 'MODEL CHUNK [f32|f16|bf16]', about: 'serve a chunk of a model as an expert (in the format its miner computes, default f32)', options: {} },
  'stop-serving': { args: 'MODEL CHUNK', about: 'stop serving a chunk (its deposit comes back)', options: {} },
  deregister: { args: '', about: 'stop being an expert (its bond starts unbonding)', options: {} },
  stake: {
    args: 'AMOUNT | validate | nominate VALIDATOR... | payout VALIDATOR [ERA] | status [ADDRESS]',
    about: 'add AMOUNT DLLM to the signer\'s own expert bond; or, as a validator\'s or nominator\'s stake: '
      + 'validate (bond --bond, set the session keys of the node at --ws or --keys/--proof, offer to validate), '
      + 'nominate VALIDATOR... (bond --bond, back them), payout VALIDATOR [ERA] (pay its stakers\' rewards of ERA, '
      + 'or of every era not paid yet), status [ADDRESS] (the era, and the account\'s (or the signer\'s) '
      + 'bond, role, election, points and unpaid eras)',
    options: {
      bond: { type: 'string' },
      commission: { type: 'string', default: '5' },
      keys: { type: 'string' },
      proof: { type: 'string' },
    },
  },
  delegate: { args: 'EXPERT AMOUNT', about: 'stake AMOUNT DLLM behind EXPERT (a share of its earnings and of its slashes)', options: {} },
  unbond: {
    args: 'AMOUNT',
    about: 'start unbonding AMOUNT DLLM of the signer\'s bond, or of its delegation with --from EXPERT',
    options: { from: { type: 'string' } },
  },
  withdraw: { args: '', about: 'take back the stake whose unbonding period is over', options: {} },
  rate: { args: 'TASK STARS', about: 'rate one of the signer\'s completed tasks, 1 to 5 stars', options: {} },
  help: { args: '[COMMAND]', about: 'this help, or one command\'s', options: {} },
};

class UsageError extends Error {}

function help(command) {
  const lines = [];
  if (command && COMMANDS[command]) {
    const spec = COMMANDS[command];
    lines.push(`dllm ${command} ${spec.args}`.trimEnd(), `  ${spec.about}`);
    for (const [name, option] of Object.entries(spec.options)) {
      const value = option.type === 'string' ? ' VALUE' : '';
      const fallback = option.default !== undefined && !option.multiple ? ` (default ${option.default})` : '';
      lines.push(`  --${name}${value}${option.multiple ? ' (repeatable)' : ''}${fallback}`);
    }
  } else {
    lines.push('dllm [--ws URL] [--suri SECRET] COMMAND ...', '');
    for (const [name, spec] of Object.entries(COMMANDS)) lines.push(`  ${`${name} ${spec.args}`.padEnd(26)} ${spec.about}`);
    lines.push(
      '',
      'Amounts are in DLLM (up to 12 decimals). The signer is --suri, or DLLM_SURI in the',
      'environment (a mnemonic or a secret URI); on a development chain it defaults to //Alice.',
      'The node is --ws, or DLLM_WS (default ws://127.0.0.1:9944). `dllm help COMMAND` for options.',
    );
  }
  return lines.join('\n');
}

/** "12.5" DLLM → plancks. */
function amount(text, what) {
  if (!/^\d+(\.\d{1,12})?$/.test(text ?? '')) throw new UsageError(`${what}: not an amount of DLLM: ${text}`);
  const [whole, fraction = ''] = text.split('.');
  return BigInt(whole) * experts.UNIT + BigInt(fraction.padEnd(12, '0'));
}

function integer(text, what, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  if (!/^\d+$/.test(text ?? '') || Number(text) < min || Number(text) > max) {
    throw new UsageError(`${what} must be a whole number from ${min} to ${max}, got ${text}`);
  }
  return Number(text);
}

function decimal(text, what, min, max) {
  if (!/^\d+(\.\d+)?$/.test(text ?? '') || Number(text) < min || Number(text) > max) {
    throw new UsageError(`${what} must be a number from ${min} to ${max}, got ${text}`);
  }
  return Number(text);
}

/** The command and its parsed options and positionals, or a UsageError. */
function parse(argv) {
  const { positionals } = parseArgs({ args: argv, options: GLOBAL, strict: false, allowPositionals: true });
  const command = positionals[0];
  if (!command) return { command: 'help', values: {}, positionals: [] };
  const spec = COMMANDS[command];
  if (!spec) throw new UsageError(`unknown command ${command}`);
  const rest = [...argv];
  rest.splice(rest.indexOf(command), 1);
  try {
    const parsed = parseArgs({ args: rest, options: { ...GLOBAL, ...spec.options }, allowPositionals: true });
    return { command, ...parsed };
  } catch (e) {
    throw new UsageError(e.message);
  }
}

/** Exactly `count` positionals (named in `names` for the message). */
function take(positionals, names) {
  if (positionals.length !== names.length) {
    throw new UsageError(`expected ${names.join(' ') || 'no arguments'}, got ${positionals.length ? positionals.map((p) => JSON.stringify(p)).join(' ') : 'nothing'}`);
  }
  return positionals;
}

/** Whether something listens at the URL's host and port (before polkadot-js retries noisily). */
function listening(url) {
  let target;
  try {
    target = new URL(url);
  } catch (_) {
    throw new UsageError(`--ws ${url}: not a URL (e.g. ws://127.0.0.1:9944)`);
  }
  if (!['ws:', 'wss:'].includes(target.protocol)) throw new UsageError(`--ws ${url}: not a ws:// or wss:// URL`);
  const port = Number(target.port || (target.protocol === 'wss:' ? 443 : 80));
  return new Promise((resolveCheck) => {
    const socket = createConnection({ host: target.hostname.replace(/^\[|\]$/g, ''), port, timeout: 5000 });
    const end = (ok) => {
      socket.destroy();
      resolveCheck(ok);
    };
    socket.once('connect', () => end(true));
    socket.once('error', () => end(false));
    socket.once('timeout', () => end(false));
  });
}

async function connect(ws) {
  if (!(await listening(ws))) throw new Error(`no node answers at ${ws}: start one (scripts/dev.sh) or pass --ws`);
  const provider = new WsProvider(ws, 1000);
  let timer;
  const silence = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no node answers at ${ws}: start one (scripts/dev.sh) or pass --ws`)), 10_000);
  });
  try {
    return await Promise.race([ApiPromise.create({ provider, rpc: DLLM_RPC, noInitWarn: true }), silence]);
  } catch (e) {
    await provider.disconnect().catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** The signing account: --suri, DLLM_SURI, or //Alice on a development chain. */
async function signer(api, values) {
  if (values.suri !== undefined && !values.suri.trim()) throw new UsageError('--suri is empty');
  let secret = values.suri ?? (process.env.DLLM_SURI || undefined);
  if (!secret) {
    const type = await api.rpc.system.chainType();
    if (!type.isDevelopment) {
      throw new UsageError('this chain is not a development chain: give the signing account with --suri or DLLM_SURI');
    }
    secret = '//Alice';
  }
  try {
    return new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 }).addFromUri(secret);
  } catch (e) {
    throw new UsageError(`--suri: not a mnemonic or secret URI (${e.message})`);
  }
}

/**
 * Refuses `text` unless it is an SS58 address (or 0x account id); returns it as the
 * chain writes addresses (SS58, prefix 42), to compare with what the chain returns.
 */
function address(api, text, what) {
  try {
    if (!text) throw new Error('empty');
    return api.createType('AccountId', text).toString();
  } catch (_) {
    throw new UsageError(`${what}: not an address: ${JSON.stringify(text)}`);
  }
}

/** Most signatories of a multisig (the runtime's `pallet_multisig::Config::MaxSignatories`). */
const MAX_SIGNATORIES = 100;

/** `dllm multisig-address THRESHOLD ADDRESS...`: no node needed. */
function multisigAddress(positionals) {
  const [threshold, ...signatories] = positionals;
  if (!signatories.length) throw new UsageError('multisig-address needs THRESHOLD and at least two ADDRESSes');
  for (const who of signatories) {
    let bytes;
    try {
      bytes = decodeAddress(who);
    } catch (_) {
      bytes = null;
    }
    // An account id is 32 bytes (decodeAddress passes any hex through).
    if (bytes?.length !== 32) throw new UsageError(`ADDRESS: not an address: ${JSON.stringify(who)}`);
  }
  const distinct = new Set(signatories.map((who) => u8aToHex(decodeAddress(who))));
  if (distinct.size !== signatories.length) throw new UsageError('multisig-address: an ADDRESS is listed twice');
  if (distinct.size < 2 || distinct.size > MAX_SIGNATORIES) {
    throw new UsageError(`multisig-address: 2 to ${MAX_SIGNATORIES} signatories, got ${distinct.size}`);
  }
  // A threshold of 1 lets any one signatory act alone (`as_multi_threshold_1`): not
  // what a shared key is for.
  const needed = integer(threshold, 'THRESHOLD', { min: 2, max: distinct.size });
  // 42: the chain's SS58 prefix (dllm_primitives::token::SS58_PREFIX).
  console.log(encodeAddress(createKeyMulti(signatories, needed), 42));
  return 0;
}

/** A model by id or by name. */
async function model(api, text) {
  const ids = (await api.call.registryApi.models()).map((id) => id.toNumber());
  for (const id of ids) {
    const record = (await api.call.registryApi.model(id)).unwrap();
    if (String(id) === text || record.spec.name.toUtf8() === text) return { id, record };
  }
  throw new UsageError(`no model ${text} on this chain (${ids.length ? `ids ${ids.join(', ')}; see dllm status` : 'none is registered'})`);
}

function refused(result) {
  console.error(`refused: ${result.explanation}`);
  return 1;
}

function done(result, what) {
  if (!result.ok) return refused(result);
  console.log(`${what} (final in block ${result.blockHash})`);
  return 0;
}

/** A line on stderr that rewrites itself on a terminal, and prints changes elsewhere. */
function progress() {
  const tty = process.stderr.isTTY;
  let last = '';
  return {
    show(text) {
      if (tty) process.stderr.write(`\r\x1b[2K${text}`);
      else if (text.replace(/\d+ s$/, '') !== last.replace(/\d+ s$/, '')) process.stderr.write(`${text}\n`);
      last = text;
    },
    clear() {
      if (tty && last) process.stderr.write('\r\x1b[2K');
      last = '';
    },
  };
}

async function chat(api, values, positionals) {
  const [prompt] = take(positionals, ['PROMPT']);
  if (!prompt.trim()) throw new UsageError('the prompt is empty');
  const { id } = await model(api, values.model);
  const maxTokens = integer(values['max-tokens'], '--max-tokens', { min: 1 });
  const sampling = {
    temperatureMilli: Math.round(decimal(values.temperature, '--temperature', 0, 2) * 1000),
    topK: integer(values['top-k'], '--top-k'),
    topP: Math.round(decimal(values['top-p'], '--top-p', 1e-9, 1) * 1e9),
    seed: integer(values.seed, '--seed'),
  };
  const timeout = integer(values.timeout, '--timeout', { min: 1 });
  const generators = integer(values.generators, '--generators', { min: 1, max: 255 });
  const account = await signer(api, values);
  const maxFee = values['max-fee'] !== undefined ? amount(values['max-fee'], '--max-fee') : (await tasks.quote(api, id, prompt, maxTokens, generators)).maxFee;
  const line = progress();
  line.show(`submitting (max fee ${experts.formatDllm(maxFee)})…`);
  const submitted = await tasks.submitTask(api, account, { model: id, prompt, maxTokens, maxFee, sampling, generators });
  if (!submitted.ok) {
    line.clear();
    return refused(submitted);
  }
  const task = submitted.task;
  console.log(`task ${task} submitted (max fee ${experts.formatDllm(maxFee)})`);
  // Until the first token: where the task stands on chain, and for how long.
  const started = Date.now();
  let streaming = false;
  let status = 'Queued';
  const unsubscribe = await api.rpc.chain.subscribeNewHeads(async () => {
    const details = await tasks.taskDetails(api, task).catch(() => null);
    if (details) status = details.status;
  });
  const ticker = setInterval(() => {
    if (!streaming) line.show(`task ${task}: ${status === 'Queued' ? 'waiting for miners' : status} · ${Math.round((Date.now() - started) / 1000)} s`);
  }, 250);
  let streamed = '';
  let result;
  try {
    result = await tasks.streamTask(api, task, {
      timeoutMs: timeout * 1000,
      onToken: ({ text }) => {
        if (!streaming) line.clear();
        streaming = true;
        streamed += text;
        process.stdout.write(text);
      },
    });
  } finally {
    clearInterval(ticker);
    unsubscribe();
    line.clear();
  }
  const final = result.final;
  if (streamed) process.stdout.write('\n');
  if (final.status !== 'Completed' || final.output === null) {
    console.error(`task ${task} ended ${final.status} without a verified answer; refunded ${experts.formatDllm(final.refunded)}`);
    return 1;
  }
  if (final.output !== streamed) {
    if (streamed) console.log('(the verified answer differs from the streamed preview:)');
    console.log(final.output);
  }
  console.log(`verified: paid ${experts.formatDllm(final.fee)} (miners ${experts.formatDllm(final.miners)}, community ${experts.formatDllm(final.community)}), refunded ${experts.formatDllm(final.refunded)}`);
  return 0;
}

async function quote(api, values, positionals) {
  const [prompt] = take(positionals, ['PROMPT']);
  const { id, record } = await model(api, values.model);
  const maxTokens = integer(values['max-tokens'], '--max-tokens', { min: 1 });
  const generators = integer(values.generators, '--generators', { min: 1, max: 255 });
  let q;
  try {
    q = await tasks.quote(api, id, prompt, maxTokens, generators);
  } catch (e) {
    console.error(`${e.message} (${{ NoMinersAvailable: 'no chunk of the model has enough free experts now', ModelNotActive: 'the model is not active', UnknownModel: 'no such model' }[e.message.replace('no quote: ', '')] ?? 'see docs/protocol.md'})`);
    return 1;
  }
  console.log(`${record.spec.name.toUtf8()}: at most ${experts.formatDllm(q.maxFee)} for up to ${q.tokens} tokens over ${q.layers} layers`);
  const checked = q.mode === 'Prefill' ? `${q.redundancy} generator(s), each checked by prefill` : `${q.redundancy} pipeline(s), ${q.mode}`;
  console.log(`  ${checked}, ${experts.formatDllm(q.pricePerTokenLayer)} per token per layer; the unused part is refunded`);
  return 0;
}

async function status(api, values, positionals) {
  let account = null;
  if (positionals.length) {
    account = address(api, take(positionals, ['ADDRESS'])[0], 'ADDRESS');
  } else if (values.suri !== undefined || process.env.DLLM_SURI) account = (await signer(api, values)).address;
  const header = await api.rpc.chain.getHeader();
  console.log(`${(await api.rpc.system.chain()).toString()} at block #${header.number.toNumber()}`);
  const servers = new Map();
  console.log('\nModels');
  for (const id of (await api.call.registryApi.models()).map((m) => m.toNumber())) {
    const record = (await api.call.registryApi.model(id)).unwrap();
    const chunks = [];
    for (let c = 0; c < record.spec.chunks.length; c++) {
      const experts = (await api.call.registryApi.chunkServers(id, c)).map((a) => a.toString());
      for (const e of experts) servers.set(e, [...(servers.get(e) ?? []), `${id}/${c}`]);
      chunks.push(`chunk ${c}: ${experts.length} expert${experts.length === 1 ? '' : 's'}`);
    }
    console.log(`  ${id} ${record.spec.name.toUtf8()} v${record.spec.version} (${record.status.type}, ${record.spec.numLayers} layers): ${chunks.join(', ')}`);
  }
  console.log('\nExperts');
  for (const [who, chunks] of servers) {
    const e = (await api.call.registryApi.expert(who)).unwrap();
    const score = (await api.call.registryApi.reputationScore(who)).toNumber() / 1e9;
    console.log(`  ${who}  chunks ${chunks.join(' ')}  reputation ${(score * 100).toFixed(1)} %  stake ${experts.formatDllm(e.bond.toBigInt() + e.delegated.toBigInt())}  price ${experts.formatDllm(e.profile.pricePerTokenLayer.toBigInt())}  busy ${e.activeTasks.toNumber()}/${e.profile.maxConcurrentTasks.toNumber()}`);
  }
  if (!servers.size) console.log('  (none serves a chunk)');
  console.log('\nOpen tasks');
  let open = 0;
  for (const task of (await api.call.poawApi.recentTasks(64)).map((t) => t.toNumber())) {
    const d = await tasks.taskDetails(api, task);
    if (!d || ['Completed', 'Expired', 'Disputed'].includes(d.status)) continue;
    open++;
    console.log(`  task ${task}: ${d.status}, model ${d.task.model}, up to ${d.task.maxTokens} tokens, escrow ${experts.formatDllm(BigInt(d.task.escrow))}`);
  }
  if (!open) console.log('  (none among the last 64)');
  if (account) {
    const balance = await api.query.system.account(account);
    const held = await experts.heldByExperts(api, account);
    const { expert, unbonding } = await experts.expertState(api, account);
    console.log(`\nAccount ${account}`);
    console.log(`  free ${experts.formatDllm(balance.data.free.toBigInt())}, held ${experts.formatDllm(balance.data.reserved.toBigInt())}`);
    for (const [reason, value] of Object.entries(held)) console.log(`  held as ${reason}: ${experts.formatDllm(value)}`);
    if (expert) console.log(`  expert: bond ${experts.formatDllm(BigInt(expert.bond))}, delegated to it ${experts.formatDllm(BigInt(expert.delegated))} by ${expert.delegators}`);
    for (const who of servers.keys()) {
      const delegation = await api.query.experts.delegations(who, account);
      if (delegation.isSome) console.log(`  delegating ${experts.formatDllm(delegation.unwrap().toBigInt())} to ${who}`);
    }
    for (const entry of unbonding) console.log(`  unbonding ${experts.formatDllm(BigInt(entry.amount))}, free to withdraw from block #${entry.unlockAt}`);
  }
  return 0;
}

/** A peer id as the node prints it (base58) or as hex bytes, as hex (polkadot-js reads a
 * Uint8Array given for `Vec<u8>` as already length-prefixed). */
function peerIdBytes(text) {
  if (isHex(text)) return text;
  try {
    return u8aToHex(base58Decode(text));
  } catch (_) {
    throw new UsageError(`--peer-id: not a peer id (base58, as the node logs it, or 0x hex): ${text}`);
  }
}

async function registerExpert(api, values, positionals) {
  take(positionals, []);
  for (const required of ['bond', 'peer-id', 'price']) {
    if (values[required] === undefined) throw new UsageError(`register-expert needs --${required}`);
  }
  const serve = values.serve.map((text) => {
    const m = /^(\d+)\/(\d+)(?::(f32|f16|bf16))?$/i.exec(text);
    if (!m) throw new UsageError(`--serve ${text}: expected MODEL/CHUNK or MODEL/CHUNK:FORMAT (f32, f16, bf16)`);
    return { model: Number(m[1]), chunk: Number(m[2]), format: experts.formatOf(m[3] ?? 'f32') };
  });
  const profile = {
    domains: values.domain,
    peerId: peerIdBytes(values['peer-id']),
    price: amount(values.price, '--price'),
    capacity: integer(values.capacity, '--capacity', { min: 1 }),
    commissionPercent: decimal(values.commission, '--commission', 0, 100),
  };
  const bond = amount(values.bond, '--bond');
  const account = await signer(api, values);
  const registered = await experts.registerExpert(api, account, bond, profile);
  if (!registered.ok) return refused(registered);
  console.log(`${account.address} is an expert with a bond of ${experts.formatDllm(bond)}`);
  for (const { model: m, chunk, format } of serve) {
    const result = await experts.serveChunk(api, account, m, chunk, undefined, format);
    if (!result.ok) return refused(result);
    console.log(`serving model ${m} chunk ${chunk} in ${format}`);
  }
  return 0;
}

/** `dllm stake status [ADDRESS]`: the era and what ADDRESS (or the signer) stakes. */
async function stakeStatus(api, values, rest) {
  let account;
  if (rest.length) {
    account = address(api, take(rest, ['ADDRESS'])[0], 'ADDRESS');
  } else {
    account = (await signer(api, values)).address;
  }
  const state = await staking.stakerState(api, account);
  const session = (await api.query.session.currentIndex()).toNumber();
  const set = (await api.query.session.validators()).map(String);
  console.log(`era ${state.era ?? '(none yet)'}, session ${session}, ${set.length} validator${set.length === 1 ? '' : 's'}`);
  console.log(`${account}`);
  if (!state.bonded) {
    console.log('  not bonded');
    return 0;
  }
  const { total, active, unlocking } = state.bonded;
  console.log(`  bonded ${experts.formatDllm(total)} (active ${experts.formatDllm(active)})`);
  for (const chunk of unlocking) console.log(`  unbonding ${experts.formatDllm(chunk.value)}, withdrawable from era ${chunk.era}`);
  if (state.validating !== null) console.log(`  validating at ${state.validating}% commission`);
  if (state.nominating) console.log(`  nominating ${state.nominating.join(', ')}`);
  if (state.validating === null && !state.nominating) console.log('  neither validating nor nominating (chilled)');
  if (state.elected) {
    const { total: backing, own, nominators } = state.elected;
    console.log(`  elected in era ${state.era}: backed by ${experts.formatDllm(backing)}, own ${experts.formatDllm(own)}, ${nominators} nominator${nominators === 1 ? '' : 's'}; ${state.points} era points so far`);
  }
  const unclaimed = await staking.unclaimedEras(api, account);
  if (unclaimed.length) console.log(`  unpaid eras: ${unclaimed.map((u) => u.era).join(', ')} (\`dllm stake payout ${account}\`)`);
  return 0;
}

/** `dllm stake validate|nominate|payout|status`: a validator's or a nominator's stake. */
async function electionStake(api, values, positionals) {
  const [action, ...rest] = positionals;
  // No bond and a bond of 0 both add nothing.
  const bond = values.bond === undefined ? undefined : amount(values.bond, '--bond') || undefined;
  if (action === 'payout') {
    if (!rest.length || rest.length > 2) throw new UsageError('stake payout needs VALIDATOR and optionally ERA (none: every era not paid yet)');
    if (rest.length === 1) {
      const validator = address(api, rest[0], 'VALIDATOR');
      const account = await signer(api, values);
      const unclaimed = await staking.unclaimedEras(api, validator);
      if (!unclaimed.length) {
        console.log(`nothing to pay: ${validator} has no unpaid era among the last ${api.consts.staking.historyDepth} (era ${await staking.activeEra(api)} is active)`);
        return 0;
      }
      // Oldest first; a refused transaction stops here, and what it would have paid
      // stays unpaid (`stake status` lists it).
      for (const batch of staking.payoutBatches(api, validator, unclaimed)) {
        const { eras } = batch;
        const code = done(await staking.payoutBatch(api, account, batch), `paid ${validator}'s stakers for era${eras.length > 1 ? 's' : ''} ${eras.join(', ')}`);
        if (code) return code;
      }
      return 0;
    }
    const [validator, era] = take(rest, ['VALIDATOR', 'ERA']);
    address(api, validator, 'VALIDATOR');
    const result = await staking.payout(api, await signer(api, values), validator, integer(era, 'ERA'));
    return done(result, `paid ${validator}'s stakers for era ${era}`);
  }
  if (action === 'status') return stakeStatus(api, values, rest);
  if (action === 'nominate') {
    if (!rest.length) throw new UsageError('stake nominate needs at least one VALIDATOR');
    rest.forEach((validator) => address(api, validator, 'VALIDATOR'));
    const account = await signer(api, values);
    if (bond === undefined && !(await staking.ledger(api, account.address))) {
      throw new UsageError('stake nominate: not bonded yet; give --bond AMOUNT');
    }
    return done(await staking.nominate(api, account, { bond, targets: rest }), `nominating ${rest.join(', ')}`);
  }
  take(rest, []);
  const account = await signer(api, values);
  if (bond === undefined && !(await staking.ledger(api, account.address))) {
    throw new UsageError('stake validate: not bonded yet; give --bond AMOUNT');
  }
  if ((values.keys === undefined) !== (values.proof === undefined)) {
    throw new UsageError('stake validate: give both --keys and --proof, or neither (the node at --ws makes new ones)');
  }
  let keys = { keys: values.keys, proof: values.proof };
  if (values.keys === undefined) {
    try {
      keys = await staking.rotateKeys(api, account.address);
    } catch (e) {
      throw new UsageError(`the node at --ws cannot make session keys (${e.message}); run this against your validator node on loopback, or give --keys and --proof`);
    }
  }
  const commissionPercent = decimal(values.commission, '--commission', 0, 100);
  const result = await staking.validate(api, account, { bond, ...keys, commissionPercent });
  return done(result, `${account.address} validates from the next era's election, session keys ${keys.keys}`);
}

async function main() {
  let parsed;
  try {
    parsed = parse(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`error: ${e.message}\n\n${help()}`);
    return 2;
  }
  const { command, values, positionals } = parsed;
  if (command === 'help' || values.help) {
    console.log(help(command === 'help' ? positionals[0] : command));
    return 0;
  }
  await cryptoWaitReady();
  if (command === 'new-account') {
    take(positionals, []);
    const mnemonic = mnemonicGenerate();
    // 42: the chain's SS58 prefix (dllm_primitives::token::SS58_PREFIX).
    const created = new Keyring({ type: 'sr25519', ss58Format: 42 }).addFromUri(mnemonic);
    console.log(`address:  ${created.address}\nmnemonic: ${mnemonic}`);
    console.log('Keep the mnemonic secret and safe: it is the account. Use it as DLLM_SURI or --suri.');
    return 0;
  }
  if (command === 'multisig-address') {
    try {
      return multisigAddress(positionals);
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      console.error(`error: ${e.message}\n\n${help(command)}`);
      return 2;
    }
  }
  let api;
  try {
    api = await connect(values.ws);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`error: ${e.message}`);
    return 2;
  }
  try {
    switch (command) {
      case 'chat': return await chat(api, values, positionals);
      case 'quote': return await quote(api, values, positionals);
      case 'status': return await status(api, values, positionals);
      case 'register-expert': return await registerExpert(api, values, positionals);
      case 'serve': {
        if (positionals.length === 2) positionals.push('f32');
        const [m, chunk, dtype] = take(positionals, ['MODEL', 'CHUNK', 'FORMAT']);
        let format;
        try {
          format = experts.formatOf(dtype);
        } catch (e) {
          throw new UsageError(e.message);
        }
        const result = await experts.serveChunk(api, await signer(api, values), integer(m, 'MODEL'), integer(chunk, 'CHUNK'), undefined, format);
        return done(result, `serving model ${m} chunk ${chunk} in ${format}`);
      }
      case 'stop-serving': {
        const [m, chunk] = take(positionals, ['MODEL', 'CHUNK']);
        return done(await experts.stopServing(api, await signer(api, values), integer(m, 'MODEL'), integer(chunk, 'CHUNK')), `stopped serving model ${m} chunk ${chunk}`);
      }
      case 'deregister':
        take(positionals, []);
        return done(await experts.deregister(api, await signer(api, values)), 'deregistered: the bond and the delegations to it are unbonding');
      case 'stake': {
        if (['validate', 'nominate', 'payout', 'status'].includes(positionals[0])) return await electionStake(api, values, positionals);
        const [value] = take(positionals, ['AMOUNT']);
        const stake = amount(value, 'AMOUNT');
        return done(await experts.bondExtra(api, await signer(api, values), stake), `bonded ${experts.formatDllm(stake)} more`);
      }
      case 'delegate': {
        const [expert, value] = take(positionals, ['EXPERT', 'AMOUNT']);
        address(api, expert, 'EXPERT');
        const stake = amount(value, 'AMOUNT');
        return done(await experts.delegate(api, await signer(api, values), expert, stake), `delegated ${experts.formatDllm(stake)} to ${expert}`);
      }
      case 'unbond': {
        const [value] = take(positionals, ['AMOUNT']);
        const stake = amount(value, 'AMOUNT');
        const account = await signer(api, values);
        let result;
        if (values.from !== undefined) {
          address(api, values.from, '--from');
          result = await experts.undelegate(api, account, values.from, stake);
        } else {
          result = await experts.unbond(api, account, stake);
        }
        const period = (await api.query.experts.unbondingPeriod()).toNumber();
        return done(result, `unbonding ${experts.formatDllm(stake)}: withdraw it after ${period} blocks with \`dllm withdraw\``);
      }
      case 'transfer': {
        const [to, value] = take(positionals, ['TO', 'AMOUNT']);
        const sent = amount(value, 'AMOUNT');
        address(api, to, 'TO');
        const tx = api.tx.balances.transferKeepAlive(to, sent);
        return done(await experts.submit(api, tx, await signer(api, values)), `sent ${experts.formatDllm(sent)} to ${to}`);
      }
      case 'withdraw':
        take(positionals, []);
        return done(await experts.withdrawUnbonded(api, await signer(api, values)), 'withdrew the unbonded stake');
      case 'rate': {
        const [task, stars] = take(positionals, ['TASK', 'STARS']);
        const tx = api.tx.reputation.rateTask(integer(task, 'TASK'), integer(stars, 'STARS', { min: 1, max: 5 }));
        return done(await experts.submit(api, tx, await signer(api, values)), `rated task ${task} ${stars} star(s)`);
      }
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`error: ${e.message}\n\n${help(command)}`);
    return 2;
  } finally {
    await api.disconnect();
  }
}

runCli(main);
