// Command example assesses one reCAPTCHA token through the sidecar and prints the decision.
//
//	go run ./example -target unix:///tmp/recaptcha-sidecar.sock -token "$TOKEN" -action login
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sidecarv1 "github.com/recaptcha-sidecar/recaptcha-sidecar/clients/go/recaptchasidecarv1"
)

func main() {
	target := flag.String("target", "unix:///tmp/recaptcha-sidecar.sock", `the sidecar: "unix:///path/to.sock" or "127.0.0.1:50051"`)
	token := flag.String("token", "", "the token grecaptcha.enterprise.execute() returned")
	action := flag.String("action", "login", "the action the token is expected to carry")
	flag.Parse()

	// One connection per process, shared by every request: it is safe for concurrent use.
	// The sidecar is on loopback or a Unix socket in the same pod, so no TLS.
	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("dial %s: %v", *target, err)
	}
	defer conn.Close()
	client := sidecarv1.NewVerificationServiceClient(conn)

	// Always set a deadline: the sidecar answers within its own upstream budget, and a missing
	// answer should cost the request no more than this.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := client.Assess(ctx, &sidecarv1.AssessRequest{
		Token:          *token,
		ExpectedAction: *action,
		UserAgent:      "example/1.0",
	})
	if err != nil {
		// Only unreadable requests, load shedding and auth are errors; denials are data.
		log.Fatalf("assess: %v", err)
	}
	fmt.Printf("allowed=%t verdict=%s token_status=%s score=%.2f assessment=%s\n",
		resp.GetAllowed(), resp.GetVerdict(), resp.GetTokenStatus(), resp.GetScore(), resp.GetAssessmentName())
}
