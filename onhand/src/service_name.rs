//! The OpenTelemetry `service.name` of each workload: `onhand-<component>`, and a
//! projector's (or its DLQ tool's) channel after it, e.g. `onhand-projector-shopify`, so
//! one trace shows which process did what. `OTEL_SERVICE_NAME` overrides it (see
//! `onhand_common::telemetry::init`).

use crate::{DlqCommand, ProjectorCommand, Top};

/// The service name of the workload `command` runs.
pub(crate) fn service_name(command: &Top) -> String {
    let component = match command {
        Top::Ledger { .. } => "ledger",
        Top::Streams { .. } => "streams",
        Top::Events { .. } => "events",
        Top::Ingest { .. } => "ingest",
        Top::Sandbox { .. } => "sandbox",
        Top::Projector {
            command: Some(ProjectorCommand::Rebuild { target, .. }),
            ..
        } => return format!("onhand-projector-{}", target.channel),
        Top::Projector {
            channel: Some(channel),
            ..
        } => return format!("onhand-projector-{channel}"),
        Top::Projector { .. } => "projector",
        Top::Dlq {
            command: DlqCommand::List { target, .. } | DlqCommand::Replay { target },
        } => return format!("onhand-dlq-{}", target.channel),
        Top::Explain { .. } => "explain",
        Top::Storefront { .. } => "storefront",
        Top::Simulate { .. } => "simulator",
        Top::Dashboard(_) => "top",
        Top::Reconcile(_) => "reconciler",
    };
    format!("onhand-{component}")
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::Cli;

    fn name(args: &[&str]) -> String {
        let cli = Cli::try_parse_from(std::iter::once("onhand").chain(args.iter().copied()))
            .expect("parses");
        service_name(&cli.command)
    }

    #[test]
    fn every_workload_has_its_own_name() {
        assert_eq!(name(&["ledger"]), "onhand-ledger");
        assert_eq!(name(&["ledger", "migrate"]), "onhand-ledger");
        assert_eq!(
            name(&["projector", "--channel", "shopify"]),
            "onhand-projector-shopify"
        );
        assert_eq!(
            name(&["projector", "rebuild", "--channel", "ebay"]),
            "onhand-projector-ebay"
        );
        assert_eq!(
            name(&["dlq", "replay", "--channel", "amazon"]),
            "onhand-dlq-amazon"
        );
        assert_eq!(name(&["sandbox"]), "onhand-sandbox");
        assert_eq!(name(&["storefront"]), "onhand-storefront");
        assert_eq!(
            name(&["reconcile", "--channel", "shopify"]),
            "onhand-reconciler"
        );
        assert_eq!(name(&["streams", "apply", "--dry-run"]), "onhand-streams");
    }
}
