// Assesses one reCAPTCHA token through the sidecar and prints the decision.
//   npm run build && node dist/examples/assess.js unix:///tmp/recaptcha-sidecar.sock "$TOKEN" login
import { credentials, Metadata } from "@grpc/grpc-js";
import {
  AssessRequest,
  type AssessResponse,
  tokenStatusToJSON,
  VerificationServiceClient,
  verdictToJSON,
} from "../src";

// One client per process, shared by every request. The sidecar is on loopback or a Unix socket
// in the same pod, so no TLS. Targets: "unix:///path/to.sock" or "127.0.0.1:50051".
const [target = "unix:///tmp/recaptcha-sidecar.sock", token = "", action = "login"] =
  process.argv.slice(2);
const sidecar = new VerificationServiceClient(target, credentials.createInsecure());

function assess(request: AssessRequest, timeoutMs = 2000): Promise<AssessResponse> {
  return new Promise((resolve, reject) => {
    // Always set a deadline: a missing answer should cost the request no more than this.
    // Denials come back as data (allowed = false); errors are for unreadable requests, load
    // shedding and auth.
    sidecar.assess(request, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

assess(AssessRequest.fromPartial({ token, expectedAction: action, userAgent: "example/1.0" }))
  .then((res) => {
    console.log(
      `allowed=${res.allowed} verdict=${verdictToJSON(res.verdict)} ` +
        `tokenStatus=${tokenStatusToJSON(res.tokenStatus)} ` +
        `score=${res.score.toFixed(2)} assessment=${res.assessmentName}`,
    );
  })
  .catch((err: Error) => {
    console.error(`assess: ${err.message}`);
    process.exitCode = 1;
  })
  .finally(() => sidecar.close());
