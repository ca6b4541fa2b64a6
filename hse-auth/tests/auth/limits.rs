//! GCRA on a fake clock for both adapters, across two Redis clients, and
//! the Redis failure store.

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as ChronoDuration;
use hse_auth::ManualClock;
use hse_auth::rate_limit::{Decision, MemoryRateLimiter, RateLimiter};
use hse_auth::redis::{RedisFailureStore, RedisRateLimiter};
use hse_auth::throttle::FailureStore;

use crate::support::{quota, random_prefix, redis, start};

const BURST: u32 = 5;
const INTERVAL_MS: u64 = 200;

/// Burst B allowed, B+1 refused with a wait of one interval, one more
/// allowed after one interval, and the next refused again.
async fn burst_then_one_per_interval(limiter: &dyn RateLimiter, clock: &ManualClock) {
    let q = quota(BURST, INTERVAL_MS);
    for i in 0..BURST {
        assert_eq!(
            limiter.check("k", q).await.unwrap(),
            Decision::Allowed,
            "#{i}"
        );
    }
    let interval = Duration::from_millis(INTERVAL_MS);
    assert_eq!(
        limiter.check("k", q).await.unwrap(),
        Decision::Limited {
            retry_after: interval
        }
    );
    clock.advance(ChronoDuration::milliseconds(50));
    assert_eq!(
        limiter.check("k", q).await.unwrap(),
        Decision::Limited {
            retry_after: Duration::from_millis(150)
        }
    );
    clock.advance(ChronoDuration::milliseconds(150));
    assert_eq!(limiter.check("k", q).await.unwrap(), Decision::Allowed);
    assert!(matches!(
        limiter.check("k", q).await.unwrap(),
        Decision::Limited { .. }
    ));
    // Another key has its own budget.
    assert_eq!(limiter.check("other", q).await.unwrap(), Decision::Allowed);
}

#[tokio::test]
async fn the_memory_limiter_follows_gcra_on_a_fake_clock() {
    let clock = Arc::new(ManualClock::new(start()));
    let limiter = MemoryRateLimiter::new(clock.clone());
    burst_then_one_per_interval(&limiter, &clock).await;
}

#[tokio::test]
async fn the_redis_limiter_follows_gcra_on_a_fake_clock() {
    let clock = Arc::new(ManualClock::new(start()));
    let limiter = RedisRateLimiter::new(redis().await, random_prefix()).with_clock(clock.clone());
    burst_then_one_per_interval(&limiter, &clock).await;
}

#[tokio::test]
async fn two_clients_sharing_redis_share_one_limit() {
    let clock = Arc::new(ManualClock::new(start()));
    let prefix = random_prefix();
    let a = RedisRateLimiter::new(redis().await, prefix.clone()).with_clock(clock.clone());
    let b = RedisRateLimiter::new(redis().await, prefix).with_clock(clock.clone());
    let q = quota(BURST, INTERVAL_MS);
    let mut allowed = 0;
    for i in 0..BURST * 2 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        if limiter.check("shared", q).await.unwrap() == Decision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, BURST);
    for limiter in [&a, &b] {
        assert!(matches!(
            limiter.check("shared", q).await.unwrap(),
            Decision::Limited { retry_after } if retry_after == Duration::from_millis(INTERVAL_MS)
        ));
    }
    clock.advance(ChronoDuration::milliseconds(
        i64::try_from(INTERVAL_MS).unwrap(),
    ));
    assert_eq!(b.check("shared", q).await.unwrap(), Decision::Allowed);
    assert!(matches!(
        a.check("shared", q).await.unwrap(),
        Decision::Limited { .. }
    ));
}

#[tokio::test]
async fn concurrent_clients_on_redis_never_exceed_the_burst() {
    let prefix = random_prefix();
    let q = quota(BURST, 60_000);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let limiter = RedisRateLimiter::new(redis().await, prefix.clone());
        tasks.push(tokio::spawn(async move {
            let mut allowed = 0;
            for _ in 0..5 {
                if limiter.check("race", q).await.unwrap() == Decision::Allowed {
                    allowed += 1;
                }
            }
            allowed
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, BURST);
}

#[tokio::test]
async fn the_redis_failure_store_counts_expires_and_clears() {
    let store = RedisFailureStore::new(redis().await, random_prefix());
    let now = start();
    assert_eq!(store.failures("acct", now).await.unwrap(), None);
    store
        .record_failure("acct", now, ChronoDuration::hours(1))
        .await
        .unwrap();
    let later = now + ChronoDuration::seconds(3);
    let f = store
        .record_failure("acct", later, ChronoDuration::hours(1))
        .await
        .unwrap();
    assert_eq!(f.count, 2);
    let read = store.failures("acct", later).await.unwrap().unwrap();
    assert_eq!((read.count, read.last), (2, later));
    store.clear("acct").await.unwrap();
    assert_eq!(store.failures("acct", later).await.unwrap(), None);
    store
        .record_failure("brief", now, ChronoDuration::milliseconds(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(store.failures("brief", now).await.unwrap(), None);
}
