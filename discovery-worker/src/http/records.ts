import type { CoordinatorRecord, CoordinatorRegistration, JoinAnswerRecord, PendingJoin } from "@coral-mesh/sdk-proto";
import type { JoinRow, MeshRow } from "../db/schema.js";

export function coordinatorPath(meshId: string): string {
  return `/v1/meshes/${meshId}/coordinator`;
}

export function toCoordinatorRecord(row: MeshRow): CoordinatorRecord {
  return {
    meshId: row.meshId,
    signingKey: row.signingKey,
    // Stored only after validation against the schema, so this parse cannot fail.
    registration: JSON.parse(row.body) as CoordinatorRegistration,
    observedAddress: row.observedAddress,
    signed: {
      method: "PUT",
      path: coordinatorPath(row.meshId),
      body: row.body,
      timestamp: row.signedAt,
      nonce: row.nonce,
      signature: row.signature,
    },
    updatedAt: row.updatedAt,
    expiresAt: row.expiresAt,
  };
}

export function toPendingJoin(row: JoinRow): PendingJoin {
  return {
    joinId: row.joinId,
    wireguardKey: row.wireguardKey,
    sealed: row.sealed,
    observedAddress: row.observedAddress,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
  };
}

export function toAnswerRecord(row: JoinRow & { answer: string; answeredAt: number }): JoinAnswerRecord {
  return { joinId: row.joinId, sealed: row.answer, answeredAt: row.answeredAt };
}
