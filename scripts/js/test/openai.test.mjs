// The OpenAI-compatible HTTP API (`dllm-node --openai`) through the official `openai`
// SDK, on a dev network with miner nodes: the model list, a chat completion whole and
// streamed (the deltas concatenate to the verified answer, which is `dllm-infer
// generate` on the Mistral-template prompt the chain holds), usage, the `dllm` task
// record, and every refusal with its OpenAI-style error and status, paying nothing.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import { freePort } from '../lib/node.mjs';
import { total } from '../lib/settlement.mjs';
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
    // Bob's node serves an API too, paid by an account that holds nothing.
    extraArgs: { bob: ['--openai', '--openai-port', String(brokePort), '--openai-suri', '//Nobody'] },
  });
  base = `http://127.0.0.1:${port}/v1`;
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
