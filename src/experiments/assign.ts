// The assignment decision: a pure function of (route, salt, subject) and the stored split, so the
// same subject always lands in the same variant (docs/decisions/0004-ab-assignment-hash.md).
// A request without a subject passes a per-request random id instead, which makes it a one-off subject.
import type { RouteConfig, Variant } from "../contracts/experiments.ts";
import { assignmentBucket, BUCKETS, shadowBucket } from "./hash.ts";
import { ownerOf } from "./ranges.ts";

export interface Assignment {
  /** The live variant that answers. */
  variant: Variant;
  /** 0..9999: where the subject fell in the split. */
  bucket: number;
  /** The variant whose buckets the subject fell in, when a guardrail cut it and control answers instead. */
  cutFrom: string | null;
  /** Shadow variants that get a copy of this request. */
  shadows: Variant[];
}

function byName(config: RouteConfig, name: string): Variant {
  const variant = config.variants.find((v) => v.name === name);
  if (variant === undefined) throw new Error(`route config names variant ${name}, which it does not hold`);
  return variant;
}

export function assign(route: string, config: RouteConfig, subject: string): Assignment {
  const bucket = assignmentBucket(route, config.salt, subject);
  const live = config.variants.filter((v) => !v.shadow);
  const owner = byName(config, ownerOf(live, bucket));
  const variant = owner.cut === null ? owner : byName(config, config.control);
  const shadows = config.variants.filter(
    (v) =>
      v.shadow &&
      v.cut === null &&
      v.weight > 0 &&
      (v.weight >= BUCKETS || shadowBucket(route, config.salt, v.name, subject) < v.weight),
  );
  return { variant, bucket, cutFrom: owner.cut === null ? null : owner.name, shadows };
}
