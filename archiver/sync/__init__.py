"""The sync run: discovery, issue walks, workers, the spool and the single writer."""
