# syntax=docker/dockerfile:1
# One image, one binary: every onhand workload runs `onhand <subcommand>` (k8s/).
#
#   docker build -t onhand:dev .
#
# Build: the workspace's pinned toolchain floor is 1.94 (Cargo.toml rust-version); the
# image uses the toolchain the project is developed with. No system libraries are needed
# (rustls with ring, no OpenSSL, protoc or cmake: shared/DEPENDENCIES.md).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p onhand \
    && install -D -m 0755 target/release/onhand /out/onhand

# Runtime: Debian slim of the same release as the builder (same glibc), CA certificates
# for the channel APIs' TLS (rustls verifies against the system's roots), and `sleep` for
# the toolbox pods. Runs as 65532, the user the manifests require (runAsNonRoot).
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 onhand \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin onhand
COPY --from=build /out/onhand /usr/local/bin/onhand
USER 65532:65532
# ledger 8080, storefront 8090, projector /metrics 9090, sandbox 8070 (dev).
EXPOSE 8080 8090 9090
ENTRYPOINT ["/usr/local/bin/onhand"]
CMD ["--help"]
