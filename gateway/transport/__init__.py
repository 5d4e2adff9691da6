"""The bottom of the gateway: TLS identities and the federation's PKI (tls, pki),
and gRPC servers, channels and the mapping of typed errors to status codes (rpc)."""
