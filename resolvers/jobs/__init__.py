"""Jobs: submission, offers and placement, the network queue, the ledger of states and events, reconcilers, live streams."""
