"""Tickets that arrive by themselves: Request Tracker read on a schedule, Jira Service Management on its webhook."""
