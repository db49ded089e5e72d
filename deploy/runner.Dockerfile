# The runner as a container (README, "Deploying it"). Build from the repository root:
#   docker build -f deploy/runner.Dockerfile -t lora-edge-runner .
# Run it with the model mounted at /models/base and this host's settings (EDGE_URL, ADVERTISE_URL, FLEET_TOKEN,
# RUNNER_TOKEN: deploy/runner.env.example) in the environment:
#   docker run -d --name runner -p 8000:8000 -v /srv/models/llama:/models/base:ro \
#     --env-file /etc/lora-edge/runner.env --stop-timeout 300 lora-edge-runner [more runner flags]
# Runner flags after the image name are appended (CMD is empty). --stop-timeout is the unit's TimeoutStopSec.
# test/unit/deploy-recipes-parse-with-the-runner-cli.test.ts parses what ENTRYPOINT runs with the runner's
# own parseConfig; test/e2e/deploy-recipes-serve-join-and-drain-as-their-managers-run-them.test.ts runs
# ENTRYPOINT, HEALTHCHECK and STOPSIGNAL against a real runner and edge (there is no Docker daemon in CI).

# The Node the project pins (package.json's "node" dependency): it runs the TypeScript sources as they are.
# This names a tag of the official image; pin its digest too (node:22.23.3-bookworm-slim@sha256:…, from
# `docker buildx imagetools inspect node:22.23.3-bookworm-slim`) once you have pulled and checked it.
FROM node:22.23.3-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production
# The port the runner listens on inside the container (EXPOSE below); --env-file may set it like the unit's.
ENV PORT=8000

# Dependencies first, so a source change reuses this layer. --omit=dev: the runner needs none of the test or
# Worker tooling. --ignore-scripts: the image brings its own Node (the "node" package's install is not
# needed), and onnxruntime-node's bundled CPU binaries are what the runner uses (its install script would
# only fetch CUDA libraries; package.json's allowScripts keeps it off locally too).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# The runner's code and what it imports (docs/architecture.md#layers: gpu-runner imports src/ and cli/).
COPY src/ src/
COPY cli/ cli/
COPY gpu-runner/ gpu-runner/

USER node
EXPOSE 8000
# The Hugging Face model directory the runner serves, mounted read-only.
VOLUME ["/models/base"]

# Liveness: /health answers 200 while the process serves, draining included (readiness is /ready, which an
# orchestrator such as Kubernetes reads; Docker has one health state only). It sends RUNNER_TOKEN when set,
# so the check also works with --public-probes false.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.PORT+'/health',{headers:process.env.RUNNER_TOKEN?{authorization:'Bearer '+process.env.RUNNER_TOKEN}:{}}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# SIGTERM drains: no new requests (503, /ready fails), running ones finish, the member leaves, exit 0. Give
# `docker stop -t` / --stop-timeout (Kubernetes: terminationGracePeriodSeconds) your longest generation.
STOPSIGNAL SIGTERM

# The shell only expands EDGE_URL, ADVERTISE_URL and PORT, then `exec` replaces it with Node, which is then
# PID 1, so SIGTERM reaches the runner itself; a variable left unset stops it at once (exit 2), naming it.
# The fleet key and the edge's RUNNER_TOKEN come from the environment (FLEET_TOKEN, RUNNER_TOKEN), never argv.
ENTRYPOINT ["/bin/sh", "-c", "exec node gpu-runner/serving/main.ts --model /models/base --host 0.0.0.0 --port \"$PORT\" --join \"${EDGE_URL:?set it to the URL of the edge}\" --advertise-url \"${ADVERTISE_URL:?set it to the URL the edge reaches this runner at}\" \"$@\"", "runner"]
# More runner flags (--capacity 2, --max-loras 16) go after the image name, or here.
CMD []
