//! The checkpoint file: for every flow, the files it follows (device and inode, last path, the
//! first bytes of the file) and the position up to which every record is acknowledged. It is
//! replaced atomically (write a temporary file, fsync, rename, fsync the directory), so a crash
//! leaves the previous or the new version, never a torn one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};

/// Where one file stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheckpoint {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Bytes of the file delivered (or skipped) and acknowledged.
    pub offset: u64,
    /// Header lines still to skip (`skipHeaderLines`).
    pub header_left: usize,
    /// Inside the remainder of a record cut at the size limit.
    pub skipping: bool,
    /// The first bytes of the file (up to [`crate::tail::HEAD_BYTES`]).
    pub head: Vec<u8>,
}

impl FileCheckpoint {
    fn to_json(&self) -> Value {
        json!({
            "path": self.path.to_string_lossy(),
            "dev": self.dev,
            "ino": self.ino,
            "offset": self.offset,
            "headerLinesLeft": self.header_left,
            "skipping": self.skipping,
            "head": base64::engine::general_purpose::STANDARD.encode(&self.head),
        })
    }

    fn from_json(value: &Value) -> Option<FileCheckpoint> {
        Some(FileCheckpoint {
            path: PathBuf::from(value["path"].as_str()?),
            dev: value["dev"].as_u64()?,
            ino: value["ino"].as_u64()?,
            offset: value["offset"].as_u64()?,
            header_left: value["headerLinesLeft"].as_u64().unwrap_or(0) as usize,
            skipping: value["skipping"].as_bool().unwrap_or(false),
            head: base64::engine::general_purpose::STANDARD
                .decode(value["head"].as_str().unwrap_or(""))
                .ok()?,
        })
    }
}

/// Every flow's checkpoints, and the file they live in.
pub struct CheckpointStore {
    path: PathBuf,
    flows: BTreeMap<String, Vec<FileCheckpoint>>,
}

impl CheckpointStore {
    /// Reads the file (an absent file is an empty store; an unreadable one is an error, so that
    /// a damaged file is not silently replaced and its files re-sent from the start).
    pub fn open(path: &Path) -> Result<CheckpointStore, String> {
        let mut flows = BTreeMap::new();
        match std::fs::read(path) {
            Ok(bytes) => {
                let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
                    format!("the checkpoint file {} is damaged: {e}", path.display())
                })?;
                for (flow, files) in value["flows"].as_object().into_iter().flatten() {
                    let files = files
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(FileCheckpoint::from_json)
                        .collect();
                    flows.insert(flow.clone(), files);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("read the checkpoint file {}: {e}", path.display())),
        }
        Ok(CheckpointStore {
            path: path.to_owned(),
            flows,
        })
    }

    /// The flow's files, or `None` if the flow has never been checkpointed.
    pub fn flow(&self, id: &str) -> Option<&[FileCheckpoint]> {
        self.flows.get(id).map(Vec::as_slice)
    }

    /// Replaces a flow's checkpoints and writes the file durably.
    pub fn store(&mut self, id: &str, files: Vec<FileCheckpoint>) -> std::io::Result<()> {
        if self.flows.get(id) == Some(&files) {
            return Ok(());
        }
        self.flows.insert(id.to_owned(), files);
        self.write()
    }

    fn write(&self) -> std::io::Result<()> {
        let flows: serde_json::Map<String, Value> = self
            .flows
            .iter()
            .map(|(id, files)| {
                (
                    id.clone(),
                    Value::Array(files.iter().map(FileCheckpoint::to_json).collect()),
                )
            })
            .collect();
        let document = json!({"version": 1, "flows": flows});
        let directory = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(directory)?;
        let temporary = self.path.with_extension("tmp");
        {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(document.to_string().as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &self.path)?;
        std::fs::File::open(directory)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub").join("checkpoints");
        let entry = FileCheckpoint {
            path: "/var/log/a.log".into(),
            dev: 1,
            ino: 2,
            offset: 3,
            header_left: 0,
            skipping: false,
            head: b"first line\n".to_vec(),
        };
        let mut store = CheckpointStore::open(&path).expect("open");
        assert!(store.flow("f").is_none());
        store.store("f", vec![entry.clone()]).expect("store");
        let reopened = CheckpointStore::open(&path).expect("reopen");
        assert_eq!(reopened.flow("f"), Some(&[entry][..]));
        std::fs::write(&path, b"{not json").expect("damage");
        assert!(CheckpointStore::open(&path)
            .err()
            .is_some_and(|e| e.contains("damaged")));
    }
}
