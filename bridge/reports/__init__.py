"""The service report: the figures of a period beside the one before, as JSON, CSV and charts."""
