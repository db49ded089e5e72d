// GET /health (liveness, vLLM's), GET /ready (readiness: fails while draining), GET /metrics (Prometheus
// text), GET /v1/models and /v1/models/{id} (the base model and resident adapters, as vLLM's model cards).
import type { Hono } from "hono";
import type { RunnerHealth, RunnerReady } from "../../../src/contracts/runner.ts";
import { AppError, errorEnvelope } from "../../../src/errors.ts";
import type { RunnerModelList } from "../../../src/contracts/runner-vllm.ts";
import type { RunnerDeps } from "./deps.ts";
import { modelCard, modelCards } from "./model-cards.ts";

export function opsRoutes(app: Hono, deps: RunnerDeps): void {
  app.get("/health", (c) => {
    const health: RunnerHealth = {
      status: "ok",
      model: deps.modelId,
      baseModelFingerprint: deps.baseModelFingerprint,
      device: deps.engine.device,
      backend: deps.engine.backend,
      maxSlots: deps.engine.maxSlots,
      maxRank: deps.engine.maxRank,
      residentAdapters: deps.adapters.list().length,
      hostAdapters: deps.adapters.hostCount,
      mode: deps.tokenizer.mode,
      queueDepth: deps.scheduler.queueDepth,
      uptimeS: (Date.now() - deps.startedAt) / 1000,
      version: deps.version,
    };
    return c.json(health);
  });

  // Orchestrators stop routing to a pod whose readiness fails but keep it alive while its liveness (/health)
  // holds, which is what a drain needs: no new requests, the running ones finish (README, "Deploying it").
  app.get("/ready", (c) => {
    if (deps.drain?.draining === true) {
      const error = new AppError(
        "unavailable",
        "this runner is draining: it takes no new requests and exits once the running ones finish",
      );
      return c.json(errorEnvelope(error), 503, { "retry-after": "1" });
    }
    const ready: RunnerReady = { status: "ready", model: deps.modelId };
    return c.json(ready);
  });

  app.get("/metrics", (c) =>
    c.text(deps.metrics.render(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }),
  );

  app.get("/v1/models", (c) => {
    const list: RunnerModelList = { object: "list", data: modelCards(deps) };
    return c.json(list);
  });

  // `{id}` may hold slashes: vLLM serves Hugging Face style names such as org/model
  app.get("/v1/models/:id{.+}", (c) => c.json(modelCard(deps, c.req.param("id"))));
}
