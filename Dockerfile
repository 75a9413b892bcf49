# tenure: build the release binary, then run it as an unprivileged user on a
# slim Debian. See docs/operations.md ("Docker compose").

FROM rust:1-bookworm AS builder
# josekit links OpenSSL: headers and pkg-config (already in rust:1-bookworm;
# installed explicitly so the build does not depend on that).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY . .
# -p tenure: the server only (the load generator, bench/, is not shipped).
RUN cargo build --release -p tenure

FROM debian:bookworm-slim
# libssl3: the binary links libssl.so.3 and libcrypto.so.3 at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid so volume ownership is predictable across rebuilds and hosts.
# keys/ is 0700: tenure keeps it so and writes each private key with mode 0600.
RUN groupadd --system --gid 10001 tenure \
 && useradd --system --uid 10001 --gid tenure --home-dir /var/lib/tenure --no-create-home \
      --shell /usr/sbin/nologin tenure \
 && install -d -o tenure -g tenure -m 0750 /var/lib/tenure /var/lib/tenure/data \
 && install -d -o tenure -g tenure -m 0700 /var/lib/tenure/keys \
 && install -d -m 0755 /etc/tenure
COPY --from=builder /build/target/release/tenure /usr/local/bin/tenure

WORKDIR /var/lib/tenure
USER tenure:tenure
ENV TENURE_LISTEN=0.0.0.0:8080 \
    TENURE_DATA_DIR=/var/lib/tenure/data \
    TENURE_KEYS_DIR=/var/lib/tenure/keys \
    TENURE_CONFIG=/etc/tenure/tenure.toml
# TENURE_CONFIG makes the file mandatory: mount one at /etc/tenure/tenure.toml
# (docker-compose.yml mounts deploy/tenure.toml), or tenure exits with code 2.
EXPOSE 8080
# tenure handles SIGTERM itself: it drains requests and flushes the store.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tenure"]
CMD ["serve"]
