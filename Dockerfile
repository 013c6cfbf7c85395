# syntax=docker/dockerfile:1
# Build: docker build -t switchboard .
# Run:   docker run -p 8080:8080 -e WHATSAPP_ACCESS_TOKEN=... switchboard

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY actors actors
COPY adapters adapters
COPY load-tests load-tests
COPY src src
RUN cargo build --release --locked -p switchboard \
    && strip target/release/switchboard

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin switchboard
WORKDIR /app
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
COPY config config
# Numeric, so that runAsNonRoot (Kubernetes) can check it is not root.
USER 10001:10001
ENV SWITCHBOARD__SERVER__BIND=0.0.0.0:8080 \
    SWITCHBOARD__SERVER__LOG_FORMAT=json
EXPOSE 8080
# No curl in the slim image: bash's /dev/tcp is enough for a GET.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]
