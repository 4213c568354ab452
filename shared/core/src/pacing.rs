//! Pacing of `SendTextMessage` (DESIGN §7): a token bucket in message parts per second,
//! so the origination identity's rate is respected up front and throttling stays rare.
//!
//! The configured rate is shared by the function's maximum concurrency: each instance
//! gets `rate / max_concurrency`. A throttling answer halves the instance's rate; each
//! successful send wins back a little of it (additive increase, multiplicative decrease).

use std::sync::Mutex;
use tokio::time::{Duration, Instant};

/// A shared token bucket. Cheap to lock: the critical section only does arithmetic.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
    /// The rate this instance may use when nothing throttles.
    full_rate: f64,
}

#[derive(Debug)]
struct State {
    /// Current rate in parts per second (`<= full_rate`).
    rate: f64,
    /// Tokens available at `updated`; may go negative (debt is waited out by the caller).
    tokens: f64,
    updated: Instant,
}

/// Share of the configured rate actually used. Requests paced at exactly the provider's rate
/// arrive with network jitter: two in a row can land closer than 1/rate apart and the second
/// is throttled. 2 % below the rate absorbs several milliseconds of jitter at 3 parts/s.
pub const SAFETY_MARGIN: f64 = 0.98;
/// Slowest the pacer goes after repeated throttling.
const MIN_RATE_FRACTION: f64 = 1.0 / 16.0;
/// Burst the bucket allows, in seconds of the rate (at least one part).
const BURST_SECONDS: f64 = 1.0;

impl Pacer {
    /// `parts_per_second` of the origination identity, divided among `max_concurrency`.
    pub fn new(parts_per_second: f64, max_concurrency: u32) -> Self {
        let full_rate =
            (parts_per_second * SAFETY_MARGIN / f64::from(max_concurrency.max(1))).max(0.01);
        Self {
            state: Mutex::new(State {
                rate: full_rate,
                tokens: burst(full_rate),
                updated: Instant::now(),
            }),
            full_rate,
        }
    }

    /// Reserves `parts` and waits until they may be sent.
    pub async fn acquire(&self, parts: u32) {
        self.acquire_by(parts, None).await;
    }

    /// Reserves `parts` and waits until they may be sent, if that is no later than
    /// `latest_start`; else reserves nothing, waits for nothing and answers `false` (the
    /// caller hands the message back: DESIGN §6 "Deadlines").
    pub async fn acquire_by(&self, parts: u32, latest_start: Option<Instant>) -> bool {
        let wait = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            s.refill(now);
            let tokens = s.tokens - f64::from(parts.max(1));
            let wait = if tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-tokens / s.rate)
            };
            if latest_start.is_some_and(|latest| now + wait > latest) {
                return false;
            }
            s.tokens = tokens;
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        true
    }

    /// The provider throttled us: halve the rate and drop the burst.
    pub fn throttled(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        s.refill(now);
        s.rate = (s.rate / 2.0).max(self.full_rate * MIN_RATE_FRACTION);
        s.tokens = s.tokens.min(0.0);
    }

    /// A send went through: recover a twentieth of the full rate.
    pub fn succeeded(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.rate < self.full_rate {
            let now = Instant::now();
            s.refill(now);
            s.rate = (s.rate + self.full_rate / 20.0).min(self.full_rate);
        }
    }

    /// Current rate in parts per second.
    pub fn rate(&self) -> f64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).rate
    }
}

fn burst(rate: f64) -> f64 {
    (rate * BURST_SECONDS).max(1.0)
}

impl State {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(burst(self.rate));
        self.updated = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Paused tokio time: the clock only moves when every task waits, so these run instantly
    // and measure the pacer's schedule exactly.
    #[tokio::test(start_paused = true)]
    async fn paces_to_the_configured_rate() {
        let pacer = Pacer::new(3.0, 1);
        let start = Instant::now();
        for _ in 0..31 {
            pacer.acquire(1).await;
        }
        // 2.94 burst tokens (3/s less the margin), then 28.06 more at 2.94/s.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((9.5..=9.6).contains(&elapsed), "{elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_is_shared_across_concurrency() {
        let pacer = Pacer::new(10.0, 2);
        let start = Instant::now();
        for _ in 0..25 {
            pacer.acquire(1).await;
        }
        // 4.9 parts/s for this instance (5 less the margin): 4.9 burst, 20.1 more take 4.1 s.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((4.05..=4.15).contains(&elapsed), "{elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn multi_part_messages_cost_their_parts() {
        let pacer = Pacer::new(2.0, 1);
        pacer.acquire(2).await; // burst
        let start = Instant::now();
        pacer.acquire(3).await;
        let elapsed = start.elapsed().as_secs_f64();
        assert!((1.4..=1.6).contains(&elapsed), "{elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_send_is_started_after_the_latest_start() {
        let pacer = Pacer::new(1.0, 1);
        let start = Instant::now();
        let latest = start + Duration::from_millis(2_500);
        let mut started = Vec::new();
        for _ in 0..5 {
            if pacer.acquire_by(1, Some(latest)).await {
                started.push(start.elapsed().as_secs_f64());
            }
        }
        // One burst part at once, then one every 1/0.98 s: 0, 1.02, 2.04; 3.06 is too late.
        assert_eq!(started.len(), 3, "{started:?}");
        assert!(started.iter().all(|&t| t <= 2.5), "{started:?}");
        // Refusing reserves nothing: a send without a deadline is not delayed by the refusals.
        let before = Instant::now();
        pacer.acquire(1).await;
        assert!(before.elapsed() <= Duration::from_millis(1_100));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_and_success_recovers_it() {
        let pacer = Pacer::new(8.0, 1);
        let full = 8.0 * SAFETY_MARGIN;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(pacer.rate(), full));
        pacer.throttled();
        assert!(close(pacer.rate(), full / 2.0));
        pacer.throttled();
        assert!(close(pacer.rate(), full / 4.0));
        for _ in 0..200 {
            pacer.throttled();
        }
        assert!(close(pacer.rate(), full / 16.0), "never below a sixteenth");
        for _ in 0..40 {
            pacer.succeeded();
        }
        assert!(close(pacer.rate(), full), "never above the configured rate");
    }
}
