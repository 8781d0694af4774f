//! MurmurHash3 (x86, 32-bit, seed 1) over `bucketing id + entity id`, without building a string.

/// Seed every Optimizely SDK uses.
pub const HASH_SEED: u32 = 1;

/// Number of buckets: a bucket value is in `0..MAX_TRAFFIC_VALUE`.
pub const MAX_TRAFFIC_VALUE: u32 = 10_000;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline(always)]
fn mix_block(mut h: u32, k: u32) -> u32 {
    let k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    h ^= k;
    h = h.rotate_left(13);
    h.wrapping_mul(5).wrapping_add(0xe654_6b64)
}

/// MurmurHash3 x86_32 of one contiguous slice.
#[inline]
fn hash_slice(bytes: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let chunks = bytes.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        h = mix_block(h, u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    }
    let mut k: u32 = 0;
    for (i, byte) in rest.iter().enumerate() {
        k |= u32::from(*byte) << (8 * i);
    }
    if !rest.is_empty() {
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    fmix(h ^ bytes.len() as u32)
}

#[inline(always)]
fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Keys up to this length are copied into a stack buffer and hashed in one pass.
const STACK_KEY: usize = 96;

/// MurmurHash3 x86_32 of the concatenation `a ++ b`, without allocating.
#[inline]
pub fn murmur3_32_concat(a: &[u8], b: &[u8], seed: u32) -> u32 {
    let len = a.len() + b.len();
    if len <= STACK_KEY {
        let mut buf = [0u8; STACK_KEY];
        buf[..a.len()].copy_from_slice(a);
        buf[a.len()..len].copy_from_slice(b);
        return hash_slice(&buf[..len], seed);
    }
    murmur3_32_streaming(a, b, seed)
}

/// MurmurHash3 x86_32 of `a ++ b`, streaming over both slices (for long keys).
fn murmur3_32_streaming(a: &[u8], b: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let a_chunks = a.chunks_exact(4);
    let a_rest = a_chunks.remainder();
    for c in a_chunks {
        h = mix_block(h, u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    }
    // Join the tail of `a` with the start of `b` into one block.
    let mut carry = [0u8; 4];
    let mut n = a_rest.len();
    carry[..n].copy_from_slice(a_rest);
    let take = if n == 0 { 0 } else { (4 - n).min(b.len()) };
    carry[n..n + take].copy_from_slice(&b[..take]);
    n += take;
    let b = &b[take..];
    if n == 4 {
        h = mix_block(h, u32::from_le_bytes(carry));
        n = 0;
    }
    let mut tail: &[u8] = &carry[..n];
    let mut b_tail_buf = [0u8; 4];
    if n == 0 {
        let b_chunks = b.chunks_exact(4);
        let b_rest = b_chunks.remainder();
        for c in b_chunks {
            h = mix_block(h, u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
        b_tail_buf[..b_rest.len()].copy_from_slice(b_rest);
        tail = &b_tail_buf[..b_rest.len()];
    }
    if !tail.is_empty() {
        let mut k: u32 = 0;
        for (i, byte) in tail.iter().enumerate() {
            k |= u32::from(*byte) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    let len = (a.len() + b.len() + take) as u32;
    fmix(h ^ len)
}

/// MurmurHash3 x86_32 of one byte slice.
pub fn murmur3_32(bytes: &[u8], seed: u32) -> u32 {
    hash_slice(bytes, seed)
}

/// Bucket value in `0..10000` for the key `bucketing_id + entity_id` (`floor(hash / 2^32 * 10000)`).
#[inline]
pub fn bucket_value(bucketing_id: &str, entity_id: &str) -> u32 {
    let hash = murmur3_32_concat(bucketing_id.as_bytes(), entity_id.as_bytes(), HASH_SEED);
    ((u64::from(hash) * u64::from(MAX_TRAFFIC_VALUE)) >> 32) as u32
}

/// A bucketing id with MurmurHash3 already run over its whole 4-byte blocks: the key of every
/// bucketing is `bucketing id + entity id`, so a call that buckets several times hashes the
/// shared prefix once, and no key is copied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BucketingKey {
    /// Hash state after the whole blocks of the id.
    state: u32,
    /// The id's last `len % 4` bytes (little-endian), not hashed yet.
    partial: u32,
    len: usize,
}

impl BucketingKey {
    pub(crate) fn new(bucketing_id: &str) -> Self {
        let bytes = bucketing_id.as_bytes();
        let chunks = bytes.chunks_exact(4);
        let mut partial: u32 = 0;
        for (i, byte) in chunks.remainder().iter().enumerate() {
            partial |= u32::from(*byte) << (8 * i);
        }
        let mut state = HASH_SEED;
        for c in chunks {
            state = mix_block(state, u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
        BucketingKey {
            state,
            partial,
            len: bytes.len(),
        }
    }

    /// MurmurHash3 x86_32 (seed 1) of `bucketing id + entity_id`.
    #[inline]
    pub(crate) fn hash(&self, entity_id: &[u8]) -> u32 {
        let mut h = self.state;
        let len = (self.len + entity_id.len()) as u32;
        let mut b = entity_id;
        let filled = self.len % 4;
        if filled != 0 {
            // One block from the id's last bytes and the entity id's first ones.
            let take = (4 - filled).min(b.len());
            let mut k = self.partial;
            for (i, byte) in b[..take].iter().enumerate() {
                k |= u32::from(*byte) << (8 * (filled + i));
            }
            b = &b[take..];
            if filled + take < 4 {
                // The whole key ends inside this block: it is the tail.
                h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
                return fmix(h ^ len);
            }
            h = mix_block(h, k);
        }
        let chunks = b.chunks_exact(4);
        let rest = chunks.remainder();
        for c in chunks {
            h = mix_block(h, u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
        if !rest.is_empty() {
            let mut k: u32 = 0;
            for (i, byte) in rest.iter().enumerate() {
                k |= u32::from(*byte) << (8 * i);
            }
            h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        }
        fmix(h ^ len)
    }

    /// Bucket value in `0..10000` of `bucketing id + entity_id` (see [`bucket_value`]).
    #[inline]
    pub(crate) fn bucket_value(&self, entity_id: &str) -> u32 {
        let hash = self.hash(entity_id.as_bytes());
        ((u64::from(hash) * u64::from(MAX_TRAFFIC_VALUE)) >> 32) as u32
    }
}

/// One compiled traffic range: the bucket is in it when `bucket < end`.
#[derive(Debug, Clone)]
pub(crate) struct Range<T> {
    pub end: u32,
    pub target: T,
}

/// The first range whose end is above the bucket (the SDKs' `findBucket`).
#[inline]
pub(crate) fn find_bucket<T>(bucket: u32, ranges: &[Range<T>]) -> Option<&T> {
    ranges.iter().find(|r| bucket < r.end).map(|r| &r.target)
}

/// Convert a datafile `endOfRange` to the exclusive integer bound with the same effect.
pub(crate) fn end_of_range(value: f64) -> u32 {
    if value.is_nan() || value <= 0.0 {
        0
    } else if value >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        value.ceil() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(bytes: &[u8]) -> u32 {
        murmur3::murmur3_32(&mut std::io::Cursor::new(bytes), HASH_SEED).unwrap()
    }

    #[test]
    fn official_bucket_values() {
        let cases: &[(&str, u32)] = &[
            ("ppid11886780721", 5254),
            ("ppid21886780721", 4299),
            ("ppid21886780722", 2434),
            ("ppid31886780721", 5439),
            (
                "a very very very very very very very very very very very very very very very long ppd string1886780721",
                6128,
            ),
        ];
        for (key, bucket) in cases {
            assert_eq!(bucket_value(key, ""), *bucket, "{key}");
        }
        assert_eq!(bucket_value("ppid1", "1886780721"), 5254);
    }

    #[test]
    fn computed_hashes_and_buckets() {
        let cases: &[(&str, u32, u32)] = &[
            ("", 1364076727, 3175),
            ("a", 1485495528, 3458),
            ("abc", 2859854335, 6658),
            ("abcd", 2616542610, 6092),
            ("abcde", 4289507611, 9987),
            ("ppid11886780721", 2256854705, 5254),
            ("test_user111127", 1966234008, 4577),
            ("test_user19228", 3014756927, 7019),
            ("test_user32222", 4238251540, 9867),
            ("123456789111127", 2475804281, 5764),
            ("testBucketingIdControl111127", 594317311, 1383),
            ("null111127", 572824257, 1333),
            ("user_1111127", 1061040510, 2470),
            ("😀111127", 1186194581, 2761),
            ("ünïcödé111127", 1004169471, 2338),
            ("日本語111127", 2026129220, 4717),
        ];
        for (key, hash, bucket) in cases {
            assert_eq!(murmur3_32(key.as_bytes(), HASH_SEED), *hash, "{key}");
            assert_eq!(bucket_value(key, ""), *bucket, "{key}");
            assert_eq!(BucketingKey::new(key).bucket_value(""), *bucket, "{key}");
            // Every split point of the key gives the same hash.
            for i in 0..=key.len() {
                if key.is_char_boundary(i) {
                    assert_eq!(
                        bucket_value(&key[..i], &key[i..]),
                        *bucket,
                        "{key} split {i}"
                    );
                    assert_eq!(
                        BucketingKey::new(&key[..i]).bucket_value(&key[i..]),
                        *bucket,
                        "{key} split {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn find_bucket_at_range_ends() {
        let ranges = [
            Range {
                end: 100,
                target: 'a',
            },
            Range {
                end: 200,
                target: 'b',
            },
        ];
        // (bucket, range): end - 1 is the range's last bucket, end and end + 1 are the next's.
        for (bucket, want) in [
            (0, Some('a')),
            (99, Some('a')),
            (100, Some('b')),
            (101, Some('b')),
            (199, Some('b')),
            (200, None),
            (201, None),
        ] {
            assert_eq!(
                find_bucket(bucket, &ranges).copied(),
                want,
                "bucket {bucket}"
            );
        }
        assert_eq!(find_bucket::<char>(0, &[]), None);
        let empty_first = [
            Range {
                end: 0,
                target: 'z',
            },
            Range {
                end: 1,
                target: 'a',
            },
        ];
        assert_eq!(find_bucket(0, &empty_first).copied(), Some('a'));
        assert_eq!(find_bucket(1, &empty_first).copied(), None);
    }

    #[test]
    fn end_of_range_boundaries() {
        for (value, want) in [
            (0.0, 0),
            (-0.0, 0),
            (f64::NAN, 0),
            (f64::NEG_INFINITY, 0),
            (f64::MIN_POSITIVE, 1),
            (0.5, 1),
            (1.0, 1),
            (9_999.0, 9_999),
            (9_999.01, 10_000),
            (10_000.0, 10_000),
            (f64::from(u32::MAX) - 1.0, u32::MAX - 1),
            (f64::from(u32::MAX) - 0.5, u32::MAX),
            (f64::from(u32::MAX), u32::MAX),
            (f64::INFINITY, u32::MAX),
        ] {
            assert_eq!(end_of_range(value), want, "{value}");
        }
    }

    #[test]
    fn bucket_value_stays_below_max_traffic_value() {
        // 9987 is the highest bucket of the table above ("abcde"); every bucket is < 10000.
        for i in 0..2_000 {
            let b = bucket_value(&format!("user{i}"), "exp");
            assert!(b < MAX_TRAFFIC_VALUE, "{b}");
        }
    }

    #[test]
    fn stack_and_streaming_hashes_agree_at_the_stack_key_length() {
        for len in [STACK_KEY - 1, STACK_KEY, STACK_KEY + 1] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            for split in [0, 1, len / 2, len] {
                let (a, b) = key.split_at(split);
                assert_eq!(murmur3_32_concat(a, b, HASH_SEED), reference(&key), "{len}");
            }
        }
    }

    #[test]
    fn end_of_range_conversion() {
        assert_eq!(end_of_range(5000.0), 5000);
        assert_eq!(end_of_range(4999.5), 5000);
        assert_eq!(end_of_range(-1.0), 0);
        assert_eq!(end_of_range(1e12), u32::MAX);
    }

    proptest! {
        #[test]
        fn slice_hash_equals_crate_hash(a in proptest::collection::vec(any::<u8>(), 0..80),
                                        b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut joined = a.clone();
            joined.extend_from_slice(&b);
            prop_assert_eq!(murmur3_32_concat(&a, &b, HASH_SEED), reference(&joined));
            prop_assert_eq!(murmur3_32_streaming(&a, &b, HASH_SEED), reference(&joined));
            prop_assert_eq!(murmur3_32(&joined, HASH_SEED), reference(&joined));
        }

        #[test]
        fn bucketing_key_hash_equals_crate_hash(a in "\\PC{0,40}", b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut joined = a.as_bytes().to_vec();
            joined.extend_from_slice(&b);
            prop_assert_eq!(BucketingKey::new(&a).hash(&b), reference(&joined));
        }
    }
}
