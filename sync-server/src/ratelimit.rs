//! Rate limiting by token buckets in memory (a restart forgets them, which is harmless): one
//! bucket per device for authenticated requests, and per client address for enrollments and
//! failed authentications (see `api::address_limits`). Locked only briefly and never across an
//! `.await`.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Below this many buckets a limiter never prunes.
const MIN_PRUNE_AT: usize = 1024;

/// Token buckets keyed by `K` (device ids by default).
#[derive(Debug)]
pub struct RateLimiter<K = String> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<Buckets<K>>,
}

#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, Bucket>,
    /// Size at which full buckets are dropped: keys chosen by clients (addresses) must not grow
    /// the map without bound.
    prune_at: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// A limiter allowing `per_second` requests sustained and `burst` at once; a rate of 0 (or
    /// less) allows everything.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                prune_at: MIN_PRUNE_AT,
            }),
        }
    }

    /// Whether the limiter limits anything.
    pub fn is_enabled(&self) -> bool {
        self.per_second > 0.0 && self.per_second.is_finite()
    }

    /// Takes one token for `key` at `now`; on refusal, returns how long until one is available.
    pub fn check<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.with_bucket(key, now, |bucket, per_second| {
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                Ok(())
            } else {
                Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
            }
        })
    }

    /// Like [`check`](Self::check) but takes nothing: whether `key` has a token at `now`.
    pub fn peek<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.with_bucket(key, now, |bucket, per_second| {
            if bucket.tokens >= 1.0 {
                Ok(())
            } else {
                Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
            }
        })
    }

    /// Refills `key`'s bucket up to `now` and hands it to `f`.
    fn with_bucket<Q>(
        &self,
        key: &Q,
        now: Instant,
        f: impl FnOnce(&mut Bucket, f64) -> Result<(), Duration>,
    ) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.is_enabled() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.map.len() >= buckets.prune_at {
            self.prune(&mut buckets, now);
        }
        let (per_second, burst) = (self.per_second, self.burst);
        if !buckets.map.contains_key(key) {
            buckets.map.insert(
                key.to_owned(),
                Bucket {
                    tokens: burst,
                    updated: now,
                },
            );
        }
        let Some(bucket) = buckets.map.get_mut(key) else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.updated = now;
        f(bucket, per_second)
    }

    /// Drops the buckets that have refilled completely (a full bucket is what a new key gets
    /// anyway); amortised by doubling the size at which the next pruning happens.
    fn prune(&self, buckets: &mut Buckets<K>, now: Instant) {
        let (per_second, burst) = (self.per_second, self.burst);
        buckets.map.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * per_second < burst
        });
        buckets.prune_at = (buckets.map.len() * 2).max(MIN_PRUNE_AT);
    }

    /// How many keys have a bucket (for tests of the pruning).
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    /// Whether no key has a bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_device_gets_its_burst_then_waits_for_refill_and_others_are_unaffected() {
        let limiter = RateLimiter::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check("a", t0).unwrap();
        }
        let wait = limiter.check("a", t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        limiter.check("b", t0).unwrap();
        limiter.check("a", t0 + Duration::from_millis(500)).unwrap();
        assert!(limiter.check("a", t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn peeking_takes_nothing() {
        let limiter = RateLimiter::new(1.0, 1);
        let t0 = Instant::now();
        limiter.peek("a", t0).unwrap();
        limiter.peek("a", t0).unwrap();
        limiter.check("a", t0).unwrap();
        assert!(limiter.peek("a", t0).is_err());
    }

    #[test]
    fn buckets_of_keys_gone_quiet_are_dropped_so_many_addresses_cannot_grow_memory() {
        let limiter = RateLimiter::<u32>::new(10.0, 5);
        let t0 = Instant::now();
        for key in 0..5_000u32 {
            limiter.check(&key, t0).unwrap();
        }
        assert_eq!(limiter.len(), 5_000, "no bucket has refilled yet");
        // A second later the early buckets are full again, as good as new: they go when the
        // map has grown enough to be pruned; the new ones stay.
        let t1 = t0 + Duration::from_secs(1);
        for key in 5_000..20_000u32 {
            limiter.check(&key, t1).unwrap();
        }
        assert_eq!(limiter.len(), 15_000);
        for _ in 0..4 {
            limiter.check(&5_000, t1).unwrap();
        }
        assert!(
            limiter.check(&5_000, t1).is_err(),
            "a kept bucket keeps its count"
        );
    }

    #[test]
    fn a_zero_rate_disables_limiting() {
        let limiter = RateLimiter::new(0.0, 1);
        for _ in 0..1000 {
            limiter.check("a", Instant::now()).unwrap();
        }
    }
}
