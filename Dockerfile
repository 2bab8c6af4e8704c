# syntax=docker/dockerfile:1
# The Quanchenglian services in one image: `qcl serve` (the API, the default command) and
# `qcl worker` (release relayer, indexer, checkpoints, webhooks, clocks); deploy/compose.yaml runs
# both beside PostgreSQL and a chain. Build from the repository root:
#
#   docker build -t quanchenglian .                  # the services (last stage)
#   docker build -t quanchenglian-anvil --target anvil .   # a development chain node (compose: chain)
#
# Python packages are pinned by constraints.txt, npm packages by package-lock.json. The contracts
# are compiled once here (npm solc 0.8.30, contracts/compiler.json); at run time the compiler cache
# in /app/build is used and nothing is compiled or fetched.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# ---- 1. npm packages: the npm solc, OpenZeppelin sources, the pages' vendor files, anvil ----------
FROM ${NODE_IMAGE} AS npm
WORKDIR /src
COPY package.json package-lock.json ./
# no install scripts: nothing here needs them (anvil's binary comes in its platform package)
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error
COPY scripts/build_pages.mjs scripts/build_pages.mjs
COPY api/static api/static
RUN node scripts/build_pages.mjs \
 && cp node_modules/@foundry-rs/anvil-linux-*/bin/anvil /usr/local/bin/anvil

# ---- 2. the Python environment and the compiled contracts ------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/qcl
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY chain_client chain_client
COPY audit audit
COPY db db
COPY vault vault
COPY api api
COPY cli cli
COPY qcl_client qcl_client
COPY --from=npm /src/api/static/vendor api/static/vendor
RUN /opt/qcl/bin/pip install -c constraints.txt . \
 && /opt/qcl/bin/pip check
COPY contracts contracts
COPY --from=npm /usr/local/bin/node /usr/local/bin/node
COPY --from=npm /src/node_modules node_modules
# the compiler's cache keyed by the source hash: what `qcl serve`/`qcl worker` read at start
RUN QCL_PROJECT_ROOT=/app QCL_BUILD_DIR=/app/build QCL_SOLC=npm /opt/qcl/bin/qcl compile

# ---- a development chain node (anvil, pinned by package-lock.json): `--target anvil` ----------------
FROM debian:bookworm-slim AS anvil
COPY --from=npm /usr/local/bin/anvil /usr/local/bin/anvil
RUN useradd --system --uid 10002 --home-dir /data --create-home --shell /usr/sbin/nologin chain
USER chain
WORKDIR /data
EXPOSE 8545
ENTRYPOINT ["anvil"]
CMD ["--host", "0.0.0.0", "--port", "8545"]

# ---- 3. the services ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="quanchenglian" \
      org.opencontainers.image.description="Quanchenglian (泉城链) consent ledger: qcl serve, qcl worker" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/qcl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    QCL_PROJECT_ROOT=/app \
    QCL_BUILD_DIR=/app/build \
    QCL_SOLC=npm \
    QCL_DATA_DIR=/var/lib/qcl \
    QCL_API_HOST=0.0.0.0 \
    QCL_API_PORT=8000
RUN groupadd --system --gid 10001 qcl \
 && useradd --system --uid 10001 --gid qcl --home-dir /var/lib/qcl --shell /usr/sbin/nologin qcl \
 && install -d -o qcl -g qcl -m 0700 /var/lib/qcl
COPY --from=build /opt/qcl /opt/qcl
COPY --from=build /app/contracts /app/contracts
COPY --from=build /app/node_modules/@openzeppelin/contracts /app/node_modules/@openzeppelin/contracts
COPY --from=build /app/build/contracts /app/build/contracts
USER qcl
WORKDIR /var/lib/qcl
VOLUME ["/var/lib/qcl"]
EXPOSE 8000
# GET /health answers 200 when the API and its chain answer (503 chain_unavailable otherwise)
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('QCL_API_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["qcl"]
CMD ["serve"]
