//! Runtime tests: genesis presets, the DLLM token, fees and the community fund.

use crate::{
	configs::COMMUNITY_FUND_GENESIS, genesis_config_presets, token, AccountId, Balance, Balances,
	BalancesCall, Executive, Header, Runtime, RuntimeCall, RuntimeGenesisConfig, RuntimeOrigin,
	SignedPayload, System, UncheckedExtrinsic,
};
use codec::Encode;
use polkadot_sdk::{
	frame_support::{
		assert_noop, assert_ok, genesis_builder_helper::build_state, traits::fungible::Inspect,
	},
	frame_system, pallet_balances, pallet_sudo, pallet_transaction_payment, pallet_treasury,
	sp_genesis_builder::{DEV_RUNTIME_PRESET, LOCAL_TESTNET_RUNTIME_PRESET},
	sp_io::TestExternalities,
	sp_keyring::Sr25519Keyring,
	sp_runtime::{
		traits::Header as HeaderT, transaction_validity::TransactionValidityError, DispatchError,
		TokenError,
	},
	*,
};
use serde_json::Value;

/// Applies a JSON patch the way the node's chain-spec builder does: objects merge key by
/// key, anything else replaces.
fn merge(base: &mut Value, patch: Value) {
	match (base, patch) {
		(Value::Object(base), Value::Object(patch)) => {
			for (key, value) in patch {
				merge(base.entry(key).or_insert(Value::Null), value);
			}
		}
		(base, patch) => *base = patch,
	}
}

/// State built from a genesis preset through the runtime's own `GenesisBuilder` code path.
fn ext_from_preset(preset: &str) -> TestExternalities {
	let patch = genesis_config_presets::get_preset(&preset.into()).expect("preset exists");
	let mut config = serde_json::to_value(RuntimeGenesisConfig::default()).expect("serializes");
	merge(&mut config, serde_json::from_slice(&patch).expect("preset is JSON"));
	let json = serde_json::to_vec(&config).expect("serializes");
	let mut ext = TestExternalities::new(Default::default());
	ext.execute_with(|| build_state::<RuntimeGenesisConfig>(json).expect("genesis builds"));
	ext.execute_with(|| System::set_block_number(1));
	ext
}

fn account(who: Sr25519Keyring) -> AccountId {
	who.to_account_id()
}

fn free(who: &AccountId) -> Balance {
	pallet_balances::Pallet::<Runtime>::free_balance(who)
}

/// A transaction signed by `who`, as a wallet would build it.
fn signed(who: Sr25519Keyring, call: RuntimeCall) -> UncheckedExtrinsic {
	let nonce = System::account_nonce(account(who));
	let extension = crate::tx_extension(nonce);
	let payload = SignedPayload::new(call.clone(), extension.clone()).expect("valid payload");
	let signature = payload.using_encoded(|bytes| who.sign(bytes));
	UncheckedExtrinsic::new_signed(call, account(who).into(), signature.into(), extension)
}

/// Starts the next block so that transactions can be applied.
fn start_block() {
	let header = Header::new(
		System::block_number() + 1,
		Default::default(),
		Default::default(),
		System::parent_hash(),
		Default::default(),
	);
	Executive::initialize_block(&header);
}

#[test]
fn development_preset_builds() {
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		assert_eq!(pallet_aura::Authorities::<Runtime>::get().len(), 1);
		assert_eq!(pallet_grandpa::Pallet::<Runtime>::grandpa_authorities().len(), 1);
		assert_eq!(pallet_sudo::Key::<Runtime>::get(), Some(account(Sr25519Keyring::Alice)));
		for who in Sr25519Keyring::well_known() {
			assert_eq!(free(&who.to_account_id()), genesis_config_presets::DEV_ENDOWMENT);
		}
	});
}

#[test]
fn local_testnet_preset_builds_with_two_authorities() {
	ext_from_preset(LOCAL_TESTNET_RUNTIME_PRESET).execute_with(|| {
		assert_eq!(pallet_aura::Authorities::<Runtime>::get().len(), 2);
		assert_eq!(pallet_grandpa::Pallet::<Runtime>::grandpa_authorities().len(), 2);
	});
}

#[test]
fn unknown_preset_is_none() {
	assert!(genesis_config_presets::get_preset(&"mainnet".into()).is_none());
	assert_eq!(genesis_config_presets::preset_names().len(), 2);
}

#[test]
fn token_is_dllm_with_twelve_decimals() {
	assert_eq!(token::SYMBOL, "DLLM");
	assert_eq!(token::DECIMALS, 12);
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		assert_eq!(
			<Runtime as pallet_balances::Config>::ExistentialDeposit::get(),
			token::EXISTENTIAL_DEPOSIT
		);
		assert_eq!(<Runtime as frame_system::Config>::SS58Prefix::get(), 42);
	});
}

#[test]
fn signed_transfer_moves_dllm_and_pays_a_fee_to_the_community_fund() {
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		start_block();
		let alice = account(Sr25519Keyring::Alice);
		let bob = account(Sr25519Keyring::Bob);
		let fund = crate::community_account();
		let (alice_before, bob_before, fund_before) = (free(&alice), free(&bob), free(&fund));
		assert_eq!(fund_before, COMMUNITY_FUND_GENESIS);

		let amount = 12 * token::UNITS;
		let call = RuntimeCall::Balances(BalancesCall::transfer_keep_alive {
			dest: bob.clone().into(),
			value: amount,
		});
		let xt = signed(Sr25519Keyring::Alice, call);
		let len = xt.encoded_size() as u32;
		let expected_fee =
			pallet_transaction_payment::Pallet::<Runtime>::query_info(xt.clone(), len).partial_fee;
		assert!(expected_fee > 0);

		assert_ok!(Executive::apply_extrinsic(xt).expect("transaction is valid"));

		assert_eq!(free(&bob), bob_before + amount);
		let fee = alice_before - amount - free(&alice);
		assert!(fee > 0, "a transfer charges a fee");
		// The weight reclaim extension may refund a little of the predicted fee.
		assert!(fee <= expected_fee, "fee {fee} above the quoted {expected_fee}");
		assert_eq!(free(&fund), fund_before + fee, "fees go to the community fund");
		assert_eq!(System::account_nonce(&alice), 1);
	});
}

#[test]
fn transfer_over_balance_fails_and_changes_nothing() {
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		let alice = account(Sr25519Keyring::Alice);
		let bob = account(Sr25519Keyring::Bob);
		assert_noop!(
			Balances::transfer_allow_death(
				RuntimeOrigin::signed(alice.clone()),
				bob.into(),
				free(&alice) + 1
			),
			DispatchError::Token(TokenError::FundsUnavailable)
		);
	});
}

#[test]
fn transaction_that_cannot_pay_its_fee_is_rejected() {
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		start_block();
		// An account that was never endowed cannot pay any fee.
		let poor = Sr25519Keyring::One;
		let call = RuntimeCall::Balances(BalancesCall::transfer_allow_death {
			dest: account(Sr25519Keyring::Bob).into(),
			value: 1,
		});
		let xt = signed(poor, call);
		assert!(matches!(
			Executive::apply_extrinsic(xt),
			Err(TransactionValidityError::Invalid(_))
		));
		assert_eq!(free(&account(poor)), 0);
	});
}

#[test]
fn community_fund_exists_and_receives_funds() {
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		let fund = crate::community_account();
		assert_eq!(
			fund,
			polkadot_sdk::sp_runtime::traits::AccountIdConversion::into_account_truncating(
				&crate::configs::TreasuryPalletId::get()
			)
		);
		assert!(frame_system::Pallet::<Runtime>::account_exists(&fund));
		let before = free(&fund);
		assert_ok!(Balances::transfer_keep_alive(
			RuntimeOrigin::signed(account(Sr25519Keyring::Charlie)),
			fund.clone().into(),
			5 * token::UNITS
		));
		assert_eq!(free(&fund), before + 5 * token::UNITS);
		assert_eq!(
			pallet_balances::Pallet::<Runtime>::total_issuance(),
			<pallet_balances::Pallet<Runtime> as Inspect<AccountId>>::total_issuance()
		);
		// Spends need root: a signed account cannot spend from the fund.
		assert_noop!(
			pallet_treasury::Pallet::<Runtime>::spend(
				RuntimeOrigin::signed(account(Sr25519Keyring::Charlie)),
				Box::new(()),
				token::UNITS,
				Box::new(account(Sr25519Keyring::Charlie)),
				None
			),
			DispatchError::BadOrigin
		);
	});
}
