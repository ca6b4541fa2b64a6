//! A circuit breaker (closed / open / half-open), set up as the Go service
//! it replaces set up gobreaker: it opens when at least 3 requests in the current 10 s window
//! failed 60 % or more, rejects everything for 30 s, then lets 3 trial
//! requests through (half-open): all 3 succeeding close it, any failure
//! opens it again. Pure logic: time is passed in.

use std::time::Duration;

use tokio::time::Instant;

/// The breaker's settings.
#[derive(Clone, Copy, Debug)]
pub struct BreakerSettings {
    /// Trial requests allowed while half-open.
    pub max_half_open: u32,
    /// Length of the counting window while closed.
    pub interval: Duration,
    /// How long it stays open.
    pub open_for: Duration,
    /// Fewest requests in a window before it may open.
    pub min_requests: u32,
    /// Failure ratio that opens it.
    pub failure_ratio: f64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            max_half_open: 3,
            interval: Duration::from_secs(10),
            open_for: Duration::from_secs(30),
            min_requests: 3,
            failure_ratio: 0.6,
        }
    }
}

/// Where the breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; failures are counted.
    Closed,
    /// Requests are rejected until the timeout.
    Open,
    /// A few trial requests are let through.
    HalfOpen,
}

/// The breaker rejected the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit open")]
pub struct CircuitOpen;

/// The breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    state: BreakerState,
    window_start: Instant,
    requests: u32,
    failures: u32,
    open_until: Instant,
    trials: u32,
    trial_successes: u32,
}

impl CircuitBreaker {
    /// A closed breaker.
    #[must_use]
    pub fn new(settings: BreakerSettings, now: Instant) -> Self {
        Self {
            settings,
            state: BreakerState::Closed,
            window_start: now,
            requests: 0,
            failures: 0,
            open_until: now,
            trials: 0,
            trial_successes: 0,
        }
    }

    /// The state at `now`.
    pub fn state(&mut self, now: Instant) -> BreakerState {
        self.advance(now);
        self.state
    }

    /// Asks to make a request at `now`.
    ///
    /// # Errors
    /// [`CircuitOpen`] while open, or half-open with all trials in flight.
    pub fn allow(&mut self, now: Instant) -> Result<(), CircuitOpen> {
        self.advance(now);
        match self.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open => Err(CircuitOpen),
            BreakerState::HalfOpen if self.trials < self.settings.max_half_open => {
                self.trials += 1;
                Ok(())
            }
            BreakerState::HalfOpen => Err(CircuitOpen),
        }
    }

    /// Records the outcome of an allowed request.
    pub fn record(&mut self, now: Instant, success: bool) {
        self.advance(now);
        match self.state {
            BreakerState::Closed => {
                self.requests += 1;
                self.failures += u32::from(!success);
                if self.should_trip() {
                    self.open(now);
                }
            }
            BreakerState::HalfOpen if !success => self.open(now),
            BreakerState::HalfOpen => {
                self.trial_successes += 1;
                if self.trial_successes >= self.settings.max_half_open {
                    self.close(now);
                }
            }
            BreakerState::Open => {}
        }
    }

    fn should_trip(&self) -> bool {
        self.requests >= self.settings.min_requests
            && f64::from(self.failures) / f64::from(self.requests) >= self.settings.failure_ratio
    }

    fn advance(&mut self, now: Instant) {
        match self.state {
            BreakerState::Open if now >= self.open_until => {
                self.state = BreakerState::HalfOpen;
                self.trials = 0;
                self.trial_successes = 0;
            }
            BreakerState::Closed if now >= self.window_start + self.settings.interval => {
                self.close(now);
            }
            _ => {}
        }
    }

    fn open(&mut self, now: Instant) {
        tracing::warn!(circuit.state = "open", "circuit breaker opened");
        metrics::gauge!("hse_devices_circuit_open").set(1.0);
        self.state = BreakerState::Open;
        self.open_until = now + self.settings.open_for;
    }

    fn close(&mut self, now: Instant) {
        if self.state != BreakerState::Closed {
            tracing::info!(circuit.state = "closed", "circuit breaker closed");
            metrics::gauge!("hse_devices_circuit_open").set(0.0);
        }
        self.state = BreakerState::Closed;
        self.window_start = now;
        self.requests = 0;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> (CircuitBreaker, Instant) {
        let now = Instant::now();
        (CircuitBreaker::new(BreakerSettings::default(), now), now)
    }

    #[test]
    fn it_opens_at_sixty_percent_failures_of_at_least_three_requests() {
        let (mut b, t) = breaker();
        b.record(t, false);
        b.record(t, false);
        assert_eq!(b.state(t), BreakerState::Closed, "two requests are too few");
        b.record(t, true);
        assert_eq!(b.state(t), BreakerState::Open, "2 of 3 failed");
        assert_eq!(b.allow(t), Err(CircuitOpen));
    }

    #[test]
    fn failures_in_an_old_window_are_forgotten() {
        let (mut b, t) = breaker();
        b.record(t, false);
        b.record(t, false);
        let later = t + Duration::from_secs(11);
        b.record(later, false);
        assert_eq!(b.state(later), BreakerState::Closed);
    }

    #[test]
    fn after_the_timeout_three_trials_close_it_and_one_failure_reopens_it() {
        let (mut b, t) = breaker();
        for _ in 0..3 {
            b.record(t, false);
        }
        let half = t + Duration::from_secs(30);
        assert_eq!(b.state(half), BreakerState::HalfOpen);
        for _ in 0..3 {
            assert!(b.allow(half).is_ok());
        }
        assert_eq!(b.allow(half), Err(CircuitOpen), "only three trials");
        for _ in 0..3 {
            b.record(half, true);
        }
        assert_eq!(b.state(half), BreakerState::Closed);

        for _ in 0..3 {
            b.record(half, false);
        }
        let again = half + Duration::from_secs(30);
        assert!(b.allow(again).is_ok());
        b.record(again, false);
        assert_eq!(b.state(again), BreakerState::Open);
    }
}
