"""Pure rules with no I/O: the item and job lifecycle, backoff, rate and ETA, what JSON can be stored."""
