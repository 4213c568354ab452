//! `bench report`: one markdown table of every part's rows, with the previous results beside
//! them, printed and written to `bench/RESULTS.md` (full runs) or
//! `target/bench/RESULTS.quick.md` (`--quick`, so quick runs never replace the committed
//! results).

use crate::util::{self, Mode, read_part};
use std::collections::HashMap;
use std::fmt::Write;

const PARTS: &[&str] = &[
    "size",
    "probe",
    "coldstart",
    "sender",
    "pacing",
    "peer",
    "segments",
    "api",
];

pub fn run(mode: Mode) {
    let results = util::repo_root().join("bench").join("RESULTS.md");
    let previous = std::fs::read_to_string(&results)
        .map(|text| previous_values(&text))
        .unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "# `make bench` results\n");
    let _ = writeln!(
        out,
        "{} run of {} UTC on {}.\n",
        match mode {
            Mode::Full => "Full",
            Mode::Quick => "Quick",
        },
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M"),
        machine()
    );
    let _ = writeln!(
        out,
        "| area | subject | figure | measured | previous | target | |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for name in PARTS {
        let Some(part) = read_part(name) else {
            notes.push(format!("{name}: not run"));
            continue;
        };
        for row in &part.rows {
            let key = (row.area.clone(), row.subject.clone(), row.figure.clone());
            let before = previous.get(&key).map(String::as_str).unwrap_or("");
            let verdict = match row.ok {
                Some(true) => "✅",
                Some(false) => "❌",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(&row.area),
                cell(&row.subject),
                cell(&row.figure),
                cell(&row.measured),
                cell(before),
                cell(&row.target),
                verdict
            );
        }
        notes.push(format!(
            "{name}: {:.0} s, load average (1/5/15 min) {} at the start, {} at the end",
            part.seconds, part.load_start, part.load_end
        ));
        notes.extend(part.notes.iter().map(|n| format!("{name}: {n}")));
    }
    let _ = writeln!(out);
    for note in notes {
        let _ = writeln!(out, "* {note}");
    }
    print!("{out}");
    let path = match mode {
        Mode::Full => {
            if results.exists() {
                let _ = std::fs::copy(&results, util::out_dir().join("RESULTS.previous.md"));
            }
            results
        }
        Mode::Quick => util::out_dir().join("RESULTS.quick.md"),
    };
    std::fs::write(&path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("==> wrote {}", path.display());
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `(area, subject, figure) → measured` of a results file's table.
fn previous_values(text: &str) -> HashMap<(String, String, String), String> {
    let mut values = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<String> = line
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().replace("\\|", "|"))
            .collect();
        if cells.len() >= 4 && cells[0] != "area" {
            values.insert(
                (cells[0].clone(), cells[1].clone(), cells[2].clone()),
                cells[3].clone(),
            );
        }
    }
    values
}

/// Cores, CPU model and memory of this machine.
fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU");
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map(|kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{cores} cores ({model}), {memory}")
}
