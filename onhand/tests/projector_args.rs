//! `onhand projector` parses the same with NATS_URL in the environment (as in every pod) as
//! without it: the live projector's arguments must not swallow `rebuild`'s.

use std::process::{Command, Output};

fn onhand(args: &[&str], nats_url: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_onhand"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("ONHAND_CHANNEL_FILE")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    match nats_url {
        // Nothing listens on port 1: any command that gets as far as NATS fails there.
        Some(url) => command.env("NATS_URL", url),
        None => command.env_remove("NATS_URL"),
    };
    command.output().expect("run onhand")
}

#[test]
fn rebuild_parses_with_nats_url_set_or_not() {
    for nats_url in [None, Some("nats://127.0.0.1:1")] {
        let out = onhand(
            &[
                "projector",
                "rebuild",
                "--channel",
                "nochannel",
                "--dry-run",
            ],
            nats_url,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            !stderr.contains("required argument"),
            "NATS_URL={nats_url:?}: clap refused the arguments: {stderr}"
        );
        // It got past parsing to the channel's settings, which do not exist.
        assert!(
            stderr.contains("configuration of channel nochannel"),
            "NATS_URL={nats_url:?}: {stderr}"
        );
    }
}

#[test]
fn the_live_projector_still_needs_a_channel() {
    for nats_url in [None, Some("nats://127.0.0.1:1")] {
        let out = onhand(&["projector"], nats_url);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("--channel is required"), "{stderr}");
    }
}
