//! `GET /dllm/network`: what the chat page's network view shows, read at the best block
//! through the runtime APIs: the models with the experts serving each chunk, the experts
//! (stake, price, reputation) and the newest tasks.

use crate::miner::chain::{ChainError, ChainView, ExpertRecord, TaskView};
use dllm_primitives::token;
use dllm_runtime::{AccountId, BlockNumber};
use pallet_poaw::TaskStatus;
use polkadot_sdk::{
	sc_network::PeerId,
	sp_core::{
		crypto::{Ss58AddressFormat, Ss58Codec},
		H256,
	},
};
use serde_json::{json, Value};

/// How many of the newest tasks the view lists.
const RECENT_TASKS: u32 = 20;

/// The network at block `best` (number `number`), as JSON (balances in plancks, as
/// decimal strings).
pub fn network_view(
	chain: &ChainView,
	best: H256,
	number: BlockNumber,
) -> Result<Value, ChainError> {
	// An older runtime lacks the chunk servers, scores and recent tasks: the view then
	// lists the models alone, and says so.
	let complete = chain.has_network_apis(best)?;
	let mut models = Vec::new();
	let mut servers: Vec<AccountId> = Vec::new();
	for id in chain.models(best)? {
		let Some(record) = chain.model(best, id)? else { continue };
		let mut chunks = Vec::new();
		for (index, spec) in record.spec.chunks.iter().enumerate() {
			let index = u32::try_from(index).unwrap_or(u32::MAX);
			let experts = if complete { chain.chunk_servers(best, id, index)? } else { Vec::new() };
			for expert in &experts {
				if !servers.contains(expert) {
					servers.push(expert.clone());
				}
			}
			chunks.push(json!({
				"index": index,
				"layers": [spec.start_layer, spec.end_layer],
				"experts": experts.iter().map(address).collect::<Vec<_>>(),
			}));
		}
		models.push(json!({
			"id": id,
			"name": String::from_utf8_lossy(&record.spec.name),
			"version": record.spec.version,
			"status": format!("{:?}", record.status),
			"layers": record.spec.num_layers,
			"max_context": record.spec.max_context,
			"chunks": chunks,
		}));
	}
	let mut experts = Vec::new();
	for who in &servers {
		let Some(record) = chain.expert(best, who)? else { continue };
		let score = chain.reputation_score(best, who)?;
		experts.push(expert_json(who, &record, score.deconstruct(), chain.operator(best, who)?));
	}
	let mut tasks = Vec::new();
	let recent = if complete { chain.recent_tasks(best, RECENT_TASKS)? } else { Vec::new() };
	for id in recent {
		if let Some(details) = chain.task(best, id)? {
			tasks.push(task_json(&details));
		}
	}
	Ok(json!({
		"block": number,
		"complete": complete,
		"token": { "symbol": token::SYMBOL, "decimals": token::DECIMALS },
		"models": models,
		"experts": experts,
		"tasks": tasks,
	}))
}

/// An account as the chain's wallets show it (SS58 with the chain's prefix).
fn address(who: &AccountId) -> String {
	who.to_ss58check_with_version(Ss58AddressFormat::custom(token::SS58_PREFIX))
}

fn expert_json(
	who: &AccountId,
	record: &ExpertRecord,
	reputation_parts: u32,
	operator: Option<AccountId>,
) -> Value {
	let peer = PeerId::from_bytes(&record.profile.peer_id).map(|p| p.to_base58()).ok();
	json!({
		"account": address(who),
		"peer_id": peer,
		"operator": operator.as_ref().map(address),
		"bond": record.bond.to_string(),
		"delegated": record.delegated.to_string(),
		"delegators": record.delegators,
		"price_per_token_layer": record.profile.price_per_token_layer.to_string(),
		"commission": f64::from(record.profile.commission.deconstruct()) / 1e9,
		"max_concurrent_tasks": record.profile.max_concurrent_tasks,
		"active_tasks": record.active_tasks,
		"reputation": f64::from(reputation_parts) / 1e9,
		"serving": record
			.serving
			.iter()
			.map(|served| json!({
				"model": served.model,
				"chunk": served.chunk,
				"format": format!("{:?}", served.format),
			}))
			.collect::<Vec<_>>(),
	})
}

fn task_json(details: &TaskView) -> Value {
	let task = &details.task;
	let settlement = task.settlement.as_ref();
	json!({
		"id": details.id,
		"model": task.model,
		"requester": address(&task.requester),
		"status": status_name(task.status),
		"submitted_at": task.submitted_at,
		"max_tokens": task.max_tokens,
		"escrow": task.escrow.to_string(),
		"pipelines": task.pipelines,
		"reassignments": task.reassignments,
		"fee": settlement.map(|s| s.fee.to_string()),
		"refunded": settlement.map(|s| s.refunded.to_string()),
		"tokens": settlement.map(|s| s.tokens),
	})
}

fn status_name(status: TaskStatus) -> &'static str {
	match status {
		TaskStatus::Queued => "Queued",
		TaskStatus::Assigned => "Assigned",
		TaskStatus::Verifying => "Verifying",
		TaskStatus::Committed => "Committed",
		TaskStatus::Refereeing => "Refereeing",
		TaskStatus::Judging => "Judging",
		TaskStatus::Completed => "Completed",
		TaskStatus::Disputed => "Disputed",
		TaskStatus::Expired => "Expired",
	}
}
