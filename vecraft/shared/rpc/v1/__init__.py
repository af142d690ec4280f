"""Generated protobuf and gRPC stubs (do not edit; see ../generate.py)."""
