// polkadot-js against a fresh `dllm-node --dev`: chain properties, a transfer with its
// fee, and failures with decoded error names.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Keyring } from '@polkadot/keyring';
import { stringToU8a, u8aConcat } from '@polkadot/util';
import { cryptoWaitReady, encodeAddress } from '@polkadot/util-crypto';

import { describeDispatchError, sendAndFinalize, startDevNode } from '../lib/node.mjs';
import { authorShare, blockAuthor } from '../lib/settlement.mjs';

const UNIT = 10n ** 12n;
let node;
let alice;
let bob;

before(async () => {
  await cryptoWaitReady();
  node = await startDevNode();
  const keyring = new Keyring({ type: 'sr25519' });
  alice = keyring.addFromUri('//Alice');
  bob = keyring.addFromUri('//Bob');
});

after(async () => {
  if (node) {
    const code = await node.stop();
    assert.equal(code, 0, 'the node exits cleanly on SIGTERM');
  }
});

/** The treasury's account: "modl" + its PalletId ("dllm/cfd"), zero-padded to 32 bytes. */
function communityFundAddress() {
  const raw = u8aConcat(stringToU8a('modl'), stringToU8a('dllm/cfd'), new Uint8Array(20));
  return encodeAddress(raw, 42);
}

async function free(address) {
  const { data } = await node.api.query.system.account(address);
  return data.free.toBigInt();
}

test('chain properties name the DLLM token with 12 decimals', async () => {
  const properties = await node.api.rpc.system.properties();
  assert.equal(properties.tokenSymbol.unwrap()[0].toString(), 'DLLM');
  assert.equal(properties.tokenDecimals.unwrap()[0].toNumber(), 12);
  assert.equal(properties.ss58Format.unwrap().toNumber(), 42);
  assert.equal(node.api.registry.chainTokens[0], 'DLLM');
});

test('runtime metadata is V15 or newer and V16 is offered', async () => {
  assert.ok(node.api.runtimeMetadata.version >= 15, `got V${node.api.runtimeMetadata.version}`);
  const versions = (await node.api.call.metadata.metadataVersions()).map((v) => v.toNumber());
  assert.ok(versions.includes(16), `runtime offers metadata ${versions}`);
});

test('Alice pays Bob; balances move by the amount and the fee', async () => {
  const amount = 3n * UNIT;
  const fund = communityFundAddress();
  const [aliceBefore, bobBefore, fundBefore] = [
    await free(alice.address),
    await free(bob.address),
    await free(fund),
  ];

  const tx = node.api.tx.balances.transferKeepAlive(bob.address, amount);
  const { blockHash, events, dispatchError } = await sendAndFinalize(tx, alice);
  assert.equal(dispatchError, undefined);

  const paid = events.find(({ event }) => node.api.events.transactionPayment.TransactionFeePaid.is(event));
  assert.ok(paid, 'a TransactionFeePaid event is emitted');
  const fee = paid.event.data.actualFee.toBigInt();
  assert.ok(fee > 0n, 'the transfer costs a fee');

  const at = await node.api.at(blockHash);
  const aliceAfter = (await at.query.system.account(alice.address)).data.free.toBigInt();
  const bobAfter = (await at.query.system.account(bob.address)).data.free.toBigInt();
  assert.equal(bobAfter - bobBefore, amount);
  // A fifth of the fee goes to the block's author: Alice, the dev chain's validator.
  assert.equal(await blockAuthor(node.api, blockHash), alice.address);
  const toAuthor = authorShare(fee);
  assert.equal(aliceBefore - aliceAfter, amount + fee - toAuthor);
  const fundAfter = (await at.query.system.account(fund)).data.free.toBigInt();
  assert.equal(fundAfter - fundBefore, fee - toAuthor, 'the rest of the fee goes to the community fund');
});

test('a transfer over the balance fails with Token.FundsUnavailable and moves nothing', async () => {
  const balance = await free(alice.address);
  const bobBefore = await free(bob.address);
  const tx = node.api.tx.balances.transferAllowDeath(bob.address, balance * 2n);
  const { dispatchError } = await sendAndFinalize(tx, alice);
  assert.equal(describeDispatchError(node.api, dispatchError), 'Token.FundsUnavailable');
  assert.equal(await free(bob.address), bobBefore);
});

test('a sudo call from a non-sudo account fails with sudo.RequireSudo', async () => {
  const call = node.api.tx.system.remark('0x00');
  const { dispatchError } = await sendAndFinalize(node.api.tx.sudo.sudo(call), bob);
  assert.equal(describeDispatchError(node.api, dispatchError), 'sudo.RequireSudo');
});

test('an account with no DLLM cannot pay the fee: the pool refuses the transaction', async () => {
  const keyring = new Keyring({ type: 'sr25519' });
  const pauper = keyring.addFromUri('//DllmPauper');
  assert.equal(await free(pauper.address), 0n);
  const tx = node.api.tx.balances.transferAllowDeath(bob.address, UNIT);
  await assert.rejects(tx.signAndSend(pauper), /Inability to pay some fees/);
});
