//! DynamoDB numbers: up to 38 significant decimal digits, magnitudes from 1E-130 to
//! 9.9999999999999999999999999999999999999E+125, compared and added exactly, printed in the
//! canonical form DynamoDB returns (no exponent, no leading or trailing zeros).

use std::cmp::Ordering;

/// The most significant digits a number may have.
const MAX_DIGITS: usize = 38;

/// A decimal number: `(-1)^negative × 0.d1d2…dn × 10^exponent`, with `digits` free of leading
/// and trailing zeros (zero has no digits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number {
    negative: bool,
    digits: Vec<u8>,
    exponent: i32,
}

/// Why a number string was refused, with DynamoDB's texts.
#[derive(Debug, PartialEq, Eq)]
pub enum NumberError {
    NotNumeric,
    TooPrecise,
    Overflow,
    Underflow,
}

impl NumberError {
    pub fn message(&self, text: &str) -> String {
        match self {
            NumberError::NotNumeric => {
                format!("The parameter cannot be converted to a numeric value: {text}")
            }
            NumberError::TooPrecise => {
                "Attempting to store more than 38 significant digits in a Number".to_owned()
            }
            NumberError::Overflow => {
                "Number overflow. Attempting to store a number with magnitude larger than supported range".to_owned()
            }
            NumberError::Underflow => {
                "Number underflow. Attempting to store a number with magnitude smaller than supported range".to_owned()
            }
        }
    }
}

impl Number {
    pub fn zero() -> Number {
        Number {
            negative: false,
            digits: Vec::new(),
            exponent: 0,
        }
    }

    /// Parses DynamoDB's number syntax: optional sign, digits with an optional point, an
    /// optional exponent.
    pub fn parse(text: &str) -> Result<Number, NumberError> {
        let trimmed = text.trim();
        let bytes = trimmed.as_bytes();
        let mut position = 0;
        let mut negative = false;
        if let Some(&sign) = bytes.first() {
            if sign == b'-' || sign == b'+' {
                negative = sign == b'-';
                position = 1;
            }
        }
        let mut digits = Vec::new();
        let mut point_seen = false;
        let mut digits_before_point: i64 = 0;
        let mut any_digit = false;
        while position < bytes.len() {
            let byte = bytes[position];
            if byte.is_ascii_digit() {
                any_digit = true;
                digits.push(byte - b'0');
                if !point_seen {
                    digits_before_point += 1;
                }
            } else if byte == b'.' && !point_seen {
                point_seen = true;
            } else {
                break;
            }
            position += 1;
        }
        if !any_digit {
            return Err(NumberError::NotNumeric);
        }
        let mut exponent_part: i64 = 0;
        if position < bytes.len() {
            if bytes[position] != b'e' && bytes[position] != b'E' {
                return Err(NumberError::NotNumeric);
            }
            let rest = &trimmed[position + 1..];
            let rest = rest.strip_prefix('+').unwrap_or(rest);
            if rest.is_empty() || rest.len() > 12 {
                return Err(NumberError::NotNumeric);
            }
            let valid = rest
                .strip_prefix('-')
                .unwrap_or(rest)
                .bytes()
                .all(|b| b.is_ascii_digit());
            if !valid {
                return Err(NumberError::NotNumeric);
            }
            exponent_part = rest.parse().map_err(|_| NumberError::NotNumeric)?;
        }
        let mut exponent = digits_before_point + exponent_part;
        let leading = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..leading);
        exponent -= leading as i64;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Ok(Number::zero());
        }
        if digits.len() > MAX_DIGITS {
            return Err(NumberError::TooPrecise);
        }
        // 0.d × 10^exponent: the largest is just under 10^126, the smallest 10^-130.
        if exponent > 126 {
            return Err(NumberError::Overflow);
        }
        if exponent < -129 {
            return Err(NumberError::Underflow);
        }
        Ok(Number {
            negative,
            digits,
            exponent: exponent as i32,
        })
    }

    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Digits stored, for item sizes.
    pub fn significant_digits(&self) -> usize {
        self.digits.len()
    }

    /// The canonical text.
    pub fn to_text(&self) -> String {
        if self.digits.is_empty() {
            return "0".to_owned();
        }
        let mut out = String::new();
        if self.negative {
            out.push('-');
        }
        let digit = |d: &u8| char::from(b'0' + d);
        if self.exponent <= 0 {
            out.push_str("0.");
            for _ in 0..(-self.exponent) {
                out.push('0');
            }
            out.extend(self.digits.iter().map(digit));
        } else {
            let whole = self.exponent as usize;
            for index in 0..whole.max(self.digits.len()) {
                if index == whole {
                    out.push('.');
                }
                out.push(self.digits.get(index).map(digit).unwrap_or('0'));
            }
        }
        out
    }

    fn compare_magnitude(a: &Number, b: &Number) -> Ordering {
        match (a.digits.is_empty(), b.digits.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        a.exponent
            .cmp(&b.exponent)
            .then_with(|| a.digits.cmp(&b.digits))
    }

    /// Adds exactly, then checks the result against DynamoDB's limits.
    pub fn add(&self, other: &Number) -> Result<Number, NumberError> {
        if self.is_zero() {
            return Ok(other.clone());
        }
        if other.is_zero() {
            return Ok(self.clone());
        }
        // Align both as integers scaled by 10^low.
        let low = (self.exponent - self.digits.len() as i32)
            .min(other.exponent - other.digits.len() as i32);
        let high = self.exponent.max(other.exponent);
        let width = (high - low) as usize;
        let spread = |n: &Number| -> Vec<u8> {
            // Little-endian digits of the integer n × 10^-low.
            let mut out = vec![0u8; width + 1];
            for (index, d) in n.digits.iter().enumerate() {
                let power = (n.exponent - 1 - index as i32 - low) as usize;
                out[power] = *d;
            }
            out
        };
        let a = spread(self);
        let b = spread(other);
        let (negative, magnitude) = if self.negative == other.negative {
            let mut out = vec![0u8; width + 1];
            let mut carry = 0;
            for index in 0..=width {
                let sum = a[index] + b[index] + carry;
                out[index] = sum % 10;
                carry = sum / 10;
            }
            (self.negative, out)
        } else {
            let (big, small, negative) = match Number::compare_magnitude(self, other) {
                Ordering::Equal => return Ok(Number::zero()),
                Ordering::Greater => (&a, &b, self.negative),
                Ordering::Less => (&b, &a, other.negative),
            };
            let mut out = vec![0u8; width + 1];
            let mut borrow = 0i8;
            for index in 0..=width {
                let mut diff = big[index] as i8 - small[index] as i8 - borrow;
                borrow = 0;
                if diff < 0 {
                    diff += 10;
                    borrow = 1;
                }
                out[index] = diff as u8;
            }
            (negative, out)
        };
        let mut text = String::new();
        if negative {
            text.push('-');
        }
        for d in magnitude.iter().rev() {
            text.push(char::from(b'0' + d));
        }
        text.push_str(&format!("e{low}"));
        Number::parse(&text)
    }

    pub fn negated(&self) -> Number {
        let mut out = self.clone();
        if !out.is_zero() {
            out.negative = !out.negative;
        }
        out
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        let sign = |n: &Number| {
            if n.is_zero() {
                0
            } else if n.negative {
                -1
            } else {
                1
            }
        };
        match sign(self).cmp(&sign(other)) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
        let magnitude = Number::compare_magnitude(self, other);
        if self.negative {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        Number::parse(text).expect("parses").to_text()
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical("1.0"), "1");
        assert_eq!(canonical("007"), "7");
        assert_eq!(canonical("1e2"), "100");
        assert_eq!(canonical("-0.0"), "0");
        assert_eq!(canonical("-12.3400"), "-12.34");
        assert_eq!(canonical("0.00012"), "0.00012");
        assert_eq!(canonical("1.5E-3"), "0.0015");
        assert_eq!(canonical("+5"), "5");
        assert_eq!(canonical("123.456"), "123.456");
    }

    #[test]
    fn limits() {
        assert_eq!(Number::parse("abc"), Err(NumberError::NotNumeric));
        assert_eq!(Number::parse(""), Err(NumberError::NotNumeric));
        assert_eq!(Number::parse("1e"), Err(NumberError::NotNumeric));
        assert_eq!(Number::parse("1.2.3"), Err(NumberError::NotNumeric));
        assert_eq!(Number::parse(&"1".repeat(39)), Err(NumberError::TooPrecise));
        assert!(Number::parse(&"1".repeat(38)).is_ok());
        assert_eq!(Number::parse("1e126"), Err(NumberError::Overflow));
        assert!(Number::parse("9.9e125").is_ok());
        assert!(Number::parse("1e-130").is_ok());
        assert_eq!(Number::parse("1e-131"), Err(NumberError::Underflow));
    }

    #[test]
    fn ordering_and_addition() {
        let n = |t: &str| Number::parse(t).expect("parses");
        assert!(n("-2") < n("-1"));
        assert!(n("-1") < n("0"));
        assert!(n("0.5") < n("1"));
        assert!(n("10") > n("9.99"));
        assert_eq!(n("1.50").cmp(&n("1.5")), Ordering::Equal);
        let sum = |a: &str, b: &str| n(a).add(&n(b)).expect("adds").to_text();
        assert_eq!(sum("1", "2"), "3");
        assert_eq!(sum("0.1", "0.2"), "0.3");
        assert_eq!(sum("5", "-7"), "-2");
        assert_eq!(sum("-5", "5"), "0");
        assert_eq!(sum("99", "1"), "100");
        assert_eq!(sum("1e20", "1"), "100000000000000000001");
        assert_eq!(sum("-1.25", "0.25"), "-1");
    }
}
