# cowblk container image: cowblkd (the server) and cowblk (the CLI).
# docs/container.md says how to build and run it, with podman or docker, and
# how to build it on a machine without a registry (scripts/container-test).
#
#   podman build --format docker --build-arg COWBLK_COMMIT=$(git rev-parse --short=12 HEAD) -t cowblk .
#   docker build --build-arg COWBLK_COMMIT=$(git rev-parse --short=12 HEAD) -t cowblk .
#
# The base images are named in full (docker.io/library/...) so that podman
# never asks which registry a short name means.

# ---- builder: the project's own CMake build, products only ----------------
FROM docker.io/library/debian:bookworm AS builder

# The -dev packages of the Makefile's DEB_PACKAGES that the products need
# (no test, fuzz or benchmark peers).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libabsl-dev libcli11-dev nlohmann-json3-dev \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto \
      liburing-dev prometheus-cpp-dev \
 && rm -rf /var/lib/apt/lists/*

# .dockerignore lets in only what the build reads.
COPY . /src

# The build has no .git: the commit for --version and cowblk_build_info comes from here.
ARG COWBLK_COMMIT=unknown
# Parallel compile jobs.
ARG JOBS=2
# COWBLK_TESTS=OFF and COWBLK_BENCH=OFF: no tests/ (GoogleTest) and no
# benchmarks (libnbd); the two targets leave cowblk-img unbuilt. The build directory is a cache mount
# (podman/buildah and BuildKit): a rebuild after a change, or for another
# commit label, compiles only what changed. The binaries leave it for /out.
RUN --mount=type=cache,id=cowblk-build,target=/build,sharing=locked \
    cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DCOWBLK_TESTS=OFF -DCOWBLK_BENCH=OFF -DCOWBLK_MAN=OFF \
      -DCOWBLK_COMMIT="${COWBLK_COMMIT}" \
 && cmake --build /build -j"${JOBS}" --target cowblkd cowblk \
 && install -d /out \
 && install -s -m 0755 /build/bin/cowblkd /build/bin/cowblk /out/

# ---- csi: the CSI plugin image (deploy/kubernetes/csi, docs/csi.md) --------
# Built only on request: podman build --target csi -t cowblk-csi .
# cowblk-csi and the cowblk CLI (the node plugin runs `cowblk nbd`), with
# the tools the node side of docs/attach.md needs: nbdfuse, losetup, blkid,
# mount, mkfs.ext4 and mkfs.xfs. Runs as root on nodes (mounts, loop
# devices); the controller Deployment runs it as uid 10001.
FROM builder AS csi-builder
ARG JOBS=2
RUN --mount=type=cache,id=cowblk-build,target=/build,sharing=locked \
    cmake --build /build -j"${JOBS}" --target cowblk-csi cowblk \
 && install -d /out-csi \
 && install -s -m 0755 /build/bin/cowblk-csi /build/bin/cowblk /out-csi/

FROM docker.io/library/debian:bookworm-slim AS csi
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libabsl20220623 libgrpc++1.51 libprotobuf32 liburing2 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 \
      util-linux mount e2fsprogs xfsprogs libnbd-bin fuse3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY --from=csi-builder /out-csi/cowblk-csi /out-csi/cowblk /usr/local/bin/
ENTRYPOINT ["cowblk-csi"]

# ---- runtime: the shared libraries, the two binaries, a non-root user ------
# The last stage: what `build` makes without --target.
FROM docker.io/library/debian:bookworm-slim

# The libraries cowblkd and cowblk link (ldd, then dpkg -S); apt brings the
# rest (libgrpc29, re2, c-ares, OpenSSL, civetweb).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libabsl20220623 libgrpc++1.51 libprotobuf32 liburing2 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# A fixed numeric uid/gid, so that `runAsNonRoot` can check it and a bind
# mount can be chown'd to it ahead of time.
RUN groupadd --system --gid 10001 cowblk \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin cowblk \
 && install -d -o 10001 -g 10001 -m 0750 /data

COPY --from=builder /out/cowblkd /out/cowblk /usr/local/bin/

# cowblkd reads each flag from its COWBLK_* variable (docs/cowblkd.md); a
# flag given to `run` wins. Volume headers hold absolute backing paths: keep
# the data directory at /data.
ENV COWBLK_DATA_DIR=/data \
    COWBLK_LISTEN=0.0.0.0:7800 \
    COWBLK_HEALTH_LISTEN=0.0.0.0:7801 \
    COWBLK_METRICS_LISTEN=0.0.0.0:9780 \
    COWBLK_ENGINE_THREADS=1 \
    COWBLK_DURABILITY=deferred \
    COWBLK_CACHE=writeback \
    COWBLK_DRAIN_SECONDS=10 \
    COWBLK_LOG_LEVEL=info

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# gRPC (TLS when configured), plaintext health only, Prometheus /metrics.
EXPOSE 7800 7801 9780

# The health port, with the CLI; the server's COWBLK_TLS_* and
# COWBLK_TOKEN_FILE mean other things to the CLI, so they are dropped.
# (Kept by `podman build --format docker` and docker; podman runs it on its
# timer only where systemd is, and always on `podman healthcheck run`.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["sh", "-c", "exec env -u COWBLK_TLS -u COWBLK_TLS_CA -u COWBLK_TLS_CERT -u COWBLK_TLS_KEY -u COWBLK_TOKEN_FILE cowblk --server \"127.0.0.1:${COWBLK_HEALTH_LISTEN##*:}\" --timeout 3 health"]

# On SIGTERM cowblkd stops taking calls, gives in-flight ones
# COWBLK_DRAIN_SECONDS, flushes every volume and exits 0: give `stop` more
# time than that (podman stop -t 30, docker stop -t 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["cowblkd"]
