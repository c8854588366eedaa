# certpush-operator image: built on Debian bookworm, run on distroless cc-debian12 (the same glibc
# 2.36, plus libgcc_s and CA certificates; no shell, no package manager) as the unprivileged
# `nonroot` user 65532, which the Helm chart's securityContext expects.
#
#   make image IMAGE=certpush-operator:0.1.0     (docker build, or podman / buildah)
#   docker run --rm certpush-operator:0.1.0 crd
#
# No `# syntax=` line: it would make BuildKit pull a frontend image; the built-in frontend builds this file.
#
# tests/helm/test_image.py checks this file against the chart and runs the release binary it builds.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# Dependencies first, so editing the operator's source does not rebuild them: build a stub crate
# with the real manifests, then the real sources.
# scm-sim/ is the workspace's other member: its manifest resolves the workspace; nothing of it is built.
COPY Cargo.toml Cargo.lock ./
COPY scm-sim/Cargo.toml ./scm-sim/
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin certpush-operator \
    && rm -rf src
COPY src ./src
# Touch so cargo sees the real sources as newer than the stub build.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin certpush-operator \
    && install -D -m 0755 target/release/certpush-operator /out/certpush-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/certpush-operator /certpush-operator
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
# /healthz, /readyz and /metrics.
EXPOSE 8080
ENTRYPOINT ["/certpush-operator"]
CMD ["run"]
