//! A bounds-checked little-endian reader for decoding untrusted bytes from disk.

/// Reads little-endian integers from the front of a byte slice.
/// Every method returns `None` instead of panicking when the slice is too short.
pub(crate) struct ByteReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> ByteReader<'a> {
        ByteReader { bytes }
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.bytes.split_first_chunk::<N>()?;
        self.bytes = rest;
        Some(*head)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::ByteReader;

    #[test]
    fn reads_integers_and_stops_at_the_end() {
        let bytes = [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9];
        let mut reader = ByteReader::new(&bytes);
        assert_eq!(reader.u32(), Some(1));
        assert_eq!(reader.u64(), Some(2));
        assert_eq!(reader.remaining(), 1);
        assert_eq!(reader.u32(), None);
        assert_eq!(reader.array::<1>(), Some([9]));
        assert_eq!(reader.remaining(), 0);
    }
}
