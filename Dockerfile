# syntax=docker/dockerfile:1
#
# One image for every role: `docker run IMAGE start --role api|worker|sweeper|all`.
#
# The image runs the TypeScript sources through tsx, exactly as `npm start` and the tests do, rather
# than a `tsc` build in dist/: the sources are what the test suite exercises, and paths such as the
# migrations directory are resolved relative to src/. tsx is therefore a runtime dependency (its
# esbuild binary ships inside an npm package, so nothing is compiled here), and the transpile costs a
# few hundred milliseconds per process start, once.

# --- deps: production node_modules only -----------------------------------------------------------
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: sharp's libvips and esbuild come as prebuilt platform packages (STACK.md).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
 && npm cache clean --force

# --- console: the web console's static files (Vite, a devDependency, so built in its own stage) ------
FROM node:24-slim AS console
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
COPY console ./console
RUN node node_modules/vite/bin/vite.js build --config console/vite.config.ts --logLevel warn

# --- runtime ----------------------------------------------------------------------------------------
FROM node:24-slim AS runtime
# Debian's ffmpeg (ffmpeg + ffprobe); tini reaps ffmpeg children and forwards SIGTERM to node.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg libheif-examples tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# HEALTHCHECK_PORT: the port the healthcheck asks, the API's for api/all, METRICS_PORT for
# worker/sweeper (compose sets it). The MALLOC_* values: glibc otherwise hands every cipher buffer
# back to the OS and AES-GCM runs at half speed; MALLOC_ARENA_MAX lets sharp use more than one
# thread (both measured in STACK.md).
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    DATA_DIR=/data \
    METRICS_PORT=9464 \
    HEALTHCHECK_PORT=8080 \
    MALLOC_MMAP_THRESHOLD_=67108864 \
    MALLOC_TRIM_THRESHOLD_=268435456 \
    MALLOC_TOP_PAD_=67108864 \
    MALLOC_ARENA_MAX=2

WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY --from=console /app/console/dist ./console/dist

# The stock `node` user (uid 1000) owns nothing but the data directory.
RUN mkdir -p /data && chown node:node /data
USER node

EXPOSE 8080 9464
VOLUME ["/data"]

HEALTHCHECK --interval=15s --timeout=5s --start-period=40s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.HEALTHCHECK_PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Graceful stop: SIGTERM drains within SHUTDOWN_TIMEOUT_SECONDS (25 s by default); give the
# container at least 30 s before SIGKILL (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/mediaflow.js"]
CMD ["start", "--role", "all"]
