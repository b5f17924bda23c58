// Package e2e calls a running sidecar through the generated Go stubs, over TCP and over a Unix
// socket. tests/clients/test_clients.py starts the sidecar (on its embedded emulator) and runs
// this with RECAPTCHA_SIDECAR_TARGET (host:port) and RECAPTCHA_SIDECAR_UDS (unix:///path) set;
// without them the test is skipped.
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	sidecarv1 "github.com/recaptcha-sidecar/recaptcha-sidecar/clients/go/recaptchasidecarv1"
)

// mintToken returns a fresh token in the emulator's documented format: "emu1." and the
// unpadded base64url of compact JSON claims.
func mintToken(t *testing.T, action string) string {
	t.Helper()
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	claims := struct {
		Score    float64 `json:"score"`
		Action   string  `json:"action"`
		Hostname string  `json:"hostname"`
		Iat      float64 `json:"iat"`
		Nonce    string  `json:"nonce"`
	}{0.9, action, "localhost", float64(time.Now().UnixMicro()) / 1e6, hex.EncodeToString(nonce)}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return "emu1." + base64.RawURLEncoding.EncodeToString(payload)
}

func TestEndToEnd(t *testing.T) {
	targets := map[string]string{
		"tcp": os.Getenv("RECAPTCHA_SIDECAR_TARGET"),
		"uds": os.Getenv("RECAPTCHA_SIDECAR_UDS"),
	}
	if targets["tcp"] == "" || targets["uds"] == "" {
		t.Skip("RECAPTCHA_SIDECAR_TARGET and RECAPTCHA_SIDECAR_UDS are not set")
	}
	for _, name := range []string{"tcp", "uds"} {
		t.Run(name, func(t *testing.T) { exercise(t, targets[name]) })
	}
}

func exercise(t *testing.T, target string) {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", target, err)
	}
	defer conn.Close()
	client := sidecarv1.NewVerificationServiceClient(conn)

	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 5*time.Second)
	}

	// Health first: it also waits for the connection to come up.
	ctx, cancel := call()
	defer cancel()
	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("health: %v", err)
	}
	if health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %s, want SERVING", health.GetStatus())
	}

	token := mintToken(t, "login")
	req := &sidecarv1.AssessRequest{Token: token, ExpectedAction: "login"}

	ctx, cancel = call()
	defer cancel()
	first, err := client.Assess(ctx, req)
	if err != nil {
		t.Fatalf("assess: %v", err)
	}
	if !first.GetAllowed() || first.GetVerdict() != sidecarv1.Verdict_VERDICT_PASSED ||
		first.GetTokenStatus() != sidecarv1.TokenStatus_TOKEN_STATUS_VALID || first.GetAssessmentName() == "" {
		t.Fatalf("first assess = %v, want allowed, VERDICT_PASSED, TOKEN_STATUS_VALID and an assessment name", first)
	}

	ctx, cancel = call()
	defer cancel()
	second, err := client.Assess(ctx, req)
	if err != nil {
		t.Fatalf("repeat assess: %v", err)
	}
	if second.GetAllowed() || second.GetTokenStatus() != sidecarv1.TokenStatus_TOKEN_STATUS_DUPLICATE {
		t.Fatalf("repeat assess = %v, want not allowed and TOKEN_STATUS_DUPLICATE", second)
	}

	ctx, cancel = call()
	defer cancel()
	ack, err := client.Annotate(ctx, &sidecarv1.AnnotateRequest{
		AssessmentName: first.GetAssessmentName(),
		Annotation:     sidecarv1.Annotation_ANNOTATION_LEGITIMATE,
		Reasons:        []sidecarv1.AnnotationReason{sidecarv1.AnnotationReason_ANNOTATION_REASON_PASSED_TWO_FACTOR},
	})
	if err != nil {
		t.Fatalf("annotate: %v", err)
	}
	// client_type: the sidecar under test has a web key only (site_keys {web, express}), so a
	// token said to come from an Android app is VERDICT_KEYS_MISSING, answered without an
	// upstream call and released; the same token said to come from the web is then assessed.
	typed := mintToken(t, "login")
	ctx, cancel = call()
	defer cancel()
	android, err := client.Assess(ctx, &sidecarv1.AssessRequest{
		Token: typed, ExpectedAction: "login", ClientType: sidecarv1.ClientType_CLIENT_TYPE_ANDROID,
	})
	if err != nil {
		t.Fatalf("assess (android): %v", err)
	}
	if android.GetAllowed() || android.GetVerdict() != sidecarv1.Verdict_VERDICT_KEYS_MISSING ||
		android.GetTokenStatus() != sidecarv1.TokenStatus_TOKEN_STATUS_UNCHECKED {
		t.Fatalf("assess (android) = %v, want not allowed, VERDICT_KEYS_MISSING, TOKEN_STATUS_UNCHECKED", android)
	}
	ctx, cancel = call()
	defer cancel()
	web, err := client.Assess(ctx, &sidecarv1.AssessRequest{
		Token: typed, ExpectedAction: "login", ClientType: sidecarv1.ClientType_CLIENT_TYPE_WEB,
	})
	if err != nil {
		t.Fatalf("assess (web): %v", err)
	}
	if !web.GetAllowed() || web.GetTokenStatus() != sidecarv1.TokenStatus_TOKEN_STATUS_VALID {
		t.Fatalf("assess (web) = %v, want allowed and TOKEN_STATUS_VALID (the token was released)", web)
	}

	t.Logf("e2e ok: %s (assessment %s, annotation %s)", target, first.GetAssessmentName(), ack.GetDelivery())
}
