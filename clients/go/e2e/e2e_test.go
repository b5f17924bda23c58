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
	t.Logf("e2e ok: %s (assessment %s, annotation %s)", target, first.GetAssessmentName(), ack.GetDelivery())
}
