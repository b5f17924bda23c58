package dev.recaptchasidecar.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.recaptchasidecar.v1.AnnotateRequest;
import dev.recaptchasidecar.v1.AnnotateResponse;
import dev.recaptchasidecar.v1.Annotation;
import dev.recaptchasidecar.v1.AnnotationReason;
import dev.recaptchasidecar.v1.AssessRequest;
import dev.recaptchasidecar.v1.AssessResponse;
import dev.recaptchasidecar.v1.TokenStatus;
import dev.recaptchasidecar.v1.Verdict;
import dev.recaptchasidecar.v1.VerificationServiceGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Calls a running sidecar through the generated Java stubs, over TCP and over a Unix socket.
 * tests/clients/test_clients.py starts the sidecar (on its embedded emulator) and runs this with
 * RECAPTCHA_SIDECAR_TARGET (host:port) and RECAPTCHA_SIDECAR_UDS (unix:///path) set; without them
 * the test is skipped.
 */
class EndToEndTest {
  private static final SecureRandom RANDOM = new SecureRandom();

  /** A fresh token in the emulator's format: "emu1." and unpadded base64url of compact JSON. */
  static String mintToken(String action) {
    return mintToken(action, 0.9);
  }

  static String mintToken(String action, double score) {
    byte[] nonce = new byte[16];
    RANDOM.nextBytes(nonce);
    double iat = System.currentTimeMillis() / 1000.0;
    String claims =
        String.format(
            java.util.Locale.ROOT,
            "{\"score\":%.3f,\"action\":\"%s\",\"hostname\":\"localhost\",\"iat\":%.3f,\"nonce\":\"%s\"}",
            score,
            action,
            iat,
            HexFormat.of().formatHex(nonce));
    return "emu1."
        + Base64.getUrlEncoder()
            .withoutPadding()
            .encodeToString(claims.getBytes(StandardCharsets.UTF_8));
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"RECAPTCHA_SIDECAR_TARGET", "RECAPTCHA_SIDECAR_UDS"})
  void assessRepeatAnnotateAndHealth(String variable) throws InterruptedException {
    String target = System.getenv(variable);
    assumeTrue(target != null && !target.isEmpty(), variable + " is not set");

    ManagedChannel channel =
        Grpc.newChannelBuilder(target, InsecureChannelCredentials.create()).build();
    try {
      HealthCheckResponse health =
          HealthGrpc.newBlockingStub(channel)
              .withWaitForReady()
              .withDeadlineAfter(5, TimeUnit.SECONDS)
              .check(HealthCheckRequest.getDefaultInstance());
      assertEquals(HealthCheckResponse.ServingStatus.SERVING, health.getStatus());

      VerificationServiceGrpc.VerificationServiceBlockingStub sidecar =
          VerificationServiceGrpc.newBlockingStub(channel);
      AssessRequest request =
          AssessRequest.newBuilder().setToken(mintToken("login")).setExpectedAction("login").build();

      AssessResponse first = sidecar.withDeadlineAfter(5, TimeUnit.SECONDS).assess(request);
      assertTrue(first.getAllowed(), () -> "first assess not allowed: " + first);
      assertEquals(Verdict.VERDICT_PASSED, first.getVerdict());
      assertEquals(TokenStatus.TOKEN_STATUS_VALID, first.getTokenStatus());
      assertFalse(first.getAssessmentName().isEmpty(), "no assessment name");

      AssessResponse second = sidecar.withDeadlineAfter(5, TimeUnit.SECONDS).assess(request);
      assertFalse(second.getAllowed(), () -> "repeat assess allowed: " + second);
      assertEquals(TokenStatus.TOKEN_STATUS_DUPLICATE, second.getTokenStatus());

      AnnotateResponse ack =
          sidecar
              .withDeadlineAfter(5, TimeUnit.SECONDS)
              .annotate(
                  AnnotateRequest.newBuilder()
                      .setAssessmentName(first.getAssessmentName())
                      .setAnnotation(Annotation.ANNOTATION_LEGITIMATE)
                      .addReasons(AnnotationReason.ANNOTATION_REASON_PASSED_TWO_FACTOR)
                      .build());
      assertNotNull(ack);

      // express: no token, scored from server-side signals with the sidecar's express key. The
      // emulator reads the score it should give from an x-emulator-claims header.
      AssessResponse express =
          sidecar
              .withDeadlineAfter(5, TimeUnit.SECONDS)
              .assess(
                  AssessRequest.newBuilder()
                      .setExpress(true)
                      .setExpectedAction("checkout")
                      .setUserIpAddress("203.0.113.7")
                      .addHeaders("x-emulator-claims: " + mintToken("", 0.2))
                      .build());
      assertFalse(express.getAllowed(), () -> "low-scored express allowed: " + express);
      assertEquals(Verdict.VERDICT_FAILED_ENFORCE, express.getVerdict());
      assertEquals(TokenStatus.TOKEN_STATUS_UNSPECIFIED, express.getTokenStatus());
      assertEquals("score_below_threshold", express.getDecidedBy());
      assertEquals(0.2f, express.getScore(), 1e-6f);
      System.out.printf(
          "e2e ok: %s (%s, assessment %s, annotation %s)%n",
          variable, target, first.getAssessmentName(), ack.getDelivery());
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
