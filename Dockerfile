# Multi-stage build of the scanq binaries (API, worker and the `scanq` CLI).
# The image runs as the non-root user `scanq` (the API). The worker's container runs it as root
# with a short list of capabilities instead, through `scanq-worker-init`, so that each tool run is
# confined (docker-compose.yml, deploy/k8s/worker.yaml, docs/sandbox.md "Deployment"): nftables
# for the per-run egress filter, iproute2 for raw scans' per-run namespaces, nmap, tini as PID 1.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins -p scanq-api -p scanq-worker -p scanq-cli

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends nmap nftables iproute2 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /nonexistent --shell /usr/sbin/nologin scanq \
 && useradd --system --uid 10002 --home /nonexistent --shell /usr/sbin/nologin scanq-tool
COPY --from=build /src/target/release/scanq-api /src/target/release/scanq-worker /src/target/release/scanq /usr/local/bin/
COPY --from=build /src/deploy/worker-init.sh /usr/local/bin/scanq-worker-init
USER scanq
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["scanq-api"]
