"""The client: the Python SDK (sdk), results as tables and files (results) and
model export (exports). It talks to a gateway over gRPC and imports no server
code (checked by the import contracts in pyproject.toml)."""
