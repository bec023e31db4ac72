//! Comparing a desired config with the server's, merging them for an update, and the
//! server's rules about which fields cannot change in place.

use serde_json::{Map, Value};

use crate::report::FieldChange;

/// The fields where `desired` differs from `current`, looking only at keys `desired`
/// specifies (recursively into objects; arrays compare whole). A key the server omits
/// equals a desired zero value (`false`, `0`, `""`, `[]`, `{}`, `null`): servers leave
/// defaults out of their JSON.
pub(crate) fn diff(desired: &Map<String, Value>, current: &Map<String, Value>) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    diff_object("", desired, Some(current), &mut changes);
    changes
}

fn diff_object(
    prefix: &str,
    desired: &Map<String, Value>,
    current: Option<&Map<String, Value>>,
    out: &mut Vec<FieldChange>,
) {
    for (key, want) in desired {
        let field = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let have = current.and_then(|c| c.get(key));
        match want {
            Value::Object(want) if !want.is_empty() => {
                diff_object(&field, want, have.and_then(Value::as_object), out);
            }
            _ => {
                let have = have.cloned().unwrap_or(Value::Null);
                if !same(want, &have) {
                    out.push(FieldChange {
                        field,
                        from: have,
                        to: want.clone(),
                    });
                }
            }
        }
    }
}

fn same(want: &Value, have: &Value) -> bool {
    want == have || (is_zero(want) && is_zero(have))
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// The full config to send in an update: the server's current config with the desired
/// keys laid over it (recursively into objects), so unspecified fields keep their values.
pub(crate) fn merge(
    current: &Map<String, Value>,
    desired: &Map<String, Value>,
) -> Map<String, Value> {
    let mut merged = current.clone();
    for (key, want) in desired {
        match (merged.get_mut(key), want) {
            (Some(Value::Object(have)), Value::Object(want)) => {
                let inner = merge(have, want);
                *have = inner;
            }
            _ => {
                merged.insert(key.clone(), want.clone());
            }
        }
    }
    merged
}

/// Which fields of an object the server refuses to change in place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mutability {
    /// Any change is refused.
    fixed: &'static [&'static str],
    /// May be switched on, never off (`true -> false` is refused).
    one_way: &'static [&'static str],
    /// May change value but not between set and unset (push <-> pull consumer).
    presence: &'static [&'static str],
}

/// nats-server's stream update checks (`configUpdateCheck`). Retention is treated as
/// fixed: the server allows limits <-> interest, but a retention change is a data-loss
/// decision that should not ride along with a deploy.
pub(crate) const STREAM: Mutability = Mutability {
    fixed: &[
        "name",
        "storage",
        "retention",
        "max_consumers",
        "mirror",
        "template_owner",
    ],
    one_way: &["sealed", "deny_delete", "deny_purge"],
    presence: &[],
};

/// nats-server's consumer update checks (`checkNewConsumerConfig`).
pub(crate) const CONSUMER: Mutability = Mutability {
    fixed: &[
        "durable_name",
        "name",
        "deliver_policy",
        "opt_start_seq",
        "opt_start_time",
        "ack_policy",
        "replay_policy",
        "idle_heartbeat",
        "flow_control",
        "max_waiting",
    ],
    one_way: &[],
    presence: &["deliver_subject"],
};

impl Mutability {
    /// The changes in `changes` the server would refuse.
    pub(crate) fn refused<'a>(&self, changes: &'a [FieldChange]) -> Vec<&'a FieldChange> {
        changes
            .iter()
            .filter(|c| {
                let top = c.field.split('.').next().unwrap_or(&c.field);
                self.fixed.contains(&top)
                    || (self.one_way.contains(&top) && !is_zero(&c.from) && is_zero(&c.to))
                    || (self.presence.contains(&top) && is_zero(&c.from) != is_zero(&c.to))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn compares_only_desired_keys_and_treats_missing_as_zero() {
        let desired = obj(json!({
            "max_age": 10, "deny_delete": false, "description": "", "subjects": ["a.>"],
            "metadata": {"owner": "inv"}
        }));
        let current = obj(json!({
            "max_age": 10, "subjects": ["a.>"], "max_msgs": -1, "storage": "file",
            "metadata": {"owner": "inv", "_nats.req.level": "0"}
        }));
        assert!(diff(&desired, &current).is_empty());
    }

    #[test]
    fn reports_nested_and_top_level_differences() {
        let desired = obj(json!({"max_age": 5, "metadata": {"owner": "b"}, "subjects": ["x"]}));
        let current =
            obj(json!({"max_age": 10, "metadata": {"owner": "a"}, "subjects": ["x", "y"]}));
        let fields: Vec<_> = diff(&desired, &current)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["max_age", "metadata.owner", "subjects"]);
    }

    #[test]
    fn a_field_the_server_does_not_report_differs_from_a_nonzero_wish() {
        let changes = diff(&obj(json!({"allow_direct": true})), &obj(json!({})));
        assert_eq!(
            changes,
            [FieldChange {
                field: "allow_direct".into(),
                from: Value::Null,
                to: json!(true)
            }]
        );
    }

    #[test]
    fn merge_keeps_server_fields_and_overlays_desired_ones() {
        let merged = merge(
            &obj(json!({"max_age": 1, "storage": "file", "metadata": {"_nats.x": "1", "a": "1"}})),
            &obj(json!({"max_age": 2, "metadata": {"a": "2"}})),
        );
        assert_eq!(
            Value::Object(merged),
            json!({"max_age": 2, "storage": "file", "metadata": {"_nats.x": "1", "a": "2"}})
        );
    }

    #[test]
    fn refuses_what_the_server_cannot_change() {
        let change = |field: &str, from: Value, to: Value| FieldChange {
            field: field.into(),
            from,
            to,
        };
        let changes = [
            change("storage", json!("file"), json!("memory")),
            change("max_age", json!(1), json!(2)),
            change("deny_delete", json!(true), json!(false)),
            change("deny_purge", json!(false), json!(true)),
        ];
        let refused: Vec<_> = STREAM
            .refused(&changes)
            .into_iter()
            .map(|c| &c.field)
            .collect();
        assert_eq!(refused, ["storage", "deny_delete"]);

        let changes = [
            change("deliver_subject", Value::Null, json!("push.here")),
            change("max_deliver", json!(10), json!(5)),
            change("ack_policy", json!("explicit"), json!("none")),
        ];
        let refused: Vec<_> = CONSUMER
            .refused(&changes)
            .into_iter()
            .map(|c| &c.field)
            .collect();
        assert_eq!(refused, ["deliver_subject", "ack_policy"]);
    }
}
