"""incident-bridge: from monitoring webhooks to deduplicated incidents, problems and Jira."""
