//! `make bench`: cold start, memory, sender throughput and pacing, API latency and size of the
//! functions, as one markdown table in `bench/RESULTS.md`. See `docs/bench.md`.
//!
//! ```text
//! bench size | probe | coldstart | sender | pacing | peer | segments | api | report   [--quick]
//! ```
//!
//! Each part leaves its rows in `target/bench/<part>.json`; `report` renders them all.
//! `bench/run.sh` builds the binaries, starts moto and runs the parts in order.

mod api;
mod coldstart;
mod counting_proxy;
mod fixtures;
mod pacing;
mod peer;
mod probe;
mod report;
mod segments;
mod sender;
mod size;
mod util;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = util::Mode::from_args(&args);
    match args.first().map(String::as_str) {
        Some("size") => size::run(),
        Some("coldstart") => coldstart::run(mode),
        Some("sender") => sender::run(mode),
        Some("pacing") => pacing::run(mode),
        Some("peer") => peer::run(mode),
        Some("segments") => segments::run(),
        Some("api") => api::run(mode),
        Some("probe") => probe::run(),
        Some("report") => report::run(mode),
        _ => {
            eprintln!(
                "usage: bench size|probe|coldstart|sender|pacing|peer|segments|api|report [--quick]"
            );
            std::process::exit(2);
        }
    }
}
