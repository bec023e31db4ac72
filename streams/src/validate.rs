//! Checks a definition file must pass before anything talks to a server: JSON object,
//! known fields with well-typed values, names matching file names, references resolving.

use serde_json::{Map, Value};

use crate::definitions::{ConsumerDef, Definitions, KeyValueDef, SourceFile, StreamDef};
use crate::error::StreamsError;

/// Stream config fields nats-server knows (2.10 through 2.12). A field outside this list
/// is most likely a typo, which the server would silently ignore.
const STREAM_FIELDS: &[&str] = &[
    "name",
    "description",
    "subjects",
    "retention",
    "max_consumers",
    "max_msgs",
    "max_bytes",
    "max_age",
    "max_msgs_per_subject",
    "max_msg_size",
    "discard",
    "discard_new_per_subject",
    "storage",
    "num_replicas",
    "no_ack",
    "template_owner",
    "duplicate_window",
    "placement",
    "mirror",
    "sources",
    "compression",
    "first_seq",
    "subject_transform",
    "republish",
    "allow_direct",
    "mirror_direct",
    "sealed",
    "deny_delete",
    "deny_purge",
    "allow_rollup_hdrs",
    "consumer_limits",
    "metadata",
    "allow_msg_ttl",
    "subject_delete_marker_ttl",
    "allow_msg_counter",
    "allow_atomic",
    "allow_msg_schedules",
    "allow_batched",
    "persist_mode",
];

const CONSUMER_FIELDS: &[&str] = &[
    "durable_name",
    "name",
    "description",
    "deliver_policy",
    "opt_start_seq",
    "opt_start_time",
    "ack_policy",
    "ack_wait",
    "max_deliver",
    "backoff",
    "filter_subject",
    "filter_subjects",
    "replay_policy",
    "rate_limit_bps",
    "sample_freq",
    "max_waiting",
    "max_ack_pending",
    "flow_control",
    "idle_heartbeat",
    "headers_only",
    "max_batch",
    "max_expires",
    "max_bytes",
    "inactive_threshold",
    "num_replicas",
    "mem_storage",
    "metadata",
    "deliver_subject",
    "deliver_group",
    "pause_until",
    "priority_policy",
    "priority_groups",
    "priority_timeout",
];

fn invalid(file: &SourceFile, reason: impl Into<String>) -> StreamsError {
    StreamsError::Invalid {
        file: file.label.clone(),
        reason: reason.into(),
    }
}

pub(crate) fn parse_object(file: &SourceFile) -> Result<Map<String, Value>, StreamsError> {
    match serde_json::from_str::<Value>(&file.text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid(file, "expected a JSON object")),
        Err(source) => Err(StreamsError::Json {
            file: file.label.clone(),
            source,
        }),
    }
}

fn known_fields(
    file: &SourceFile,
    config: &Map<String, Value>,
    known: &[&str],
    what: &str,
) -> Result<(), StreamsError> {
    match config.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(
            file,
            format!("unknown {what} config field `{unknown}`"),
        )),
        None => Ok(()),
    }
}

/// Value types, checked by decoding into the client's typed config.
fn typed<T: serde::de::DeserializeOwned>(
    file: &SourceFile,
    config: &Map<String, Value>,
    what: &str,
) -> Result<(), StreamsError> {
    serde_json::from_value::<T>(Value::Object(config.clone()))
        .map(drop)
        .map_err(|e| invalid(file, format!("invalid {what} config: {e}")))
}

/// Valid as a stream, consumer or bucket name: no whitespace, dots, wildcards or separators.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || ".*>/\\".contains(c))
}

fn string_field<'a>(config: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    config.get(key).and_then(Value::as_str)
}

pub(crate) fn stream(
    file: &SourceFile,
    file_stem: &str,
    config: Map<String, Value>,
) -> Result<StreamDef, StreamsError> {
    known_fields(file, &config, STREAM_FIELDS, "stream")?;
    typed::<async_nats::jetstream::stream::Config>(file, &config, "stream")?;
    let name = string_field(&config, "name").unwrap_or_default();
    if name != file_stem {
        return Err(invalid(
            file,
            format!("stream name `{name}` must match the file name `{file_stem}.json`"),
        ));
    }
    if !valid_name(name) {
        return Err(invalid(file, format!("invalid stream name `{name}`")));
    }
    Ok(StreamDef {
        name: name.to_string(),
        file: file.label.clone(),
        config,
    })
}

pub(crate) fn key_value(
    file: &SourceFile,
    bucket: &str,
    config: Map<String, Value>,
) -> Result<KeyValueDef, StreamsError> {
    if !bucket
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || bucket.is_empty()
    {
        return Err(invalid(file, format!("invalid bucket name `{bucket}`")));
    }
    let stream_name = format!("KV_{bucket}");
    let stream = stream(file, &stream_name, config).map_err(|e| match e {
        StreamsError::Invalid { file, reason } => StreamsError::Invalid {
            file,
            reason: format!("{reason} (a kv/<bucket>.json file holds stream KV_<bucket>)"),
        },
        other => other,
    })?;
    let subjects = stream.config.get("subjects");
    let expected = Value::from(vec![format!("$KV.{bucket}.>")]);
    if subjects != Some(&expected) {
        return Err(invalid(file, format!("subjects must be {expected}")));
    }
    let history = stream
        .config
        .get("max_msgs_per_subject")
        .and_then(Value::as_i64);
    if history.is_none_or(|h| h < 1) {
        return Err(invalid(
            file,
            "max_msgs_per_subject (the history) must be >= 1",
        ));
    }
    for flag in ["allow_rollup_hdrs", "deny_delete"] {
        if stream.config.get(flag) != Some(&Value::Bool(true)) {
            return Err(invalid(
                file,
                format!("{flag} must be true for a key-value bucket"),
            ));
        }
    }
    Ok(KeyValueDef {
        bucket: bucket.to_string(),
        stream,
    })
}

pub(crate) fn consumer(
    file: &SourceFile,
    stream: &str,
    file_stem: &str,
    config: Map<String, Value>,
) -> Result<ConsumerDef, StreamsError> {
    known_fields(file, &config, CONSUMER_FIELDS, "consumer")?;
    typed::<async_nats::jetstream::consumer::Config>(file, &config, "consumer")?;
    let durable = string_field(&config, "durable_name").unwrap_or_default();
    if durable != file_stem {
        return Err(invalid(
            file,
            format!("durable_name `{durable}` must match the file name `{file_stem}.json`"),
        ));
    }
    if string_field(&config, "name").is_some_and(|n| n != durable) {
        return Err(invalid(file, "name, when given, must equal durable_name"));
    }
    if !valid_name(durable) {
        return Err(invalid(file, format!("invalid consumer name `{durable}`")));
    }
    Ok(ConsumerDef {
        stream: stream.to_string(),
        name: durable.to_string(),
        file: file.label.clone(),
        config,
    })
}

pub(crate) fn cross_references(defs: &Definitions) -> Result<(), StreamsError> {
    let mut seen: Vec<&str> = Vec::new();
    for s in defs.all_streams() {
        if seen.contains(&s.name.as_str()) {
            return Err(StreamsError::Invalid {
                file: s.file.clone(),
                reason: format!("stream `{}` is defined twice", s.name),
            });
        }
        seen.push(&s.name);
    }
    for c in &defs.consumers {
        if defs.stream(&c.stream).is_none() {
            return Err(StreamsError::Invalid {
                file: c.file.clone(),
                reason: format!("consumer on stream `{}`, which has no definition", c.stream),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::definitions::{Definitions, SourceFile};
    use crate::error::StreamsError;

    const STREAM: &str = r#"{"name": "S", "subjects": ["s.>"], "retention": "limits",
        "storage": "file", "num_replicas": 1, "discard": "old"}"#;

    fn load(files: &[(&str, &str)]) -> Result<Definitions, StreamsError> {
        Definitions::from_files(files.iter().map(|(rel, text)| SourceFile {
            relative: (*rel).to_string(),
            label: format!("defs/{rel}"),
            text: (*text).to_string(),
        }))
    }

    fn rejection(files: &[(&str, &str)]) -> String {
        match load(files) {
            Ok(defs) => panic!("accepted invalid definitions: {defs:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_a_minimal_set() {
        let defs = load(&[
            ("streams/S.json", STREAM),
            (
                "consumers/S/c.json",
                r#"{"durable_name": "c", "deliver_policy": "all", "ack_policy": "explicit"}"#,
            ),
        ])
        .expect("valid");
        assert_eq!(defs.streams[0].name, "S");
        assert_eq!(defs.consumers[0].stream, "S");
    }

    #[test]
    fn names_the_file_on_bad_json() {
        let msg = rejection(&[("streams/S.json", "{\"name\": ")]);
        assert!(
            msg.starts_with("defs/streams/S.json: invalid JSON"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        let text = STREAM.replace("\"discard\"", "\"max_agee\": 5, \"discard\"");
        let msg = rejection(&[("streams/S.json", &text)]);
        assert!(
            msg.contains("unknown stream config field `max_agee`"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_ill_typed_values() {
        let text = STREAM.replace("\"limits\"", "\"forever\"");
        let msg = rejection(&[("streams/S.json", &text)]);
        assert!(
            msg.contains("defs/streams/S.json: invalid stream config"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_a_name_that_does_not_match_the_file() {
        let msg = rejection(&[("streams/T.json", STREAM)]);
        assert!(msg.contains("must match the file name `T.json`"), "{msg}");
    }

    #[test]
    fn rejects_a_consumer_on_an_undefined_stream() {
        let msg = rejection(&[
            ("streams/S.json", STREAM),
            (
                "consumers/X/c.json",
                r#"{"durable_name": "c", "deliver_policy": "all"}"#,
            ),
        ]);
        assert!(msg.contains("stream `X`, which has no definition"), "{msg}");
    }

    #[test]
    fn rejects_a_bucket_whose_stream_is_not_a_kv_stream() {
        let kv = r#"{"name": "KV_b", "subjects": ["b.>"], "retention": "limits",
            "storage": "file", "num_replicas": 1, "discard": "new",
            "max_msgs_per_subject": 1, "allow_rollup_hdrs": true, "deny_delete": true}"#;
        let msg = rejection(&[("kv/b.json", kv)]);
        assert!(msg.contains(r#"subjects must be ["$KV.b.>"]"#), "{msg}");
    }
}
