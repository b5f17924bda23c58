// Google's own Node client (@google-cloud/recaptcha-enterprise) against the sidecar's
// Google-compatible faces, changed only in its construction: the sidecar's endpoint, plain
// gRPC or plain HTTP (`fallback: true`, the library's HTTP/1.1 JSON transport), no credentials.
//
// Environment: SIDECAR (host:port of the gRPC listener), SIDECAR_HTTP (host:port of the HTTP
// listener, for MODE=rest), MODE (grpc | rest), PARENT, TOKEN, SITE_KEY. Prints one JSON
// object with what each call answered; tests/interop/test_google_clients.py judges it.
'use strict';

const {RecaptchaEnterpriseServiceClient} = require('@google-cloud/recaptcha-enterprise');
const {grpc, googleAuthLibrary} = require('google-gax');

function client(mode) {
  const [host, port] = (mode === 'rest' ? process.env.SIDECAR_HTTP : process.env.SIDECAR).split(':');
  // The one change an app makes: where the client connects, and that it brings no credentials
  // (google-auth-library's PassThroughClient, re-exported by google-gax, adds none).
  if (mode === 'rest') {
    return new RecaptchaEnterpriseServiceClient({
      fallback: true,
      apiEndpoint: host,
      port: Number(port),
      protocol: 'http',
      authClient: new googleAuthLibrary.PassThroughClient(),
    });
  }
  return new RecaptchaEnterpriseServiceClient({
    apiEndpoint: host,
    port: Number(port),
    sslCreds: grpc.credentials.createInsecure(),
    authClient: new googleAuthLibrary.PassThroughClient(),
  });
}

// gRPC call options take interceptors: this one keeps the response's initial metadata.
function headerCatcher(into) {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        next(metadata, {
          ...listener,
          onReceiveMetadata(received, nextMetadata) {
            for (const [key, value] of Object.entries(received.getMap())) {
              into[key] = String(value);
            }
            nextMetadata(received);
          },
        });
      },
    });
}

async function create(recaptcha, mode) {
  const headers = {};
  const options = mode === 'grpc' ? {otherArgs: {options: {interceptors: [headerCatcher(headers)]}}} : {};
  const [response] = await recaptcha.createAssessment(
    {
      parent: process.env.PARENT,
      assessment: {
        event: {
          token: process.env.TOKEN,
          siteKey: process.env.SITE_KEY,
          expectedAction: 'login',
          userAgent: 'interop-node',
          userIpAddress: '203.0.113.7',
        },
      },
    },
    options,
  );
  const tp = response.tokenProperties || {};
  return {
    valid: Boolean(tp.valid),
    invalid_reason: String(tp.invalidReason || 'INVALID_REASON_UNSPECIFIED'),
    score: (response.riskAnalysis || {}).score || 0,
    action: tp.action || '',
    name: response.name || '',
    headers,
  };
}

async function main() {
  const mode = process.env.MODE || 'grpc';
  const recaptcha = client(mode);
  const first = await create(recaptcha, mode);
  const again = await create(recaptcha, mode);
  let annotate = 'OK';
  try {
    await recaptcha.annotateAssessment({
      name: first.name,
      annotation: 'LEGITIMATE',
      reasons: ['PASSED_TWO_FACTOR'],
    });
  } catch (error) {
    annotate = `${error.code}: ${error.message}`;
  }
  let listKeys = 'OK';
  try {
    await recaptcha.listKeys({parent: process.env.PARENT});
  } catch (error) {
    // gRPC errors carry the message in `details` (a string); HTTP ones there carry the
    // `google.rpc.Status` details (an array) and the message in `message`.
    const text = typeof error.details === 'string' && error.details ? error.details : error.message;
    listKeys = `${error.code}: ${text}`;
  }
  await recaptcha.close();
  console.log(JSON.stringify({first, again, annotate, list_keys: listKeys}));
}

main().catch(error => {
  console.error(error);
  process.exit(1);
});
