//! Making a server match the definitions: plan everything (and refuse changes the
//! server cannot make) before changing anything, then create and update in order.

use async_nats::jetstream::Context;
use serde_json::{Map, Value};
use tracing::{info, instrument};

use crate::api;
use crate::definitions::Definitions;
use crate::diff::{self, Mutability};
use crate::error::{ImmutableChange, StreamsError};
use crate::report::{ApplyReport, FieldChange, Object, Outcome, ReportEntry};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Inspect and report only; change nothing.
    pub dry_run: bool,
}

enum Target<'a> {
    Stream { name: &'a str },
    Consumer { stream: &'a str, name: &'a str },
}

enum Action {
    Create(Map<String, Value>),
    Update {
        config: Map<String, Value>,
        changes: Vec<FieldChange>,
    },
    Unchanged,
}

struct Step<'a> {
    object: Object,
    target: Target<'a>,
    action: Action,
}

/// Creates what is missing, updates what differs (comparing only the keys each file
/// specifies), leaves the rest. If any desired change is one the server cannot make in
/// place, returns [`StreamsError::Immutable`] listing all of them and changes nothing.
#[instrument(skip_all, fields(dry_run = opts.dry_run), err)]
pub async fn apply(
    js: &Context,
    defs: &Definitions,
    opts: ApplyOptions,
) -> Result<ApplyReport, StreamsError> {
    let steps = plan(js, defs).await?;
    let mut report = ApplyReport {
        dry_run: opts.dry_run,
        entries: Vec::with_capacity(steps.len()),
    };
    for step in steps {
        let outcome = if opts.dry_run {
            match step.action {
                Action::Create(_) => Outcome::WouldCreate,
                Action::Update { changes, .. } => Outcome::WouldUpdate { changes },
                Action::Unchanged => Outcome::Unchanged,
            }
        } else {
            execute(js, &step).await?
        };
        report.entries.push(ReportEntry {
            object: step.object,
            outcome,
        });
    }
    Ok(report)
}

/// [`apply`] for real: what services call at startup.
pub async fn ensure(js: &Context, defs: &Definitions) -> Result<ApplyReport, StreamsError> {
    apply(js, defs, ApplyOptions { dry_run: false }).await
}

async fn plan<'a>(js: &Context, defs: &'a Definitions) -> Result<Vec<Step<'a>>, StreamsError> {
    let mut steps = Vec::new();
    let mut refused = Vec::new();

    let streams = defs
        .streams
        .iter()
        .map(|s| (Object::stream(&s.name), s))
        .chain(
            defs.key_values
                .iter()
                .map(|kv| (Object::key_value(&kv.bucket), &kv.stream)),
        );
    for (object, def) in streams {
        let current = api::stream_config(js, &def.name, &object).await?;
        let action = decide(&def.config, current, diff::STREAM, &object, &mut refused);
        steps.push(Step {
            object,
            target: Target::Stream { name: &def.name },
            action,
        });
    }

    for def in &defs.consumers {
        let object = Object::consumer(&def.stream, &def.name);
        let stream_missing = steps.iter().any(|s| {
            matches!(s.target, Target::Stream { name } if name == def.stream)
                && matches!(s.action, Action::Create(_))
        });
        let current = if stream_missing {
            None
        } else {
            api::consumer_config(js, &def.stream, &def.name, &object).await?
        };
        let action = decide(&def.config, current, diff::CONSUMER, &object, &mut refused);
        steps.push(Step {
            object,
            target: Target::Consumer {
                stream: &def.stream,
                name: &def.name,
            },
            action,
        });
    }

    if refused.is_empty() {
        Ok(steps)
    } else {
        Err(StreamsError::Immutable { changes: refused })
    }
}

fn decide(
    desired: &Map<String, Value>,
    current: Option<Map<String, Value>>,
    rules: Mutability,
    object: &Object,
    refused: &mut Vec<ImmutableChange>,
) -> Action {
    let Some(current) = current else {
        return Action::Create(desired.clone());
    };
    let changes = diff::diff(desired, &current);
    if changes.is_empty() {
        return Action::Unchanged;
    }
    refused.extend(
        rules
            .refused(&changes)
            .into_iter()
            .map(|change| ImmutableChange {
                object: object.clone(),
                change: change.clone(),
            }),
    );
    Action::Update {
        config: diff::merge(&current, desired),
        changes,
    }
}

async fn execute(js: &Context, step: &Step<'_>) -> Result<Outcome, StreamsError> {
    let object = &step.object;
    match (&step.target, &step.action) {
        (_, Action::Unchanged) => Ok(Outcome::Unchanged),
        (Target::Stream { name }, Action::Create(config)) => {
            api::create_stream(js, name, config, object).await?;
            info!(%object, "created");
            Ok(Outcome::Created)
        }
        (Target::Stream { name }, Action::Update { config, changes }) => {
            api::update_stream(js, name, config, object).await?;
            info!(%object, changes = changes.len(), "updated");
            Ok(Outcome::Updated {
                changes: changes.clone(),
            })
        }
        (Target::Consumer { stream, name }, Action::Create(config)) => {
            api::put_consumer(js, stream, name, config, false, object).await?;
            info!(%object, "created");
            Ok(Outcome::Created)
        }
        (Target::Consumer { stream, name }, Action::Update { config, changes }) => {
            api::put_consumer(js, stream, name, config, true, object).await?;
            info!(%object, changes = changes.len(), "updated");
            Ok(Outcome::Updated {
                changes: changes.clone(),
            })
        }
    }
}
