"""Wire handlers of the gateway: HTTP (FastAPI) routes and gRPC servicers, each with one codec
module converting its wire format to and from the domain models."""
