"""Problems: grouping on the hot path, a person's actions, corrections, tickets, releases and their health."""
