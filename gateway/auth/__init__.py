"""Who is calling, and may they: signed JWTs for people and services (jwt, with
their issuers: issuers), the scope each RPC needs (interceptor), and why a
connection to a gateway failed (diagnose). Party identities and certificates
are the transport's (gateway.transport.tls, pki)."""
