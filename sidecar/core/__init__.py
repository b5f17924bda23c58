"""Transport-neutral logic: no gRPC or protobuf types here, so every front door can share it."""
