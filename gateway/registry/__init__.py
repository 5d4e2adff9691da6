"""The party's registry: its datasets and their files (datasets, ingest), each
dataset's policy (policies), privacy budgets (budgets) and the models it holds
(model_store; training itself is mpc.programs.models). It implements the job
scheduler's contracts (gateway.jobs.contracts) and re-checks its own rules at
review, start and release."""
