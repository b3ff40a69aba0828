//! Sequence numbers in the service's 56-digit decimal layout.
//!
//! In hexadecimal a sequence number reads, from the most significant digit: the constant `2`,
//! nine digits of shard creation time (epoch seconds), the low digit of the shard index, sixteen
//! digits of counter, a zero byte, nine digits of arrival time (epoch seconds), eight digits of
//! shard index and the version digit `2`. That is 188 bits, handled here as a 192-bit integer.

use std::fmt;

/// Counter value the service uses in a closed shard's ending sequence number.
pub const ENDING_COUNTER: u64 = 0x7fff_ffff_ffff_ffff;

/// A decoded sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceNumber {
    /// Creation time of the shard, epoch seconds (36 bits).
    pub shard_created_secs: u64,
    /// Position-derived counter, strictly increasing within a shard (63 bits).
    pub counter: u64,
    /// Arrival time of the record, epoch seconds (36 bits).
    pub arrival_secs: u64,
    /// Index of the shard that holds the record.
    pub shard_index: u32,
}

/// Why a decimal string is not a sequence number of this layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UndecodableSequenceNumber;

const SECONDS_MASK: u64 = (1 << 36) - 1;

impl SequenceNumber {
    /// A shard's starting sequence number: counter 0 and the shard's creation time as arrival.
    pub fn shard_start(shard_created_secs: u64, shard_index: u32) -> SequenceNumber {
        SequenceNumber {
            shard_created_secs,
            counter: 0,
            arrival_secs: shard_created_secs,
            shard_index,
        }
    }

    fn to_u192(self) -> U192 {
        let mut value = U192::ZERO;
        value.or_shifted(2, 184);
        value.or_shifted(u128::from(self.shard_created_secs & SECONDS_MASK), 148);
        value.or_shifted(u128::from(self.shard_index & 0xf), 144);
        value.or_shifted(u128::from(self.counter & ENDING_COUNTER), 80);
        value.or_shifted(u128::from(self.arrival_secs & SECONDS_MASK), 36);
        value.or_shifted(u128::from(self.shard_index), 4);
        value.or_shifted(2, 0);
        value
    }

    /// Decodes a decimal sequence number; fails for numbers of another layout.
    pub fn parse(decimal: &str) -> Result<SequenceNumber, UndecodableSequenceNumber> {
        let value = U192::parse_decimal(decimal).ok_or(UndecodableSequenceNumber)?;
        if value.bits(184, 8) != 2 || value.bits(0, 4) != 2 || value.bits(72, 8) != 0 {
            return Err(UndecodableSequenceNumber);
        }
        // A creation time with every bit set is no time at all (year 4147).
        if value.bits(148, 36) == (1u128 << 36) - 1 {
            return Err(UndecodableSequenceNumber);
        }
        let counter = value.bits(80, 64) as u64;
        if counter > ENDING_COUNTER {
            return Err(UndecodableSequenceNumber);
        }
        let shard_index = value.bits(4, 32) as u32;
        if value.bits(144, 4) as u32 != shard_index & 0xf {
            return Err(UndecodableSequenceNumber);
        }
        Ok(SequenceNumber {
            shard_created_secs: value.bits(148, 36) as u64,
            counter,
            arrival_secs: value.bits(36, 36) as u64,
            shard_index,
        })
    }
}

/// A number below 2^124, which the service reads in an older layout: only its shard index (the
/// low 16 bits) is known, and zero is a number the service fails on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OlderLayout {
    pub shard_index: u32,
    pub is_zero: bool,
}

impl OlderLayout {
    /// Reads `decimal` when it is below 2^124.
    pub fn parse(decimal: &str) -> Option<OlderLayout> {
        let value = U192::parse_decimal(decimal)?;
        if value.0[0] != 0 || value.bits(124, 4) != 0 {
            return None;
        }
        Some(OlderLayout {
            shard_index: value.bits(0, 16) as u32,
            is_zero: value == U192::ZERO,
        })
    }
}

/// `shardId-<12 digits>` of an index as the service prints an encoded one: a signed 32-bit
/// number, so an index with the top bit set shows as `shardId--02147483648`.
pub fn encoded_shard_name(shard_index: u32) -> String {
    format!("shardId-{:012}", shard_index as i32)
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_u192().write_decimal(f)
    }
}

/// "00" to "99": decimal digits are written two at a time.
const DIGIT_PAIRS: [u8; 200] = {
    let mut table = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        table[2 * i] = b'0' + (i / 10) as u8;
        table[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    table
};

/// A 192-bit unsigned integer as `[high, middle, low]` 64-bit limbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct U192([u64; 3]);

impl U192 {
    const ZERO: U192 = U192([0; 3]);

    /// ORs `value` (at most 128 bits, not crossing bit 192) in at bit `shift`.
    fn or_shifted(&mut self, value: u128, shift: u32) {
        for bit_offset in (0..128).step_by(64) {
            let chunk = (value >> bit_offset) as u64;
            if chunk == 0 {
                continue;
            }
            let position = shift + bit_offset;
            let limb = (position / 64) as usize;
            let within = position % 64;
            self.0[2 - limb] |= chunk << within;
            if within != 0 && limb < 2 {
                self.0[1 - limb] |= chunk >> (64 - within);
            }
        }
    }

    /// Reads `width` (≤ 64) bits starting at bit `shift`.
    fn bits(&self, shift: u32, width: u32) -> u128 {
        let low = u128::from(self.0[2]) | (u128::from(self.0[1]) << 64);
        let high = u128::from(self.0[0]);
        let value = if shift >= 128 {
            high >> (shift - 128)
        } else if shift == 0 {
            low
        } else {
            (low >> shift) | (high << (128 - shift))
        };
        let mask = if width >= 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        value & mask
    }

    fn parse_decimal(decimal: &str) -> Option<U192> {
        if decimal.is_empty() || decimal.len() > 129 || !decimal.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut limbs = [0u64; 3];
        for digit in decimal.bytes() {
            let mut carry = u128::from(digit - b'0');
            for limb in limbs.iter_mut().rev() {
                let product = u128::from(*limb) * 10 + carry;
                *limb = product as u64;
                carry = product >> 64;
            }
            if carry != 0 {
                return None;
            }
        }
        Some(U192(limbs))
    }

    fn write_decimal(self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const CHUNK: u64 = 10_000_000_000_000_000_000;
        let mut limbs = self.0;
        let mut chunks = [0u64; 4];
        let mut count = 0;
        loop {
            let mut remainder = 0u64;
            for limb in limbs.iter_mut() {
                if remainder == 0 {
                    // The high limbs, and the last pass: a 64-bit division.
                    remainder = *limb % CHUNK;
                    *limb /= CHUNK;
                } else {
                    let current = (u128::from(remainder) << 64) | u128::from(*limb);
                    let quotient = current / u128::from(CHUNK);
                    *limb = quotient as u64;
                    // One 128-bit division per limb, not two: the remainder from the quotient.
                    remainder = (current - quotient * u128::from(CHUNK)) as u64;
                }
            }
            chunks[count] = remainder;
            count += 1;
            if limbs == [0; 3] {
                break;
            }
        }
        // Digits into one buffer, least significant first, then one write: a PutRecords reply
        // prints one number per record, and `{:019}` pads digit by digit.
        let mut digits = [b'0'; 4 * 19];
        let mut start = digits.len();
        fn put_pair(digits: &mut [u8], start: &mut usize, pair: u64) {
            let at = 2 * pair as usize;
            *start -= 2;
            digits[*start..*start + 2].copy_from_slice(&DIGIT_PAIRS[at..at + 2]);
        }
        for (i, &chunk) in chunks[..count].iter().enumerate() {
            let mut value = chunk;
            if i + 1 < count {
                // Below the most significant chunk: exactly 19 digits, zeros included.
                for _ in 0..9 {
                    put_pair(&mut digits, &mut start, value % 100);
                    value /= 100;
                }
            } else {
                while value >= 100 {
                    put_pair(&mut digits, &mut start, value % 100);
                    value /= 100;
                }
                if value >= 10 {
                    put_pair(&mut digits, &mut start, value);
                    continue;
                }
            }
            start -= 1;
            digits[start] = b'0' + value as u8;
        }
        f.pad(std::str::from_utf8(&digits[start..]).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod older_layout_tests {
    use super::*;

    #[test]
    fn small_numbers_read_in_the_older_layout() {
        assert_eq!(
            OlderLayout::parse("5"),
            Some(OlderLayout {
                shard_index: 5,
                is_zero: false
            })
        );
        assert!(OlderLayout::parse("0").expect("small").is_zero);
        assert_eq!(OlderLayout::parse(&(1u128 << 124).to_string()), None);
        assert_eq!(encoded_shard_name(5), "shardId-000000000005");
        assert_eq!(encoded_shard_name(0x8000_0000), "shardId--02147483648");
    }
}

#[cfg(test)]
mod tests {
    struct Decimal(U192);

    impl fmt::Display for Decimal {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.write_decimal(f)
        }
    }

    #[test]
    fn decimal_digits_match_the_standard_formatting() {
        let chunk = 10_000_000_000_000_000_000u128;
        for value in [
            0,
            9,
            chunk - 1,
            chunk,
            chunk + 1,
            chunk * chunk - 1,
            chunk * chunk,
            1 << 64,
            u128::MAX,
        ] {
            let limbs = U192([0, (value >> 64) as u64, value as u64]);
            assert_eq!(Decimal(limbs).to_string(), value.to_string());
        }
        assert_eq!(
            Decimal(U192([1, 0, 0])).to_string(),
            "340282366920938463463374607431768211456"
        );
        assert_eq!(
            Decimal(U192([u64::MAX; 3])).to_string(),
            "6277101735386680763835789423207666416102355444464034512895"
        );
    }

    use super::*;

    #[test]
    fn decodes_a_published_sample() {
        let sample = "49590338271490256608559692538361571095921575989136588898";
        let decoded = SequenceNumber::parse(sample).expect("sample decodes");
        assert_eq!(decoded.shard_index, 6);
        assert_eq!(decoded.arrival_secs, 1545084650);
        assert_eq!(decoded.to_string(), sample);
    }

    #[test]
    fn starting_numbers_of_initial_shards_differ_by_the_known_step() {
        let first = SequenceNumber {
            shard_created_secs: 1_572_297_165,
            counter: 0,
            arrival_secs: 1_572_297_165,
            shard_index: 0,
        };
        let second = SequenceNumber {
            shard_index: 1,
            ..first
        };
        let a: u128 = first.to_u192().bits(0, 128);
        let b: u128 = second.to_u192().bits(0, 128);
        assert_eq!(b - a, 16);
        assert_eq!(
            second.to_u192().bits(144, 4) - first.to_u192().bits(144, 4),
            1
        );
        assert_eq!(first.to_string().len(), 56);
    }

    #[test]
    fn round_trips_and_orders() {
        let mut previous = String::new();
        for counter in [1u64, 2, 10, 1 << 40, ENDING_COUNTER] {
            let number = SequenceNumber {
                shard_created_secs: 1_800_000_000,
                counter,
                arrival_secs: 1_800_000_100,
                shard_index: 1234,
            };
            let text = number.to_string();
            assert_eq!(SequenceNumber::parse(&text), Ok(number));
            assert!(previous.len() < text.len() || previous < text);
            previous = text;
        }
    }

    #[test]
    fn rejects_other_layouts() {
        for text in ["0", "5", "", "12a", &"9".repeat(130)] {
            assert_eq!(
                SequenceNumber::parse(text),
                Err(UndecodableSequenceNumber),
                "{text}"
            );
        }
    }
}
