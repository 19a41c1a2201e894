//! Request sizes that follow the link: each push batch and pull page is sized from the
//! throughput measured on the requests before it, so that one request takes a few seconds on a
//! 64 kbit/s mobile link (where a cut every few seconds would otherwise kill every large request
//! before it completes) and stays large on a fast one (where fewer, larger pages are faster).
//!
//! The estimate is bytes / elapsed of whole requests, round trip and server time included, so
//! the next size `b` settles where `round trip + b / rate` is [`TARGET`]: small requests on a
//! long round trip do not look like a slow link for long, because each larger request measures
//! the link better.

use std::time::Duration;

/// How long one request should take.
const TARGET: Duration = Duration::from_secs(3);
/// Size of the first request of a sync, before anything is measured: about 2 s at 64 kbit/s.
pub(crate) const START_BYTES: usize = 16 * 1024;
/// Smallest size asked for (one blob is always sent or received, whatever its size).
const MIN_BYTES: usize = 4 * 1024;
/// Largest size asked for: bounds the memory one page takes, and the work lost to a cut.
pub(crate) const MAX_BYTES: usize = 1024 * 1024;

/// The byte budget of the next request, learnt from the requests so far.
#[derive(Debug, Clone)]
pub(crate) struct Pace {
    budget: usize,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            budget: START_BYTES,
        }
    }
}

impl Pace {
    /// Bytes the next request should move at most.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    /// Learns from a request that moved `bytes` (both ways) in `elapsed`.
    pub(crate) fn record(&mut self, bytes: u64, elapsed: Duration) {
        // Tiny exchanges (an empty pull answer) say more about the round trip than the link.
        if bytes < 1024 {
            return;
        }
        let secs = elapsed.as_secs_f64().max(0.001);
        let next = bytes as f64 / secs * TARGET.as_secs_f64();
        // Grow at most 8x per request (one quick answer from a cache is not a fast link); shrink
        // at once.
        let next = next.min(self.budget as f64 * 8.0);
        self.budget = (next as usize).clamp(MIN_BYTES, MAX_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates requests over a link of `rate` bytes/s and `rtt`, returning the budgets.
    fn settle(rate: f64, rtt: f64) -> Vec<usize> {
        let mut pace = Pace::default();
        (0..12)
            .map(|_| {
                let b = pace.budget();
                pace.record(b as u64, Duration::from_secs_f64(rtt + b as f64 / rate));
                pace.budget()
            })
            .collect()
    }

    #[test]
    fn on_a_64_kbit_link_with_600_ms_round_trips_each_request_takes_about_three_seconds() {
        let rate = 8_000.0;
        let b = *settle(rate, 0.6).last().unwrap_or(&0);
        let secs = 0.6 + b as f64 / rate;
        assert!((2.5..=3.5).contains(&secs), "{b} bytes take {secs:.1} s");
    }

    #[test]
    fn on_loopback_requests_grow_to_the_largest_size_within_a_few_requests() {
        let budgets = settle(200e6, 0.002);
        assert_eq!(budgets[3], MAX_BYTES, "{budgets:?}");
    }

    #[test]
    fn a_link_that_slows_down_gets_smaller_requests_at_once() {
        let mut pace = Pace::default();
        for _ in 0..5 {
            pace.record(pace.budget() as u64, Duration::from_millis(10));
        }
        assert_eq!(pace.budget(), MAX_BYTES);
        pace.record(MAX_BYTES as u64, Duration::from_secs(60));
        assert!(pace.budget() < 64 * 1024, "{}", pace.budget());
    }
}
