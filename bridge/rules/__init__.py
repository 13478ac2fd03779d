"""rules.yaml: loaded and validated, with its sections and the operator's templates."""
