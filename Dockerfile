# Multi-stage build of the scanq binaries (API, worker and the `scanq` CLI).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins -p scanq-api -p scanq-worker -p scanq-cli

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends nmap nftables ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /nonexistent --shell /usr/sbin/nologin scanq \
 && useradd --system --uid 10002 --home /nonexistent --shell /usr/sbin/nologin scanq-tool
COPY --from=build /src/target/release/scanq-api /src/target/release/scanq-worker /src/target/release/scanq /usr/local/bin/
USER scanq
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["scanq-api"]
