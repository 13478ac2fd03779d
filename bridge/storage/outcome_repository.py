"""Problems a Jira issue's outcome still concerns once they are closed."""

from __future__ import annotations

import sqlalchemy as sa

from bridge.domain.outcomes import IssueOutcome
from bridge.domain.problems import ProblemState
from bridge.storage.engine import Database
from bridge.storage.schema import problems


class OutcomeRepository(Database):
    def issue_concerns_problems(self, key: str) -> bool:
        """Whether an issue's change matters here: it has live problems, or problems won't do closed
        (an issue worked on again reopens them)."""
        query = (
            sa.select(problems.c.id)
            .where(
                problems.c.jira_key == key,
                problems.c.merged_into.is_(None),
                sa.or_(
                    problems.c.state != ProblemState.CLOSED.value,
                    problems.c.outcome == IssueOutcome.WONT_DO.value,
                ),
            )
            .limit(1)
        )
        return self.read(lambda conn: conn.execute(query).first() is not None)
