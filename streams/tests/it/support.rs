//! Helpers: a scratch copy of the definitions directory to edit, and server lookups.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

pub fn source_definitions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("definitions")
}

/// A temp copy of `definitions/`, to edit on disk and load with `load_dir`.
pub struct ScratchDefinitions {
    dir: TempDir,
}

impl ScratchDefinitions {
    pub fn new() -> ScratchDefinitions {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(&source_definitions(), dir.path());
        ScratchDefinitions { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Sets top-level `field` of the JSON file at `relative` to `value`.
    pub fn set(&self, relative: &str, field: &str, value: Value) {
        let path = self.file(relative);
        let text = std::fs::read_to_string(&path).expect("read definition");
        let mut json: Value = serde_json::from_str(&text).expect("definition is JSON");
        json[field] = value;
        std::fs::write(&path, serde_json::to_vec_pretty(&json).expect("serialize"))
            .expect("write definition");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let path = entry.expect("dir entry").path();
        let target = to.join(path.file_name().expect("file name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy file");
        }
    }
}

pub async fn stream_config(
    js: &async_nats::jetstream::Context,
    name: &str,
) -> async_nats::jetstream::stream::Config {
    let stream = js.get_stream(name).await.expect("stream exists");
    stream.cached_info().config.clone()
}

pub async fn stream_names(js: &async_nats::jetstream::Context) -> Vec<String> {
    use futures::TryStreamExt;
    js.stream_names().try_collect().await.expect("list streams")
}

pub const DAY_NANOS: u64 = 86_400 * 1_000_000_000;
