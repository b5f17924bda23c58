// Google's own Go client (cloud.google.com/go/recaptchaenterprise/v2) against the sidecar's
// Google-compatible gRPC face, changed only in its construction: the sidecar's endpoint, an
// insecure channel, no credentials.
//
// Environment: SIDECAR (host:port), PARENT (projects/ID), TOKEN (a fresh token for the
// action "login"), SITE_KEY. Prints one JSON object with what each call answered; the
// pytest side (tests/interop/test_google_clients.py) judges it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	recaptcha "cloud.google.com/go/recaptchaenterprise/v2/apiv1"
	"cloud.google.com/go/recaptchaenterprise/v2/apiv1/recaptchaenterprisepb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type answer struct {
	Valid         bool              `json:"valid"`
	InvalidReason string            `json:"invalid_reason"`
	Score         float32           `json:"score"`
	Action        string            `json:"action"`
	Name          string            `json:"name"`
	Headers       map[string]string `json:"headers"`
}

func create(ctx context.Context, client *recaptcha.Client, parent, token, siteKey string) (answer, error) {
	var header metadata.MD
	response, err := client.CreateAssessment(ctx, &recaptchaenterprisepb.CreateAssessmentRequest{
		Parent: parent,
		Assessment: &recaptchaenterprisepb.Assessment{
			Event: &recaptchaenterprisepb.Event{
				Token:          token,
				SiteKey:        siteKey,
				ExpectedAction: "login",
				UserAgent:      "interop-go",
				UserIpAddress:  "203.0.113.7",
			},
		},
	}, gax.WithGRPCOptions(grpc.Header(&header)))
	if err != nil {
		return answer{}, err
	}
	headers := map[string]string{}
	for key, values := range header {
		if len(values) > 0 {
			headers[key] = values[0]
		}
	}
	return answer{
		Valid:         response.GetTokenProperties().GetValid(),
		InvalidReason: response.GetTokenProperties().GetInvalidReason().String(),
		Score:         response.GetRiskAnalysis().GetScore(),
		Action:        response.GetTokenProperties().GetAction(),
		Name:          response.GetName(),
		Headers:       headers,
	}, nil
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The one change an app makes: where the client connects, and that it brings no credentials.
	client, err := recaptcha.NewClient(ctx,
		option.WithEndpoint(os.Getenv("SIDECAR")),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	)
	if err != nil {
		fail("client", err)
	}
	defer client.Close()

	parent, token, siteKey := os.Getenv("PARENT"), os.Getenv("TOKEN"), os.Getenv("SITE_KEY")
	first, err := create(ctx, client, parent, token, siteKey)
	if err != nil {
		fail("first", err)
	}
	again, err := create(ctx, client, parent, token, siteKey)
	if err != nil {
		fail("again", err)
	}
	_, err = client.AnnotateAssessment(ctx, &recaptchaenterprisepb.AnnotateAssessmentRequest{
		Name:       first.Name,
		Annotation: recaptchaenterprisepb.AnnotateAssessmentRequest_LEGITIMATE,
		Reasons:    []recaptchaenterprisepb.AnnotateAssessmentRequest_Reason{recaptchaenterprisepb.AnnotateAssessmentRequest_PASSED_TWO_FACTOR},
	})
	annotated := "OK"
	if err != nil {
		annotated = status.Code(err).String()
	}
	_, err = client.ListKeys(ctx, &recaptchaenterprisepb.ListKeysRequest{Parent: parent}).Next()
	unserved := "OK"
	if err != nil && err != iterator.Done {
		unserved = status.Code(err).String() + ": " + status.Convert(err).Message()
	}
	out, _ := json.Marshal(map[string]any{
		"first": first, "again": again, "annotate": annotated, "list_keys": unserved,
	})
	fmt.Println(string(out))
}

func fail(step string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
	os.Exit(1)
}
