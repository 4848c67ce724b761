# Helio: multi-stage build of the single `helio` binary.
#   docker build -t helio .
#   docker run -p 127.0.0.1:3000:3000 -p 127.0.0.1:3100:3100 \
#     -v $PWD/helio.yaml:/config/helio.yaml:ro -v helio-data:/data helio
# In the container, helio.yaml must bind 0.0.0.0 (listen.host, dashboard.host) and keep
# its audit database under /data (audit.path: /data/helio-audit.db).

FROM rust:1.95-slim-bookworm AS build
# The policy stages are WebAssembly components, built by host/build.rs.
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY host ./host
COPY crates ./crates
COPY wit ./wit
COPY plugins ./plugins
COPY examples/demo ./examples/demo
RUN cargo build --release --locked -p helio --bin helio \
 && install -D target/release/helio /out/helio

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin helio \
 && mkdir -p /config /data && chown helio:helio /data
COPY --from=build /out/helio /usr/local/bin/helio
USER helio
WORKDIR /data
VOLUME ["/config", "/data"]
EXPOSE 3000 3100
# No curl in the slim image: ask /healthz over bash's /dev/tcp.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3000 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '\"ok\"' <&3"]
ENTRYPOINT ["tini", "--", "helio"]
CMD ["start", "-c", "/config/helio.yaml"]
