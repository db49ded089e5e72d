// A sha256 digest as every contract spells it: 64 lowercase hex characters (weights, content ids,
// base-model fingerprints).
import { z } from "zod";

export const Sha256Schema = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex characters (a sha256)");
