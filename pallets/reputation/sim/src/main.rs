//! `reputation-sim`: does DLLM's reputation mechanism keep bad experts out?
//!
//! Runs the market of `world.rs` with 20%, 30% and 40% bad experts (half of them
//! low-quality, half a colluding group whose raters rate each other up) under three
//! selection policies, averages over seeds, prints the table of docs/protocol.md and
//! writes the per-round series as CSV and a PNG plot.
//!
//! Run: `scripts/reputation-sim.sh` (writes docs/reputation-sim.csv and
//! docs/reputation-sim.png; `--help` for the options).

mod world;

use clap::Parser;
use plotters::prelude::*;
use std::{
	error::Error,
	fs,
	io::Write,
	path::{Path, PathBuf},
};
use world::{mean_over_seeds, rounds_to_push_out, tail_mean, Policy, RoundStats, Scenario};

/// Simulates reputation-based, random and price-only selection of experts.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
	/// Rounds of 10 minutes (100 blocks) per run.
	#[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(20..=100_000))]
	rounds: u32,
	/// Runs (seeds) averaged per policy.
	#[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
	seeds: u64,
	/// Directory for reputation-sim.csv and reputation-sim.png.
	#[arg(long, default_value = "docs")]
	out: PathBuf,
}

/// Bad-expert shares simulated; the plot shows the middle one.
const BAD_SHARES: [f64; 3] = [0.2, 0.3, 0.4];
const PLOTTED_SHARE: f64 = 0.3;
/// The bad experts' share of slots that counts as "pushed out".
const PUSHED_OUT: f64 = 0.05;

fn main() {
	let args = Args::parse();
	if let Err(error) = simulate(&args) {
		eprintln!("reputation-sim: {error}");
		std::process::exit(1);
	}
}

fn simulate(args: &Args) -> Result<(), Box<dyn Error>> {
	fs::create_dir_all(&args.out)
		.map_err(|error| format!("cannot create {}: {error}", args.out.display()))?;
	let csv_path = args.out.join("reputation-sim.csv");
	let mut csv = fs::File::create(&csv_path)
		.map_err(|error| format!("cannot write {}: {error}", csv_path.display()))?;
	writeln!(csv, "bad_share,policy,round,delivered_quality,bad_slot_share,colluder_slot_share")?;
	// Steady state: the last third of the rounds.
	let from = (args.rounds as usize * 2) / 3;
	println!(
		"{} experts, {} tasks per round (a generator and a verifier, referees on disagreement), {} rounds, {} seeds; steady state = rounds {}..{}",
		Scenario::standard(0.3, args.rounds).experts,
		Scenario::standard(0.3, args.rounds).tasks_per_round,
		args.rounds,
		args.seeds,
		from,
		args.rounds
	);
	println!();
	println!("| bad experts | policy | delivered quality, first 10 rounds | delivered quality, steady state | bad experts' share of slots, steady state | colluders' share of slots, steady state | rounds until bad share ≤ 5% |");
	println!("| --- | --- | --- | --- | --- | --- | --- |");
	let mut plotted: Vec<(Policy, Vec<RoundStats>)> = Vec::new();
	for bad_share in BAD_SHARES {
		let scenario = Scenario::standard(bad_share, args.rounds);
		for policy in Policy::ALL {
			let stats = mean_over_seeds(&scenario, policy, args.seeds);
			for (round, stat) in stats.iter().enumerate() {
				writeln!(
					csv,
					"{bad_share},{},{round},{:.4},{:.4},{:.4}",
					policy.name(),
					stat.delivered_quality,
					stat.bad_share,
					stat.colluder_share
				)?;
			}
			println!(
				"| {:.0}% | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
				bad_share * 100.0,
				policy.name(),
				early_mean(&stats),
				tail_mean(&stats, from, |round| round.delivered_quality),
				tail_mean(&stats, from, |round| round.bad_share),
				tail_mean(&stats, from, |round| round.colluder_share),
				push_out(&stats),
			);
			if bad_share == PLOTTED_SHARE {
				plotted.push((policy, stats));
			}
		}
	}
	// The collusion case pushed further: the colluding raters hold 45% of the stake,
	// still a minority.
	let strong =
		Scenario { colluder_stake: 0.45, ..Scenario::standard(PLOTTED_SHARE, args.rounds) };
	let stats = mean_over_seeds(&strong, Policy::Reputation, args.seeds);
	println!(
		"| {:.0}%, colluding raters hold 45% of the stake | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
		PLOTTED_SHARE * 100.0,
		Policy::Reputation.name(),
		early_mean(&stats),
		tail_mean(&stats, from, |round| round.delivered_quality),
		tail_mean(&stats, from, |round| round.bad_share),
		tail_mean(&stats, from, |round| round.colluder_share),
		push_out(&stats),
	);
	let png_path = args.out.join("reputation-sim.png");
	plot(&png_path, &plotted, args.seeds)
		.map_err(|error| format!("cannot draw {}: {error}", png_path.display()))?;
	println!();
	println!("wrote {} and {}", csv_path.display(), png_path.display());
	Ok(())
}

/// A measurement of one round, as plotted.
type Measure = fn(&RoundStats) -> f64;

/// Delivered quality over the first 10 rounds.
fn early_mean(stats: &[RoundStats]) -> f64 {
	let early = &stats[..10.min(stats.len())];
	early.iter().map(|round| round.delivered_quality).sum::<f64>() / early.len().max(1) as f64
}

/// Rounds until the bad experts' share stays at or below `PUSHED_OUT`, for the table.
fn push_out(stats: &[RoundStats]) -> String {
	rounds_to_push_out(stats, PUSHED_OUT).map_or_else(|| "never".to_string(), |r| r.to_string())
}

fn plot(
	path: &Path,
	series: &[(Policy, Vec<RoundStats>)],
	seeds: u64,
) -> Result<(), Box<dyn Error>> {
	plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
		.map_err(|_| "the bundled DejaVu Sans font is not a valid font")?;
	let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
	root.fill(&WHITE)?;
	let rounds = series.first().map_or(0, |(_, stats)| stats.len());
	let (top, bottom) = root.split_vertically(450);
	let colors = [RGBColor(0, 114, 178), RGBColor(213, 94, 0), RGBColor(0, 158, 115)];
	let panels: [(&DrawingArea<_, _>, &str, &str, Measure); 2] = [
		(
			&top,
			"Delivered quality per round (30% bad experts, incl. a colluding group)",
			"share of tasks answered correctly",
			|round| round.delivered_quality,
		),
		(&bottom, "Share of work assigned to bad experts", "share of slots", |round| {
			round.bad_share
		}),
	];
	for (area, title, label, field) in panels {
		let mut chart = ChartBuilder::on(area)
			.caption(title, ("sans-serif", 22))
			.margin(12)
			.x_label_area_size(40)
			.y_label_area_size(60)
			.build_cartesian_2d(0u32..rounds as u32, 0f64..1f64)?;
		chart
			.configure_mesh()
			.x_desc(format!("round (10 minutes each; mean of {seeds} runs)"))
			.y_desc(label)
			.draw()?;
		for ((policy, stats), color) in series.iter().zip(colors) {
			chart
				.draw_series(LineSeries::new(
					stats.iter().enumerate().map(|(round, stat)| (round as u32, field(stat))),
					color.stroke_width(2),
				))?
				.label(policy.name())
				.legend(move |(x, y)| {
					PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
				});
		}
		chart
			.configure_series_labels()
			.position(SeriesLabelPosition::MiddleRight)
			.background_style(WHITE.mix(0.9))
			.border_style(BLACK)
			.draw()?;
	}
	root.present()?;
	Ok(())
}
