"""Who is calling: mutual-TLS party identities (PKI, certificates) and, for people
and services, signed JWTs."""
