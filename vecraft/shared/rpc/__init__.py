"""Wire contracts: generated protobuf/gRPC stubs (v1/) and their generator."""
