// Code generators for clients/go, pinned here (not in the client module) so that apps importing
// the client do not inherit them. scripts/generate.sh builds them with `go install tool`.
module github.com/recaptcha-sidecar/recaptcha-sidecar/clients/go/tools

go 1.25.0

tool (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc
	google.golang.org/protobuf/cmd/protoc-gen-go
)

require (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.2 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
