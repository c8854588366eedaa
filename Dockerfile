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

# Both base images are pinned by digest, so a rebuild uses the exact bytes reviewed, not whatever a tag points to
# today. To update one: read the tag's current digest (`docker buildx imagetools inspect <image>:<tag>` or
# `crane digest <image>:<tag>`), replace the sha256 below (and RUST_VERSION with the builder's tag), rebuild and
# run `bash tests/helm/run.sh`.
FROM docker.io/library/rust:${RUST_VERSION}-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS builder
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
# The commit certpush_build_info reports (the build context has no .git): `--build-arg CERTPUSH_COMMIT=...`.
ARG CERTPUSH_COMMIT=unknown
COPY build.rs ./
COPY src ./src
# Touch so cargo sees the real sources as newer than the stub build.
RUN touch src/main.rs src/lib.rs \
    && CERTPUSH_COMMIT="${CERTPUSH_COMMIT}" cargo build --release --locked --bin certpush-operator \
    && install -D -m 0755 target/release/certpush-operator /out/certpush-operator

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
COPY --from=builder /out/certpush-operator /certpush-operator
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
# /healthz, /readyz and /metrics.
EXPOSE 8080
ENTRYPOINT ["/certpush-operator"]
CMD ["run"]
