//! `bench size`: the release binary of each function (host target, as measured here) and its
//! deployment zip (`bootstrap`, deflate, like `cargo lambda build --output-format zip`), plus
//! the arm64 zip of the last `make build` when there is one.

use crate::util::{self, Part, Row, f};
use std::process::Command;

pub const FUNCTIONS: &[&str] = &[
    "opt-in-api",
    "verify-api",
    "sender",
    "delivery-status",
    "inbound-sms",
];

/// The zip budget of `scripts/build.sh` (`ZIP_LIMIT_MIB`): 4 MiB per function, spent only where
/// a measured figure improves (docs/bench.md).
const LIMIT_MIB: f64 = 4.0;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub fn run() {
    let mut part = Part::start("size");
    let release = util::binaries_dir();
    let work = util::out_dir().join("zip");
    for name in FUNCTIONS.iter().chain(&["hello"]) {
        let binary = release.join(name);
        let Ok(meta) = std::fs::metadata(&binary) else {
            part.note(format!(
                "{name}: skipped, {} is not built",
                binary.display()
            ));
            continue;
        };
        let dir = work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the zip directory");
        let bootstrap = dir.join("bootstrap");
        std::fs::copy(&binary, &bootstrap).expect("copy the binary");
        let zip = dir.join("bootstrap.zip");
        let zipped = Command::new("zip")
            .current_dir(&dir)
            .args(["-q", "-X", "bootstrap.zip", "bootstrap"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let mut row = Row::new(
            "size",
            name,
            "release binary / zip (x86_64)",
            format!("{} MiB", f(mib(meta.len()), 2)),
        );
        if let Ok(z) = std::fs::metadata(&zip).map(|m| m.len())
            && zipped
        {
            row.measured = format!("{} / {} MiB", f(mib(meta.len()), 2), f(mib(z), 2));
            if *name != "hello" {
                row = row.target("zip < 4 MiB", mib(z) < LIMIT_MIB);
            }
        } else {
            part.note(format!("{name}: `zip` failed or is missing; no zip size"));
        }
        part.push(row);
        let arm = util::target_dir()
            .join("lambda")
            .join(name)
            .join("bootstrap.zip");
        if let Ok(z) = std::fs::metadata(&arm).map(|m| m.len()) {
            part.push(
                Row::new(
                    "size",
                    name,
                    "zip (arm64, last `make build`)",
                    format!("{} MiB", f(mib(z), 2)),
                )
                .target("< 4 MiB", mib(z) < LIMIT_MIB),
            );
        }
    }
    part.finish();
}
