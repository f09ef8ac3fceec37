//! A production network's sudo key as a multisig account (docs/operators.md, "A new
//! network"): no single person holds root.

use super::*;
use crate::{genesis_config_presets::Validator, Multisig, Sudo};
use polkadot_sdk::{
	frame_support::dispatch::GetDispatchInfo, pallet_multisig, sp_core::crypto::Ss58Codec,
	sp_keyring::Ed25519Keyring,
};
use token::UNITS;

/// A 2-of-3 multisig of Alice, Bob and Charlie as the sudo key of a production genesis:
/// one approval stores the call and holds a deposit, the second dispatches it as root;
/// none of them is root alone.
#[test]
fn a_multisig_sudo_key_dispatches_only_with_its_threshold_of_approvals() {
	let [alice, bob, charlie, dave, eve] = [
		Sr25519Keyring::Alice,
		Sr25519Keyring::Bob,
		Sr25519Keyring::Charlie,
		Sr25519Keyring::Dave,
		Sr25519Keyring::Eve,
	]
	.map(account);
	let mut signatories = vec![alice.clone(), bob.clone(), charlie.clone()];
	signatories.sort();
	let root = pallet_multisig::Pallet::<Runtime>::multi_account_id(&signatories, 2);
	// What `dllm multisig-address 2 <Alice> <Bob> <Charlie>` prints (polkadot-js's
	// derivation, scripts/js/test/experts.test.mjs).
	assert_eq!(root.to_ss58check(), "5DjYJStmdZ2rcqXbXGX7TW85JsrW6uG4y9MUcLq2BoPMpRA7");
	let others = |me: &AccountId| signatories.iter().filter(|s| *s != me).cloned().collect();
	let validator = Validator {
		stash: dave.clone(),
		aura: Sr25519Keyring::Dave.public().into(),
		grandpa: Ed25519Keyring::Dave.public().into(),
		bond: genesis_config_presets::MIN_VALIDATOR_BOND,
	};
	let endowed = vec![
		(dave.clone(), 20_000 * UNITS),
		(alice.clone(), 100 * UNITS),
		(bob.clone(), 100 * UNITS),
		(charlie.clone(), 100 * UNITS),
	];
	let genesis = genesis_config_presets::production_genesis(vec![validator], endowed, Some(root))
		.expect("a valid genesis");

	ext_from_patch(genesis).execute_with(|| {
		let set_balance = RuntimeCall::Balances(pallet_balances::Call::force_set_balance {
			who: eve.clone().into(),
			new_free: 5 * UNITS,
		});
		let call =
			RuntimeCall::Sudo(pallet_sudo::Call::sudo { call: Box::new(set_balance.clone()) });
		let max_weight = call.get_dispatch_info().call_weight;

		// No signatory is root on its own.
		assert_noop!(
			Sudo::sudo(RuntimeOrigin::signed(alice.clone()), Box::new(set_balance)),
			pallet_sudo::Error::<Runtime>::RequireSudo
		);

		// Alice approves first: the call waits, her deposit is held.
		assert_ok!(Multisig::as_multi(
			RuntimeOrigin::signed(alice.clone()),
			2,
			others(&alice),
			None,
			Box::new(call.clone()),
			max_weight,
		));
		assert_eq!(free(&eve), 0);
		let held = crate::configs::MultisigDepositBase::get()
			+ crate::configs::MultisigDepositFactor::get() * 2;
		assert_eq!(free(&alice), 100 * UNITS - held);
		let when =
			pallet_multisig::Multisigs::<Runtime>::iter_prefix_values(pallet_multisig::Pallet::<
				Runtime,
			>::multi_account_id(
				&signatories, 2
			))
			.next()
			.expect("the pending operation")
			.when;

		// Bob's approval reaches the threshold: the call runs as root, Alice's deposit
		// comes back.
		assert_ok!(Multisig::as_multi(
			RuntimeOrigin::signed(bob.clone()),
			2,
			others(&bob),
			Some(when),
			Box::new(call),
			max_weight,
		));
		assert_eq!(free(&eve), 5 * UNITS);
		assert_eq!(free(&alice), 100 * UNITS);
		assert!(System::events().iter().any(|record| matches!(
			record.event,
			crate::RuntimeEvent::Multisig(pallet_multisig::Event::MultisigExecuted {
				result: Ok(()),
				..
			})
		)));
		assert!(System::events().iter().any(|record| matches!(
			record.event,
			crate::RuntimeEvent::Sudo(pallet_sudo::Event::Sudid { sudo_result: Ok(()) })
		)));
	});
}
