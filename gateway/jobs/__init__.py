"""Joint jobs: the state machine, their SQLite store, the scheduler that coordinates
them across gateways, the worker processes that run them, and the gRPC services
(operators' JobService, gateways' CoordinationService)."""
