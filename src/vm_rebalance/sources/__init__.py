"""Where a ClusterState comes from: the live API or a snapshot file."""
