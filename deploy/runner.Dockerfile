# The runner as a container (README, "Deploying it"). Build from the repository root:
#   docker build -f deploy/runner.Dockerfile -t lora-edge-runner .
# Run it with the model mounted at /models/base, the secrets in the environment and this deployment's edge:
#   docker run -d --name runner -p 8000:8000 -v /srv/models/llama:/models/base:ro \
#     -e FLEET_TOKEN -e RUNNER_TOKEN --stop-timeout 300 lora-edge-runner \
#     --join https://lora-edge.<your-subdomain>.workers.dev --advertise-url https://runner-1.example.com
# The arguments after the image name replace CMD; test/unit/deploy-recipes-parse-with-the-runner-cli.test.ts
# parses ENTRYPOINT + CMD with the runner's own parseConfig, so these flags cannot drift from the CLI.

# The Node the project pins (package.json's "node" dependency): it runs the TypeScript sources as they are.
FROM node:22.23.3-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production

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
  CMD ["node", "-e", "fetch('http://127.0.0.1:8000/health',{headers:process.env.RUNNER_TOKEN?{authorization:'Bearer '+process.env.RUNNER_TOKEN}:{}}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# SIGTERM drains: no new requests (503, /ready fails), running ones finish, the member leaves, exit 0. Give
# `docker stop -t` / --stop-timeout (Kubernetes: terminationGracePeriodSeconds) your longest generation.
STOPSIGNAL SIGTERM

# Node is PID 1 (exec form, no shell), so SIGTERM reaches the runner itself. The fleet key and the edge's
# RUNNER_TOKEN come from the environment (FLEET_TOKEN, RUNNER_TOKEN), never from argv.
ENTRYPOINT ["node", "gpu-runner/serving/main.ts", "--model", "/models/base", "--host", "0.0.0.0", "--port", "8000"]
# Replace with this deployment's edge and --advertise-url, the HTTPS address the Worker reaches this runner at.
CMD ["--join", "https://lora-edge.example.workers.dev"]
