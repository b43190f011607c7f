"""Centers in the graph: compute centers, compute units, capacity, the accelerator catalog."""
