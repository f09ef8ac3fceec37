// The expert registry from polkadot-js against a fresh `dllm-node --dev`: the dev model and
// experts at genesis, then register → serve → bond → unbond → delegate → undelegate →
// withdraw, checking state and held balances after each step, and refused calls with
// their decoded error names.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

import * as experts from '../lib/experts.mjs';
import { runDllm, startDevNode } from '../lib/node.mjs';

const { UNIT } = experts;
const MIN_BOND = 1000n * UNIT;
let node;
let api;
let eve;
let ferdie;
let bob;

before(async () => {
  await cryptoWaitReady();
  node = await startDevNode();
  api = node.api;
  const keyring = new Keyring({ type: 'sr25519' });
  eve = keyring.addFromUri('//Eve');
  ferdie = keyring.addFromUri('//Ferdie');
  bob = keyring.addFromUri('//Bob');
});

after(async () => {
  if (node) assert.equal(await node.stop(), 0, 'the node exits cleanly on SIGTERM');
});

const profile = {
  domains: ['code', 'medicine'],
  peerId: '0x002408011220' + 'ab'.repeat(32),
  price: 10_000_000n,
  capacity: 2,
  commissionPercent: 5,
};

test('a fresh dev chain has the tiny model and three experts serving it', async () => {
  const model = (await api.query.models.models(0)).unwrap();
  assert.equal(model.status.type, 'Active');
  assert.equal(model.spec.name.toUtf8(), 'dllm-tiny-mistral');
  assert.equal(model.spec.numLayers.toNumber(), 4);
  assert.equal(model.spec.chunks.length, 2);
  const servers = async (chunk) =>
    (await api.query.experts.chunkServers(0, chunk)).map((a) => a.toString());
  const [alice, charlie, dave] = ['//Alice', '//Charlie', '//Dave'].map(
    (uri) => new Keyring({ type: 'sr25519' }).addFromUri(uri).address,
  );
  assert.deepEqual(await servers(0), [bob.address, dave]);
  assert.deepEqual(await servers(1), [charlie, dave]);
  assert.ok(!(await servers(0)).includes(alice));
  const held = await experts.heldByExperts(api, bob.address);
  assert.equal(held.ExpertBond, 10_000n * UNIT);
  assert.equal((await api.query.experts.unbondingPeriod()).toNumber(), 10);
});

test('register, serve, bond, unbond, delegate, undelegate and withdraw', async () => {
  let result = await experts.registerExpert(api, eve, MIN_BOND, profile);
  assert.ok(result.ok, result.error);
  let { expert } = await experts.expertState(api, eve.address);
  assert.equal(BigInt(expert.bond), MIN_BOND);
  assert.equal(expert.profile.maxConcurrentTasks, 2);

  result = await experts.serveChunk(api, eve, 0, 1);
  assert.ok(result.ok, result.error);
  ({ expert } = await experts.expertState(api, eve.address));
  assert.deepEqual(expert.serving, [{ model: 0, chunk: 1, format: 'F32' }]);
  assert.ok((await api.query.experts.chunkServers(0, 1)).map(String).includes(eve.address));

  result = await experts.bondExtra(api, eve, 500n * UNIT);
  assert.ok(result.ok, result.error);
  result = await experts.unbond(api, eve, 200n * UNIT);
  assert.ok(result.ok, result.error);
  let state = await experts.expertState(api, eve.address);
  assert.equal(BigInt(state.expert.bond), MIN_BOND + 300n * UNIT);
  assert.equal(state.unbonding.length, 1);
  assert.equal(BigInt(state.unbonding[0].amount), 200n * UNIT);

  result = await experts.delegate(api, ferdie, eve.address, 50n * UNIT);
  assert.ok(result.ok, result.error);
  assert.equal(
    (await api.query.experts.delegations(eve.address, ferdie.address)).unwrap().toBigInt(),
    50n * UNIT,
  );
  result = await experts.undelegate(api, ferdie, eve.address, 50n * UNIT);
  assert.ok(result.ok, result.error);
  assert.ok((await api.query.experts.delegations(eve.address, ferdie.address)).isNone);

  let held = await experts.heldByExperts(api, eve.address);
  assert.equal(held.ExpertBond, MIN_BOND + 300n * UNIT);
  assert.equal(held.Unbonding, 200n * UNIT);
  assert.equal((await experts.heldByExperts(api, ferdie.address)).Unbonding, 50n * UNIT);

  // Too early: nothing has finished unbonding.
  result = await experts.withdrawUnbonded(api, eve);
  assert.equal(result.error, 'experts.NothingToWithdraw');

  await experts.waitForBlock(api, state.unbonding[0].unlockAt);
  const freeBefore = (await api.query.system.account(eve.address)).data.free.toBigInt();
  result = await experts.withdrawUnbonded(api, eve);
  assert.ok(result.ok, result.error);
  held = await experts.heldByExperts(api, eve.address);
  assert.equal(held.Unbonding ?? 0n, 0n);
  const freeAfter = (await api.query.system.account(eve.address)).data.free.toBigInt();
  // 200 DLLM back, less the transaction fee.
  assert.ok(freeAfter - freeBefore > 199n * UNIT, `free grew by ${freeAfter - freeBefore}`);
  // Ferdie undelegated a block or more after Eve unbonded.
  const ferdieQueue = (await experts.expertState(api, ferdie.address)).unbonding;
  await experts.waitForBlock(api, ferdieQueue[0].unlockAt);
  result = await experts.withdrawUnbonded(api, ferdie);
  assert.ok(result.ok, result.error);
  assert.equal((await experts.heldByExperts(api, ferdie.address)).Unbonding ?? 0n, 0n);
});

test('refused calls name their error and change nothing', async () => {
  const before = await experts.expertState(api, ferdie.address);
  let result = await experts.registerExpert(api, ferdie, MIN_BOND - 1n, profile);
  assert.equal(result.error, 'experts.BondBelowMinimum');
  result = await experts.registerExpert(api, ferdie, MIN_BOND, {
    ...profile,
    commissionPercent: 90,
  });
  assert.equal(result.error, 'experts.CommissionTooHigh');
  assert.deepEqual(await experts.expertState(api, ferdie.address), before);

  const wrongHash = '0x' + '11'.repeat(32);
  result = await experts.serveChunk(api, bob, 0, 1, wrongHash);
  assert.equal(result.error, 'experts.WeightsHashMismatch');
  result = await experts.serveChunk(api, bob, 0, 7, wrongHash);
  assert.equal(result.error, 'models.UnknownChunk');
  result = await experts.registerExpert(api, bob, MIN_BOND, profile);
  assert.equal(result.error, 'experts.AlreadyRegistered');
  result = await experts.unbond(api, bob, 100_000n * UNIT);
  assert.equal(result.error, 'experts.InsufficientBond');
});

test('an operator key signs for its expert, and cannot touch its stake', async () => {
  const keyring = new Keyring({ type: 'sr25519' });
  const operator = keyring.addFromUri('//Bob//operator');
  // Another expert's key (Dave's, from genesis) cannot be an operator; a non-expert
  // cannot name one.
  let result = await experts.setOperator(api, bob, keyring.addFromUri('//Dave').address);
  assert.equal(result.error, 'experts.OperatorIsExpert');
  result = await experts.setOperator(api, ferdie, operator.address);
  assert.equal(result.error, 'experts.NotAnExpert');
  result = await experts.setOperator(api, bob, operator.address);
  assert.ok(result.ok, result.error);
  assert.equal((await api.query.experts.operators(bob.address)).toString(), operator.address);
  assert.equal((await api.query.experts.operatedExperts(operator.address)).toString(), bob.address);
  const found = await api.call.registryApi.operatedExpert(operator.address);
  assert.equal(found.toString(), bob.address);
  // The operator holds no stake: it cannot unbond Bob's (funded so that it can sign).
  const funded = await experts.submit(api, api.tx.balances.transferKeepAlive(operator.address, UNIT), bob);
  assert.ok(funded.ok, funded.error);
  const before = await experts.expertState(api, bob.address);
  result = await experts.unbond(api, operator, 1n);
  assert.equal(result.error, 'experts.NotAnExpert');
  assert.deepEqual(await experts.expertState(api, bob.address), before);
  result = await experts.setOperator(api, bob, null);
  assert.ok(result.ok, result.error);
  assert.ok((await api.query.experts.operators(bob.address)).isNone);
});

/** Runs the `dllm` command against the test node. */
const cli = (...args) => runDllm(node.wsUrl, ...args);

test('dllm registers an expert, serves, refuses with the error explained and checks usage', async () => {
  const peerId = '0x002408011220' + 'cd'.repeat(32);
  let run = await cli('--suri', '//Ferdie', 'register-expert', '--bond', '1000.5', '--peer-id', peerId,
    '--price', '0.000000000005', '--capacity', '1', '--commission', '2.5', '--domain', 'law');
  assert.equal(run.code, 0, run.stderr);
  const { expert } = await experts.expertState(api, ferdie.address);
  assert.equal(BigInt(expert.bond), 1000n * UNIT + UNIT / 2n);
  assert.equal(expert.profile.commission, 25_000_000);
  assert.equal(BigInt(expert.profile.pricePerTokenLayer), 5n);

  run = await cli('--suri', '//Ferdie', 'serve', '0', '0');
  assert.equal(run.code, 0, run.stderr);
  run = await cli('--suri', '//Ferdie', 'register-expert', '--bond', '1000', '--peer-id', peerId, '--price', '1');
  assert.equal(run.code, 1);
  // The error's name and, from metadata, what it means.
  assert.match(run.stderr, /refused: experts\.AlreadyRegistered: \S+/);
  run = await cli('--suri', '//Ferdie', 'stake', 'ten');
  assert.equal(run.code, 2);
  assert.match(run.stderr, /not an amount of DLLM: ten/);
  run = await cli('--suri', '//Ferdie', 'serve', '0', '0', 'f64');
  assert.equal(run.code, 2);
  assert.match(run.stderr, /unknown format f64/);
  // An empty or wrong address is bad usage, never the signer's own stake.
  run = await cli('--suri', '//Ferdie', 'unbond', '--from', '', '1');
  assert.equal(run.code, 2);
  assert.match(run.stderr, /--from: not an address: ""/);
  run = await cli('--suri', '//Ferdie', 'delegate', 'nobody', '10');
  assert.equal(run.code, 2);
  run = await cli('--suri', '', 'stake', '1');
  assert.equal(run.code, 2);
  assert.match(run.stderr, /--suri is empty/);
  run = await cli('--suri', '//Ferdie', 'stake', '2');
  assert.equal(run.code, 0, run.stderr);
  assert.equal(BigInt((await experts.expertState(api, ferdie.address)).expert.bond), 1002n * UNIT + UNIT / 2n);
  run = await cli('status', ferdie.address);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, new RegExp(`${ferdie.address}  chunks 0/0 `));
  assert.match(run.stdout, /expert: bond 1002\.5 DLLM/);
});

test('dllm stake: a validator bonds, sets its node\'s new session keys and validates; a nominator backs it; a payout of an unfinished era is refused', async () => {
  const dave = new Keyring({ type: 'sr25519' }).addFromUri('//Dave');
  let run = await cli('--suri', '//Eve', 'stake', 'validate', '--bond', '20000', '--commission', '3');
  assert.equal(run.code, 0, run.stderr);
  const prefs = await api.query.staking.validators(eve.address);
  assert.equal(prefs.commission.toNumber(), 30_000_000);
  const ledger = (await api.query.staking.ledger(eve.address)).unwrap();
  assert.equal(ledger.active.toBigInt(), 20_000n * UNIT);
  // The keys were made in the node's keystore, which holds them.
  const nextKeys = await api.query.session.nextKeys(eve.address);
  assert.ok(nextKeys.isSome, 'session keys set');
  const keys = nextKeys.unwrap().toHex();
  assert.ok((await api.rpc.author.hasSessionKeys(keys)).isTrue, 'the node holds the keys it made');

  run = await cli('--suri', '//Dave', 'stake', 'nominate', '--bond', '500', eve.address);
  assert.equal(run.code, 0, run.stderr);
  const nominations = (await api.query.staking.nominators(dave.address)).unwrap();
  assert.deepEqual(nominations.targets.map((t) => t.toString()), [eve.address]);

  // The dev chain runs no new era: era 0 has no payout yet.
  run = await cli('--suri', '//Dave', 'stake', 'payout', eve.address, '0');
  assert.equal(run.code, 1);
  assert.match(run.stderr, /refused: staking\.\w+/);
  // Bad usage changes nothing.
  run = await cli('--suri', '//Ferdie', 'stake', 'nominate');
  assert.equal(run.code, 2);
  assert.match(run.stderr, /needs at least one VALIDATOR/);
  run = await cli('--suri', '//Ferdie', 'stake', 'validate', '--keys', '0x00');
  assert.equal(run.code, 2);
  assert.match(run.stderr, /(not bonded yet|both --keys and --proof)/);
  assert.ok((await api.query.staking.ledger(ferdie.address)).isNone);
});

test('dllm multisig-address: the runtime\'s multisig account of the signatories, in any order', async () => {
  const keyring = new Keyring({ type: 'sr25519' });
  const [a, b, c] = ['//Alice', '//Bob', '//Charlie'].map((uri) => keyring.addFromUri(uri).address);
  // The address runtime/src/tests/multisig.rs derives with pallet-multisig.
  for (const order of [[a, b, c], [c, a, b]]) {
    const run = await cli('multisig-address', '2', ...order);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), '5DjYJStmdZ2rcqXbXGX7TW85JsrW6uG4y9MUcLq2BoPMpRA7');
  }
  // Past the signatories, one alone (threshold 1), one signatory, one twice, not an
  // account (a word, a short hex key).
  for (const bad of [['3', a, b], ['1', a, b], ['2', a], ['2', a, a], ['2', a, 'nobody'], ['2', a, '0x12']]) {
    const run = await cli('multisig-address', ...bad);
    assert.equal(run.code, 2, `${bad.join(' ')}: ${run.stdout}`);
    assert.match(run.stderr, /^error: /);
  }
});
