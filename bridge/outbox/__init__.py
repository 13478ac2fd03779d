"""Side effects as outbox rows: the job catalogue and outbound notifications."""
