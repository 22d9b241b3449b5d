//! Hello world on `lambda_runtime`: the floor that `make bench` compares cutoff's cold
//! starts with. Same runtime crate, same tokio features, same release profile as the
//! functions in `functions/`, and nothing else: no configuration, no SDK, no logging.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(json!({ "hello": event.payload }))
    }))
    .await
}
