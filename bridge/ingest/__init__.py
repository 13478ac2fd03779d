"""A webhook body becomes incidents, problems and refusals in one transaction, shared by concurrent webhooks."""
