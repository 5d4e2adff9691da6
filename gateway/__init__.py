"""The mpcgate gateway: one per institution. Its public gRPC API (generated in
gateway.api from proto/), authentication, dataset registry, job scheduler, client
SDK and CLI live here as they land."""
