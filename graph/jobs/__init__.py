"""Jobs in the graph: the Job node, its events, submission, cancellation, offers and live streams."""
