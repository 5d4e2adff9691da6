"""Joint jobs: the state machine, their SQLite store, the scheduler that coordinates
them across gateways, each party's co-signed records of them, and the gRPC services
(operators' JobService, gateways' CoordinationService). The worker processes that
run them: gateway.workers."""
