// The fleet's wire contract: a runner (or a vLLM sidecar) joins the edge's pool at run time with a fleet key
// of scope `runner`, heartbeats to keep its lease, and deregisters when it has drained. The edge keeps
// members in D1 (workers/edge/fleet/); the runner side is gpu-runner/serving/fleet.ts.
import { z } from "zod";
import { LINEAR_KINDS } from "./base-model.ts";
import { Sha256Schema } from "./digest.ts";

export const MemberUrlSchema = z
  .string()
  .regex(/^https?:\/\/[^/\s]+(\/\S*)?$/, "must be an http(s) URL")
  .max(500, "must be at most 500 characters")
  .transform((u) => u.replace(/\/+$/, ""));

export const MemberIdSchema = z.string().regex(/^rm_[0-9a-f]{24}$/, "must be a member id (rm_ + 24 hex)");

/** What a member says about itself when it joins: where it listens and what it can serve. */
export const JoinRequestSchema = z.strictObject({
  url: MemberUrlSchema,
  /** `runner`: this project's runner; `vllm`: a vLLM server behind `npm run vllm-sidecar`. */
  kind: z.enum(["runner", "vllm"]),
  /** The base model id it serves (a registered base's id): requests for other bases never reach it. */
  baseModel: z.string().min(1).max(200),
  baseModelFingerprint: z.string().min(1).max(200).nullable(),
  /** Relative capacity, as RUNNERS' `weight`: a member of capacity 2 wins twice the adapters. */
  capacity: z.number().positive("must be > 0").max(1000, "must be <= 1000"),
  /** Widest LoRA rank it accepts (the runner's --max-lora-rank, vLLM's --max-lora-rank). */
  maxLoraRank: z.number().int().min(1).max(4096),
  /** Linear kinds an adapter may target on it. */
  targetModules: z.array(z.enum(LINEAR_KINDS)).min(1),
  /** Adapters resident at once (slots; vLLM's --max-cpu-loras). */
  slots: z.number().int().nonnegative().max(100_000),
  /** Longest sequence, prompt plus completion (max_model_len). */
  context: z.number().int().positive(),
  version: z.string().min(1).max(100),
});
export type JoinRequest = z.infer<typeof JoinRequestSchema>;

export const JoinResponseSchema = z.strictObject({
  id: MemberIdSchema,
  /** How long a heartbeat keeps the member in the pool. */
  leaseMs: z.number().int().positive(),
  /** How often to heartbeat (a third of the lease, so one lost beat costs nothing). */
  heartbeatMs: z.number().int().positive(),
  leaseUntil: z.iso.datetime({ offset: true }),
});
export type JoinResponse = z.infer<typeof JoinResponseSchema>;

export const MemberResidentSchema = z.strictObject({
  adapterId: Sha256Schema,
  /** Generation requests served with it since the member started (for warming a joining member). */
  requests: z.number().int().nonnegative(),
});
export type MemberResident = z.infer<typeof MemberResidentSchema>;

export const HeartbeatRequestSchema = z.strictObject({
  /** The member stopped taking requests (SIGTERM): the edge stops routing to it at once. */
  draining: z.boolean(),
  inFlight: z.number().int().nonnegative(),
  queueDepth: z.number().int().nonnegative(),
  resident: z.array(MemberResidentSchema).max(100_000),
});
export type HeartbeatRequest = z.infer<typeof HeartbeatRequestSchema>;

export const HeartbeatResponseSchema = z.strictObject({
  leaseUntil: z.iso.datetime({ offset: true }),
  /** The operator asked this member to drain (POST /admin/runners/{id}/drain). */
  drain: z.boolean(),
});
export type HeartbeatResponse = z.infer<typeof HeartbeatResponseSchema>;

/** One pool entry as GET /admin/runners shows it: a static RUNNERS entry or a member. */
export const PoolEntrySchema = z.strictObject({
  source: z.enum(["static", "member"]),
  /** Member id; null for static entries (named by position). */
  id: MemberIdSchema.nullable(),
  index: z.number().int().min(1),
  url: z.string(),
  kind: z.enum(["runner", "vllm"]).nullable(),
  baseModel: z.string().nullable(),
  capacity: z.number().positive(),
  maxLoraRank: z.number().int().positive().nullable(),
  targetModules: z.array(z.enum(LINEAR_KINDS)).nullable(),
  slots: z.number().int().nonnegative().nullable(),
  context: z.number().int().positive().nullable(),
  version: z.string().nullable(),
  joinedAt: z.iso.datetime({ offset: true }).nullable(),
  heartbeatAt: z.iso.datetime({ offset: true }).nullable(),
  leaseUntil: z.iso.datetime({ offset: true }).nullable(),
  drainingAt: z.iso.datetime({ offset: true }).nullable(),
  inFlight: z.number().int().nonnegative().nullable(),
  resident: z.array(MemberResidentSchema),
});
export type PoolEntry = z.infer<typeof PoolEntrySchema>;

export const DrainResponseSchema = z.strictObject({
  id: MemberIdSchema,
  drainingAt: z.iso.datetime({ offset: true }),
});
export type DrainResponse = z.infer<typeof DrainResponseSchema>;
