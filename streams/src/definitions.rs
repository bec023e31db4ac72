//! The definitions: which streams, consumers and key-value buckets onhand needs, read
//! from `definitions/` (compiled in) or from a directory, and validated on load.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::StreamsError;
use crate::validate;

/// The files under `streams/definitions/`, compiled into the binary.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "streams/INVENTORY.json",
        include_str!("../definitions/streams/INVENTORY.json"),
    ),
    (
        "streams/INVENTORY_DLQ.json",
        include_str!("../definitions/streams/INVENTORY_DLQ.json"),
    ),
    (
        "streams/INGEST.json",
        include_str!("../definitions/streams/INGEST.json"),
    ),
    (
        "consumers/INGEST/ledger-ingest.json",
        include_str!("../definitions/consumers/INGEST/ledger-ingest.json"),
    ),
    (
        "kv/onhand_watermarks.json",
        include_str!("../definitions/kv/onhand_watermarks.json"),
    ),
    (
        "kv/onhand_availability.json",
        include_str!("../definitions/kv/onhand_availability.json"),
    ),
];

/// A stream: its config exactly as in its file (the server's JSON format).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamDef {
    pub name: String,
    /// Where it was read from, for error messages.
    pub file: String,
    pub config: Map<String, Value>,
}

/// A durable consumer on `stream`; `config` is the consumer config from its file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerDef {
    pub stream: String,
    pub name: String,
    pub file: String,
    pub config: Map<String, Value>,
}

/// A key-value bucket, stored as the config of its backing stream `KV_<bucket>`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValueDef {
    pub bucket: String,
    pub stream: StreamDef,
}

/// Everything `apply` manages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Definitions {
    pub streams: Vec<StreamDef>,
    pub key_values: Vec<KeyValueDef>,
    pub consumers: Vec<ConsumerDef>,
}

/// One definition file: its path relative to the definitions root, a label for
/// messages, and its text.
pub(crate) struct SourceFile {
    pub relative: String,
    pub label: String,
    pub text: String,
}

impl Definitions {
    /// The definitions compiled into this binary (validated by this crate's tests).
    pub fn embedded() -> Definitions {
        let files = EMBEDDED.iter().map(|(relative, text)| SourceFile {
            relative: (*relative).to_string(),
            label: format!("streams/definitions/{relative} (embedded)"),
            text: (*text).to_string(),
        });
        Self::from_files(files)
            .expect("invariant: the embedded definitions are validated by the crate's tests")
    }

    /// Reads `dir/streams/*.json`, `dir/consumers/<STREAM>/*.json` and `dir/kv/*.json`
    /// (other files are ignored) and validates them.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Definitions, StreamsError> {
        let dir = dir.as_ref();
        let read_err = |path: &Path| {
            let file = path.display().to_string();
            move |source| StreamsError::Read { file, source }
        };
        if !dir.is_dir() {
            return Err(StreamsError::Invalid {
                file: dir.display().to_string(),
                reason: "not a directory of definitions".into(),
            });
        }
        let mut files = Vec::new();
        for sub in ["streams", "kv"] {
            for path in json_files(&dir.join(sub)).map_err(read_err(&dir.join(sub)))? {
                files.push(read_source(dir, &path)?);
            }
        }
        let consumers = dir.join("consumers");
        if consumers.is_dir() {
            let mut streams: Vec<_> = std::fs::read_dir(&consumers)
                .and_then(|entries| entries.map(|e| e.map(|e| e.path())).collect())
                .map_err(read_err(&consumers))?;
            streams.sort();
            for stream_dir in streams.iter().filter(|p| p.is_dir()) {
                for path in json_files(stream_dir).map_err(read_err(stream_dir))? {
                    files.push(read_source(dir, &path)?);
                }
            }
        }
        Self::from_files(files)
    }

    pub(crate) fn from_files(
        files: impl IntoIterator<Item = SourceFile>,
    ) -> Result<Definitions, StreamsError> {
        let mut defs = Definitions::default();
        for file in files {
            let config = validate::parse_object(&file)?;
            let parts: Vec<&str> = file.relative.split('/').collect();
            match parts.as_slice() {
                ["streams", name] => {
                    defs.streams
                        .push(validate::stream(&file, stem(name), config)?)
                }
                ["kv", name] => {
                    defs.key_values
                        .push(validate::key_value(&file, stem(name), config)?)
                }
                ["consumers", stream, name] => {
                    defs.consumers
                        .push(validate::consumer(&file, stream, stem(name), config)?)
                }
                _ => {
                    return Err(StreamsError::Invalid {
                        file: file.label,
                        reason: "expected streams/<NAME>.json, consumers/<STREAM>/<NAME>.json \
                                 or kv/<BUCKET>.json"
                            .into(),
                    });
                }
            }
        }
        validate::cross_references(&defs)?;
        Ok(defs)
    }

    /// Every stream to manage, key-value backing streams included, in apply order.
    pub fn all_streams(&self) -> impl Iterator<Item = &StreamDef> {
        self.streams
            .iter()
            .chain(self.key_values.iter().map(|kv| &kv.stream))
    }

    pub fn stream(&self, name: &str) -> Option<&StreamDef> {
        self.all_streams().find(|s| s.name == name)
    }
}

fn stem(file_name: &str) -> &str {
    file_name.strip_suffix(".json").unwrap_or(file_name)
}

/// `*.json` files directly in `dir`, sorted; none when `dir` does not exist.
fn json_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_source(root: &Path, path: &Path) -> Result<SourceFile, StreamsError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| StreamsError::Read {
        file: label.clone(),
        source,
    })?;
    let relative = path
        .strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    Ok(SourceFile {
        relative,
        label,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("definitions")
    }

    #[test]
    fn embedded_definitions_are_valid_and_match_the_directory() {
        let embedded = Definitions::embedded();
        let on_disk = Definitions::load_dir(source_dir()).expect("load definitions/");
        let names = |d: &Definitions| {
            let mut v: Vec<(String, Map<String, Value>)> = d
                .all_streams()
                .map(|s| (s.name.clone(), s.config.clone()))
                .chain(
                    d.consumers
                        .iter()
                        .map(|c| (format!("{}/{}", c.stream, c.name), c.config.clone())),
                )
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(
            names(&embedded),
            names(&on_disk),
            "every file under definitions/ must be listed in EMBEDDED"
        );
    }

    #[test]
    fn embedded_has_the_contract_objects() {
        let defs = Definitions::embedded();
        for name in [
            "INVENTORY",
            "INVENTORY_DLQ",
            "INGEST",
            "KV_onhand_watermarks",
            "KV_onhand_availability",
        ] {
            assert!(defs.stream(name).is_some(), "{name}");
        }
        assert_eq!(defs.key_values[0].bucket, "onhand_watermarks");
        assert_eq!(defs.key_values[1].bucket, "onhand_availability");
        assert_eq!(
            (
                defs.consumers[0].stream.as_str(),
                defs.consumers[0].name.as_str()
            ),
            ("INGEST", "ledger-ingest")
        );
        let inventory = defs.stream("INVENTORY").map(|s| &s.config);
        assert_eq!(
            inventory.and_then(|c| c.get("duplicate_window")),
            Some(&Value::from(15 * 60 * 1_000_000_000_u64))
        );
    }
}
