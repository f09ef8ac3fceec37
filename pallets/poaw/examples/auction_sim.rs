//! Auction simulation: does misreporting a price ever pay? (It cannot where somebody
//! loses; where nobody can, winners are paid the highest winning ask, so asking more
//! can pay: the rounds are counted apart.)
//!
//! Every round draws a chunk auction: `MINERS` miners with true costs per token per
//! layer (uniform 5–50), qualities (uniform 0.3–1.0) and measured throughputs, a
//! requester price cap and redundancy 2. One focal miner plays a strategy (ask its cost
//! times a factor); the others ask their true costs. Its utility is what it is paid
//! minus its cost when it wins, else zero. The auction is the pallet's own
//! `pallet_poaw::auction::run`.
//!
//! Run: `cargo run --release -p pallet-poaw --example auction_sim` (the table in
//! docs/protocol.md comes from it).

use pallet_poaw::auction::{run, weight, Bid};

const ROUNDS: u32 = 20_000;
const MINERS: usize = 6;
const REDUNDANCY: usize = 2;
const FACTORS: [f64; 9] = [0.5, 0.7, 0.9, 0.97, 1.0, 1.03, 1.1, 1.5, 2.0];

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
	fn next(&mut self) -> u64 {
		self.0 ^= self.0 >> 12;
		self.0 ^= self.0 << 25;
		self.0 ^= self.0 >> 27;
		self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
	}
	fn uniform(&mut self, low: f64, high: f64) -> f64 {
		low + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (high - low)
	}
}

struct Round {
	costs: Vec<u128>,
	bids: Vec<Bid<usize>>,
	cap: u128,
}

fn draw(rng: &mut Rng) -> Round {
	// Prices in micro-units so that factors of a few percent matter.
	let costs: Vec<u128> = (0..MINERS).map(|_| (rng.uniform(5.0, 50.0) * 1000.0) as u128).collect();
	let speeds: Vec<u64> = (0..MINERS).map(|_| rng.uniform(0.0, 1000.0) as u64).collect();
	let best = speeds.iter().copied().max().unwrap_or(0);
	let bids = (0..MINERS)
		.map(|i| Bid {
			expert: i,
			price: costs[i],
			weight: weight((rng.uniform(0.3, 1.0) * 1e9) as u32, 50_000_000, speeds[i], best),
			tie_key: rng.next().to_le_bytes().repeat(4).try_into().unwrap_or([0; 32]),
		})
		.collect();
	Round { costs, bids, cap: (rng.uniform(30.0, 80.0) * 1000.0) as u128 }
}

/// What the focal miner is paid per token per layer when it asks `ask` and the others
/// ask their costs; `None` when it loses.
fn payment(round: &Round, focal: usize, ask: u128) -> Option<u128> {
	let mut bids = round.bids.clone();
	bids[focal].price = ask;
	run(&bids, REDUNDANCY, round.cap)
		.iter()
		.find(|award| award.expert == focal)
		.map(|award| award.threshold)
}

/// Whether the other miners' eligible bids alone fill the winners, so that somebody
/// loses whenever `focal` wins (the threshold then does not depend on its ask).
fn has_loser(round: &Round, focal: usize) -> bool {
	round
		.bids
		.iter()
		.enumerate()
		.filter(|(i, bid)| *i != focal && bid.weight > 0 && bid.price <= round.cap)
		.count()
		>= REDUNDANCY
}

/// Its utility: payment minus true cost when it wins, else zero.
fn utility(round: &Round, focal: usize, ask: u128) -> i128 {
	payment(round, focal, ask).map_or(0, |paid| paid as i128 - round.costs[focal] as i128)
}

fn main() {
	let mut rng = Rng(0x5EED_1234_ABCD_0001);
	let rounds: Vec<Round> = (0..ROUNDS).map(|_| draw(&mut rng)).collect();
	println!(
		"rounds: {ROUNDS}, miners per chunk: {MINERS}, redundancy: {REDUNDANCY}; focal miner 0"
	);
	println!();
	let thin = rounds.iter().filter(|round| !has_loser(round, 0)).count();
	println!(
		"rounds where the other miners alone do not fill the winners (nobody can lose): {thin}"
	);
	println!();
	println!("| ask / true cost | mean utility per token-layer (costs 5–50) | win rate | rounds better than truthful (somebody loses / nobody can) | rounds worse |");
	println!("|---:|---:|---:|---:|---:|");
	let mut violations = 0;
	for factor in FACTORS {
		let (mut total, mut wins, mut better, mut better_thin, mut worse) =
			(0i128, 0u32, 0u32, 0u32, 0u32);
		for round in &rounds {
			let truthful = utility(round, 0, round.costs[0]);
			let ask = (round.costs[0] as f64 * factor) as u128;
			let got = utility(round, 0, ask);
			total += got;
			wins += payment(round, 0, ask).is_some() as u32;
			if got > truthful {
				if has_loser(round, 0) {
					better += 1;
				} else {
					better_thin += 1;
				}
			}
			worse += (got < truthful) as u32;
		}
		violations += better;
		println!(
			"| {factor:.2} | {:.3} | {:.1}% | {better} / {better_thin} | {worse} |",
			total as f64 / ROUNDS as f64 / 1000.0,
			100.0 * wins as f64 / ROUNDS as f64,
		);
	}
	println!();
	if violations == 0 {
		println!("no misreport beat the truthful ask in any round where somebody can lose");
	} else {
		println!("misreporting paid in {violations} round(s) with a loser: the mechanism is not truthful");
		std::process::exit(1);
	}
}
