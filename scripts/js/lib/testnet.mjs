// A local testnet on loopback: the dev chain's validator (Alice) and miner nodes for the
// genesis experts (Bob, Charlie, Dave, ...), each running `dllm-node --miner` on a tiny
// model generated on the spot with `dllm-infer make-tiny` (the dev model's weights).

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { writeFileSync } from 'node:fs';

import { Keyring } from '@polkadot/keyring';
import { bnToU8a, u8aToHex } from '@polkadot/util';
import { base58Decode, xxhashAsHex } from '@polkadot/util-crypto';

import * as experts from './experts.mjs';
import { nodeBinary, requireTestHooks, sendAndFinalize, startNode, TEST_HOOK_FLAGS } from './node.mjs';

const run = promisify(execFile);

/** The node key of each dev account's node: `0x00…0N`, as the dev genesis registers. */
export const NODE_KEY_INDEX = { alice: 1, bob: 2, charlie: 3, dave: 4, eve: 5, ferdie: 6 };

/** The PeerId of node key `0x00…01` (the validator's). */
const VALIDATOR_PEER = '12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp';

export function nodeKey(name) {
  return NODE_KEY_INDEX[name].toString(16).padStart(64, '0');
}

/** The libp2p peer id (bytes, hex) of dev account `name`'s node key. */
export async function nodePeerId(name) {
  const dir = mkdtempSync(join(tmpdir(), 'dllm-key-'));
  try {
    writeFileSync(join(dir, name), nodeKey(name));
    const { stdout } = await run(nodeBinary(), ['key', 'inspect-node-key', '--file', join(dir, name)]);
    return u8aToHex(base58Decode(stdout.trim()));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Registers `signer` (dev account `name`) as an expert of `chunks` (both) of the dev
 * model under its node's peer id, bonding 10 000 DLLM and asking `price` per token per
 * layer, computing in `dtype` (the miner node's `--dtype`).
 */
export async function registerDevMiner(api, name, signer, { price = 10n * 10n ** 6n, dtype = 'f32', chunks = [0, 1] } = {}) {
  const profile = { domains: ['general'], peerId: await nodePeerId(name), price, capacity: 4, commissionPercent: 10 };
  let result = await experts.registerExpert(api, signer, 10_000n * experts.UNIT, profile);
  if (!result.ok) throw new Error(`registering ${name}: ${result.error}`);
  for (const chunk of chunks) {
    result = await experts.serveChunk(api, signer, 0, chunk, undefined, experts.formatOf(dtype));
    if (!result.ok) throw new Error(`${name} serving chunk ${chunk}: ${result.error}`);
  }
}

/**
 * Writes to `path` the raw `local` chain spec with sessions of `sessionBlocks` blocks
 * and eras of `sessionsPerEra` sessions (the runtime's `:SessionPeriod:` and
 * `:SessionsPerEra:` storage parameters, defaults 600 and 6), so that elections and
 * payouts come within minutes on loopback. Resolves `path`.
 */
export async function shortEraSpec(path, { sessionBlocks, sessionsPerEra }) {
  for (const [name, value] of [['sessionBlocks', sessionBlocks], ['sessionsPerEra', sessionsPerEra]]) {
    if (!Number.isInteger(value) || value < 1 || value > 0xffff_ffff) throw new Error(`${name} must be a positive integer, got ${value}`);
  }
  // The raw spec holds the runtime's code as hex (megabytes).
  const { stdout } = await run(nodeBinary(), ['build-spec', '--chain', 'local', '--raw'], { maxBuffer: 256 << 20 });
  const spec = JSON.parse(stdout);
  // `parameter_types! { pub storage X: T = … }` reads twox128(":X:"), SCALE-encoded
  // (both are u32).
  const u32 = (value) => u8aToHex(bnToU8a(value, { bitLength: 32, isLe: true }));
  spec.genesis.raw.top[xxhashAsHex(':SessionPeriod:', 128)] = u32(sessionBlocks);
  spec.genesis.raw.top[xxhashAsHex(':SessionsPerEra:', 128)] = u32(sessionsPerEra);
  writeFileSync(path, JSON.stringify(spec));
  return path;
}

/** `dllm-infer`, next to the node binary. */
export function inferBinary() {
  const path = join(dirname(nodeBinary()), 'dllm-infer');
  if (!existsSync(path)) {
    throw new Error(
      `dllm-infer not found at ${path}; build it with \`source scripts/env.sh && cargo build ` +
        '--release --locked --workspace --features "$DLLM_FEATURES"` (scripts/test.sh does)',
    );
  }
  return path;
}

/**
 * Writes the dev chain's tiny model into `dir` (deterministic: its chunk hashes are
 * registered). With `tokenizer` (a tokenizer.json), the same layers around that
 * tokenizer's vocabulary instead: a model the chain does not know until
 * `registerTinyModel` registers it.
 */
export async function makeTinyModel(dir, { tokenizer } = {}) {
  await run(inferBinary(), ['make-tiny', '--out', dir, ...(tokenizer ? ['--tokenizer', tokenizer] : [])]);
  return dir;
}

/** Mistral's v1 tokenizer, committed (inference/assets/mistral-v1-tokenizer/PROVENANCE.md). */
export const MISTRAL_V1_TOKENIZER = join(
  dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'inference', 'assets', 'mistral-v1-tokenizer', 'tokenizer.json',
);

/**
 * Registers the tiny model in `modelDir` as a new active model called `name` (as root,
 * through sudo, signed by Alice): the dev model's spec with that directory's chunk,
 * config and tokenizer hashes, vocabulary and longest token. Then each of `servers`
 * (signers of registered experts) serves the chunks of it that it serves of model 0.
 * Resolves the new model's id.
 */
export async function registerTinyModel(api, modelDir, name, servers) {
  const alice = new Keyring({ type: 'sr25519' }).addFromUri('//Alice');
  const base = (await api.query.models.models(0)).unwrap().spec;
  const shards = base.chunks.map((c) => `${c.startLayer.toNumber()}..${c.endLayer.toNumber()}`).join(',');
  const { stdout } = await run(inferBinary(), ['hash-chunks', '--model', modelDir, '--shards', shards]);
  const printed = Object.fromEntries(stdout.trim().split('\n').map((line) => line.split(' ')));
  const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
  const spec = {
    ...base.toJSON(),
    name,
    vocabSize: config.vocab_size,
    maxTokenBytes: Number(printed['max-token-bytes']),
    tokenizerHash: printed.tokenizer,
    configHash: printed.config,
    chunks: base.chunks.map((c) => ({
      startLayer: c.startLayer.toNumber(),
      endLayer: c.endLayer.toNumber(),
      weightsHash: printed[`${c.startLayer.toNumber()}..${c.endLayer.toNumber()}`],
    })),
  };
  const registered = await sendAndFinalize(api.tx.sudo.sudo(api.tx.models.registerModel(spec)), alice);
  const event = registered.events.find(({ event: e }) => api.events.models.ModelRegistered.is(e));
  const failed = registered.events.find(({ event: e }) => api.events.sudo.Sudid.is(e) && e.data.sudoResult.isErr);
  if (!event || failed) throw new Error(`registering ${name} failed: ${failed ? failed.event.data.sudoResult.toString() : 'no event'}`);
  const model = event.event.data.model.toNumber();
  await sendAndFinalize(api.tx.sudo.sudo(api.tx.models.activateModel(model)), alice);
  for (const signer of servers) {
    const record = (await api.query.experts.experts(signer.address)).unwrap();
    for (const served of record.serving.filter((s) => s.model.toNumber() === 0)) {
      const chunk = served.chunk.toNumber();
      const result = await experts.serveChunk(api, signer, model, chunk, spec.chunks[chunk].weightsHash, served.format.type);
      if (!result.ok) throw new Error(`${signer.address} serving ${name} chunk ${chunk}: ${result.error}`);
    }
  }
  return model;
}

/** What `dllm-infer generate` prints (JSON) for the same model, prompt and sampling. */
export async function referenceGeneration(modelDir, prompt, maxTokens, sampling = {}) {
  const args = ['generate', '--model', modelDir, '--prompt', prompt, '--max-tokens', String(maxTokens), '--json'];
  if (sampling.temperature !== undefined) args.push('--temperature', String(sampling.temperature));
  if (sampling.topK) args.push('--top-k', String(sampling.topK));
  if (sampling.topP !== undefined && sampling.topP < 1) args.push('--top-p', String(sampling.topP));
  if (sampling.seed !== undefined) args.push('--seed', String(sampling.seed));
  const { stdout } = await run(inferBinary(), args);
  return JSON.parse(stdout);
}

/**
 * Runs `dllm-infer verify --json` on `record` (a generation record object, e.g.
 * `tasks.generationRecord`) against the model in `modelDir`; resolves { code, report }
 * (exit 0 accepted, 1 rejected; bad input throws with dllm-infer's message).
 */
export async function verifyRecord(modelDir, record) {
  const dir = mkdtempSync(join(tmpdir(), 'dllm-record-'));
  const path = join(dir, 'record.json');
  try {
    writeFileSync(path, JSON.stringify(record));
    const args = ['verify', '--model', modelDir, '--record', path, '--json'];
    try {
      const { stdout } = await run(inferBinary(), args);
      return { code: 0, report: JSON.parse(stdout) };
    } catch (e) {
      if (e.code === 1) return { code: 1, report: JSON.parse(e.stdout) };
      throw new Error(`dllm-infer verify: ${e.stderr || e.message}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts the validator and one miner node per name in `miners` (perturbing ones in
 * `perturb`, ones that corrupt only what they send in `corruptSent`;
 * `startMiner(name, { dtype })` starts one more; `extraArgs` gives some miners more
 * flags, e.g. `{ eve: ['--miner-token-delay-ms', '400'] }`; `operators` gives some miners
 * an operator key instead of the expert's own, e.g. `{ charlie: '//Charlie//operator' }`:
 * it is put in the node's keystore with `dllm-node key insert`, and the expert must name
 * it on chain with `set_operator`; `validatorArgs` are more flags of the validator, e.g.
 * `['--openai']`); resolves once all answer RPC. With `dir`, the model and the nodes' logs
 * (`<name>.log`) stay there; `modelDir` serves another registered model than the dev
 * one; `rpcPort` fixes the validator's RPC port; `mode` (`Redundant` or `Prefill`)
 * has root set how tasks are verified before the miners start (the dev chain's genesis
 * verifies by prefill); `beforeMiners(api)` runs on the validator before any miner starts
 * (e.g. `registerTinyModel` for a `modelDir` the chain does not know yet); `chain` is
 * `dev` (Alice alone), or `local` or the path of a spec of it (`shortEraSpec`), where
 * Bob's validator (`second`) runs too. Returns { api, validator, second, bootnode (Alice's
 * multiaddr), miners, modelDir, startMiner, stop }.
 */
export async function startTestnet({
  miners = ['bob', 'charlie', 'dave'],
  perturb = [],
  corruptSent = [],
  extraArgs = {},
  operators = {},
  validatorArgs = [],
  dir,
  modelDir,
  rpcPort,
  prometheus = {},
  mode,
  beforeMiners,
  chain = 'dev',
} = {}) {
  // `local` or a spec of it (e.g. `shortEraSpec`): two validators, Alice and Bob.
  const local = chain !== 'dev';
  if (local && chain !== 'local' && !existsSync(chain)) throw new Error(`chain ${chain}: dev, local or a chain spec file`);
  const hooked = Object.values(extraArgs).flat().some((arg) => TEST_HOOK_FLAGS.includes(arg));
  if (perturb.length || corruptSent.length || hooked) await requireTestHooks();
  const root = dir ?? mkdtempSync(join(tmpdir(), 'dllm-testnet-'));
  mkdirSync(root, { recursive: true });
  // Made once, when the first miner needs it: a network of validators only makes none.
  let modelMade = modelDir ? Promise.resolve(modelDir) : null;
  const model = () => (modelMade ??= makeTinyModel(join(root, 'model')));
  if (miners.length) modelDir = await model();
  const logFile = (name) => (dir ? join(dir, `${name}.log`) : undefined);
  const identity = local ? ['--chain', chain, '--alice', '--validator'] : ['--dev'];
  const validator = await startNode([...identity, '--tmp', '--no-mdns', '--node-key', nodeKey('alice'), ...validatorArgs], {
    rpcPort,
    logFile: logFile('alice'),
  });
  // The local chain's second authority (GRANDPA finalizes only with both), under a node
  // key of its own: 0x00…02 is Bob's miner's, which the genesis registered.
  let second = null;
  if (local) {
    try {
      second = await startNode([
        '--chain', chain, '--bob', '--validator', '--tmp', '--no-mdns', '--node-key', '7'.padStart(64, '0'),
        '--bootnodes', `/ip4/127.0.0.1/tcp/${validator.p2pPort}/p2p/${VALIDATOR_PEER}`,
      ], { logFile: logFile('bob-validator') });
    } catch (error) {
      await validator.kill();
      throw error;
    }
  }
  const killValidators = async () => {
    await validator.kill();
    if (second) await second.kill();
  };
  if (mode) {
    const alice = new Keyring({ type: 'sr25519' }).addFromUri('//Alice');
    const { dispatchError } = await sendAndFinalize(
      validator.api.tx.sudo.sudo(validator.api.tx.poaw.setVerificationMode(mode)),
      alice,
    );
    if (dispatchError) {
      await killValidators();
      throw new Error(`setting the verification mode ${mode} failed: ${dispatchError}`);
    }
  }
  if (beforeMiners) {
    try {
      await beforeMiners(validator.api);
    } catch (error) {
      await killValidators();
      throw error;
    }
  }
  const bootnode = `/ip4/127.0.0.1/tcp/${validator.p2pPort}/p2p/${VALIDATOR_PEER}`;
  const running = {};

  // Miners started on this network: a restart keeps its base path, a first start in a
  // reused `dir` drops what an earlier network left there (another chain's database).
  const startedMiners = new Set();
  async function startMiner(name, { prometheusPort = prometheus[name], dtype } = {}) {
    // A base path of its own (not --tmp), so that a restarted miner finds its keystore,
    // its database and the results it has not revealed yet.
    modelDir = await model();
    const base = join(root, name);
    if (!startedMiners.has(name)) rmSync(base, { recursive: true, force: true });
    startedMiners.add(name);
    // A dev account flag puts the expert's own key in the keystore; an operator miner
    // gets only its operator key, as docs/operators.md sets one up.
    const identity = [`--${name}`];
    if (operators[name]) {
      await run(nodeBinary(), [
        'key', 'insert', '--key-type', 'dllm', '--scheme', 'sr25519',
        '--suri', operators[name], '--chain', chain, '--base-path', base,
      ]);
      identity.splice(0, 1, '--name', name);
    }
    const args = [
      '--chain', chain, ...identity, '--base-path', base, '--no-mdns',
      '--node-key', nodeKey(name),
      '--bootnodes', bootnode,
      '--miner', '--model-dir', modelDir,
    ];
    if (perturb.includes(name)) args.push('--miner-perturb-activations');
    if (corruptSent.includes(name)) args.push('--miner-corrupt-sent');
    if (dtype) args.push('--dtype', dtype);
    args.push(...(extraArgs[name] ?? []));
    running[name] = await startNode(args, { prometheusPort, logFile: logFile(name) });
    return running[name];
  }

  try {
    await Promise.all(miners.map((name) => startMiner(name)));
  } catch (error) {
    await Promise.all(Object.values(running).map((node) => node.kill()));
    await killValidators();
    throw error;
  }

  async function stop() {
    await Promise.all(Object.values(running).map((node) => node.stop().catch(() => node.kill())));
    if (second) await second.stop().catch(() => second.kill());
    const code = await validator.stop();
    if (!dir) rmSync(root, { recursive: true, force: true });
    return code;
  }

  return {
    api: validator.api, validator, second, bootnode, miners: running, startMiner, stop,
    get modelDir() { return modelDir; },
  };
}
