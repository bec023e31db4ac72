//! Raw JSON requests to the JetStream API, so configs reach the server exactly as the
//! files say (the client's typed configs would drop fields it does not know).

use async_nats::jetstream::Context;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, Operation, StreamsError};
use crate::report::Object;

/// Sends `body` to `$JS.API.<subject>` and splits API errors from successes.
async fn call<T: Serialize + ?Sized>(
    js: &Context,
    subject: String,
    body: &T,
) -> Result<Result<Map<String, Value>, ApiError>, StreamsError> {
    let response: Value =
        js.request(subject.clone(), body)
            .await
            .map_err(|source| StreamsError::Request {
                subject: subject.clone(),
                source,
            })?;
    let Value::Object(mut response) = response else {
        return Err(StreamsError::UnexpectedResponse {
            subject,
            reason: "not a JSON object".into(),
        });
    };
    match response.remove("error") {
        Some(error) => {
            serde_json::from_value(error)
                .map(Err)
                .map_err(|e| StreamsError::UnexpectedResponse {
                    subject,
                    reason: format!("malformed error: {e}"),
                })
        }
        None => Ok(Ok(response)),
    }
}

/// The `config` member of an info/create/update response.
fn config_of(
    subject: &str,
    mut response: Map<String, Value>,
) -> Result<Map<String, Value>, StreamsError> {
    match response.remove("config") {
        Some(Value::Object(config)) => Ok(config),
        _ => Err(StreamsError::UnexpectedResponse {
            subject: subject.to_string(),
            reason: "no `config` object".into(),
        }),
    }
}

fn api_error(operation: Operation, object: Object) -> impl FnOnce(ApiError) -> StreamsError {
    move |source| StreamsError::Api {
        operation,
        object,
        source,
    }
}

/// The stream's current config, `None` when it does not exist.
pub(crate) async fn stream_config(
    js: &Context,
    name: &str,
    object: &Object,
) -> Result<Option<Map<String, Value>>, StreamsError> {
    let subject = format!("STREAM.INFO.{name}");
    match call(js, subject.clone(), &json!({})).await? {
        Ok(response) => config_of(&subject, response).map(Some),
        Err(e) if e.err_code == ApiError::STREAM_NOT_FOUND => Ok(None),
        Err(e) => Err(api_error(Operation::Inspect, object.clone())(e)),
    }
}

pub(crate) async fn create_stream(
    js: &Context,
    name: &str,
    config: &Map<String, Value>,
    object: &Object,
) -> Result<(), StreamsError> {
    call(js, format!("STREAM.CREATE.{name}"), config)
        .await?
        .map(drop)
        .map_err(api_error(Operation::Create, object.clone()))
}

pub(crate) async fn update_stream(
    js: &Context,
    name: &str,
    config: &Map<String, Value>,
    object: &Object,
) -> Result<(), StreamsError> {
    call(js, format!("STREAM.UPDATE.{name}"), config)
        .await?
        .map(drop)
        .map_err(api_error(Operation::Update, object.clone()))
}

/// The consumer's current config, `None` when it (or its stream) does not exist.
pub(crate) async fn consumer_config(
    js: &Context,
    stream: &str,
    name: &str,
    object: &Object,
) -> Result<Option<Map<String, Value>>, StreamsError> {
    let subject = format!("CONSUMER.INFO.{stream}.{name}");
    match call(js, subject.clone(), &json!({})).await? {
        Ok(response) => config_of(&subject, response).map(Some),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(api_error(Operation::Inspect, object.clone())(e)),
    }
}

/// Creates (`update == false`) or updates a durable consumer. The `action` field makes
/// the server refuse to create over an existing consumer or update a missing one.
pub(crate) async fn put_consumer(
    js: &Context,
    stream: &str,
    name: &str,
    config: &Map<String, Value>,
    update: bool,
    object: &Object,
) -> Result<(), StreamsError> {
    let (action, operation) = if update {
        ("update", Operation::Update)
    } else {
        ("create", Operation::Create)
    };
    let body = json!({ "stream_name": stream, "config": config, "action": action });
    call(js, format!("CONSUMER.CREATE.{stream}.{name}"), &body)
        .await?
        .map(drop)
        .map_err(api_error(operation, object.clone()))
}
