/** The body of `POST /v1/tokens`, checked by the API and, before it asks, by `coral token create`. */
import type { FieldLabels } from "@coral-mesh/sdk-proto";
import * as z from "zod";

export const tokenRequestSchema = z.strictObject({
  ttlMs: z
    .number()
    .int()
    .min(1_000)
    .max(365 * 86_400_000)
    .default(86_400_000),
  uses: z.number().int().min(1).max(10_000).default(1),
  name: z.string().min(1).max(64).optional(),
});

export type TokenRequest = z.input<typeof tokenRequestSchema>;

/** Its fields, as people read them in an error. */
export const tokenRequestLabels: FieldLabels = {
  ttlMs: { label: "the TTL", unit: "duration" },
  uses: "the number of uses",
  name: "the name",
};
