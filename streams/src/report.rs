//! What `apply` did (or would do), and its human-readable rendering.

use std::fmt;

use serde_json::Value;

/// A JetStream object managed by the definitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Object {
    Stream {
        name: String,
    },
    /// A key-value bucket; its backing stream is `KV_<bucket>`.
    KeyValue {
        bucket: String,
    },
    Consumer {
        stream: String,
        name: String,
    },
}

impl Object {
    pub fn stream(name: impl Into<String>) -> Object {
        Object::Stream { name: name.into() }
    }

    pub fn key_value(bucket: impl Into<String>) -> Object {
        Object::KeyValue {
            bucket: bucket.into(),
        }
    }

    pub fn consumer(stream: impl Into<String>, name: impl Into<String>) -> Object {
        Object::Consumer {
            stream: stream.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Stream { name } => write!(f, "stream {name}"),
            Object::KeyValue { bucket } => write!(f, "kv {bucket}"),
            Object::Consumer { stream, name } => write!(f, "consumer {stream}/{name}"),
        }
    }
}

/// One config field that differs: the server's value (`null` when it does not report
/// the field) and the desired one. Nested fields are dotted (`consumer_limits.max_ack_pending`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub from: Value,
    pub to: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created,
    Updated {
        changes: Vec<FieldChange>,
    },
    Unchanged,
    /// Dry run: missing, would be created.
    WouldCreate,
    /// Dry run: differs, would be updated.
    WouldUpdate {
        changes: Vec<FieldChange>,
    },
}

impl Outcome {
    /// Whether the server differs (or differed) from the definitions.
    pub fn is_change(&self) -> bool {
        !matches!(self, Outcome::Unchanged)
    }

    pub fn changes(&self) -> &[FieldChange] {
        match self {
            Outcome::Updated { changes } | Outcome::WouldUpdate { changes } => changes,
            Outcome::Created | Outcome::Unchanged | Outcome::WouldCreate => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportEntry {
    pub object: Object,
    pub outcome: Outcome,
}

/// One entry per definition, in apply order (streams, buckets, consumers).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApplyReport {
    pub dry_run: bool,
    pub entries: Vec<ReportEntry>,
}

impl ApplyReport {
    /// The outcome for `object`, if it is among the definitions.
    pub fn outcome(&self, object: &Object) -> Option<&Outcome> {
        self.entries
            .iter()
            .find(|e| &e.object == object)
            .map(|e| &e.outcome)
    }

    /// Whether anything was (or, in a dry run, would be) created or updated.
    pub fn has_changes(&self) -> bool {
        self.entries.iter().any(|e| e.outcome.is_change())
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for entry in &self.entries {
            let verb = match entry.outcome {
                Outcome::Created => "created",
                Outcome::Updated { .. } => "updated",
                Outcome::Unchanged => "unchanged",
                Outcome::WouldCreate => "would create",
                Outcome::WouldUpdate { .. } => "would update",
            };
            writeln!(f, "{}: {verb}", entry.object)?;
            for change in entry.outcome.changes() {
                writeln!(f, "  {}: {} -> {}", change.field, change.from, change.to)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_one_line_per_object_and_indented_changes() {
        let report = ApplyReport {
            dry_run: true,
            entries: vec![
                ReportEntry {
                    object: Object::stream("INVENTORY"),
                    outcome: Outcome::WouldUpdate {
                        changes: vec![FieldChange {
                            field: "max_age".into(),
                            from: json!(1_209_600_000_000_000_u64),
                            to: json!(604_800_000_000_000_u64),
                        }],
                    },
                },
                ReportEntry {
                    object: Object::consumer("INGEST", "ledger-ingest"),
                    outcome: Outcome::Unchanged,
                },
                ReportEntry {
                    object: Object::key_value("onhand_watermarks"),
                    outcome: Outcome::WouldCreate,
                },
            ],
        };
        assert_eq!(
            report.to_string(),
            "stream INVENTORY: would update\n  max_age: 1209600000000000 -> 604800000000000\n\
             consumer INGEST/ledger-ingest: unchanged\nkv onhand_watermarks: would create\n"
        );
        assert!(report.has_changes());
    }
}
