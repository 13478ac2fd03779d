"""The kinds of outbox jobs: the side effects a use case queues and the worker runs."""

JOB_JIRA_ENSURE_ISSUE = "jira.ensure_issue"
JOB_JIRA_SYNC = "jira.sync_issue"
JOB_JIRA_COMMENT = "jira.comment_incidents"
JOB_JIRA_RELEASE = "jira.release"
JOB_JIRA_REGRESSION = "jira.regression"
JOB_ZABBIX_CLOSE = "zabbix.close_problems"
JOB_JIRA_NOTE = "jira.note"
