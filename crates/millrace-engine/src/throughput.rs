//! Per-shard throughput limits as the service documents them, with token buckets.
//!
//! Writes: 1 MiB/s and 1,000 records/s per shard. Reads (GetRecords): 5 calls/s and 2 MiB/s
//! per shard; a large read puts the shard's read budget in debt, so a 10 MiB read blocks
//! further reads for about 5 s, as on the service. Buckets hold one second of budget, which
//! allows the short bursts the service tolerates; a record larger than the whole bucket is
//! admitted when the bucket is full and leaves it in debt.

use std::sync::Mutex;

const MIB: f64 = 1024.0 * 1024.0;

/// A refilling budget that may go into debt.
#[derive(Debug)]
struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    updated_ms: u64,
}

impl TokenBucket {
    fn new(per_second: f64, now_ms: u64) -> TokenBucket {
        TokenBucket {
            per_second,
            capacity: per_second,
            tokens: per_second,
            updated_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.updated_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    /// Whether `amount` fits now (a full bucket admits anything, going into debt).
    fn fits(&self, amount: f64) -> bool {
        amount <= self.tokens || self.tokens >= self.capacity
    }
}

/// The write and read budgets of one shard.
#[derive(Debug)]
pub struct ShardThroughput {
    state: Mutex<Budgets>,
}

#[derive(Debug)]
struct Budgets {
    write_bytes: TokenBucket,
    write_records: TokenBucket,
    read_calls: TokenBucket,
    read_bytes: TokenBucket,
    iterator_calls: TokenBucket,
}

impl ShardThroughput {
    pub fn new(now_ms: u64) -> ShardThroughput {
        ShardThroughput {
            state: Mutex::new(Budgets {
                write_bytes: TokenBucket::new(MIB, now_ms),
                write_records: TokenBucket::new(1000.0, now_ms),
                read_calls: TokenBucket::new(5.0, now_ms),
                read_bytes: TokenBucket::new(2.0 * MIB, now_ms),
                iterator_calls: TokenBucket::new(5.0, now_ms),
            }),
        }
    }

    /// Admits the records of one request in order; returns, per record, whether it was
    /// admitted. Admitted records are charged.
    pub fn admit_writes(&self, sizes: impl Iterator<Item = usize>, now_ms: u64) -> Vec<bool> {
        let mut budgets = self.state.lock().expect("throughput lock");
        budgets.write_bytes.refill(now_ms);
        budgets.write_records.refill(now_ms);
        sizes
            .map(|size| {
                let size = size as f64;
                let admitted = budgets.write_bytes.fits(size) && budgets.write_records.fits(1.0);
                if admitted {
                    budgets.write_bytes.tokens -= size;
                    budgets.write_records.tokens -= 1.0;
                }
                admitted
            })
            .collect()
    }

    /// Takes one GetRecords call from the read budget; false when the shard is over its limit.
    pub fn admit_read(&self, now_ms: u64) -> bool {
        let mut budgets = self.state.lock().expect("throughput lock");
        budgets.read_calls.refill(now_ms);
        budgets.read_bytes.refill(now_ms);
        if budgets.read_calls.tokens < 1.0 || budgets.read_bytes.tokens <= 0.0 {
            return false;
        }
        budgets.read_calls.tokens -= 1.0;
        true
    }

    /// Takes one GetShardIterator call (5 per second per shard); false when over the limit.
    pub fn admit_iterator(&self, now_ms: u64) -> bool {
        let mut budgets = self.state.lock().expect("throughput lock");
        budgets.iterator_calls.refill(now_ms);
        if budgets.iterator_calls.tokens < 1.0 {
            return false;
        }
        budgets.iterator_calls.tokens -= 1.0;
        true
    }

    /// Charges the bytes a GetRecords call returned (possibly going into debt).
    pub fn charge_read(&self, bytes: usize) {
        let mut budgets = self.state.lock().expect("throughput lock");
        budgets.read_bytes.tokens -= bytes as f64;
    }
}

/// The push budget of one enhanced fan-out subscription: 2 MiB/s per consumer per shard.
#[derive(Debug)]
pub struct PushBudget(TokenBucket);

impl PushBudget {
    pub fn new(now_ms: u64) -> PushBudget {
        PushBudget(TokenBucket::new(2.0 * MIB, now_ms))
    }

    /// How long to wait before the next read may be sent (zero when there is budget).
    pub fn wait_ms(&mut self, now_ms: u64) -> u64 {
        self.0.refill(now_ms);
        if self.0.tokens > 0.0 {
            return 0;
        }
        ((-self.0.tokens + 1.0) / self.0.per_second * 1000.0).ceil() as u64
    }

    /// Charges the bytes just sent (possibly going into debt).
    pub fn charge(&mut self, bytes: usize) {
        self.0.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_limited_to_a_mebibyte_and_a_thousand_records_per_second() {
        let limits = ShardThroughput::new(0);
        let admitted = limits.admit_writes(std::iter::repeat_n(1024, 1100), 0);
        assert_eq!(admitted.iter().filter(|a| **a).count(), 1000);
        assert!(limits
            .admit_writes(std::iter::once(10), 0)
            .iter()
            .all(|a| !a));
        // Half a second later, half the budget is back.
        let later = limits.admit_writes(std::iter::repeat_n(1024, 600), 500);
        assert_eq!(later.iter().filter(|a| **a).count(), 500);
    }

    #[test]
    fn a_large_read_blocks_reads_for_a_while() {
        let limits = ShardThroughput::new(0);
        assert!(limits.admit_read(0));
        limits.charge_read(10 * 1024 * 1024);
        assert!(!limits.admit_read(1000));
        assert!(!limits.admit_read(4000));
        assert!(limits.admit_read(5100));
    }

    #[test]
    fn pushes_are_paced_at_two_mebibytes_per_second() {
        let mut budget = PushBudget::new(0);
        assert_eq!(budget.wait_ms(0), 0);
        budget.charge(4 * 1024 * 1024);
        let wait = budget.wait_ms(0);
        assert!((1000..=1001).contains(&wait), "{wait}");
        assert_eq!(budget.wait_ms(1001), 0);
    }

    #[test]
    fn five_iterators_per_second() {
        let limits = ShardThroughput::new(0);
        assert_eq!((0..8).filter(|_| limits.admit_iterator(0)).count(), 5);
    }

    #[test]
    fn five_reads_per_second() {
        let limits = ShardThroughput::new(0);
        let admitted = (0..7).filter(|_| limits.admit_read(0)).count();
        assert_eq!(admitted, 5);
        assert!(limits.admit_read(200));
    }

    #[test]
    fn an_oversized_record_passes_on_a_full_bucket() {
        let limits = ShardThroughput::new(0);
        assert_eq!(
            limits.admit_writes(std::iter::once(5 * 1024 * 1024), 0),
            [true]
        );
        assert_eq!(limits.admit_writes(std::iter::once(1), 1000), [false]);
    }
}
