// Every call of the DLLM pallets can be built by @polkadot/api from the chain's metadata
// alone, as polkadot-js apps' Extrinsics page builds it: each argument a default value
// of its metadata type, the call encoded and decoded back, and priced by the chain.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import { startDevNode } from '../lib/node.mjs';

const PALLETS = ['models', 'experts', 'poaw', 'reputation'];
let node;

before(async () => {
  await cryptoWaitReady();
  node = await startDevNode();
});

after(async () => {
  if (node) assert.equal(await node.stop(), 0);
});

test('every call of the DLLM pallets is built from metadata alone, round-trips and gets a fee quote', async () => {
  const { api } = node;
  const alice = new Keyring({ type: 'sr25519' }).addFromUri('//Alice');
  let calls = 0;
  for (const section of PALLETS) {
    assert.ok(api.tx[section], `pallet ${section} is in the metadata`);
    const methods = Object.keys(api.tx[section]);
    assert.ok(methods.length > 0, `${section} has calls`);
    for (const method of methods) {
      const call = api.tx[section][method];
      // Default values of each argument's type, from the type registry alone.
      const args = call.meta.args.map((arg) => api.createType(arg.type.toString()));
      const extrinsic = call(...args);
      const decoded = api.createType('Call', extrinsic.method.toHex());
      assert.equal(decoded.section, section);
      assert.equal(decoded.method, method);
      assert.equal(decoded.toHex(), extrinsic.method.toHex());
      assert.ok(call.meta.docs.length > 0, `${section}.${method} is documented`);
      const info = await extrinsic.paymentInfo(alice);
      assert.ok(info.partialFee.toBigInt() >= 0n);
      calls += 1;
    }
  }
  assert.equal(calls, 29, 'models 4, experts 12, poaw 9, reputation 4 calls');
  for (const [section, method] of [['poaw', 'submitTask'], ['poaw', 'submitTaskWithGenerators'], ['poaw', 'claimSilence'], ['experts', 'setOperator']]) {
    assert.ok(api.tx[section][method], `${section}.${method}`);
  }
});
