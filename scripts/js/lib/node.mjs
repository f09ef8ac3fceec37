// Starting a dllm-node for scripts and tests, and connecting @polkadot/api to it.

import { execFile, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ApiPromise, WsProvider } from '@polkadot/api';

import { DLLM_RPC } from './rpc.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/** The node binary: $DLLM_NODE, else the release build in $CARGO_TARGET_DIR. */
export function nodeBinary() {
  if (process.env.DLLM_NODE) return process.env.DLLM_NODE;
  const targetDir =
    process.env.CARGO_TARGET_DIR || join(homedir(), '.cache', 'dllm-target');
  const candidates = [
    join(targetDir, 'release', 'dllm-node'),
    resolve(here, '..', '..', '..', 'target', 'release', 'dllm-node'),
  ];
  const found = candidates.find((path) => existsSync(path));
  if (!found) {
    throw new Error(
      `dllm-node not found (looked in ${candidates.join(', ')}); ` +
        'build it with `scripts/test.sh` (or `source scripts/env.sh && cargo build --release ' +
        '--locked --workspace --features "$DLLM_FEATURES"`) or set DLLM_NODE',
    );
  }
  return found;
}

/** The flags of `dllm-node --miner` that exist only in a build with `dllm-node/test-hooks`. */
export const TEST_HOOK_FLAGS = ['--miner-perturb-activations', '--miner-corrupt-sent', '--miner-token-delay-ms'];

/**
 * Throws, saying how to build one, unless the node binary has the test-only miner
 * flags (cargo feature `dllm-node/test-hooks`, which the repository's scripts enable).
 */
export async function requireTestHooks() {
  const help = await new Promise((resolveHelp, reject) => {
    execFile(nodeBinary(), ['--help'], { maxBuffer: 16 << 20 }, (error, stdout) =>
      error ? reject(error) : resolveHelp(stdout));
  });
  if (!help.includes(TEST_HOOK_FLAGS[0])) {
    throw new Error(
      `${nodeBinary()} was built without the test-only miner flags (${TEST_HOOK_FLAGS.join(', ')}); ` +
        'rebuild it with `source scripts/env.sh && cargo build --release --locked --workspace ' +
        '--features "$DLLM_FEATURES"` (scripts/test.sh does)',
    );
  }
}

/** The value of Prometheus metric `metric` on the node whose `--prometheus-port` is `port`. */
export async function scrape(port, metric) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  // The node's registry labels every metric with the chain: `<metric>{chain="dllm_dev"} <value>`.
  const line = text.split('\n').find((l) => l.startsWith(`${metric}{`) || l.startsWith(`${metric} `));
  if (!line) throw new Error(`metric ${metric} not found on port ${port}`);
  return Number(line.split(' ').pop());
}

/** Resolves once something listens on 127.0.0.1:`port` (tried every 250 ms until `stop` settles). */
async function untilListening(port, stop) {
  let stopped = false;
  stop.catch(() => {}).finally(() => { stopped = true; });
  while (!stopped) {
    const open = await new Promise((resolveTry) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); resolveTry(true); });
      socket.once('error', () => resolveTry(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A TCP port that is free right now. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * Starts `dllm-node --dev --tmp` on free ports and connects an ApiPromise to it.
 * Returns { api, stop, log, wsUrl }.
 */
export async function startDevNode() {
  return startNode(['--dev', '--tmp', '--no-mdns']);
}

/**
 * Starts `dllm-node` with `args` plus free RPC and p2p ports (or the given ones), no
 * telemetry and no Prometheus endpoint unless `prometheusPort` is given, and connects
 * an ApiPromise to it once its RPC answers. Its log goes to `logFile` too, if given. Returns { api, stop, kill, log, wsUrl,
 * p2pPort, exited }.
 */
export async function startNode(args, { rpcPort, p2pPort, prometheusPort, logFile } = {}) {
  rpcPort = rpcPort ?? (await freePort());
  p2pPort = p2pPort ?? (await freePort());
  const metrics = prometheusPort
    ? ['--prometheus-port', String(prometheusPort)]
    : ['--no-prometheus'];
  const child = spawn(
    nodeBinary(),
    [...args, '--rpc-port', String(rpcPort), '--port', String(p2pPort), '--no-telemetry', ...metrics],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // The last lines in memory (for errors and tests), all of them in `logFile` if given.
  const log = [];
  child.stderr.on('data', (chunk) => {
    log.push(...chunk.toString().split('\n'));
    if (log.length > 5000) log.splice(0, log.length - 2500);
  });
  if (logFile) child.stderr.pipe(createWriteStream(logFile));

  const exited = new Promise((resolveExit) => child.on('exit', resolveExit));
  // Rejects if the node dies before the API is ready; handled here so that the normal
  // exit at `stop()` is not an unhandled rejection.
  const died = exited.then((code) => {
    throw new Error(`dllm-node exited with ${code}:\n${log.slice(-30).join('\n')}`);
  });
  died.catch(() => {});
  let timer;
  const tooSlow = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('dllm-node RPC not ready after 120 s')), 120_000);
  });
  let api;
  let provider;
  try {
    // Connect once the port listens: a WebSocket provider that retries a closed port
    // logs a line for every attempt.
    await Promise.race([untilListening(rpcPort, died), died, tooSlow]);
    provider = new WsProvider(`ws://127.0.0.1:${rpcPort}`, 500);
    api = await Promise.race([
      ApiPromise.create({ provider, rpc: DLLM_RPC, noInitWarn: true, throwOnConnect: false }),
      died,
      tooSlow,
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    await provider?.disconnect().catch(() => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }

  async function stop() {
    await api.disconnect();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }

  /** Kills the node at once (a crash), without waiting for a clean exit. */
  async function kill() {
    await api.disconnect().catch(() => {});
    child.kill('SIGKILL');
    return exited;
  }

  return { api, stop, kill, log, exited, p2pPort, wsUrl: `ws://127.0.0.1:${rpcPort}` };
}

/**
 * Signs and sends `tx` with `signer`; resolves once its block is finalized with
 * { blockHash, events, dispatchError }, or rejects if the pool refuses it.
 */
export function sendAndFinalize(tx, signer) {
  return new Promise((resolveTx, reject) => {
    let unsubscribe = () => {};
    tx.signAndSend(signer, (result) => {
      if (result.isError) {
        unsubscribe();
        reject(new Error(`transaction failed: ${result.status.type}`));
      } else if (result.status.isFinalized) {
        unsubscribe();
        resolveTx({
          blockHash: result.status.asFinalized.toHex(),
          events: result.events,
          dispatchError: result.dispatchError,
        });
      }
    })
      .then((unsub) => {
        unsubscribe = unsub;
      })
      .catch(reject);
  });
}

/** Names a dispatch error: `pallet.Error` for module errors, `Token.X` and the like otherwise. */
export function describeDispatchError(api, dispatchError) {
  if (!dispatchError) return null;
  if (dispatchError.isModule) {
    const { section, name } = api.registry.findMetaError(dispatchError.asModule);
    return `${section}.${name}`;
  }
  const kind = dispatchError.type;
  const inner = dispatchError[`as${kind}`];
  return inner && inner.type ? `${kind}.${inner.type}` : kind;
}

/**
 * A dispatch error in one sentence for people: its name, then what the pallet's
 * documentation of the error says (from metadata), e.g.
 * `experts.BondBelowMinimum: the bond is below the minimum an expert must keep`.
 */
export function explainDispatchError(api, dispatchError) {
  const name = describeDispatchError(api, dispatchError);
  if (!name || !dispatchError.isModule) return name;
  const docs = api.registry.findMetaError(dispatchError.asModule).docs.join(' ').trim();
  return docs ? `${name}: ${docs}` : name;
}

/**
 * Runs the `dllm` command (bin/dllm.mjs) against the node at `wsUrl` with `args`;
 * resolves { code, stdout, stderr } whatever its exit code.
 */
export function runDllm(wsUrl, ...args) {
  const script = join(here, '..', 'bin', 'dllm.mjs');
  return new Promise((resolveRun) => {
    execFile(process.execPath, [script, '--ws', wsUrl, ...args], (error, stdout, stderr) => {
      resolveRun({ code: error ? error.code : 0, stdout, stderr });
    });
  });
}

/**
 * Runs a command-line `main` (resolving to an exit code) and exits with it; an error
 * is printed as `error: …` with exit code 1.
 */
export function runCli(main) {
  main().then(
    (code) => process.exit(code),
    (error) => {
      console.error(`error: ${error.message}`);
      process.exit(1);
    },
  );
}
