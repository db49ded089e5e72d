// GET /health, GET /metrics (Prometheus text) and GET /v1/models (the base model and resident adapters).
import type { Hono } from "hono";
import type { ModelList, ModelObject } from "../../../src/contracts/openai.ts";
import type { RunnerHealth } from "../../../src/contracts/runner.ts";
import type { RunnerDeps } from "./deps.ts";

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
      mode: deps.tokenizer.mode,
      queueDepth: deps.scheduler.queueDepth,
      uptimeS: (Date.now() - deps.startedAt) / 1000,
      version: deps.version,
    };
    return c.json(health);
  });

  app.get("/metrics", (c) =>
    c.text(deps.metrics.render(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }),
  );

  app.get("/v1/models", (c) => {
    const created = Math.floor(deps.startedAt / 1000);
    const base: ModelObject = {
      id: deps.modelId,
      object: "model",
      created,
      owned_by: "lora-edge",
      parent: null,
    };
    const adapters: ModelObject[] = deps.adapters.servedModels().map((a) => ({
      id: a.id,
      object: "model",
      created: Math.floor(a.loadedAt / 1000),
      owned_by: "lora-edge",
      parent: deps.modelId,
    }));
    const list: ModelList = { object: "list", data: [base, ...adapters] };
    return c.json(list);
  });
}
