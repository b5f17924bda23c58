// Calls a running sidecar through the generated TypeScript stubs, over TCP and over a Unix
// socket. tests/clients/test_clients.py starts the sidecar (on its embedded emulator) and runs
// this with RECAPTCHA_SIDECAR_TARGET (host:port) and RECAPTCHA_SIDECAR_UDS (unix:///path) set;
// without them the tests are skipped.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { credentials, makeClientConstructor, Metadata, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import {
  AnnotateRequest,
  type AnnotateResponse,
  Annotation,
  annotationDeliveryToJSON,
  AnnotationReason,
  AssessRequest,
  type AssessResponse,
  SearchRelatedAccountsRequest,
  type SearchRelatedAccountsResponse,
  TokenStatus,
  Verdict,
  VerificationServiceClient,
} from "../src";

/** A fresh token in the emulator's format: "emu1." and unpadded base64url of compact JSON. */
function mintToken(action: string, extra: Record<string, unknown> = {}): string {
  const claims = {
    score: 0.9,
    action,
    hostname: "localhost",
    iat: Date.now() / 1000,
    nonce: randomBytes(16).toString("hex"),
    ...extra,
  };
  return "emu1." + Buffer.from(JSON.stringify(claims), "utf8").toString("base64url");
}

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: { deadline: number },
  callback: (err: ServiceError | null, response: Res) => void,
) => unknown;

/** Promise form of a unary call, with a deadline as every call should have. */
function call<Req, Res>(method: Unary<Req, Res>, request: Req, timeoutMs = 5000): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

const HealthClient = makeClientConstructor(healthService, "grpc.health.v1.Health");

for (const variable of ["RECAPTCHA_SIDECAR_TARGET", "RECAPTCHA_SIDECAR_UDS"]) {
  const target = process.env[variable];
  test(`e2e over ${variable}`, { skip: !target && `${variable} is not set` }, async () => {
    const sidecar = new VerificationServiceClient(target!, credentials.createInsecure());
    const health = new HealthClient(target!, credentials.createInsecure());
    try {
      // A proto-loader client: its methods are untyped, and enums arrive as their names.
      const status = await call<{ service: string }, { status: string }>(health.check.bind(health), {
        service: "",
      });
      assert.equal(status.status, "SERVING");

      const request = AssessRequest.fromPartial({ token: mintToken("login"), expectedAction: "login" });
      const first = await call<AssessRequest, AssessResponse>(sidecar.assess.bind(sidecar), request);
      assert.equal(first.allowed, true, `first assess not allowed: ${JSON.stringify(first)}`);
      assert.equal(first.verdict, Verdict.VERDICT_PASSED);
      assert.equal(first.tokenStatus, TokenStatus.TOKEN_STATUS_VALID);
      assert.notEqual(first.assessmentName, "");

      const second = await call<AssessRequest, AssessResponse>(sidecar.assess.bind(sidecar), request);
      assert.equal(second.allowed, false, `repeat assess allowed: ${JSON.stringify(second)}`);
      assert.equal(second.tokenStatus, TokenStatus.TOKEN_STATUS_DUPLICATE);

      const ack = await call<AnnotateRequest, AnnotateResponse>(
        sidecar.annotate.bind(sidecar),
        AnnotateRequest.fromPartial({
          assessmentName: first.assessmentName,
          annotation: Annotation.ANNOTATION_LEGITIMATE,
          reasons: [AnnotationReason.ANNOTATION_REASON_PASSED_TWO_FACTOR],
        }),
      );
      // SearchRelatedAccounts: two accounts assessed from one device (the emulator's `device`
      // claim) form a related-account group. The sidecar under test encrypts account ids
      // (deterministic-encryption), so the ids come back decrypted for the app.
      const device = randomBytes(8).toString("hex");
      const alice = `alice-${device}`;
      const bob = `bob-${device}`;
      for (const accountId of [alice, bob]) {
        const seen = await call<AssessRequest, AssessResponse>(
          sidecar.assess.bind(sidecar),
          AssessRequest.fromPartial({ token: mintToken("login", { device }), expectedAction: "login", accountId }),
        );
        assert.equal(seen.verdict, Verdict.VERDICT_PASSED);
      }
      const related = await call<SearchRelatedAccountsRequest, SearchRelatedAccountsResponse>(
        sidecar.searchRelatedAccounts.bind(sidecar),
        SearchRelatedAccountsRequest.fromPartial({ accountId: alice, pageSize: 10 }),
      );
      const found = related.relatedAccounts.map((a) => `${a.accountId}:${a.decrypted}`).sort();
      assert.deepEqual(found, [`${alice}:true`, `${bob}:true`]);
      assert.match(related.relatedAccounts[0].group, /^projects\/[^/]+\/relatedaccountgroups\//);

      console.log(`e2e ok: ${variable} (${target}, assessment ${first.assessmentName}, delivery ${annotationDeliveryToJSON(ack.delivery)})`);
    } finally {
      sidecar.close();
      health.close();
    }
  });
}
