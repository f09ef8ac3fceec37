// The OpenAI-compatible HTTP API (`dllm-node --openai`) through the official `openai`
// SDK, on a dev network with miner nodes: the model list, a chat completion whole and
// streamed (the deltas concatenate to the verified answer, which is `dllm-infer
// generate` on the Mistral-template prompt the chain holds), usage, the `dllm` task
// record, and every refusal with its OpenAI-style error and status, paying nothing.
// On the same network: the chat page in headless Chromium (Debian's chromium, driven
// by playwright-core), its network view (`GET /dllm/network`) and the `dllm` command.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';
import { chromium } from 'playwright-core';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import { formatDllm } from '../lib/experts.mjs';
import { freePort, runDllm } from '../lib/node.mjs';
import { total } from '../lib/settlement.mjs';
import * as tasks from '../lib/tasks.mjs';
import { referenceGeneration, startTestnet } from '../lib/testnet.mjs';

const MODEL = 'dllm-tiny-mistral';
const KEY = 'test-key';
const MESSAGES = [
  { role: 'system', content: 'Answer briefly.' },
  { role: 'user', content: 'What is DLLM?' },
];
const SAMPLING = { temperature: 0.8, top_p: 0.95, seed: 42 };

let net;
let client;
let base;
let root;
let brokeRoot;
let broke;
let payer;

before(async () => {
  await cryptoWaitReady();
  payer = new Keyring({ type: 'sr25519' }).addFromUri('//Ferdie');
  const [port, brokePort] = [await freePort(), await freePort()];
  net = await startTestnet({
    validatorArgs: [
      '--openai', '--openai-port', String(port), '--openai-suri', '//Ferdie', '--openai-api-key', KEY,
    ],
    // Bob's node serves an API too, without a key, paid by an account that holds nothing.
    // The chunk-0 miners pause 30 ms per token, so that the tokens of every answer stream
    // for a while before the chain's verdict (what the chat page test looks for).
    extraArgs: {
      bob: ['--openai', '--openai-port', String(brokePort), '--openai-suri', '//Nobody', '--miner-token-delay-ms', '30'],
      dave: ['--miner-token-delay-ms', '30'],
    },
  });
  root = `http://127.0.0.1:${port}`;
  base = `${root}/v1`;
  brokeRoot = `http://127.0.0.1:${brokePort}`;
  client = new OpenAI({ baseURL: base, apiKey: KEY, maxRetries: 0 });
  broke = new OpenAI({ baseURL: `http://127.0.0.1:${brokePort}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  if (net) await net.stop();
});

/** The prompt the chain holds for `task`, as text. */
async function promptOf(task) {
  const details = (await net.api.call.poawApi.task(task)).unwrap();
  return new TextDecoder().decode(details.prompt.unwrap().toU8a(true));
}

test('models.list shows the active model by name', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
  assert.equal(models.data[0].object, 'model');
});

test('a chat completion, whole and streamed: the same verified answer, dllm-infer\'s for the template prompt', async () => {
  const whole = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 12, ...SAMPLING });
  assert.equal(whole.object, 'chat.completion');
  const [choice] = whole.choices;
  assert.equal(choice.message.role, 'assistant');
  assert.equal(whole.dllm.status, 'Completed');
  assert.equal(whole.dllm.verified, true);
  assert.ok(BigInt(whole.dllm.fee) > 0n);

  const prompt = await promptOf(whole.dllm.task);
  assert.equal(prompt, '<s>[INST] Answer briefly.\n\nWhat is DLLM? [/INST]');
  const reference = await referenceGeneration(net.modelDir, prompt, 12, { temperature: 0.8, topP: 0.95, seed: 42 });
  assert.equal(choice.message.content, reference.text);
  assert.equal(whole.usage.prompt_tokens, reference.prompt_tokens.length);
  assert.equal(whole.usage.completion_tokens, reference.tokens.length);
  assert.equal(whole.usage.total_tokens, reference.prompt_tokens.length + reference.tokens.length);
  assert.equal(choice.finish_reason, reference.tokens.length >= 12 ? 'length' : 'stop');

  const stream = await client.chat.completions.create({
    model: MODEL, messages: MESSAGES, max_tokens: 12, ...SAMPLING, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  let dllm = null;
  let chunks = 0;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    chunks += 1;
    if (chunk.usage) usage = chunk.usage;
    if (chunk.dllm) dllm = chunk.dllm;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, choice.message.content, 'the deltas concatenate to the whole answer');
  assert.equal(finish, choice.finish_reason);
  assert.deepEqual(usage, whole.usage);
  assert.equal(dllm.verified, true);
  assert.equal(dllm.preview_matches, true, 'the streamed preview is the verified answer');
  assert.notEqual(dllm.task, whole.dllm.task, 'a task of its own');
  assert.ok(chunks >= 3, `${chunks} chunks`);
});

test('a plain completion takes the prompt as it is', async () => {
  const answer = await client.completions.create({ model: MODEL, prompt: 'Hello', max_tokens: 6, temperature: 0, seed: 1 });
  assert.equal(answer.object, 'text_completion');
  assert.equal(await promptOf(answer.dllm.task), 'Hello');
  const reference = await referenceGeneration(net.modelDir, 'Hello', 6, { temperature: 0, seed: 1 });
  assert.equal(answer.choices[0].text, reference.text);
});

/** Runs `call`, which must fail with an OpenAI error of `status` (and `code`, if given). */
async function refused(call, status, code) {
  await assert.rejects(call, (error) => {
    assert.equal(error.status, status, String(error));
    if (code) assert.equal(error.code, code, String(error));
    return true;
  });
}

test('bad requests get OpenAI-style errors with the right status and cost nothing', async () => {
  const before = await total(net.api, payer.address);
  await refused(client.chat.completions.create({ model: 'no-such-model', messages: MESSAGES }), 404, 'model_not_found');
  await refused(client.chat.completions.create({ model: MODEL, messages: [] }), 400);
  await refused(client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 0 }), 400);
  await refused(client.chat.completions.create({ model: MODEL, messages: [{ role: 'assistant', content: 'x' }] }), 400);
  await refused(client.chat.completions.create({ model: MODEL, messages: MESSAGES, temperature: 5 }), 400);
  await refused(client.completions.create({ model: MODEL, prompt: '' }), 400);
  const wrongKey = new OpenAI({ baseURL: base, apiKey: 'wrong', maxRetries: 0 });
  await refused(wrongKey.models.list(), 401, 'invalid_api_key');

  // Without the SDK: a missing key, and a body that is not JSON.
  let response = await fetch(`${base}/models`);
  assert.equal(response.status, 401);
  assert.equal((await response.json()).error.code, 'invalid_api_key');
  response = await fetch(`${base}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: '{"model": "dllm-tiny-mistral", "messages": [',
  });
  assert.equal(response.status, 400);
  const body = await response.json();
  assert.equal(body.error.type, 'invalid_request_error');
  assert.match(body.error.message, /not a chat request/);
  response = await fetch(`${base}/nothing`, { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(response.status, 404);

  // An account that cannot pay: 402, and nothing moves.
  await refused(broke.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 4 }), 402, 'insufficient_quota');
  assert.equal(await total(net.api, payer.address), before, 'no request above moved the payer\'s balance');
});

test('GET /dllm/network: the models with the experts of each chunk, the experts\' reputation and stake, recent tasks', async () => {
  assert.equal((await fetch(`${root}/dllm/network`)).status, 401, 'the view needs the key like the API');
  const response = await fetch(`${root}/dllm/network`, { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(response.status, 200);
  const view = await response.json();
  assert.deepEqual(view.token, { symbol: 'DLLM', decimals: 12 });
  assert.equal(view.complete, true, 'this runtime has every API the view reads');
  const [model] = view.models;
  assert.equal(model.name, MODEL);
  assert.deepEqual(model.chunks.map((c) => c.layers), [[0, 2], [2, 4]]);
  const onChain = async (chunk) => (await net.api.call.registryApi.chunkServers(0, chunk)).map(String);
  assert.deepEqual(model.chunks[0].experts, await onChain(0));
  assert.deepEqual(model.chunks[1].experts, await onChain(1));
  assert.equal(view.experts.length, new Set([...model.chunks[0].experts, ...model.chunks[1].experts]).size);
  for (const expert of view.experts) {
    const score = (await net.api.call.registryApi.reputationScore(expert.account)).toNumber() / 1e9;
    assert.equal(expert.reputation, score);
    assert.match(expert.peer_id, /^12D3KooW/);
    assert.ok(BigInt(expert.bond) > 0n);
  }
  // The tasks the tests above ran, newest first, with their settlement.
  const ids = view.tasks.map((t) => t.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => b - a));
  assert.ok(ids.length >= 3, `${ids.length} recent tasks`);
  const completed = view.tasks.find((t) => t.status === 'Completed');
  const details = await tasks.taskDetails(net.api, completed.id);
  assert.equal(BigInt(completed.fee), BigInt(details.settlement.fee));
});

test('the chat page in headless Chromium: the answer streams in, then its task id, fee and verification show', async () => {
  const page = await fetch(`${root}/`);
  assert.equal(page.status, 200, 'the page needs no key');
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.match(page.headers.get('content-security-policy'), /default-src 'self'/);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    // This machine's network is closed: no background connections.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const tab = await browser.newPage({ viewport: { width: 1400, height: 800 } });
    const errors = [];
    tab.on('pageerror', (e) => errors.push(e.message));
    await tab.goto(`${root}/`);
    // Without the key the page says what is missing; with it, the models load.
    await tab.waitForFunction(() => document.getElementById('notice').textContent.includes('API key'));
    await tab.fill('#api-key', KEY);
    await tab.press('#api-key', 'Tab');
    await tab.waitForSelector(`#model option[value="${MODEL}"]`, { state: 'attached' });
    await tab.fill('#prompt', 'What is DLLM?');
    await tab.press('#prompt', 'Enter');
    const answer = tab.locator('li.assistant[data-verified="true"]');
    await answer.waitFor({ timeout: 300_000 });
    const task = Number(await answer.getAttribute('data-task'));
    const field = (name) => answer.locator(`[data-field="${name}"]`).textContent();
    assert.equal(await field('task'), `task #${task}`);
    assert.equal(await field('status'), 'verified');
    // Text arrived before the chain's verdict (the page counts only that as a first token).
    assert.match(await field('first-token'), /^first token [\d.]+ s$/);

    const details = await tasks.taskDetails(net.api, task);
    assert.equal(details.status, 'Completed');
    assert.equal(await promptOf(task), '<s>[INST] What is DLLM? [/INST]');
    assert.equal(await answer.locator('.text').textContent(), details.outputs[0].text);
    assert.equal(await field('fee'), `fee ${formatDllm(BigInt(details.settlement.fee))}`);
    assert.equal(await field('refunded'), `refunded ${formatDllm(BigInt(details.settlement.refunded))}`);
    // The network view lists the task.
    await tab.waitForSelector(`#net-tasks tr[data-task="${task}"]`, { timeout: 30_000 });
    if (process.env.DLLM_TEST_DIR) await tab.screenshot({ path: join(process.env.DLLM_TEST_DIR, 'chat-page.png') });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

/** Runs the `dllm` command against the validator. */
const dllm = (...args) => runDllm(net.validator.wsUrl, ...args);

test('dllm chat streams the miners\' tokens, then the verified answer, fee and refund; quote and status read the chain', async () => {
  const run = await dllm('chat', '--suri', '//Ferdie', '--max-tokens', '8', '--temperature', '0', 'Hello');
  assert.equal(run.code, 0, run.stderr);
  const task = Number(/^task (\d+) submitted/m.exec(run.stdout)[1]);
  const details = await tasks.taskDetails(net.api, task);
  const reference = await referenceGeneration(net.modelDir, 'Hello', 8, { temperature: 0 });
  assert.equal(details.outputs[0].text, reference.text);
  // The streamed tokens are the verified answer: printed once, then the settlement.
  const body = run.stdout.split('\n').slice(1).join('\n');
  assert.equal(body, `${reference.text}\nverified: paid ${formatDllm(BigInt(details.settlement.fee))} (miners ${formatDllm(BigInt(details.settlement.miners))}, community ${formatDllm(BigInt(details.settlement.community))}), refunded ${formatDllm(BigInt(details.settlement.refunded))}\n`);

  const quote = await dllm('quote', '--model', MODEL, '--max-tokens', '8', 'Hello');
  assert.equal(quote.code, 0, quote.stderr);
  const fee = (await tasks.quote(net.api, 0, 'Hello', 8)).maxFee;
  assert.match(quote.stdout, new RegExp(`^${MODEL}: at most ${formatDllm(fee).replace('.', '\\.')} for up to 15 tokens over 4 layers`));

  const status = await dllm('status', '--suri', '//Ferdie');
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`0 ${MODEL} v1 \\(Active, 4 layers\\): chunk 0: \\d experts?, chunk 1: \\d experts?`));
  for (const name of ['Bob', 'Charlie', 'Dave']) {
    const { address } = new Keyring({ type: 'sr25519' }).addFromUri(`//${name}`);
    assert.match(status.stdout, new RegExp(`${address}  chunks [\\d/ ]+  reputation [\\d.]+ %`));
  }
  assert.match(status.stdout, new RegExp(`Account ${payer.address}\n  free [\\d.]+ DLLM`));
});

test('docs/users.md\'s Python example streams an answer through the official OpenAI Python SDK', async () => {
  assert.ok(process.env.DLLM_PY_ENV, 'DLLM_PY_ENV is set (source scripts/env.sh; scripts/setup.sh --tests installs the SDK there)');
  const python = join(process.env.DLLM_PY_ENV, 'bin', 'python');
  const example = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'py', 'chat_stream.py');
  const run = await new Promise((resolveRun) => {
    execFile(python, [example, 'What is DLLM?'], { env: { ...process.env, OPENAI_BASE_URL: base, OPENAI_API_KEY: KEY } },
      (error, stdout, stderr) => resolveRun({ code: error ? error.code : 0, stdout, stderr }));
  });
  assert.equal(run.code, 0, `${run.stderr} (scripts/setup.sh --tests installs the SDK into DLLM_PY_ENV)`);
  // The streamed text (which may hold newlines), then the task's record.
  const lines = run.stdout.split('\n');
  const [text, record] = [lines.slice(0, -2).join('\n'), lines.at(-2)];
  const task = Number(/^task (\d+): Completed, verified True, fee \d+ planck, refunded \d+ planck, \d+ \+ \d+ tokens$/.exec(record)[1]);
  assert.equal(text, (await tasks.taskDetails(net.api, task)).outputs[0].text);
});

/** A raw HTTP request (node:http lets a test set Host and Origin as a browser would). */
function rawRequest(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolveRequest, reject) => {
    const request = httpRequest(url, { method, headers }, (response) => {
      let text = '';
      response.on('data', (piece) => { text += piece; });
      response.on('end', () => resolveRequest({ status: response.statusCode, text }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

test('without an API key the server answers only loopback names and its own pages, and only JSON bodies', async () => {
  const nextTask = async () => (await net.api.query.poaw.nextTaskId()).toNumber();
  const before = await nextTask();
  const chat = JSON.stringify({ model: MODEL, messages: MESSAGES, max_tokens: 4 });
  const post = (headers) => rawRequest(`${brokeRoot}/v1/chat/completions`, { method: 'POST', headers, body: chat });
  // A page elsewhere can post a body with no type or text/plain without asking first.
  let response = await post({});
  assert.equal(response.status, 400);
  assert.match(JSON.parse(response.text).error.message, /Content-Type: application\/json/);
  assert.equal((await post({ 'content-type': 'text/plain' })).status, 400);
  response = await post({ 'content-type': 'application/json', origin: 'http://evil.example' });
  assert.equal(response.status, 403);
  assert.equal(JSON.parse(response.text).error.code, 'forbidden');
  // A name that rebinds to 127.0.0.1 reaches the server with a foreign Host.
  response = await rawRequest(`${brokeRoot}/dllm/network`, { headers: { host: 'rebind.example:8080' } });
  assert.equal(response.status, 403);
  // The server's own page, by any loopback name, is answered.
  const port = new URL(brokeRoot).port;
  response = await rawRequest(`${brokeRoot}/v1/models`, { headers: { host: `localhost:${port}`, origin: `http://localhost:${port}` } });
  assert.equal(response.status, 200, response.text);
  assert.equal((await rawRequest(`${brokeRoot}/`)).status, 200);
  assert.equal(await nextTask(), before, 'no task was submitted');
});
