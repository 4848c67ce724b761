# Helio's container image: one static binary and CA certificates, nothing else.
#
#   docker build -t helio .
#   docker run --rm -p 127.0.0.1:3000:3000 -p 127.0.0.1:3100:3100 \
#     -e HELIO_DASHBOARD_SECRET="$(openssl rand -hex 32)" \
#     -v "$PWD/helio.yaml:/config/helio.yaml:ro" -v helio-data:/data helio
#
# In the container, helio.yaml binds 0.0.0.0 (listen.host, dashboard.host,
# sdk.host) and keeps its database under /data (audit.path: /data/helio.db).
# See docs/deployment.md. scripts/image.sh builds the runtime stage from a
# locally built binary (`--build-context build=…`), which is how the tests
# build and run it.

# --- build: a static (musl) binary -------------------------------------------
FROM docker.io/library/rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl wasm32-wasip2 \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY host ./host
COPY crates ./crates
COPY wit ./wit
COPY plugins ./plugins
COPY examples/demo ./examples/demo
RUN CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --locked --profile image --target x86_64-unknown-linux-musl -p helio --bin helio \
 && mkdir -p /out/config /out/data /out/tmp /out/etc/ssl/certs \
 && install -m 0755 target/x86_64-unknown-linux-musl/image/helio /out/helio \
 && install -m 0644 /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt \
 && chmod 1777 /out/tmp \
 && chown 65532:65532 /out/data

# --- runtime: from scratch ------------------------------------------------------
FROM scratch AS runtime
COPY --from=build /out/ /
# No shell, no package manager, no user database: a numeric non-root user.
USER 65532:65532
WORKDIR /data
ENV HELIO_CACHE_DIR=/data/.cache \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
VOLUME ["/config", "/data"]
# MCP, operator API and dashboard, SDK sideband.
EXPOSE 3000 3100 3200
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/helio", "healthcheck"]
# Helio handles SIGTERM itself (it is PID 1): in-flight calls finish, the
# audit trail is flushed.
ENTRYPOINT ["/helio"]
CMD ["start", "-c", "/config/helio.yaml"]
