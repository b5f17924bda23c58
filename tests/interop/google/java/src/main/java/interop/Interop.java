package interop;

import com.google.api.gax.core.NoCredentialsProvider;
import com.google.api.gax.grpc.GrpcResponseMetadata;
import com.google.api.gax.grpc.InstantiatingGrpcChannelProvider;
import com.google.api.gax.rpc.ApiCallContext;
import com.google.api.gax.rpc.ApiException;
import com.google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseServiceClient;
import com.google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseServiceSettings;
import com.google.recaptchaenterprise.v1.AnnotateAssessmentRequest;
import com.google.recaptchaenterprise.v1.Assessment;
import com.google.recaptchaenterprise.v1.CreateAssessmentRequest;
import com.google.recaptchaenterprise.v1.Event;
import com.google.recaptchaenterprise.v1.ListKeysRequest;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import java.util.Map;
import java.util.TreeMap;

/**
 * Google's own Java client (com.google.cloud:google-cloud-recaptchaenterprise) against the
 * sidecar's Google-compatible gRPC face, changed only in its construction: the sidecar's
 * endpoint, plaintext gRPC, no credentials. (3.55.0 ships only the gRPC transport: no HttpJson
 * stub for this service.)
 *
 * <p>Environment: SIDECAR (host:port of the gRPC listener), PARENT, TOKEN, SITE_KEY. Prints one
 * JSON object; tests/interop/test_google_clients.py judges it.
 */
public final class Interop {
  private static final String[] DECISION = {
    "x-recaptcha-allowed", "x-recaptcha-verdict", "x-recaptcha-token-status",
    "x-recaptcha-decided-by", "x-recaptcha-score", "x-recaptcha-assessment",
    "x-recaptcha-policy-version",
  };

  private Interop() {}

  static RecaptchaEnterpriseServiceClient client() throws Exception {
    // The one change an app makes: where the client connects, and that it brings no credentials.
    String endpoint = System.getenv("SIDECAR");
    return RecaptchaEnterpriseServiceClient.create(
        RecaptchaEnterpriseServiceSettings.newBuilder()
            .setCredentialsProvider(NoCredentialsProvider.create())
            .setTransportChannelProvider(
                InstantiatingGrpcChannelProvider.newBuilder()
                    .setEndpoint(endpoint)
                    .setChannelConfigurator(ManagedChannelBuilder::usePlaintext)
                    .build())
            .build());
  }

  static String create(RecaptchaEnterpriseServiceClient client) {
    CreateAssessmentRequest request =
        CreateAssessmentRequest.newBuilder()
            .setParent(System.getenv("PARENT"))
            .setAssessment(
                Assessment.newBuilder()
                    .setEvent(
                        Event.newBuilder()
                            .setToken(System.getenv("TOKEN"))
                            .setSiteKey(System.getenv("SITE_KEY"))
                            .setExpectedAction("login")
                            .setUserAgent("interop-java")
                            .setUserIpAddress("203.0.113.7")))
            .build();
    GrpcResponseMetadata metadata = new GrpcResponseMetadata();
    ApiCallContext context = metadata.createContextWithHandlers();
    Assessment response = client.createAssessmentCallable().call(request, context);
    Metadata received = metadata.getMetadata();
    Map<String, String> headers = new TreeMap<>();
    for (String name : DECISION) {
      String value = received.get(Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER));
      if (value != null) {
        headers.put(name, value);
      }
    }
    return "{\"valid\":" + response.getTokenProperties().getValid()
        + ",\"invalid_reason\":" + quote(response.getTokenProperties().getInvalidReason().name())
        + ",\"score\":" + response.getRiskAnalysis().getScore()
        + ",\"action\":" + quote(response.getTokenProperties().getAction())
        + ",\"name\":" + quote(response.getName())
        + ",\"headers\":" + json(headers) + "}";
  }

  public static void main(String[] args) throws Exception {
    try (RecaptchaEnterpriseServiceClient client = client()) {
      String first = create(client);
      String again = create(client);
      String name = first.replaceAll(".*\"name\":\"([^\"]*)\".*", "$1");
      String annotate = "OK";
      try {
        client.annotateAssessment(
            AnnotateAssessmentRequest.newBuilder()
                .setName(name)
                .setAnnotation(AnnotateAssessmentRequest.Annotation.LEGITIMATE)
                .addReasons(AnnotateAssessmentRequest.Reason.PASSED_TWO_FACTOR)
                .build());
      } catch (ApiException error) {
        annotate = error.getStatusCode().getCode() + ": " + error.getMessage();
      }
      String listKeys = "OK";
      try {
        client.listKeys(ListKeysRequest.newBuilder().setParent(System.getenv("PARENT")).build())
            .iterateAll()
            .forEach(key -> {});
      } catch (ApiException error) {
        listKeys = error.getStatusCode().getCode() + ": " + error.getMessage();
      }
      System.out.println(
          "{\"first\":" + first + ",\"again\":" + again + ",\"annotate\":" + quote(annotate)
              + ",\"list_keys\":" + quote(listKeys) + "}");
    }
  }

  static String json(Map<String, String> map) {
    StringBuilder out = new StringBuilder("{");
    for (Map.Entry<String, String> entry : map.entrySet()) {
      if (out.length() > 1) {
        out.append(',');
      }
      out.append(quote(entry.getKey())).append(':').append(quote(entry.getValue()));
    }
    return out.append('}').toString();
  }

  static String quote(String text) {
    StringBuilder out = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      if (c == '"' || c == '\\') {
        out.append('\\').append(c);
      } else if (c < 0x20) {
        out.append(String.format("\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    return out.append('"').toString();
  }
}
