//! Object compression: the destination's `CompressionFormat`, applied to the concatenated
//! records of one object (buffering hints count the bytes before this step).

use std::io::Write;

/// A destination's compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Uncompressed,
    Gzip,
    Zip,
    /// The Snappy framing format (stream identifier, CRC-32C masked chunks).
    Snappy,
    /// Hadoop's block framing: per block the uncompressed length, then the compressed chunks,
    /// each preceded by its length (big-endian `u32`s).
    HadoopSnappy,
    /// A Zstandard frame (Kinesis Channels' `ZSTD`; delivery streams have no such format).
    Zstd,
}

/// Uncompressed bytes per Hadoop block (Hadoop's default `io.compression.codec.snappy.buffersize`).
const HADOOP_BLOCK: usize = 256 * 1024;

impl Compression {
    pub fn parse(text: &str) -> Compression {
        match text {
            "GZIP" => Compression::Gzip,
            "ZIP" => Compression::Zip,
            "Snappy" => Compression::Snappy,
            "HADOOP_SNAPPY" => Compression::HadoopSnappy,
            "ZSTD" => Compression::Zstd,
            _ => Compression::Uncompressed,
        }
    }

    /// The extension the service appends when no `FileExtension` is set.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Uncompressed => "",
            Compression::Gzip => ".gz",
            Compression::Zip => ".zip",
            Compression::Snappy | Compression::HadoopSnappy => ".snappy",
            Compression::Zstd => ".zst",
        }
    }

    /// The `Content-Encoding` of the stored object.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::Gzip => Some("gzip"),
            _ => None,
        }
    }

    /// Compresses `data`; `entry` names the file inside a ZIP archive.
    pub fn apply(self, data: &[u8], entry: &str) -> std::io::Result<Vec<u8>> {
        match self {
            Compression::Uncompressed => Ok(data.to_vec()),
            Compression::Zstd => zstd::bulk::compress(data, zstd::DEFAULT_COMPRESSION_LEVEL),
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(data)?;
                encoder.finish()
            }
            Compression::Zip => {
                let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .large_file(data.len() as u64 >= u32::MAX as u64);
                writer
                    .start_file(entry, options)
                    .map_err(std::io::Error::other)?;
                writer.write_all(data)?;
                Ok(writer.finish().map_err(std::io::Error::other)?.into_inner())
            }
            Compression::Snappy => {
                let mut encoder = snap::write::FrameEncoder::new(Vec::new());
                encoder.write_all(data)?;
                encoder
                    .into_inner()
                    .map_err(|error| std::io::Error::other(error.to_string()))
            }
            Compression::HadoopSnappy => {
                let mut out = Vec::with_capacity(data.len() / 2 + 16);
                let mut encoder = snap::raw::Encoder::new();
                for block in data.chunks(HADOOP_BLOCK) {
                    let compressed = encoder
                        .compress_vec(block)
                        .map_err(|error| std::io::Error::other(error.to_string()))?;
                    out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                    out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                    out.extend_from_slice(&compressed);
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn every_format_reads_back() {
        let data: Vec<u8> = (0..600_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let gz = Compression::Gzip.apply(&data, "x").expect("gzip");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        assert_eq!(out, data);

        let framed = Compression::Snappy.apply(&data, "x").expect("snappy");
        let mut out = Vec::new();
        snap::read::FrameDecoder::new(&framed[..])
            .read_to_end(&mut out)
            .expect("unframe");
        assert_eq!(out, data);

        let hadoop = Compression::HadoopSnappy.apply(&data, "x").expect("hadoop");
        let mut out = Vec::new();
        let mut rest = &hadoop[..];
        let mut decoder = snap::raw::Decoder::new();
        while !rest.is_empty() {
            let raw = u32::from_be_bytes(rest[..4].try_into().expect("4")) as usize;
            let len = u32::from_be_bytes(rest[4..8].try_into().expect("4")) as usize;
            let block = decoder
                .decompress_vec(&rest[8..8 + len])
                .expect("decompress");
            assert_eq!(block.len(), raw);
            out.extend_from_slice(&block);
            rest = &rest[8 + len..];
        }
        assert_eq!(out, data);

        let zipped = Compression::Zip.apply(&data, "entry").expect("zip");
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped)).expect("archive");
        let mut out = Vec::new();
        archive
            .by_index(0)
            .expect("entry")
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out, data);
    }

    #[test]
    fn zstd_reads_back() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let compressed = Compression::Zstd.apply(&data, "x").expect("zstd");
        assert!(compressed.len() < data.len());
        assert_eq!(
            zstd::bulk::decompress(&compressed, data.len()).expect("unzstd"),
            data
        );
        assert_eq!(Compression::parse("ZSTD").extension(), ".zst");
    }
}
