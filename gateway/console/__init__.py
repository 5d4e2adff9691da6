"""The web console each gateway serves for the people of its institution: what
waits for their approval, the datasets and their budgets, the jobs and their
results, the audit log and the models. Every page is a call to the gateway's own
gRPC services with the signed-in person's token (gateway/console/sessions.py):
the scopes, the policies and the audit log apply as to any client."""
