# armlet in a container: a build stage, a small non-root runtime, and an optional client
# stage with the pinned az CLI for running the walkthrough and demos against it.
#
#   docker compose up -d armlet                 # armlet on :8443 (HTTPS) and :8080 (HTTP)
#   docker compose --profile client run --rm client
#
# ---- build ----
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY fixtures ./fixtures
COPY openapi ./openapi
COPY COMPATIBILITY.md ./
RUN cargo build --release --locked --bin armlet

# ---- runtime ----
FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin armlet \
    && mkdir -p /data && chown armlet /data
COPY --from=build /src/target/release/armlet /usr/local/bin/armlet
USER armlet
VOLUME ["/data"]
EXPOSE 8443 8080
ENV ARMLET_BIND=0.0.0.0 \
    ARMLET_DATA_DIR=/data \
    ARMLET_URL=http://127.0.0.1:8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=5 \
    CMD ["armlet", "health", "--url", "http://127.0.0.1:8080"]
ENTRYPOINT ["armlet"]
CMD ["serve"]

# ---- client: az 2.91 and the armlet CLI, for the walkthrough and the demos ----
FROM python:3.12-slim AS client
RUN pip install --no-cache-dir azure-cli==2.91.0 \
    && apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/armlet /usr/local/bin/armlet
COPY examples /examples
WORKDIR /examples
ENV ARMLET_URL=http://127.0.0.1:8080
CMD ["bash", "-c", "eval \"$(armlet env)\" && az login --service-principal -u \"$ARMLET_CLIENT_ID\" -p \"$ARMLET_CLIENT_SECRET\" --tenant \"$ARMLET_TENANT_ID\" -o none && bash migrate-sp-to-mi.sh"]
