"""Running the registry: retention policies, webhooks, Prometheus metrics, pull-through mirrors."""
