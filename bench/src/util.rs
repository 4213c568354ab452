//! What every part of the harness shares: paths, statistics, result rows, CPU clocks and a
//! clock for the handlers that moves with real time from a fixed, quiet-hours-safe start.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sms_shared::Clock;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Wednesday 2026-11-25 18:00 UTC: inside the quiet-hours window in every US zone.
pub const NOON: &str = "2026-11-25T18:00:00Z";

/// How long a run is: `--quick` for development and CI-like checks, full for the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Quick,
    Full,
}

impl Mode {
    pub fn from_args(args: &[String]) -> Mode {
        if args.iter().any(|a| a == "--quick") {
            Mode::Quick
        } else {
            Mode::Full
        }
    }

    pub fn pick<T>(self, quick: T, full: T) -> T {
        match self {
            Mode::Quick => quick,
            Mode::Full => full,
        }
    }
}

/// Runs a part's measurement on a runtime of two worker threads (the parts that keep a stub's
/// CPU apart from the measured code build runtimes of their own).
pub fn block_on<F: std::future::Future>(measure: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(measure)
}

/// The workspace root (the parent of `bench/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_relative() {
                repo_root().join(p)
            } else {
                p
            }
        })
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Where the function binaries are: `target/<host triple>/release`, where `bench/run.sh`
/// builds them linked as deployed (position-dependent, `.cargo/config.toml`), or
/// `target/release` when that has none. `BENCH_PROFILE` names another profile's directory
/// (e.g. `debug` while working on the harness itself).
pub fn binaries_dir() -> PathBuf {
    let profile = std::env::var("BENCH_PROFILE").unwrap_or_else(|_| "release".into());
    let as_deployed = target_dir().join(HOST_TRIPLE).join(&profile);
    if as_deployed.join("sender").exists() {
        as_deployed
    } else {
        target_dir().join(profile)
    }
}

/// The target `bench/run.sh` builds the functions for (the machine's own).
pub const HOST_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Where the parts of a run leave their rows and logs: `target/bench/`.
pub fn out_dir() -> PathBuf {
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    dir
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted samples; NaN when empty.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

pub fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which part of the benchmark: `cold start`, `sender`, `pacing 3/s`, `API`, `size`.
    pub area: String,
    /// What was measured: a function, a route, a run.
    pub subject: String,
    pub figure: String,
    pub measured: String,
    pub target: String,
    /// `Some(true)` when a target exists and is met.
    pub ok: Option<bool>,
}

impl Row {
    pub fn new(area: &str, subject: &str, figure: &str, measured: String) -> Row {
        Row {
            area: area.into(),
            subject: subject.into(),
            figure: figure.into(),
            measured,
            target: String::new(),
            ok: None,
        }
    }

    pub fn target(mut self, target: &str, ok: bool) -> Row {
        self.target = target.into();
        self.ok = Some(ok);
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "area": self.area, "subject": self.subject, "figure": self.figure,
            "measured": self.measured, "target": self.target, "ok": self.ok,
        })
    }

    fn from_json(v: &Value) -> Row {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        Row {
            area: s("area"),
            subject: s("subject"),
            figure: s("figure"),
            measured: s("measured"),
            target: s("target"),
            ok: v["ok"].as_bool(),
        }
    }
}

/// The rows of one part and the conditions it ran under, kept in `target/bench/<part>.json`
/// until `bench report` renders them.
pub struct Part {
    pub name: &'static str,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    load_start: String,
    started: Instant,
}

impl Part {
    pub fn start(name: &'static str) -> Part {
        eprintln!("==> bench {name} (load average {})", loadavg());
        Part {
            name,
            rows: Vec::new(),
            notes: Vec::new(),
            load_start: loadavg(),
            started: Instant::now(),
        }
    }

    pub fn push(&mut self, row: Row) {
        eprintln!(
            "    {:<12} {:<24} {:<40} {:>14} {}",
            row.area,
            row.subject,
            row.figure,
            row.measured,
            match row.ok {
                Some(true) => "ok",
                Some(false) => "MISSED",
                None => "",
            }
        );
        self.rows.push(row);
    }

    pub fn note(&mut self, note: String) {
        eprintln!("    note: {note}");
        self.notes.push(note);
    }

    /// Writes `target/bench/<name>.json`.
    pub fn finish(self) {
        let value = json!({
            "name": self.name,
            "rows": self.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
            "notes": self.notes,
            "load_start": self.load_start,
            "load_end": loadavg(),
            "seconds": self.started.elapsed().as_secs_f64(),
        });
        let path = out_dir().join(format!("{}.json", self.name));
        std::fs::write(&path, serde_json::to_string_pretty(&value).expect("json"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// A part as read back by the report.
pub struct SavedPart {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub load_start: String,
    pub load_end: String,
    pub seconds: f64,
}

pub fn read_part(name: &str) -> Option<SavedPart> {
    let text = std::fs::read_to_string(out_dir().join(format!("{name}.json"))).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(SavedPart {
        rows: v["rows"]
            .as_array()
            .map(|a| a.iter().map(Row::from_json).collect())
            .unwrap_or_default(),
        notes: v["notes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        load_start: v["load_start"].as_str().unwrap_or_default().to_owned(),
        load_end: v["load_end"].as_str().unwrap_or_default().to_owned(),
        seconds: v["seconds"].as_f64().unwrap_or_default(),
    })
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU time (user + system) of the calling thread, nanosecond resolution.
pub fn thread_cpu() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// (user, system) CPU time of the calling thread (`getrusage(RUSAGE_THREAD)`, µs resolution).
pub fn thread_user_system() -> (Duration, Duration) {
    // SAFETY: `usage` is a valid out-pointer.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let d = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (d(usage.ru_utime), d(usage.ru_stime))
}

/// CPU time (user + system) of the whole process, every thread; child processes excluded.
pub fn process_cpu() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Real time moving forward from a fixed start ([`NOON`]), so handlers see time pass (leases,
/// code expiry) while quiet hours never depend on when the benchmark runs.
#[derive(Debug)]
pub struct ShiftedClock {
    base: Timestamp,
    started: Instant,
}

impl ShiftedClock {
    pub fn at_noon() -> ShiftedClock {
        ShiftedClock {
            base: NOON.parse().expect("valid timestamp"),
            started: Instant::now(),
        }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.started.elapsed()).unwrap_or_default();
        self.base.checked_add(elapsed).unwrap_or(self.base)
    }
}

/// Formats a float with `digits` decimals.
pub fn f(value: f64, digits: usize) -> String {
    format!("{value:.digits$}")
}
