"""Jira REST client and problem linking (see issue: Problems and Jira)."""
