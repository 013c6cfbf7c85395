//! Stable partitioning: the same conversation id maps to the same partition on every node and
//! every run (Rust's `DefaultHasher` is seeded per process, so it cannot be used).

/// FNV-1a, 64 bit: stable, fast, good enough spread for short ids.
pub fn stable_hash(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Partition of a conversation among `partitions`.
pub fn partition_of(conversation_id: &str, partitions: u32) -> u32 {
    (stable_hash(conversation_id) % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_across_runs() {
        // Fixed expectations: a change here would move every conversation to another node.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            partition_of("demo:whatsapp.main:5511987654321", 64),
            partition_of("demo:whatsapp.main:5511987654321", 64)
        );
    }

    #[test]
    fn partitions_spread_keys() {
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[partition_of(&format!("demo:telegram.bot:{i}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (700..1300).contains(c)), "{counts:?}");
    }
}
