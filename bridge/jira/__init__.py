"""The bridge's side of Jira: issue identity, the request budget, outcomes, the webhook."""
