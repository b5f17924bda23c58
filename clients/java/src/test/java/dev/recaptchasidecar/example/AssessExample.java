package dev.recaptchasidecar.example;

import dev.recaptchasidecar.v1.AssessRequest;
import dev.recaptchasidecar.v1.AssessResponse;
import dev.recaptchasidecar.v1.VerificationServiceGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import java.util.concurrent.TimeUnit;

/**
 * Assesses one reCAPTCHA token through the sidecar and prints the decision.
 *
 * <p>Usage: {@code AssessExample <target> <token> [expected action]}, where target is
 * {@code unix:///tmp/recaptcha-sidecar.sock} or {@code 127.0.0.1:50051}. It lives with the tests so
 * that it is compiled on every build without being shipped in the client jar.
 */
public final class AssessExample {
  private AssessExample() {}

  public static void main(String[] args) throws InterruptedException {
    String target = args.length > 0 ? args[0] : "unix:///tmp/recaptcha-sidecar.sock";
    String token = args.length > 1 ? args[1] : "";
    String action = args.length > 2 ? args[2] : "login";

    // One channel per process, shared by every request. The sidecar is on loopback or a Unix
    // socket in the same pod, so no TLS. unix:// targets need the epoll transport, which
    // grpc-netty-shaded includes for Linux.
    ManagedChannel channel = Grpc.newChannelBuilder(target, InsecureChannelCredentials.create()).build();
    try {
      VerificationServiceGrpc.VerificationServiceBlockingStub sidecar =
          VerificationServiceGrpc.newBlockingStub(channel);
      // Always set a deadline, per call: a missing answer should cost the request no more than
      // this. Denials come back as data (allowed = false), not as exceptions.
      AssessResponse response =
          sidecar
              .withDeadlineAfter(2, TimeUnit.SECONDS)
              .assess(
                  AssessRequest.newBuilder()
                      .setToken(token)
                      .setExpectedAction(action)
                      .setUserAgent("example/1.0")
                      .build());
      System.out.printf(
          "allowed=%b verdict=%s token_status=%s score=%.2f assessment=%s%n",
          response.getAllowed(),
          response.getVerdict(),
          response.getTokenStatus(),
          response.getScore(),
          response.getAssessmentName());
    } finally {
      channel.shutdown().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
