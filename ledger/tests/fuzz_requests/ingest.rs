//! JetStream ingest decoding: `Command::from_ingest(<command>, body, settings)` is what the
//! ingest consumer makes of `ingest.<source>.<command>` and its payload before anything
//! touches the database. Whatever the name and body: no panic; a rejection is a 4xx-class
//! error with a code and a message (it becomes the DLQ record's reason), naming the field
//! the generator broke; an accepted command needs the scope its name implies.

use std::collections::BTreeSet;

use onhand_ledger::commands::Settings;
use onhand_ledger::{Command as LedgerCommand, LedgerError};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::bodies::{self, Body, Command, Expect, Via};
use crate::config;

pub fn settings() -> Settings {
    Settings {
        warehouses: BTreeSet::from(["ams-1".to_owned(), "nyc-1".to_owned()]),
        cart_ttl_secs: 300,
        checkout_ttl_secs: 1800,
        max_ttl_secs: 86_400,
    }
}

fn is_clear(err: &LedgerError) -> Result<(), TestCaseError> {
    prop_assert!(
        err.status().is_client_error(),
        "{err:?} is not the sender's fault"
    );
    prop_assert!(
        !err.code().is_empty() && !err.to_string().trim().is_empty(),
        "{err:?}"
    );
    Ok(())
}

fn ingest_body() -> impl Strategy<Value = Body> {
    prop::sample::select(Command::ALL.to_vec()).prop_flat_map(|c| bodies::body(c, Via::Ingest))
}

#[test]
fn the_templates_decode() {
    for command in Command::ALL {
        let body = bodies::template(command, Via::Ingest, 7).to_string();
        let decoded =
            LedgerCommand::from_ingest(command.ingest_name(), body.as_bytes(), &settings());
        assert!(decoded.is_ok(), "{command:?}: {decoded:?}");
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn ingest_bodies_decode_or_are_rejected_naming_the_field(body in ingest_body()) {
        let name = body.command.ingest_name();
        match (LedgerCommand::from_ingest(name, &body.bytes, &settings()), &body.expect) {
            (Ok(command), Expect::Any) => prop_assert_eq!(command.scope(), body.command.scope()),
            (Ok(_), expect) => prop_assert!(false, "{}: accepted, expected {:?}", body.what, expect),
            (Err(err), expect) => {
                is_clear(&err)?;
                if let Expect::Field(field) = expect {
                    prop_assert_eq!(err.field(), Some(field.as_str()), "{}: {}", body.what, err);
                }
            }
        }
    }

    #[test]
    fn unknown_ingest_commands_are_rejected_naming_the_subject(
        name in prop_oneof![".{0,20}", "[a-z_]{1,24}", Just("Receipt".to_owned()), Just("receipt ".to_owned())],
        body in bodies::json_value(),
    ) {
        prop_assume!(Command::ALL.iter().all(|c| c.ingest_name() != name));
        let err = LedgerCommand::from_ingest(&name, body.to_string().as_bytes(), &settings())
            .expect_err("an unknown command");
        is_clear(&err)?;
        prop_assert_eq!(err.field(), Some("subject"));
        prop_assert!(err.to_string().contains(&format!("{name:?}")), "{err}");
    }
}
