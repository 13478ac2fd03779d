"""The domain, standard library only: incidents, problems, their lifecycles, SLA calendars, outcomes, tickets."""
