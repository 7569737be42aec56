# points-engine: build with `docker build -t points-engine .`, run with
#   docker run -p 8080:8080 -v points-data:/var/lib/points points-engine
# (see the README's "Deploying").

FROM rust:1-slim-bookworm AS builder
WORKDIR /src

# Dependencies first: the manifests and stub sources build every dependency into a layer that
# is reused until Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock build.rs ./
COPY actors/Cargo.toml actors/
COPY loadtest/Cargo.toml loadtest/
RUN mkdir -p src actors/src loadtest/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs actors/src/lib.rs \
    && echo 'fn main() {}' > loadtest/src/main.rs \
    && cargo build --release --locked --bin points-engine \
    && rm -rf src actors/src loadtest/src

# The sources and the migrations the binary embeds (`sqlx::migrate!`). The entry points are
# touched so Cargo rebuilds them rather than trusting the stubs' timestamps.
COPY src src
COPY actors/src actors/src
COPY loadtest/src loadtest/src
COPY migrations migrations
RUN touch src/main.rs src/lib.rs actors/src/lib.rs \
    && cargo build --release --locked --bin points-engine \
    && cp target/release/points-engine /usr/local/bin/points-engine

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system points \
    && useradd --system --gid points --home-dir /var/lib/points --shell /usr/sbin/nologin points \
    && mkdir -p /var/lib/points/uploads \
    && chown -R points:points /var/lib/points
COPY --from=builder /usr/local/bin/points-engine /usr/local/bin/points-engine

ENV POINTS_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/points/points.db \
    POINTS_UPLOAD_DIR=/var/lib/points/uploads
USER points
WORKDIR /var/lib/points
VOLUME /var/lib/points
EXPOSE 8080
# SIGTERM stops gracefully: in-flight requests finish (up to 30 s), then the ledger drains.
# Give `docker stop` time for it (`--time 45`). No HEALTHCHECK: the image has no HTTP client;
# probe `GET /healthz` or `GET /readyz` from outside.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/points-engine"]
CMD ["serve"]
