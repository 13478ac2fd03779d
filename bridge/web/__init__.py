"""What every view shares: the request's collaborators, the checks of the HTTP edge, who acts, the servers."""
