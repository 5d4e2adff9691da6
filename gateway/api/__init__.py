"""Generated gRPC code: run scripts/gen_protos.py, never edit."""
